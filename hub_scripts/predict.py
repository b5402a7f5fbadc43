"""``mtcae-predict``: what an MTCAE-DFER model sees in a video.

For one video it prints the expression probabilities of the whole clip (16 frames sampled over the
whole clip, exactly what the ``video-classification`` pipeline does) and, for a video longer than
one window, of sliding windows (default 2 s, every 1 s; each window is sampled the same way). It
writes:

- ``<name>.timeline.json``: every window's time span, probabilities, and the face box
  ``[x, y, w, h]`` and the five landmarks (eyes, nose, mouth corners) predicted for each sampled
  frame, normalised to the source frame;
- ``<name>.timeline.csv``: one row per window with the probability of each label;
- ``<name>.timeline.png``: the probabilities over time (a bar chart when there is one window);
- with ``--overlay out.mp4`` (or ``.mov``, ``.mkv``, ``.avi``, ``.webm``, ``.gif``): the video,
  every frame kept, with the box and the five points of the window that covers the frame
  (interpolated between its sampled frames) and a bar of the expression probabilities drawn on it.

Example::

    mtcae-predict clip.mp4 --model outputs/mtcae-tiny-synthetic --overlay clip.overlay.mp4
    mtcae-predict clip.mov --model you/mtcae-ravdess --window 3 --stride 0.5 --output_dir results/
    mtcae-predict a.mp4 b.mov --model M --test_temporal_views 2 --test_spatial_views 2

With ``--test_temporal_views V --test_spatial_views S`` (``--test_spatial_mode crops`` or ``flip``) the
whole-clip probabilities are averaged over ``V x S`` test views (``hub_scripts.multiview``); the windows
stay single-view. The views used are printed and recorded in the timeline JSON (``views``).

The face outputs are regressions made for every sampled frame, with no face/no-face decision: on
frames without a face they are drawn anyway and mean nothing.
"""

from __future__ import annotations

import csv
import json
import math
import sys
import warnings
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hub_scripts.cli import check_writable_folder, parse_arguments
from hub_scripts.multiview import MultiViewArguments, multiview_probabilities

DEFAULT_WINDOW_SECONDS = 2.0
DEFAULT_STRIDE_SECONDS = 1.0
# RGB colours of the drawing.
BOX_COLOR = (60, 220, 60)
LANDMARK_COLORS = ((255, 80, 80), (80, 160, 255), (255, 230, 60), (255, 120, 255), (60, 230, 230))
BAR_COLOR = (110, 170, 255)
TOP_BAR_COLOR = (255, 160, 40)
OVERLAY_CODECS = {
    ".mp4": ("libx264", "yuv420p"),
    ".mov": ("libx264", "yuv420p"),
    ".mkv": ("libx264", "yuv420p"),
    ".m4v": ("libx264", "yuv420p"),
    ".avi": ("mpeg4", "yuv420p"),
    ".webm": ("libvpx-vp9", "yuv420p"),
    ".gif": ("gif", "rgb8"),
}


class PredictError(ValueError):
    """Bad input for mtcae-predict (the message says what to change)."""


# ------------------------------------------------------------------------------------------------
# Model
# ------------------------------------------------------------------------------------------------
def load_model(model_name_or_path: str, device: str | torch.device = "cpu", revision: str | None = None):
    """The model (eval mode, on ``device``) and its video processor, with the installed ``mtcae-dfer`` classes.

    Works for a training output folder, a folder made by ``mtcae-push-to-hub`` and a Hub repo id.

    Raises:
        PredictError: the weights do not fit the installed model code (missing or unexpected weights).
    """
    from modeling_mtcae import MTCAEForVideoClassification
    from processing.video_processing_mtcae import MTCAEVideoProcessor

    kwargs = {"revision": revision} if revision else {}
    # Mismatched shapes are reported below by name (transformers would raise pointing at its own log).
    model, info = MTCAEForVideoClassification.from_pretrained(model_name_or_path, output_loading_info=True,
                                                              ignore_mismatched_sizes=True, **kwargs)
    problems = {k: v for k, v in info.items() if k in ("missing_keys", "unexpected_keys", "mismatched_keys") and v}
    if problems.get("mismatched_keys"):
        problems["mismatched_keys"] = [key if isinstance(key, str) else key[0] for key in problems["mismatched_keys"]]
    if problems:
        raise PredictError(f"the weights of {model_name_or_path} do not fit this version of mtcae-dfer: {problems}")
    from hub_scripts.weights import check_finite_weights

    try:
        check_finite_weights(model, model_name_or_path)
    except ValueError as error:
        raise PredictError(str(error)) from error
    try:
        processor = MTCAEVideoProcessor.from_pretrained(model_name_or_path, **kwargs)
    except (OSError, ValueError):
        height, width = model.config.image_size
        warnings.warn(f"{model_name_or_path} has no video processor config; using the default processor "
                      f"for {model.config.num_frames} frames of {height}x{width}.", stacklevel=2)
        processor = MTCAEVideoProcessor(num_frames=model.config.num_frames, size={"height": height, "width": width})
    return model.to(device).eval(), processor


