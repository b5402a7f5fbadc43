"""The base stratum of the data layer: load reports, the one walker of video files and frame folders, tables.

Every adapter (:mod:`processing.datasets`, :mod:`processing.datasets_in_the_wild`) walks its root with
:func:`find_video_files` (or reads split files naming frame folders), builds its rows, and returns
:func:`build_table`'s ``datasets.Dataset`` of paths with the columns

- ``video``: absolute path (str) of the video file or the frame folder,
- ``rel_path``: POSIX path relative to the data root: the key of the clip's face labels in the face-label cache,
- ``label``: a ``ClassLabel`` in the data set's FIXED class order (never the order of a directory listing),
- ``subject``: the subject id (str),

plus its own metadata columns, and a :class:`LoadReport` of what it left out and why. With a face-label cache
(``annotations=``) the table also gets the ``face_labels`` column
(:func:`processing.annotation_cache.attach_face_labels`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .annotation_cache import attach_face_labels
from .decoding_mtcae import VIDEO_EXTENSIONS  # the one list of video file extensions
from .frame_folders import IMAGE_EXTENSIONS

logger = logging.getLogger(__name__)


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

    def reject(self, rel: str, problems: list[str]) -> bool:
        """List ``rel`` as invalid for ``problems`` (joined by "; "); whether there were any."""
        if problems:
            self.invalid.append((rel, "; ".join(problems)))
        return bool(problems)

    def log(self) -> None:
        if self.invalid:
            logger.warning("%d files do not match the %s layout and were not loaded:\n%s", len(self.invalid),
                           self.dataset, self.summary())
        for rel, reason in self.skipped:
            logger.info("Skipped %s: %s", rel, reason)


def clip_row(root: Path, rel: str, label: int, subject: str, **metadata) -> dict:
    """A table row: the common columns (``video``, ``rel_path``, ``label``, ``subject``) and an adapter's own."""
    return dict(video=str(root / rel), rel_path=rel, label=label, subject=subject, **metadata)


def walk(root: str | os.PathLike) -> Iterator[tuple[str, list[str], list[str]]]:
    """``os.walk`` that also enters folders given as symbolic links (a data set linked in from another disk), each
    real folder once (a link back to a parent is not a loop). The caller may prune ``dirnames`` in place."""
    seen = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:
            dirnames[:] = []
            continue
        seen.add(real)
        yield dirpath, dirnames, filenames


def find_video_files(root: str | os.PathLike, report: LoadReport | None = None,
                     extensions: Sequence[str] = VIDEO_EXTENSIONS) -> list[str]:
    """Sorted POSIX paths, relative to ``root``, of the video files under it: the one folder walker.

    Folders given as symbolic links are entered (:func:`walk`). Hidden files and folders (names starting with ".")
    are left out and counted in
    ``report.warnings``; files with another video extension than ``extensions`` are reported as
    invalid, other files counted as non-video.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"data root {root} does not exist or is not a folder")
    report = report if report is not None else LoadReport(dataset="videos", root=str(root))
    extensions = tuple(e.lower() if e.startswith(".") else f".{e.lower()}" for e in extensions)
    found, hidden = [], []
    for dirpath, dirnames, filenames in walk(root):
        hidden += [Path(dirpath, d).relative_to(root).as_posix() + "/" for d in dirnames if d.startswith(".")]
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            rel = Path(dirpath, name).relative_to(root).as_posix()
            if name.startswith("."):
                hidden.append(rel)
            elif name.lower().endswith(extensions) and not os.path.exists(os.path.join(dirpath, name)):
                report.invalid.append((rel, "a symbolic link to a file that does not exist"))
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


def find_frame_folders(root: str | os.PathLike) -> list[str]:
    """POSIX paths, relative to ``root``, of the folders under it that hold frame images (one clip each).

    Hidden files and folders are left out; the folders below a frame folder are not searched (its frames are
    one clip, not more clips).
    """
    found = []
    for dirpath, dirnames, filenames in walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        if any(not name.startswith(".") and name.lower().endswith(IMAGE_EXTENSIONS) for name in filenames):
            found.append(Path(dirpath).relative_to(root).as_posix())
            dirnames[:] = []
    return found


def build_table(rows: list[dict], class_names: Sequence[str], report: LoadReport, extra_features: dict):
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


def finish(dataset, report: LoadReport, return_report: bool, annotations=None):
    """An adapter's return value: the table (with its face-label keys when a cache is given) and the report."""
    if annotations is not None:
        dataset = attach_face_labels(dataset, annotations)
    return (dataset, report) if return_report else dataset


__all__ = ["LoadReport", "build_table", "clip_row", "find_frame_folders", "find_video_files", "finish", "walk"]
