"""Face labels drawn on a frame: the one drawing of a box and the landmarks (OpenCV, imported when drawing).

Used by the synthetic set's contact sheet (:func:`processing.synthetic.save_preview`) and by the overlay video
of ``mtcae-predict``, so labels and predictions look the same everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

BOX_COLOR = (60, 220, 60)
LANDMARK_COLORS = ((255, 80, 80), (80, 160, 255), (255, 230, 60), (255, 120, 255), (60, 230, 230))
"""RGB colour of each point of :data:`~processing.face_labels_mtcae.LANDMARK_NAMES`: left eye red, right eye blue,
nose yellow, mouth left magenta, mouth right cyan."""


def draw_face_labels(image: np.ndarray, box: Sequence[float] | None, landmarks: np.ndarray | None,
                     thickness: int = 1, radius: int = 2) -> np.ndarray:
    """Draw a normalised ``[x, y, w, h]`` box and normalised ``(NUM_LANDMARKS, 2)`` landmarks on an RGB uint8 image.

    Draws in place (``image`` must be contiguous) and returns it; coordinates are clipped to the image.
    """
    import cv2

    height, width = image.shape[:2]

    def pixel(x: float, y: float) -> tuple[int, int]:
        return int(round(np.clip(x, 0, 1) * width)), int(round(np.clip(y, 0, 1) * height))

    if box is not None:
        x, y, w, h = (float(v) for v in box)
        cv2.rectangle(image, pixel(x, y), pixel(x + w, y + h), BOX_COLOR, thickness, cv2.LINE_AA)
    if landmarks is not None:
        for (px, py), color in zip(np.asarray(landmarks), LANDMARK_COLORS):
            cv2.circle(image, pixel(px, py), radius, color, -1, cv2.LINE_AA)
    return image


__all__ = ["BOX_COLOR", "LANDMARK_COLORS", "draw_face_labels"]
