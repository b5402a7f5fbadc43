# Copyright 2025 The MTCAE-DFER contributors. Licensed under the Apache License, Version 2.0.
"""In-memory video inputs of the MTCAE-DFER video processor: batching and conversion to uint8 RGB frames.

Saved next to the model as remote code with :mod:`video_processing_mtcae` (numpy and torch only).
"""

from __future__ import annotations

import os
import warnings
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


def to_uint8_rgb(video: torch.Tensor, input_data_format: str | None = None, do_convert_rgb: bool = True,
                 do_rescale: bool = True) -> tuple[torch.Tensor, bool]:
    """A time-first video (from :func:`frames_first`) -> uint8 ``(T, H, W, 3)``, and whether it was given rescaled.

    Accepts ``(T, H, W, C)``, ``(T, C, H, W)`` and grayscale ``(T, H, W)``; with ``do_convert_rgb``,
    grayscale is replicated to 3 channels and alpha dropped. Values follow transformers' ``do_rescale``
    rule (never guessed from the data): integers and, with ``do_rescale=True``, floats are pixel values in
    [0, 255]; with ``do_rescale=False`` floats are already rescaled, in [0, 1] (multiplied by 255 here, and
    the second value returned is True so that the caller rescales them back). Anything outside its range,
    NaN or infinity is refused.
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
    video, rescaled = _to_uint8(video, do_rescale)
    if video.shape[-1] != 3 and not do_convert_rgb:
        raise ValueError(f"do_convert_rgb=False keeps the video's {video.shape[-1]} channels; the model needs 3 (RGB)")
    if video.shape[-1] == 1:
        video = video.expand(-1, -1, -1, 3)
    elif video.shape[-1] == 4:
        video = video[..., :3]
    return video, rescaled


def _to_uint8(video: torch.Tensor, do_rescale: bool) -> tuple[torch.Tensor, bool]:
    if video.dtype == torch.uint8:
        return video, False
    if video.dtype == torch.bool or video.is_complex():
        raise ValueError(f"Cannot take a {video.dtype} video; pass uint8 (0-255) or float pixel values")
    if not video.is_floating_point():
        dtype = str(video.dtype).replace("torch.", "")
        video = video.to(torch.int64)  # uint16 / int32 / ... (torch lacks most ops on uint16)
        low, high = int(video.min()), int(video.max())
        if low < 0 or high > 255:
            raise ValueError(f"{dtype} video values span [{low}, {high}]; integer frames must be 8-bit "
                             "pixel values in [0, 255] (for 16-bit frames: convert, e.g. (video >> 8) as uint8)")
        return video.to(torch.uint8), False
    if not bool(torch.isfinite(video).all()):
        raise ValueError("the video contains NaN or infinite values")
    low, high = float(video.min()), float(video.max())
    top = 255.0 if do_rescale else 1.0
    if low < 0.0 or high > top:
        rule = ("with do_rescale=True float frames are pixel values in [0, 255] (pass do_rescale=False for frames "
                "already in [0, 1])" if do_rescale else "with do_rescale=False float frames must be in [0, 1]")
        raise ValueError(f"float video values span [{low:g}, {high:g}]; {rule}")
    if do_rescale and 0.0 < high < 2.0:  # an all-but-black 0-255 clip, or (likely) frames in [0, 1]
        warnings.warn("It looks like the float video is already rescaled to [0, 1] while do_rescale=True takes it "
                      "as 0-255 pixel values; pass do_rescale=False for frames in [0, 1].", stacklevel=2)
    scaled = video.double() * (1.0 if do_rescale else 255.0)
    return scaled.round().clamp(0, 255).to(torch.uint8), not do_rescale


__all__ = ["frames_first", "is_path", "is_pil_image", "make_batched", "to_uint8_rgb"]
