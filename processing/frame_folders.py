# Copyright 2025 The MTCAE-DFER contributors. Licensed under the Apache License, Version 2.0.
"""Clips given as folders of frame images (DFEW, FERV39k, MAFW ship their clips this way).

This file is saved next to the model as remote code with the video processor, so it imports only
third-party packages (numpy, torch, PIL) and nothing of this package.

A frame folder is a directory whose image files (``.jpg``, ``.jpeg``, ``.png``, ``.bmp``,
``.webp``) are the frames of one clip, in the order of the NUMBERS in their names (natural sort:
``img_2.jpg`` before ``img_10.jpg``; DFEW's ``00001_00002.jpg`` sorts by clip, then frame number).
Frame index ``i`` is the ``i``-th file in that order, so the indices of a face-label cache and of
:func:`read_frame_folder` refer to the same frames, as they do for video files.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence

import numpy as np
import torch

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
FRAME_FOLDER_BACKEND = "frames"  # the ``backend`` entry of read_frame_folder's info

_NUMBERS = re.compile(r"(\d+)")


class FrameFolderError(ValueError):
    """A frame folder could not be read; the message names the folder (or file) and the reason."""

    def __init__(self, path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"Cannot read frame folder '{self.path}': {reason}")


def natural_key(name: str) -> tuple:
    """Sort key that compares the digit runs of ``name`` as numbers: "img_2" < "img_10"."""
    parts = _NUMBERS.split(name)
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part.lower()) for part in parts if part), name


def is_frame_folder(path) -> bool:
    """True when ``path`` is a str / PathLike naming an existing directory.

    Any directory counts (an empty one included), so a processor dispatching on it sends folders to
    :func:`read_frame_folder`, whose errors say what is wrong with the folder.
    """
    return isinstance(path, (str, os.PathLike)) and os.path.isdir(path)


def _image_names(folder: str) -> list[str]:
    if not os.path.isdir(folder):
        raise FrameFolderError(folder, "does not exist or is not a directory")
    entries = os.listdir(folder)
    if not entries:
        raise FrameFolderError(folder, "the folder is empty")
    names = [n for n in entries if not n.startswith(".") and n.lower().endswith(IMAGE_EXTENSIONS)
             and os.path.isfile(os.path.join(folder, n))]
    if not names:
        raise FrameFolderError(
            folder, f"no image files ({', '.join(IMAGE_EXTENSIONS)}) among its {len(entries)} entries, "
            f"e.g. {sorted(entries)[:3]}")
    return sorted(names, key=natural_key)


def list_frames(path, check_sizes: bool = True) -> list[str]:
    """The frame files of a frame folder, in frame order (natural sort of the names).

    Args:
        path: the folder.
        check_sizes: read every image's header (not its pixels) and raise when the frames differ in size.

    Returns:
        Full paths of the image files (hidden files, other files and subfolders are left out).

    Raises:
        FrameFolderError: the folder is missing, empty, holds no images, or (``check_sizes``) mixes sizes.
    """
    folder = os.fspath(path)
    files = [os.path.join(folder, name) for name in _image_names(folder)]
    if check_sizes:
        from PIL import Image

        sizes = {}
        for file in files:
            try:
                with Image.open(file) as image:
                    sizes.setdefault(image.size, file)
            except OSError as error:
                raise FrameFolderError(file, f"not a readable image ({error})") from error
        if len(sizes) > 1:
            examples = "; ".join(f"{w}x{h} e.g. {os.path.basename(f)}" for (w, h), f in sorted(sizes.items()))
            raise FrameFolderError(folder, f"frames differ in size ({examples})")
    return files


def count_frames(path) -> int:
    """Number of frame images in a frame folder (names only: no image is opened)."""
    return len(_image_names(os.fspath(path)))


def _load_rgb(file: str) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(file) as image:
            return np.asarray(image.convert("RGB"))
    except OSError as error:
        raise FrameFolderError(file, f"not a readable image ({error})") from error


def read_frame_folder(
    path,
    indices: Sequence[int] | np.ndarray | Callable[[int], np.ndarray] | None = None,
) -> tuple[torch.Tensor, np.ndarray, dict]:
    """Read frames of a frame folder, returning what ``read_video`` returns for a video file.

    Args:
        path: the frame folder.
        indices: the frame indices to read: a sequence / array (clipped to ``[0, N-1]`` like
            ``read_video``'s explicit indices; repeated indices give repeated frames, as the sampling of
            a clip shorter than the frames asked for does), or a callable ``num_source_frames -> indices``
            (e.g. ``lambda n: sample_frame_indices(n, 16)``), or ``None`` for every frame.

    Returns:
        ``(frames, indices, info)``: frames a uint8 ``(T, H, W, 3)`` RGB tensor, indices the ``(T,)`` int64
        frame indices read, info ``{"num_source_frames", "width", "height", "fps": None, "backend": "frames"}``
        (a folder of images has no frame rate).

    Raises:
        FrameFolderError: see :func:`list_frames`, or an image cannot be read.
        ValueError: ``indices`` is empty.
    """
    files = list_frames(path)
    num_source = len(files)
    if callable(indices):
        indices = indices(num_source)
    chosen = np.arange(num_source) if indices is None else np.asarray(indices, dtype=np.int64).reshape(-1)
    if chosen.size == 0:
        raise ValueError("indices must not be empty")
    chosen = np.clip(chosen, 0, num_source - 1).astype(np.int64)
    decoded = {int(i): _load_rgb(files[int(i)]) for i in np.unique(chosen)}
    frames = torch.from_numpy(np.stack([decoded[int(i)] for i in chosen]))
    info = {
        "num_source_frames": num_source,
        "width": int(frames.shape[2]),
        "height": int(frames.shape[1]),
        "fps": None,
        "backend": FRAME_FOLDER_BACKEND,
    }
    return frames, chosen, info


__all__ = ["FRAME_FOLDER_BACKEND", "FrameFolderError", "IMAGE_EXTENSIONS", "count_frames", "is_frame_folder",
           "list_frames", "natural_key", "read_frame_folder"]
