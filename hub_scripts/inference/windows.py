"""What an MTCAE-DFER model sees in a video: the whole clip and sliding windows (``mtcae-predict``'s library).

The whole clip is sampled exactly as the ``video-classification`` pipeline samples it (16 frames over the whole
clip); each window ``[start, end)`` is sampled the same way (:func:`processing.sampling_mtcae.window_frame_indices`).
The frames of a batch of windows are decoded in one pass and go through the processor's own steps; predicted
boxes go back to the source frame through each window's ``FrameGeometry``.
"""

from __future__ import annotations

import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers.utils import logging as hf_logging

from hub_scripts.inference.engines import EngineOptions, InferenceEngine, agreement, as_engine
from hub_scripts.inference.multiview import MultiViewArguments, multiview_probabilities
from hub_scripts.loading import load_trained_model
from processing.decoding_mtcae import VideoDecodeError, read_video, stream_video_frames
from processing.sampling_mtcae import window_frame_indices

DEFAULT_WINDOW_SECONDS = 2.0
DEFAULT_STRIDE_SECONDS = 1.0


class PredictError(ValueError):
    """Bad input for mtcae-predict (the message says what to change)."""


def load_model(model_name_or_path: str, device: str | torch.device = "cpu", revision: str | None = None):
    """:func:`hub_scripts.loading.load_trained_model` on ``device``; a :class:`PredictError` in one line when the
    model cannot be loaded (missing, weights that do not fit this version's code or are not finite, a truncated
    ``model.safetensors``, ...)."""
    bar = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # the loading bar would split the one-line error
    try:
        model, processor = load_trained_model(model_name_or_path, revision)
    except Exception as error:  # OSError, ValueError, RuntimeError, SafetensorError, ...
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise PredictError(f"cannot load the model {model_name_or_path!r}: {type(error).__name__}: {reason}") from error
    finally:
        if bar:
            hf_logging.enable_progress_bar()
    return model.to(device), processor


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


def probe(path: str) -> dict:
    """The decoder's ``info`` of a video (its first frame decoded): a bad file fails here, before any model work."""
    _, _, info = read_video(path, indices=[0])
    return info


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


def _decoded_windows(path: str, spans: list[tuple[int, int]], indices: list[np.ndarray], batch_size: int):
    """Yield batches ``[(span, frame indices, frames)]`` of windows, each video frame decoded once for all windows.

    One pass through the video (:func:`processing.decoding_mtcae.stream_video_frames`); a window is complete when
    its last frame is decoded, and a frame is let go once no window left needs it, so memory holds the frames of
    the few windows around the decoding position (and the whole clip's), not the video.
    """
    order = sorted(range(len(spans)), key=lambda i: (int(indices[i].max()), i))
    needed = Counter(int(index) for i in order for index in set(indices[i].tolist()))
    frames = stream_video_frames(path, sorted(needed))
    held: dict[int, np.ndarray] = {}
    batch = []
    for i in order:
        while int(indices[i].max()) not in held and (item := next(frames, None)) is not None:
            held[item[0]] = item[1]
        batch.append((spans[i], indices[i], torch.from_numpy(np.stack([_nearest(held, path, j) for j in indices[i]]))))
        for index in set(indices[i].tolist()):
            needed[index] -= 1
            if not needed[index] and index != max(held, default=-1):
                held.pop(index, None)
        if len(batch) == batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


def _nearest(held: dict[int, np.ndarray], path: str, index: int) -> np.ndarray:
    """Frame ``index``, or when it could not be decoded (a corrupt tail) the nearest decoded one, with a warning."""
    if index in held:
        return held[index]
    if not held:
        raise VideoDecodeError(path, "no frame could be decoded")
    nearest = min(held, key=lambda i: abs(i - index))
    warnings.warn(f"{path}: frame {index} could not be decoded; using frame {nearest} instead.", stacklevel=3)
    return held[nearest]


def _predict_batch(batch, engine: InferenceEngine, processor, num_source: int) -> list[tuple]:
    """Model outputs for a batch of decoded windows: ``(probabilities, source boxes, source landmarks)`` each.

    Each window goes through the processor's own steps (``prepare_frames``: geometry, faces found by its detector
    in the face modes; ``finalize``), and the predicted boxes go back to the source frame through that window's
    ``FrameGeometry``.
    """
    prepared = [processor.prepare_frames(frames, window_indices, num_source_frames=num_source)
                for _, window_indices, frames in batch]
    output = engine(pixel_values=torch.stack([processor.finalize(p["frames"])["pixel_values"] for p in prepared]))
    probabilities = output.logits.softmax(-1).numpy()
    results = []
    for b, item in enumerate(prepared):
        if output.face_boxes is None:
            results.append((probabilities[b], None, None))
            continue
        boxes, landmarks = item["geometry"].labels_to_source(output.face_boxes[b].numpy(),
                                                             output.face_landmarks[b].numpy())
        results.append((probabilities[b], boxes, landmarks))
    return results


