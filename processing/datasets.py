"""Data-set adapters for video files (RAVDESS, CREMA-D, MEAD, a generic class-per-folder layout).

Every adapter returns a ``datasets.Dataset`` of file paths (no decoding; decode on the fly with
``set_transform``) with the common columns of :mod:`processing.dataset_files` (``video``, ``rel_path``,
``label`` in the FIXED order of the module constants below, ``subject``) and dataset-specific metadata
(intensity, statement, view, level, ...).

Files that do not match the layout, or whose name is valid but holds an out-of-range code, are never
dropped silently: they are logged as a warning and listed in a :class:`~processing.dataset_files.LoadReport`,
which is returned with ``return_report=True`` and also summarised in ``dataset.info.description``. Files left
out on purpose (filters such as ``vocal="speech"``, known-broken files) are counted in the report too.

Subject-independent folds of these tables are :mod:`processing.folds`'s. The synthetic set
(``processing.synthetic``) loads with ``load_ravdess(root, num_classes=7)``.

The same clip stored twice with different video extensions in one folder (``a.avi`` and ``a.mp4``)
is loaded once: the extension listed first in ``extensions`` wins, the other copy is reported as skipped.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path

from .dataset_files import LoadReport, build_table, clip_row, find_video_files, finish
from .decoding_mtcae import VIDEO_EXTENSIONS

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

_RAVDESS_NAME = re.compile(r"^(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})$")
_CREMA_NAME = re.compile(r"^(\d{4})_([A-Z]{3})_([A-Z]{3})_([A-Z]{2})$")


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
    if len(parts) >= 2:  # Actor_NN/..., or the zips extracted one per folder: Video_Speech_Actor_01/Actor_01/...
        folder = re.fullmatch(r"Actor_(\d+)", parts[-2])
        if folder is None or int(folder.group(1)) != int(actor):
            problems.append(f"actor {actor} does not match folder {parts[-2]}")
    return problems


def _ravdess_row(root: Path, rel: str, codes: Sequence[str], num_classes: int) -> dict:
    """The dataset row of a valid RAVDESS file (7 classes merge calm, code 02, into neutral)."""
    modality, voc, emotion, intensity, statement, repetition, actor = codes
    code = int(emotion)
    label = code - 1 if num_classes == 8 else (0 if code <= 2 else code - 2)
    return clip_row(root, rel, label, actor, actor=int(actor), gender="male" if int(actor) % 2 else "female",
                    modality=modality, vocal=RAVDESS_VOCAL[voc], emotion_code=emotion, intensity=int(intensity),
                    statement=int(statement), repetition=int(repetition))


def load_ravdess(root: str | os.PathLike, num_classes: int = 7, vocal: str = "speech",
                 modalities: Sequence[str] = ("01", "02"), return_report: bool = False,
                 annotations: str | os.PathLike | None = None):
    """RAVDESS (and the synthetic set): ``Actor_NN/MM-VV-EE-II-SS-RR-AA.mp4``.

    Args:
        root: folder holding the ``Actor_NN`` folders, at any depth (RAVDESS's zips extracted one per folder give
            ``Video_Speech_Actor_01/Actor_01/...``); files directly in ``root`` are accepted too.
        num_classes: 7 (calm merged into neutral, :data:`RAVDESS_7_CLASSES`) or 8 (:data:`RAVDESS_8_CLASSES`).
        vocal: "speech", "song" or "both".
        modalities: modality codes to keep: "01" audio-video, "02" video-only ("03" audio-only has no video
            and is rejected).
        return_report: also return the :class:`LoadReport`.
        annotations: a face-label cache (``mtcae-annotate`` output): adds each clip's ``face_labels`` key
            (:func:`~processing.annotation_cache.attach_face_labels`).

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
        if match is None:
            report.invalid.append((rel, "expected Actor_NN/MM-VV-EE-II-SS-RR-AA.<ext>"))
            continue
        modality, voc = match.groups()[:2]
        if report.reject(rel, _ravdess_name_problems(parts, match.groups())):
            continue
        if modality == "03":
            report.invalid.append((rel, "modality 03 (audio-only) in a video file"))
            continue
        if modality not in modalities or (vocal != "both" and RAVDESS_VOCAL[voc] != vocal):
            report.filtered += 1
            continue
        rows.append(_ravdess_row(root, rel, match.groups(), num_classes))
    number, text = Value("int32"), Value("string")
    extra = {"actor": number, "gender": text, "modality": text, "vocal": text, "emotion_code": text,
             "intensity": number, "statement": number, "repetition": number}
    return finish(build_table(rows, class_names, report, extra), report, return_report, annotations)


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


