# Copyright 2025 The MTCAE-DFER contributors. Licensed under the Apache License, Version 2.0.
"""Which source frames a clip gives the model: every frame-sampling rule of MTCAE-DFER, stated once.

Saved next to the model as remote code with :mod:`video_processing_mtcae` (numpy only). Decoding, the
prepared-clip cache, training's temporal jitter, the test-time views and the sliding windows of
``mtcae-predict`` all call these functions, so "the cache gives the frames the processor gives" holds by
construction.

A clip of ``N`` frames sampled to ``T`` frames is cut into ``T`` segments; segment ``i`` holds the frames
``[floor(i N / T), floor((i + 1) N / T))`` (:func:`segment_bounds`; a segment is empty when ``N < T``, and
then stands for its start frame). From each segment:

- ``"uniform"`` takes the centre, ``floor((i + 0.5) N / T)``; view ``v`` of ``V`` test-time views takes the
  frame at the fraction ``(v + 0.5) / V`` of the segment (:func:`temporal_view_indices`, ``V = 1`` is the centre);
- training's jitter takes a random frame of the segment (:func:`jittered_frame_indices`);
- ``"stride"`` (the authors' notebook) ignores the segments: stride ``max(1, N // T)`` from frame 0.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

SAMPLING_MODES = ("uniform", "stride")
DEFAULT_FRAMES_PER_SEGMENT = 4


def _check_counts(num_source_frames: int, num_frames: int) -> tuple[int, int]:
    n, t = int(num_source_frames), int(num_frames)
    if n < 1:
        raise ValueError(f"num_source_frames must be >= 1, got {num_source_frames}")
    if t < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    return n, t


def segment_bounds(num_source_frames: int, num_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """``(starts, ends)``, each ``(T,)`` int64: segment ``i`` is ``[floor(i N / T), floor((i + 1) N / T))``."""
    n, t = _check_counts(num_source_frames, num_frames)
    segment = np.arange(t, dtype=np.int64)
    return (segment * n) // t, ((segment + 1) * n) // t


def temporal_view_indices(num_source_frames: int, num_frames: int = 16, num_views: int = 1) -> np.ndarray:
    """``(V, T)`` int64: view ``v`` takes ``floor((i + (v + 0.5) / V) N / T)`` of segment ``i``; ``V = 1`` is the
    segment centres (``"uniform"`` sampling). Every view spans the whole clip."""
    n, t = _check_counts(num_source_frames, num_frames)
    if int(num_views) < 1:
        raise ValueError(f"num_views must be >= 1, got {num_views}")
    offsets = (np.arange(int(num_views))[:, None] + 0.5) / int(num_views)
    indices = np.floor((np.arange(t)[None, :] + offsets) * n / t).astype(np.int64)
    return np.clip(indices, 0, n - 1)


def jittered_frame_indices(num_source_frames: int, num_frames: int, draws: np.ndarray,
                           available: np.ndarray | None = None) -> np.ndarray:
    """One frame per segment, drawn by ``draws`` (``(T,)`` uniform in [0, 1)): training's temporal jitter.

    Segment ``i`` offers its frames (only those in ``available``, sorted source indices, when given: the
    frames a prepared-clip entry stores) and ``draws[i]`` picks the ``floor(draws[i] * count)``-th. An empty
    segment offers its start frame (with ``available``: the nearest stored frame at or after it). With every
    frame available both paths take the same frame for the same draw.
    """
    n, t = _check_counts(num_source_frames, num_frames)
    starts, ends = segment_bounds(n, t)
    ends = np.maximum(ends, starts + 1)
    available = np.arange(n, dtype=np.int64) if available is None else np.asarray(available, dtype=np.int64)
    low, high = np.searchsorted(available, starts), np.searchsorted(available, ends)
    empty = high <= low
    low = np.where(empty, np.minimum(low, len(available) - 1), low)
    count = np.where(empty, 1, high - low)
    picked = low + np.minimum((np.asarray(draws, dtype=np.float64) * count).astype(np.int64), count - 1)
    return available[picked]


def sample_frame_indices(num_source_frames: int, num_frames: int = 16, mode: str = "uniform", jitter: bool = False,
                         generator: np.random.Generator | None = None) -> np.ndarray:
    """Indices of the ``num_frames`` frames to take from a clip of ``num_source_frames`` frames.

    Args:
        num_source_frames: number of frames N in the clip (>= 1).
        num_frames: number of frames T to return.
        mode: ``"uniform"`` (segment centres) or ``"stride"`` (stride ``max(1, N // T)`` from frame 0).
        jitter: ``"uniform"`` only: a random frame inside each segment instead of its centre (training).
        generator: numpy generator for the jitter (a fresh default one when ``None``); one ``random(T)`` draw.

    Returns:
        ``(T,)`` int64 indices in ``[0, N-1]``, non-decreasing; they repeat when ``N < T``.
    """
    n, t = _check_counts(num_source_frames, num_frames)
    if mode == "uniform" and jitter:
        generator = generator if generator is not None else np.random.default_rng()
        return jittered_frame_indices(n, t, generator.random(t))
    if mode == "uniform":
        return temporal_view_indices(n, t, 1)[0]
    if mode == "stride":
        return np.clip(np.arange(t, dtype=np.int64) * max(1, n // t), 0, n - 1)
    raise ValueError(f"Unknown sampling mode {mode!r}; expected one of {SAMPLING_MODES}")


def stored_frame_indices(num_source_frames: int, num_frames: int = 16,
                         frames_per_segment: int = DEFAULT_FRAMES_PER_SEGMENT) -> np.ndarray:
    """The frames a prepared-clip entry keeps: sorted, unique, int64.

    Every frame of a clip of at most ``num_frames * frames_per_segment`` frames; else, in each segment,
    ``frames_per_segment`` evenly spaced frames plus the frame of every deterministic sampling (the
    segment centre, the ``"stride"`` frame), so evaluation always finds its frames and the jitter draws one
    of ``frames_per_segment`` (+1) frames per segment.
    """
    n, t = _check_counts(num_source_frames, num_frames)
    k = int(frames_per_segment)
    if k < 1:
        raise ValueError(f"frames_per_segment must be >= 1, got {frames_per_segment}")
    if n <= t * k:
        return np.arange(n, dtype=np.int64)
    starts, ends = (bound[:, None] for bound in segment_bounds(n, t))
    spaced = starts + np.floor((np.arange(k)[None, :] + 0.5) * (ends - starts) / k).astype(np.int64)
    deterministic = [sample_frame_indices(n, t, mode) for mode in SAMPLING_MODES]
    return np.unique(np.concatenate([spaced.reshape(-1), *deterministic])).astype(np.int64)


def window_frame_indices(spans: Sequence[tuple[int, int]], num_frames: int, mode: str = "uniform") -> list[np.ndarray]:
    """The source frames each window ``[start, end)`` gives the model: ``num_frames`` sampled over the window."""
    return [start + sample_frame_indices(end - start, num_frames, mode) for start, end in spans]


__all__ = ["DEFAULT_FRAMES_PER_SEGMENT", "SAMPLING_MODES", "jittered_frame_indices", "sample_frame_indices",
           "segment_bounds", "stored_frame_indices", "temporal_view_indices", "window_frame_indices"]
