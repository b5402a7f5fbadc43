# Copyright 2025 The MTCAE-DFER contributors. Licensed under the Apache License, Version 2.0.
"""In-memory video inputs of the MTCAE-DFER video processor: batching and conversion to uint8 RGB frames.

Saved next to the model as remote code with :mod:`video_processing_mtcae` (numpy and torch only).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch


def is_path(video: Any) -> bool:
    return isinstance(video, (str, os.PathLike))


def is_pil_image(obj: Any) -> bool:
    return type(obj).__module__.startswith("PIL.") and hasattr(obj, "mode") and hasattr(obj, "size")


def make_batched(videos: Any) -> list:
    """One video or a batch of videos -> a list of videos.

    A video is a path, a ``(T, H, W, C)`` / ``(T, C, H, W)`` / ``(T, H, W)`` array or tensor, one frame
    (``(H, W, C)``, ``(H, W)``, a PIL image), or a list of frames; a 5-D array or a list of videos is a batch.
    """
    if is_path(videos) or is_pil_image(videos):
        return [videos]
    if isinstance(videos, (np.ndarray, torch.Tensor)):
        return list(videos) if videos.ndim == 5 else [videos]
    if isinstance(videos, (list, tuple)):
        if len(videos) == 0:
            raise ValueError("Got an empty list of videos")
        first = videos[0]
        if is_pil_image(first):
            return [videos]  # a list of PIL frames is one video
        if isinstance(first, (np.ndarray, torch.Tensor)) and first.ndim <= 3:
            return [videos]  # a list of frames is one video
        return list(videos)
    raise TypeError(f"Unsupported video input of type {type(videos).__name__}")


def frames_first(video: Any, do_convert_rgb: bool = True) -> torch.Tensor:
    """An in-memory video as a tensor whose first axis is time (no dtype or layout change otherwise).

    A single frame gets a time axis of 1; a list of PIL images is stacked (converted to RGB first when
    ``do_convert_rgb``); a 3-D array is one ``(H, W, C)`` frame when its last axis has 1, 3 or 4
    channels, and a grayscale ``(T, H, W)`` clip otherwise.
    """
    if isinstance(video, (list, tuple)):
        if len(video) == 0:
            raise ValueError("Got an empty list of frames")
        if all(is_pil_image(frame) for frame in video):
            video = np.stack([np.asarray(frame.convert("RGB") if do_convert_rgb else frame) for frame in video])
        else:
            video = torch.stack([torch.as_tensor(np.asarray(frame)) for frame in video])
    elif is_pil_image(video):
        video = np.asarray(video.convert("RGB") if do_convert_rgb else video)[None]
    if isinstance(video, np.ndarray):
        if video.dtype == object:
            raise ValueError("Cannot convert an object array to a video; pass frames of equal size")
        video = torch.from_numpy(np.ascontiguousarray(video))
    if not isinstance(video, torch.Tensor):
        raise TypeError(
            f"Unsupported video type {type(video).__name__}; expected a path, numpy array, torch tensor "
            "or a list of PIL images"
        )
    if video.numel() == 0:
        raise ValueError(f"Got an empty video of shape {tuple(video.shape)}")
    if video.ndim == 2:  # one grayscale frame
        return video[None]
    if video.ndim == 3 and video.shape[-1] in (1, 3, 4):
        return video[None]  # one (H, W, C) frame
    if video.ndim not in (3, 4):
        raise ValueError(f"Expected a video of shape (T, H, W, C) or (T, C, H, W), got {tuple(video.shape)}")
    return video


def to_uint8_rgb(video: torch.Tensor, input_data_format: str | None = None, do_convert_rgb: bool = True) -> torch.Tensor:
    """A time-first video (from :func:`frames_first`) -> uint8 ``(T, H, W, 3)``.

    Accepts ``(T, H, W, C)``, ``(T, C, H, W)`` and grayscale ``(T, H, W)``; with ``do_convert_rgb``,
    grayscale is replicated to 3 channels and alpha dropped. Float input in [0, 1] is scaled to [0, 255].
    """
    if video.ndim == 3:  # grayscale (T, H, W)
        video = video[..., None]
    if input_data_format in ("channels_first", "first"):
        channels_last = False
    elif input_data_format in ("channels_last", "last"):
        channels_last = True
    else:
        channels_last = video.shape[-1] in (1, 3, 4) or video.shape[1] not in (1, 3, 4)
    if not channels_last:
        video = video.permute(0, 2, 3, 1)
    if video.shape[-1] not in (1, 3, 4):
        raise ValueError(f"Expected 1, 3 or 4 channels, got a video of shape {tuple(video.shape)}")
    video = _to_uint8(video)
    if video.shape[-1] != 3 and not do_convert_rgb:
        raise ValueError(f"do_convert_rgb=False keeps the video's {video.shape[-1]} channels; the model needs 3 (RGB)")
    if video.shape[-1] == 1:
        video = video.expand(-1, -1, -1, 3)
    elif video.shape[-1] == 4:
        video = video[..., :3]
    return video


def _to_uint8(video: torch.Tensor) -> torch.Tensor:
    if video.dtype == torch.uint8:
        return video
    if video.is_floating_point():
        if video.numel() and float(video.max()) <= 1.0:
            video = video * 255.0  # float frames in [0, 1]
        return video.round().clamp(0, 255).to(torch.uint8)
    return video.clamp(0, 255).to(torch.uint8)


__all__ = ["frames_first", "is_path", "is_pil_image", "make_batched", "to_uint8_rgb"]
