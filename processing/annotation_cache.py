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

import hashlib
import logging
import os
import stat
import tempfile
from collections.abc import Iterable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from filelock import FileLock, Timeout

logger = logging.getLogger(__name__)

NUM_LANDMARKS = 5
LANDMARK_NAMES = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")
ALL_FRAMES = "all"
HASH_SPAN = 64 * 1024  # bytes hashed at each end of a video
LOCK_TIMEOUT_S = 600

FINGERPRINT_COLUMNS = ("file_size", "file_mtime_ns", "file_sha256")
CACHE_COLUMNS = (
    "path",
    "sampler_key",
    "detector",
    "width",
    "height",
    "num_source_frames",
    "frame_indices",
    "boxes",
    "landmarks",
    "mask",
    "scores",
) + FINGERPRINT_COLUMNS

# What a cache row is for a video on disk; see AnnotationCache.state.
RowState = Literal["current", "changed", "unverified", "missing"]


@dataclass(frozen=True)
class FileFingerprint:
    """What identifies a video file's content: its size and a SHA-256 of its first and last 64 KiB.

    Hashing the ends, not the whole file, keeps checking a data set cheap; the ends hold the
    container's index (the MP4 ``moov`` box, the Matroska cues), which any re-encode or cut changes,
    and the size changes with nearly every edit. ``mtime_ns`` is only a shortcut: a file with the
    recorded size and mtime is taken as unchanged without reading it; with another mtime (a copy
    without ``-p``, a ``touch``) the hash decides.

    A clip given as a folder of frame images (:mod:`frame_folders`) is fingerprinted by its images
    (hidden and non-image files left out): ``size`` is the sum of their sizes, ``mtime_ns`` the newest
    one's, and the hash covers the image count, every image's name and size in frame order, and the
    first and last :data:`HASH_SPAN` bytes of the first and the last image. So an image added, removed,
    renamed or replaced by one of another size shows as changed; a middle image replaced by one of
    exactly the same size (and the same newest mtime) does not.

    Args:
        size: file size in bytes (frame folder: the images' total).
        mtime_ns: modification time in nanoseconds when fingerprinted (frame folder: the newest image's).
        sha256: hex SHA-256 of the size, the first and the last :data:`HASH_SPAN` bytes (frame folder: see above).
    """

    size: int
    mtime_ns: int
    sha256: str

    @classmethod
    def of(cls, path: str | os.PathLike) -> FileFingerprint:
        if os.path.isdir(path):
            files, infos = _frame_stats(path)
            return cls(sum(i.st_size for i in infos), max(i.st_mtime_ns for i in infos), _frames_sha256(files, infos))
        info = os.stat(path)
        return cls(info.st_size, info.st_mtime_ns, _ends_sha256(path, info.st_size))

    @classmethod
    def from_row(cls, row: dict) -> FileFingerprint:
        return cls(int(row["file_size"]), int(row["file_mtime_ns"]), str(row["file_sha256"]))

    def columns(self) -> dict:
        return {"file_size": self.size, "file_mtime_ns": self.mtime_ns, "file_sha256": self.sha256}

    def check(self, path: str | os.PathLike) -> Literal["same", "same content", "changed"]:
        """``"same"`` (size and mtime as recorded), ``"same content"`` (other mtime, same hash) or ``"changed"``."""
        if os.path.isdir(path):
            try:
                files, infos = _frame_stats(path)
            except ValueError:  # emptied, or no images left
                return "changed"
            size, mtime_ns = sum(i.st_size for i in infos), max(i.st_mtime_ns for i in infos)
            digest = lambda: _frames_sha256(files, infos)  # noqa: E731
        else:
            info = os.stat(path)
            size, mtime_ns = info.st_size, info.st_mtime_ns
            digest = lambda: _ends_sha256(path, info.st_size)  # noqa: E731
        if size != self.size:
            return "changed"
        if mtime_ns == self.mtime_ns:
            return "same"
        return "same content" if digest() == self.sha256 else "changed"


def clip_mtime_ns(path: str | os.PathLike) -> int:
    """The modification time a fingerprint records for ``path`` (a frame folder: its newest image's)."""
    if os.path.isdir(path):
        return max(info.st_mtime_ns for info in _frame_stats(path)[1])
    return os.stat(path).st_mtime_ns


def is_clip(path: str | os.PathLike) -> bool:
    """True when ``path`` is a file or a folder (a clip given as frame images), i.e. can be fingerprinted."""
    return os.path.isfile(path) or os.path.isdir(path)


