"""Shared fixtures: the real third-party clips in ../shared/clips (override with MTCAE_CLIPS_DIR)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from fixtures_trained import fake_hub, pushed_repo, trained_output_dir  # noqa: F401  (Hub / inference fixtures)

DEFAULT_CLIPS_DIR = Path(__file__).resolve().parents[2] / "shared" / "clips"


def clips_path() -> Path:
    return Path(os.environ.get("MTCAE_CLIPS_DIR", DEFAULT_CLIPS_DIR))


@pytest.fixture(scope="session")
def clips_dir() -> Path:
    """Folder with single_face.mp4, no_face.mp4 and face_noface.mov; tests skip when it is absent (fail under CI)."""
    path = clips_path()
    if not (path / "single_face.mp4").exists():
        message = f"real test clips not found in {path} (set MTCAE_CLIPS_DIR)"
        if os.environ.get("CI"):  # CI always has ../shared/clips: a missing folder is a failure there
            pytest.fail(message)
        pytest.skip(message)
    return path