# ------------------------------------------------------------------------------------------------
# Windows and prediction
# ------------------------------------------------------------------------------------------------
def plan_windows(num_source_frames: int, fps: float, window_seconds: float | None = DEFAULT_WINDOW_SECONDS,
                 stride_seconds: float = DEFAULT_STRIDE_SECONDS,
                 frame_times: np.ndarray | None = None) -> list[tuple[int, int]]:
    """``[(start, end)]`` frame ranges (end exclusive) of the sliding windows.

    With ``frame_times`` (the start time in seconds of every frame, plus the clip's end: ``N + 1`` values,
    see :func:`frame_times`), a window holds the frames that start in ``[t, t + window_seconds)``, for
    ``t`` every ``stride_seconds`` from 0, so windows follow the clock on a variable-frame-rate clip.
    Without, windows are ``round(window_seconds * fps)`` frames long and start every
    ``round(stride_seconds * fps)`` frames. Either way a last window is aligned to the end of the video so
    that every frame is covered; a video no longer than one window (or ``window_seconds`` of 0 / ``None``)
    gives the single window ``(0, N)``.
    """
    n = int(num_source_frames)
    if n < 1:
        raise PredictError("the video has no frames")
    if not window_seconds or window_seconds <= 0:
        return [(0, n)]
    if stride_seconds is None or not stride_seconds > 0:
        raise PredictError(f"--stride must be > 0 seconds, got {stride_seconds}")
    if frame_times is not None:
        return _plan_windows_by_time(np.asarray(frame_times, dtype=np.float64), window_seconds, stride_seconds)
    fps = float(fps) if fps and fps > 0 else 25.0
    length = max(1, int(round(window_seconds * fps)))
    stride = max(1, int(round(stride_seconds * fps)))
    if n <= length:
        return [(0, n)]
    starts = list(range(0, n - length + 1, stride))
    if starts[-1] + length < n:
        starts.append(n - length)
    return [(s, s + length) for s in starts]


def _plan_windows_by_time(times: np.ndarray, window_seconds: float, stride_seconds: float) -> list[tuple[int, int]]:
    n, end, eps = len(times) - 1, float(times[-1]), 1e-6
    if end - times[0] <= window_seconds + eps:
        return [(0, n)]
    starts = np.arange(times[0], end - window_seconds + eps, stride_seconds)
    first = np.searchsorted(times[:n], starts - eps)
    last = np.searchsorted(times[:n], starts + window_seconds - eps)
    windows = list(dict.fromkeys((int(a), int(b)) for a, b in zip(first, last) if b > a))
    if windows[-1][1] < n:
        windows.append((int(np.searchsorted(times[:n], end - window_seconds - eps)), n))
    return windows


def frame_times(info: dict) -> np.ndarray:
    """The start time (s) of every source frame and, last, the clip's end: ``N + 1`` values.

    From the container's timestamps when it has them (exact on a variable-frame-rate clip), else index / fps.
    """
    n = int(info["num_source_frames"])
    fps = float(info.get("fps") or 0.0) or 25.0
    times = info.get("timestamps")
    if times is None or len(times) != n:
        return np.arange(n + 1, dtype=np.float64) / fps
    end = info.get("duration") or float(times[-1]) + 1.0 / fps
    return np.append(np.asarray(times, dtype=np.float64), float(end))


def _probe(path: str) -> dict:
    from processing.decoding_mtcae import read_video

    _, _, info = read_video(path, indices=[0])
    return info


