"""Test-time multi-view averaging equals the mean of independently computed single-view softmax outputs."""

import numpy as np
import pytest
import torch
from mtcae_test_utils import tiny_config
from test_frame_folders import _write_folder, _write_lossless_video

from hub_scripts.inference.multiview import (
    MultiViewArguments,
    build_views,
    multiview_probabilities,
    predict_multiview,
    spatial_crops,
)
from modeling_mtcae import MTCAEForVideoClassification
from processing.sampling_mtcae import temporal_view_indices
from processing.video_processing_mtcae import MTCAEVideoProcessor, sample_frame_indices

NUM_FRAMES, SIZE = 4, 32


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return MTCAEForVideoClassification(tiny_config()).eval()


@pytest.fixture(scope="module")
def processor():
    return MTCAEVideoProcessor(size={"height": SIZE, "width": SIZE}, num_frames=NUM_FRAMES)


def _clip(num=23, height=40, width=56, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (num, height, width, 3), dtype=np.uint8)


def _softmax(model, processor, frames: np.ndarray, **kwargs) -> np.ndarray:
    """One view through the plain processor + model path."""
    with torch.no_grad():
        logits = model(pixel_values=processor(frames, **kwargs)["pixel_values"]).logits
    return logits.softmax(-1)[0].numpy()


