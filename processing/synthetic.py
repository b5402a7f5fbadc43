"""A built-in synthetic DFER data set: procedurally rendered face videos with exact face labels.

Every clip shows one synthetic subject ("actor") whose face unfolds one of 7 expressions over time
(neutral first, then an onset, then the apex), on a random background under random lighting, with
head motion and class-independent distractors (talking, blinks, gaze shifts, small random facial
movements). Boxes and the 5 landmarks are computed from the rendering geometry, so they are exact.

The files follow the RAVDESS naming and folder layout, so the set loads through
``processing.datasets.load_ravdess(root, num_classes=7)``::

    root/
      Actor_01/02-01-03-01-01-01-01.mp4      # modality 02 (video-only), vocal 01 (speech), emotion 03 ...
      ...
      face_labels.parquet                    # AnnotationCache, sampler_key "all", detector "synthetic"
      synthetic_info.json                    # the settings; generation is skipped when they match

Class cues (apex values; the clip starts neutral and ramps to them, actor- and clip-specific gains vary
them, and talking/blinks/gaze/noise movements are added independently of the class). Version 3 made the
brow, mouth-corner and sneer movements and the nose wrinkles about 1.5x larger than version 2, so that
they stay visible on the 56 px aligned faces the CPU main job trains on:

- neutral: no expression movement (only the distractors).
- happy: mouth corners up and widened, lips parted showing teeth, cheeks raised (lower lids up,
  cheek highlights), deeper nasolabial folds.
- sad: inner brow ends raised (oblique brows), upper lids drooping, mouth corners down, lips closed.
- angry: brows lowered and drawn together (V shape), eyes narrowed, lips pressed thin and narrower.
- fearful: brows raised and drawn together with inner ends up, eyes wide open, mouth stretched
  sideways and slightly open with corners pulled down.
- disgust: brows slightly lowered, nose wrinkles, upper lip raised on one side (sneer), squinted eyes,
  corners down, folds.
- surprised: brows raised high and arched, eyes wide open (sclera above the iris), jaw dropped with a
  round open mouth.

Background, skin tone, hair, face shape, head pose and lighting are drawn independently of the class.

Command line: ``mtcae-synthetic --root data/synthetic [--num_actors 24 --clips_per_class 6 ...]``
(:mod:`hub_scripts.synthetic`).
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .annotation_cache import ALL_FRAMES, AnnotationCache
from .decoding_mtcae import ffmpeg_path, read_video
from .drawing import draw_face_labels
from .face_labels_mtcae import NUM_LANDMARKS, FaceLabels
from .files import atomic_write, remove_abandoned_temporaries, write_json
from .workers import run_jobs

logger = logging.getLogger(__name__)

SYNTHETIC_VERSION = 3
"""Bump when the rendering changes, so existing sets on disk are regenerated."""

SYNTHETIC_CLASSES = ("neutral", "happy", "sad", "angry", "fearful", "disgust", "surprised")
"""Class order of the synthetic set = RAVDESS 7-class order (calm merged into neutral)."""

SYNTHETIC_EMOTION_CODES = {
    "neutral": "01",
    "happy": "03",
    "sad": "04",
    "angry": "05",
    "fearful": "06",
    "disgust": "07",
    "surprised": "08",
}
"""RAVDESS emotion code of each synthetic class (02 calm is never written)."""

INFO_FILENAME = "synthetic_info.json"
CACHE_FILENAME = "face_labels.parquet"
DETECTOR_NAME = "synthetic"

# Expression parameters (face-local units: 1.0 = the face's half height).
_PARAMS = (
    "brow_raise",  # whole brow up (+) / down (-)
    "brow_inner",  # inner brow end up (+) / down (-)
    "brow_squeeze",  # inner ends pulled toward the midline
    "eye_open",  # eye aperture gain (+ wide, - narrowed)
    "lower_lid",  # lower lid pushed up (cheek raise / squint)
    "smile",  # mouth corners up (+) / down (-)
    "mouth_width",  # relative mouth width change
    "mouth_open",  # jaw / lip opening
    "mouth_round",  # round "O" opening (narrower, taller)
    "lip_press",  # lips pressed thin
    "upper_lip_raise",  # one-sided upper lip raise (sneer)
    "nose_wrinkle",  # wrinkles across the nose bridge
    "fold",  # nasolabial fold depth
    "cheek",  # cheek raise highlight
)
_P = {name: i for i, name in enumerate(_PARAMS)}

_APEX = {
    "neutral": {},
    "happy": dict(smile=1.0, mouth_width=0.28, mouth_open=0.3, lower_lid=0.45, eye_open=-0.1, fold=1.0, cheek=1.0,
                  brow_raise=0.05),
    "sad": dict(brow_inner=1.0, brow_raise=-0.1, brow_squeeze=0.35, eye_open=-0.4, smile=-0.9, mouth_width=-0.05,
                lip_press=0.25),
    "angry": dict(brow_raise=-0.9, brow_inner=-1.0, brow_squeeze=1.0, eye_open=-0.3, lower_lid=0.2, lip_press=1.0,
                  mouth_width=-0.22, smile=-0.2),
    "fearful": dict(brow_raise=0.7, brow_inner=0.8, brow_squeeze=0.6, eye_open=0.75, mouth_width=0.38, mouth_open=0.45,
                    smile=-0.45),
    "disgust": dict(brow_raise=-0.45, brow_inner=-0.3, brow_squeeze=0.45, eye_open=-0.4, lower_lid=0.4,
                    upper_lip_raise=1.0, nose_wrinkle=1.0, smile=-0.45, fold=0.9),
    "surprised": dict(brow_raise=1.0, brow_inner=0.15, eye_open=1.0, mouth_open=1.0, mouth_round=1.0,
                      mouth_width=-0.3),
}

_SKIN_LIGHT = np.array([250, 218, 190], np.float32)
_SKIN_DARK = np.array([92, 58, 40], np.float32)
_HAIR_COLORS = np.array(
    [[20, 16, 14], [45, 30, 22], [90, 60, 35], [150, 110, 60], [200, 170, 110], [130, 55, 30], [160, 160, 160]],
    np.float32,
)
_IRIS_COLORS = np.array([[70, 45, 25], [40, 25, 15], [60, 110, 160], [70, 120, 80], [110, 85, 45]], np.float32)
_SUBPIXEL_BITS = 4  # cv2 fixed-point shift: 1/16 pixel precision for anti-aliased polygons
_SUBPIXEL = float(1 << _SUBPIXEL_BITS)


@dataclass(frozen=True)
class ActorStyle:
    """Fixed appearance of one synthetic subject."""

    face_rx: float  # face ellipse half width (half height is 1)
    eye_sep: float  # eye centre distance from the midline
    eye_y: float
    eye_w: float
    eye_h: float
    brow_gap: float  # brow height above the eye
    brow_thick: float
    nose_y: float
    nose_w: float
    mouth_y: float
    mouth_w: float
    lip_thick: float
    skin: tuple
    lip: tuple
    hair: tuple
    iris: tuple
    long_hair: bool
    hairline: float
    expressiveness: tuple  # per-parameter gain, how strongly this subject moves each part


def _actor_style(seed: int, actor: int) -> ActorStyle:
    rng = np.random.default_rng([seed, actor, 7919])
    tone = rng.uniform(0.0, 1.0)
    skin = (1 - tone) * _SKIN_LIGHT + tone * _SKIN_DARK + rng.normal(0, 6, 3)
    lip = skin * np.array([0.5, 0.25, 0.28]) + np.array([90, 5, 20])
    hair = _HAIR_COLORS[rng.integers(len(_HAIR_COLORS))] + rng.normal(0, 6, 3)
    iris = _IRIS_COLORS[rng.integers(len(_IRIS_COLORS))] + rng.normal(0, 5, 3)
    return ActorStyle(
        face_rx=rng.uniform(0.68, 0.82),
        eye_sep=rng.uniform(0.27, 0.35),
        eye_y=rng.uniform(-0.2, -0.1),
        eye_w=rng.uniform(0.16, 0.2),
        eye_h=rng.uniform(0.08, 0.1),
        brow_gap=rng.uniform(0.13, 0.18),
        brow_thick=rng.uniform(0.07, 0.1),
        nose_y=rng.uniform(0.18, 0.28),
        nose_w=rng.uniform(0.07, 0.1),
        mouth_y=rng.uniform(0.5, 0.58),
        mouth_w=rng.uniform(0.25, 0.3),
        lip_thick=rng.uniform(0.05, 0.07),
        skin=tuple(np.clip(skin, 0, 255).tolist()),
        lip=tuple(np.clip(lip, 0, 255).tolist()),
        hair=tuple(np.clip(hair, 0, 255).tolist()),
        iris=tuple(np.clip(iris, 0, 255).tolist()),
        long_hair=actor % 2 == 0,  # RAVDESS: even actors are female
        hairline=rng.uniform(-0.68, -0.52),
        expressiveness=tuple(rng.uniform(0.8, 1.2, len(_PARAMS)).tolist()),
    )


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def _make_background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A class-independent background: gradients, blobs, stripes or sinusoidal textures plus noise."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    yy /= height
    xx /= width
    c1, c2 = rng.uniform(20, 235, 3), rng.uniform(20, 235, 3)
    kind = rng.integers(4)
    if kind == 0:  # linear gradient
        angle = rng.uniform(0, 2 * np.pi)
        t = (xx - 0.5) * np.cos(angle) + (yy - 0.5) * np.sin(angle) + 0.5
    elif kind == 1:  # radial gradient
        cx, cy = rng.uniform(0, 1, 2)
        t = np.sqrt((xx - cx) ** 2 + (yy - cy) ** 2) / 1.2
    elif kind == 2:  # sinusoidal texture
        t = np.zeros_like(xx)
        for _ in range(3):
            fx, fy = rng.uniform(-8, 8, 2)
            t += np.sin(2 * np.pi * (fx * xx + fy * yy) + rng.uniform(0, 2 * np.pi))
        t = (t / 6 + 0.5)
    else:  # room-like: wall stripes / panels
        t = np.zeros_like(xx)
        edges = np.sort(rng.uniform(0, 1, rng.integers(2, 6)))
        for e in edges:
            t += (xx > e) * rng.uniform(-0.5, 0.5)
        t += (yy > rng.uniform(0.6, 0.9)) * rng.uniform(-0.4, 0.4)
        t = t - t.min()
        t = t / max(float(t.max()), 1e-6)
    t = np.clip(t, 0, 1)[..., None]
    image = (1 - t) * c1 + t * c2
    # Soft blobs (out-of-focus objects).
    import cv2

    blobs = np.zeros((height, width, 3), np.float32)
    for _ in range(rng.integers(0, 6)):
        center = (int(rng.uniform(0, width)), int(rng.uniform(0, height)))
        radius = int(rng.uniform(0.05, 0.25) * width)
        cv2.circle(blobs, center, radius, tuple(rng.uniform(-60, 60, 3).tolist()), -1)
    if blobs.any():
        blobs = cv2.GaussianBlur(blobs, (0, 0), sigmaX=max(2.0, width / 40))
    image = image + blobs + rng.normal(0, rng.uniform(2, 10), (height, width, 3))
    return np.clip(image, 0, 255).astype(np.float32)


class _Canvas:
    """Draws face-local geometry through a similarity transform with anti-aliased sub-pixel polygons."""

    def __init__(self, image: np.ndarray, center: np.ndarray, scale: float, angle: float):
        self.image = image
        c, s = math.cos(angle), math.sin(angle)
        self.matrix = np.array([[c * scale, -s * scale], [s * scale, c * scale]], np.float64)
        self.center = np.asarray(center, np.float64)
        self.scale = scale

    def project(self, points: np.ndarray) -> np.ndarray:
        return np.asarray(points, np.float64) @ self.matrix.T + self.center

    def _fixed(self, points: np.ndarray) -> np.ndarray:
        return np.round(self.project(points) * _SUBPIXEL).astype(np.int32)

    def fill(self, points: np.ndarray, color) -> None:
        import cv2

        cv2.fillPoly(self.image, [self._fixed(points)], color, cv2.LINE_AA, _SUBPIXEL_BITS)

    def line(self, points: np.ndarray, color, thickness: float, closed: bool = False) -> None:
        import cv2

        width = max(1, int(round(thickness * self.scale)))
        cv2.polylines(self.image, [self._fixed(points)], closed, color, width, cv2.LINE_AA, _SUBPIXEL_BITS)


_UNIT_CIRCLE = np.stack([np.cos(np.linspace(0, 2 * np.pi, 48, endpoint=False)),
                         np.sin(np.linspace(0, 2 * np.pi, 48, endpoint=False))], axis=1)


def _ellipse(cx: float, cy: float, rx: float, ry: float) -> np.ndarray:
    return _UNIT_CIRCLE * np.array([rx, ry]) + np.array([cx, cy])


def _mix(color_a, color_b, weight: float) -> tuple:
    weight = float(np.clip(weight, 0.0, 1.0))
    return tuple((np.asarray(color_a) * (1 - weight) + np.asarray(color_b) * weight).tolist())


def _quad_bezier(p0, p1, p2, n: int = 9) -> np.ndarray:
    t = np.linspace(0, 1, n)[:, None]
    return (1 - t) ** 2 * np.asarray(p0) + 2 * (1 - t) * t * np.asarray(p1) + t**2 * np.asarray(p2)


def _draw_face(
    canvas: _Canvas,
    style: ActorStyle,
    expr: np.ndarray,
    talk: float,
    blink: float,
    gaze: np.ndarray,
    shirt: tuple,
) -> np.ndarray:
    """Draw the head into ``canvas.image``; returns the 5 landmarks in face-local coordinates."""
    skin_dark = _mix(style.skin, (40, 20, 15), 0.35)
    e = {name: float(expr[i]) for i, name in enumerate(_PARAMS)}
    _draw_head(canvas, style, shirt, skin_dark)
    mouth_half = style.mouth_w * (1 + e["mouth_width"]) * (1 - 0.35 * max(e["mouth_round"], 0.0))
    lift = 0.13 * e["smile"]
    _draw_cheeks_and_folds(canvas, style, e, mouth_half, lift)
    _draw_eyes(canvas, style, e, blink, gaze)
    _draw_brows(canvas, style, e)
    ny = _draw_nose(canvas, style, e, skin_dark)
    _draw_mouth(canvas, style, e, talk, mouth_half, lift)
    landmarks = np.array(
        [
            [-style.eye_sep, style.eye_y],
            [style.eye_sep, style.eye_y],
            [0.0, ny],
            [-mouth_half, style.mouth_y - lift],
            [mouth_half, style.mouth_y - lift],
        ]
    )
    return landmarks


def _draw_head(canvas: _Canvas, style: ActorStyle, shirt: tuple, skin_dark: tuple) -> None:
    """Torso, neck, hair behind the head, ears, the face and its hairline fringe."""
    skin = style.skin
    rx = style.face_rx
    canvas.fill(np.array([[-1.6, 3.2], [-1.3, 1.35], [-0.4, 1.15], [0.4, 1.15], [1.3, 1.35], [1.6, 3.2]]), shirt)
    canvas.fill(np.array([[-0.27, 0.5], [0.27, 0.5], [0.3, 1.3], [0, 1.38], [-0.3, 1.3]]), skin_dark)
    if style.long_hair:
        canvas.fill(_ellipse(0, 0.15, rx * 1.3, 1.2), style.hair)
    else:
        canvas.fill(_ellipse(0, -0.3, rx * 1.08, 0.8), style.hair)
    for side in (-1, 1):
        canvas.fill(_ellipse(side * rx * 0.97, -0.02, 0.1, 0.19), skin_dark)
    face = _ellipse(0, 0, rx, 1.0)
    canvas.fill(face, skin)
    top = face[face[:, 1] < style.hairline]
    top = top[np.argsort(top[:, 0])]
    fringe = np.concatenate([top, np.array([[top[-1, 0], style.hairline], [0.3 * rx, style.hairline + 0.06],
                                            [-0.4 * rx, style.hairline + 0.03], [top[0, 0], style.hairline]])])
    # Order the fringe polygon around its centre so it is simple.
    centroid = fringe.mean(axis=0)
    fringe = fringe[np.argsort(np.arctan2(fringe[:, 1] - centroid[1], fringe[:, 0] - centroid[0]))]
    canvas.fill(fringe, style.hair)


def _draw_cheeks_and_folds(canvas: _Canvas, style: ActorStyle, e: dict, mouth_half: float, lift: float) -> None:
    """Cheek highlights (happy) and the nasolabial folds down to the mouth corners."""
    skin = style.skin
    mouth_y = style.mouth_y
    if e["cheek"] > 0.05:
        cheek_color = _mix(skin, (255, 150, 140), 0.22 * min(e["cheek"], 1.2))
        for side in (-1, 1):
            canvas.fill(_ellipse(side * (style.eye_sep + 0.03), style.eye_y + 0.27 - 0.05 * e["cheek"], 0.13, 0.09),
                        cheek_color)
    fold_strength = 0.2 + 0.6 * max(e["fold"], 0.0)
    for side in (-1, 1):
        fold = _quad_bezier((side * (style.nose_w + 0.06), style.nose_y - 0.03),
                            (side * (mouth_half + 0.1), mouth_y - 0.2),
                            (side * (mouth_half + 0.05), mouth_y - lift + 0.05), 7)
        canvas.line(fold, _mix(skin, (60, 30, 20), fold_strength * 0.6), 0.018)


def _draw_eyes(canvas: _Canvas, style: ActorStyle, e: dict, blink: float, gaze: np.ndarray) -> None:
    """Both eyes: sclera, iris (clipped by skin-coloured lids), lid lines and creases."""
    skin = style.skin
    eye_open = max(0.05, 1 + e["eye_open"]) * blink
    lower = max(0.05, 1 + 0.6 * max(e["eye_open"], 0) - e["lower_lid"]) * blink
    t = np.linspace(-1, 1, 13)
    for side in (-1, 1):
        ex = side * style.eye_sep
        ey = style.eye_y
        ew, eh = style.eye_w, style.eye_h
        xs = ex + ew * t
        bump = (1 - t**2) ** 0.6
        upper_y = ey - eh * eye_open * bump
        lower_y = ey + eh * lower * bump
        sclera = np.concatenate([np.stack([xs, upper_y], 1), np.stack([xs[::-1], lower_y[::-1]], 1)])
        canvas.fill(sclera, (238, 236, 230))
        # Iris, then skin-coloured lids above and below so the iris is clipped by the eye opening.
        iris_c = (ex + gaze[0] * ew * 0.35, ey + gaze[1] * eh * 0.3)
        canvas.fill(_ellipse(iris_c[0], iris_c[1], eh * 1.05, eh * 1.05), style.iris)
        canvas.fill(_ellipse(iris_c[0], iris_c[1], eh * 0.45, eh * 0.45), (15, 12, 12))
        lid_up = np.concatenate([np.stack([xs, upper_y], 1), np.array([[ex + ew * 1.2, ey - eh * 3.5],
                                                                      [ex - ew * 1.2, ey - eh * 3.5]])])
        lid_low = np.concatenate([np.stack([xs, lower_y], 1), np.array([[ex + ew * 1.2, ey + eh * 3.5],
                                                                       [ex - ew * 1.2, ey + eh * 3.5]])])
        canvas.fill(lid_up, skin)
        canvas.fill(lid_low, skin)
        canvas.line(np.stack([xs, upper_y], 1), (35, 25, 25), 0.022)
        canvas.line(np.stack([xs, lower_y], 1), _mix(skin, (60, 40, 35), 0.5), 0.01)
        crease = np.stack([xs * 0.9 + ex * 0.1, upper_y - eh * 0.6 - 0.01], 1)[2:-2]
        canvas.line(crease, _mix(skin, (60, 40, 35), 0.35), 0.01)


def _draw_brows(canvas: _Canvas, style: ActorStyle, e: dict) -> None:
    """Brows: inner end, arch, outer end (quadratic Bezier), drawn as a tapered band, always darker than skin."""
    brow_color = _mix(tuple(np.asarray(style.skin) * 0.3), style.hair, 0.25)
    for side in (-1, 1):
        base = style.eye_y - style.brow_gap - 0.15 * e["brow_raise"]
        inner = (side * (style.eye_sep - style.eye_w * 0.95 - 0.07 * e["brow_squeeze"]),
                 base - 0.13 * e["brow_inner"] + 0.02)
        outer = (side * (style.eye_sep + style.eye_w * 1.15), base + 0.03 - 0.02 * max(e["brow_raise"], 0))
        arch = (side * (style.eye_sep + 0.01), base - 0.04 - 0.04 * max(e["brow_raise"], 0)
                - 0.02 * e["brow_inner"])
        center_line = _quad_bezier(inner, arch, outer, 9)
        half = style.brow_thick * np.linspace(0.6, 0.3, 9)[:, None]
        band = np.concatenate([center_line - np.c_[np.zeros(9), half[:, 0]],
                               (center_line + np.c_[np.zeros(9), half[:, 0]])[::-1]])
        canvas.fill(band, brow_color)


def _draw_nose(canvas: _Canvas, style: ActorStyle, e: dict, skin_dark: tuple) -> float:
    """Nose: bridge shade, base arc, nostrils, wrinkles (disgust); returns the nose tip's face-local y."""
    skin = style.skin
    nose_w = style.nose_w * (1 + 0.25 * max(e["nose_wrinkle"], 0))
    ny = style.nose_y - 0.02 * max(e["nose_wrinkle"], 0)
    canvas.line(np.array([[0.0, style.eye_y + 0.05], [nose_w * 0.35, ny - 0.05]]), _mix(skin, (80, 50, 40), 0.25),
                0.012)
    base_arc = _quad_bezier((-nose_w, ny - 0.03), (0, ny + 0.06), (nose_w, ny - 0.03), 9)
    canvas.line(base_arc, skin_dark, 0.02)
    for side in (-1, 1):
        canvas.fill(_ellipse(side * nose_w * 0.45, ny + 0.005, nose_w * 0.28, 0.018), (70, 40, 35))
    if e["nose_wrinkle"] > 0.05:
        wrinkle_color = _mix(skin, (60, 35, 25), 0.7 * min(e["nose_wrinkle"], 1.2))
        for k in range(3):
            y = style.eye_y + 0.02 + 0.04 * k
            canvas.line(_quad_bezier((-0.09, y + 0.01), (0, y - 0.025), (0.09, y + 0.01), 5), wrinkle_color, 0.022)
    return ny