def _sampled_spans(spans: list[tuple[int, int]], num_frames: int, mode: str) -> list[np.ndarray]:
    """The source frames each window gives the model: ``num_frames`` sampled over the window, as the processor does."""
    from processing.decoding_mtcae import sample_frame_indices

    return [start + sample_frame_indices(end - start, num_frames, mode) for start, end in spans]


def _window_result(span, indices, probabilities, labels, times, boxes=None, landmarks=None) -> dict:
    """One window's JSON entry; ``times`` from :func:`frame_times`; boxes / landmarks normalised to the source frame."""
    start, end = span
    frames = [{"frame": int(index), "time": float(times[index]),
               "box": None if boxes is None else [float(v) for v in boxes[t]],
               "landmarks": None if boxes is None else [[float(x), float(y)] for x, y in landmarks[t]]}
              for t, index in enumerate(indices.tolist())]
    top = int(probabilities.argmax())
    return {
        "start_frame": start, "end_frame": end, "start_time": float(times[start]), "end_time": float(times[end]),
        "label": labels[top], "score": float(probabilities[top]),
        "probabilities": {label: float(p) for label, p in zip(labels, probabilities)},
        "frames": frames,
    }


def _predict_spans(path: str, spans, indices, model, processor, num_source: int) -> list[tuple]:
    """Model outputs for a batch of windows: ``(probabilities, source boxes, source landmarks)`` per window.

    The frames of all windows are decoded in one pass; each window goes through the processor's own steps
    (``prepare_frames``: geometry, faces found by its detector in the face modes; ``finalize``), and the
    predicted boxes go back to the source frame through that window's ``FrameGeometry``.
    """
    from processing.decoding_mtcae import read_video

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*repeating frames.*")
        frames, _, _ = read_video(path, indices=np.concatenate(indices))
    prepared = [processor.prepare_frames(chunk, window_indices, num_source_frames=num_source)
                for chunk, window_indices in zip(torch.split(frames, [len(i) for i in indices]), indices)]
    pixel_values = torch.stack([processor.finalize(p["frames"])["pixel_values"] for p in prepared])
    output = model(pixel_values=pixel_values.to(device=next(model.parameters()).device, dtype=model.dtype))
    probabilities = output.logits.float().softmax(-1).cpu().numpy()
    results = []
    for b, item in enumerate(prepared):
        if output.face_boxes is None:
            results.append((probabilities[b], None, None))
            continue
        boxes, landmarks = item["geometry"].labels_to_source(output.face_boxes[b].float().cpu().numpy(),
                                                             output.face_landmarks[b].float().cpu().numpy())
        results.append((probabilities[b], boxes, landmarks))
    return results


