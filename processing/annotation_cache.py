"""The face-label cache: one Parquet table of per-frame boxes, 5 landmarks and masks per video.

Rows are keyed by ``(path, sampler_key)``. ``path`` is the video's POSIX path relative to the
dataset root (absolute when no root applies). ``sampler_key`` names the frames the row holds:
``"all"`` (every decoded frame, e.g. written by the synthetic renderer, which knows exact labels)
or ``"<mode>:<num_frames>"`` such as ``"uniform:16"`` (only the frames that sampler picks).
Coordinates are normalised to the SOURCE frame (x / width, y / height), so they stay valid for
any resize mode; the video processor maps them into model-input coordinates.

The file is plain Parquet, so ``datasets.Dataset.from_parquet(path)`` reads it too.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

NUM_LANDMARKS = 5
LANDMARK_NAMES = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")
ALL_FRAMES = "all"

CACHE_COLUMNS = (
    "path",
    "sampler_key",
    "detector",
    "width",
    "height",
    "num_source_frames",
    "frame_indices",
    "boxes",
    "landmarks",
    "mask",
    "scores",
)


def sampler_key(mode: str, num_frames: int) -> str:
    """Key of the frames a sampler picks, e.g. ``sampler_key("uniform", 16) == "uniform:16"``."""
    if mode == ALL_FRAMES:
        return ALL_FRAMES
    return f"{mode}:{int(num_frames)}"


@dataclass
class FaceLabels:
    """Per-frame face labels for a list of frames, coordinates normalised to the source frame."""

    frame_indices: np.ndarray  # (N,) int64
    boxes: np.ndarray  # (N, 4) float32, x, y, w, h
    landmarks: np.ndarray  # (N, 5, 2) float32, x, y
    mask: np.ndarray  # (N,) bool, False where no face was found
    scores: np.ndarray  # (N,) float32, detector confidence (1.0 for exact labels)
    width: int = 0
    height: int = 0
    num_source_frames: int = 0

    def __post_init__(self):
        n = len(self.frame_indices)
        self.frame_indices = np.asarray(self.frame_indices, dtype=np.int64).reshape(n)
        self.boxes = np.asarray(self.boxes, dtype=np.float32).reshape(n, 4)
        self.landmarks = np.asarray(self.landmarks, dtype=np.float32).reshape(n, NUM_LANDMARKS, 2)
        self.mask = np.asarray(self.mask, dtype=bool).reshape(n)
        self.scores = np.asarray(self.scores, dtype=np.float32).reshape(n)

    def select(self, indices: Sequence[int]) -> "FaceLabels":
        """Labels for the given source frame indices; frames this row does not hold get mask False."""
        position = {int(f): i for i, f in enumerate(self.frame_indices)}
        rows = [position.get(int(f), -1) for f in indices]
        found = np.array([r >= 0 for r in rows], dtype=bool)
        take = np.array([max(r, 0) for r in rows], dtype=np.int64)
        if len(self.frame_indices) == 0:
            n = len(rows)
            return FaceLabels(np.asarray(indices), np.zeros((n, 4)), np.zeros((n, 5, 2)), np.zeros(n, bool),
                              np.zeros(n), self.width, self.height, self.num_source_frames)
        boxes = np.where(found[:, None], self.boxes[take], 0.0)
        landmarks = np.where(found[:, None, None], self.landmarks[take], 0.0)
        return FaceLabels(
            frame_indices=np.asarray(indices, dtype=np.int64),
            boxes=boxes,
            landmarks=landmarks,
            mask=self.mask[take] & found,
            scores=np.where(found, self.scores[take], 0.0),
            width=self.width,
            height=self.height,
            num_source_frames=self.num_source_frames,
        )

    def to_row(self, path: str, key: str, detector: str) -> dict:
        return {
            "path": str(path),
            "sampler_key": key,
            "detector": detector,
            "width": int(self.width),
            "height": int(self.height),
            "num_source_frames": int(self.num_source_frames),
            "frame_indices": self.frame_indices.tolist(),
            "boxes": self.boxes.tolist(),
            "landmarks": self.landmarks.tolist(),
            "mask": self.mask.tolist(),
            "scores": self.scores.tolist(),
        }

    @classmethod
    def from_row(cls, row: dict) -> "FaceLabels":
        return cls(
            frame_indices=np.asarray(row["frame_indices"]),
            boxes=np.asarray(row["boxes"], dtype=np.float32) if len(row["boxes"]) else np.zeros((0, 4)),
            landmarks=np.asarray(row["landmarks"], dtype=np.float32) if len(row["landmarks"]) else np.zeros((0, 5, 2)),
            mask=np.asarray(row["mask"], dtype=bool),
            scores=np.asarray(row["scores"], dtype=np.float32),
            width=int(row["width"]),
            height=int(row["height"]),
            num_source_frames=int(row["num_source_frames"]),
        )


class AnnotationCache:
    """A Parquet-backed map ``(path, sampler_key) -> FaceLabels`` that can be resumed and extended.

    Args:
        path: the ``.parquet`` file; it need not exist yet.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._rows: dict[tuple[str, str], dict] = {}
        if self.path.exists():
            import pyarrow.parquet as pq

            for row in pq.read_table(self.path).to_pylist():
                self._rows[(row["path"], row["sampler_key"])] = row

    def __len__(self) -> int:
        return len(self._rows)

    def __contains__(self, key: tuple[str, str]) -> bool:
        return key in self._rows

    def keys(self) -> Iterable[tuple[str, str]]:
        return self._rows.keys()

    def add(self, path: str, key: str, labels: FaceLabels, detector: str) -> None:
        self._rows[(str(path), key)] = labels.to_row(path, key, detector)

    def get(self, path: str, key: str | None = None) -> FaceLabels | None:
        """The row for ``(path, key)``, else the path's ``"all"`` row, else ``None``."""
        for candidate in ([key] if key else []) + [ALL_FRAMES]:
            row = self._rows.get((str(path), candidate))
            if row is not None:
                return FaceLabels.from_row(row)
        return None

    def labels_for(self, path: str, frame_indices: Sequence[int], key: str | None = None) -> FaceLabels | None:
        """Labels of exactly ``frame_indices`` of ``path`` (mask False for frames the cache lacks)."""
        labels = self.get(path, key)
        return None if labels is None else labels.select(frame_indices)

    def save(self) -> Path:
        """Write atomically (temp file + rename), so an interrupted job never leaves a torn cache."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        rows = [self._rows[k] for k in sorted(self._rows)]
        schema = pa.schema(
            [
                ("path", pa.string()),
                ("sampler_key", pa.string()),
                ("detector", pa.string()),
                ("width", pa.int32()),
                ("height", pa.int32()),
                ("num_source_frames", pa.int32()),
                ("frame_indices", pa.list_(pa.int32())),
                ("boxes", pa.list_(pa.list_(pa.float32()))),
                ("landmarks", pa.list_(pa.list_(pa.list_(pa.float32())))),
                ("mask", pa.list_(pa.bool_())),
                ("scores", pa.list_(pa.float32())),
            ]
        )
        table = pa.Table.from_pylist(rows, schema=schema)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, suffix=".parquet.tmp")
        os.close(fd)
        try:
            pq.write_table(table, tmp)
            os.replace(tmp, self.path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
        return self.path


__all__ = ["ALL_FRAMES", "AnnotationCache", "CACHE_COLUMNS", "FaceLabels", "LANDMARK_NAMES", "sampler_key"]