def test_two_by_two_views_average_the_four_single_view_softmaxes(model, processor):
    clip = _clip()
    n, width, height = len(clip), clip.shape[2], clip.shape[1]
    expected = []
    for v in range(2):
        # Temporal view v of 2: the frame at (v + 0.5) / 2 of each of the 4 segments.
        indices = [int(np.floor((i + (v + 0.5) / 2) * n / NUM_FRAMES)) for i in range(NUM_FRAMES)]
        for left in (0, width - height):  # the two squares of the short side, at both ends of the long side
            expected.append(_softmax(model, processor, clip[indices][:, :, left:left + height]))
    mean, per_view = multiview_probabilities(model, processor, clip, temporal_views=2, spatial_views=2)
    np.testing.assert_allclose(per_view, np.stack(expected), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(mean, np.mean(expected, axis=0), rtol=1e-5, atol=1e-6)
    assert not np.allclose(expected[0], expected[3])  # the views really differ
    assert mean.shape == (model.config.num_labels,) and np.isclose(mean.sum(), 1.0)


def test_one_by_one_view_is_the_plain_processor_and_model(model, processor, tmp_path):
    clip = _clip(num=9)
    video = _write_lossless_video(tmp_path / "clip.mkv", clip)
    folder = _write_folder(tmp_path / "clip", clip)
    plain = _softmax(model, processor, str(video))
    np.testing.assert_allclose(plain, _softmax(model, processor, clip), rtol=1e-6, atol=1e-7)
    for source in (clip, str(video), folder):
        mean, per_view = multiview_probabilities(model, processor, source)
        np.testing.assert_allclose(mean, plain, rtol=1e-6, atol=1e-7)
        assert per_view.shape == (1, model.config.num_labels)
    assert np.array_equal(temporal_view_indices(37, 16, 1)[0], sample_frame_indices(37, 16, "uniform"))


def test_flip_views_are_the_frame_and_its_mirror(model, processor):
    clip = _clip(seed=1)
    indices = sample_frame_indices(len(clip), NUM_FRAMES)
    expected = [_softmax(model, processor, clip[indices]), _softmax(model, processor, clip[indices][:, :, ::-1])]
    mean, per_view = multiview_probabilities(model, processor, clip, spatial_views=2, spatial_mode="flip")
    np.testing.assert_allclose(per_view, np.stack(expected), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(mean, np.mean(expected, axis=0), rtol=1e-5, atol=1e-6)


def test_face_targets_follow_each_view(processor):
    clip = _clip(num=8, height=40, width=60)
    # One face per frame, normalised to the source frame: x 24-36 px, y 10-22 px.
    labels = {"boxes": np.tile([[0.4, 0.25, 0.2, 0.3]], (8, 1)),
              "landmarks": np.tile([[[0.45, 0.35], [0.55, 0.35], [0.5, 0.42], [0.46, 0.48], [0.54, 0.48]]], (8, 1, 1)),
              "mask": np.ones(8, bool)}
    crops, _ = build_views(processor, clip, spatial_views=3, face_labels=labels)  # lefts 0, 10, 20 of side 40
    for s, left in enumerate((0, 10, 20)):
        box = crops["face_boxes"][s, 0].numpy() * 40  # model input = the 40-px crop, normalised
        np.testing.assert_allclose(box, [24 - left, 10, 12, 12], atol=1e-4)
        assert crops["face_mask"][s].all()
    flips, _ = build_views(processor, clip, spatial_views=2, spatial_mode="flip", face_labels=labels)
    normal, mirrored = flips["face_boxes"][0, 0].numpy(), flips["face_boxes"][1, 0].numpy()
    np.testing.assert_allclose(mirrored, [1 - normal[0] - normal[2], *normal[1:]], atol=1e-6)
    points = flips["face_landmarks"].numpy()
    np.testing.assert_allclose(points[1, 0, 0], [1 - points[0, 0, 1, 0], points[0, 0, 1, 1]], atol=1e-6)  # eyes swap
    outside = dict(labels, boxes=np.tile([[0.02, 0.25, 0.1, 0.3]], (8, 1)))  # x 1-7 px: left of the last crop
    crops, _ = build_views(processor, clip, spatial_views=3, face_labels=outside)
    assert crops["face_mask"][0].all() and not crops["face_mask"][2].any()
    # Labels for some frames only (frame_indices): the view's frames 1, 3, 5, 7 are found, or get mask False.
    for rows, found in (([1, 3, 5, 7], True), ([0, 2, 4, 6], False)):
        some = {key: value[rows] for key, value in labels.items()} | {"frame_indices": rows}
        inputs, indices = build_views(processor, clip, face_labels=some)
        assert indices.tolist() == [[1, 3, 5, 7]] and bool(inputs["face_mask"].all()) is found
    with pytest.raises(ValueError, match="hold 4 frames but the clip has 8"):
        build_views(processor, clip, face_labels={key: value[:4] for key, value in labels.items()})


def test_face_crop_framing_is_the_same_in_a_crop_that_holds_the_face(model):
    clip = _clip(num=8, height=40, width=60)
    labels = {"boxes": np.tile([[0.25, 0.25, 0.25, 0.375]], (8, 1)), "landmarks": np.zeros((8, 5, 2)),
              "mask": np.ones(8, bool)}  # x 15-30, y 10-25 px; the face square (margin 0) lies in crop lefts 0 and 10
    processor = MTCAEVideoProcessor(size={"height": SIZE, "width": SIZE}, num_frames=NUM_FRAMES,
                                    resize_mode="face_crop", face_crop_margin=0.0)
    inputs, _ = build_views(processor, clip, spatial_views=3, face_labels=labels)
    assert torch.equal(inputs["pixel_values"][0], inputs["pixel_values"][1])
    assert not torch.equal(inputs["pixel_values"][0], inputs["pixel_values"][2])  # the last crop cuts the face


def test_predict_multiview_batches_views_of_several_videos(model, processor):
    clips = [_clip(seed=s, num=10 + s) for s in range(3)]
    got = predict_multiview(model, processor, clips, temporal_views=2, spatial_views=2, batch_size=3)
    expected = np.stack([multiview_probabilities(model, processor, c, 2, 2)[0] for c in clips])
    assert got.shape == (3, model.config.num_labels)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_views_are_checked_and_recorded():
    assert spatial_crops(40, 40, 2) == [(0, 0, 40), (0, 0, 40)]  # square frames: the peers' crops coincide
    assert spatial_crops(60, 40, 2) == [(0, 0, 40), (0, 20, 40)]  # portrait: along the height
    assert MultiViewArguments(2, 2).to_results() == {"test_temporal_views": 2, "test_spatial_views": 2,
                                                     "test_spatial_mode": "crops"}
    with pytest.raises(ValueError, match="1 or 2 spatial views"):
        MultiViewArguments(1, 3, "flip")
    with pytest.raises(ValueError, match="at least one"):
        MultiViewArguments(0, 1)
    with pytest.raises(ValueError, match="spatial_mode"):
        MultiViewArguments(1, 1, "zoom")