@torch.no_grad()
def predict_video(
    path: str | Path,
    model,
    processor,
    window_seconds: float | None = DEFAULT_WINDOW_SECONDS,
    stride_seconds: float = DEFAULT_STRIDE_SECONDS,
    batch_size: int = 4,
    views: MultiViewArguments | None = None,
) -> dict[str, Any]:
    """Probabilities, boxes and landmarks for the whole clip and for each sliding window.

    Returns a JSON-ready dict: ``video``, ``num_frames``, ``fps``, ``duration``, ``width``, ``height``,
    ``stream_index`` (the video stream used), ``labels``, ``window_seconds``, ``stride_seconds``, ``clip``
    (the whole clip, as the pipeline
    sees it), ``windows`` (a list; one entry equal to ``clip`` for a short video) and
    ``mean_window_probabilities`` and ``views`` (the test views of the whole-clip score). With ``views`` of
    more than one view (``hub_scripts.multiview``), ``clip``'s probabilities, label and score are the
    average over those views (``clip["view_probabilities"]`` holds each view's, temporal-major); its
    ``frames`` and every window stay single-view. Each of ``clip`` / ``windows[i]`` has ``start_frame``,
    ``end_frame`` (exclusive), ``start_time``, ``end_time``, ``label``, ``score``,
    ``probabilities`` ({label: p}) and ``frames``: the sampled frames with ``frame``, ``time``
    (times come from the container's frame timestamps, so they hold on variable-frame-rate clips),
    ``box`` ([x, y, w, h]) and ``landmarks`` (5 x [x, y]), normalised to the source frame (``None``
    for a single-task model).

    Raises:
        VideoDecodeError: the file is missing, not a video, has no video stream, or cannot be decoded.
    """
    path = str(path)
    info = _probe(path)
    num_source, fps = int(info["num_source_frames"]), float(info["fps"] or 0.0)
    if fps <= 0:
        warnings.warn(f"{path} does not state its frame rate; assuming 25 fps for the window times.", stacklevel=2)
        fps = 25.0
    times = frame_times(dict(info, fps=fps))
    num_frames = int(getattr(processor, "num_frames", None) or model.config.num_frames)
    mode = getattr(processor, "sampling_mode", "uniform")
    labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
    windows = plan_windows(num_source, fps, window_seconds, stride_seconds, frame_times=times)
    spans = [(0, num_source)] + [w for w in windows if w != (0, num_source)]
    step = max(1, int(batch_size))
    results: dict[tuple[int, int], dict] = {}
    for first in range(0, len(spans), step):
        batch = spans[first:first + step]
        indices = _sampled_spans(batch, num_frames, mode)
        outputs = _predict_spans(path, batch, indices, model, processor, num_source)
        for span, window_indices, (probabilities, boxes, landmarks) in zip(batch, indices, outputs):
            results[span] = _window_result(span, window_indices, probabilities, labels, times, boxes, landmarks)
    window_results = [dict(results[w], index=i) for i, w in enumerate(windows)]
    views = views or MultiViewArguments()
    clip = _multiview_clip(results[(0, num_source)], path, model, processor, views, labels, batch_size)
    mean = np.mean([[w["probabilities"][label] for label in labels] for w in window_results], axis=0)
    return {
        "video": path,
        "num_frames": num_source,
        "fps": fps,
        "duration": float(times[-1]),
        "width": int(info["width"]),
        "height": int(info["height"]),
        "stream_index": info.get("stream_index"),
        "labels": labels,
        "sampled_frames_per_window": num_frames,
        "window_seconds": window_seconds if len(windows) > 1 else None,
        "stride_seconds": stride_seconds if len(windows) > 1 else None,
        "views": views.to_results(),
        "clip": clip,
        "windows": window_results,
        "mean_window_probabilities": {label: float(p) for label, p in zip(labels, mean)},
    }


def _multiview_clip(clip: dict, path: str, model, processor, views: MultiViewArguments, labels: list[str],
                    batch_size: int) -> dict:
    """``clip`` with its probabilities averaged over the test views (unchanged for a single view)."""
    if views.test_temporal_views * views.test_spatial_views == 1:
        return clip
    probabilities, per_view = multiview_probabilities(model, processor, path, views.test_temporal_views,
                                                      views.test_spatial_views, views.test_spatial_mode,
                                                      batch_size=batch_size)
    top = int(probabilities.argmax())
    return dict(clip, label=labels[top], score=float(probabilities[top]),
                probabilities={label: float(p) for label, p in zip(labels, probabilities)},
                view_probabilities=[[float(p) for p in view] for view in per_view])


# ------------------------------------------------------------------------------------------------
# Timeline files
# ------------------------------------------------------------------------------------------------
def write_timeline(result: dict, output_dir: str | Path, name: str) -> dict[str, Path]:
    """Write ``<name>.timeline.json``, ``.csv`` and ``.png`` into ``output_dir``; return their paths."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    paths = {kind: output_dir / f"{name}.timeline.{kind}" for kind in ("json", "csv", "png")}
    paths["json"].write_text(json.dumps(result, indent=2), encoding="utf-8")
    labels = result["labels"]
    with paths["csv"].open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["window", "start_time", "end_time", "start_frame", "end_frame", "label", "score",
                         *[f"p_{label}" for label in labels]])
        for window in result["windows"]:
            writer.writerow([window["index"], f"{window['start_time']:.3f}", f"{window['end_time']:.3f}",
                             window["start_frame"], window["end_frame"], window["label"], f"{window['score']:.6f}",
                             *[f"{window['probabilities'][label]:.6f}" for label in labels]])
    plot_timeline(result, paths["png"])
    return paths


def plot_timeline(result: dict, out_png: str | Path) -> Path:
    """Probabilities per label over the window centres (a bar chart for a single window)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels, windows = result["labels"], result["windows"]
    fig, ax = plt.subplots(figsize=(9, 4.2))
    colors = plt.get_cmap("tab10" if len(labels) <= 10 else "tab20")
    if len(windows) == 1:
        values = [windows[0]["probabilities"][label] for label in labels]
        ax.barh(labels, values, color=[colors(i) for i in range(len(labels))])
        ax.set_xlim(0, 1)
        ax.invert_yaxis()
        ax.set_xlabel("probability")
        ax.set_title(f"{Path(result['video']).name}: whole clip ({result['duration']:.2f} s)")
    else:
        centres = [(w["start_time"] + w["end_time"]) / 2 for w in windows]
        for i, label in enumerate(labels):
            ax.plot(centres, [w["probabilities"][label] for w in windows], marker="o", markersize=3,
                    label=label, color=colors(i))
        ax.set_xlim(0, result["duration"])
        ax.set_ylim(0, 1)
        ax.set_xlabel("time (s), window centre")
        ax.set_ylabel("probability")
        ax.set_title(f"{Path(result['video']).name}: {result['window_seconds']:g} s windows every "
                     f"{result['stride_seconds']:g} s")
        ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8, frameon=False)
        ax.grid(alpha=0.3)
    from hub_scripts.plots import save_figure

    return save_figure(fig, out_png, dpi=110)