def _frame_stats(folder: str | os.PathLike) -> tuple[list[str], list[os.stat_result]]:
    """The frame images of ``folder`` in frame order and their ``os.stat``; FrameFolderError when there are none."""
    from .frame_folders import list_frames

    files = list_frames(folder, check_sizes=False)
    return files, [os.stat(file) for file in files]


def _frames_sha256(files: list[str], infos: list[os.stat_result]) -> str:
    digest = hashlib.sha256(str(len(files)).encode())
    for file, info in zip(files, infos):
        digest.update(f"{os.path.basename(file)}\0{info.st_size}\0".encode())
    for file, info in ((files[0], infos[0]), (files[-1], infos[-1])):
        digest.update(_ends_sha256(file, info.st_size).encode())
    return digest.hexdigest()


def _ends_sha256(path: str | os.PathLike, size: int) -> str:
    digest = hashlib.sha256(str(size).encode())
    with open(path, "rb") as file:
        digest.update(file.read(HASH_SPAN))
        if size > HASH_SPAN:
            file.seek(max(HASH_SPAN, size - HASH_SPAN))
            digest.update(file.read(HASH_SPAN))
    return digest.hexdigest()


def sampler_key(mode: str, num_frames: int) -> str:
    """Key of the frames a sampler picks, e.g. ``sampler_key("uniform", 16) == "uniform:16"``."""
    if mode == ALL_FRAMES:
        return ALL_FRAMES
    return f"{mode}:{int(num_frames)}"


