# Copyright 2025 The MTCAE-DFER contributors. Licensed under the Apache License, Version 2.0.
"""Where each model-input frame comes from: resize, centre crop, face crop and face alignment.

Saved next to the model as remote code with :mod:`video_processing_mtcae` (numpy, torch, torchvision).

Every crop, mirror and mapping of face labels goes through here: :meth:`FrameGeometry.labels_to_input`
and :meth:`FrameGeometry.labels_to_source` map them between the source frame and the model input,
:func:`crop_geometry` maps them into a crop of the frame, and :func:`mirror_face_labels` mirrors them.

One :class:`FrameGeometry` describes, for each frame of a clip, the 2x3 affine matrix that takes
source pixels to model-input pixels, together with the pixel operation that realises it. It warps the
frames, maps face labels into the model input and maps predicted boxes back to the source frame.

A frame's geometry depends only on the clip's face labels (all of its labelled frames) and on that
frame's own source index, never on which other frames are processed with it: ``face_crop`` takes the
square around every labelled face of the clip, and a ``face_align`` frame without a usable face of its
own reuses the warp of the nearest labelled frame by source index. So frames prepared once and stored
(a prepared-clip cache) equal frames prepared on the fly.

Coordinates: pixel coordinates are continuous, the top-left corner of the image at (0, 0) and its
bottom-right corner at (W, H); normalised coordinates are pixel coordinates divided by (W, H).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
import torchvision.transforms.v2.functional as tvF

from .face_labels_mtcae import MIRRORED_LANDMARKS, NUM_LANDMARKS, FaceLabels

FACE_MODES = ("face_crop", "face_align")
"""The framings that follow the face: they need face labels (or a face detector)."""
RESIZE_MODES = ("full_frame", "shortest_edge", *FACE_MODES)
INTERPOLATIONS = ("nearest", "bilinear", "bicubic")

# ArcFace's 5-point template for 112 x 112 aligned faces (insightface), as fractions of the side:
# left eye, right eye, nose, mouth left, mouth right.
FACE_ALIGN_TEMPLATE = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]]
) / 112.0
# The alignment is fitted to the eyes and the nose only: mouth corners move with the expression,
# and fitting them would partly warp the expression away.
FACE_ALIGN_POINTS = (0, 1, 2)
# Below this zoom factor a face_align warp first downscales the frame with antialiasing.
ANTIALIAS_BELOW_SCALE = 0.9


# --------------------------------------------------------------------------------------------
# The geometry object
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class FrameGeometry:
    """How each model-input frame is made from its source frame.

    Attributes:
        mode: the pixel operation: ``"full_frame"`` (resize), ``"shortest_edge"`` (resize, centre crop),
            ``"face_crop"`` (crop a square, resize) or ``"face_align"`` (per-frame similarity warp). A
            face mode without any usable face is ``"full_frame"``.
        frame_indices: ``(T,)`` int64 source frame index of each frame.
        source_size: ``(height, width)`` of the source frames in pixels.
        output_size: ``(height, width)`` of the model input in pixels.
        matrices: ``(T, 2, 3)`` float64, source pixel ``(x, y, 1)`` -> model-input pixel, per frame.
        resized_size: ``(height, width)`` of the resize / crop / warp result, before ``center_crops``.
        center_crops: centre crops ``(height, width)`` applied in order after the resize (torchvision's
            ``center_crop``; zero padding where a crop is larger).
        crop: ``face_crop`` only: the integer square ``(left, top, side)`` in source pixels.
        interpolation: ``"bilinear"``, ``"bicubic"`` or ``"nearest"``.
        antialias: antialiased downscaling.
    """

    mode: str
    frame_indices: np.ndarray
    source_size: tuple[int, int]
    output_size: tuple[int, int]
    matrices: np.ndarray
    resized_size: tuple[int, int]
    center_crops: tuple[tuple[int, int], ...] = ()
    crop: tuple[int, int, int] | None = None
    interpolation: str = "bilinear"
    antialias: bool = True

    def __len__(self) -> int:
        return len(self.frame_indices)

    def take(self, rows: Any) -> FrameGeometry:
        """The geometry of a subset of the frames (positions ``rows``)."""
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        return replace(self, frame_indices=self.frame_indices[rows], matrices=self.matrices[rows])

    def warp(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 ``(T, 3, H, W)`` source frames -> uint8 ``(T, 3, h, w)`` model-input frames."""
        if tuple(frames.shape[-2:]) != tuple(self.source_size) or len(frames) != len(self):
            raise ValueError(f"frames of shape {tuple(frames.shape)} do not fit a geometry for {len(self)} frames "
                             f"of {self.source_size[0]}x{self.source_size[1]}")
        interpolation = tvF.InterpolationMode(self.interpolation)
        if self.mode == "face_align":
            frames = warp_frames(frames, self._resample_matrices(), self.resized_size, self.antialias,
                                 self.interpolation)
        elif self.mode == "face_crop":
            left, top, side = self.crop
            # Integer crop (pixels are discrete); the matrices use the same integer box.
            frames = tvF.resized_crop(frames, top, left, side, side, list(self.resized_size),
                                      interpolation=interpolation, antialias=self.antialias)
        elif tuple(frames.shape[-2:]) != tuple(self.resized_size):
            frames = tvF.resize(frames, list(self.resized_size), interpolation=interpolation, antialias=self.antialias)
        for size in self.center_crops:
            frames = tvF.center_crop(frames, list(size))
        return frames

    def labels_to_input(self, boxes: Any, landmarks: Any, mask: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Face labels normalised to the source frame -> normalised model-input coordinates, as tensors.

        Args:
            boxes: ``(T, 4)`` x, y, w, h; landmarks: ``(T, NUM_LANDMARKS, 2)``; mask: ``(T,)`` bool, one row per frame.

        Returns:
            float32 / float32 / bool tensors of :meth:`map_labels`; masked frames have zero boxes and landmarks.
        """
        return label_tensors(*self.map_labels(boxes, landmarks, mask))

    def map_labels(self, boxes: Any, landmarks: Any, mask: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Face labels normalised to the source frame -> normalised model-input coordinates (float64 numpy).

        Clipped to [0, 1]; a box becomes the bounds of its four mapped corners, and a box entirely outside the
        input gets mask False.
        """
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        landmarks = np.asarray(landmarks, dtype=np.float64).reshape(-1, NUM_LANDMARKS, 2)
        mask = np.asarray(mask, dtype=bool).reshape(-1)
        mapped_boxes, mapped_landmarks = warp_face_labels(boxes, landmarks, self.matrices, self.source_size,
                                                          self.output_size)
        low = np.clip(mapped_boxes[:, :2], 0.0, 1.0)
        high = np.clip(mapped_boxes[:, :2] + mapped_boxes[:, 2:], 0.0, 1.0)
        mapped_mask = mask & (high[:, 0] > low[:, 0]) & (high[:, 1] > low[:, 1])
        return np.concatenate([low, high - low], axis=-1), np.clip(mapped_landmarks, 0.0, 1.0), mapped_mask

    def labels_to_source(self, boxes: Any, landmarks: Any) -> tuple[np.ndarray, np.ndarray]:
        """Model-input-normalised ``(T, 4)`` boxes and ``(T, NUM_LANDMARKS, 2)`` landmarks -> normalised to the source
        frame.

        The inverse of :meth:`labels_to_input` (not clipped); a box comes back as the bounds of its four
        corners, so under a rotation it contains the original box.
        """
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        landmarks = np.asarray(landmarks, dtype=np.float64).reshape(-1, NUM_LANDMARKS, 2)
        return warp_face_labels(boxes, landmarks, invert_affine(self.matrices), self.output_size, self.source_size)

    def _resample_matrices(self) -> np.ndarray:
        """The matrices before the centre crops (what the warp itself renders)."""
        matrices = self.matrices.copy()
        height, width = self.resized_size
        for crop_h, crop_w in self.center_crops:
            top, left = _center_crop_offsets((height, width), (crop_h, crop_w))
            matrices[:, 0, 2] += left
            matrices[:, 1, 2] += top
            height, width = crop_h, crop_w
        return matrices


def _center_crop_offsets(size: tuple[int, int], crop: tuple[int, int]) -> tuple[int, int]:
    """``(top, left)`` of torchvision's ``center_crop`` (negative where it pads)."""
    return int(round((size[0] - crop[0]) / 2.0)), int(round((size[1] - crop[1]) / 2.0))


def _scale_matrices(num_frames: int, scale_x: float, scale_y: float, offset_x: float, offset_y: float) -> np.ndarray:
    """``x_out = x * scale_x - offset_x`` (and y) for every frame."""
    matrix = np.array([[scale_x, 0.0, -offset_x], [0.0, scale_y, -offset_y]])
    return np.tile(matrix, (num_frames, 1, 1))


# --------------------------------------------------------------------------------------------
# Building a geometry
# --------------------------------------------------------------------------------------------


def build_frame_geometry(source_size: tuple[int, int], frame_indices: Any, output_size: tuple[int, int],
                         resize_mode: str = "full_frame", labels: FaceLabels | None = None,
                         face_crop_margin: float = 0.25, face_align_padding: float = 0.25,
                         center_crop: tuple[int, int] | None = None, interpolation: str = "bilinear",
                         antialias: bool = True, missing_reason: str = "without any labelled face") -> FrameGeometry:
    """The geometry of the frames ``frame_indices`` of a clip of ``source_size`` (height, width) frames.

    ``resize_mode`` is one of :data:`RESIZE_MODES`; the face modes use ``labels`` (all of the clip's
    labelled frames, whichever frames are asked for) and fall back to ``full_frame`` with a warning
    (``missing_reason``) when no face is usable. ``center_crop`` (height, width) is cut from the centre of the
    result (``do_center_crop``).
    """
    if resize_mode not in RESIZE_MODES:
        raise ValueError(f"resize_mode must be one of {RESIZE_MODES}, got {resize_mode!r}")
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {INTERPOLATIONS}, got {interpolation!r}")
    indices = np.asarray(frame_indices, dtype=np.int64).reshape(-1)
    source_size = (int(source_size[0]), int(source_size[1]))
    output_size = (int(output_size[0]), int(output_size[1]))
    common = dict(frame_indices=indices, source_size=source_size, interpolation=interpolation, antialias=antialias)
    labels = None if labels is None else labels.keyed
    geometry = None
    if resize_mode == "face_align":
        geometry = _face_align_geometry(labels, output_size, face_align_padding, common)
    elif resize_mode == "face_crop":
        geometry = _face_crop_geometry(labels, output_size, face_crop_margin, common)
    if geometry is None and resize_mode in FACE_MODES:
        warnings.warn(f"resize_mode={resize_mode!r} {missing_reason}: using the full frame instead.", stacklevel=3)
    if geometry is None and resize_mode == "shortest_edge":
        geometry = _shortest_edge_geometry(output_size, common)
    if geometry is None:
        scale_x, scale_y = output_size[1] / source_size[1], output_size[0] / source_size[0]
        geometry = FrameGeometry(mode="full_frame", output_size=output_size, resized_size=output_size,
                                 matrices=_scale_matrices(len(indices), scale_x, scale_y, 0.0, 0.0), **common)
    return with_center_crop(geometry, center_crop) if center_crop is not None else geometry


def identity_geometry(source_size: tuple[int, int], frame_indices: Any, center_crop: tuple[int, int] | None = None,
                      **kwargs) -> FrameGeometry:
    """Frames kept at their source size (``do_resize=False``), optionally centre-cropped."""
    return build_frame_geometry(source_size, frame_indices, source_size, "full_frame", center_crop=center_crop,
                                **kwargs)


def with_center_crop(geometry: FrameGeometry, crop: tuple[int, int]) -> FrameGeometry:
    """``geometry`` followed by a centre crop to ``crop`` = (height, width)."""
    crop = (int(crop[0]), int(crop[1]))
    top, left = _center_crop_offsets(geometry.output_size, crop)
    matrices = geometry.matrices.copy()
    matrices[:, 0, 2] -= left
    matrices[:, 1, 2] -= top
    return replace(geometry, output_size=crop, matrices=matrices, center_crops=geometry.center_crops + (crop,))


def _shortest_edge_geometry(output_size: tuple[int, int], common: dict) -> FrameGeometry:
    """Shortest edge to the output's short side (torchvision's arithmetic: the long side is truncated), centre crop."""
    (src_h, src_w), (out_h, out_w) = common["source_size"], output_size
    short = min(out_h, out_w)
    if src_w <= src_h:
        new_w, new_h = short, int(short * src_h / src_w)
    else:
        new_h, new_w = short, int(short * src_w / src_h)
    top, left = _center_crop_offsets((new_h, new_w), output_size)
    matrices = _scale_matrices(len(common["frame_indices"]), new_w / src_w, new_h / src_h, float(left), float(top))
    return FrameGeometry(mode="shortest_edge", output_size=output_size, resized_size=(new_h, new_w),
                         center_crops=(output_size,), matrices=matrices, **common)


def _face_crop_geometry(labels: FaceLabels | None, output_size: tuple[int, int], margin: float,
                        common: dict) -> FrameGeometry | None:
    """One square around every labelled face of the clip, rounded to whole pixels."""
    src_h, src_w = common["source_size"]
    box = None if labels is None else face_crop_box(labels.boxes, labels.mask, src_w, src_h, margin)
    if box is None:
        return None
    left, top, side = (int(round(v)) for v in box)
    out_h, out_w = output_size
    matrices = _scale_matrices(len(common["frame_indices"]), out_w / side, out_h / side, left * out_w / side,
                               top * out_h / side)
    return FrameGeometry(mode="face_crop", output_size=output_size, resized_size=output_size, crop=(left, top, side),
                         matrices=matrices, **common)


def _face_align_geometry(labels: FaceLabels | None, output_size: tuple[int, int], padding: float,
                         common: dict) -> FrameGeometry | None:
    """Each frame's own face on the template, or the warp of the clip's nearest labelled frame."""
    if labels is None:
        return None
    src_h, src_w = common["source_size"]
    points = labels.landmarks * np.array([src_w, src_h])
    # A face whose eyes are less than a pixel apart cannot be aligned (degenerate labels): treat it as missing.
    usable = labels.mask & (np.linalg.norm(points[:, 1] - points[:, 0], axis=-1) >= 1.0)
    usable_rows = np.flatnonzero(usable)
    if usable_rows.size == 0:
        return None
    chosen = usable_rows[_nearest(labels.frame_indices[usable_rows], common["frame_indices"])]
    out_h, out_w = output_size
    template = ((FACE_ALIGN_TEMPLATE - 0.5) / (1.0 + padding) + 0.5) * np.array([out_w, out_h])
    fitted = list(FACE_ALIGN_POINTS)
    unique_rows, inverse = np.unique(chosen, return_inverse=True)
    per_row = np.stack([similarity_transform(points[row, fitted], template[fitted]) for row in unique_rows])
    return FrameGeometry(mode="face_align", output_size=output_size, resized_size=output_size,
                         matrices=per_row[inverse.reshape(-1)], **common)


def _nearest(sorted_keys: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Position in ``sorted_keys`` of the key nearest each query (the smaller key on a tie)."""
    right = np.clip(np.searchsorted(sorted_keys, queries), 0, len(sorted_keys) - 1)
    left = np.maximum(right - 1, 0)
    return np.where(np.abs(sorted_keys[left] - queries) <= np.abs(sorted_keys[right] - queries), left, right)


# --------------------------------------------------------------------------------------------
# Geometry primitives
# --------------------------------------------------------------------------------------------


def face_crop_box(boxes: np.ndarray, mask: np.ndarray, width: int, height: int,
                  margin: float) -> tuple[float, float, float] | None:
    """A square crop ``(left, top, side)`` in source pixels around the labelled faces.

    One crop for the whole clip (the union of the labelled boxes) keeps motion between frames;
    ``margin`` widens the square by that fraction of its side on each side. Shifted to stay inside
    the frame; never larger than the frame's short side. ``None`` when no face is labelled.
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


def similarity_transform(source: np.ndarray, target: np.ndarray) -> np.ndarray:
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


def warp_face_labels(boxes: np.ndarray, landmarks: np.ndarray, matrices: np.ndarray, from_size: tuple[int, int],
                     to_size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Face labels through per-frame 2x3 pixel matrices.

    ``boxes`` (T, 4) x, y, w, h and ``landmarks`` (T, K, 2) are normalised to ``from_size`` = (height, width)
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


def warp_frames(frames: torch.Tensor, matrices: np.ndarray, output_size: tuple[int, int], antialias: bool = True,
                interpolation: str = "bilinear") -> torch.Tensor:
    """uint8 ``(T, 3, H, W)`` -> uint8 ``(T, 3, out_h, out_w)``: each frame warped by its 2x3 matrix.

    When a frame's warp shrinks it (zoom below 0.9), that frame is first downscaled with antialiasing to
    its own warp's scale, so the sampling afterwards does not alias. Each frame's pixels depend only on
    that frame and its matrix; frames that need the same downscale are processed together.
    """
    height, width = frames.shape[-2:]
    matrices = np.asarray(matrices, dtype=np.float64)
    scales = np.sqrt(np.abs(np.linalg.det(matrices[:, :, :2])))
    sizes = [(height, width) if not antialias or s >= ANTIALIAS_BELOW_SCALE
             else (max(1, round(height * s)), max(1, round(width * s))) for s in scales]
    out = torch.empty((len(frames), frames.shape[1], *output_size), dtype=torch.uint8, device=frames.device)
    for size in dict.fromkeys(sizes):
        rows = [t for t, s in enumerate(sizes) if s == size]
        group, group_matrices = frames[rows], matrices[rows].copy()
        if size != (height, width):
            group = tvF.resize(group, list(size), interpolation=tvF.InterpolationMode.BILINEAR, antialias=True)
            group_matrices[:, :, 0] *= width / size[1]
            group_matrices[:, :, 1] *= height / size[0]
        out[rows] = _grid_sample(group, group_matrices, output_size, interpolation)
    return out


def _grid_sample(frames: torch.Tensor, matrices: np.ndarray, output_size: tuple[int, int],
                 interpolation: str) -> torch.Tensor:
    """Output pixel centres -> source coordinates (inverse warp) -> grid_sample's [-1, 1] coordinates."""
    height, width = frames.shape[-2:]
    out_h, out_w = output_size
    inverse = invert_affine(matrices)
    ys, xs = np.meshgrid(np.arange(out_h) + 0.5, np.arange(out_w) + 0.5, indexing="ij")
    centres = np.stack([xs, ys, np.ones_like(xs)], axis=-1)  # (out_h, out_w, 3)
    source = np.einsum("tij,hwj->thwi", inverse, centres)
    grid = torch.from_numpy(source / np.array([width, height]) * 2.0 - 1.0).float().to(frames.device)
    warped = torch.nn.functional.grid_sample(frames.float(), grid, mode=interpolation, padding_mode="border",
                                             align_corners=False)
    return warped.round_().clamp_(0, 255).to(torch.uint8)


def label_tensors(boxes: np.ndarray, landmarks: np.ndarray, mask: np.ndarray):
    """Mapped face labels as float32 / float32 / bool tensors, zeros where the mask is False."""
    boxes[~mask] = 0.0
    landmarks[~mask] = 0.0
    return (
        torch.from_numpy(boxes.astype(np.float32)),
        torch.from_numpy(landmarks.astype(np.float32)),
        torch.from_numpy(mask),
    )


def crop_geometry(source_size: tuple[int, int], frame_indices: Any, crop: tuple[int, int, int]) -> FrameGeometry:
    """The geometry of cutting the integer square ``crop`` = ``(left, top, side)`` out of the frames, unscaled."""
    left, top, side = (int(v) for v in crop)
    indices = np.asarray(frame_indices, dtype=np.int64).reshape(-1)
    return FrameGeometry(mode="face_crop", frame_indices=indices,
                         source_size=(int(source_size[0]), int(source_size[1])), output_size=(side, side),
                         resized_size=(side, side), crop=(left, top, side),
                         matrices=_scale_matrices(len(indices), 1.0, 1.0, float(left), float(top)))


def mirror_face_labels(boxes, landmarks, mask):
    """Face labels of left-right mirrored frames: ``x -> 1 - x``, left and right points swapped
    (:data:`MIRRORED_LANDMARKS`); rows without a face are zero. numpy arrays or torch tensors, any leading shape
    (``(T, ...)`` or ``(B, T, ...)``); the inputs are not changed."""
    boxes, landmarks = boxes[..., [0, 1, 2, 3]], landmarks[..., list(MIRRORED_LANDMARKS), :]
    boxes[..., 0] = 1.0 - boxes[..., 0] - boxes[..., 2]
    landmarks[..., 0] = 1.0 - landmarks[..., 0]
    boxes[~mask] = 0.0
    landmarks[~mask] = 0.0
    return boxes, landmarks, mask


__all__ = ["FACE_ALIGN_POINTS", "FACE_ALIGN_TEMPLATE", "FACE_MODES", "RESIZE_MODES", "FrameGeometry",
           "build_frame_geometry", "crop_geometry", "face_crop_box", "identity_geometry", "invert_affine",
           "mirror_face_labels", "similarity_transform", "warp_face_labels", "warp_frames", "with_center_crop"]
