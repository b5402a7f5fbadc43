"""In-the-wild DFER data sets given as frame folders with official split files: DFEW, FERV39k, MAFW.

Each adapter returns a ``datasets.Dataset`` with the columns of the other adapters
(:mod:`processing.dataset_files`):

- ``video``: absolute path of the clip's frame folder (read by :mod:`processing.frame_folders`),
- ``rel_path``: that folder relative to ``root`` (POSIX): the face-label cache key,
- ``label``: a ``ClassLabel`` in the data set's fixed order (:data:`DFEW_CLASSES`, :data:`MAFW_CLASSES`),
- ``subject``: the clip id. These sets publish no subject ids, so their official folds are clip-wise,
  as everyone reports them; they are not subject-independent,
- ``split``: ``"train"`` / ``"test"`` in the official fold that was loaded (``None`` when all folds are),
- ``test_fold``: the official fold (1-5; FERV39k: 1) whose test list holds the clip, 0 if none read does,
- ``num_frames``: frame images in the folder,

plus ``scene`` for FERV39k. Rows of the split files that do not match the format, name an unknown
label, a missing or empty clip folder, or repeat a clip (twice in a list, in train and test of the same
fold, or with two labels) are listed in the :class:`~processing.dataset_files.LoadReport` (``invalid``,
as ``split_file:line``) and logged, never dropped silently; clip folders that no split file read lists
(e.g. DFEW's multi-labelled clips) are counted in ``report.filtered``.

Folds: the schemes ``dfew5``, ``mafw5`` and ``ferv39k_official`` of :mod:`processing.folds` turn a loaded data
set into the official folds (training = every loaded clip outside the fold's test list; each official training
list is exactly that complement).
"""

from __future__ import annotations

import csv
import logging
import os
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .dataset_files import LoadReport, build_table, clip_row, finish
from .frame_folders import FrameFolderError, count_frames

logger = logging.getLogger(__name__)

DFEW_CLASSES = ("happy", "sad", "neutral", "angry", "surprise", "disgust", "fear")
"""DFEW's labels 1-7 in DFEW's order (label id = DFEW label - 1). FERV39k uses the same order: its split
files name these classes capitalised ("Happy", "Sad", ...), mapped as MAE-DFER and HiCMAE map them."""

MAFW_CLASSES = (
    "anger", "disgust", "fear", "happiness", "neutral", "sadness", "surprise",
    "contempt", "anxiety", "helplessness", "disappointment",
)
"""MAFW's 11 single-label classes in MAFW's order 1-11 (label id = MAFW number - 1), as its split files name them."""

DFEW_FOLDS = MAFW_FOLDS = 5


class _BadRow(ValueError):
    """A split-file row that does not match the format; the message is the report's reason.

    ``folder`` is the clip folder the row names, when it can be told (so that folder is not also
    counted as unlisted).
    """

    def __init__(self, reason: str, folder: str | None = None):
        super().__init__(reason)
        self.folder = folder


@dataclass
class _Listing:
    """One row of a split file: ``clip`` (id) in ``folder`` (relative to root) with ``label`` in a fold's split."""

    source: str
    clip: str
    folder: str
    label: int
    fold: int
    split: str
    scene: str = ""
    valid: bool = True  # False: reported as invalid; kept only to know which folders the split files name


@dataclass
class _Layout:
    """Where an adapter finds its frames and split files, and how it reads them."""

    name: str
    class_names: Sequence[str]
    frames_dir: str
    depth: int  # levels of folders from frames_dir down to a clip folder
    split_file: Callable[[int, str], str]  # (fold, split) -> split file relative to root
    parse: Callable[[str], tuple[str, str, int, str]]
    header: str | None = None
    scenes: bool = False


# ----------------------------------------------------------------------------------------------------
# Split-file rows.
# ----------------------------------------------------------------------------------------------------


def _parse_dfew_row(line: str) -> tuple[str, str, int, str]:
    fields = next(csv.reader([line]))
    if len(fields) != 2:
        raise _BadRow("expected 'video_name,label'")
    name, label = (f.strip() for f in fields)
    if not name.isdigit():
        raise _BadRow(f"video_name {name!r} is not a clip number")
    clip = f"{int(name):05d}"
    if not label.isdigit() or not 1 <= int(label) <= len(DFEW_CLASSES):
        raise _BadRow(f"label {label!r} is not one of DFEW's labels 1-{len(DFEW_CLASSES)}", clip)
    return clip, clip, int(label) - 1, ""