# ------------------------------------------------------------------------------------------------
# Overlay video
# ------------------------------------------------------------------------------------------------
class _FrameAnnotations:
    """Per source frame: the covering window's probabilities and its interpolated box and landmarks."""

    def __init__(self, result: dict):
        self.labels = result["labels"]
        self.windows = result["windows"]
        self.centres = np.array([(w["start_frame"] + w["end_frame"] - 1) / 2 for w in self.windows])
        self.starts = np.array([w["start_frame"] for w in self.windows])
        self.ends = np.array([w["end_frame"] for w in self.windows])
        self.tracks = []
        for window in self.windows:
            frames = window["frames"]
            if not frames or frames[0]["box"] is None:
                self.tracks.append(None)
                continue
            xs, keep = np.unique([f["frame"] for f in frames], return_index=True)
            boxes = np.array([frames[k]["box"] for k in keep], dtype=np.float64)
            points = np.array([frames[k]["landmarks"] for k in keep], dtype=np.float64).reshape(len(keep), -1)
            self.tracks.append((xs.astype(np.float64), boxes, points))

    def window_of(self, frame: int) -> int:
        inside = (self.starts <= frame) & (frame < self.ends)
        distance = np.abs(self.centres - frame) + np.where(inside, 0.0, 1e9)
        return int(distance.argmin())

    def at(self, frame: int):
        index = self.window_of(frame)
        window = self.windows[index]
        probabilities = np.array([window["probabilities"][label] for label in self.labels])
        track = self.tracks[index]
        if track is None:
            return window, probabilities, None, None
        xs, boxes, points = track
        box = np.array([np.interp(frame, xs, boxes[:, k]) for k in range(4)])
        flat = np.array([np.interp(frame, xs, points[:, k]) for k in range(points.shape[1])])
        return window, probabilities, box, flat.reshape(-1, 2)


