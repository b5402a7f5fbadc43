"""Model inputs from the prepared-clip cache: the ``set_transform`` that training reads.

Each row's entry (see :mod:`processing.prepared_cache`) holds uint8 frames at model resolution and
face labels in model-input coordinates. This transform picks the frames the processor would
sample (segment centres for evaluation, one frame per uniform segment with temporal jitter for
training), optionally mirrors the clip, and normalises it with the processor's ``finalize``: the
same arithmetic as the on-the-fly :class:`~processing.clip_transform.ClipTransform`, without
decoding or warping.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch

from .prepared_cache import PreparedClipCache
from .video_processing_mtcae import sample_frame_indices

logger = logging.getLogger(__name__)

ENTRY_COLUMN = "prepared_entry"


def pick_stored_frames(stored: np.ndarray, num_source_frames: int, num_frames: int, mode: str = "uniform",
                       jitter: bool = False, generator: np.random.Generator | None = None) -> np.ndarray:
    """Positions in ``stored`` (sorted source indices) of the frames to feed the model.

    Without jitter: the processor's own sampling (every wanted frame is stored). With jitter
    (``uniform`` only): one stored frame per segment, drawn as the on-the-fly sampler draws, so
    that when every source frame is stored the two paths take the same frames for the same draw.
    """
    n, t = int(num_source_frames), int(num_frames)
    if not jitter:
        wanted = sample_frame_indices(n, t, mode)
    else:
        generator = generator if generator is not None else np.random.default_rng()
        draws = generator.random(t)
        segment = np.arange(t)
        starts, ends = (segment * n) // t, ((segment + 1) * n) // t
        wanted = np.empty(t, dtype=np.int64)
        for i in range(t):
            low, high = np.searchsorted(stored, [starts[i], max(ends[i], starts[i] + 1)])
            candidates = stored[low:high] if high > low else stored[[min(low, len(stored) - 1)]]
            wanted[i] = candidates[min(int(draws[i] * len(candidates)), len(candidates) - 1)]
    positions = np.searchsorted(stored, wanted)
    positions = np.clip(positions, 0, len(stored) - 1)
    if not np.array_equal(stored[positions], wanted):
        raise ValueError("the prepared entry lacks frames this sampling needs: it was prepared for another setting")
    return positions


class PreparedClipTransform:
    """A batch transform for rows with a ``prepared_entry`` column (the entry file's path).

    Args:
        cache: the :class:`PreparedClipCache` the rows were prepared into.
        train: temporal jitter inside the uniform segments (training augmentation).
        random_flip: with ``train``, mirror half of the clips left-right (face labels mirrored too).
        face_targets: return ``face_boxes`` / ``face_landmarks`` / ``face_mask`` (entries prepared with labels).
    """

    def __init__(self, cache: PreparedClipCache, train: bool = False, random_flip: bool = False,
                 face_targets: bool = True):
        self.cache = cache
        self.processor = cache.processor
        self.train = train
        self.random_flip = random_flip
        self.face_targets = face_targets

    def _read(self, entry_path: str, generator: np.random.Generator | None, pixels: bool = True):
        """``(frames or None, face labels dict, source indices)`` of the frames this transform samples."""
        from safetensors import safe_open

        with safe_open(entry_path, framework="pt") as entry:
            stored = entry.get_tensor("frame_indices").numpy()
            num_source = int(entry.get_tensor("num_source_frames")[0])
            positions = pick_stored_frames(stored, num_source, self.processor.num_frames,
                                           self.processor.sampling_mode, self.train, generator)
            frames = _take(entry, "frames", positions) if pixels else None
            labels = {}
            if self.face_targets and "face_boxes" in entry.keys():
                labels = {name: _take(entry, name, positions) for name in ("face_boxes", "face_landmarks", "face_mask")}
                labels["face_mask"] = labels["face_mask"].bool()  # stored as uint8
        return frames, labels, stored[positions]

    def clip(self, entry_path: str, generator: np.random.Generator | None) -> dict[str, torch.Tensor]:
        """Model inputs of one prepared clip."""
        frames, labels, indices = self._read(entry_path, generator)
        flip = self.train and self.random_flip and generator.random() < 0.5
        result = self.processor.finalize(frames, flip=flip, **labels)
        result["frame_indices"] = torch.from_numpy(indices)
        return result

    def targets(self, entry_path: str) -> dict[str, torch.Tensor] | None:
        """The face targets of one prepared clip (evaluation sampling), ``None`` without labels."""
        _, labels, _ = self._read(entry_path, None, pixels=False)
        return labels or None

    def __call__(self, batch: dict[str, list[Any]]) -> dict[str, torch.Tensor]:
        # Jitter draws from torch's global RNG, which Trainer seeds and restores on resume.
        generator = np.random.default_rng(int(torch.randint(0, 2**31 - 1, ()).item())) if self.train else None
        clips = [self.clip(path, generator) for path in batch[ENTRY_COLUMN]]
        result = {"pixel_values": torch.stack([c["pixel_values"] for c in clips])}
        if "label" in batch:  # unlabelled clips (masked pretraining) have none
            result["labels"] = torch.as_tensor(batch["label"], dtype=torch.long)
        if self.face_targets and all("face_boxes" in c for c in clips):
            for name in ("face_boxes", "face_landmarks", "face_mask"):
                result[name] = torch.stack([c[name] for c in clips])
        return result


def _take(entry, name: str, positions: np.ndarray) -> torch.Tensor:
    """Rows ``positions`` of a memory-mapped tensor, reading contiguous runs only."""
    piece = entry.get_slice(name)
    low, high = int(positions.min()), int(positions.max()) + 1
    block = piece[low:high]
    return block[torch.from_numpy(positions - low)]


def attach_prepared_entries(dataset, cache: PreparedClipCache, num_workers: int = 0, progress: bool = True):
    """Prepare every video of ``dataset`` (once; resumable) and add the ``prepared_entry`` column.

    Rows whose video cannot be prepared are dropped and returned in the report (``failed``), so a
    long job keeps going past a bad file and says so at the end.
    """
    report = cache.prepare(list(dataset["video"]), face_labels_of(dataset), num_workers=num_workers,
                           progress=progress)
    if report.failed:
        dataset = dataset.filter(lambda row: row["video"] not in report.failed)
    return add_prepared_entries(dataset, cache), report


def add_prepared_entries(dataset, cache: PreparedClipCache):
    """Add the ``prepared_entry`` column (each row's cache file) to rows whose clips are already prepared."""
    entries = [str(cache.entry_path(video, labels)) for video, labels in zip(dataset["video"], face_labels_of(dataset))]
    if ENTRY_COLUMN in dataset.column_names:
        dataset = dataset.remove_columns(ENTRY_COLUMN)
    return dataset.add_column(ENTRY_COLUMN, entries)


def face_labels_of(dataset) -> list[dict | None]:
    """The rows' joined face labels (``face_*`` columns), one dict or ``None`` per row."""
    if "face_boxes" not in dataset.column_names:
        return [None] * len(dataset)
    columns = dataset.select_columns(["face_frame_indices", "face_boxes", "face_landmarks", "face_mask"])[:]
    return [
        None if len(boxes) == 0 else {"frame_indices": indices, "boxes": boxes, "landmarks": marks, "mask": mask}
        for indices, boxes, marks, mask in zip(columns["face_frame_indices"], columns["face_boxes"],
                                               columns["face_landmarks"], columns["face_mask"])
    ]


__all__ = ["ENTRY_COLUMN", "PreparedClipTransform", "add_prepared_entries", "attach_prepared_entries", "face_labels_of",
           "pick_stored_frames"]
