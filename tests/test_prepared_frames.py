"""prepare_frames / finalize / FrameGeometry: frames prepared once (a prepared-clip cache) equal the processor's.

A frame's geometry depends only on the clip's face labels and its own source index, so frames
prepared densely once and picked later give exactly what ``__call__`` gives for the same frames,
with temporal jitter and flips, in every resize mode.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers.video_utils import VideoMetadata

from processing.decoding_mtcae import read_video
from processing.face_geometry_mtcae import FACE_ALIGN_TEMPLATE
from processing.video_processing_mtcae import MTCAEVideoProcessor, detect_face_labels

RESIZE_MODES = ("full_frame", "shortest_edge", "face_crop", "face_align")
TARGETS = ("face_boxes", "face_landmarks", "face_mask")


def _moving_face_clip(num_frames=48, height=120, width=160):
    """A bright face-like patch drifting, turning and growing, with its labels on every second frame (two
    masked). The face is large enough that face_align shrinks it, by a different factor in every frame."""
    video = np.random.default_rng(0).integers(0, 40, (num_frames, height, width, 3), dtype=np.uint8)
    centres = np.stack([60 + 0.8 * np.arange(num_frames), 56 + 0.2 * np.arange(num_frames)], -1)
    angles, sides = 0.02 * np.arange(num_frames), 36 + 0.5 * np.arange(num_frames)
    landmarks, boxes = [], []
    for t, ((cx, cy), angle, side) in enumerate(zip(centres, angles, sides)):
        half = int(side / 2)
        video[t, int(cy) - half:int(cy) + half, int(cx) - half:int(cx) + half] = 150 + t
        rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        points = (FACE_ALIGN_TEMPLATE - 0.5) * side @ rotation.T + [cx, cy]
        landmarks.append(points / [width, height])
        boxes.append([(cx - half) / width, (cy - half) / height, 2 * half / width, 2 * half / height])
    labelled = np.arange(0, num_frames, 2)
    mask = np.ones(len(labelled), bool)
    mask[[3, 10]] = False
    labels = {"frame_indices": labelled, "boxes": np.array(boxes)[labelled],
              "landmarks": np.array(landmarks)[labelled], "mask": mask}
    return video, labels


def _cached_call(processor, dense, num_source, seed):
    """What a training step on the cache does: the processor's own draws, then finalize on the stored frames."""
    generator = np.random.default_rng(seed)
    indices = processor.sample_frames(VideoMetadata(total_num_frames=num_source), temporal_jitter=True,
                                      generator=generator)
    flip = generator.random() < 0.5
    picked = torch.as_tensor(indices)
    return indices, processor.finalize(dense["frames"][picked], *(dense[key][picked] for key in TARGETS), flip=flip)


@pytest.mark.parametrize("resize_mode", RESIZE_MODES)
def test_frames_prepared_once_equal_the_processor_output(resize_mode):
    video, labels = _moving_face_clip()
    processor = MTCAEVideoProcessor(resize_mode=resize_mode, size={"height": 32, "width": 32})
    dense = processor.prepare_frames(video, np.arange(len(video)), labels)
    assert dense["frames"].dtype == torch.uint8 and dense["frames"].shape == (48, 3, 32, 32)
    assert dense["geometry"].mode == resize_mode
    if resize_mode == "face_align":  # each frame is shrunk by its own factor (antialiased first)
        zoom = np.sqrt(np.abs(np.linalg.det(dense["geometry"].matrices[:, :, :2])))
        assert zoom.max() < 0.9 and len(np.unique(zoom.round(3))) > 10
    for t in (0, 25, 47):  # a frame prepared alone is the same frame prepared with all the others
        alone = processor.prepare_frames(video[[t]], [t], labels)
        assert torch.equal(alone["frames"][0], dense["frames"][t])
        assert torch.equal(alone["face_boxes"][0], dense["face_boxes"][t])
    for seed in range(3):
        out = processor(video, face_labels=labels, temporal_jitter=True, random_flip=True,
                        generator=np.random.default_rng(seed), return_frame_indices=True)
        indices, cached = _cached_call(processor, dense, len(video), seed)
        assert out["frame_indices"][0].tolist() == indices.tolist()
        assert torch.equal(out["pixel_values"][0], cached["pixel_values"])
        for key in TARGETS:
            assert torch.equal(out[key][0], cached[key]), key
        # The geometry of those frames alone is the dense geometry's rows.
        alone = processor.frame_geometry(video.shape[1:3], indices, labels)
        np.testing.assert_array_equal(alone.matrices, dense["geometry"].take(indices).matrices)