def _parse_ferv39k_row(line: str) -> tuple[str, str, int, str]:
    fields = line.rsplit(maxsplit=1)
    if len(fields) != 2 or len(fields[0].strip("/").split("/")) != 3:
        raise _BadRow("expected '<Scene>/<Emotion>/<NNNN> <Emotion>'")
    path, label = fields[0].strip("/"), fields[1]
    scene, emotion, _ = path.split("/")
    if label.lower() not in DFEW_CLASSES:
        raise _BadRow(f"label {label!r} is not one of {', '.join(c.capitalize() for c in DFEW_CLASSES)}", path)
    if emotion.lower() != label.lower():
        raise _BadRow(f"label {label!r} disagrees with the clip's emotion folder {emotion!r}", path)
    return path, path, DFEW_CLASSES.index(label.lower()), scene


def _parse_mafw_row(line: str) -> tuple[str, str, int, str]:
    fields = line.split()
    if len(fields) != 2:
        raise _BadRow("expected 'NNNNN.mp4 label'")
    name, label = fields
    clip = name.rsplit(".", 1)[0]
    if not clip.isdigit():
        raise _BadRow(f"clip name {name!r} is not NNNNN.mp4")
    if label not in MAFW_CLASSES:
        raise _BadRow(f"label {label!r} is not one of MAFW's classes {', '.join(MAFW_CLASSES)}", clip)
    return clip, clip, MAFW_CLASSES.index(label), ""


def _read_split_file(root: Path, layout: _Layout, fold: int, split: str, report: LoadReport) -> list[_Listing]:
    """The rows of one split file; the invalid ones go to ``report.invalid`` as ``rel:line`` (``valid=False``)."""
    rel, frames_dir, header = layout.split_file(fold, split), layout.frames_dir, layout.header
    path = root / rel
    if not path.is_file():
        raise FileNotFoundError(f"split file {path} not found under the data root {root}")
    lines = [(n, line.strip()) for n, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), 1)]
    lines = [(n, line) for n, line in lines if line]
    if header is not None:
        if not lines or lines[0][1].replace(" ", "").lower() != header:
            raise ValueError(f"split file {path}: expected the header {header!r}, got {lines[0][1] if lines else ''!r}")
        lines = lines[1:]
    listings = []
    for number, line in lines:
        try:
            clip, folder, label, scene = layout.parse(line)
        except _BadRow as error:
            report.invalid.append((f"{rel}:{number}", f"{error}: {line!r}"))
            if error.folder is not None:
                listings.append(_Listing(f"{rel}:{number}", "", f"{frames_dir}/{error.folder}", -1, fold, split,
                                         valid=False))
            continue
        listings.append(_Listing(f"{rel}:{number}", clip, f"{frames_dir}/{folder}", label, fold, split, scene))
    return listings


# ----------------------------------------------------------------------------------------------------
# Consistency checks and rows.
# ----------------------------------------------------------------------------------------------------


def _drop_repeats(listings: list[_Listing], report: LoadReport) -> list[_Listing]:
    """Within a fold: repeats are reported and left out; a clip in train and test is left out of that fold."""
    first: dict[tuple[int, str], _Listing] = {}
    conflicted: set[tuple[int, str]] = set()
    for item in listings:
        key = (item.fold, item.clip)
        seen = first.setdefault(key, item)
        if seen is item:
            continue
        if seen.split == item.split:
            report.invalid.append((item.source, f"clip {item.clip} repeats {seen.source}"))
        else:
            report.invalid.append((item.source, f"clip {item.clip} is in both train and test of fold {item.fold} "
                                                f"(also {seen.source}); left out of that fold"))
            conflicted.add(key)
    return [item for key, item in first.items() if key not in conflicted]