def draw_frame(image: np.ndarray, labels: list[str], probabilities: np.ndarray, box: np.ndarray | None,
               landmarks: np.ndarray | None, caption: str = "") -> np.ndarray:
    """Draw the box, the five points and a probability bar chart on an RGB uint8 frame (in place)."""
    import cv2

    height, width = image.shape[:2]
    scale = max(0.5, min(height, width) / 400.0)
    thickness = max(1, int(round(2 * scale)))
    # Probability panel, top left, on a darkened background; the face is drawn over it.
    font, font_scale = cv2.FONT_HERSHEY_SIMPLEX, 0.42 * scale
    row = max(10, int(round(17 * scale)))
    name_width = max(cv2.getTextSize(label, font, font_scale, 1)[0][0] for label in labels) + int(8 * scale)
    bar_width = max(20, int(round(110 * scale)))
    panel_w = min(width, name_width + bar_width + int(52 * scale))
    panel_h = min(height, row * len(labels) + int(8 * scale) + (row if caption else 0))
    region = image[:panel_h, :panel_w]
    region[:] = (region.astype(np.float32) * 0.4).astype(np.uint8)
    top = int(np.argmax(probabilities))
    for i, (label, p) in enumerate(zip(labels, probabilities)):
        y = int(4 * scale) + i * row
        color = TOP_BAR_COLOR if i == top else BAR_COLOR
        cv2.putText(image, label, (int(4 * scale), y + int(row * 0.75)), font, font_scale, (255, 255, 255), 1,
                    cv2.LINE_AA)
        x_bar = name_width
        cv2.rectangle(image, (x_bar, y + 2), (x_bar + int(round(float(p) * bar_width)), y + row - 3), color, -1)
        cv2.putText(image, f"{100 * float(p):.0f}%", (x_bar + bar_width + int(4 * scale), y + int(row * 0.75)), font,
                    font_scale, (255, 255, 255), 1, cv2.LINE_AA)
    if caption:
        cv2.putText(image, caption, (int(4 * scale), int(4 * scale) + len(labels) * row + int(row * 0.75)), font,
                    font_scale * 0.9, (220, 220, 220), 1, cv2.LINE_AA)
    # The face last, so that the panel never hides it.
    if box is not None:
        x, y, w, h = box
        x0, y0 = int(round(np.clip(x, 0, 1) * width)), int(round(np.clip(y, 0, 1) * height))
        x1, y1 = int(round(np.clip(x + w, 0, 1) * width)), int(round(np.clip(y + h, 0, 1) * height))
        cv2.rectangle(image, (x0, y0), (x1, y1), BOX_COLOR, thickness, cv2.LINE_AA)
    if landmarks is not None:
        for (px, py), color in zip(landmarks, LANDMARK_COLORS):
            center = (int(round(np.clip(px, 0, 1) * width)), int(round(np.clip(py, 0, 1) * height)))
            cv2.circle(image, center, max(2, int(round(3 * scale))), color, -1, cv2.LINE_AA)
    return image


def _add_overlay_stream(target, suffix: str, in_stream, fps: float, size: tuple[int, int]):
    codec, pix_fmt = OVERLAY_CODECS[suffix]
    rate = Fraction(in_stream.average_rate).limit_denominator(1001) if in_stream.average_rate else \
        Fraction(fps).limit_denominator(1001)
    stream = target.add_stream(codec, rate=rate)
    stream.width, stream.height, stream.pix_fmt = size[0], size[1], pix_fmt
    if codec == "libx264":
        stream.options = {"crf": "20", "preset": "veryfast"}
    elif codec in ("mpeg4", "libvpx-vp9"):
        stream.bit_rate = int(2_500_000 * max(1.0, size[0] * size[1] / (640 * 360)))
    return stream


def write_overlay(result: dict, out_path: str | Path, max_side: int | None = None) -> int:
    """Write the annotated video (every source frame, upright, same frame rate); returns the frames written.

    The frames come from the video stream the prediction used, with its display matrix applied, so the
    boxes (normalised to the shown frame) land on the face; captions give each frame's own timestamp.
    """
    import av
    import cv2
    from av.video.reformatter import VideoReformatter

    from processing.decoding_mtcae import frame_to_rgb

    out_path = Path(out_path)
    suffix = out_path.suffix.lower()
    if suffix not in OVERLAY_CODECS:
        raise PredictError(f"--overlay {out_path}: unsupported extension {suffix!r}; "
                           f"use one of {sorted(OVERLAY_CODECS)}")
    annotations = _FrameAnnotations(result)
    src_w, src_h = int(result["width"]), int(result["height"])
    factor = min(1.0, max_side / max(src_w, src_h)) if max_side else 1.0
    width, height = max(2, int(round(src_w * factor))), max(2, int(round(src_h * factor)))
    even = OVERLAY_CODECS[suffix][1] == "yuv420p"
    enc_w, enc_h = (width + width % 2, height + height % 2) if even else (width, height)
    fps = result["fps"]
    out_path.parent.mkdir(parents=True, exist_ok=True)

    written, first_time = 0, None
    with av.open(result["video"]) as source, av.open(str(out_path), "w") as target:
        in_stream = source.streams[result.get("stream_index") or source.streams.video[0].index]
        stream = _add_overlay_stream(target, suffix, in_stream, fps, (enc_w, enc_h))
        reformatter = VideoReformatter()
        for index, frame in enumerate(source.decode(in_stream)):
            image = frame_to_rgb(frame, reformatter)
            if (image.shape[1], image.shape[0]) != (width, height):
                image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
            image = np.ascontiguousarray(image)
            first_time = frame.time if first_time is None else first_time
            seconds = frame.time - first_time if frame.time is not None and first_time is not None else index / fps
            window, probabilities, box, landmarks = annotations.at(index)
            caption = f"{seconds:5.2f} s  window {window['start_time']:.2f}-{window['end_time']:.2f} s"
            draw_frame(image, annotations.labels, probabilities, box, landmarks, caption)
            if (enc_w, enc_h) != (width, height):
                image = np.pad(image, ((0, enc_h - height), (0, enc_w - width), (0, 0)), mode="edge")
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                target.mux(packet)
            written += 1
        for packet in stream.encode():
            target.mux(packet)
    return written


