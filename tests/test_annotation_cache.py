"""The face-label cache: concurrent writers, stale rows, old files, file mode."""

from __future__ import annotations

import logging
import multiprocessing
import os
import stat
import threading

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from filelock import FileLock

from processing.annotation_cache import CACHE_COLUMNS, AnnotationCache, labels_to_row
from processing.face_labels_mtcae import FaceLabels
from processing.files import FileFingerprint

KEY = "uniform:4"


def make_labels(seed: int, num_source_frames: int = 40) -> FaceLabels:
    rng = np.random.default_rng(seed)
    return FaceLabels(frame_indices=np.arange(0, 40, 10), boxes=rng.uniform(0, 0.5, (4, 4)),
                      landmarks=rng.uniform(0, 1, (4, 5, 2)), mask=np.ones(4, bool), scores=np.ones(4),
                      width=64, height=48, num_source_frames=num_source_frames)


def _write_rows(cache_path: str, prefix: str, count: int, barrier) -> None:
    """A writer process: add one row at a time and save after each, as mtcae-annotate does."""
    cache = AnnotationCache(cache_path)
    barrier.wait()
    for i in range(count):
        cache.add(f"{prefix}/{i:02d}.mp4", KEY, make_labels(i), detector="test")
        cache.save()


def test_two_writer_processes_on_one_cache_keep_every_row(tmp_path):
    cache_path = str(tmp_path / "labels.parquet")
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(2)
    writers = [context.Process(target=_write_rows, args=(cache_path, prefix, 12, barrier)) for prefix in ("a", "b")]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(timeout=120)
        assert writer.exitcode == 0
    keys = set(AnnotationCache(cache_path).keys())
    assert keys == {(f"{prefix}/{i:02d}.mp4", KEY) for prefix in ("a", "b") for i in range(12)}


def test_a_second_writer_waits_for_the_lock_and_says_so(tmp_path, caplog):
    cache = AnnotationCache(tmp_path / "labels.parquet")
    cache.add("x.mp4", KEY, make_labels(0), detector="test")
    lock = FileLock(f"{cache.path}.lock")
    with caplog.at_level(logging.WARNING), lock:
        saver = threading.Thread(target=cache.save)
        saver.start()
        saver.join(timeout=1.0)
        assert saver.is_alive() and not cache.path.exists()  # it waits for the holder ...
        assert "held by another writer" in caplog.text  # ... and says so
    saver.join(timeout=30)
    assert not saver.is_alive() and set(AnnotationCache(cache.path).keys()) == {("x.mp4", KEY)}


def test_saving_merges_rows_other_writers_saved_and_keeps_rows_dropped_dropped(tmp_path):
    path = tmp_path / "labels.parquet"
    first = AnnotationCache(path)
    first.add("old.mp4", KEY, make_labels(0), detector="test")
    first.add("gone.mp4", KEY, make_labels(1), detector="test")
    first.save()
    second = AnnotationCache(path)
    first.add("a.mp4", KEY, make_labels(2), detector="test")
    first.save()
    second.add("b.mp4", KEY, make_labels(3), detector="test")
    second.add("old.mp4", KEY, make_labels(4, num_source_frames=99), detector="test")  # re-labelled by second
    del second._rows[("gone.mp4", KEY)]  # as processing.synthetic drops rows of clips it deleted
    second.save()
    merged = AnnotationCache(path)
    assert set(merged.keys()) == {("old.mp4", KEY), ("a.mp4", KEY), ("b.mp4", KEY)}
    assert merged.get("old.mp4", KEY).num_source_frames == 99
    np.testing.assert_allclose(merged.get("a.mp4", KEY).boxes, make_labels(2).boxes, rtol=1e-6)