def _draw_mouth(canvas: _Canvas, style: ActorStyle, e: dict, talk: float, mouth_half: float, lift: float) -> None:
    """Mouth: lips around an opening whose height comes from the expression plus talking."""
    mouth_y = style.mouth_y
    opening = 0.15 * max(e["mouth_open"], 0.0) + 0.07 * talk
    round_ = float(np.clip(e["mouth_round"], 0, 1.2))
    press = float(np.clip(e["lip_press"], 0, 1.2))
    sneer = 0.09 * max(e["upper_lip_raise"], 0)
    t = np.linspace(-1, 1, 17)
    xs = mouth_half * t
    base_y = mouth_y - lift * t**2
    gap = opening * (1 - t**2) ** (0.5 if round_ > 0.5 else 0.8) * (1 + 0.6 * round_)
    sneer_profile = sneer * np.clip(1 - (t - 0.35) ** 2 / 0.5, 0, 1)  # one-sided raise
    inner_top = base_y - 0.3 * gap - sneer_profile
    inner_bot = base_y + 0.7 * gap
    lip_t = style.lip_thick * (1 - 0.7 * press)
    bump = (1 - t**2) ** 0.5
    outer_top = inner_top - lip_t * 0.85 * bump - 0.006
    outer_bot = inner_bot + lip_t * 1.1 * bump + 0.004
    lips = np.concatenate([np.stack([xs, outer_top], 1), np.stack([xs[::-1], outer_bot[::-1]], 1)])
    canvas.fill(lips, style.lip)
    if gap.max() > 0.006:
        cavity = np.concatenate([np.stack([xs, inner_top], 1), np.stack([xs[::-1], inner_bot[::-1]], 1)])
        canvas.fill(cavity, (55, 18, 22))
        teeth_h = np.minimum(gap * 0.35, 0.03)
        teeth = np.concatenate([np.stack([xs * 0.85, inner_top], 1),
                                np.stack([xs[::-1] * 0.85, (inner_top + teeth_h * 0.8)[::-1]], 1)])
        canvas.fill(teeth, (232, 228, 215))
    canvas.line(np.stack([xs, (inner_top + inner_bot) / 2 if gap.max() <= 0.006 else inner_top], 1),
                _mix(style.lip, (30, 10, 10), 0.5), 0.01)


