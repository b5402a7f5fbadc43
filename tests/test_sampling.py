"""The one frame-sampling module and the one face-label type, against computations written out by hand."""

import numpy as np
import pytest

from modeling_mtcae import MTCAEConfig
from processing.drawing import LANDMARK_COLORS
from processing.face_geometry_mtcae import crop_geometry, mirror_face_labels
from processing.face_labels_mtcae import LANDMARK_NAMES, MIRRORED_LANDMARKS, NUM_LANDMARKS, FaceLabels
from processing.sampling_mtcae import (
    jittered_frame_indices,
    sample_frame_indices,
    segment_bounds,
    stored_frame_indices,
    temporal_view_indices,
    window_frame_indices,
)


@pytest.mark.parametrize("n, t", [(37, 16), (16, 16), (5, 16), (300, 16), (1, 4)])
def test_segments_centres_and_views_follow_the_written_rule(n, t):
    starts, ends = segment_bounds(n, t)
    assert starts.tolist() == [i * n // t for i in range(t)] and ends.tolist() == [(i + 1) * n // t for i in range(t)]
    centres = [min(int(np.floor((i + 0.5) * n / t)), n - 1) for i in range(t)]
    assert sample_frame_indices(n, t).tolist() == centres == temporal_view_indices(n, t, 1)[0].tolist()
    views = temporal_view_indices(n, t, 3)
    assert views.tolist() == [[min(int(np.floor((i + (v + 0.5) / 3) * n / t)), n - 1) for i in range(t)]
                              for v in range(3)]
    assert sample_frame_indices(n, t, "stride").tolist() == [min(i * max(1, n // t), n - 1) for i in range(t)]


@pytest.mark.parametrize("n", [9, 40, 64, 301])
def test_jitter_draws_one_frame_per_segment_and_the_cache_draws_the_same_frame(n):
    rng = np.random.default_rng(n)
    for _ in range(20):
        draws = rng.random(16)
        starts, ends = segment_bounds(n, 16)
        by_hand = [s + min(int(d * max(e - s, 1)), max(e - s, 1) - 1) for s, e, d in zip(starts, ends, draws)]
        every = jittered_frame_indices(n, 16, draws)
        assert every.tolist() == by_hand
        assert jittered_frame_indices(n, 16, draws, np.arange(n)).tolist() == by_hand  # every frame stored
        stored = stored_frame_indices(n, 16, 4)
        picked = jittered_frame_indices(n, 16, draws, stored)
        assert np.isin(picked, stored).all()  # a prepared entry always holds the drawn frame
        assert all(s <= p < max(e, s + 1) for s, e, p in zip(starts, ends, picked)) or n < 16


def test_the_generator_draws_once_per_clip_as_before():
    first, second = np.random.default_rng(7), np.random.default_rng(7)
    jittered = sample_frame_indices(50, 8, jitter=True, generator=first)
    assert jittered.tolist() == jittered_frame_indices(50, 8, second.random(8)).tolist()
    assert first.random() == second.random()  # both consumed exactly 8 draws


def test_stored_frames_hold_every_deterministic_sampling_and_windows_are_sampled_inside_themselves():
    stored = stored_frame_indices(500, 16, 4)
    for mode in ("uniform", "stride"):
        assert np.isin(sample_frame_indices(500, 16, mode), stored).all()
    spans = [(0, 60), (30, 90), (100, 103)]
    for (start, end), indices in zip(spans, window_frame_indices(spans, 16)):
        assert indices.tolist() == (start + sample_frame_indices(end - start, 16)).tolist()


def _labels() -> FaceLabels:
    boxes = np.array([[0.1, 0.2, 0.3, 0.4], [0.2, 0.2, 0.2, 0.2], [0.5, 0.5, 0.1, 0.1]])
    landmarks = np.arange(3 * NUM_LANDMARKS * 2, dtype=np.float64).reshape(3, NUM_LANDMARKS, 2) / 40
    return FaceLabels(frame_indices=[8, 2, 2], boxes=boxes, landmarks=landmarks, mask=[True, False, True])


def test_labels_at_frames_find_their_rows_and_mask_frames_without_one():
    labels = _labels()
    at = labels.at([2, 5, 8, 2])
    assert at.frame_indices.tolist() == [2, 5, 8, 2] and at.mask.tolist() == [True, False, True, True]
    np.testing.assert_array_equal(at.boxes[0], labels.boxes[2])  # frame 2's labelled row, not its masked one
    np.testing.assert_array_equal(at.boxes[1], np.zeros(4))
    np.testing.assert_array_equal(at.landmarks[2], labels.landmarks[0])
    assert FaceLabels([], np.zeros((0, 4)), np.zeros((0, NUM_LANDMARKS, 2)), []).at([0, 1]).mask.tolist() == [0, 0]


def test_labels_from_a_dict_need_rows_for_the_sampled_frames_or_every_frame():
    plain = {"boxes": np.full((4, 4), 0.25), "landmarks": np.full((4, NUM_LANDMARKS, 2), 0.5)}
    assert FaceLabels.from_input(plain, [3, 6, 9, 12]).frame_indices.tolist() == [3, 6, 9, 12]
    assert FaceLabels.from_input(plain, num_source_frames=4).frame_indices.tolist() == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="face labels hold 4 frames but the clip has 8"):
        FaceLabels.from_input(plain, num_source_frames=8)
    assert FaceLabels.from_input(_labels()) is not None


def test_mirroring_and_cropping_labels_follow_the_pixels():
    labels = _labels()
    boxes, landmarks, mask = mirror_face_labels(labels.boxes, labels.landmarks, labels.mask)
    np.testing.assert_allclose(boxes[0], [1 - 0.1 - 0.3, 0.2, 0.3, 0.4])
    np.testing.assert_allclose(landmarks[0, 0], [1 - labels.landmarks[0, 1, 0], labels.landmarks[0, 1, 1]])
    assert not boxes[1].any() and not landmarks[1].any()  # a frame without a face stays zero
    again = mirror_face_labels(*mirror_face_labels(labels.boxes, labels.landmarks, labels.mask))
    np.testing.assert_allclose(again[0][mask], labels.boxes[mask])  # mirroring twice gives the labels back
    # A 40-px square at x 20 of a 60 x 40 frame: x' = (x * 60 - 20) / 40.
    boxes, _, mask = crop_geometry((40, 60), [0, 1, 2], (20, 0, 40)).map_labels(labels.boxes, labels.landmarks,
                                                                                  labels.mask)
    np.testing.assert_allclose(boxes[2], [(0.5 * 60 - 20) / 40, 0.5, 0.1 * 60 / 40, 0.1])
    assert mask.tolist() == [True, False, True]  # the first face (6-24 px) overlaps the crop; the second has none
    left_of_crop = labels.boxes * [1, 1, 0.2, 1]  # the first face now spans 6-9.6 px
    assert not crop_geometry((40, 60), [0, 1, 2], (20, 0, 40)).map_labels(left_of_crop, labels.landmarks,
                                                                             labels.mask)[2][0]


def test_the_landmarks_are_named_counted_and_mirrored_in_one_place():
    assert NUM_LANDMARKS == len(LANDMARK_NAMES) == len(LANDMARK_COLORS) == MTCAEConfig().num_landmarks
    assert sorted(MIRRORED_LANDMARKS) == list(range(NUM_LANDMARKS))
    assert [MIRRORED_LANDMARKS[i] for i in MIRRORED_LANDMARKS] == list(range(NUM_LANDMARKS))  # an involution
