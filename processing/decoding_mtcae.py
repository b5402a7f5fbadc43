# Copyright 2025 The MTCAE-DFER contributors. Licensed under the Apache License, Version 2.0.
"""Video decoding for MTCAE-DFER (PyAV, or torchcodec when it loads): only the sampled frames are decoded.

Saved next to the model as remote code with :mod:`video_processing_mtcae`: third-party imports only
(numpy, torch, transformers; ``av`` and ``torchcodec`` imported when a file is decoded).

Frame indices are positions in presentation order of the decoded frames (what a plain
``for frame in container.decode(video=0)`` loop enumerates), so a label cache written for
``"uniform:16"`` and the pixels decoded here always refer to the same frames; which frames a clip gives
is :mod:`sampling_mtcae`'s.
"""

from __future__ import annotations

import logging
import os
import struct
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .frame_folders import FRAME_FOLDER_BACKEND, FrameFolderError, is_frame_folder, read_frame_folder
from .sampling_mtcae import sample_frame_indices

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".flv", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".3gp")
VIDEO_BACKENDS = ("pyav", "torchcodec", "auto")
# FFmpeg demuxers of still images: a file they open is a picture, whatever its name says.
IMAGE_DEMUXERS = ("image2",)

logger = logging.getLogger(__name__)


class VideoDecodeError(ValueError):
    """A video could not be opened or decoded; the message names the file and the reason."""

    def __init__(self, path: Any, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"Cannot decode video '{self.path}': {reason}")


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


def ffmpeg_path(path: str | os.PathLike) -> str:
    """The path to hand FFmpeg: absolute, so that a name such as ``12:30.mp4`` or ``file:2.mp4`` is read as a file,
    not as a protocol (FFmpeg reads ``NAME:`` at the start of a path as one)."""
    return os.path.abspath(os.fspath(path))


def _check_path(path: str | os.PathLike) -> str:
    path = os.fspath(path)
    if not os.path.exists(path):
        raise VideoDecodeError(path, "file does not exist")
    if os.path.isdir(path):
        raise VideoDecodeError(path, "is a directory, not a video file")
    if os.path.getsize(path) == 0:
        raise VideoDecodeError(path, "file is empty (0 bytes)")
    return path


@dataclass
class _StreamIndex:
    """What one demux pass learns about a video stream: frame count, sorted pts (None when the container
    lacks them or repeats them) and keyframe positions."""

    count: int = 0
    pts: list[int] = field(default_factory=list)
    keyframe_pts: list[int] = field(default_factory=list)
    has_all_pts: bool = True

    def sorted_pts(self) -> list[int] | None:
        return sorted(self.pts) if self.has_all_pts and len(set(self.pts)) == len(self.pts) else None

    def keyframes(self) -> list[int]:
        pts_sorted = self.sorted_pts()
        if pts_sorted is None:
            return [0] if self.count else []
        position = {p: i for i, p in enumerate(pts_sorted)}
        return sorted(position[p] for p in self.keyframe_pts)


def _pyav_index(container, streams) -> dict[int, _StreamIndex]:
    """Demux (no decoding) every given video stream once; ``{stream.index: _StreamIndex}``.

    Packets the container marks as discarded (edit lists) decode to no frame, so they are left out.
    """
    index = {stream.index: _StreamIndex() for stream in streams}
    for packet in container.demux(*streams):
        if packet.size == 0 or getattr(packet, "is_discard", False) or packet.stream.index not in index:
            continue
        entry = index[packet.stream.index]
        entry.count += 1
        if packet.pts is None:
            entry.has_all_pts = False
            continue
        entry.pts.append(packet.pts)
        if packet.is_keyframe:
            entry.keyframe_pts.append(packet.pts)
    return index


def _main_video_stream(container, index: dict[int, _StreamIndex]):
    """The longest video stream (most frames); on a tie FFmpeg's "best" stream, then the first."""
    best = container.streams.best("video")
    return max(container.streams.video,
               key=lambda stream: (index[stream.index].count, stream is best, -stream.index))


# ---- display orientation (phone videos) -----------------------------------------------------


