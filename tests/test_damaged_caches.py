"""A cache entry that cannot be read is treated as missing and made again, with a line that says so, never a raw
traceback: prepared clips, encoder features and face-label rows. (A prepared entry cut to half its size used to be
counted "already in the cache" and then crash training with ``SafetensorError: incomplete metadata``.)"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from safetensors.torch import load_file
from test_training_runs import QUICK_ARGS, synthetic_root  # noqa: F401  (the shared tiny synthetic set)

from processing.annotation_cache import AnnotationCache, attach_face_labels
from processing.datasets import load_ravdess
from processing.prepared_cache import PreparedClipCache, entry_damage
from processing.prepared_clips import PreparedClipTransform, attach_prepared_entries
from processing.video_processing_mtcae import MTCAEVideoProcessor


def _cut(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _entries(folder: Path) -> list[Path]:
    return sorted(path for path in folder.rglob("*.safetensors") if not path.name.startswith("."))


def _table(root: Path, limit: int = 3):
    table = load_ravdess(root, num_classes=7).select(range(limit))
    return attach_face_labels(table, AnnotationCache(root / "face_labels.parquet"))


def _processor() -> MTCAEVideoProcessor:
    return MTCAEVideoProcessor(num_frames=4, size={"height": 32, "width": 32}, resize_mode="full_frame")


def test_a_cut_prepared_entry_is_prepared_again_and_said_so(synthetic_root, tmp_path, caplog):  # noqa: F811
    videos = [str(path) for path in sorted(synthetic_root.rglob("*.mp4"))[:3]]
    cache = PreparedClipCache(tmp_path / "cache", _processor())
    first = cache.prepare(videos, num_workers=0, progress=False)
    entry = Path(first.entries[videos[1]])
    whole = {name: tensor.clone() for name, tensor in load_file(entry).items()}  # not a map of the file cut below
    _cut(entry)
    assert entry_damage(entry) is not None
    with caplog.at_level(logging.WARNING):
        again = cache.prepare(videos, num_workers=0, progress=False)
    assert (again.prepared, again.repaired, again.reused) == (1, 1, 2)
    assert "1 of them damaged entries prepared again" in again.summary()
    assert str(entry) in caplog.text and videos[1] in caplog.text
    again_tensors = load_file(entry)  # the same entry as the first time, whole again
    assert again_tensors.keys() == whole.keys()
    for name, tensor in whole.items():
        torch.testing.assert_close(again_tensors[name], tensor, rtol=0, atol=0)


def test_an_entry_damaged_after_preparing_is_named_when_read(synthetic_root, tmp_path):  # noqa: F811
    cache = PreparedClipCache(tmp_path / "cache", _processor())
    table, _ = attach_prepared_entries(_table(synthetic_root), cache, progress=False)
    entry = Path(table[0]["prepared_entry"])
    _cut(entry)
    with pytest.raises(ValueError, match=f"entry {entry} cannot be read.*prepares damaged entries anew"):
        PreparedClipTransform(cache)(table[:1])


def test_training_after_an_entry_was_cut_prepares_it_again(synthetic_root, tmp_path, caplog):  # noqa: F811
    from hub_scripts.train import parse_args, run

    common = ["--data_root", str(synthetic_root), *QUICK_ARGS, "--max_steps", "1", "--save_steps", "1",
              "--eval_steps", "1", "--prepared_cache_dir", str(tmp_path / "cache")]
    run(*parse_args([*common, "--output_dir", str(tmp_path / "first")]))
    victim = _entries(tmp_path / "cache")[5]
    _cut(victim)
    with caplog.at_level(logging.WARNING):
        result = run(*parse_args([*common, "--output_dir", str(tmp_path / "second")]))
    assert result["test_uar"] >= 0
    assert f"prepared-clip cache entry {victim}" in caplog.text and "preparing it again" in caplog.text
    assert entry_damage(victim) is None


def test_a_cut_encoder_feature_entry_is_encoded_again(synthetic_root, tmp_path, caplog):  # noqa: F811
    from mtcae_test_utils import tiny_config

    from modeling_mtcae import MTCAEForVideoClassification
    from processing.feature_cache import EncoderFeatureCache

    config = tiny_config(freeze_encoder=True, num_labels=7)
    height, width = config.image_size
    processor = MTCAEVideoProcessor(num_frames=config.num_frames, size={"height": height, "width": width})
    cache = PreparedClipCache(tmp_path / "cache", processor)
    table, _ = attach_prepared_entries(_table(synthetic_root), cache, progress=False)
    inputs = PreparedClipTransform(cache)
    features = EncoderFeatureCache(tmp_path / "cache", MTCAEForVideoClassification(config).eval(), dtype="float32")
    assert features.fill(table, inputs, batch_size=2, progress=False) == 3
    entry = table[1]["prepared_entry"]
    tokens = features.load(entry).clone()
    _cut(features.feature_path(entry))
    with caplog.at_level(logging.WARNING):
        assert features.fill(table, inputs, batch_size=2, progress=False) == 1  # that one only
    assert "encoder feature cache entry" in caplog.text and "encoding it again" in caplog.text
    torch.testing.assert_close(features.load(entry), tokens)


def test_a_damaged_face_label_row_is_treated_as_missing_and_labelled_again(synthetic_root, tmp_path,  # noqa: F811
                                                                          caplog):
    import shutil

    import pyarrow as pa

    from hub_scripts.annotate import main as annotate

    root = tmp_path / "set"
    for clip in sorted(synthetic_root.rglob("*.mp4"))[:3]:
        (root / clip.parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copy2(clip, root / clip.parent.name / clip.name)
    cache_file = root / "labels.parquet"
    command = ["--data_root", str(root), "--output", str(cache_file), "--num_frames", "4", "--workers", "1",
               "--no_progress"]
    assert annotate(command) == 0
    rows = pq.read_table(cache_file).to_pylist()
    damaged = rows[1]
    damaged["landmarks"] = damaged["landmarks"][:2]  # a list cut short: no longer one entry per labelled frame
    pq.write_table(pa.Table.from_pylist(rows, schema=pq.read_schema(cache_file)), cache_file)
    cache = AnnotationCache(cache_file)
    path, key = damaged["path"], damaged["sampler_key"]
    assert cache.state(path, key) == "damaged"
    with caplog.at_level(logging.WARNING):
        assert cache.get(path, key) is None  # no traceback: treated as missing
    assert f"the row of {path}" in caplog.text and "cannot be read" in caplog.text
    table = attach_face_labels(load_ravdess(root, num_classes=7), cache)
    assert sum(label is None for label in table["face_labels"]) == 1
    assert annotate(command) == 0  # labels that one again
    labels = AnnotationCache(cache_file).get(path, key)
    assert labels is not None and labels.landmarks.shape == (4, 5, 2) and len(labels.frame_indices) == 4
    assert np.isfinite(labels.landmarks).all()