def _encoder_settings() -> tuple[str, dict]:
    import av

    # No B-frames and no macroblock-tree lookahead: with them x264's output for short clips varies from run to
    # run (it reads uninitialised lookahead memory at the flush), which breaks byte-level determinism.
    x264 = {"crf": "20", "preset": "veryfast", "bf": "0", "x264-params": "mbtree=0"}
    for codec, options in (("libx264", x264), ("mpeg4", {"qscale": "3", "bf": "0"})):
        try:
            av.codec.Codec(codec, "w")
            return codec, options
        except Exception:  # codec not built into this PyAV wheel
            continue
    raise RuntimeError("PyAV has neither libx264 nor mpeg4 encoders")


def _clip_rng(seed: int, actor: int, emotion_index: int, clip: int) -> np.random.Generator:
    return np.random.default_rng([seed, actor, emotion_index, clip, 104729])


@dataclass
class _Tracks:
    """Per-frame motion of one clip: expression parameters, distractors and head pose."""

    expr: np.ndarray  # (n, len(_PARAMS))
    talk: np.ndarray  # (n,) mouth opening from talking
    blink: np.ndarray  # (n,) lid opening factor
    gaze: np.ndarray  # (n, 2) in [-1, 1]
    scale: np.ndarray  # (n,) face half height in pixels
    angle: np.ndarray  # (n,) head roll in radians
    centers: np.ndarray  # (n, 2) face centre in pixels