def _score_windows(path: str, spans, indices, engine: InferenceEngine, processor, num_source: int, batch_size: int,
                   report_agreement: bool) -> dict:
    """``{span: (frame indices, probabilities, source boxes, source landmarks, fp32 eager probabilities or None)}``
    for every span, the video decoded once (:func:`_decoded_windows`)."""
    reference = InferenceEngine(engine.reference, EngineOptions(dtype="fp32"), engine.device) \
        if report_agreement else None
    scored = {}
    for batch in _decoded_windows(path, spans, indices, max(1, int(batch_size))):
        outputs = _predict_batch(batch, engine, processor, num_source)
        fp32 = _predict_batch(batch, reference, processor, num_source) if reference else [(None,)] * len(batch)
        for (span, window_indices, _), output, (fp32_probabilities, *_) in zip(batch, outputs, fp32):
            scored[span] = (window_indices, *output, fp32_probabilities)
    return scored


@torch.no_grad()
def predict_video(path: str | Path, model, processor, window_seconds: float | None = DEFAULT_WINDOW_SECONDS,
                  stride_seconds: float = DEFAULT_STRIDE_SECONDS, batch_size: int = 4,
                  views: MultiViewArguments | None = None, report_agreement: bool = False) -> dict[str, Any]:
    """Probabilities, boxes and landmarks for the whole clip and for each sliding window.

    Returns a JSON-ready dict: ``video``, ``num_frames``, ``fps``, ``duration``, ``width``, ``height``,
    ``stream_index`` (the video stream used), ``labels``, ``window_seconds``, ``stride_seconds``, ``clip``
    (the whole clip, as the pipeline sees it), ``windows`` (a list; one entry equal to ``clip`` for a short
    video), ``mean_window_probabilities`` and ``views`` (the test views of the whole-clip score). With ``views``
    of more than one view (:mod:`hub_scripts.inference.multiview`), ``clip``'s probabilities, label and score
    are the average over those views (``clip["view_probabilities"]`` holds each view's, temporal-major); its
    ``frames`` and every window stay single-view. Each of ``clip`` / ``windows[i]`` has ``start_frame``,
    ``end_frame`` (exclusive), ``start_time``, ``end_time``, ``label``, ``score``, ``probabilities``
    ({label: p}) and ``frames``: the sampled frames with ``frame``, ``time`` (from the container's frame
    timestamps, so they hold on variable-frame-rate clips), ``box`` ([x, y, w, h]) and ``landmarks``
    (NUM_LANDMARKS x [x, y]), normalised to the source frame (``None`` for a single-task model).

    Raises:
        VideoDecodeError: the file is missing, not a video, has no video stream, or cannot be decoded.
    """
    path = str(path)
    info = probe(path)
    num_source, fps = int(info["num_source_frames"]), float(info["fps"] or 0.0)
    if fps <= 0:
        warnings.warn(f"{path} does not state its frame rate; assuming 25 fps for the window times.", stacklevel=2)
    fps = fps if fps > 0 else 25.0
    times = frame_times(dict(info, fps=fps))
    num_frames = int(getattr(processor, "num_frames", None) or model.config.num_frames)
    labels = [model.config.id2label[i] for i in range(model.config.num_labels)]  # a model or an engine
    windows = plan_windows(num_source, fps, window_seconds, stride_seconds, frame_times=times)
    spans = [(0, num_source)] + [w for w in windows if w != (0, num_source)]
    engine = as_engine(model)
    scored = _score_windows(path, spans, window_frame_indices(spans, num_frames, getattr(
        processor, "sampling_mode", "uniform")), engine, processor, num_source, batch_size, report_agreement)
    results = {span: _window_result(span, indices, probabilities, labels, times, boxes, landmarks)
               for span, (indices, probabilities, boxes, landmarks, _) in scored.items()}
    window_results = [dict(results[w], index=i) for i, w in enumerate(windows)]
    views = views or MultiViewArguments()
    clip = _multiview_clip(results[(0, num_source)], path, engine, processor, views, labels, batch_size)
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
        "engine": engine.description,
        **({"agreement": agreement(np.stack([scored[span][4] for span in spans]),
                                   np.stack([scored[span][1] for span in spans]))} if report_agreement else {}),
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


__all__ = ["DEFAULT_STRIDE_SECONDS", "DEFAULT_WINDOW_SECONDS", "PredictError", "frame_times", "load_model",
           "plan_windows", "predict_video", "probe"]
