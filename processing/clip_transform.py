"""On-the-fly decoding for ``datasets.Dataset.set_transform``: rows of paths -> model inputs.

Each call decodes the sampled frames of each video with :class:`MTCAEVideoProcessor`, gives it the clip's
face labels (found in the face-label cache by the rows' ``rel_path`` and ``face_labels`` key), and the
processor maps the labels of exactly those frames into model-input coordinates with the same geometry as
the pixels.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .annotation_cache import FACE_LABEL_COLUMN, AnnotationCache
from .decoding_mtcae import VideoDecodeError, read_video
from .sampling_mtcae import stored_frame_indices
from .video_processing_mtcae import MTCAEVideoProcessor

logger = logging.getLogger(__name__)


class ClipTransform:
    """A batch transform for datasets made by the adapters in :mod:`processing.datasets`.

    Args:
        processor: the video processor (frame count, size, resize mode, normalisation).
        train: random temporal jitter inside the uniform segments (training augmentation).
        random_flip: with ``train``, also mirror half of the clips left-right (labels mirrored too).
        face_labels: the face-label cache the rows' ``face_labels`` keys (:func:`attach_face_labels
            <processing.annotation_cache.attach_face_labels>`) find their labels in; without it the expression
            task trains alone.
    """

    def __init__(self, processor: MTCAEVideoProcessor, train: bool = False, random_flip: bool = False,
                 face_labels: AnnotationCache | None = None):
        self.processor = processor
        self.train = train
        self.random_flip = random_flip
        self.face_labels = face_labels

    def __call__(self, batch: dict[str, list[Any]]) -> dict[str, torch.Tensor]:
        # Jitter draws from torch's global RNG, which Trainer seeds and restores on resume.
        generator = np.random.default_rng(int(torch.randint(0, 2**31 - 1, ()).item())) if self.train else None
        videos = batch["video"]
        face_labels = None
        if self.face_labels is not None and FACE_LABEL_COLUMN in batch:
            face_labels = [None if key is None else self.face_labels.labels(path, key)
                           for path, key in zip(batch["rel_path"], batch[FACE_LABEL_COLUMN])]
        encoded = self.processor(videos, face_labels=face_labels, temporal_jitter=self.train,
                                 random_flip=self.train and self.random_flip, generator=generator, return_tensors="pt")
        result = {"pixel_values": encoded["pixel_values"]}
        if "label" in batch:  # unlabelled clips (masked pretraining) have none
            result["labels"] = torch.as_tensor(batch["label"], dtype=torch.long)
        if face_labels is not None:
            result.update(
                face_boxes=encoded["face_boxes"], face_landmarks=encoded["face_landmarks"],
                face_mask=encoded["face_mask"],
            )
        return result


def find_unreadable_videos(paths: list[str], num_frames: int = 16) -> dict[str, str]:
    """Decode what training will read of every video and return ``{path: reason}`` for those that fail.

    The frames decoded are those the prepared-clip cache stores (every frame of a clip of up to
    ``num_frames`` x 4 frames, else several frames in each of the ``num_frames`` segments, the segment
    centres included), so a file whose tail is truncated is found here, before training, instead of
    stopping an epoch halfway (or the PCA start). Memory stays bounded on long clips.
    """
    def dense(metadata) -> np.ndarray:
        return stored_frame_indices(metadata.total_num_frames, num_frames)

    bad: dict[str, str] = {}
    for path in paths:
        try:
            read_video(path, sample_indices_fn=dense)
        except (VideoDecodeError, OSError, ValueError, RuntimeError) as error:
            bad[path] = str(error)
    if bad:
        logger.warning("%d unreadable video(s) left out: %s", len(bad), ", ".join(Path(p).name for p in list(bad)[:10]))
    return bad


__all__ = ["ClipTransform", "find_unreadable_videos"]