def _check_labels_and_folders(listings: list[_Listing], root: Path, report: LoadReport) -> list[tuple[_Listing, int]]:
    """Listings whose clip folder holds frames and whose label agrees with the clip's first listing."""
    label_of: dict[str, _Listing] = {}
    frames_in: dict[str, int | str] = {}
    kept = []
    for item in listings:
        seen = label_of.setdefault(item.clip, item)
        if seen.label != item.label:
            report.invalid.append((item.source, f"clip {item.clip} has label id {item.label} here but "
                                                f"{seen.label} in {seen.source}"))
            continue
        if item.folder not in frames_in:
            try:
                frames_in[item.folder] = count_frames(root / item.folder)
            except FrameFolderError as error:
                frames_in[item.folder] = error.reason
        found = frames_in[item.folder]
        if isinstance(found, str):
            report.invalid.append((item.source, f"clip folder {item.folder}: {found}"))
            continue
        kept.append((item, found))
    return kept


def _clip_folders(root: Path, frames_dir: str, depth: int) -> set[str]:
    """Folders ``depth`` levels below ``root/frames_dir``, relative to root (hidden ones left out)."""
    base = root / frames_dir
    if not base.is_dir():
        raise FileNotFoundError(f"frame folder root {base} not found under the data root {root}")
    found = [base]
    for _ in range(depth):
        found = [p / n for p in found for n in sorted(os.listdir(p)) if not n.startswith(".") and (p / n).is_dir()]
    return {p.relative_to(root).as_posix() for p in found}


def _check_fold_coverage(checked: list[tuple[_Listing, int]], report: LoadReport) -> None:
    """Warn when a clip is tested in several folds, or a fold's lists miss a loaded clip (the folds assume neither)."""
    clips = {item.clip for item, _ in checked}
    tested = Counter(item.clip for item, _ in checked if item.split == "test")
    twice = sorted(clip for clip, count in tested.items() if count > 1)
    if twice:
        report.warnings.append(f"{len(twice)} clip(s) are in the test lists of several folds, e.g. {twice[:3]}; "
                               "test_fold names the last")
    never_tested = len(clips - set(tested))
    if never_tested:
        report.warnings.append(f"{never_tested} clip(s) are in no test list; every fold trains on them")
    for fold in sorted({item.fold for item, _ in checked}):
        unlisted = sorted(clips - {item.clip for item, _ in checked if item.fold == fold})
        if unlisted:
            report.warnings.append(f"fold {fold} lists {len(unlisted)} loaded clip(s) in neither train nor test, "
                                   f"e.g. {unlisted[:3]}; its training split takes them")


def _load(root, layout: _Layout, folds: list[int], one_row_per_clip: bool, return_report: bool, annotations):
    """The split files of ``folds`` -> checked dataset (one row per listing, or per clip when every fold is read)."""
    from datasets import Value

    root = Path(root).expanduser().resolve()
    report = LoadReport(layout.name, str(root))
    listings = [item for k in folds for split in ("train", "test") for item in _read_split_file(root, layout, k, split,
                                                                                                 report)]
    named_folders = {item.folder for item in listings}
    checked = _check_labels_and_folders(_drop_repeats([i for i in listings if i.valid], report), root, report)
    test_fold = {item.clip: item.fold for item, _ in checked if item.split == "test"}
    rows, used = [], set()
    for item, num_frames in checked:
        if one_row_per_clip and item.clip in used:
            continue
        used.add(item.clip)
        rows.append(clip_row(root, item.folder, item.label, item.clip, split=None if one_row_per_clip else item.split,
                             test_fold=test_fold.get(item.clip, 0), num_frames=num_frames,
                             **({"scene": item.scene} if layout.scenes else {})))
    if one_row_per_clip:
        _check_fold_coverage(checked, report)
    report.filtered += len(_clip_folders(root, layout.frames_dir, layout.depth) - named_folders)
    extra = {"split": Value("string"), "test_fold": Value("int32"), "num_frames": Value("int32")}
    if layout.scenes:
        extra["scene"] = Value("string")
    return finish(build_table(rows, layout.class_names, report, extra), report, return_report, annotations)


def _check_fold(fold: int | None, num_folds: int) -> list[int]:
    if fold is None:
        return list(range(1, num_folds + 1))
    if fold not in range(1, num_folds + 1):
        raise ValueError(f"fold must be 1-{num_folds} or None (all folds), got {fold!r}")
    return [fold]