@dataclass
class _Scene:
    """Per-clip surroundings: background, shirt colour, lighting and sensor noise."""

    background: np.ndarray  # (H, W, 3) float32
    shirt: tuple
    light: np.ndarray  # (H, W, 1) float32 lighting gradient
    brightness: np.ndarray  # (n,) per-frame brightness
    noise_pool: list  # float32 (H, W, 3) noise images, cycled over the frames


def _expression_track(rng: np.random.Generator, style: ActorStyle, emotion: str, intensity: int,
                      time: np.ndarray) -> np.ndarray:
    """Expression trajectory: neutral, onset ramp, apex with a little sway, plus small random movements."""
    n = len(time)
    apex = np.zeros(len(_PARAMS))
    for name, value in _APEX[emotion].items():
        apex[_P[name]] = value
    gain = rng.uniform(0.8, 1.0) if intensity == 1 else rng.uniform(1.0, 1.2)
    apex = apex * gain * np.asarray(style.expressiveness) * rng.uniform(0.85, 1.15, len(_PARAMS))
    onset = rng.uniform(0.08, 0.3)
    ramp = rng.uniform(0.15, 0.35)
    progress = _smoothstep((np.arange(n) / max(n - 1, 1) - onset) / ramp)
    progress = progress * (1 - 0.08 * (1 + np.sin(2 * np.pi * rng.uniform(0.2, 0.6) * time + rng.uniform(0, 6))) / 2)
    # Class-independent small facial movements (e.g. a brief brow flash or lip movement).
    noise_amp = rng.uniform(0.0, 0.1, len(_PARAMS))
    noise_freq = rng.uniform(0.2, 0.9, len(_PARAMS))
    noise_phase = rng.uniform(0, 2 * np.pi, len(_PARAMS))
    return progress[:, None] * apex[None, :] + noise_amp * np.sin(2 * np.pi * noise_freq * time[:, None] + noise_phase)


