"""Helpers shared by the tests: tiny configs and a Python process that cannot import this repo."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
OUR_PACKAGES = ("modeling_mtcae", "processing", "hub_scripts")

# Prepended to code run by run_isolated: drop the repo from sys.path and refuse our packages even
# when an editable install's import hook could find them.
_ISOLATION_PRELUDE = f"""
import sys, importlib.abc
sys.path = [p for p in sys.path if p not in ("", ".") and not p.startswith({str(REPO_ROOT)!r})]
class _BlockOurPackages(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {OUR_PACKAGES!r}:
            raise ImportError(f"{{name}} is blocked: this process stands for a Python without mtcae-dfer")
        return None
sys.meta_path.insert(0, _BlockOurPackages())
"""


def run_isolated(code: str, cwd: str | os.PathLike, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter where this repo's packages cannot be imported."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    script = _ISOLATION_PRELUDE + "\n" + textwrap.dedent(code)
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=str(cwd), env=env, capture_output=True, text=True, timeout=timeout
    )
    if result.returncode != 0:
        raise AssertionError(f"isolated process failed ({result.returncode}):\n{result.stdout}\n{result.stderr[-4000:]}")
    return result


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