def display_orientation(frame) -> tuple[bool, bool, bool]:
    """``(transpose, flip_rows, flip_cols)`` that show a decoded PyAV frame upright, from its display matrix.

    FFmpeg's display matrix maps a decoded pixel ``(p, q)`` to ``(a p + c q, b p + d q)`` in the shown
    frame (image axes, y down); for the quarter turns and mirrors that phones and editors write, that is a
    transpose when ``a == 0`` followed by mirrors given by the signs. Other angles are left as decoded.
    """
    for side_data in frame.side_data:
        if getattr(side_data.type, "name", "") != "DISPLAYMATRIX":
            continue
        a, b, _, c, d = (v / 65536.0 for v in struct.unpack("=9i", bytes(side_data))[:5])
        if abs(a) < 1e-3 and abs(d) < 1e-3 and abs(abs(b) - 1) < 1e-3 and abs(abs(c) - 1) < 1e-3:
            return True, b < 0, c < 0
        if abs(b) < 1e-3 and abs(c) < 1e-3 and abs(abs(a) - 1) < 1e-3 and abs(abs(d) - 1) < 1e-3:
            return False, d < 0, a < 0
        warnings.warn(f"display matrix {[round(v, 3) for v in (a, b, c, d)]} is not a quarter turn; frames are "
                      "used as decoded", stacklevel=2)
    return False, False, False


def orient(image: np.ndarray, orientation: tuple[bool, bool, bool]) -> np.ndarray:
    """Apply :func:`display_orientation`'s ``(transpose, flip_rows, flip_cols)`` to an ``(H, W, C)`` image."""
    transpose, flip_rows, flip_cols = orientation
    if transpose:
        image = image.swapaxes(0, 1)
    if flip_rows:
        image = image[::-1]
    if flip_cols:
        image = image[:, ::-1]
    return image


def frame_to_rgb(frame, reformatter) -> np.ndarray:
    """A decoded PyAV frame as an upright RGB ``(H, W, 3)`` uint8 array.

    ``reformatter``: one ``av.video.reformatter.VideoReformatter`` for all frames of a stream. It keeps
    its swscale context, where ``frame.to_ndarray(format="rgb24")`` builds a new one for every frame
    (most of the conversion's time on small frames); the pixels are the same.
    """
    return orient(reformatter.reformat(frame, format="rgb24").to_ndarray(), display_orientation(frame))


def _reformatter():
    from av.video.reformatter import VideoReformatter

    return VideoReformatter()


def _iter_sampled_by_pts(container, stream, wanted: list[int], pts_sorted: list[int], keyframes: list[int],
                         seek_min_gap: int) -> Iterator[tuple[int, np.ndarray]]:
    """Decode the frames at positions ``wanted`` (sorted), feeding packets to the decoder one by one; yields
    ``(position, RGB frame)`` in order as each is decoded.

    Packets of frames that are not wanted are decoded with ``skip_frame="NONREF"``: the decoder
    drops them when no other frame references them (most B-frames) and decodes them otherwise, so
    every wanted frame still gets exactly the pixels a full decode gives. Only wanted frames are
    converted to RGB. When a keyframe at or before the next target lies more than
    ``seek_min_gap`` frames ahead of the decoder, the demuxer seeks to it.
    """
    codec, reformatter = stream.codec_context, _reformatter()
    position = {p: i for i, p in enumerate(pts_sorted)}
    wanted_set, done = set(wanted), set()
    packets = None
    last_decoded = -1  # position of the last frame the decoder produced

    def receive(decoded) -> list[tuple[int, np.ndarray]]:
        nonlocal last_decoded
        found = []
        for frame in decoded:
            index = position.get(frame.pts)
            if index is None:  # a frame the demuxer index does not know (e.g. edit-list leftovers)
                continue
            last_decoded = index
            if index in wanted_set and index not in done:
                done.add(index)
                found.append((index, frame_to_rgb(frame, reformatter)))
        return found

    for target in wanted:
        if target in done:
            continue
        keyframe = max((k for k in keyframes if k <= target), default=0)
        if packets is None or keyframe - last_decoded > seek_min_gap:
            container.seek(pts_sorted[keyframe], stream=stream, backward=True, any_frame=False)
            packets = container.demux(stream)
        while target not in done:
            packet = next(packets, None)
            if packet is None or packet.size == 0:
                # End of stream: drain the decoder. Every wanted frame after the last seek has been
                # fed undropped, so the ones still missing are not decodable (corrupt tail).
                codec.skip_frame = "DEFAULT"
                yield from receive(codec.decode(None))
                return
            index = position.get(packet.pts)
            codec.skip_frame = "DEFAULT" if index in wanted_set and index not in done else "NONREF"
            yield from receive(codec.decode(packet))
    codec.skip_frame = "DEFAULT"


def _iter_sampled_sequentially(container, stream, wanted: list[int]) -> Iterator[tuple[int, np.ndarray]]:
    """Without usable timestamps: decode from the start, counting frames (never seeks or skips)."""
    wanted_set, last, reformatter = set(wanted), wanted[-1], _reformatter()
    container.seek(0)
    for index, frame in enumerate(container.decode(stream)):
        if index in wanted_set:
            yield index, frame_to_rgb(frame, reformatter)
        if index >= last:
            break


