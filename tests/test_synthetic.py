"""The built-in synthetic DFER set: real videos, exact labels, determinism, RAVDESS loading."""

import json
from pathlib import Path

import av
import numpy as np
import pytest

from processing.annotation_cache import ALL_FRAMES, AnnotationCache
from processing.datasets import RAVDESS_7_CLASSES, load_ravdess
from processing.synthetic import (
    SYNTHETIC_CLASSES,
    SYNTHETIC_EMOTION_CODES,
    generate_synthetic_dfer,
    save_preview,
)

TINY = dict(num_actors=2, clips_per_class=1, num_frames=16, size=(112, 144), fps=25, seed=0,
            num_frames_jitter=0.0, progress=False)


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory) -> Path:
    return generate_synthetic_dfer(tmp_path_factory.mktemp("synthetic") / "set", num_workers=2, **TINY)


def _decode(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def test_layout_and_manifest(tiny_root):
    files = sorted(p.relative_to(tiny_root).as_posix() for p in tiny_root.rglob("*.mp4"))
    assert len(files) == 2 * 7
    expected = {f"Actor_{a:02d}/02-01-{SYNTHETIC_EMOTION_CODES[e]}-01-01-01-{a:02d}.mp4"
                for a in (1, 2) for e in SYNTHETIC_CLASSES}
    assert set(files) == expected
    info = json.loads((tiny_root / "synthetic_info.json").read_text())
    assert sorted(info["files"]) == files
    assert info["settings"]["num_actors"] == 2


def test_videos_decode_with_exact_labels(tiny_root):
    cache = AnnotationCache(tiny_root / "face_labels.parquet")
    assert len(cache) == 14
    for path in sorted(tiny_root.rglob("*.mp4")):
        rel = path.relative_to(tiny_root).as_posix()
        assert (rel, ALL_FRAMES) in cache
        labels = cache.get(rel, ALL_FRAMES)
        frames = _decode(path)
        assert len(frames) == labels.num_source_frames == 16
        assert frames[0].shape == (112, 144, 3)
        assert (labels.width, labels.height) == (144, 112)
        np.testing.assert_array_equal(labels.frame_indices, np.arange(16))
        assert labels.mask.all() and np.allclose(labels.scores, 1.0)

        x, y, w, h = labels.boxes.T
        assert (x >= 0).all() and (y >= 0).all() and (x + w <= 1).all() and (y + h <= 1).all()
        assert (w > 0.1).all() and (h > 0.2).all()
        lx, ly = labels.landmarks[..., 0], labels.landmarks[..., 1]
        assert ((lx >= x[:, None]) & (lx <= (x + w)[:, None]) & (ly >= y[:, None]) & (ly <= (y + h)[:, None])).all()
        assert (lx[:, 0] < lx[:, 1]).all(), "left eye must have the smaller x"
        assert (lx[:, 3] < lx[:, 4]).all(), "mouth left must have the smaller x"
        assert (ly[:, 0] < ly[:, 2]).all() and (ly[:, 2] < ly[:, 3]).all(), "eyes above nose above mouth"


def test_face_is_rendered_inside_the_box(tiny_root):
    # The box centre (face) must look different from the frame corners (background).
    cache = AnnotationCache(tiny_root / "face_labels.parquet")
    path = next(tiny_root.rglob("*.mp4"))
    labels = cache.get(path.relative_to(tiny_root).as_posix())
    frame = _decode(path)[0].astype(np.float32)
    x, y, w, h = labels.boxes[0]
    cx, cy = int((x + w / 2) * 144), int((y + h / 2) * 112)
    nose = labels.landmarks[0, 2] * np.array([144, 112])
    assert abs(nose[0] - cx) < w * 144 * 0.25
    assert frame[cy - 2:cy + 3, cx - 2:cx + 3].std() < 40  # skin is smooth


def test_deterministic_and_independent_of_workers(tiny_root, tmp_path):
    again = generate_synthetic_dfer(tmp_path / "again", num_workers=0, **TINY)
    for path in sorted(tiny_root.rglob("*.mp4")):
        rel = path.relative_to(tiny_root)
        assert path.read_bytes() == (again / rel).read_bytes(), rel
    first = AnnotationCache(tiny_root / "face_labels.parquet")
    second = AnnotationCache(again / "face_labels.parquet")
    assert set(first.keys()) == set(second.keys())
    for rel, key in first.keys():
        a, b = first.get(rel, key), second.get(rel, key)
        np.testing.assert_array_equal(a.boxes, b.boxes)
        np.testing.assert_array_equal(a.landmarks, b.landmarks)


def test_skips_complete_set_and_regenerates_on_new_settings(tmp_path):
    settings = dict(TINY, num_actors=1)
    root = generate_synthetic_dfer(tmp_path / "set", num_workers=0, **settings)
    clip = next(root.rglob("*.mp4"))
    before = clip.read_bytes()
    stamp = clip.stat().st_mtime_ns
    generate_synthetic_dfer(root, num_workers=0, **settings)
    assert clip.stat().st_mtime_ns == stamp, "a complete set must not be regenerated"
    generate_synthetic_dfer(root, num_workers=0, **dict(settings, seed=1))
    assert clip.read_bytes() != before, "another seed gives other videos"
    assert len(list(root.rglob("*.mp4"))) == 7


def test_loads_through_load_ravdess(tiny_root):
    dataset = load_ravdess(tiny_root, num_classes=7)
    assert len(dataset) == 14
    assert dataset.features["label"].names == list(RAVDESS_7_CLASSES) == list(SYNTHETIC_CLASSES)
    assert sorted(set(dataset["subject"])) == ["01", "02"]
    code_to_label = {code: SYNTHETIC_CLASSES.index(name) for name, code in SYNTHETIC_EMOTION_CODES.items()}
    for row in dataset:
        assert row["label"] == code_to_label[row["emotion_code"]]
        assert row["subject"] == row["rel_path"][len("Actor_"):len("Actor_") + 2]
        assert Path(row["video"]).is_file()
    cache = AnnotationCache(tiny_root / "face_labels.parquet")
    labels = cache.labels_for(dataset[0]["rel_path"], [0, 5, 15])
    assert labels is not None and labels.mask.all()


def test_preview_png(tiny_root, tmp_path):
    out = save_preview(tiny_root, tmp_path / "preview.png", frames_per_clip=3)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