def _distractor_tracks(rng: np.random.Generator, fps: int, time: np.ndarray
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Class-independent ``(talk, blink, gaze)`` tracks."""
    n = len(time)
    # Talking: syllable-rate mouth opening in most clips, any class.
    talk = np.zeros(n)
    if rng.uniform() < 0.7:
        f = rng.uniform(2.5, 5.0)
        talk = rng.uniform(0.3, 0.7) * np.clip(np.sin(2 * np.pi * f * time + rng.uniform(0, 6)), 0, None)
        talk *= 0.6 + 0.4 * np.abs(np.sin(2 * np.pi * rng.uniform(0.3, 0.8) * time))
    # Blinks: 3-5 frame lid closures at random times.
    blink = np.ones(n)
    t0 = rng.uniform(0, 1.5)
    while t0 < time[-1] + 1e-9:
        k = int(t0 * fps)
        for offset, value in enumerate((0.5, 0.08, 0.08, 0.5)):
            if 0 <= k + offset < n:
                blink[k + offset] = min(blink[k + offset], value)
        t0 += rng.uniform(1.2, 3.5)
    gaze = np.cumsum(rng.normal(0, 0.08, (n, 2)), axis=0)
    gaze = np.clip(gaze + rng.uniform(-0.4, 0.4, 2), -1, 1)
    return talk, blink, gaze


def _head_track(rng: np.random.Generator, face_scale: Sequence[float], height: int, width: int,
                time: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Head pose ``(scale, angle, centers)``: drift and sway, kept fully inside the frame."""
    scale0 = rng.uniform(*face_scale) * height
    scale = scale0 * (1 + rng.uniform(-0.08, 0.08) * time / max(time[-1], 1e-6)
                      + 0.02 * np.sin(2 * np.pi * rng.uniform(0.1, 0.4) * time))
    angle = np.deg2rad(rng.uniform(-8, 8) + rng.uniform(2, 7) * np.sin(2 * np.pi * rng.uniform(0.15, 0.6) * time
                                                                            + rng.uniform(0, 6)))
    amp = rng.uniform(0.0, 0.04, 2) * np.array([width, height])
    sway = amp[None, :] * np.sin(2 * np.pi * rng.uniform(0.1, 0.5, 2)[None, :] * time[:, None] + rng.uniform(0, 6, 2))
    drift = rng.uniform(-0.05, 0.05, 2) * np.array([width, height]) * (time / max(time[-1], 1e-6))[:, None]
    # Rotated face bounds never exceed the face's half height (1.0 in face units) times scale.
    reach = scale.max() * 1.02 + 2
    offsets = sway + drift
    lo = reach - offsets.min(axis=0)
    hi = np.array([width, height]) - reach - offsets.max(axis=0)
    center0 = np.where(hi > lo, rng.uniform(0, 1, 2) * (hi - lo) + lo, (lo + hi) / 2)
    return scale, angle, center0[None, :] + offsets


def _make_scene(rng: np.random.Generator, height: int, width: int, time: np.ndarray) -> _Scene:
    """Background, shirt colour, a lighting gradient, flicker and a pool of sensor noise images."""
    background = _make_background(rng, height, width)
    shirt = tuple(rng.uniform(20, 230, 3).tolist())
    light_angle = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    light = 1 + rng.uniform(0.05, 0.25) * ((xx / width - 0.5) * np.cos(light_angle)
                                            + (yy / height - 0.5) * np.sin(light_angle)) * 2
    light = light[..., None].astype(np.float32)
    brightness = rng.uniform(0.8, 1.15) * (1 + 0.05 * np.sin(2 * np.pi * rng.uniform(0.1, 0.5) * time))
    noise_pool = [rng.normal(0, 3.0, (height, width, 3)).astype(np.float32) for _ in range(3)]
    return _Scene(background, shirt, light, brightness, noise_pool)


def _render_frame(style: ActorStyle, scene: _Scene, tracks: _Tracks, i: int
                  ) -> tuple[np.ndarray, tuple, np.ndarray]:
    """Frame ``i`` as uint8 RGB, its normalised box ``(x, y, w, h)`` and its ``(5, 2)`` normalised landmarks."""
    height, width = scene.background.shape[:2]
    image = scene.background.copy()
    canvas = _Canvas(image, tracks.centers[i], float(tracks.scale[i]), float(tracks.angle[i]))
    local = _draw_face(canvas, style, tracks.expr[i], float(tracks.talk[i]), float(tracks.blink[i]), tracks.gaze[i],
                       scene.shirt)
    image = image * (scene.light * scene.brightness[i]) + scene.noise_pool[i % len(scene.noise_pool)]
    frame = np.clip(image, 0, 255).astype(np.uint8)

    points = canvas.project(local)
    # "Left" = smaller image x (the cache convention), whatever the head roll.
    if points[0, 0] > points[1, 0]:
        points[[0, 1]] = points[[1, 0]]
    if points[3, 0] > points[4, 0]:
        points[[3, 4]] = points[[4, 3]]
    # Box = axis-aligned bounds of the rotated face ellipse (half axes rx, 1).
    scale, angle, center = tracks.scale[i], tracks.angle[i], tracks.centers[i]
    c, s = math.cos(angle), math.sin(angle)
    half_w = scale * math.hypot(style.face_rx * c, s)
    half_h = scale * math.hypot(style.face_rx * s, c)
    x0, y0 = center[0] - half_w, center[1] - half_h
    box = (x0 / width, y0 / height, 2 * half_w / width, 2 * half_h / height)
    return frame, box, points / np.array([width, height])


def _encode_clip(out_path: Path, frames, fps: int, width: int, height: int) -> None:
    """Encode the uint8 RGB ``frames`` (an iterable) into ``out_path``, written through a temporary file."""
    import av
    import cv2

    codec, options = _encoder_settings()

    def write(temporary: str) -> None:
        with av.open(ffmpeg_path(temporary), mode="w") as container:
            stream = container.add_stream(codec, rate=fps, options=options)
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            stream.thread_count = 1  # one encoder thread per worker process
            for i, frame in enumerate(frames):
                # Convert to yuv420p here: PyAV's own rgb24 -> yuv420p reformat is not bit-reproducible.
                video_frame = av.VideoFrame.from_ndarray(cv2.cvtColor(frame, cv2.COLOR_RGB2YUV_I420),
                                                         format="yuv420p")
                video_frame.pts = i
                for packet in stream.encode(video_frame):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)

    atomic_write(out_path, write, prefix=f"{out_path.stem}.tmp.")