def load_crema_d(root: str | os.PathLike, extensions: Sequence[str] = (".flv",), skip_broken: bool = True,
                 return_report: bool = False, annotations: str | os.PathLike | None = None):
    """CREMA-D: ``VideoFlash/AAAA_SSS_EEE_LL.flv`` (or the files directly in ``root``).

    Args:
        root: the CREMA-D folder (holding ``VideoFlash``) or the ``VideoFlash`` folder itself.
        extensions: video extensions to load; e.g. ``(".mp4",)`` for a converted copy.
        skip_broken: skip the known broken files :data:`CREMA_D_BROKEN` (logged).
        return_report: also return the :class:`LoadReport`.
        annotations: a face-label cache (``mtcae-annotate`` output): adds each clip's ``face_labels`` key
            (:func:`~processing.annotation_cache.attach_face_labels`).

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
        if report.reject(rel, _crema_d_name_problems(actor, sentence, emotion, level)):
            continue
        if skip_broken and stem in CREMA_D_BROKEN:
            report.skipped.append((rel, "known broken CREMA-D file"))
            continue
        rows.append(clip_row(root, rel, CREMA_D_CODES.index(emotion), actor, actor=int(actor), sentence=sentence,
                             level=level))
    extra = {"actor": Value("int32"), "sentence": Value("string"), "level": Value("string")}
    return finish(build_table(rows, CREMA_D_CLASSES, report, extra), report, return_report, annotations)


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


def load_mead(root: str | os.PathLike, views: Sequence[str] = ("front",), levels: Sequence[int] = (1, 2, 3),
              return_report: bool = False, annotations: str | os.PathLike | None = None):
    """MEAD: ``SUBJ/video/{view}/{emotion}/level_{k}/NNN.mp4`` (8 classes; neutral only at level 1).

    Args:
        root: folder holding the subject folders (``M003``, ``W009``, ...), at any depth.
        views: camera views to keep, from :data:`MEAD_VIEWS`.
        levels: intensity levels to keep, from 1-3.
        return_report: also return the :class:`LoadReport`.
        annotations: a face-label cache (``mtcae-annotate`` output): adds each clip's ``face_labels`` key
            (:func:`~processing.annotation_cache.attach_face_labels`).

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
        if len(parts) < 6 or parts[-5] != "video" or not re.fullmatch(r"level_\d+", parts[-2]):
            report.invalid.append((rel, "expected SUBJ/video/{view}/{emotion}/level_{k}/NNN.mp4"))
            continue
        subject, _, view, emotion, level_dir, name = parts[-6:]  # SUBJ at any depth (archives extracted in folders)
        clip = Path(name).stem
        level = int(level_dir.split("_")[1])
        if report.reject(rel, _mead_path_problems(view, emotion, level, name)):
            continue
        if view not in views or level not in levels:
            report.filtered += 1
            continue
        rows.append(clip_row(root, rel, MEAD_CLASSES.index(emotion), subject, view=view, level=level, clip=clip))
    extra = {"view": Value("string"), "level": Value("int32"), "clip": Value("string")}
    return finish(build_table(rows, MEAD_CLASSES, report, extra), report, return_report, annotations)


def load_video_folder(root: str | os.PathLike, class_names: Sequence[str] | None = None,
                      subject_regex: str | None = None, extensions: Sequence[str] = VIDEO_EXTENSIONS,
                      return_report: bool = False, annotations: str | os.PathLike | None = None):
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
        annotations: a face-label cache (``mtcae-annotate`` output): adds each clip's ``face_labels`` key
            (:func:`~processing.annotation_cache.attach_face_labels`).

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
        rows.append(clip_row(root, rel, index[parts[0]], subject))
    for rel in unparsed:
        report.warnings.append(f"{rel}: subject_regex {subject_regex!r} found no subject; subject 'unknown'")
    if unparsed:
        logger.warning("subject_regex %r matched no subject in %d files (subject 'unknown'), e.g. %s",
                       subject_regex, len(unparsed), unparsed[:5])
    return finish(build_table(rows, class_names, report, {}), report, return_report, annotations)


__all__ = ["CREMA_D_BROKEN", "CREMA_D_CLASSES", "CREMA_D_CODES", "MEAD_CLASSES", "MEAD_LEVELS", "MEAD_VIEWS",
           "RAVDESS_7_CLASSES", "RAVDESS_8_CLASSES", "RAVDESS_VOCAL", "load_crema_d", "load_mead", "load_ravdess",
           "load_video_folder"]
