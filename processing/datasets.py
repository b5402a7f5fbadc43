"""Dataset adapters (RAVDESS, CREMA-D, MEAD, a generic class-per-folder layout) and subject-wise folds.

Every adapter returns a ``datasets.Dataset`` of file paths (no decoding; decode on the fly with
``set_transform``) with the columns

- ``video``: absolute path (str),
- ``rel_path``: POSIX path relative to ``root``: the key of the face-label cache, i.e.
  ``AnnotationCache(root / "face_labels.parquet").labels_for(rel_path, frame_indices)``,
- ``label``: a ``ClassLabel`` in the FIXED order of the module constants below (never the order
  of a directory listing),
- ``subject``: the subject id (str),
- dataset-specific metadata (intensity, statement, view, level, ...).

Files that do not match the layout, or whose name is valid but holds an out-of-range code, are never
dropped silently: they are logged as a warning and listed in a :class:`LoadReport`, which is
returned with ``return_report=True`` and also summarised in ``dataset.info.description``. Files left
out on purpose (filters such as ``vocal="speech"``, known-broken files) are counted in the report too.

Folds: :func:`make_folds` gives subject-disjoint :class:`Fold` splits ("ravdess6", "crema5",
"ravdess_single", "subject_kfold", the official "dfew5" / "mafw5" / "ferv39k_official" or a JSON split
file), each carrying its protocol number (fold 2 of "ravdess6" tests
actors 05-08 even when actors 01-04 are absent); :func:`get_fold` picks a fold by that number and
:func:`add_validation_split` splits validation subjects off a fold's training subjects. The synthetic
set (``processing.synthetic``) loads with ``load_ravdess(root, num_classes=7)``; use
``make_folds(ds, "subject_kfold", k=4)`` for it (or "ravdess6", of which it then has the folds whose
actors it holds).

The same clip stored twice with different video extensions in one folder (``a.avi`` and ``a.mp4``)
is loaded once: the extension listed first in ``extensions`` wins, the other copy is reported as skipped.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .video_processing_mtcae import VIDEO_EXTENSIONS  # the one list of video file extensions

if TYPE_CHECKING:
    from datasets import Dataset, DatasetDict

logger = logging.getLogger(__name__)

# ----------------------------------------------------------------------------------------------------
# Fixed class orders.
# ----------------------------------------------------------------------------------------------------

RAVDESS_8_CLASSES = ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised")
"""RAVDESS emotion codes 01..08 in code order: label id = code - 1."""

RAVDESS_7_CLASSES = ("neutral", "happy", "sad", "angry", "fearful", "disgust", "surprised")
"""RAVDESS with calm (02) merged into neutral (the paper's setting): codes 01/02 -> 0, 03..08 -> 1..6."""

CREMA_D_CODES = ("ANG", "DIS", "FEA", "HAP", "NEU", "SAD")
CREMA_D_CLASSES = ("angry", "disgust", "fear", "happy", "neutral", "sad")
"""CREMA-D classes, in the alphabetical order of their codes ANG, DIS, FEA, HAP, NEU, SAD."""

MEAD_CLASSES = ("angry", "contempt", "disgusted", "fear", "happy", "neutral", "sad", "surprised")
"""MEAD classes = MEAD's folder names, alphabetical."""

MEAD_VIEWS = ("front", "left_30", "right_30", "left_60", "right_60", "top", "down")
MEAD_LEVELS = (1, 2, 3)

RAVDESS_MODALITIES = {"01": "audio-video", "02": "video-only", "03": "audio-only"}
RAVDESS_VOCAL = {"01": "speech", "02": "song"}
CREMA_D_SENTENCES = ("IEO", "TIE", "IOM", "IWW", "TAI", "MTI", "IWL", "ITH", "DFA", "ITS", "TSI", "WSI")
CREMA_D_LEVELS = ("LO", "MD", "HI", "XX")
CREMA_D_ACTORS = (1001, 1091)
CREMA_D_BROKEN = ("1076_MTI_NEU_XX", "1076_MTI_SAD_XX", "1064_TIE_SAD_XX", "1064_IEO_DIS_MD")
"""CREMA-D files known to be broken (empty / undecodable); skipped with a logged message."""

RAVDESS6_FOLDS = tuple(tuple(range(4 * k - 3, 4 * k + 1)) for k in range(1, 7))
"""HiCMAE / MAE-DFER RAVDESS protocol: fold k (1..6) tests actors 4k-3..4k."""

CREMA5_FOLDS = ((1001, 1018), (1019, 1036), (1037, 1054), (1055, 1072), (1073, 1091))
"""Peers' CREMA-D protocol: fold k tests the actors of the k-th inclusive id range."""

_RAVDESS_NAME = re.compile(r"^(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})$")
_CREMA_NAME = re.compile(r"^(\d{4})_([A-Z]{3})_([A-Z]{3})_([A-Z]{2})$")


# ----------------------------------------------------------------------------------------------------
# Reports.
# ----------------------------------------------------------------------------------------------------


@dataclass
class LoadReport:
    """What an adapter found besides the rows it returned.

    Attributes:
        dataset: adapter name.
        root: the data root.
        num_loaded: rows in the returned dataset.
        invalid: ``(rel_path, reason)`` for files that do not match the layout or hold an out-of-range code.
        skipped: ``(rel_path, reason)`` for valid files left out on purpose (known broken files).
        filtered: count of valid files left out by the adapter's filters (modality, vocal, view, level).
        ignored_non_video: count of files without a video extension (audio, parquet, json, ...).
    """

    dataset: str
    root: str
    num_loaded: int = 0
    invalid: list[tuple[str, str]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    filtered: int = 0
    ignored_non_video: int = 0
    warnings: list[str] = field(default_factory=list)

    def summary(self, max_items: int = 20) -> str:
        lines = [
            f"{self.dataset} at {self.root}: {self.num_loaded} videos loaded, {len(self.invalid)} invalid, "
            f"{len(self.skipped)} skipped, {self.filtered} filtered out, {self.ignored_non_video} non-video files "
            "ignored."
        ]
        for title, items in (("invalid", self.invalid), ("skipped", self.skipped),
                             ("warning", [(w, "") for w in self.warnings])):
            for rel, reason in items[:max_items]:
                lines.append(f"  {title}: {rel}: {reason}" if reason else f"  {title}: {rel}")
            if len(items) > max_items:
                lines.append(f"  ... and {len(items) - max_items} more {title} files")
        return "\n".join(lines)

    def log(self) -> None:
        if self.invalid:
            logger.warning("%d files do not match the %s layout and were not loaded:\n%s", len(self.invalid),
                           self.dataset, self.summary())
        for rel, reason in self.skipped:
            logger.info("Skipped %s: %s", rel, reason)


def find_video_files(root: str | os.PathLike, report: LoadReport | None = None,
                     extensions: Sequence[str] = VIDEO_EXTENSIONS) -> list[str]:
    """Sorted POSIX paths, relative to ``root``, of the video files under it: the one folder walker.

    Hidden files and folders (names starting with ".") are left out and counted in
    ``report.warnings``; files with another video extension than ``extensions`` are reported as
    invalid, other files counted as non-video.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"data root {root} does not exist or is not a folder")
    report = report if report is not None else LoadReport(dataset="videos", root=str(root))
    extensions = tuple(e.lower() if e.startswith(".") else f".{e.lower()}" for e in extensions)
    found, hidden = [], []
    for dirpath, dirnames, filenames in os.walk(root):
        hidden += [Path(dirpath, d).relative_to(root).as_posix() + "/" for d in dirnames if d.startswith(".")]
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            rel = Path(dirpath, name).relative_to(root).as_posix()
            if name.startswith("."):
                hidden.append(rel)
            elif name.lower().endswith(extensions):
                found.append(rel)
            elif name.lower().endswith(VIDEO_EXTENSIONS):
                report.invalid.append((rel, f"unexpected video extension (expected {', '.join(extensions)})"))
            else:
                report.ignored_non_video += 1
    if hidden:
        report.warnings.append(f"{len(hidden)} hidden file(s)/folder(s) left out: {', '.join(sorted(hidden)[:5])}")
    return _one_file_per_clip(sorted(found), extensions, report)


def _one_file_per_clip(relpaths: list[str], extensions: Sequence[str], report: LoadReport) -> list[str]:
    """Keep one file of each clip stored with several extensions (``a.avi`` and ``a.mp4``): the first extension."""
    by_clip: dict[str, list[str]] = {}
    for rel in relpaths:
        by_clip.setdefault(rel[: -len(Path(rel).suffix)], []).append(rel)
    kept = []
    for copies in by_clip.values():
        copies.sort(key=lambda rel: extensions.index(Path(rel).suffix.lower()))
        kept.append(copies[0])
        for other in copies[1:]:
            report.skipped.append((other, f"the same clip as {copies[0]} (one file per clip is loaded)"))
    if len(kept) < len(relpaths):
        logger.warning("%d video(s) are a second copy of a clip under another extension and were left out, e.g. %s",
                       len(relpaths) - len(kept), report.skipped[-1][0])
    return sorted(kept)


def _build(rows: list[dict], class_names: Sequence[str], report: LoadReport, extra_features: dict):
    """A ``datasets.Dataset`` with the common columns plus ``extra_features``; attaches and logs the report."""
    from datasets import ClassLabel, Dataset, DatasetInfo, Features, Value

    features = Features(
        {
            "video": Value("string"),
            "rel_path": Value("string"),
            "label": ClassLabel(names=list(class_names)),
            "subject": Value("string"),
            **extra_features,
        }
    )
    columns = {name: [row[name] for row in rows] for name in features}
    report.num_loaded = len(rows)
    report.log()
    info = DatasetInfo(description=report.summary(), features=features)
    return Dataset.from_dict(columns, features=features, info=info)


def _finish(dataset, report: LoadReport, return_report: bool, annotations=None):
    if annotations is not None:
        dataset = attach_face_labels(dataset, annotations)
    return (dataset, report) if return_report else dataset


FACE_LABEL_FEATURES = ("face_frame_indices", "face_boxes", "face_landmarks", "face_mask")


def attach_face_labels(dataset, annotations, sampler_key: str | None = None):
    """Join the face labels of each video from an annotation cache as columns of the dataset.

    Args:
        dataset: a dataset from one of the adapters (``rel_path`` is the cache key).
        annotations: an :class:`~processing.annotation_cache.AnnotationCache` or the path of its Parquet file.
        sampler_key: the cache rows to take (e.g. ``"uniform:16"``); ``None`` takes ``"all"`` rows (every
            frame, as the synthetic set writes them) or else the path's only row.

    Returns:
        The dataset with ``face_frame_indices`` (source frame indices), ``face_boxes`` (x, y, w, h),
        ``face_landmarks`` (5 x (x, y)) and ``face_mask`` columns, normalised to the source frame, as
        :class:`~processing.clip_transform.ClipTransform` and ``MTCAEVideoProcessor(face_labels=...)``
        take them; empty lists for a video the cache lacks (logged), so no frame of it trains the face heads.
    """
    from datasets import Sequence as HFSequence
    from datasets import Value

    from .annotation_cache import AnnotationCache

    cache = annotations if isinstance(annotations, AnnotationCache) else AnnotationCache(annotations)
    by_path: dict[str, list[str]] = {}
    for path, key in cache.keys():
        by_path.setdefault(path, []).append(key)
    columns = {name: [] for name in FACE_LABEL_FEATURES}
    missing = []
    for rel, video in zip(dataset["rel_path"], dataset["video"]):
        labels = cache.get(rel, sampler_key, file=video)  # that sampler's row, else the "all" row; None if stale
        if labels is None and len(by_path.get(rel, [])) == 1:
            labels = cache.get(rel, by_path[rel][0], file=video)
        if labels is None:
            missing.append(rel)
            for name in FACE_LABEL_FEATURES:
                columns[name].append([])
            continue
        columns["face_frame_indices"].append(np.asarray(labels.frame_indices).tolist())
        columns["face_boxes"].append(np.asarray(labels.boxes).tolist())
        columns["face_landmarks"].append(np.asarray(labels.landmarks).tolist())
        columns["face_mask"].append(np.asarray(labels.mask).tolist())
    if missing:
        logger.warning("%d of %d videos have no face labels in %s (their face losses are masked), e.g. %s",
                       len(missing), len(dataset), getattr(cache, "path", annotations), missing[:3])
    features = {
        "face_frame_indices": HFSequence(Value("int32")),
        "face_boxes": HFSequence(HFSequence(Value("float32"), length=4)),
        "face_landmarks": HFSequence(HFSequence(HFSequence(Value("float32"), length=2), length=5)),
        "face_mask": HFSequence(Value("bool")),
    }
    for name in FACE_LABEL_FEATURES:
        if name in dataset.column_names:
            dataset = dataset.remove_columns(name)
        dataset = dataset.add_column(name, columns[name], feature=features[name])
    return dataset


# ----------------------------------------------------------------------------------------------------
# Adapters.
# ----------------------------------------------------------------------------------------------------


def _check_ravdess_options(num_classes: int, vocal: str, modalities: Sequence[str]) -> tuple[str, ...]:
    """Validate :func:`load_ravdess`'s options; returns ``modalities`` as a tuple."""
    if num_classes not in (7, 8):
        raise ValueError(f"num_classes must be 7 or 8, got {num_classes}")
    if vocal not in ("speech", "song", "both"):
        raise ValueError(f"vocal must be 'speech', 'song' or 'both', got {vocal!r}")
    modalities = tuple(modalities)
    if "03" in modalities or not set(modalities) <= {"01", "02"}:
        raise ValueError(f"modalities must be a subset of ('01', '02'), got {modalities}")
    return modalities


def _ravdess_name_problems(parts: list[str], codes: Sequence[str]) -> list[str]:
    """What is wrong with a RAVDESS file name's seven codes (and its ``Actor_NN`` folder, if any)."""
    modality, voc, emotion, intensity, statement, repetition, actor = codes
    problems = []
    if modality not in RAVDESS_MODALITIES:
        problems.append(f"modality {modality} not in 01-03")
    if voc not in RAVDESS_VOCAL:
        problems.append(f"vocal channel {voc} not in 01-02")
    if not 1 <= int(emotion) <= 8:
        problems.append(f"emotion {emotion} not in 01-08")
    for name, value in (("intensity", intensity), ("statement", statement), ("repetition", repetition)):
        if value not in ("01", "02"):
            problems.append(f"{name} {value} not in 01-02")
    if int(actor) < 1:
        problems.append(f"actor {actor} < 01")
    if len(parts) == 2:
        folder = re.fullmatch(r"Actor_(\d+)", parts[0])
        if folder is None or int(folder.group(1)) != int(actor):
            problems.append(f"actor {actor} does not match folder {parts[0]}")
    return problems


def _ravdess_row(root: Path, rel: str, codes: Sequence[str], num_classes: int) -> dict:
    """The dataset row of a valid RAVDESS file (7 classes merge calm, code 02, into neutral)."""
    modality, voc, emotion, intensity, statement, repetition, actor = codes
    code = int(emotion)
    label = code - 1 if num_classes == 8 else (0 if code <= 2 else code - 2)
    return dict(
        video=str(root / rel),
        rel_path=rel,
        label=label,
        subject=actor,
        actor=int(actor),
        gender="male" if int(actor) % 2 else "female",
        modality=modality,
        vocal=RAVDESS_VOCAL[voc],
        emotion_code=emotion,
        intensity=int(intensity),
        statement=int(statement),
        repetition=int(repetition),
    )


def load_ravdess(
    root: str | os.PathLike,
    num_classes: int = 7,
    vocal: str = "speech",
    modalities: Sequence[str] = ("01", "02"),
    return_report: bool = False,
    annotations: str | os.PathLike | None = None,
):
    """RAVDESS (and the synthetic set): ``Actor_NN/MM-VV-EE-II-SS-RR-AA.mp4``.

    Args:
        root: folder holding the ``Actor_NN`` folders (files directly in ``root`` are accepted too).
        num_classes: 7 (calm merged into neutral, :data:`RAVDESS_7_CLASSES`) or 8 (:data:`RAVDESS_8_CLASSES`).
        vocal: "speech", "song" or "both".
        modalities: modality codes to keep: "01" audio-video, "02" video-only ("03" audio-only has no video
            and is rejected).
        return_report: also return the :class:`LoadReport`.
        annotations: a face-label cache (``mtcae-annotate`` output) to join; see :func:`attach_face_labels`.

    Returns:
        A ``Dataset`` with columns video, rel_path, label, subject (actor code "01".."24"), actor (int),
        gender ("male" for odd actors, "female" for even), modality, vocal, emotion_code, intensity,
        statement, repetition; and the report if ``return_report``.
    """
    from datasets import Value

    modalities = _check_ravdess_options(num_classes, vocal, modalities)
    root = Path(root).expanduser().resolve()
    class_names = RAVDESS_7_CLASSES if num_classes == 7 else RAVDESS_8_CLASSES
    report = LoadReport("RAVDESS", str(root))
    rows = []
    for rel in find_video_files(root, report):
        parts = rel.split("/")
        match = _RAVDESS_NAME.match(Path(parts[-1]).stem)
        if match is None or len(parts) > 2:
            report.invalid.append((rel, "expected Actor_NN/MM-VV-EE-II-SS-RR-AA.<ext>"))
            continue
        modality, voc = match.groups()[:2]
        problems = _ravdess_name_problems(parts, match.groups())
        if problems:
            report.invalid.append((rel, "; ".join(problems)))
            continue
        if modality == "03":
            report.invalid.append((rel, "modality 03 (audio-only) in a video file"))
            continue
        if modality not in modalities or (vocal != "both" and RAVDESS_VOCAL[voc] != vocal):
            report.filtered += 1
            continue
        rows.append(_ravdess_row(root, rel, match.groups(), num_classes))
    extra = {
        "actor": Value("int32"),
        "gender": Value("string"),
        "modality": Value("string"),
        "vocal": Value("string"),
        "emotion_code": Value("string"),
        "intensity": Value("int32"),
        "statement": Value("int32"),
        "repetition": Value("int32"),
    }
    return _finish(_build(rows, class_names, report, extra), report, return_report, annotations)


def _not_one_of(field_name: str, value: str, allowed: Sequence[str]) -> list[str]:
    """``["{field_name} {value} not in a, b, ..."]`` when ``value`` is not allowed, else ``[]``."""
    return [] if value in allowed else [f"{field_name} {value} not in {', '.join(allowed)}"]


def _crema_d_name_problems(actor: str, sentence: str, emotion: str, level: str) -> list[str]:
    """What is wrong with a CREMA-D file name's four fields."""
    problems = []
    if not CREMA_D_ACTORS[0] <= int(actor) <= CREMA_D_ACTORS[1]:
        problems.append(f"actor {actor} not in {CREMA_D_ACTORS[0]}-{CREMA_D_ACTORS[1]}")
    if sentence not in CREMA_D_SENTENCES:
        problems.append(f"sentence {sentence} unknown")
    return problems + _not_one_of("emotion", emotion, CREMA_D_CODES) + _not_one_of("level", level, CREMA_D_LEVELS)


def load_crema_d(
    root: str | os.PathLike,
    extensions: Sequence[str] = (".flv",),
    skip_broken: bool = True,
    return_report: bool = False,
    annotations: str | os.PathLike | None = None,
):
    """CREMA-D: ``VideoFlash/AAAA_SSS_EEE_LL.flv`` (or the files directly in ``root``).

    Args:
        root: the CREMA-D folder (holding ``VideoFlash``) or the ``VideoFlash`` folder itself.
        extensions: video extensions to load; e.g. ``(".mp4",)`` for a converted copy.
        skip_broken: skip the known broken files :data:`CREMA_D_BROKEN` (logged).
        return_report: also return the :class:`LoadReport`.
        annotations: a face-label cache (``mtcae-annotate`` output) to join; see :func:`attach_face_labels`.

    Returns:
        A ``Dataset`` with columns video, rel_path, label (:data:`CREMA_D_CLASSES`), subject (actor id
        "1001".."1091"), actor (int), sentence, level ("LO", "MD", "HI", "XX"); and the report if asked.
    """
    from datasets import Value

    root = Path(root).expanduser().resolve()
    report = LoadReport("CREMA-D", str(root))
    rows = []
    for rel in find_video_files(root, report, extensions):
        parts = rel.split("/")
        stem = Path(parts[-1]).stem
        match = _CREMA_NAME.match(stem)
        if match is None or not (len(parts) == 1 or (len(parts) == 2 and parts[0] == "VideoFlash")):
            report.invalid.append((rel, "expected [VideoFlash/]AAAA_SSS_EEE_LL.<ext>"))
            continue
        actor, sentence, emotion, level = match.groups()
        problems = _crema_d_name_problems(actor, sentence, emotion, level)
        if problems:
            report.invalid.append((rel, "; ".join(problems)))
            continue
        if skip_broken and stem in CREMA_D_BROKEN:
            report.skipped.append((rel, "known broken CREMA-D file"))
            continue
        rows.append(
            dict(
                video=str(root / rel),
                rel_path=rel,
                label=CREMA_D_CODES.index(emotion),
                subject=actor,
                actor=int(actor),
                sentence=sentence,
                level=level,
            )
        )
    extra = {"actor": Value("int32"), "sentence": Value("string"), "level": Value("string")}
    return _finish(_build(rows, CREMA_D_CLASSES, report, extra), report, return_report, annotations)


def _check_mead_options(views: Sequence[str], levels: Sequence[int]) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """Validate :func:`load_mead`'s options; returns them as tuples."""
    views = tuple(views)
    levels = tuple(int(k) for k in levels)
    if not set(views) <= set(MEAD_VIEWS):
        raise ValueError(f"views must be in {MEAD_VIEWS}, got {views}")
    if not set(levels) <= set(MEAD_LEVELS):
        raise ValueError(f"levels must be in {MEAD_LEVELS}, got {levels}")
    return views, levels


def _mead_path_problems(view: str, emotion: str, level: int, name: str) -> list[str]:
    """What is wrong with a MEAD file's view, emotion and level folders and its clip name."""
    problems = _not_one_of("view", view, MEAD_VIEWS) + _not_one_of("emotion", emotion, MEAD_CLASSES)
    if level not in MEAD_LEVELS:
        problems.append(f"level {level} not in 1-3")
    elif emotion == "neutral" and level != 1:
        problems.append("neutral exists only at level_1")
    if not re.fullmatch(r"\d{3}", Path(name).stem):
        problems.append(f"clip name {name} is not NNN")
    return problems


def load_mead(
    root: str | os.PathLike,
    views: Sequence[str] = ("front",),
    levels: Sequence[int] = (1, 2, 3),
    return_report: bool = False,
    annotations: str | os.PathLike | None = None,
):
    """MEAD: ``SUBJ/video/{view}/{emotion}/level_{k}/NNN.mp4`` (8 classes; neutral only at level 1).

    Args:
        root: folder holding the subject folders (``M003``, ``W009``, ...).
        views: camera views to keep, from :data:`MEAD_VIEWS`.
        levels: intensity levels to keep, from 1-3.
        return_report: also return the :class:`LoadReport`.
        annotations: a face-label cache (``mtcae-annotate`` output) to join; see :func:`attach_face_labels`.

    Returns:
        A ``Dataset`` with columns video, rel_path, label (:data:`MEAD_CLASSES`), subject (e.g. "M003"),
        view, level (int), clip ("001"); and the report if asked.
    """
    from datasets import Value

    views, levels = _check_mead_options(views, levels)
    root = Path(root).expanduser().resolve()
    report = LoadReport("MEAD", str(root))
    rows = []
    for rel in find_video_files(root, report):
        parts = rel.split("/")
        if len(parts) != 6 or parts[1] != "video" or not re.fullmatch(r"level_\d+", parts[4]):
            report.invalid.append((rel, "expected SUBJ/video/{view}/{emotion}/level_{k}/NNN.mp4"))
            continue
        subject, _, view, emotion, level_dir, name = parts
        clip = Path(name).stem
        level = int(level_dir.split("_")[1])
        problems = _mead_path_problems(view, emotion, level, name)
        if problems:
            report.invalid.append((rel, "; ".join(problems)))
            continue
        if view not in views or level not in levels:
            report.filtered += 1
            continue
        rows.append(
            dict(
                video=str(root / rel),
                rel_path=rel,
                label=MEAD_CLASSES.index(emotion),
                subject=subject,
                view=view,
                level=level,
                clip=clip,
            )
        )
    extra = {"view": Value("string"), "level": Value("int32"), "clip": Value("string")}
    return _finish(_build(rows, MEAD_CLASSES, report, extra), report, return_report, annotations)


def load_video_folder(
    root: str | os.PathLike,
    class_names: Sequence[str] | None = None,
    subject_regex: str | None = None,
    extensions: Sequence[str] = VIDEO_EXTENSIONS,
    return_report: bool = False,
    annotations: str | os.PathLike | None = None,
):
    r"""A generic layout: ``root/{class_name}/**/*.mp4`` (one folder per class, any depth below it).

    Args:
        root: folder holding one folder per class.
        class_names: the class order (label id = position). Default: the class folders sorted
            alphabetically; pass it explicitly to fix the order. Files in other folders are reported.
        subject_regex: a regular expression searched in the POSIX relative path; its group named
            ``subject`` (or else its first group, or else the whole match) is the subject, e.g.
            ``r"(?P<subject>sub\d+)_"``. Without it every subject is "unknown". Files where it does not
            match keep subject "unknown", are loaded, and are listed in ``report.warnings``.
        extensions: video extensions to load.
        return_report: also return the :class:`LoadReport`.
        annotations: a face-label cache (``mtcae-annotate`` output) to join; see :func:`attach_face_labels`.

    Returns:
        A ``Dataset`` with columns video, rel_path, label, subject; and the report if asked.
    """
    root = Path(root).expanduser().resolve()
    report = LoadReport("video folder", str(root))
    relpaths = find_video_files(root, report, extensions)
    if class_names is None:
        class_names = sorted({rel.split("/")[0] for rel in relpaths if "/" in rel})
    class_names = list(class_names)
    index = {name: i for i, name in enumerate(class_names)}
    pattern = re.compile(subject_regex) if subject_regex else None
    rows, unparsed = [], []
    for rel in relpaths:
        parts = rel.split("/")
        if len(parts) < 2:
            report.invalid.append((rel, "file directly in root; expected {class_name}/..."))
            continue
        if parts[0] not in index:
            report.invalid.append((rel, f"folder {parts[0]!r} is not one of the classes {class_names}"))
            continue
        subject = "unknown"
        if pattern is not None:
            match = pattern.search(rel)
            if match is None:
                unparsed.append(rel)
            else:
                groups = match.groupdict()
                subject = groups.get("subject") or (match.group(1) if match.groups() else match.group(0))
        rows.append(dict(video=str(root / rel), rel_path=rel, label=index[parts[0]], subject=subject))
    for rel in unparsed:
        report.warnings.append(f"{rel}: subject_regex {subject_regex!r} found no subject; subject 'unknown'")
    if unparsed:
        logger.warning("subject_regex %r matched no subject in %d files (subject 'unknown'), e.g. %s",
                       subject_regex, len(unparsed), unparsed[:5])
    return _finish(_build(rows, class_names, report, {}), report, return_report, annotations)


# ----------------------------------------------------------------------------------------------------
# Folds.
# ----------------------------------------------------------------------------------------------------


@dataclass
class Fold:
    """One subject-disjoint split of a dataset.

    Attributes:
        name: e.g. "fold1" (a split file's own fold names are kept).
        train_subjects / test_subjects / val_subjects: sorted subject ids (``val`` empty unless set).
        train_indices / test_indices / val_indices: row indices into the dataset the fold was made from.
        number: the fold's 1-based number in its scheme (the protocol's fold number, whichever folds
            the data set has subjects for; a split file's folds are numbered in file order).
    """

    name: str
    train_subjects: list[str]
    test_subjects: list[str]
    val_subjects: list[str] = field(default_factory=list)
    train_indices: list[int] = field(default_factory=list)
    test_indices: list[int] = field(default_factory=list)
    val_indices: list[int] = field(default_factory=list)
    number: int | None = None

    def select(self, dataset: Dataset) -> DatasetDict:
        """``DatasetDict`` with "train", "test" and (when there are validation subjects) "validation"."""
        from datasets import DatasetDict

        splits = {"train": dataset.select(self.train_indices), "test": dataset.select(self.test_indices)}
        if self.val_subjects:
            splits["validation"] = dataset.select(self.val_indices)
        return DatasetDict(splits)


def _subject_key(subject) -> str:
    """Canonical subject id: integer-like ids compare as integers ("01" == "1" == 1)."""
    text = str(subject).strip()
    return str(int(text)) if re.fullmatch(r"\d+", text) else text


def _fold_from_subjects(name: str, subjects: Sequence[str], train: Iterable, test: Iterable,
                        val: Iterable = (), number: int | None = None, source: str = "") -> Fold:
    """A :class:`Fold` of the rows of ``subjects``; named test or validation subjects must exist."""
    by_key: dict[str, str] = {}
    for s in subjects:
        by_key.setdefault(_subject_key(s), s)
    train_keys = {_subject_key(s) for s in train}
    test_keys = {_subject_key(s) for s in test}
    val_keys = {_subject_key(s) for s in val}
    where = f"{source}: fold {name!r}" if source else name
    overlap = (train_keys & test_keys) | (train_keys & val_keys) | (test_keys & val_keys)
    if overlap:
        raise ValueError(f"{where}: subjects {sorted(overlap)} are in more than one of train/val/test")
    for role, keys in (("test", test_keys), ("validation", val_keys)):
        missing = keys - set(by_key)
        if missing:
            raise ValueError(f"{where}: {role} subjects {sorted(missing)} are not in the data set "
                             f"(its subjects: {', '.join(sorted(by_key.values()))})")
    if not test_keys:
        raise ValueError(f"{where}: no test subjects")
    if train_keys - set(by_key):
        logger.warning("%s: training subjects %s are not in the data set", where, sorted(train_keys - set(by_key)))
    keys = np.array([_subject_key(s) for s in subjects])

    def indices(wanted: set[str]) -> list[int]:
        return np.flatnonzero(np.isin(keys, sorted(wanted))).tolist() if wanted else []

    def names(wanted: set[str]) -> list[str]:
        return sorted(by_key[k] for k in wanted if k in by_key)

    return Fold(name, names(train_keys), names(test_keys), names(val_keys),
                indices(train_keys), indices(test_keys), indices(val_keys), number=number)


def load_split_file(path: str | os.PathLike) -> dict[str, dict[str, list[str]]]:
    """Read a JSON split file: ``{"fold1": {"train": [...], "test": [...], "val": [...]}, ...}``.

    A list of such objects is accepted too (folds named fold1, fold2, ...). "val" / "validation" is
    optional. Subjects may be strings or integers; integer-like ids match regardless of zero padding.

    Raises:
        ValueError: naming the file and the fold, for a file that does not parse or a fold without
            "train" and a non-empty "test" list.
    """
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"cannot read the split file {path}: {error}") from error
    if isinstance(data, list):
        data = {f"fold{i + 1}": fold for i, fold in enumerate(data)}
    if not isinstance(data, dict) or not data:
        raise ValueError(f"{path}: expected a non-empty JSON object fold -> {{train, test[, val]}}")
    folds = {}
    for name, fold in data.items():
        if not isinstance(fold, dict) or not isinstance(fold.get("train"), list) or not fold.get("test"):
            raise ValueError(f"{path}: fold {name!r} needs a 'train' list and a non-empty 'test' list")
        folds[str(name)] = {
            "train": [str(s) for s in fold["train"]],
            "test": [str(s) for s in fold["test"]],
            "val": [str(s) for s in fold.get("val", fold.get("validation", []))],
        }
    return folds


PROTOCOL_RANGES = {"ravdess6": tuple((a[0], a[-1]) for a in RAVDESS6_FOLDS), "crema5": CREMA5_FOLDS}
"""The named protocols: fold k tests the subjects whose numeric id is in the k-th inclusive range."""


def _named_schemes() -> dict[str, tuple]:
    """The schemes a function of the data set defines: name -> ``(folds(dataset) -> list[Fold], number of folds)``.

    ``ravdess_single`` is the MTCAE-DFER paper's one RAVDESS split (:mod:`processing.protocols`); ``dfew5``,
    ``mafw5`` and ``ferv39k_official`` are the official folds read from those data sets' split files
    (:mod:`processing.datasets_in_the_wild`: they need its adapters' ``test_fold`` column).
    """
    from .datasets_in_the_wild import DFEW_FOLDS, MAFW_FOLDS, dfew5, ferv39k_official, mafw5
    from .protocols import ravdess_single

    return {"ravdess_single": (ravdess_single, 1), "dfew5": (dfew5, DFEW_FOLDS), "mafw5": (mafw5, MAFW_FOLDS),
            "ferv39k_official": (ferv39k_official, 1)}


def fold_scheme_names() -> tuple[str, ...]:
    """The built-in fold schemes (anything else given as a scheme is read as a JSON split file)."""
    return (*PROTOCOL_RANGES, *_named_schemes(), "subject_kfold")


def is_split_file(scheme: str | os.PathLike) -> bool:
    """Whether a fold scheme names a JSON split file rather than a built-in scheme."""
    return str(scheme) not in fold_scheme_names()


def _protocol_folds(scheme: str, subjects: list[str], unique: list[str]) -> list[Fold]:
    non_numeric = [s for s in unique if not s.isdigit()]
    if non_numeric:
        raise ValueError(f"{scheme} needs numeric subject ids, got e.g. {non_numeric[:3]}")
    ranges = PROTOCOL_RANGES[scheme]
    outside = [s for s in unique if not any(lo <= int(s) <= hi for lo, hi in ranges)]
    if outside:
        raise ValueError(f"{scheme}: subjects {outside} fall outside the protocol's ranges")
    folds = []
    for number, (lo, hi) in enumerate(ranges, start=1):
        test = [s for s in unique if lo <= int(s) <= hi]
        if not test:
            logger.warning("%s: fold %d (subjects %d-%d) has no subjects in this data set; left out", scheme,
                           number, lo, hi)
            continue
        train = [s for s in unique if s not in test]
        folds.append(_fold_from_subjects(f"fold{number}", subjects, train, test, number=number))
    return folds


def _subject_kfold(subjects: list[str], unique: list[str], k: int, seed: int) -> list[Fold]:
    from sklearn.model_selection import GroupKFold

    if not 2 <= k <= len(unique):
        raise ValueError(f"subject_kfold needs 2 <= k <= number of subjects ({len(unique)}), got {k}")
    splitter = GroupKFold(n_splits=k, shuffle=True, random_state=seed)
    folds = []
    for number, (_, test_rows) in enumerate(splitter.split(np.zeros(len(subjects)), groups=subjects), start=1):
        test = sorted({subjects[i] for i in test_rows})
        train = [s for s in unique if s not in set(test)]
        folds.append(_fold_from_subjects(f"fold{number}", subjects, train, test, number=number))
    return folds


def make_folds(
    dataset,
    scheme: str | os.PathLike = "subject_kfold",
    k: int = 5,
    seed: int = 0,
) -> list[Fold]:
    """Subject-disjoint cross-validation folds, each with its protocol number (:attr:`Fold.number`).

    Args:
        dataset: a dataset from one of the adapters (needs a ``subject`` column), or a sequence of
            subject ids, one per row.
        scheme: one of
            - "ravdess6": fold k tests actors 4k-3..4k (k = 1..6), the rest train. Folds without any of
              their actors in the dataset are left out (logged); the others keep their numbers.
            - "crema5": fold k tests the actors in the k-th range of :data:`CREMA5_FOLDS`.
            - "ravdess_single": the MTCAE-DFER paper's one RAVDESS split, 12 / 6 / 6 actors for train /
              validation / test (:func:`processing.protocols.ravdess_single`; one fold, validation set).
            - "dfew5", "mafw5", "ferv39k_official": the official folds of those data sets (fold k tests the
              clips of the k-th official test list); the dataset must come from their adapters.
            - "subject_kfold": scikit-learn's ``GroupKFold(k, shuffle=True, random_state=seed)`` over the
              subjects: ``k`` near-equal groups of subjects, fold i tests group i (MEAD, generic, synthetic).
            - a path to a JSON split file (see :func:`load_split_file`); folds as given, validated to
              be subject-disjoint and to name only test / validation subjects the dataset has.
        k: number of folds for "subject_kfold".
        seed: shuffle seed for "subject_kfold".

    Returns:
        A list of :class:`Fold`. For the built-in schemes every subject present is tested exactly once.
    """
    subjects = list(dataset["subject"]) if hasattr(dataset, "column_names") else [str(s) for s in dataset]
    unique = sorted(set(subjects), key=lambda s: (not s.isdigit(), int(s) if s.isdigit() else 0, s))
    if not unique:
        raise ValueError("the dataset has no subjects")
    scheme_name = str(scheme)
    if scheme_name in PROTOCOL_RANGES:
        return _protocol_folds(scheme_name, subjects, unique)
    if scheme_name == "subject_kfold":
        return _subject_kfold(subjects, unique, k, seed)
    if scheme_name in _named_schemes():
        return _named_schemes()[scheme_name][0](dataset)
    if Path(scheme_name).suffix.lower() == ".json" or Path(scheme_name).is_file():
        return [_fold_from_subjects(name, subjects, split["train"], split["test"], split["val"], number=number,
                                    source=scheme_name)
                for number, (name, split) in enumerate(load_split_file(scheme_name).items(), start=1)]
    raise ValueError(f"unknown fold scheme {scheme_name!r}: use one of {', '.join(fold_scheme_names())} or a "
                     "JSON split file")


def scheme_fold_count(scheme: str | os.PathLike, k: int = 5) -> int:
    """How many folds a scheme defines, whatever subjects a data set has."""
    scheme_name = str(scheme)
    if scheme_name in PROTOCOL_RANGES:
        return len(PROTOCOL_RANGES[scheme_name])
    if scheme_name in _named_schemes():
        return _named_schemes()[scheme_name][1]
    return k if scheme_name == "subject_kfold" else len(load_split_file(scheme_name))


def get_fold(folds: Sequence[Fold], number: int, scheme: str | os.PathLike, k: int = 5) -> Fold:
    """The fold numbered ``number`` in its scheme (see :attr:`Fold.number`).

    Raises:
        ValueError: for a number outside the scheme, or a protocol fold none of whose subjects the
            data set has (naming the folds that it can run).
    """
    for fold in folds:
        if fold.number == number:
            return fold
    total = scheme_fold_count(scheme, k)
    runnable = ", ".join(str(f.number) for f in folds) or "none"
    if 1 <= number <= total:
        lo, hi = PROTOCOL_RANGES.get(str(scheme), ((None, None),) * total)[number - 1]
        who = f" (subjects {lo}-{hi})" if lo is not None else ""
        raise ValueError(f"fold {number} of {scheme}{who} has no test subjects in this data set; "
                         f"folds it can run: {runnable}")
    raise ValueError(f"fold {number} is out of range: {scheme} has folds 1-{total} (this data set: {runnable})")


def add_validation_split(
    fold: Fold,
    dataset,
    num_val_subjects: int | None = None,
    val_fraction: float = 0.2,
    seed: int = 0,
) -> Fold:
    """Move some of a fold's training subjects to a validation split (subject-disjoint from train and test).

    Args:
        fold: the fold to split (its existing validation subjects are replaced).
        dataset: the dataset the fold was made from (or its subject ids, one per row).
        num_val_subjects: how many training subjects become validation subjects; default
            ``round(val_fraction * len(train_subjects))``, at least 1.
        val_fraction: used when ``num_val_subjects`` is None.
        seed: which subjects are drawn.

    Returns:
        A new :class:`Fold` with ``val_subjects`` / ``val_indices`` set and the training split reduced.
    """
    subjects = list(dataset["subject"]) if hasattr(dataset, "column_names") else [str(s) for s in dataset]
    pool = sorted(set(fold.train_subjects) | set(fold.val_subjects))
    if num_val_subjects is None:
        num_val_subjects = max(1, int(round(val_fraction * len(pool))))
    if not 1 <= num_val_subjects < len(pool):
        raise ValueError(f"need 1 <= num_val_subjects < {len(pool)} training subjects, got {num_val_subjects}")
    chosen = np.random.default_rng(seed).choice(len(pool), size=num_val_subjects, replace=False)
    val = sorted(pool[i] for i in chosen)
    train = [s for s in pool if s not in set(val)]
    return _fold_from_subjects(fold.name, subjects, train, fold.test_subjects, val, number=fold.number)


__all__ = [
    "CREMA5_FOLDS",
    "CREMA_D_BROKEN",
    "CREMA_D_CLASSES",
    "CREMA_D_CODES",
    "Fold",
    "LoadReport",
    "MEAD_CLASSES",
    "MEAD_LEVELS",
    "MEAD_VIEWS",
    "RAVDESS6_FOLDS",
    "RAVDESS_7_CLASSES",
    "RAVDESS_8_CLASSES",
    "VIDEO_EXTENSIONS",
    "FACE_LABEL_FEATURES",
    "PROTOCOL_RANGES",
    "find_video_files",
    "fold_scheme_names",
    "get_fold",
    "is_split_file",
    "scheme_fold_count",
    "add_validation_split",
    "attach_face_labels",
    "load_crema_d",
    "load_mead",
    "load_ravdess",
    "load_split_file",
    "load_video_folder",
    "make_folds",
]