@pytest.mark.parametrize("resize_mode", ["full_frame", "face_crop", "face_align"])
def test_frames_prepared_once_equal_the_processor_output_on_a_real_clip(clips_dir, resize_mode):
    path = str(clips_dir / "single_face.mp4")
    every_third = np.arange(0, 72, 3)
    frames, _, _ = read_video(path, indices=every_third)
    labels = dict(detect_face_labels(frames), frame_indices=every_third)
    assert labels["mask"].all()
    processor = MTCAEVideoProcessor(resize_mode=resize_mode, size={"height": 56, "width": 56})
    all_frames, indices, info = read_video(path, indices=np.arange(72))
    dense = processor.prepare_frames(all_frames, indices, labels, num_source_frames=info["num_source_frames"])
    for seed in range(2):
        out = processor(path, face_labels=labels, temporal_jitter=True, random_flip=True,
                        generator=np.random.default_rng(seed))
        _, cached = _cached_call(processor, dense, 72, seed)
        assert torch.equal(out["pixel_values"][0], cached["pixel_values"])
        for key in TARGETS:
            assert torch.equal(out[key][0], cached[key]), key


def test_face_align_frame_without_a_face_reuses_the_nearest_labelled_frame_of_the_clip():
    video, labels = _moving_face_clip()
    processor = MTCAEVideoProcessor(resize_mode="face_align", size={"height": 32, "width": 32})
    # Frames 6 and 20 are masked in the labels, 13 and 15 have none: each takes the nearest labelled frame
    # of the whole clip (by source index; the earlier one on a tie), whatever else is sampled with it.
    queries, sources = [6, 13, 15, 20, 47], [4, 12, 14, 18, 46]
    geometry = processor.frame_geometry(video.shape[1:3], queries, labels)
    own = processor.frame_geometry(video.shape[1:3], sources, labels)
    np.testing.assert_array_equal(geometry.matrices, own.matrices)
    for alone, query in zip(geometry.matrices, queries):
        np.testing.assert_array_equal(alone, processor.frame_geometry(video.shape[1:3], [query], labels).matrices[0])


def test_face_crop_covers_every_labelled_face_of_the_clip_whatever_is_sampled():
    video, labels = _moving_face_clip()
    processor = MTCAEVideoProcessor(resize_mode="face_crop", size={"height": 32, "width": 32}, face_crop_margin=0.0)
    first = processor.frame_geometry(video.shape[1:3], np.arange(0, 8), labels)
    last = processor.frame_geometry(video.shape[1:3], np.arange(40, 48), labels)
    assert first.crop == last.crop
    left, top, side = first.crop
    boxes = labels["boxes"][labels["mask"]] * [160, 120, 160, 120]
    assert left <= boxes[:, 0].min() + 0.5 and top <= boxes[:, 1].min() + 0.5
    assert left + side >= (boxes[:, 0] + boxes[:, 2]).max() - 0.5
    assert top + side >= (boxes[:, 1] + boxes[:, 3]).max() - 0.5


@pytest.mark.parametrize("resize_mode", RESIZE_MODES)
def test_labels_go_back_to_the_source_frame(resize_mode):
    video, labels = _moving_face_clip()
    processor = MTCAEVideoProcessor(resize_mode=resize_mode, size={"height": 32, "width": 32},
                                    do_center_crop=True, crop_size={"height": 28, "width": 24})
    indices = labels["frame_indices"][:6]
    geometry = processor.frame_geometry(video.shape[1:3], indices, labels)
    boxes, landmarks, mask = geometry.labels_to_input(labels["boxes"][:6], labels["landmarks"][:6], labels["mask"][:6])
    assert geometry.output_size == (28, 24)
    back_boxes, back_landmarks = geometry.labels_to_source(boxes.numpy(), landmarks.numpy())
    np.testing.assert_allclose(back_landmarks[mask.numpy()], labels["landmarks"][:6][mask.numpy()], atol=1e-5)
    if resize_mode != "face_align":  # axis-aligned: the box comes back as it was
        np.testing.assert_allclose(back_boxes[mask.numpy()], labels["boxes"][:6][mask.numpy()], atol=1e-5)


def test_geometry_warp_and_prepare_frames_refuse_what_does_not_fit():
    processor = MTCAEVideoProcessor(size={"height": 16, "width": 16})
    geometry = processor.frame_geometry((30, 40), [0, 1])
    with pytest.raises(ValueError, match="do not fit"):
        geometry.warp(torch.zeros(2, 3, 20, 40, dtype=torch.uint8))
    with pytest.raises(ValueError, match="uint8"):
        processor.prepare_frames(np.zeros((2, 30, 40, 3), np.float32), [0, 1])
    with pytest.raises(ValueError, match="frame indices"):
        processor.prepare_frames(np.zeros((2, 30, 40, 3), np.uint8), [0, 1, 2])
    assert processor.prepare_frames(np.zeros((2, 30, 40, 3), np.uint8), [0, 1])["frames"].shape == (2, 3, 16, 16)
