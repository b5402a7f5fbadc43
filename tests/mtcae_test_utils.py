"""Helpers shared by the tests: tiny configs and a Python process that cannot import this repo."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
OUR_PACKAGES = ("modeling_mtcae", "processing", "hub_scripts")

# Prepended to code run by run_isolated. It isolates the PACKAGE, not the environment: only the
# sys.path entries from which one of our packages is importable (the repo root, an unpacked copy,
# "" / ".") are dropped, so a virtual environment inside the repo (.venv/lib/.../site-packages)
# keeps working; a meta-path finder refuses our packages even when an editable install's import
# hook could find them.
_ISOLATION_PRELUDE = """
import os, sys, importlib.abc
OUR_PACKAGES = {packages!r}
def _exposes_our_packages(entry):
    folder = os.path.abspath(entry or os.curdir)
    return any(os.path.exists(os.path.join(folder, name, "__init__.py")) for name in OUR_PACKAGES)
sys.path = [p for p in sys.path if p not in ("", ".") and not _exposes_our_packages(p)]
class _BlockOurPackages(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in OUR_PACKAGES:
            raise ImportError(f"{{name}} is blocked: this process stands for a Python without mtcae-dfer")
        return None
sys.meta_path.insert(0, _BlockOurPackages())
"""


def isolation_prelude(packages: tuple[str, ...] = OUR_PACKAGES) -> str:
    """The code that makes a fresh interpreter unable to import ``packages`` (see run_isolated)."""
    return _ISOLATION_PRELUDE.format(packages=tuple(packages))


def isolated_env(**extra: str) -> dict[str, str]:
    """The environment of an isolated child: no PYTHONPATH, the Hub offline."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1", **extra)
    return env


def _check(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    if result.returncode != 0:
        raise AssertionError(f"isolated process failed ({result.returncode}):\n{result.stdout}\n"
                             f"{result.stderr[-4000:]}")
    return result


def run_isolated(code: str, cwd: str | os.PathLike, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter where this repo's packages cannot be imported."""
    script = isolation_prelude() + "\n" + textwrap.dedent(code)
    return _check(subprocess.run([sys.executable, "-c", script], cwd=str(cwd), env=isolated_env(),
                                 capture_output=True, text=True, timeout=timeout))


def requirement_closure(requirements: list[str]) -> set[str]:
    """The installed distributions that ``pip install REQUIREMENTS`` pulls in (names normalised).

    Follows each distribution's ``Requires-Dist`` (markers evaluated for this Python, extras not
    taken); a requirement that is not installed here raises ``PackageNotFoundError``.
    """
    from importlib.metadata import distribution

    from packaging.markers import default_environment
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    environment = {**default_environment(), "extra": ""}
    todo, seen = [Requirement(r) for r in requirements], set()
    while todo:
        requirement = todo.pop()
        name = canonicalize_name(requirement.name)
        if name in seen or (requirement.marker and not requirement.marker.evaluate(environment)):
            continue
        seen.add(name)
        todo += [Requirement(r) for r in distribution(name).requires or []]
    return seen


def site_with_only(requirements: list[str], folder: Path) -> Path:
    """A site-packages folder holding (as symbolic links) only the distributions of ``requirements``.

    Stands for a fresh environment where exactly ``pip install REQUIREMENTS`` was run: every top-level
    module, package and ``.dist-info`` folder of those distributions and their dependencies, nothing else.
    """
    from importlib.metadata import distributions

    from packaging.utils import canonicalize_name

    wanted = requirement_closure(requirements)
    folder.mkdir(parents=True, exist_ok=True)
    for dist in distributions():
        if canonicalize_name(dist.metadata["Name"]) not in wanted:
            continue
        site = Path(dist.locate_file(""))
        tops = {Path(str(f)).parts[0] for f in dist.files or [] if not str(f).startswith("..")}
        for top in sorted(tops - {"__pycache__"}):
            if top.endswith(".pth") or (folder / top).exists() or not (site / top).exists():
                continue
            (folder / top).symlink_to(site / top)
    return folder


def run_with_only(requirements: list[str], code: str, cwd: str | os.PathLike, timeout: int = 300):
    """Run ``code`` in an interpreter that sees the standard library and ``site_with_only(requirements)`` only."""
    site = site_with_only(requirements, Path(cwd) / "site-with-only")
    # The standard library of the base interpreter (a venv has none of its own), then the site folder.
    base = Path(sys.base_prefix).resolve()
    paths = [p for p in sys.path if p and Path(p).resolve().is_relative_to(base)
             and not {"site-packages", "dist-packages"} & set(Path(p).parts)] + [str(site)]
    script = f"import sys\nsys.path[:] = {paths!r}\n" + isolation_prelude() + textwrap.dedent(code)
    return _check(subprocess.run([sys.executable, "-I", "-S", "-c", script], cwd=str(cwd), env=isolated_env(),
                                 capture_output=True, text=True, timeout=timeout))


def tiny_encoder_kwargs(**overrides) -> dict:
    """A VideoMAE small enough for unit tests: 4 frames of 32x32 -> 8 tokens."""
    kwargs = dict(
        image_size=32,
        patch_size=16,
        num_frames=4,
        tubelet_size=2,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        use_mean_pooling=True,
    )
    kwargs.update(overrides)
    return kwargs


def tiny_config(**overrides):
    """A tiny MTCAEConfig with all dropouts off, so outputs are deterministic in train mode too."""
    from modeling_mtcae import MTCAEConfig

    encoder = tiny_encoder_kwargs(**overrides.pop("encoder_config", {}))
    kwargs = dict(
        num_labels=5,
        projection_dim=16,
        decoder_hidden_size=16,
        decoder_num_layers=2,
        decoder_num_heads=2,
        decoder_head_dim=8,
        decoder_intermediate_size=24,
        projection_dropout=0.0,
        decoder_dropout=0.0,
        decoder_attention_dropout=0.0,
        head_dropout=0.0,
        freeze_encoder=False,
        num_frames=encoder["num_frames"],
    )
    kwargs.update(overrides)
    if "id2label" in overrides:
        kwargs.pop("num_labels")
    return MTCAEConfig.from_preset("base", encoder_config=encoder, **kwargs)
