# Copyright 2025 The MTCAE-DFER contributors. Licensed under the Apache License, Version 2.0.
"""Face labels of a clip: the one type every tool passes around, from the labeller to the model's targets.

Saved next to the model as remote code with :mod:`video_processing_mtcae` (numpy only).

A :class:`FaceLabels` holds, for some source frames of one clip, a face box ``[x, y, w, h]``, the
:data:`LANDMARK_NAMES` points ``(x, y)`` and a mask (False: no face on that frame), normalised to the
source frame (x / width, y / height), so they hold for any framing; ``FrameGeometry`` maps them into the
model input and back. It knows its frame indices and answers "the labels at these frames"
(:meth:`FaceLabels.at`). The face-label cache stores it as a Parquet row, and the video processor takes it
(or a dict with the same fields) as ``face_labels``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, fields, replace
from functools import cached_property
from typing import Any

import numpy as np

LANDMARK_NAMES = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")
"""The points, in this order; "left" is the smaller x in the image (as MTCNN reports it: the subject's right)."""
NUM_LANDMARKS = len(LANDMARK_NAMES)
MIRRORED_LANDMARKS = (1, 0, 2, 4, 3)
"""Where each point goes in a left-right mirrored image: the eyes swap, and so do the mouth corners."""
LABEL_FIELDS = ("frame_indices", "boxes", "landmarks", "mask")


@dataclass(frozen=True, eq=False)
class FaceLabels:
    """Face labels of some source frames of one clip, normalised to the source frame.

    Attributes:
        frame_indices: ``(L,)`` int64 source frame of each row (rows may repeat a frame: a short clip sampled
            to more frames than it has).
        boxes: ``(L, 4)`` float64 x, y, w, h.
        landmarks: ``(L, NUM_LANDMARKS, 2)`` float64 x, y in :data:`LANDMARK_NAMES` order.
        mask: ``(L,)`` bool, False where the frame has no face.
        scores: ``(L,)`` float64 detector confidence (1.0 for exact labels; 0 where no face).
        width, height: the source frame size in pixels (0: unknown).
        num_source_frames: the clip's frame count when labelled (0: unknown).
    """

    frame_indices: np.ndarray
    boxes: np.ndarray
    landmarks: np.ndarray
    mask: np.ndarray
    scores: np.ndarray | None = None
    width: int = 0
    height: int = 0
    num_source_frames: int = 0

    def __post_init__(self):
        n = len(np.asarray(self.frame_indices).reshape(-1))
        arrays = {
            "frame_indices": np.asarray(self.frame_indices, dtype=np.int64).reshape(n),
            "boxes": np.asarray(self.boxes, dtype=np.float64).reshape(n, 4),
            "landmarks": np.asarray(self.landmarks, dtype=np.float64).reshape(n, NUM_LANDMARKS, 2),
            "mask": np.asarray(self.mask, dtype=bool).reshape(n),
            "scores": (np.asarray(self.mask, dtype=np.float64) if self.scores is None
                       else np.asarray(self.scores, dtype=np.float64)).reshape(n),
        }
        for name, value in arrays.items():
            object.__setattr__(self, name, value)

    def __len__(self) -> int:
        return len(self.frame_indices)

    @classmethod
    def from_input(cls, labels: Any, frame_indices: Any = None, num_source_frames: int | None = None) -> FaceLabels:
        """Face labels as a caller gives them -> :class:`FaceLabels`.

        Args:
            labels: a :class:`FaceLabels`, or a dict / object with ``boxes`` (L, 4), ``landmarks``
                (L, NUM_LANDMARKS, 2), optional ``mask`` (L,) and optional ``frame_indices`` (L,).
            frame_indices: the frames being processed; without ``labels.frame_indices`` the rows are those
                frames when there are as many rows.
            num_source_frames: the clip's frame count; without ``frame_indices`` in the labels, rows for every
                source frame (L == num_source_frames; when unknown, any L covering the largest frame index).
        """
        if isinstance(labels, FaceLabels):
            return labels
        get = labels.get if isinstance(labels, dict) else (lambda key, default=None: getattr(labels, key, default))
        boxes = np.asarray(get("boxes"), dtype=np.float64).reshape(-1, 4)
        landmarks = np.asarray(get("landmarks"), dtype=np.float64).reshape(-1, NUM_LANDMARKS, 2)
        mask = get("mask")
        mask = np.ones(len(boxes), bool) if mask is None else np.asarray(mask, bool).reshape(-1)
        if not len(boxes) == len(landmarks) == len(mask):
            raise ValueError(f"face labels hold {len(boxes)} boxes, {len(landmarks)} landmark sets and {len(mask)} "
                             "mask entries; they must agree")
        rows = get("frame_indices")
        if rows is None:
            rows = _implicit_rows(len(boxes), frame_indices, num_source_frames)
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        if len(rows) != len(boxes):
            raise ValueError(f"face labels hold {len(boxes)} frames but {len(rows)} frame_indices")
        return cls(rows, boxes, landmarks, mask, get("scores"), int(get("width", 0) or 0), int(get("height", 0) or 0),
                   int(get("num_source_frames", 0) or 0))

    @cached_property
    def keyed(self) -> FaceLabels:
        """One row per source frame, sorted by frame; a repeated frame keeps a labelled row when it has one."""
        order = np.lexsort((~self.mask, self.frame_indices))
        sorted_frames = self.frame_indices[order]
        first = np.r_[True, sorted_frames[1:] != sorted_frames[:-1]] if len(order) else np.zeros(0, bool)
        return self.take(order[first])

    def take(self, rows: Any) -> FaceLabels:
        """The rows at positions ``rows``."""
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        return replace(self, frame_indices=self.frame_indices[rows], boxes=self.boxes[rows],
                       landmarks=self.landmarks[rows], mask=self.mask[rows], scores=self.scores[rows])

    def at(self, frame_indices: Any) -> FaceLabels:
        """The labels at these source frames, one row each; frames without a row get zeros and mask False."""
        queries = np.asarray(frame_indices, dtype=np.int64).reshape(-1)
        keyed = self.keyed
        if len(keyed) == 0:
            n = len(queries)
            return replace(self, frame_indices=queries, boxes=np.zeros((n, 4)),
                           landmarks=np.zeros((n, NUM_LANDMARKS, 2)), mask=np.zeros(n, bool), scores=np.zeros(n))
        rows = np.minimum(np.searchsorted(keyed.frame_indices, queries), len(keyed) - 1)
        found = keyed.frame_indices[rows] == queries
        picked = keyed.take(rows)
        return replace(picked, frame_indices=queries, boxes=np.where(found[:, None], picked.boxes, 0.0),
                       landmarks=np.where(found[:, None, None], picked.landmarks, 0.0), mask=picked.mask & found,
                       scores=np.where(found, picked.scores, 0.0))

    def invalid_frames(self) -> dict[int, str]:
        """``{source frame: reason}`` of the labelled rows that cannot be a face: a box or a point that is not finite,
        a box without area, or coordinates beyond [-1, 2] (not normalised to the frame)."""
        values = np.concatenate([self.boxes, self.landmarks.reshape(len(self), -1)], axis=1)
        finite = np.isfinite(values).all(axis=1)
        reasons = {}
        for row in np.flatnonzero(self.mask):
            if not finite[row]:
                reasons[int(self.frame_indices[row])] = "a box or landmark is NaN or infinite"
            elif self.boxes[row, 2] <= 0 or self.boxes[row, 3] <= 0:
                reasons[int(self.frame_indices[row])] = "the box has no area"
            elif values[row].min() < -1 or values[row].max() > 2:
                reasons[int(self.frame_indices[row])] = "coordinates beyond [-1, 2], not normalised to the frame"
        return reasons

    def masking_invalid(self) -> tuple[FaceLabels, dict[int, str]]:
        """These labels with the rows of :meth:`invalid_frames` masked (the face tasks skip those frames) and every
        non-finite value zeroed, and the reasons; the labels themselves when every labelled row is a face."""
        invalid = self.invalid_frames()
        finite = np.isfinite(self.boxes).all(axis=1) & np.isfinite(self.landmarks).all(axis=(1, 2))
        if not invalid and finite.all():
            return self, invalid
        bad = (np.isin(self.frame_indices, list(invalid)) & self.mask) | ~finite  # no NaN reaches a masked loss
        boxes, landmarks = self.boxes.copy(), self.landmarks.copy()
        boxes[bad], landmarks[bad] = 0.0, 0.0
        return replace(self, boxes=boxes, landmarks=landmarks, mask=self.mask & ~bad,
                       scores=np.where(bad, 0.0, self.scores)), invalid

    def digest(self) -> str:
        """A digest of the frames, boxes, landmarks and mask (what decides a prepared clip's face targets)."""
        digest = hashlib.sha256()
        for name in LABEL_FIELDS:
            digest.update(name.encode())
            digest.update(np.ascontiguousarray(np.asarray(getattr(self, name), dtype=np.float64)).tobytes())
        return digest.hexdigest()[:16]

    def as_dict(self) -> dict[str, Any]:
        """The fields as plain values (arrays as nested lists), e.g. for JSON or a Parquet row."""
        values = {f.name: getattr(self, f.name) for f in fields(self) if f.init}
        return {name: value.tolist() if isinstance(value, np.ndarray) else value for name, value in values.items()}


def _implicit_rows(num_rows: int, frame_indices: Any, num_source_frames: int | None) -> np.ndarray:
    """The frames of labels given without ``frame_indices``: the processed frames, or every source frame."""
    processed = None if frame_indices is None else np.asarray(frame_indices, dtype=np.int64).reshape(-1)
    if processed is not None and num_rows == len(processed):
        return processed
    if num_source_frames is not None:
        every = num_rows == num_source_frames
    else:
        every = processed is not None and num_rows > processed.max(initial=-1)
    if every:
        return np.arange(num_rows)
    clip = f" but the clip has {num_source_frames}" if num_source_frames is not None else ""
    sampled = f" ({len(processed)} frames are sampled)" if processed is not None else ""
    raise ValueError(f"face labels hold {num_rows} frames{clip}{sampled}: give one per source frame"
                     f"{' or per sampled frame' if processed is not None else ''}, or pass frame_indices with them")


__all__ = ["LABEL_FIELDS", "LANDMARK_NAMES", "MIRRORED_LANDMARKS", "NUM_LANDMARKS", "FaceLabels"]
