"""Training that goes wrong says so: a diverged run stops unsaved, a resume with other options is refused,
a video that breaks mid-clip is reported and the run goes on."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from test_training_runs import QUICK_ARGS, synthetic_root  # noqa: F401  (the shared tiny synthetic set)


def test_a_diverging_run_stops_with_a_message_and_saves_no_nan_model(synthetic_root, tmp_path):  # noqa: F811
    from hub_scripts.train import parse_args, run
    from hub_scripts.trainer import NonFiniteTrainingError

    output_dir = tmp_path / "nan"
    args = parse_args(["--data_root", str(synthetic_root), *QUICK_ARGS, "--max_steps", "6", "--save_steps", "3",
                       "--eval_steps", "3", "--learning_rate", "1e9", "--output_dir", str(output_dir)])
    with pytest.raises(NonFiniteTrainingError, match="Training diverged: the training (loss|grad_norm) became nan"):
        run(*args)
    assert not (output_dir / "model.safetensors").exists()  # no all-NaN model next to the run's results
    assert not (output_dir / "test_results.json").exists()


def test_resuming_with_another_decoder_mode_names_the_flag(synthetic_root, tmp_path):  # noqa: F811
    from hub_scripts.train import parse_args, run

    common = ["--data_root", str(synthetic_root), *QUICK_ARGS, "--max_steps", "2", "--save_steps", "2",
              "--eval_steps", "2", "--output_dir", str(tmp_path / "run")]
    run(*parse_args(common))
    checkpoint = tmp_path / "run" / "checkpoint-2"
    with pytest.raises(ValueError, match=r"decoder_mode='cascaded'.*--decoder_mode"):
        run(*parse_args([*common, "--decoder_mode", "parallel", "--resume_from_checkpoint", str(checkpoint)]))


def test_a_video_truncated_mid_clip_is_reported_and_training_goes_on(synthetic_root, tmp_path):  # noqa: F811
    from hub_scripts.train import parse_args, run

    root = tmp_path / "data"
    shutil.copytree(synthetic_root, root)
    victim = sorted(root.rglob("*.mp4"))[3]
    data = victim.read_bytes()
    victim.write_bytes(data[: len(data) // 2])  # the header survives: frame 0 decodes, the tail does not
    result = run(*parse_args(["--data_root", str(root), *QUICK_ARGS, "--max_steps", "2", "--save_steps", "2",
                              "--eval_steps", "2", "--output_dir", str(tmp_path / "run")]))
    assert result["test_uar"] >= 0
    import json

    summary = json.loads((tmp_path / "run" / "run_summary.json").read_text())
    assert str(victim) in summary["unreadable_videos"]
