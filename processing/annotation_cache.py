"""The face-label cache: one Parquet table of per-frame boxes, 5 landmarks and masks per video.

Rows are keyed by ``(path, sampler_key)``. ``path`` is the video's POSIX path relative to the
dataset root (absolute when no root applies). ``sampler_key`` names the frames the row holds:
``"all"`` (every decoded frame, e.g. written by the synthetic renderer, which knows exact labels)
or ``"<mode>:<num_frames>"`` such as ``"uniform:16"`` (only the frames that sampler picks).
Coordinates are normalised to the SOURCE frame (x / width, y / height), so they stay valid for
any resize mode; the video processor maps them into model-input coordinates.

Each row also records the :class:`FileFingerprint` of its video (``file_size``, ``file_mtime_ns``,
``file_sha256``; a clip given as a folder of frame images is fingerprinted by its images), so that
labels of a video replaced after labelling are never served. The row's
``num_source_frames`` is the frame count it was labelled with.

The file is plain Parquet, so ``datasets.Dataset.from_parquet(path)`` reads it too.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

import numpy as np
from filelock import FileLock, Timeout

from .face_labels_mtcae import LABEL_FIELDS, FaceLabels
from .files import FINGERPRINT_COLUMNS, FileFingerprint, atomic_write, check_writable_folder, clip_mtime_ns, is_clip

logger = logging.getLogger(__name__)

ALL_FRAMES = "all"
LOCK_TIMEOUT_S = 600
FACE_LABEL_COLUMN = "face_labels"  # a data-set table's column: the cache key of each clip's labels

CACHE_COLUMNS = ("path", "sampler_key", "detector", "width", "height", "num_source_frames", *LABEL_FIELDS,
                 "scores", *FINGERPRINT_COLUMNS)

# What a cache row is for a video on disk; see AnnotationCache.state.
RowState = Literal["current", "changed", "unverified", "damaged", "missing"]


def sampler_key(mode: str, num_frames: int) -> str:
    """Key of the frames a sampler picks, e.g. ``sampler_key("uniform", 16) == "uniform:16"``."""
    if mode == ALL_FRAMES:
        return ALL_FRAMES
    return f"{mode}:{int(num_frames)}"


def labels_to_row(labels: FaceLabels, path: str, key: str, detector: str) -> dict:
    """A cache row (without the fingerprint columns) holding ``labels``."""
    values = labels.as_dict()
    return {"path": str(path), "sampler_key": key, "detector": detector,
            **{name: values[name] for name in CACHE_COLUMNS if name in values}}


def labels_from_row(row: dict) -> FaceLabels:
    """The :class:`FaceLabels` of a cache row (its float32 values, as stored)."""
    arrays = {name: np.asarray(row[name], dtype=np.float32) for name in ("boxes", "landmarks", "scores")}
    return FaceLabels(row["frame_indices"], mask=row["mask"], width=int(row["width"]), height=int(row["height"]),
                      num_source_frames=int(row["num_source_frames"]), **arrays)


class AnnotationCache:
    """A Parquet-backed map ``(path, sampler_key) -> FaceLabels`` that can be resumed and extended.

    Each row also holds the :class:`FileFingerprint` of the video it was made from; :meth:`get`
    treats a row whose video changed since as missing (with a warning), and :meth:`state` tells
    ``mtcae-annotate`` what to re-label. Rows from files written before fingerprints existed are
    read as ``"unverified"``.

    Several writers (processes) may share one file: :meth:`save` locks ``<path>.lock`` (an empty file
    left beside the cache), re-reads the file and merges before replacing it, so no writer loses
    another's rows; rows this writer added or changed win, rows it dropped stay dropped.

    Args:
        path: the ``.parquet`` file; it need not exist yet.
        root: the folder the rows' relative paths resolve against, to fingerprint and check the
            videos (default: the cache file's folder, the ``ROOT/face_labels.parquet`` layout).
    """

    def __init__(self, path: str | os.PathLike, root: str | os.PathLike | None = None):
        self.path = Path(path)
        self.root = Path(root) if root is not None else self.path.parent
        self._rows: dict[tuple[str, str], dict] = self._read()
        self._synced = set(self._rows)  # keys as the file held them at the last read or save
        self._changed: set[tuple[str, str]] = set()  # keys this writer added or updated since
        self._warned: set[str] = set()
        self._reported: set[tuple[str, str]] = set()  # rows whose unusable frames were logged

    def __len__(self) -> int:
        return len(self._rows)

    def __contains__(self, key: tuple[str, str]) -> bool:
        return key in self._rows

    def keys(self) -> Iterable[tuple[str, str]]:
        return self._rows.keys()

    @property
    def modified(self) -> bool:
        """Whether this writer holds rows the file does not have yet."""
        return bool(self._changed or self._synced - self._rows.keys())

    def add(self, path: str, key: str, labels: FaceLabels, detector: str,
            fingerprint: FileFingerprint | None = None) -> None:
        """Store ``labels``; ``fingerprint`` defaults to that of ``root / path`` (none when it is neither a file
        nor a frame folder)."""
        if fingerprint is None and is_clip(self.root / path):
            fingerprint = FileFingerprint.of(self.root / path)
        columns = fingerprint.columns() if fingerprint is not None else dict.fromkeys(FINGERPRINT_COLUMNS)
        self._rows[(str(path), key)] = {**labels_to_row(labels, path, key, detector), **columns}
        self._changed.add((str(path), key))

    def remove(self, path: str, key: str) -> None:
        """Drop the ``(path, key)`` row, if any (the next :meth:`save` removes it from the file too)."""
        self._rows.pop((str(path), key), None)
        self._changed.discard((str(path), key))

    def state(self, path: str, key: str, file: str | os.PathLike | None = None) -> RowState:
        """Whether the ``(path, key)`` row is ``"current"`` for ``file`` (default ``root / path``), its
        video ``"changed"`` since, the row is ``"unverified"`` (no fingerprint, or no file to check), ``"damaged"``
        (its values do not make face labels: it is treated as missing, and labelled again), or ``"missing"``."""
        row = self._rows.get((str(path), key))
        if row is None:
            return "missing"
        if _row_damage(row) is not None:
            return "damaged"
        file = Path(file) if file is not None else self.root / path
        if row.get("file_size") is None or not is_clip(file):
            return "unverified"
        verdict = FileFingerprint.from_row(row).check(file)
        if verdict == "same content":  # copied or touched: remember the new mtime, so it is not hashed again
            row["file_mtime_ns"] = clip_mtime_ns(file)
            self._changed.add((str(path), key))
        return "changed" if verdict == "changed" else "current"

    def current_key(self, path: str, key: str | None = None, file: str | os.PathLike | None = None) -> str | None:
        """The sampler key of the row that serves ``path``: ``key``'s row, else the ``"all"`` row; ``None`` when
        there is none, or when its video (``file``, default ``root / path``) changed since it was labelled (logged:
        such labels are never served)."""
        for candidate in ([key] if key else []) + [ALL_FRAMES]:
            state = self.state(path, candidate, file)
            if state == "missing":
                continue
            self._warn_once(state, path, candidate)
            return None if state in ("changed", "damaged") else candidate
        return None

    def labels(self, path: str, key: str) -> FaceLabels:
        """The labels of the ``(path, key)`` row (``KeyError`` without one; not checked against the video), with
        frames that cannot be a face masked (NaN or infinite values, a box without area; logged once per clip)."""
        labels, invalid = labels_from_row(self._rows[(str(path), key)]).masking_invalid()
        if invalid and (str(path), key) not in self._reported:
            self._reported.add((str(path), key))
            logger.warning("%s: the face labels of frames %s in %s are left out (%s): those frames do not train the "
                           "face heads", self.root / path, sorted(invalid), self.path, "; ".join(sorted(set(
                               invalid.values()))))
        return labels

    def get(self, path: str, key: str | None = None, file: str | os.PathLike | None = None) -> FaceLabels | None:
        """The labels of :meth:`current_key`'s row, else ``None`` (no row, or the video changed since)."""
        found = self.current_key(path, key, file)
        return None if found is None else self.labels(path, found)

    def labels_of(self, dataset) -> list[FaceLabels | None]:
        """Each row's labels, found by its ``rel_path`` and its ``face_labels`` key (:func:`attach_face_labels`)."""
        if FACE_LABEL_COLUMN not in dataset.column_names:
            return [None] * len(dataset)
        rows = dataset.with_format(None).select_columns(["rel_path", FACE_LABEL_COLUMN])[:]
        return [None if key is None else self.labels(path, key) for path, key in zip(rows["rel_path"],
                                                                                       rows[FACE_LABEL_COLUMN])]

    def labels_for(self, path: str, frame_indices: Sequence[int], key: str | None = None,
                   file: str | os.PathLike | None = None) -> FaceLabels | None:
        """Labels of exactly ``frame_indices`` of ``path`` (mask False for frames the cache lacks)."""
        labels = self.get(path, key, file)
        return None if labels is None else labels.at(frame_indices)

    def _warn_once(self, state: RowState, path: str, key: str) -> None:
        if state == "changed" and "changed" not in self._warned:
            logger.warning("%s changed since its face labels in %s were made: its labels are not used (run "
                           "mtcae-annotate again to re-label it; further such videos are logged at debug level)",
                           self.root / path, self.path)
        elif state == "changed":
            logger.debug("%s changed since it was labelled: labels not used", self.root / path)
        elif state == "damaged":
            logger.warning("the row of %s in %s cannot be read (%s): its labels are not used (run mtcae-annotate "
                           "again to label it anew)", path, self.path, _row_damage(self._rows[(str(path), key)]))
        elif state == "unverified" and "unverified" not in self._warned:
            logger.warning("Some rows of %s cannot be checked against their videos (written before the cache kept "
                           "file fingerprints, or the video is not at %s): e.g. %s. Run mtcae-annotate again to "
                           "refresh them.", self.path, self.root, path)
        self._warned.add(state)

    def check_writable(self) -> None:
        """Raise ``OSError`` naming the problem unless :meth:`save` can write here (folder created if need be)."""
        if self.path.exists() and not self.path.is_file():
            raise IsADirectoryError(f"{self.path} exists and is not a file")
        try:
            check_writable_folder(self.path.parent, "the folder")
            open(f"{self.path}.lock", "a").close()  # what filelock opens for save's lock
        except OSError as error:
            raise OSError(f"cannot write the face-label cache {self.path}: {error}") from error

    def save(self) -> Path:
        """Merge with the file as other writers left it and replace it atomically, under the lock."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with _locked(self.path):
            merged = self._read()
            for key in self._synced - self._rows.keys():
                merged.pop(key, None)  # dropped by this writer
            merged.update({key: self._rows[key] for key in self._changed})
            _write_parquet(merged, self.path)
        self._rows, self._synced, self._changed = merged, set(merged), set()
        return self.path

    def _read(self) -> dict[tuple[str, str], dict]:
        if not self.path.exists():
            return {}
        import pyarrow.parquet as pq

        try:
            return {(row["path"], row["sampler_key"]): row for row in pq.read_table(self.path).to_pylist()}
        except (OSError, ValueError, KeyError) as error:  # pyarrow's errors derive from these
            reason = f"{type(error).__name__}: {error}"
            raise ValueError(f"{self.path} is not a readable face-label cache ({reason})") from error


def _row_damage(row: dict) -> str | None:
    """Why a cache row does not make :class:`FaceLabels` (a list cut short, a value of the wrong kind), or ``None``."""
    try:
        labels_from_row(row)
    except (TypeError, ValueError, KeyError) as error:
        return f"{type(error).__name__}: {error}"
    return None


def attach_face_labels(dataset, annotations, sampler_key: str | None = None):
    """Add the ``face_labels`` column: for each clip the key that finds its labels in the face-label cache.

    Args:
        dataset: a table from one of the adapters (``rel_path`` is the cache key's path).
        annotations: an :class:`AnnotationCache` or the path of its Parquet file.
        sampler_key: the rows to take (e.g. ``"uniform:16"``); that sampler's row, else the ``"all"`` row (every
            frame, as the synthetic set writes them), else the path's only row.

    Returns:
        The table with ``face_labels``: the row's sampler key, ``None`` for a clip the cache lacks or whose video
        changed since it was labelled (logged), so no frame of it trains the face heads. Read the labels with
        :meth:`AnnotationCache.labels_of`.
    """
    cache = annotations if isinstance(annotations, AnnotationCache) else AnnotationCache(annotations)
    keys_of: dict[str, list[str]] = {}
    for path, key in cache.keys():
        keys_of.setdefault(path, []).append(key)
    found, missing = [], []
    for rel, video in zip(dataset["rel_path"], dataset["video"]):
        key = cache.current_key(rel, sampler_key, file=video)
        if key is None and len(keys_of.get(rel, [])) == 1:
            key = cache.current_key(rel, keys_of[rel][0], file=video)
        found.append(key)
        if key is None:
            missing.append(rel)
    if missing:
        logger.warning("%d of %d videos have no face labels in %s (their face losses are masked), e.g. %s",
                       len(missing), len(dataset), cache.path, missing[:3])
    if FACE_LABEL_COLUMN in dataset.column_names:
        dataset = dataset.remove_columns(FACE_LABEL_COLUMN)
    from datasets import Value

    return dataset.add_column(FACE_LABEL_COLUMN, found, feature=Value("string"))


@contextmanager
def _locked(path: Path):
    """Hold ``<path>.lock``; say so when another writer holds it, then wait (up to LOCK_TIMEOUT_S)."""
    lock = FileLock(f"{path}.lock")
    try:
        lock.acquire(timeout=0)
    except Timeout:
        logger.warning("%s.lock is held by another writer of this cache; waiting for it to finish saving", path)
        try:
            lock.acquire(timeout=LOCK_TIMEOUT_S)
        except Timeout:
            raise TimeoutError(f"{path}.lock stayed locked for {LOCK_TIMEOUT_S} s; is another process stuck "
                               f"writing {path}?") from None
    try:
        yield
    finally:
        lock.release()


def _arrow_schema():
    """The Parquet columns of :data:`CACHE_COLUMNS`: per-frame values as lists, float32 coordinates."""
    import pyarrow as pa

    text, number, big = pa.string(), pa.int32(), pa.int64()
    floats = pa.list_(pa.float32())
    types = [text, text, text, number, number, number, pa.list_(number), pa.list_(floats),
             pa.list_(pa.list_(floats)), pa.list_(pa.bool_()), floats, big, big, text]
    return pa.schema(list(zip(CACHE_COLUMNS, types)))


def _write_parquet(rows: dict[tuple[str, str], dict], path: Path) -> None:
    """The rows as one Parquet table, written atomically (a killed job never leaves a torn cache)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pylist([rows[k] for k in sorted(rows)], schema=_arrow_schema())
    atomic_write(path, lambda temporary: pq.write_table(table, temporary))


__all__ = ["ALL_FRAMES", "CACHE_COLUMNS", "FACE_LABEL_COLUMN", "AnnotationCache", "RowState", "attach_face_labels",
           "labels_from_row", "labels_to_row", "sampler_key"]
