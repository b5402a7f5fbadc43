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

from .annotation_cache import AnnotationCache
from .prepared_cache import PreparedClipCache, PrepareReport
from .sampling_mtcae import jittered_frame_indices, sample_frame_indices

logger = logging.getLogger(__name__)

ENTRY_COLUMN = "prepared_entry"


def pick_stored_frames(stored: np.ndarray, num_source_frames: int, num_frames: int, mode: str = "uniform",
                       jitter: bool = False, generator: np.random.Generator | None = None) -> np.ndarray:
    """Positions in ``stored`` (sorted source indices) of the frames to feed the model.

    Without jitter: the processor's own sampling (every wanted frame is stored). With jitter (``uniform``
    only): one stored frame per segment, drawn by :func:`~processing.sampling_mtcae.jittered_frame_indices`
    as the on-the-fly sampler draws, so that when every source frame is stored the two paths take the same
    frames for the same draw.
    """
    if jitter:
        generator = generator if generator is not None else np.random.default_rng()
        wanted = jittered_frame_indices(num_source_frames, num_frames, generator.random(int(num_frames)), stored)
    else:
        wanted = sample_frame_indices(num_source_frames, num_frames, mode)
    positions = np.clip(np.searchsorted(stored, wanted), 0, len(stored) - 1)
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
        """``(frames or None, face labels dict, source indices)`` of the frames this transform samples.

        Raises:
            ValueError: the entry cannot be read (damaged after it was prepared), naming it.
        """
        from safetensors import safe_open

        try:
            with safe_open(entry_path, framework="pt") as entry:
                stored = entry.get_tensor("frame_indices").numpy()
                num_source = int(entry.get_tensor("num_source_frames")[0])
                positions = pick_stored_frames(stored, num_source, self.processor.num_frames,
                                               self.processor.sampling_mode, self.train, generator)
                frames = _take(entry, "frames", positions) if pixels else None
                labels = {}
                if self.face_targets and "face_boxes" in entry.keys():
                    labels = {name: _take(entry, name, positions) for name in ("face_boxes", "face_landmarks",
                                                                               "face_mask")}
                    labels["face_mask"] = labels["face_mask"].bool()  # stored as uint8
        except Exception as error:  # SafetensorError, OSError, a tensor missing
            raise ValueError(f"the prepared-clip cache entry {entry_path} cannot be read ({type(error).__name__}: "
                             f"{error}); run the command again: it prepares damaged entries anew") from error
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


def attach_prepared_entries(dataset, cache: PreparedClipCache, face_labels: AnnotationCache | None = None,
                            num_workers: int = 0, progress: bool = True) -> tuple[Any, PrepareReport]:
    """Prepare every video of ``dataset`` (once; resumable) and add the ``prepared_entry`` column.

    ``face_labels``: the cache the rows' ``face_labels`` keys find their labels in. Rows whose video cannot be
    prepared are dropped and returned in the report (``failed``), so a long job keeps going past a bad file and
    says so at the end.
    """
    labels = face_labels.labels_of(dataset) if face_labels is not None else None
    report = cache.prepare(list(dataset["video"]), labels, num_workers=num_workers, progress=progress)
    return add_prepared_entries(dataset, report), report


def add_prepared_entries(dataset, report: PrepareReport):
    """Keep the rows whose clip ``report`` prepared and add the ``prepared_entry`` column (each row's cache file)."""
    if report.failed:
        dataset = dataset.filter(lambda row: row["video"] not in report.failed)
    entries = [report.entries[video] for video in dataset["video"]]
    if ENTRY_COLUMN in dataset.column_names:
        dataset = dataset.remove_columns(ENTRY_COLUMN)
    return dataset.add_column(ENTRY_COLUMN, entries)


__all__ = ["ENTRY_COLUMN", "PreparedClipTransform", "add_prepared_entries", "attach_prepared_entries",
           "pick_stored_frames"]
