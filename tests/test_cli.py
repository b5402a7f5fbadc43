"""Every console script of setup.py: it exists, ``--help`` works, and the flags are underscore-style."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

SETUP = Path(__file__).resolve().parents[1] / "setup.py"
# The tools built on hub_scripts.cli (HfArgumentParser dataclasses).
DATACLASS_TOOLS = ("mtcae-train", "mtcae-cross-validate", "mtcae-ablate", "mtcae-synthetic", "mtcae-demo",
                   "mtcae-push-to-hub", "mtcae-pretrain", "mtcae-convert-videomae", "mtcae-predict", "mtcae-prepare",
                   "mtcae-annotate")


def console_scripts() -> dict[str, str]:
    """``name -> module:function`` of setup.py's console_scripts (read from the source, not the installed copy)."""
    for node in ast.walk(ast.parse(SETUP.read_text())):
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if isinstance(key, ast.Constant) and key.value == "console_scripts":
                    return dict(entry.split("=", 1) for entry in ast.literal_eval(value))
    raise AssertionError("setup.py has no console_scripts")


def test_every_tool_has_a_console_script():
    scripts = console_scripts()
    expected = {*DATACLASS_TOOLS, "mtcae-convert-videomae", "mtcae-annotate", "mtcae-predict"}
    assert expected <= set(scripts), sorted(expected - set(scripts))


@pytest.mark.parametrize("name", sorted(console_scripts()))
def test_help_exits_cleanly(name, capsys):
    module, function = console_scripts()[name].split(":")
    main = getattr(importlib.import_module(module), function)
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage:")
    if name in DATACLASS_TOOLS:
        usage = out.split("\n\n")[0]
        assert usage.startswith(f"usage: {name} ")
        flags = re.findall(r"--[\w-]+", usage)
        assert flags and all("-" not in flag[2:] for flag in flags), [f for f in flags if "-" in f[2:]]


def test_bad_options_are_refused_before_any_work(tmp_path, capsys):
    from hub_scripts import convert_videomae_checkpoint, demo, pretrain, push_to_hub, synthetic

    cases = [
        (synthetic.main, ["--root", str(tmp_path / "synth"), "--height", "143"], "positive even numbers"),
        (synthetic.main, ["--root", str(tmp_path / "synth"), "--clips_per_class", "9"], "--clips_per_class"),
        (demo.main, ["--steps", "0"], "--steps must be > 0"),
        (demo.main, ["--preset", "huge"], "invalid choice"),
        (push_to_hub.main, [str(tmp_path), "--repo_id", "a/b", "--overwrite"], "--overwrite only applies"),
        (push_to_hub.main, ["--repo_id", "a/b", "--results_only"], "--results_only needs"),
        (pretrain.main, ["--mask_ratio", "1", "--output_dir", str(tmp_path / "synth")], "--mask_ratio must be in"),
        (pretrain.main, ["--dataset", "videos", "--output_dir", str(tmp_path / "synth")], "needs --data_root"),
        (pretrain.main, ["--eval_strategy", "epoch", "--output_dir", str(tmp_path / "synth")], "no evaluation split"),
        (convert_videomae_checkpoint.main, ["--checkpoint", str(tmp_path / "none.pth"), "--output_dir",
                                            str(tmp_path / "synth")], "no such file"),
    ]
    for main, argv, message in cases:
        with pytest.raises(SystemExit) as info:
            main(argv)
        assert info.value.code == 2 and message in capsys.readouterr().err, argv
    assert not (tmp_path / "synth").exists()