def _fill_missing(path: str, frames: dict[int, np.ndarray], wanted: list[int]) -> None:
    """A stream can hold fewer decodable frames than packets (corrupt tail): reuse the nearest decoded frame."""
    if not frames:
        raise VideoDecodeError(path, "no frame could be decoded")
    decoded = np.array(sorted(frames))
    missing = [i for i in wanted if i not in frames]
    if missing:
        warnings.warn(f"{path}: frames {missing} could not be decoded; using the nearest decoded frames instead.",
                      stacklevel=2)
        for i in missing:
            frames[i] = frames[int(decoded[np.abs(decoded - i).argmin()])]


def _open_pyav(path: str):
    import av

    try:
        return av.open(ffmpeg_path(path))
    except Exception as error:  # av.error.InvalidDataError, PermissionError, ...
        raise VideoDecodeError(path, f"not a readable video container ({type(error).__name__}: {error})") from error


def _index_main_stream(path: str, container):
    """Refuse what is not a video, demux every video stream once, and pick the main one."""
    import av

    if not container.streams.video:
        raise VideoDecodeError(path, "the file has no video stream")
    demuxer = container.format.name
    if demuxer in IMAGE_DEMUXERS or demuxer.endswith("_pipe"):
        raise VideoDecodeError(path, f"is a still image ({container.format.long_name}), not a video")
    try:
        index = _pyav_index(container, list(container.streams.video))
    except av.error.FFmpegError as error:
        raise VideoDecodeError(path, f"demuxing failed ({error})") from error
    stream = _main_video_stream(container, index)
    entry = index[stream.index]
    if entry.count == 0:
        raise VideoDecodeError(path, "the video stream has no frames")
    if demuxer == "gif" and entry.count == 1:
        raise VideoDecodeError(path, "is a still image (a one-frame GIF), not a video")
    if len(index) > 1:
        counts = ", ".join(f"#{i}: {e.count}" for i, e in index.items())
        logger.info("%s has %d video streams (frames per stream %s); using #%d, the longest", path, len(index),
                    counts, stream.index)
    return stream, entry


def _stream_info(stream, entry: _StreamIndex, num_video_streams: int) -> dict:
    """``info`` of a PyAV stream, with each frame's presentation time (s, from the first frame) when known."""
    pts = entry.sorted_pts()
    fps = float(stream.average_rate) if stream.average_rate else 0.0
    timestamps = None
    if pts is not None and stream.time_base:
        timestamps = (np.asarray(pts, dtype=np.float64) - pts[0]) * float(stream.time_base)
    if timestamps is not None and len(timestamps) > 1:
        duration = float(2 * timestamps[-1] - timestamps[-2])  # the last frame lasts as long as the one before
    else:
        duration = entry.count / fps if fps else None
    return {
        "num_source_frames": entry.count,
        "width": stream.codec_context.width,
        "height": stream.codec_context.height,
        "fps": fps,
        "backend": "pyav",
        "stream_index": stream.index,
        "num_video_streams": num_video_streams,
        "timestamps": timestamps,
        "duration": duration,
    }


def _read_frames_pyav(path: str, indices_fn: Callable[[dict], np.ndarray], seek_min_gap: int = 8):
    """Decode only what the sampled frames need with PyAV, from the main video stream, shown upright.

    Frames are converted to RGB only when sampled; unwanted frames that no other frame references
    are not decoded at all; keyframes are sought to when that skips more than ``seek_min_gap``
    frames. The decoder keeps PyAV's threading defaults (slice threads): frame threading was
    slower on a busy machine and parallelism across clips comes from DataLoader workers.
    """
    import av

    container = _open_pyav(path)
    try:
        stream, entry = _index_main_stream(path, container)
        info = _stream_info(stream, entry, len(container.streams.video))
        indices = np.asarray(indices_fn(info), dtype=np.int64)
        wanted = sorted(set(indices.tolist()))
        frames = dict(_iter_sampled(container, stream, entry, wanted, seek_min_gap))
    except VideoDecodeError:
        raise
    except av.error.FFmpegError as error:
        raise VideoDecodeError(path, f"decoding failed ({error})") from error
    finally:
        container.close()
    _fill_missing(path, frames, wanted)
    video = torch.from_numpy(np.stack([frames[int(i)] for i in indices]))
    info.update(height=int(video.shape[1]), width=int(video.shape[2]))  # as shown (display matrix applied)
    return video, indices, info


