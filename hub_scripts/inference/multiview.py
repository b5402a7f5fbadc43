"""Test-time multi-view evaluation: softmax scores averaged over several temporal and spatial views of a clip.

The peers (MAE-DFER, HiCMAE, from VideoMAE's test loader) report "2 clips x 2 crops". Here:

- temporal view ``v`` of ``V`` takes, in each of the ``T`` equal segments of the clip, the frame at the
  fraction ``(v + 0.5) / V`` of the segment (:func:`processing.sampling_mtcae.temporal_view_indices`). ``V = 1``
  is the segment centre, i.e. exactly the processor's ``sampling_mode="uniform"`` frames; larger ``V`` spreads
  the views evenly over each segment, so every view still spans the whole clip.
- spatial views, ``spatial_mode="crops"`` (default, the peers' definition): for ``S = 1`` the processor's
  own framing of the whole frame; for ``S >= 2`` squares of the frame's short side, the ``s``-th starting
  at ``int(s * (long - short) / (S - 1))`` along the long side (VideoMAE's uniform test crops), each then
  framed by the processor (its ``resize_mode``). On square frames (the in-the-wild face frames the peers
  resize to 160 x 160) these crops coincide: the peers' second crop there repeats the first.
  ``spatial_mode="flip"`` (``S`` = 1 or 2): the frame, and the frame mirrored left-right.

Face labels given with a video (normalised to the source frame) follow each view: looked up for the
view's frames (:meth:`FaceLabels.at <processing.face_labels_mtcae.FaceLabels.at>`), mapped into its crop (a face
leaving the crop gets mask False) or mirrored (left and right points swapped) by ``FrameGeometry``'s functions,
so the processor's face crop / alignment and face targets stay consistent per view.
Without labels a processor with a ``face_detector`` finds the faces in each view itself.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from processing.decoding_mtcae import read_video
from processing.face_geometry_mtcae import crop_geometry, mirror_face_labels
from processing.face_labels_mtcae import FaceLabels
from processing.frame_folders import count_frames, is_frame_folder, read_frame_folder
from processing.sampling_mtcae import temporal_view_indices

SPATIAL_MODES = ("crops", "flip")


@dataclass
class MultiViewArguments:
    """Test-time views of ``mtcae-train`` / ``mtcae-cross-validate`` / ``mtcae-predict`` (an HfArgumentParser
    dataclass)."""

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


def spatial_crops(height: int, width: int, num_views: int) -> list[tuple[int, int, int] | None]:
    """``(left, top, side)`` pixel squares of the short side along the long side; ``[None]`` (whole frame)
    for 1 view."""
    if num_views == 1:
        return [None]
    short, long = min(height, width), max(height, width)
    step = (long - short) / (num_views - 1)
    starts = [int(s * step) for s in range(num_views)]
    return [(start, 0, short) if width > height else (0, start, short) for start in starts]


def _view_labels(labels: FaceLabels, crop: tuple[int, int, int] | None, size: tuple[int, int],
                 mirror: bool) -> FaceLabels:
    """A view's labels (rows = the view's frames) mapped into its crop, or mirrored."""
    boxes, landmarks, mask = labels.boxes, labels.landmarks, labels.mask
    if crop is not None:
        boxes, landmarks, mask = crop_geometry(size, labels.frame_indices, crop).map_labels(boxes, landmarks, mask)
    if mirror:
        boxes, landmarks, mask = mirror_face_labels(boxes, landmarks, mask)
    return FaceLabels(np.arange(len(labels)), boxes, landmarks, mask)


def _read(video: Any, indices: np.ndarray | None) -> tuple[torch.Tensor, int]:
    """``(uint8 (T, H, W, 3) frames at indices, number of source frames)``; ``indices=None`` only counts."""
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
        face_labels: optional labels normalised to the source frame: a ``FaceLabels`` (e.g. a face-label cache's
            row), or a dict with ``boxes`` (N, 4), ``landmarks`` (N, NUM_LANDMARKS, 2), ``mask`` (N,) for every source
            frame, or for the frames listed in ``frame_indices``.

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
    source = None if face_labels is None else FaceLabels.from_input(face_labels, num_source_frames=num_source)
    for t, chunk in enumerate(torch.split(frames, num_frames)):
        at = None if source is None else source.at(indices[t])
        if spatial_mode == "flip":
            views += [chunk, chunk.flip(2)][:spatial_views]
            labels += [None if at is None else _view_labels(at, None, (height, width), mirror)
                       for mirror in (False, True)][:spatial_views]
            continue
        for crop in spatial_crops(height, width, spatial_views):
            if crop is None:
                views.append(chunk)
            else:
                left, top, side = crop
                views.append(chunk[:, top:top + side, left:left + side])
            labels.append(None if at is None else _view_labels(at, crop, (height, width), False))
    inputs = processor([view.contiguous().numpy() for view in views],
                       face_labels=None if face_labels is None else labels, num_frames=num_frames,
                       temporal_jitter=False, random_flip=False, return_tensors="pt")
    return inputs, indices


# ----------------------------------------------------------------------------------------------------
# Scores.
# ----------------------------------------------------------------------------------------------------


@torch.no_grad()
def view_probabilities(model, pixel_values: torch.Tensor, batch_size: int = 8) -> np.ndarray:
    """Softmax of the logits of ``model`` (a model, or an engine of :mod:`hub_scripts.inference.engines`) for
    a stack of views, ``(num_views, num_labels)`` float32."""
    if getattr(model, "training", False):
        warnings.warn("multi-view scores of a model in training mode (dropout on); call model.eval() first",
                      stacklevel=2)
    scores = []
    for chunk in torch.split(pixel_values, max(1, int(batch_size))):
        if not isinstance(model, torch.nn.Module):  # an engine: it moves the inputs itself
            logits = model(pixel_values=chunk).logits
        else:
            parameter = next(model.parameters())
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


__all__ = ["MultiViewArguments", "SPATIAL_MODES", "build_views", "check_views", "multiview_probabilities",
           "predict_multiview", "spatial_crops", "view_probabilities"]