def _render_clip(job: dict) -> tuple[str, FaceLabels]:
    """Render and encode one clip (worker entry point); returns its relative path and exact labels."""
    import cv2

    cv2.setNumThreads(1)
    height, width = job["size"]
    style = _actor_style(job["seed"], job["actor"])
    rng = _clip_rng(job["seed"], job["actor"], job["emotion_index"], job["clip"])
    n = job["num_frames"]
    fps = job["fps"]
    time = np.arange(n) / fps
    # The draw order fixes the random streams: expression, distractors, head pose, then the scene.
    expr = _expression_track(rng, style, SYNTHETIC_CLASSES[job["emotion_index"]], job["intensity"], time)
    talk, blink, gaze = _distractor_tracks(rng, fps, time)
    scale, angle, centers = _head_track(rng, job["face_scale"], height, width, time)
    tracks = _Tracks(expr, talk, blink, gaze, scale, angle, centers)
    scene = _make_scene(rng, height, width, time)

    boxes = np.zeros((n, 4), np.float32)
    landmarks = np.zeros((n, NUM_LANDMARKS, 2), np.float32)

    def frames():
        for i in range(n):
            frame, boxes[i], landmarks[i] = _render_frame(style, scene, tracks, i)
            yield frame

    _encode_clip(Path(job["out_path"]), frames(), fps, width, height)
    labels = FaceLabels(np.arange(n), boxes, landmarks, np.ones(n, bool), np.ones(n, np.float32), width=width,
                        height=height, num_source_frames=n)
    return job["rel_path"], labels