def _iter_sampled(container, stream, entry: _StreamIndex, wanted: list[int], seek_min_gap: int = 8):
    pts_sorted = entry.sorted_pts()
    if pts_sorted is not None:
        return _iter_sampled_by_pts(container, stream, wanted, pts_sorted, entry.keyframes(), seek_min_gap)
    return _iter_sampled_sequentially(container, stream, wanted)


def stream_video_frames(path: str | os.PathLike, indices: Sequence[int]) -> Iterator[tuple[int, np.ndarray]]:
    """``(index, upright RGB (H, W, 3) uint8 frame)`` for each of ``indices`` (sorted, distinct) of the main video
    stream, in order, decoded in one pass with PyAV as :func:`read_video` decodes them and handed over one by one
    (long videos never sit in memory whole). Frames that cannot be decoded (a corrupt tail) are left out.

    Raises:
        VideoDecodeError: the file is missing, not a video, or decoding fails.
    """
    import av

    path = _check_path(path)
    container = _open_pyav(path)
    try:
        stream, entry = _index_main_stream(path, container)
        yield from _iter_sampled(container, stream, entry, [int(i) for i in indices])
    except av.error.FFmpegError as error:
        raise VideoDecodeError(path, f"decoding failed ({error})") from error
    finally:
        container.close()


def _pyav_stream(path: str, stream_index: int | None = None):
    """``(main video stream index or None, display orientation)`` as the PyAV path decodes the file: the longest
    stream when there are several (else ``None``: the only one), and the first frame's display matrix when asked
    (``stream_index`` given, or ``-1`` for the main stream)."""
    container = _open_pyav(path)
    try:
        main = _index_main_stream(path, container)[0].index if len(container.streams.video) > 1 else None
        if stream_index is None:
            return main, None
        stream = container.streams.video[0] if main is None else container.streams[main]
        frame = next(container.decode(stream), None)
    finally:
        container.close()
    return main, (False, False, False) if frame is None else display_orientation(frame)


def _upright(path: str, video: torch.Tensor, rotation: float | None) -> torch.Tensor:
    """torchcodec's frames shown as the PyAV path shows them: torchcodec >= 0.11 turns them by the display matrix's
    angle (``metadata.rotation``) but drops its mirror, an older one applies nothing; undo that, apply the matrix."""
    stored = torch.rot90(video, k=(-round((rotation or 0.0) / 90)) % 4, dims=(1, 2))
    transpose, flip_rows, flip_cols = _pyav_stream(path, -1)[1]
    stored = stored.transpose(1, 2) if transpose else stored
    dims = [axis for axis, flip in ((1, flip_rows), (2, flip_cols)) if flip]
    return stored.flip(dims).contiguous() if dims else stored.contiguous()


def _read_frames_torchcodec(path: str, indices_fn: Callable[[dict], np.ndarray]):
    """torchcodec's decoder on the stream the PyAV path decodes (the longest), shown upright as PyAV shows it: the
    same frames and pixels on the test clips (tests/test_torchcodec.py). ``info`` has no ``timestamps``."""
    VideoDecoder = _torchcodec_decoders().VideoDecoder

    try:
        decoder = VideoDecoder(ffmpeg_path(path), dimension_order="NHWC", seek_mode="exact",
                               stream_index=_pyav_stream(path)[0])
        metadata = decoder.metadata
        num_source_frames = int(metadata.num_frames or len(decoder))
    except VideoDecodeError:
        raise
    except Exception as error:
        raise VideoDecodeError(path, f"torchcodec cannot open it ({type(error).__name__}: {error})") from error
    if num_source_frames == 0:
        raise VideoDecodeError(path, "the video stream has no frames")
    info = {"num_source_frames": num_source_frames, "width": int(metadata.width), "height": int(metadata.height),
            "fps": float(metadata.average_fps or 0.0), "backend": "torchcodec",
            "stream_index": getattr(metadata, "stream_index", None)}
    indices = np.asarray(indices_fn(info), dtype=np.int64)
    try:
        video = decoder.get_frames_at(indices=indices.tolist()).data
    except Exception as error:
        raise VideoDecodeError(path, f"torchcodec decoding failed ({error})") from error
    if getattr(metadata, "rotation", 0.0) is not None:  # a display matrix (or torchcodec < 0.11: unknown)
        video = _upright(path, video, getattr(metadata, "rotation", None))
    info.update(height=int(video.shape[1]), width=int(video.shape[2]))
    return video, indices, info