def test_saving_keeps_the_cache_file_mode(tmp_path):
    path = tmp_path / "labels.parquet"
    old_umask = os.umask(0o022)
    try:
        cache = AnnotationCache(path)
        cache.add("a.mp4", KEY, make_labels(0), detector="test")
        cache.save()
        assert stat.S_IMODE(path.stat().st_mode) == 0o644  # a new file: 0666 less the umask, not mkstemp's 0600
        path.chmod(0o664)
        cache.add("b.mp4", KEY, make_labels(1), detector="test")
        cache.save()
        assert stat.S_IMODE(path.stat().st_mode) == 0o664
    finally:
        os.umask(old_umask)


def test_a_video_replaced_after_labelling_is_not_served(tmp_path, caplog):
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"first video " * 10_000)  # the cache only fingerprints bytes; no decoding needed
    cache = AnnotationCache(tmp_path / "labels.parquet")
    cache.add("clip.mp4", KEY, make_labels(0), detector="test")
    assert cache.state("clip.mp4", KEY) == "current" and cache.get("clip.mp4", KEY) is not None

    # Same size, new mtime, same bytes (a copy without -p): still current, by the hash.
    os.utime(video, ns=(1, 1))
    assert cache.state("clip.mp4", KEY) == "current"
    # Same size, different bytes at the end: changed.
    video.write_bytes(b"first video " * 9_999 + b"other video ")
    assert cache.state("clip.mp4", KEY) == "changed"
    with caplog.at_level(logging.WARNING):
        assert cache.get("clip.mp4", KEY) is None
        assert cache.labels_for("clip.mp4", [0, 10], KEY) is None
    assert "changed since its face labels" in caplog.text and "clip.mp4" in caplog.text
    # An explicit file is checked instead of root / path.
    other = tmp_path / "elsewhere.mp4"
    other.write_bytes(b"first video " * 10_000)
    assert cache.state("clip.mp4", KEY, file=other) == "current"


def test_fingerprint_tells_same_content_from_changed_content(tmp_path):
    path = tmp_path / "v.bin"
    path.write_bytes(bytes(range(256)) * 1000)
    fingerprint = FileFingerprint.of(path)
    assert fingerprint.check(path) == "same"
    os.utime(path, ns=(5, 5))
    assert fingerprint.check(path) == "same content"
    path.write_bytes(bytes(range(256)) * 1000 + b"x")
    assert fingerprint.check(path) == "changed"


def test_an_old_cache_without_fingerprint_columns_is_read_as_unverified(tmp_path, caplog):
    (tmp_path / "a.mp4").write_bytes(b"video")
    row = labels_to_row(make_labels(0), "a.mp4", KEY, "mtcnn")
    old = pa.Table.from_pylist([row])
    assert "file_size" not in old.column_names
    pq.write_table(old, tmp_path / "labels.parquet")

    cache = AnnotationCache(tmp_path / "labels.parquet")
    assert cache.state("a.mp4", KEY) == "unverified"
    with caplog.at_level(logging.WARNING):
        labels = cache.get("a.mp4", KEY)
    np.testing.assert_array_equal(labels.frame_indices, [0, 10, 20, 30])
    assert "cannot be checked" in caplog.text
    cache.add("b.mp4", KEY, make_labels(1), detector="test")
    cache.save()  # written in the new schema; the old row keeps empty fingerprint columns
    table = pq.read_table(tmp_path / "labels.parquet")
    assert tuple(table.column_names) == CACHE_COLUMNS
    assert AnnotationCache(tmp_path / "labels.parquet").state("a.mp4", KEY) == "unverified"


def test_an_unreadable_cache_file_is_refused_by_name(tmp_path):
    path = tmp_path / "labels.parquet"
    path.write_bytes(b"not parquet")
    with pytest.raises(ValueError, match="labels.parquet is not a readable face-label cache"):
        AnnotationCache(path)


def test_an_output_under_a_regular_file_is_not_writable(tmp_path):
    blocker = tmp_path / "some_file"
    blocker.write_text("a file, not a folder")  # no write gets past this, not even as root
    with pytest.raises(OSError, match="cannot write the face-label cache"):
        AnnotationCache(blocker / "labels.parquet").check_writable()
    AnnotationCache(tmp_path / "new" / "labels.parquet").check_writable()
    assert (tmp_path / "new").is_dir() and not (tmp_path / "new" / "labels.parquet").exists()


