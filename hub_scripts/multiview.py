"""Test-time multi-view evaluation: softmax scores averaged over several temporal and spatial views of a clip.

The peers (MAE-DFER, HiCMAE, from VideoMAE's test loader) report "2 clips x 2 crops". Here:

- temporal view ``v`` of ``V`` takes, in each of the ``T`` equal segments of the clip, the frame at the
  fraction ``(v + 0.5) / V`` of the segment: ``floor((i + (v + 0.5) / V) * N / T)``. ``V = 1`` is the
  segment centre, i.e. exactly the processor's ``sampling_mode="uniform"`` frames; larger ``V`` spreads
  the views evenly over each segment, so every view still spans the whole clip.
- spatial views, ``spatial_mode="crops"`` (default, the peers' definition): for ``S = 1`` the processor's
  own framing of the whole frame; for ``S >= 2`` squares of the frame's short side, the ``s``-th starting
  at ``int(s * (long - short) / (S - 1))`` along the long side (VideoMAE's uniform test crops), each then
  framed by the processor (its ``resize_mode``). On square frames (the in-the-wild face frames the peers
  resize to 160 x 160) these crops coincide: the peers' second crop there repeats the first.
  ``spatial_mode="flip"`` (``S`` = 1 or 2): the frame, and the frame mirrored left-right.

Face labels given with a video (normalised to the source frame) follow each view: looked up for the
view's frames, mapped into its crop (a face leaving the crop gets mask False) or mirrored (left and right
points swapped), so the processor's face crop / alignment and face targets stay consistent per view.
Without labels a processor with a ``face_detector`` finds the faces in each view itself.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

SPATIAL_MODES = ("crops", "flip")
_MIRRORED_POINTS = [1, 0, 2, 4, 3]  # left/right eye and mouth corner swap places in a mirrored face


@dataclass
class MultiViewArguments:
    """Test-time views for ``train.py`` / ``cross_validate.py`` / ``mtcae-predict`` (HfArgumentParser dataclass)."""

    test_temporal_views: int = field(default=1, metadata={"help": "16-frame samplings spread over each test clip"})
    test_spatial_views: int = field(default=1, metadata={"help": "spatial views per temporal view (peers: 2)"})
    test_spatial_mode: str = field(default="crops", metadata={"help": f"one of {SPATIAL_MODES}"})

    def __post_init__(self):
        check_views(self.test_temporal_views, self.test_spatial_views, self.test_spatial_mode)

    def to_results(self) -> dict:
        """The entries results files record, e.g. ``{"test_temporal_views": 2, ...}``."""
        return {"test_temporal_views": self.test_temporal_views, "test_spatial_views": self.test_spatial_views,
                "test_spatial_mode": self.test_spatial_mode}


def check_views(temporal_views: int, spatial_views: int, spatial_mode: str = "crops") -> None:
    if int(temporal_views) < 1 or int(spatial_views) < 1:
        raise ValueError(f"need at least one temporal and one spatial view, got {temporal_views} x {spatial_views}")
    if spatial_mode not in SPATIAL_MODES:
        raise ValueError(f"spatial_mode must be one of {SPATIAL_MODES}, got {spatial_mode!r}")
    if spatial_mode == "flip" and int(spatial_views) > 2:
        raise ValueError(f"spatial_mode='flip' gives 1 or 2 spatial views, got {spatial_views}")


# ----------------------------------------------------------------------------------------------------
# Views.
# ----------------------------------------------------------------------------------------------------


def temporal_view_indices(num_source_frames: int, num_frames: int = 16, num_views: int = 1) -> np.ndarray:
    """``(num_views, num_frames)`` int64 frame indices; view ``v`` takes ``floor((i + (v + 0.5) / V) * N / T)``."""
    n, t, v = int(num_source_frames), int(num_frames), int(num_views)
    if n < 1 or t < 1 or v < 1:
        raise ValueError(f"need num_source_frames, num_frames, num_views >= 1, got {n}, {t}, {v}")
    offsets = (np.arange(v)[:, None] + 0.5) / v
    indices = np.floor((np.arange(t)[None, :] + offsets) * n / t).astype(np.int64)
    return np.clip(indices, 0, n - 1)


def spatial_crops(height: int, width: int, num_views: int) -> list[tuple[int, int, int] | None]:
    """``(left, top, side)`` pixel squares of the short side along the long side; ``[None]`` (whole frame)
    for 1 view."""
    if num_views == 1:
        return [None]
    short, long = min(height, width), max(height, width)
    step = (long - short) / (num_views - 1)
    starts = [int(s * step) for s in range(num_views)]
    return [(start, 0, short) if width > height else (0, start, short) for start in starts]


def _labels_for(labels: Any, indices: np.ndarray, num_source: int) -> dict[str, np.ndarray]:
    """Labels (a dict with boxes, landmarks, mask and optional frame_indices) at the source frames ``indices``.

    Without ``frame_indices`` the labels must hold every source frame; frames without a label get mask False.
    """
    table = {"boxes": np.zeros((num_source, 4)), "landmarks": np.zeros((num_source, 5, 2)),
             "mask": np.zeros(num_source, bool)}
    given = {key: np.asarray(labels[key]) for key in ("boxes", "landmarks")}
    mask = labels.get("mask")
    rows = labels.get("frame_indices")
    if rows is None and len(given["boxes"]) != num_source:
        raise ValueError(f"face labels hold {len(given['boxes'])} frames but the clip has {num_source}: give one "
                         "per source frame, or pass frame_indices with them")
    rows = np.arange(num_source) if rows is None else np.asarray(rows, dtype=np.int64).reshape(-1)
    inside = (rows >= 0) & (rows < num_source)
    table["boxes"][rows[inside]] = given["boxes"].reshape(-1, 4)[inside]
    table["landmarks"][rows[inside]] = given["landmarks"].reshape(-1, 5, 2)[inside]
    table["mask"][rows[inside]] = True if mask is None else np.asarray(mask, bool).reshape(-1)[inside]
    return {key: value[indices] for key, value in table.items()}


def _crop_labels(labels: dict, crop: tuple[int, int, int], height: int, width: int) -> dict[str, np.ndarray]:
    """Source-normalised labels -> normalised to the square ``crop``; faces outside it get mask False."""
    left, top, side = crop
    scale = np.array([width, height]) / side
    shift = np.array([left, top]) / side
    low = np.clip(labels["boxes"][:, :2] * scale - shift, 0.0, 1.0)
    high = np.clip((labels["boxes"][:, :2] + labels["boxes"][:, 2:]) * scale - shift, 0.0, 1.0)
    landmarks = np.clip(labels["landmarks"] * scale - shift, 0.0, 1.0)
    mask = labels["mask"] & np.all(high > low, axis=-1)
    return {"boxes": np.concatenate([low, high - low], axis=-1), "landmarks": landmarks, "mask": mask}


def _mirror_labels(labels: dict) -> dict[str, np.ndarray]:
    boxes = labels["boxes"].copy()
    boxes[:, 0] = 1.0 - boxes[:, 0] - boxes[:, 2]
    landmarks = labels["landmarks"][:, _MIRRORED_POINTS].copy()
    landmarks[..., 0] = 1.0 - landmarks[..., 0]
    return {"boxes": boxes, "landmarks": landmarks, "mask": labels["mask"].copy()}


def _read(video: Any, indices: np.ndarray | None) -> tuple[torch.Tensor, int]:
    """``(uint8 (T, H, W, 3) frames at indices, number of source frames)``; ``indices=None`` only counts."""
    from processing.frame_folders import count_frames, is_frame_folder, read_frame_folder
    from processing.video_processing_mtcae import read_video

    if is_frame_folder(video):
        if indices is None:
            return None, count_frames(video)
        frames, _, info = read_frame_folder(video, indices)
        return frames, info["num_source_frames"]
    if isinstance(video, (str, bytes)) or hasattr(video, "__fspath__"):
        frames, _, info = read_video(video, indices=[0] if indices is None else indices)
        return (None if indices is None else frames), info["num_source_frames"]
    frames = torch.as_tensor(np.asarray(video))
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != torch.uint8:
        raise TypeError(f"an in-memory video must be a uint8 (T, H, W, 3) array, got {tuple(frames.shape)} "
                        f"{frames.dtype}; pass a path or a frame folder otherwise")
    return (None if indices is None else frames[torch.from_numpy(indices)]), int(frames.shape[0])


def build_views(processor, video: Any, temporal_views: int = 1, spatial_views: int = 1, spatial_mode: str = "crops",
                face_labels: Any = None):
    """The processor's inputs for every view of one video, temporal-major (``t * S + s``).

    Args:
        processor: an ``MTCAEVideoProcessor`` (called on each view's frames with its own settings).
        video: a video path, a frame folder, or a uint8 ``(N, H, W, 3)`` array / tensor of every frame.
        temporal_views / spatial_views / spatial_mode: see the module docstring.
        face_labels: optional labels normalised to the source frame, a dict: ``boxes`` (N, 4), ``landmarks``
            (N, 5, 2), ``mask`` (N,) for every source frame, or for the frames listed in ``frame_indices``
            (e.g. an annotation cache's ``"all"`` row as a dict).

    Returns:
        The processor's ``BatchFeature`` for the ``V * S`` views (``pixel_values`` (V*S, T, 3, H, W), and the
        face targets when labels were given) and the ``(V, T)`` frame indices of the temporal views.
    """
    check_views(temporal_views, spatial_views, spatial_mode)
    num_frames = int(processor.num_frames)
    _, num_source = _read(video, None)
    indices = temporal_view_indices(num_source, num_frames, temporal_views)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*repeating frames.*")
        frames, _ = _read(video, indices.reshape(-1))
    height, width = int(frames.shape[1]), int(frames.shape[2])
    views, labels = [], []
    for t, chunk in enumerate(torch.split(frames, num_frames)):
        source_labels = None if face_labels is None else _labels_for(face_labels, indices[t], num_source)
        if spatial_mode == "flip":
            views += [chunk, chunk.flip(2)][:spatial_views]
            labels += [source_labels, None if source_labels is None else _mirror_labels(source_labels)][:spatial_views]
            continue
        for crop in spatial_crops(height, width, spatial_views):
            if crop is None:
                views.append(chunk)
                labels.append(source_labels)
                continue
            left, top, side = crop
            views.append(chunk[:, top:top + side, left:left + side])
            labels.append(None if source_labels is None else _crop_labels(source_labels, crop, height, width))
    inputs = processor([view.contiguous().numpy() for view in views],
                       face_labels=None if face_labels is None else labels, num_frames=num_frames,
                       temporal_jitter=False, random_flip=False, return_tensors="pt")
    return inputs, indices


# ----------------------------------------------------------------------------------------------------
# Scores.
# ----------------------------------------------------------------------------------------------------


@torch.no_grad()
def view_probabilities(model, pixel_values: torch.Tensor, batch_size: int = 8) -> np.ndarray:
    """Softmax of the model's logits for a stack of views, ``(num_views, num_labels)`` float32."""
    if model.training:
        warnings.warn("multi-view scores of a model in training mode (dropout on); call model.eval() first",
                      stacklevel=2)
    parameter = next(model.parameters())
    scores = []
    for chunk in torch.split(pixel_values, max(1, int(batch_size))):
        logits = model(pixel_values=chunk.to(device=parameter.device, dtype=parameter.dtype)).logits
        scores.append(logits.float().softmax(-1).cpu())
    return torch.cat(scores).numpy()


def multiview_probabilities(model, processor, video: Any, temporal_views: int = 1, spatial_views: int = 1,
                            spatial_mode: str = "crops", face_labels: Any = None,
                            batch_size: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities of one video averaged over its views.

    Returns:
        ``(probabilities (num_labels,), view_probabilities (V * S, num_labels))``, views temporal-major.
    """
    inputs, _ = build_views(processor, video, temporal_views, spatial_views, spatial_mode, face_labels)
    per_view = view_probabilities(model, inputs["pixel_values"], batch_size)
    return per_view.mean(0), per_view


def predict_multiview(model, processor, videos: Iterable[Any], temporal_views: int = 1, spatial_views: int = 1,
                      batch_size: int = 8, spatial_mode: str = "crops",
                      face_labels: Sequence[Any] | None = None) -> np.ndarray:
    """``(num_videos, num_labels)`` view-averaged probabilities; views of several videos share a batch.

    Args:
        model / processor: an ``MTCAEForVideoClassification`` in eval mode and its processor.
        videos: paths, frame folders or uint8 ``(N, H, W, 3)`` arrays.
        temporal_views / spatial_views / spatial_mode: see the module docstring (1 x 1 = the plain evaluation).
        batch_size: views per forward pass.
        face_labels: optional, one per video (or None entries), as :func:`build_views` takes them.
    """
    videos = list(videos)
    face_labels = [None] * len(videos) if face_labels is None else list(face_labels)
    if len(face_labels) != len(videos):
        raise ValueError(f"got {len(face_labels)} face labels for {len(videos)} videos")
    pending, owners, scores = [], [], [[] for _ in videos]

    def flush() -> None:
        for owner, probabilities in zip(owners, view_probabilities(model, torch.cat(pending), batch_size)):
            scores[owner].append(probabilities)
        pending.clear()
        owners.clear()

    for i, (video, labels) in enumerate(zip(videos, face_labels)):
        inputs, _ = build_views(processor, video, temporal_views, spatial_views, spatial_mode, labels)
        pending.append(inputs["pixel_values"])
        owners.extend([i] * len(inputs["pixel_values"]))
        if len(owners) >= batch_size:
            flush()
    if pending:
        flush()
    return np.stack([np.mean(s, axis=0) for s in scores]) if videos else np.zeros((0, model.config.num_labels))


__all__ = [
    "MultiViewArguments",
    "SPATIAL_MODES",
    "build_views",
    "check_views",
    "multiview_probabilities",
    "predict_multiview",
    "spatial_crops",
    "temporal_view_indices",
    "view_probabilities",
]
