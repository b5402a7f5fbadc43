"""mtcae-annotate: labels a folder, resumes, survives bad files and kills, re-labels changed videos, reports."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import typing
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from test_video_processing import write_clip  # the suite's small PyAV clip writer

from hub_scripts import annotate
from processing import face_detectors, labelling
from processing.annotation_cache import AnnotationCache, sampler_key
from processing.face_detectors import FaceDetection, FaceDetector
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


# ------------------------------------------------------------------- reliability (fast: a stand-in detector)

SLOW_RUN = """
import sys, time
from processing import face_detectors
class Slow(face_detectors.FaceDetector):
    def detect(self, frame):
        time.sleep(0.1)
        with open(sys.argv[1], "a") as log:
            log.write("frame\\n")
        return []
face_detectors._DETECTORS["mtcnn"] = (Slow, ())
from hub_scripts import annotate
annotate.main(sys.argv[2:])
"""


class CentreFace(FaceDetector):
    """Stand-in for MTCNN: one face in the middle of every frame, instantly."""

    def detect(self, frame):
        h, w = frame.shape[:2]
        points = np.array([[0.4, 0.4], [0.6, 0.4], [0.5, 0.5], [0.42, 0.6], [0.58, 0.6]], np.float32) * [w, h]
        return [FaceDetection(np.array([w / 4, h / 4, w / 2, h / 2], np.float32), points.astype(np.float32), 1.0)]


@pytest.fixture()
def centre_face(monkeypatch):
    monkeypatch.setitem(face_detectors._DETECTORS, "mtcnn", (CentreFace, ()))


def make_clips(root, count, num_frames=6):
    root.mkdir(parents=True, exist_ok=True)
    return [write_clip(root / f"clip_{i:02d}.mp4", num_frames=num_frames, width=32, height=32) for i in range(count)]


def run(root, *flags, output=None):
    argv = ["--data_root", str(root), "--workers", "1", "--no_progress", "--num_frames", "2", *flags]
    return annotate.main(argv + (["--output", str(output)] if output else []))


def test_a_video_replaced_after_labelling_is_labelled_again(tmp_path, centre_face, capsys):
    root = tmp_path / "data"
    first, _ = make_clips(root, 2)
    assert run(root) == 0
    cache_path = root / annotate.DEFAULT_CACHE_NAME
    assert AnnotationCache(cache_path).get("clip_00.mp4", "uniform:2").num_source_frames == 6
    write_clip(first, num_frames=9, width=32, height=32)  # replaced: other frames, other frame count
    capsys.readouterr()
    assert run(root) == 0
    out = capsys.readouterr().out
    assert "1 already in" in out and "1 changed since labelled" in out and "labelled 1 videos" in out
    assert AnnotationCache(cache_path).get("clip_00.mp4", "uniform:2").num_source_frames == 9


def test_rows_of_an_old_cache_without_fingerprints_are_labelled_again(tmp_path, centre_face, capsys):
    root = tmp_path / "data"
    make_clips(root, 2)
    assert run(root) == 0
    cache_path = root / annotate.DEFAULT_CACHE_NAME
    table = pq.read_table(cache_path)
    pq.write_table(table.drop_columns(["file_size", "file_mtime_ns", "file_sha256"]), cache_path)  # as before
    capsys.readouterr()
    assert run(root) == 0
    out = capsys.readouterr().out
    assert "0 already in" in out and "2 labelled before the cache kept file fingerprints" in out
    assert {AnnotationCache(cache_path).state(f"clip_0{i}.mp4", "uniform:2") for i in range(2)} == {"current"}


def test_limit_reports_already_in_and_what_is_left(tmp_path, centre_face, capsys):
    root = tmp_path / "data"
    make_clips(root, 4)
    assert run(root, "--limit", "1") == 0
    assert "4 videos under" in (out := capsys.readouterr().out) and "0 already in" in out
    assert "--limit 1: 3 left for a later run; 1 to label" in out
    assert run(root, "--limit", "2") == 0
    out = capsys.readouterr().out
    assert "1 already in" in out and "--limit 2: 1 left for a later run; 2 to label" in out
    assert run(root, "--limit", "5") == 0
    out = capsys.readouterr().out
    assert "3 already in" in out and "left for a later run" not in out and "; 1 to label" in out
    assert len(AnnotationCache(root / annotate.DEFAULT_CACHE_NAME)) == 4


def test_an_unwritable_output_is_refused_before_any_labelling(tmp_path, monkeypatch, capsys):
    root = tmp_path / "data"
    make_clips(root, 1)
    (tmp_path / "some_file").write_text("a regular file: nothing can be written under it, even as root")

    def must_not_label(task):
        raise AssertionError("labelling started before the output was checked")

    monkeypatch.setattr(labelling, "_label_one", must_not_label)
    assert run(root, output=tmp_path / "some_file" / "labels.parquet") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cannot write the face-label cache" in err and "some_file" in err


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--output", "labels.csv"], "--output must be a .parquet file, got labels.csv"),
        (["--save_every", "0"], "--save_every must be at least 1"),
        (["--save_interval_s", "0"], "--save_interval_s must be positive"),
        (["--dataset", "nosuch"], "unknown data set 'nosuch'"),
    ],
)
def test_bad_arguments_are_refused_with_one_line(tmp_path, flags, message, capsys):
    assert annotate.main(["--data_root", str(tmp_path), *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err and "Traceback" not in err


def test_an_unreadable_cache_is_refused_with_one_line(tmp_path, capsys):
    (tmp_path / "labels.parquet").write_bytes(b"junk")
    assert annotate.main(["--data_root", str(tmp_path), "--output", str(tmp_path / "labels.parquet")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "labels.parquet is not a readable face-label cache" in err


def test_hidden_folders_are_mentioned(tmp_path, centre_face, capsys):
    root = tmp_path / "data"
    make_clips(root, 1)
    make_clips(root / ".thumbnails", 1)
    assert run(root) == 0
    out = capsys.readouterr().out
    assert "hidden file(s)/folder(s) left out: .thumbnails/" in out and "1 videos under" in out


def test_detector_choices_are_the_registered_detectors():
    choices = typing.get_args(typing.get_type_hints(annotate.AnnotateArguments)["detector"])
    assert set(choices) == set(face_detectors._DETECTORS)


def test_help_lists_the_underscore_flags(capsys):
    with pytest.raises(SystemExit) as info:
        annotate.main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--data_root", "--save_every", "--save_interval_s", "--num_frames", "--no_progress"):
        assert flag in out


def test_a_killed_run_keeps_what_it_labelled_before_the_last_timed_save(tmp_path):
    root, log = tmp_path / "data", tmp_path / "frames.log"
    make_clips(root, 20, num_frames=4)
    cache_path = tmp_path / "labels.parquet"
    # 2 frames per video at 0.1 s each; saving by count alone (every 1000) would write nothing before the kill.
    argv = ["--data_root", str(root), "--output", str(cache_path), "--workers", "1", "--no_progress",
            "--num_frames", "2", "--save_every", "1000", "--save_interval_s", "0.3"]
    env = {**os.environ, "PYTHONPATH": str(Path(annotate.__file__).parents[1]), "OMP_NUM_THREADS": "1"}
    child = subprocess.Popen([sys.executable, "-c", SLOW_RUN, str(log), *argv], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not (log.exists() and len(log.read_text().splitlines()) > 2 * 5):  # 5 videos labelled, a 6th started
            assert child.poll() is None and time.monotonic() < deadline, child.stderr.read().decode()[-2000:]
            time.sleep(0.05)
        time.sleep(1.0)  # a few save intervals more
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
    assert child.returncode == -signal.SIGKILL
    rows = len(AnnotationCache(cache_path))  # a whole Parquet file: saves are atomic
    assert 5 <= rows < 20


# ------------------------------------------------------------------- clips given as folders of frame images


def _save_frames(folder: Path, frames: np.ndarray, prefix: str = "") -> None:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for i, frame in enumerate(frames, start=1):
        Image.fromarray(frame).save(folder / f"{prefix}{i:05d}.jpg", quality=95)


def test_annotate_video_labels_a_frame_folder_as_it_labels_the_video(tmp_path, clips_dir):
    from processing.video_processing_mtcae import read_video

    video = clips_dir / "single_face.mp4"
    frames, _, info = read_video(video, indices=np.arange(72))
    assert info["num_source_frames"] == 72
    _save_frames(tmp_path / "single_face", frames.numpy())
    from_video = face_detectors.annotate_video(video, num_frames=4)
    from_folder = face_detectors.annotate_video(tmp_path / "single_face", num_frames=4)
    np.testing.assert_array_equal(from_folder.frame_indices, sample_frame_indices(72, 4))
    np.testing.assert_array_equal(from_folder.frame_indices, from_video.frame_indices)
    assert (from_folder.width, from_folder.height, from_folder.num_source_frames) == (640, 360, 72)
    assert from_video.mask.all() and from_folder.mask.all()
    np.testing.assert_allclose(from_folder.boxes, from_video.boxes, atol=0.02)  # JPEG frames: near, not equal
    np.testing.assert_allclose(from_folder.landmarks, from_video.landmarks, atol=0.02)


def _fake_dfew(root: Path, frame_counts: dict[int, int]) -> None:
    """A DFEW tree of real (tiny) JPEG frames and the five official split files (clip k tests fold k)."""
    rng = np.random.default_rng(0)
    for clip, count in frame_counts.items():
        frames = rng.integers(0, 256, (count, 24, 32, 3), dtype=np.uint8)
        _save_frames(root / "Clip" / "clip_224x224" / f"{clip:05d}", frames, prefix=f"{clip:05d}_")
    for k in range(1, 6):
        for split, clips in (("train", [c for c in frame_counts if c != k]), ("test", [k])):
            path = root / "EmoLabel_DataSplit" / f"{split}(single-labeled)" / f"set_{k}.csv"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("video_name,label\n" + "".join(f"{c},{c % 7 + 1}\n" for c in clips))


def test_annotate_dataset_labels_every_frame_folder_clip_and_the_labels_join(tmp_path, centre_face, capsys):
    from PIL import Image

    from processing.annotation_cache import attach_face_labels
    from processing.datasets_in_the_wild import load_dfew

    root, output = tmp_path / "DFEW", tmp_path / "labels.parquet"
    counts = {1: 4, 2: 5, 3: 6, 4: 7, 5: 8}
    _fake_dfew(root, counts)
    assert run(root, output=output) == 0  # the default walk finds no video files among the frames
    assert "0 videos under" in capsys.readouterr().out

    assert run(root, "--dataset", "dfew", output=output) == 0
    assert "5 videos under" in capsys.readouterr().out
    cache, key = AnnotationCache(output), sampler_key("uniform", 2)
    rel_paths = {f"Clip/clip_224x224/{c:05d}": n for c, n in counts.items()}
    assert set(cache.keys()) == {(rel, key) for rel in rel_paths}
    for rel, count in rel_paths.items():
        labels = cache.get(rel, key, file=root / rel)
        assert labels.mask.all() and (labels.width, labels.height, labels.num_source_frames) == (32, 24, count)
        np.testing.assert_array_equal(labels.frame_indices, sample_frame_indices(count, 2))

    joined = attach_face_labels(load_dfew(root), output, key)
    assert sorted(joined["rel_path"]) == sorted(rel_paths)
    for rel, labels in zip(joined["rel_path"], AnnotationCache(output).labels_of(joined)):  # each row's joined labels
        assert labels.frame_indices.tolist() == list(sample_frame_indices(rel_paths[rel], 2))
        assert all(labels.mask)

    # A frame replaced in one clip: only that clip is labelled again.
    Image.new("RGB", (32, 24), (9, 9, 9)).save(root / "Clip" / "clip_224x224" / "00003" / "00003_00002.jpg")
    assert run(root, "--dataset", "dfew", output=output) == 0
    out = capsys.readouterr().out
    assert "4 already in" in out and "1 changed since labelled" in out and "labelled 1 videos" in out
