"""Face labels are checked where they enter training: a frame whose box or landmark is NaN, infinite, without area or
far outside the frame is masked (the face tasks skip it), named with the reason, in every resize mode; the clip is
kept. (An ``inf`` landmark in face_labels.parquet used to make the loss NaN and the message blame the learning rate,
and with face_align drop a good video as "could not be read: LinAlgError".)"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from test_training_runs import QUICK_ARGS, synthetic_root  # noqa: F401  (the shared tiny synthetic set)

from processing.annotation_cache import AnnotationCache, attach_face_labels
from processing.datasets import load_ravdess
from processing.face_labels_mtcae import FaceLabels
from processing.prepared_cache import PreparedClipCache
from processing.video_processing_mtcae import MTCAEVideoProcessor, read_video

RESIZE_MODES = ("full_frame", "shortest_edge", "face_crop", "face_align")


def _labels(num_frames: int = 8) -> FaceLabels:
    boxes = np.tile(np.float32([0.3, 0.2, 0.4, 0.5]), (num_frames, 1))
    points = np.float32([[0.4, 0.35], [0.6, 0.35], [0.5, 0.45], [0.42, 0.58], [0.58, 0.58]])
    return FaceLabels(np.arange(num_frames), boxes=boxes, landmarks=np.tile(points, (num_frames, 1, 1)),
                      mask=np.ones(num_frames, bool), scores=np.ones(num_frames, np.float32))


def test_each_kind_of_impossible_face_is_found_with_its_reason():
    labels = _labels()
    labels.landmarks[1, 2, 0] = np.inf
    labels.boxes[3, 0] = np.nan
    labels.boxes[4, 2] = 0.0  # no width
    labels.landmarks[5, 0] = (40.0, 30.0)  # pixels, not fractions of the frame
    labels.boxes[6, 0] = np.inf
    labels.mask[6] = False  # not a labelled face anyway: nothing to say
    reasons = labels.invalid_frames()
    assert sorted(reasons) == [1, 3, 4, 5]
    assert "infinite" in reasons[1] and "infinite" in reasons[3] and "no area" in reasons[4]
    assert "not normalised" in reasons[5]
    masked, same = labels.masking_invalid()
    assert same == reasons and masked.mask.tolist() == [True, False, True, False, False, False, False, True]
    assert np.isfinite(masked.boxes).all() and np.isfinite(masked.landmarks).all()
    assert _labels().masking_invalid()[0] is not None and not _labels().invalid_frames()


@pytest.mark.parametrize("resize_mode", RESIZE_MODES)
def test_an_infinite_landmark_masks_its_frame_in_every_resize_mode(synthetic_root, resize_mode):  # noqa: F811
    video = sorted(synthetic_root.rglob("*.mp4"))[0]
    frames, indices, info = read_video(video, indices=list(range(8)))
    labels = _labels()
    labels.landmarks[2, 1, 1] = np.inf
    processor = MTCAEVideoProcessor(num_frames=8, size={"height": 32, "width": 32}, resize_mode=resize_mode)
    with pytest.warns(UserWarning, match=r"face labels of frames \[2\] left out \(a box or landmark is NaN"):
        prepared = processor.prepare_frames(frames, indices, face_labels=labels,
                                            num_source_frames=info["num_source_frames"])
    out = processor.finalize(prepared["frames"], face_boxes=prepared["face_boxes"],
                             face_landmarks=prepared["face_landmarks"], face_mask=prepared["face_mask"])
    assert out["face_mask"].tolist() == [True, True, False, True, True, True, True, True]
    for name in ("pixel_values", "face_boxes", "face_landmarks"):
        assert torch.isfinite(out[name]).all(), name


def _with_an_infinite_landmark(source: Path, target: Path) -> str:
    """A copy of the synthetic set whose face-label cache holds ``inf`` in one clip's rows; that clip's path."""
    shutil.copytree(source, target)
    cache_file = target / "face_labels.parquet"
    rows = pq.read_table(cache_file).to_pylist()
    victim = rows[5]
    for frame in range(0, len(victim["landmarks"]), 3):
        victim["landmarks"][frame][1][0] = float("inf")
    pq.write_table(pa.Table.from_pylist(rows, schema=pq.read_schema(cache_file)), cache_file)
    return victim["path"]


@pytest.mark.parametrize("resize_mode", RESIZE_MODES)
def test_prepared_clips_from_a_cache_with_an_infinite_landmark_are_finite_and_kept(synthetic_root, tmp_path,  # noqa: F811
                                                                                   resize_mode, caplog):
    root = tmp_path / "set"
    victim = _with_an_infinite_landmark(synthetic_root, root)
    annotations = AnnotationCache(root / "face_labels.parquet")
    table = attach_face_labels(load_ravdess(root, num_classes=7), annotations)
    table = table.filter(lambda row: row["video"].endswith(victim))
    processor = MTCAEVideoProcessor(num_frames=8, size={"height": 32, "width": 32}, resize_mode=resize_mode)
    with caplog.at_level(logging.WARNING):
        labels = annotations.labels(victim, table[0]["face_labels"])
        assert f"{root / victim}: the face labels of frames [0, 3, 6," in caplog.text
        caplog.clear()
        annotations.labels(victim, table[0]["face_labels"])  # logged once per clip, not per read
    assert caplog.text == ""
    report = PreparedClipCache(tmp_path / "cache", processor).prepare(list(table["video"]), [labels],
                                                                       num_workers=0, progress=False)
    assert report.failed == {} and report.prepared == 1
    from safetensors.torch import load_file

    entry = load_file(report.entries[table[0]["video"]])
    assert torch.isfinite(entry["face_landmarks"].float()).all() and torch.isfinite(entry["face_boxes"].float()).all()
    assert not entry["face_mask"].bool().all()  # the bad frames are masked, the others not
    assert entry["face_mask"].bool().any()


def test_training_with_an_infinite_landmark_names_the_clip_and_does_not_diverge(synthetic_root, tmp_path,  # noqa: F811
                                                                                 caplog):
    from hub_scripts.train import parse_args, run

    root = tmp_path / "set"
    victim = _with_an_infinite_landmark(synthetic_root, root)
    with caplog.at_level(logging.WARNING):
        result = run(*parse_args(["--data_root", str(root), *QUICK_ARGS, "--max_steps", "4", "--save_steps", "4",
                                  "--eval_steps", "4", "--resize_mode", "face_align",
                                  "--prepared_cache_dir", str(tmp_path / "cache"), "--output_dir",
                                  str(tmp_path / "run")]))
    assert np.isfinite(result["test_uar"])
    summary = json.loads((tmp_path / "run" / "run_summary.json").read_text())
    assert not summary["unreadable_videos"]  # the video is fine: kept, not "could not be read: LinAlgError"
    assert f"{root / victim}: the face labels of frames" in caplog.text and "NaN or infinite" in caplog.text
    history = json.loads((tmp_path / "run" / "checkpoint-4" / "trainer_state.json").read_text())["log_history"]
    assert all(np.isfinite(entry["loss"]) for entry in history if "loss" in entry)


def test_a_non_finite_batch_blames_the_data_not_the_learning_rate():
    from hub_scripts.training.trainer import MTCAETrainer, NonFiniteTrainingError

    trainer = SimpleNamespace(state=SimpleNamespace(global_step=6))
    batch = {"pixel_values": torch.zeros(1, 3, 2, 4, 4), "face_landmarks": torch.full((1, 2, 5, 2), float("inf")),
             "labels": torch.tensor([1])}
    expected = "step 7 holds NaN or infinite face_landmarks: the data, not"
    with pytest.raises(NonFiniteTrainingError, match=expected) as err:
        MTCAETrainer.training_step(trainer, model=None, inputs=batch)
    assert "learning_rate" not in str(err.value)
