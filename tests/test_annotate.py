"""mtcae-annotate: labels a folder, resumes, survives bad files, reports them."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from hub_scripts import annotate
from processing.annotation_cache import AnnotationCache, sampler_key
from processing.video_processing_mtcae import sample_frame_indices


@pytest.fixture()
def dataset(tmp_path, clips_dir):
    root = tmp_path / "data"
    (root / "Actor_01").mkdir(parents=True)
    shutil.copy(clips_dir / "single_face.mp4", root / "Actor_01" / "single_face.mp4")
    shutil.copy(clips_dir / "no_face.mp4", root / "no_face.mp4")
    (root / "Actor_01" / "broken.mp4").write_bytes(b"not a video" * 100)
    (root / "empty.avi").write_bytes(b"")
    (root / "readme.txt").write_text("not a video, not even listed")
    return root


def test_annotate_folder_resumes_and_reports_failures(dataset, tmp_path, capsys):
    cache_path = tmp_path / "labels.parquet"
    code = annotate.main(["--data_root", str(dataset), "--output", str(cache_path), "--workers", "1", "--no_progress",
                          "--save_every", "1"])
    assert code == 0  # two of four failed, not all
    captured = capsys.readouterr()
    assert "2 videos failed" in captured.err
    assert "Actor_01/broken.mp4" in captured.err and "not a readable video" in captured.err
    assert "empty.avi" in captured.err and "empty" in captured.err

    cache = AnnotationCache(cache_path)
    key = sampler_key("uniform", 16)
    assert set(cache.keys()) == {("Actor_01/single_face.mp4", key), ("no_face.mp4", key)}
    labels = cache.get("Actor_01/single_face.mp4", key)
    assert labels.mask.all() and (labels.width, labels.height, labels.num_source_frames) == (640, 360, 72)
    np.testing.assert_array_equal(labels.frame_indices, sample_frame_indices(72, 16))
    assert not cache.get("no_face.mp4", key).mask.any()

    # A second run labels nothing new: the cached videos are skipped, the bad ones retried.
    code = annotate.main(["--data_root", str(dataset), "--output", str(cache_path), "--workers", "1", "--no_progress"])
    assert code == 0
    assert "2 already in" in capsys.readouterr().out
    assert annotate.main(["--data_root", str(dataset), "--output", str(cache_path), "--workers", "1", "--no_progress",
                          "--strict"]) == 1


def test_annotate_exits_non_zero_when_everything_fails(tmp_path, capsys):
    root = tmp_path / "bad"
    root.mkdir()
    (root / "a.mp4").write_bytes(b"junk")
    (root / "b.mkv").write_bytes(b"")
    assert annotate.main(["--data_root", str(root), "--workers", "1", "--no_progress"]) == 1
    assert "2 videos failed" in capsys.readouterr().err


def test_annotate_with_worker_processes(tmp_path, clips_dir):
    root = tmp_path / "data"
    root.mkdir()
    for name in ("single_face.mp4", "face_noface.mov"):
        shutil.copy(clips_dir / name, root / name)
    cache_path = root / annotate.DEFAULT_CACHE_NAME
    args = ["--data_root", str(root), "--workers", "2", "--no_progress", "--num_frames", "8", "--mode", "stride"]
    assert annotate.main(args + ["--limit", "1"]) == 0
    assert len(AnnotationCache(cache_path)) == 1  # --limit stops early; the rest resumes below
    assert annotate.main(args) == 0
    cache = AnnotationCache(cache_path)
    key = sampler_key("stride", 8)
    assert set(cache.keys()) == {("single_face.mp4", key), ("face_noface.mov", key)}
    mov = cache.get("face_noface.mov", key)
    assert mov.mask[0] and not mov.mask[-1]


def test_help_runs():
    with pytest.raises(SystemExit) as info:
        annotate.main(["--help"])
    assert info.value.code == 0