def _clip_codes(emotion: str, clip: int) -> tuple[int, int, int]:
    """(intensity, statement, repetition) of the ``clip``-th clip of a class, RAVDESS-like.

    Emotional classes alternate normal/strong intensity; neutral uses normal intensity for its first
    4 clips (RAVDESS has no strong neutral) and strong only beyond that to keep names unique.
    """
    if emotion == "neutral":
        return 1 + clip // 4, 1 + clip % 2, 1 + (clip // 2) % 2
    return 1 + clip % 2, 1 + (clip // 2) % 2, 1 + (clip // 4) % 2


def _plan_jobs(root: Path, settings: dict) -> list[dict]:
    rng = np.random.default_rng([settings["seed"], 15485863])
    jitter = settings["num_frames_jitter"]
    low = max(2, int(round(settings["num_frames"] * (1 - jitter))))
    high = max(low, int(round(settings["num_frames"] * (1 + jitter))))
    jobs = []
    for actor in range(1, settings["num_actors"] + 1):
        for emotion_index, emotion in enumerate(SYNTHETIC_CLASSES):
            for clip in range(settings["clips_per_class"]):
                intensity, statement, repetition = _clip_codes(emotion, clip)
                name = (f"02-01-{SYNTHETIC_EMOTION_CODES[emotion]}-{intensity:02d}-{statement:02d}-"
                        f"{repetition:02d}-{actor:02d}.mp4")
                rel_path = f"Actor_{actor:02d}/{name}"
                jobs.append(dict(seed=settings["seed"], actor=actor, emotion_index=emotion_index, clip=clip,
                                 intensity=intensity, num_frames=int(rng.integers(low, high + 1)), fps=settings["fps"],
                                 size=tuple(settings["size"]), face_scale=tuple(settings["face_scale"]),
                                 rel_path=rel_path, out_path=str(root / rel_path)))
    return jobs


def _read_info(root: Path) -> dict | None:
    try:
        return json.loads((root / INFO_FILENAME).read_text())
    except (OSError, ValueError):
        return None


def _is_complete(root: Path, settings: dict) -> bool:
    info = _read_info(root)
    if not _same_settings(info, settings) or not info.get("complete", True):  # sets before 0.2 wrote it when done
        return False
    files = info.get("files", [])
    if not files or not all((root / f).is_file() for f in files):
        return False
    cache = AnnotationCache(root / CACHE_FILENAME)
    return all((f, ALL_FRAMES) in cache for f in files)


def _same_settings(info: dict | None, settings: dict) -> bool:
    return info is not None and info.get("version") == SYNTHETIC_VERSION and info.get("settings") == settings


def _synthetic_settings(num_actors: int, clips_per_class: int, num_frames: int, size: Sequence[int], fps: int,
                        seed: int, num_frames_jitter: float, face_scale: Sequence[float]) -> dict:
    """Check :func:`generate_synthetic_dfer`'s options; returns the settings ``synthetic_info.json`` records."""
    height, width = int(size[0]), int(size[1])
    if height % 2 or width % 2 or height < 32 or width < 32:
        raise ValueError(f"size must be even and at least 32x32, got {size}")
    if not 1 <= num_actors <= 99:
        raise ValueError("num_actors must be in 1..99 (two-digit RAVDESS actor codes)")
    if not 1 <= clips_per_class <= 8:
        raise ValueError("clips_per_class must be in 1..8 (the RAVDESS intensity/statement/repetition codes)")
    if num_frames < 2:
        raise ValueError("num_frames must be at least 2")
    low_scale, high_scale = (float(v) for v in face_scale)
    if not 0.05 <= low_scale <= high_scale <= 0.47:
        raise ValueError(f"face_scale must be a range inside [0.05, 0.47] (the head must fit the frame), "
                         f"got {face_scale}")
    return dict(num_actors=int(num_actors), clips_per_class=int(clips_per_class), num_frames=int(num_frames),
                num_frames_jitter=float(num_frames_jitter), size=[height, width], fps=int(fps), seed=int(seed),
                face_scale=[low_scale, high_scale], codec=_encoder_settings()[0])


def _remove_previous_set(root: Path, overwrite: bool) -> list[str]:
    """Remove what an earlier (different) synthetic set wrote, so no stale clips get loaded; returns its files.

    Raises:
        FileExistsError: ``root`` holds clips of another data set (no ``synthetic_info.json``) and not
            ``overwrite``.
    """
    old_info = _read_info(root)
    old_files = old_info.get("files", []) if old_info else []
    if not old_info and root.is_dir() and any(root.glob("Actor_*/*.mp4")):
        if not overwrite:
            raise FileExistsError(
                f"{root} holds Actor_*/*.mp4 files but no {INFO_FILENAME}; refusing to mix a synthetic set into "
                "another data set (pass overwrite=True to write anyway)."
            )
    (root / INFO_FILENAME).unlink(missing_ok=True)
    for rel in old_files:
        (root / rel).unlink(missing_ok=True)
    return old_files


def _write_info(root: Path, settings: dict, jobs: list[dict], complete: bool) -> None:
    """Write ``synthetic_info.json``: the settings, classes and files, and whether every clip is rendered (an
    interrupted render of the same settings resumes)."""
    info = dict(generator="processing.synthetic", version=SYNTHETIC_VERSION, settings=settings,
                classes=list(SYNTHETIC_CLASSES), emotion_codes=SYNTHETIC_EMOTION_CODES, num_clips=len(jobs),
                files=[job["rel_path"] for job in jobs], complete=complete)
    write_json(root / INFO_FILENAME, info, indent=1)


def _render_jobs(jobs: list[dict], cache: AnnotationCache, num_workers: int | None, progress: bool) -> None:
    """Render every job (in ``num_workers`` worker processes, or here for 0/1) and add its labels to ``cache``,
    which is saved whatever happens, so that what was rendered is kept (a dead worker: :class:`WorkersLost`)."""
    if num_workers is None:
        num_workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    bar = tqdm(total=len(jobs), desc="Rendering synthetic DFER clips", unit="clip", disable=not progress)
    try:
        for _, (rel, labels) in run_jobs(_render_clip, jobs, min(int(num_workers), len(jobs)),
                                         name=lambda job: job["rel_path"]):
            cache.add(rel, ALL_FRAMES, labels, detector=DETECTOR_NAME)
            bar.update()
    finally:
        bar.close()
        cache.save()


def generate_synthetic_dfer(root: str | os.PathLike, num_actors: int = 24, clips_per_class: int = 4,
                            num_frames: int = 32, size: Sequence[int] = (144, 192), fps: int = 25, seed: int = 0,
                            num_workers: int | None = None, overwrite: bool = False, num_frames_jitter: float = 0.25,
                            progress: bool = True, face_scale: Sequence[float] = (0.22, 0.33)) -> Path:
    """Render the synthetic DFER set (RAVDESS layout + exact face labels) into ``root``.

    Generation is skipped when ``root/synthetic_info.json`` records the same settings and every clip
    and its labels exist. The output is deterministic given the settings (independent of
    ``num_workers``).

    Args:
        root: output folder (created).
        num_actors: synthetic subjects ``Actor_01..Actor_NN`` (at most 99), each with a fixed face.
        clips_per_class: clips per subject and class (at most 8, the RAVDESS intensity x statement x
            repetition combinations).
        num_frames: nominal frames per clip; each clip draws its length uniformly from
            ``num_frames * (1 +- num_frames_jitter)``.
        size: ``(height, width)`` of the frames (even numbers, for yuv420p).
        fps: frame rate written into the files.
        seed: random seed.
        num_workers: worker processes (default: the usable CPU count); 0 renders in this process.
        overwrite: regenerate even when a complete set with the same settings exists.
        num_frames_jitter: relative clip length spread (0 = every clip has ``num_frames`` frames).
        progress: show a tqdm bar.
        face_scale: range of the face's half height as a fraction of the frame height (0.5 = the face
            fills the frame height); larger values give close-ups like face-cropped DFER sets.

    Returns:
        ``root`` as a ``Path``.
    """
    root = Path(root)
    settings = _synthetic_settings(num_actors, clips_per_class, num_frames, size, fps, seed, num_frames_jitter,
                                   face_scale)
    if not overwrite and _is_complete(root, settings):
        logger.info("Synthetic DFER set in %s is complete; skipping generation.", root)
        return root
    resuming = not overwrite and _same_settings(_read_info(root), settings)  # an interrupted render of these
    old_files = [] if resuming else _remove_previous_set(root, overwrite)
    jobs = _plan_jobs(root, settings)
    cache = AnnotationCache(root / CACHE_FILENAME)
    for rel in set(old_files) - {job["rel_path"] for job in jobs}:
        cache.remove(rel, ALL_FRAMES)
    todo = [job for job in jobs if not resuming or cache.state(job["rel_path"], ALL_FRAMES) != "current"]
    if resuming:
        logger.info("Resuming the synthetic set in %s: %d of %d clips left to render.", root, len(todo), len(jobs))
    remove_abandoned_temporaries(root, "Actor_*/*.tmp.*", ".tmp.")  # clips a killed render was writing
    _write_info(root, settings, jobs, complete=False)
    _render_jobs(todo, cache, num_workers, progress)
    _write_info(root, settings, jobs, complete=True)
    return root


def save_preview(root: str | os.PathLike, out_png: str | os.PathLike, frames_per_clip: int = 6,
                 clips_per_class: int = 1, actor: int | None = None, thumb_width: int = 240) -> Path:
    """Contact sheet of the synthetic set: one row per class and clip, frames over the clip, labels drawn.

    Args:
        root: a folder written by :func:`generate_synthetic_dfer`.
        out_png: the PNG to write.
        frames_per_clip: frames shown per clip, evenly spaced over the whole clip.
        clips_per_class: rows per class (taken from successive actors).
        actor: show only this actor (default: cycle through actors).
        thumb_width: width of each thumbnail in pixels.

    Returns:
        The PNG path.
    """
    import cv2

    root = Path(root)
    info = _read_info(root)
    if info is None:
        raise FileNotFoundError(f"{root / INFO_FILENAME} not found; generate the set first")
    cache = AnnotationCache(root / CACHE_FILENAME)
    files = info["files"]
    rows = []
    for emotion_index, emotion in enumerate(SYNTHETIC_CLASSES):
        code = SYNTHETIC_EMOTION_CODES[emotion]
        candidates = [f for f in files if f.split("/")[-1].split("-")[2] == code]
        if actor is not None:
            candidates = [f for f in candidates if f.startswith(f"Actor_{actor:02d}/")]
        # Spread the rows over actors so the sheet shows different subjects.
        step = max(1, len(candidates) // max(clips_per_class, 1))
        for rel in candidates[(emotion_index * 5) % max(step, 1)::step][:clips_per_class]:
            labels = cache.get(rel, ALL_FRAMES)
            n = labels.num_source_frames
            indices = np.linspace(0, n - 1, frames_per_clip).round().astype(int)
            frames, _, _ = read_video(root / rel, indices=indices)
            tiles = []
            for frame, i in zip(frames.numpy(), indices):
                tile = draw_face_labels(frame.copy(), labels.boxes[i], labels.landmarks[i])
                scale = thumb_width / tile.shape[1]
                tile = cv2.resize(tile, (thumb_width, int(round(tile.shape[0] * scale))), interpolation=cv2.INTER_AREA)
                cv2.putText(tile, f"{emotion} f{i}", (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1,
                            cv2.LINE_AA)
                tiles.append(tile)
            rows.append(np.concatenate(tiles, axis=1))
    if not rows:
        raise ValueError("no clips to preview")
    sheet = np.concatenate(rows, axis=0)
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out_png), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    return out_png


__all__ = ["ActorStyle", "SYNTHETIC_CLASSES", "SYNTHETIC_EMOTION_CODES", "SYNTHETIC_VERSION", "generate_synthetic_dfer",
           "save_preview"]