# ----------------------------------------------------------------------------------------------------
# Adapters.
# ----------------------------------------------------------------------------------------------------


def load_dfew(root: str | os.PathLike, fold: int | None = None, frames_dir: str = "Clip/clip_224x224",
              split_dir: str = "EmoLabel_DataSplit", return_report: bool = False,
              annotations: str | os.PathLike | None = None):
    """DFEW: ``Clip/clip_224x224/NNNNN/NNNNN_YYYYY.jpg`` and the single-labelled split files.

    Args:
        root: the DFEW folder.
        fold: an official fold 1-5 (its ``{train,test}(single-labeled)/set_{fold}.csv``, rows in file order
            with ``split``), or ``None``: every clip of the five sets once (folds: the ``dfew5`` scheme).
        frames_dir: the frame folders' parent, e.g. ``"Clip/jpg_256"`` for the 256-pixel frames.
        split_dir: the folder of the split files (CSV with the header ``video_name,label``, labels 1-7).
        return_report: also return the :class:`~processing.dataset_files.LoadReport`.
        annotations: a face-label cache to join, as in :func:`processing.annotation_cache.attach_face_labels`.

    Returns:
        The dataset (labels :data:`DFEW_CLASSES`, subject = clip number "NNNNN"); and the report if asked.
    """
    split_file = lambda k, split: f"{split_dir}/{split}(single-labeled)/set_{k}.csv"  # noqa: E731
    layout = _Layout("DFEW", DFEW_CLASSES, frames_dir, 1, split_file, _parse_dfew_row, header="video_name,label")
    return _load(root, layout, _check_fold(fold, DFEW_FOLDS), fold is None, return_report, annotations)


def load_ferv39k(root: str | os.PathLike, frames_dir: str = "2_ClipsforFaceCrop",
                 split_dir: str = "4_setups/All_scenes", return_report: bool = False,
                 annotations: str | os.PathLike | None = None):
    """FERV39k: ``2_ClipsforFaceCrop/<Scene>/<Emotion>/<NNNN>/*.jpg`` and the official all-scenes split.

    Args:
        root: the FERV39k folder.
        frames_dir: the frame folders' parent.
        split_dir: the folder of ``train_All.csv`` / ``test_All.csv`` (no header; rows ``Action/Sad/0010 Sad``).
        return_report: also return the report.
        annotations: a face-label cache to join.

    Returns:
        The dataset (labels :data:`DFEW_CLASSES`, subject = ``Scene/Emotion/NNNN``, ``split`` = the official
        train / test, ``test_fold`` 1 for test clips, and ``scene``); and the report if asked.
    """
    layout = _Layout("FERV39k", DFEW_CLASSES, frames_dir, 3, lambda _, split: f"{split_dir}/{split}_All.csv",
                     _parse_ferv39k_row, scenes=True)
    return _load(root, layout, [1], False, return_report, annotations)


def load_mafw(root: str | os.PathLike, fold: int | None = None, frames_dir: str = "data/frames",
              split_dir: str = "Train & Test Set/single/no_caption", return_report: bool = False,
              annotations: str | os.PathLike | None = None):
    """MAFW (single-label, 11 classes): ``data/frames/NNNNN/*.png`` and ``set_{1..5}/{train,test}.txt``.

    Args:
        root: the MAFW folder.
        fold: an official fold 1-5, or ``None``: every clip of the five sets once (folds: the ``mafw5`` scheme).
        frames_dir: the frame folders' parent.
        split_dir: the folder of ``set_K/{train,test}.txt`` (rows ``00025.mp4 anger``).
        return_report: also return the report.
        annotations: a face-label cache to join.

    Returns:
        The dataset (labels :data:`MAFW_CLASSES`, subject = clip number "NNNNN"); and the report if asked.
    """
    layout = _Layout("MAFW", MAFW_CLASSES, frames_dir, 1, lambda k, split: f"{split_dir}/set_{k}/{split}.txt",
                     _parse_mafw_row)
    return _load(root, layout, _check_fold(fold, MAFW_FOLDS), fold is None, return_report, annotations)


__all__ = ["DFEW_CLASSES", "DFEW_FOLDS", "MAFW_CLASSES", "MAFW_FOLDS", "load_dfew", "load_ferv39k", "load_mafw"]