def video_metadata_from_info(info: dict, frame_indices: Sequence[int] | None = None):
    """The decoder's ``info`` dict as transformers' ``VideoMetadata`` (what ``sample_frames`` receives)."""
    from transformers.video_utils import VideoMetadata

    fps = info.get("fps") or None
    duration = info.get("duration") or (info["num_source_frames"] / fps if fps else None)
    return VideoMetadata(
        total_num_frames=int(info["num_source_frames"]),
        fps=fps,
        width=info.get("width"),
        height=info.get("height"),
        duration=duration,
        video_backend=info.get("backend"),
        frames_indices=None if frame_indices is None else [int(i) for i in frame_indices],
    )


def _resolve_backend(backend: str) -> str:
    """The decoding backend ``backend`` names (``"auto"`` becomes torchcodec when usable, else pyav)."""
    if backend not in VIDEO_BACKENDS:
        raise ValueError(f"Unknown video backend {backend!r}; expected one of {VIDEO_BACKENDS}")
    if backend == "auto":
        return "torchcodec" if is_torchcodec_usable() else "pyav"
    return backend


def read_video(path: str | os.PathLike, indices: Sequence[int] | np.ndarray | None = None, num_frames: int = 16,
               mode: str = "uniform", jitter: bool = False, generator: np.random.Generator | None = None,
               backend: str = "pyav",
               sample_indices_fn: Callable[..., np.ndarray] | None = None) -> tuple[torch.Tensor, np.ndarray, dict]:
    """Decode the sampled frames of a video file.

    Args:
        path: video file (mp4, avi, mov, flv, mkv, ... anything FFmpeg reads).
        indices: explicit source frame indices (any order, repeats allowed; clipped to the clip).
        num_frames, mode, jitter, generator: without ``indices``, the frames come from
            :func:`sample_frame_indices` over the whole clip.
        backend: ``"pyav"`` (default), ``"torchcodec"``, or ``"auto"`` (torchcodec when usable).
        sample_indices_fn: instead of the above, transformers' hook: called as
            ``sample_indices_fn(metadata=VideoMetadata)`` once the clip's length is known.

    Returns:
        ``(frames, indices, info)``: frames is a uint8 ``(T, H, W, 3)`` RGB tensor, indices the
        ``(T,)`` int64 source frame indices, info a dict with ``num_source_frames``, ``width`` and
        ``height`` (as shown: the display matrix of phone videos is applied), ``fps`` (average),
        ``backend``, ``stream_index`` (the main video stream: the longest, when a file has several) and,
        with PyAV, ``num_video_streams``, ``timestamps`` (``(N,)`` presentation time of every source frame
        in seconds from the first, ``None`` when the container has no usable timestamps) and ``duration``.

    A folder of frame images (DFEW, FERV39k, MAFW) is read as a clip: its images in frame-number order
    (:mod:`frame_folders`), ``backend`` ``"frames"``, ``fps`` ``None``.

    Raises:
        VideoDecodeError: the file is missing, empty, a still image or not a video, or cannot be decoded.
    """
    path = os.fspath(path) if is_frame_folder(path) else _check_path(path)
    backend = _resolve_backend(backend)

    def indices_fn(info: dict) -> np.ndarray:
        num_source_frames = info["num_source_frames"]
        if sample_indices_fn is not None:
            chosen = sample_indices_fn(metadata=video_metadata_from_info(info))
        elif indices is not None:
            chosen = indices
        else:
            if num_source_frames < num_frames:
                warnings.warn(f"{path} has only {num_source_frames} frames; repeating frames to reach {num_frames}.",
                              stacklevel=4)
            return sample_frame_indices(num_source_frames, num_frames, mode, jitter, generator)
        chosen = np.asarray(chosen, dtype=np.int64).reshape(-1)
        if chosen.size == 0:
            raise ValueError("indices must not be empty")
        return np.clip(chosen, 0, num_source_frames - 1)

    if is_frame_folder(path):
        return _read_frame_folder(path, indices_fn)
    if backend == "torchcodec":
        return _read_frames_torchcodec(path, indices_fn)
    return _read_frames_pyav(path, indices_fn)


def _read_frame_folder(path: str, indices_fn: Callable[[dict], np.ndarray]):
    """A clip given as a folder of frame images, with read_video's errors and return values."""
    try:
        return read_frame_folder(path, lambda n: indices_fn({"num_source_frames": n, "backend": FRAME_FOLDER_BACKEND}))
    except FrameFolderError as error:
        raise VideoDecodeError(path, error.reason) from error


__all__ = ["VIDEO_BACKENDS", "VIDEO_EXTENSIONS", "VideoDecodeError", "ffmpeg_path", "frame_to_rgb",
           "is_torchcodec_usable", "read_video", "stream_video_frames", "video_metadata_from_info"]