@dataclass
class FaceLabels:
    """Per-frame face labels for a list of frames, coordinates normalised to the source frame."""

    frame_indices: np.ndarray  # (N,) int64
    boxes: np.ndarray  # (N, 4) float32, x, y, w, h
    landmarks: np.ndarray  # (N, 5, 2) float32, x, y
    mask: np.ndarray  # (N,) bool, False where no face was found
    scores: np.ndarray  # (N,) float32, detector confidence (1.0 for exact labels)
    width: int = 0
    height: int = 0
    num_source_frames: int = 0

    def __post_init__(self):
        n = len(self.frame_indices)
        self.frame_indices = np.asarray(self.frame_indices, dtype=np.int64).reshape(n)
        self.boxes = np.asarray(self.boxes, dtype=np.float32).reshape(n, 4)
        self.landmarks = np.asarray(self.landmarks, dtype=np.float32).reshape(n, NUM_LANDMARKS, 2)
        self.mask = np.asarray(self.mask, dtype=bool).reshape(n)
        self.scores = np.asarray(self.scores, dtype=np.float32).reshape(n)

    def select(self, indices: Sequence[int]) -> FaceLabels:
        """Labels for the given source frame indices; frames this row does not hold get mask False."""
        position = {int(f): i for i, f in enumerate(self.frame_indices)}
        rows = [position.get(int(f), -1) for f in indices]
        found = np.array([r >= 0 for r in rows], dtype=bool)
        take = np.array([max(r, 0) for r in rows], dtype=np.int64)
        if len(self.frame_indices) == 0:
            n = len(rows)
            return FaceLabels(np.asarray(indices), np.zeros((n, 4)), np.zeros((n, 5, 2)), np.zeros(n, bool),
                              np.zeros(n), self.width, self.height, self.num_source_frames)
        boxes = np.where(found[:, None], self.boxes[take], 0.0)
        landmarks = np.where(found[:, None, None], self.landmarks[take], 0.0)
        return FaceLabels(
            frame_indices=np.asarray(indices, dtype=np.int64),
            boxes=boxes,
            landmarks=landmarks,
            mask=self.mask[take] & found,
            scores=np.where(found, self.scores[take], 0.0),
            width=self.width,
            height=self.height,
            num_source_frames=self.num_source_frames,
        )

    def to_row(self, path: str, key: str, detector: str) -> dict:
        return {
            "path": str(path),
            "sampler_key": key,
            "detector": detector,
            "width": int(self.width),
            "height": int(self.height),
            "num_source_frames": int(self.num_source_frames),
            "frame_indices": self.frame_indices.tolist(),
            "boxes": self.boxes.tolist(),
            "landmarks": self.landmarks.tolist(),
            "mask": self.mask.tolist(),
            "scores": self.scores.tolist(),
        }

    @classmethod
    def from_row(cls, row: dict) -> FaceLabels:
        return cls(
            frame_indices=np.asarray(row["frame_indices"]),
            boxes=np.asarray(row["boxes"], dtype=np.float32) if len(row["boxes"]) else np.zeros((0, 4)),
            landmarks=np.asarray(row["landmarks"], dtype=np.float32) if len(row["landmarks"]) else np.zeros((0, 5, 2)),
            mask=np.asarray(row["mask"], dtype=bool),
            scores=np.asarray(row["scores"], dtype=np.float32),
            width=int(row["width"]),
            height=int(row["height"]),
            num_source_frames=int(row["num_source_frames"]),
        )


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
        self._rows[(str(path), key)] = {**labels.to_row(path, key, detector), **columns}
        self._changed.add((str(path), key))

    def state(self, path: str, key: str, file: str | os.PathLike | None = None) -> RowState:
        """Whether the ``(path, key)`` row is ``"current"`` for ``file`` (default ``root / path``), its
        video ``"changed"`` since, the row is ``"unverified"`` (no fingerprint, or no file to check), or
        ``"missing"``."""
        row = self._rows.get((str(path), key))
        if row is None:
            return "missing"
        file = Path(file) if file is not None else self.root / path
        if row.get("file_size") is None or not is_clip(file):
            return "unverified"
        verdict = FileFingerprint.from_row(row).check(file)
        if verdict == "same content":  # copied or touched: remember the new mtime, so it is not hashed again
            row["file_mtime_ns"] = clip_mtime_ns(file)
            self._changed.add((str(path), key))
        return "changed" if verdict == "changed" else "current"

    def get(self, path: str, key: str | None = None, file: str | os.PathLike | None = None) -> FaceLabels | None:
        """The row for ``(path, key)``, else the path's ``"all"`` row, else ``None``.

        A row whose video (``file``, default ``root / path``) changed since it was labelled is never
        served: it is logged and ``None`` is returned, as for a video the cache lacks.
        """
        for candidate in ([key] if key else []) + [ALL_FRAMES]:
            state = self.state(path, candidate, file)
            if state == "missing":
                continue
            self._warn_once(state, path)
            return None if state == "changed" else FaceLabels.from_row(self._rows[(str(path), candidate)])
        return None

    def labels_for(self, path: str, frame_indices: Sequence[int], key: str | None = None,
                   file: str | os.PathLike | None = None) -> FaceLabels | None:
        """Labels of exactly ``frame_indices`` of ``path`` (mask False for frames the cache lacks)."""
        labels = self.get(path, key, file)
        return None if labels is None else labels.select(frame_indices)

    def _warn_once(self, state: RowState, path: str) -> None:
        if state == "changed" and "changed" not in self._warned:
            logger.warning("%s changed since its face labels in %s were made: its labels are not used (run "
                           "mtcae-annotate again to re-label it; further such videos are logged at debug level)",
                           self.root / path, self.path)
        elif state == "changed":
            logger.debug("%s changed since it was labelled: labels not used", self.root / path)
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
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=self.path.parent, suffix=".parquet.tmp"):
                pass
            open(f"{self.path}.lock", "a").close()  # what filelock opens for save's lock
        except OSError as error:
            raise OSError(f"cannot write the face-label cache {self.path}: {error.strerror or error}") from error

    def save(self) -> Path:
        """Merge with the file as other writers left it and replace it atomically, under the lock."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with _locked(self.path):
            merged = self._read()
            for key in self._synced - self._rows.keys():
                merged.pop(key, None)  # dropped by this writer
            merged.update({key: self._rows[key] for key in self._changed})
            _write_atomically(merged, self.path)
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
    import pyarrow as pa

    return pa.schema(
        [
            ("path", pa.string()),
            ("sampler_key", pa.string()),
            ("detector", pa.string()),
            ("width", pa.int32()),
            ("height", pa.int32()),
            ("num_source_frames", pa.int32()),
            ("frame_indices", pa.list_(pa.int32())),
            ("boxes", pa.list_(pa.list_(pa.float32()))),
            ("landmarks", pa.list_(pa.list_(pa.list_(pa.float32())))),
            ("mask", pa.list_(pa.bool_())),
            ("scores", pa.list_(pa.float32())),
            ("file_size", pa.int64()),
            ("file_mtime_ns", pa.int64()),
            ("file_sha256", pa.string()),
        ]
    )


def _write_atomically(rows: dict[tuple[str, str], dict], path: Path) -> None:
    """Temp file + rename, so a killed job never leaves a torn cache; the file keeps its mode (new: 0666 - umask)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pylist([rows[k] for k in sorted(rows)], schema=_arrow_schema())
    mode = stat.S_IMODE(path.stat().st_mode) if path.exists() else 0o666 & ~_umask()
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".parquet.tmp")  # mkstemp makes it 0600
    os.close(fd)
    try:
        pq.write_table(table, tmp)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


__all__ = [
    "ALL_FRAMES",
    "CACHE_COLUMNS",
    "LANDMARK_NAMES",
    "AnnotationCache",
    "FaceLabels",
    "FileFingerprint",
    "RowState",
    "sampler_key",
]