# ------------------------------------------------------------------------------------------------
# Command line
# ------------------------------------------------------------------------------------------------
def _format_probabilities(probabilities: dict[str, float], top_k: int) -> str:
    ranked = sorted(probabilities.items(), key=lambda kv: -kv[1])[:top_k]
    return ", ".join(f"{label} {p:.3f}" for label, p in ranked)


@dataclass
class PredictArguments:
    """Arguments of ``mtcae-predict`` (flags are the field names; the videos may also come first, unnamed)."""

    video: list[str] = field(metadata={
        "help": "video file(s) (mp4, mov, avi, flv, mkv, webm, ...), also given first without --video; "
                "a bad one is reported at the end"})
    model: str = field(metadata={"help": "trained model folder or Hub repo id"})
    window: float = field(default=DEFAULT_WINDOW_SECONDS,
                          metadata={"help": "window length in seconds (0: one window, the whole clip)"})
    stride: float = field(default=DEFAULT_STRIDE_SECONDS, metadata={"help": "window step in seconds"})
    output_dir: str = field(default=".", metadata={"help": "where the timeline files go"})
    name: str | None = field(default=None,
                             metadata={"help": "file name stem of the outputs (default: the video's; one video)"})
    overlay: str | None = field(default=None, metadata={
        "help": f"write the annotated video here ({', '.join(sorted(OVERLAY_CODECS))}; one video)", "metavar": "OUT"})
    overlay_max_side: int | None = field(default=None, metadata={"help": "downscale the overlay to this size"})
    batch_size: int = field(default=4, metadata={"help": "windows per forward pass"})
    top_k: int = field(default=3, metadata={"help": "labels printed per window"})
    device: str = field(default="cuda" if torch.cuda.is_available() else "cpu", metadata={"help": "torch device"})
    revision: str | None = field(default=None, metadata={"help": "model revision (branch, tag or commit)"})
    quiet: bool = field(default=False, metadata={"help": "print only the output paths"})

    def __post_init__(self):
        if not math.isfinite(self.window) or self.window < 0:
            raise ValueError(f"--window must be a finite number of seconds >= 0, got {self.window}")
        if not math.isfinite(self.stride) or self.stride <= 0:
            raise ValueError(f"--stride must be a finite number of seconds > 0, got {self.stride}")
        for flag, value, low in (("--batch_size", self.batch_size, 1), ("--top_k", self.top_k, 1),
                                 ("--overlay_max_side", self.overlay_max_side, 2)):
            if value is not None and value < low:
                raise ValueError(f"{flag} must be >= {low}, got {value}")
        if len(self.video) > 1 and (self.overlay or self.name):
            raise ValueError("--overlay and --name take one video; give one video, or leave them out")
        if self.overlay and Path(self.overlay).suffix.lower() not in OVERLAY_CODECS:
            raise ValueError(f"--overlay {self.overlay}: unsupported extension; use one of "
                             f"{', '.join(sorted(OVERLAY_CODECS))}")


def parse_args(argv: list[str] | None = None) -> tuple[PredictArguments, MultiViewArguments]:
    """The options and the test views; the leading unnamed arguments are the videos (``--video``)."""
    return parse_arguments((PredictArguments, MultiViewArguments), argv, prog="mtcae-predict", description=__doc__,
                           positional="video")


def _check_writable_folder(folder: Path, flag: str) -> None:
    try:
        check_writable_folder(folder, flag)
    except OSError as error:
        raise PredictError(str(error)) from error


