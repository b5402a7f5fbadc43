"""Files on disk, done once for every tool: content fingerprints, atomic writes and writability checks.

- :class:`FileFingerprint` says whether a video (or a clip given as a folder of frame images) is the one a
  cached result was made from; the face-label cache and the prepared-clip cache both key on it.
- :func:`atomic_write` writes through a temporary file in the target's folder and renames it, so a reader
  (or a resumed run) sees the whole file or none, and a new file gets the mode ``0o666 & ~umask``.
- :func:`check_writable_folder` fails before any work when a folder cannot be written.
- :func:`storage_error` turns a write refused for lack of space or permission (``ENOSPC``, ``EDQUOT``, ``EROFS``,
  ``EACCES``, ``EFBIG``, or torch's cut-short write on a full disk) into a :class:`StorageError`: one line naming the
  path, the reason and the space left.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import stat
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from .frame_folders import list_frames

HASH_SPAN = 64 * 1024  # bytes hashed at each end of a file
TEMPORARY_PREFIX = ".tmp-"  # atomic_write's temporary files: ".tmp-<pid>-<random><suffix>" by default


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
        size, mtime_ns, digest = _stat_clip(path)
        return cls(size, mtime_ns, digest())

    @classmethod
    def from_row(cls, row: dict) -> FileFingerprint:
        return cls(int(row["file_size"]), int(row["file_mtime_ns"]), str(row["file_sha256"]))

    def columns(self) -> dict:
        return {"file_size": self.size, "file_mtime_ns": self.mtime_ns, "file_sha256": self.sha256}

    def check(self, path: str | os.PathLike) -> Literal["same", "same content", "changed"]:
        """``"same"`` (size and mtime as recorded), ``"same content"`` (other mtime, same hash) or ``"changed"``."""
        try:
            size, mtime_ns, digest = _stat_clip(path)
        except ValueError:  # a frame folder emptied, or with no images left
            return "changed"
        if size != self.size:
            return "changed"
        if mtime_ns == self.mtime_ns:
            return "same"
        return "same content" if digest() == self.sha256 else "changed"


FINGERPRINT_COLUMNS = tuple(FileFingerprint(0, 0, "").columns())


def clip_mtime_ns(path: str | os.PathLike) -> int:
    """The modification time a fingerprint records for ``path`` (a frame folder: its newest image's)."""
    return _stat_clip(path)[1]


def is_clip(path: str | os.PathLike) -> bool:
    """True when ``path`` is a file or a folder (a clip given as frame images), i.e. can be fingerprinted."""
    return os.path.isfile(path) or os.path.isdir(path)


def _stat_clip(path: str | os.PathLike) -> tuple[int, int, Callable[[], str]]:
    """``(size, mtime_ns, digest)`` of a file or a frame folder; ``digest()`` reads (the ends of) the content."""
    if os.path.isdir(path):
        files = list_frames(path, check_sizes=False)
        infos = [os.stat(file) for file in files]
        return (sum(i.st_size for i in infos), max(i.st_mtime_ns for i in infos),
                lambda: _frames_sha256(files, infos))
    info = os.stat(path)
    return info.st_size, info.st_mtime_ns, lambda: _ends_sha256(path, info.st_size)


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


STORAGE_ERRNOS = {errno.ENOSPC: "no space left on the device", errno.EDQUOT: "the disk quota is exceeded",
                  errno.EROFS: "the file system is read-only", errno.EACCES: "permission denied",
                  errno.EFBIG: "the file is too large for the file system"}
CUT_SHORT_WRITES = ("unexpected pos", "file write failed")  # torch.save's errors on a full disk (not OSErrors)


class StorageError(OSError):
    """A write refused for lack of space or permission; the message is one line naming the path."""

    def __init__(self, message: str, code: int):
        super().__init__(message)
        self.errno = code


def storage_error(error: BaseException, path: str | os.PathLike | None) -> StorageError | None:
    """``error`` as a :class:`StorageError` naming ``path``, when it is a refused write; ``None`` otherwise."""
    if isinstance(error, StorageError):
        return error
    code = getattr(error, "errno", None)
    if code in STORAGE_ERRNOS:
        reason = STORAGE_ERRNOS[code]
    elif isinstance(error, RuntimeError) and any(text in str(error) for text in CUT_SHORT_WRITES):
        code, reason = errno.ENOSPC, "the write was cut short (the disk is probably full)"
    else:
        return None
    path = path if path is not None else getattr(error, "filename", None) or "a file"
    return StorageError(f"cannot write {path}: {reason}{_space_left(path)}; nothing half-written was kept. Free some "
                        "space, or write to another folder", code)


def _space_left(path: str | os.PathLike | None) -> str:
    folder = Path(path) if path is not None else None
    while folder is not None and not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        return f" ({shutil.disk_usage(folder).free / 2**20:,.0f} MiB free on its file system)" if folder else ""
    except OSError:
        return ""


def atomic_write(target: str | os.PathLike, write: Callable[[str], None], prefix: str = TEMPORARY_PREFIX,
                 keep_mode: bool = True) -> Path:
    """Write ``target`` by calling ``write(temporary_path)`` and renaming the result into place.

    The temporary file lies beside the target (same file system, so the rename is atomic), named
    ``<prefix><pid>-<random><suffix>`` with the target's suffix (so writers that choose a format by the
    name, like PyAV, still can). On any failure it is removed and the target is left as it was; a write refused for
    lack of space or permission raises :class:`StorageError`. The file gets the target's current mode (``keep_mode``),
    else ``0o666 & ~umask`` like any new file.
    """
    target, temporary = Path(target), None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        mode = stat.S_IMODE(target.stat().st_mode) if keep_mode and target.exists() else 0o666 & ~_umask()
        handle, temporary = tempfile.mkstemp(prefix=f"{prefix}{os.getpid()}-", suffix=target.suffix,
                                             dir=target.parent)
        os.close(handle)
        write(temporary)
        os.chmod(temporary, mode)
        os.replace(temporary, target)
    except BaseException as error:
        if temporary is not None:
            Path(temporary).unlink(missing_ok=True)
        converted = storage_error(error, target)
        if converted is None:
            raise
        raise converted from error
    return target


def write_text(path: str | os.PathLike, text: str) -> Path:
    """``text`` into ``path`` (UTF-8), atomically (:func:`atomic_write`)."""
    return atomic_write(path, lambda temporary: Path(temporary).write_text(text, encoding="utf-8"))


def write_json(path: str | os.PathLike, data, **dump_options) -> Path:
    """``json.dump(data, **dump_options)`` into ``path``, atomically (:func:`atomic_write`)."""
    def write(temporary: str) -> None:
        with open(temporary, "w", encoding="utf-8") as handle:
            json.dump(data, handle, **dump_options)

    return atomic_write(path, write)


def remove_abandoned_temporaries(folder: Path, pattern: str, marker: str = TEMPORARY_PREFIX) -> int:
    """Delete the files under ``folder`` matching ``pattern`` that :func:`atomic_write` left half-written for a
    writer that is gone (a killed run: the process id after ``marker`` in the name is dead); returns how many."""
    removed = 0
    for temporary in Path(folder).glob(pattern):
        pid = temporary.name.split(marker, 1)[-1].split("-", 1)[0]
        if pid.isdigit() and not _process_alive(int(pid)):
            temporary.unlink(missing_ok=True)
            removed += 1
    return removed


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def check_writable_folder(folder: str | os.PathLike, flag: str) -> None:
    """Create ``folder`` if need be and write a probe file in it; an ``OSError`` naming ``flag`` otherwise.

    The probe has a unique name (``tempfile``), so processes checking the same folder at once (the
    ranks of a distributed run) never remove each other's probe.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(f"{flag} {folder} is a file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise OSError(f"{flag} {folder} cannot be written ({error.strerror or error})") from error


__all__ = ["FINGERPRINT_COLUMNS", "HASH_SPAN", "STORAGE_ERRNOS", "TEMPORARY_PREFIX", "FileFingerprint", "StorageError",
           "atomic_write", "check_writable_folder", "clip_mtime_ns", "is_clip", "remove_abandoned_temporaries",
           "storage_error", "write_json", "write_text"]