def test_attach_face_labels_leaves_out_the_rows_of_replaced_videos(tmp_path, caplog):
    from datasets import Dataset

    from processing.annotation_cache import attach_face_labels

    data, elsewhere = tmp_path / "data", tmp_path / "cache"
    data.mkdir()
    for name in ("kept.mp4", "replaced.mp4"):
        (data / name).write_bytes(name.encode() * 1000)
    cache = AnnotationCache(elsewhere / "labels.parquet", root=data)  # the cache lives apart from the videos
    for i, name in enumerate(("kept.mp4", "replaced.mp4")):
        cache.add(name, KEY, make_labels(i), detector="test")
    cache.save()
    (data / "replaced.mp4").write_bytes(b"a new take" * 100)

    dataset = Dataset.from_dict({"video": [str(data / "kept.mp4"), str(data / "replaced.mp4")],
                                 "rel_path": ["kept.mp4", "replaced.mp4"]})
    with caplog.at_level(logging.WARNING):
        joined = attach_face_labels(dataset, elsewhere / "labels.parquet", KEY)
    kept, replaced = AnnotationCache(elsewhere / "labels.parquet").labels_of(joined)  # each row's joined labels
    assert kept.frame_indices.tolist() == [0, 10, 20, 30] and replaced is None
    assert "replaced.mp4 changed since its face labels" in caplog.text


def _write_frames(folder, count: int, seed: int = 0) -> None:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(1, count + 1):
        Image.fromarray(rng.integers(0, 256, (8, 12, 3), dtype=np.uint8)).save(folder / f"{i:05d}.png")


def test_a_frame_folder_is_fingerprinted_by_its_images_and_changes_with_them(tmp_path):
    from PIL import Image

    folder = tmp_path / "00001"
    _write_frames(folder, 5)
    (folder / "notes.txt").write_text("not a frame")
    fingerprint = FileFingerprint.of(folder)
    images = sorted(folder.glob("*.png"))
    assert fingerprint.size == sum(p.stat().st_size for p in images)
    assert fingerprint.mtime_ns == max(p.stat().st_mtime_ns for p in images)
    assert fingerprint.check(folder) == "same"
    (folder / "notes.txt").write_text("other text, not a frame either")
    assert fingerprint.check(folder) == "same"  # only the images count
    os.utime(images[2], ns=(10**19, 10**19))  # a touch: newer mtime, same bytes
    assert fingerprint.check(folder) == "same content"

    Image.new("RGB", (12, 8), (200, 10, 10)).save(images[2])  # a middle frame replaced by another image
    assert fingerprint.check(folder) == "changed"
    changed = FileFingerprint.of(folder)
    assert changed.sha256 != fingerprint.sha256
    _write_frames(folder, 6)  # one frame more (the first five rewritten with the same pixels)
    assert changed.check(folder) == "changed"
    more = FileFingerprint.of(folder)
    (folder / "00006.png").unlink()
    assert more.check(folder) == "changed"
    for image in folder.glob("*.png"):
        image.unlink()
    assert more.check(folder) == "changed"  # no frames left


def test_the_cache_serves_a_frame_folder_until_one_of_its_images_is_replaced(tmp_path):
    from PIL import Image

    data = tmp_path / "data"
    _write_frames(data / "Clip" / "00007", 4)
    cache = AnnotationCache(tmp_path / "labels.parquet", root=data)
    cache.add("Clip/00007", KEY, make_labels(0), detector="test")  # fingerprint taken from root / path
    assert cache.state("Clip/00007", KEY) == "current" and cache.get("Clip/00007", KEY) is not None
    Image.new("RGB", (12, 8), (0, 0, 255)).save(data / "Clip" / "00007" / "00004.png")
    assert cache.state("Clip/00007", KEY) == "changed" and cache.get("Clip/00007", KEY) is None