def check_arguments(args: PredictArguments) -> None:
    """What needs the machine, checked before any work: the device, and that the outputs can be written.

    Raises:
        PredictError: naming the flag and what is wrong with it.
    """
    try:
        device = torch.device(args.device)
    except (RuntimeError, TypeError) as error:
        raise PredictError(f"--device {args.device!r} is not a device ({error})") from error
    if device.type == "cuda" and not torch.cuda.is_available():
        raise PredictError(f"--device {args.device}: no CUDA GPU is available here; use --device cpu")
    _check_writable_folder(Path(args.output_dir), "--output_dir")
    if args.overlay:
        overlay = Path(args.overlay)
        if overlay.is_dir():
            raise PredictError(f"--overlay {overlay} is a folder; give a file name such as {overlay / 'overlay.mp4'}")
        _check_writable_folder(overlay.parent, "--overlay's folder")


def _load(args: PredictArguments):
    """The model and processor, or PredictError in one line (a missing model, weights that do not fit the
    config, a truncated model.safetensors, ...): a command-line user gets the reason, not a traceback."""
    from transformers.utils import logging as hf_logging

    bar = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # the loading bar would split the one-line error
    try:
        return load_model(args.model, args.device, args.revision)
    except Exception as error:  # OSError, ValueError, RuntimeError, SafetensorError, ...
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise PredictError(f"cannot load the model {args.model!r}: {type(error).__name__}: {reason}") from error
    finally:
        if bar:
            hf_logging.enable_progress_bar()


def _views_text(views: dict) -> str:
    """``"1 view"`` or ``"4 views: 2 temporal x 2 spatial (crops)"``."""
    temporal, spatial = views["test_temporal_views"], views["test_spatial_views"]
    if temporal * spatial == 1:
        return "1 view"
    return f"{temporal * spatial} views: {temporal} temporal x {spatial} spatial ({views['test_spatial_mode']})"


def _print_result(result: dict, args: PredictArguments) -> None:
    print(f"{Path(result['video']).name}: {result['num_frames']} frames, {result['fps']:.2f} fps, "
          f"{result['duration']:.2f} s, {result['width']}x{result['height']}")
    print(f"whole clip ({_views_text(result['views'])}): "
          f"{_format_probabilities(result['clip']['probabilities'], args.top_k)}")
    if len(result["windows"]) > 1:
        print(f"{len(result['windows'])} windows of {args.window:g} s every {args.stride:g} s:")
        for window in result["windows"]:
            print(f"  {window['start_time']:6.2f}-{window['end_time']:6.2f} s  "
                  f"{_format_probabilities(window['probabilities'], args.top_k)}")


def _predict_one(video: Path, model, processor, args: PredictArguments, views: MultiViewArguments) -> None:
    result = predict_video(video, model, processor, args.window, args.stride, args.batch_size, views)
    result["model"] = args.model
    paths = write_timeline(result, args.output_dir, args.name or video.stem)
    overlay_frames = write_overlay(result, args.overlay, args.overlay_max_side) if args.overlay else None
    if not args.quiet:
        _print_result(result, args)
    for kind, path in paths.items():
        print(f"timeline {kind}: {path}")
    if args.overlay:
        print(f"overlay: {args.overlay} ({overlay_frames} frames)")


def main(argv: list[str] | None = None) -> int:
    """Returns 0 when every video was predicted, 2 otherwise (each problem printed as one line).

    A bad option value exits with status 2 and a usage error before anything is read.
    """
    from processing.decoding_mtcae import VideoDecodeError

    args, views = parse_args(argv)
    failed: dict[str, str] = {}
    try:
        check_arguments(args)
        videos = []
        for video in map(Path, args.video):
            try:
                _probe(str(video))  # a bad file fails here, before the model is loaded
                videos.append(video)
            except VideoDecodeError as error:
                failed[str(video)] = str(error)
        if videos:
            model, processor = _load(args)
        for video in videos:
            try:
                _predict_one(video, model, processor, args, views)
            except (VideoDecodeError, PredictError, OSError) as error:  # the next video may still work
                failed[str(video)] = str(error)
    except PredictError as error:
        print(f"mtcae-predict: error: {error}", file=sys.stderr)
        return 2
    for reason in failed.values():
        print(f"mtcae-predict: error: {reason}", file=sys.stderr)
    if failed and len(args.video) > 1:
        print(f"mtcae-predict: {len(failed)} of {len(args.video)} videos failed", file=sys.stderr)
    return 2 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
