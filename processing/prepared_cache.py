"""The prepared-clip cache: every video decoded and framed once per processor setting.

Training reads the same clips in every epoch; decoding them (a RAVDESS clip is ~100 frames of
1280 x 720) and warping their frames again each time costs more than the model's step. This cache
decodes each video once, applies the processor's geometry (every ``resize_mode``, ``face_align``
with the clip's face labels included) and stores, per video, uint8 frames at model resolution plus
the face labels already mapped into model-input coordinates.

Which frames are stored: :func:`processing.sampling_mtcae.stored_frame_indices` (every source frame when
the clip has at most ``num_frames * frames_per_segment`` frames, 64 by default: the synthetic set's 32,
DFEW's mean 77 is above; else ``frames_per_segment`` evenly spaced frames per segment plus the frames
evaluation takes). Training's temporal jitter then draws one stored frame per segment with the same
rule as on-the-fly decoding: exactly the on-the-fly jitter distribution when every frame is stored,
``frames_per_segment`` (+1) choices per segment otherwise.

Storage: one safetensors file per video (memory-mapped on read; tensors ``frames`` uint8
``(K, 3, H, W)``, ``frame_indices`` int64 ``(K,)``, ``face_boxes`` / ``face_landmarks`` /
``face_mask``), in ``CACHE_DIR/<key[:2]>/<key>.safetensors``. The key hashes the video's path and
content fingerprint (:class:`processing.files.FileFingerprint`), the face labels used, and every processor
setting that changes pixels (:func:`pixel_settings`), so a changed file, label or setting is prepared again,
never served stale.
Entries are written to a temporary name and renamed, so an entry is complete or absent: a killed
run resumes where it stopped and never serves a half-written entry.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from .decoding_mtcae import VideoDecodeError, read_video
from .face_labels_mtcae import FaceLabels
from .files import (
    TEMPORARY_PREFIX,
    FileFingerprint,
    atomic_write,
    check_writable_folder,
    remove_abandoned_temporaries,
)
from .sampling_mtcae import DEFAULT_FRAMES_PER_SEGMENT, stored_frame_indices
from .video_processing_mtcae import MTCAEVideoProcessor
from .workers import run_jobs

logger = logging.getLogger(__name__)

CACHE_FORMAT_VERSION = 2  # 2: keyed by the content fingerprint (a frame folder by its images)
# Processor attributes that change the stored pixels or labels; normalisation, flips and jitter
# are applied when the cache is read, so they are not part of the key.
PIXEL_SETTINGS = (
    "size", "resize_mode", "face_crop_margin", "face_align_padding", "antialias", "resample", "do_resize",
    "do_center_crop", "crop_size", "num_frames", "sampling_mode", "video_backend", "face_detector",
)
AUTO_WORKERS_MIN_CLIPS = 64  # fewer missing clips are prepared in-process: worker start-up would cost more


def default_cache_dir() -> Path:
    """``$MTCAE_CACHE/prepared``, else ``$XDG_CACHE_HOME/mtcae/prepared`` (``~/.cache/mtcae/prepared``)."""
    root = os.environ.get("MTCAE_CACHE") or Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache").expanduser() / "mtcae"
    return Path(root) / "prepared"


def pixel_settings(processor: MTCAEVideoProcessor, frames_per_segment: int = DEFAULT_FRAMES_PER_SEGMENT) -> dict:
    """The processor settings that decide a cache entry's content (JSON-serialisable)."""
    settings = {name: getattr(processor, name, None) for name in PIXEL_SETTINGS}
    settings["size"] = dict(settings["size"]) if settings["size"] is not None else None
    settings["crop_size"] = dict(settings["crop_size"]) if settings["crop_size"] is not None else None
    settings.update(frames_per_segment=int(frames_per_segment), format=CACHE_FORMAT_VERSION,
                    processor_class=type(processor).__name__)
    return json.loads(json.dumps(settings, default=str))


def entry_key(path: str | os.PathLike, settings: dict, face_labels: FaceLabels | dict | None = None) -> str:
    """The cache key of one video under one setting (changes with the file's content, its labels or the setting)."""
    labels = "none" if face_labels is None else FaceLabels.from_input(face_labels).digest()
    payload = {"file": {"path": str(Path(path).resolve()), **FileFingerprint.of(path).columns()}, "labels": labels,
               "settings": settings}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:32]


def prepare_entry(path: str, processor: MTCAEVideoProcessor, face_labels: Any = None,
                  frames_per_segment: int = DEFAULT_FRAMES_PER_SEGMENT) -> dict[str, torch.Tensor]:
    """Decode and frame one video: the tensors of its cache entry (nothing written)."""

    def stored(metadata) -> np.ndarray:  # called by the decoder once the clip's length is known
        return stored_frame_indices(metadata.total_num_frames, processor.num_frames, frames_per_segment)

    frames, indices, info = read_video(path, backend=processor.video_backend, sample_indices_fn=stored)
    num_source = int(info["num_source_frames"])
    prepared = processor.prepare_frames(frames, indices, face_labels=face_labels, num_source_frames=num_source)
    tensors = {"frames": prepared["frames"].contiguous(),
               "frame_indices": torch.as_tensor(np.asarray(indices), dtype=torch.int64),
               "num_source_frames": torch.tensor([num_source], dtype=torch.int64)}
    if "face_boxes" in prepared:
        tensors.update(face_boxes=prepared["face_boxes"].float().contiguous(),
                       face_landmarks=prepared["face_landmarks"].float().contiguous(),
                       face_mask=prepared["face_mask"].to(torch.uint8).contiguous())
    return tensors


ENTRY_TENSORS = ("frames", "frame_indices", "num_source_frames")


def entry_damage(path: str | os.PathLike, required: Sequence[str] = ENTRY_TENSORS) -> str | None:
    """Why the safetensors file ``path`` cannot serve as a cache entry (a cut or foreign file, a tensor missing,
    frame counts that disagree), or ``None``: its header is read, not its data."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as entry:
            shapes = {name: entry.get_slice(name).get_shape() for name in entry.keys()}
    except Exception as error:  # SafetensorError, OSError: a cut or foreign file
        return f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else 'unreadable'}"
    missing = [name for name in required if name not in shapes]
    if missing:
        return f"no {', '.join(missing)}"
    counts = {shapes[name][0] for name in shapes if name in ("frames", "frame_indices", "face_boxes", "face_mask")}
    return None if len(counts) <= 1 else f"its tensors hold different frame counts {sorted(counts)}"


def write_safetensors_atomically(tensors: dict[str, torch.Tensor], target: Path,
                                 metadata: dict[str, str] | None = None) -> None:
    """Write ``tensors`` under a temporary name beside ``target`` and rename it: readers see all or nothing."""
    from safetensors.torch import save_file

    atomic_write(target, lambda temporary: save_file(tensors, temporary, metadata=metadata), keep_mode=False)


@dataclass
class PrepareReport:
    """What :meth:`PreparedClipCache.prepare` did: entries written, entries already there, videos that failed,
    and the entry file of every video that has one (``entries``)."""

    prepared: int = 0
    reused: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    entries: dict[str, str] = field(default_factory=dict)
    repaired: int = 0  # entries found damaged and prepared again (counted in ``prepared`` too)

    def summary(self) -> str:
        damaged = f" ({self.repaired} of them damaged entries prepared again)" if self.repaired else ""
        lines = [f"{self.prepared} clip(s) prepared{damaged}, {self.reused} already in the cache, "
                 f"{len(self.failed)} failed"]
        lines += [f"  unreadable: {path}: {reason}" for path, reason in self.failed.items()]
        return "\n".join(lines)


class PreparedClipCache:
    """A folder of prepared clips for one processor setting.

    Args:
        cache_dir: the cache folder (created when missing); ``None``: :func:`default_cache_dir`.
        processor: the processor whose geometry and size the entries follow.
        frames_per_segment: stored frames per uniform segment for long clips (see the module docstring).
    """

    def __init__(self, cache_dir: str | os.PathLike | None, processor: MTCAEVideoProcessor,
                 frames_per_segment: int = DEFAULT_FRAMES_PER_SEGMENT):
        if int(frames_per_segment) < 1:
            raise ValueError(f"frames_per_segment must be >= 1, got {frames_per_segment}")
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.processor = processor
        self.frames_per_segment = int(frames_per_segment)
        self.settings = pixel_settings(processor, self.frames_per_segment)

    def entry_path(self, video: str, face_labels: FaceLabels | dict | None = None) -> Path:
        """Where the entry of ``video`` with ``face_labels`` lies (reads the video's fingerprint)."""
        key = entry_key(video, self.settings, face_labels)
        return self.cache_dir / key[:2] / f"{key}.safetensors"

    def __contains__(self, item) -> bool:
        video, face_labels = item if isinstance(item, tuple) else (item, None)
        return self.entry_path(video, face_labels).is_file()

    def check_writable(self) -> None:
        """Fail now, before any decoding, when the cache folder cannot be written."""
        try:
            check_writable_folder(self.cache_dir, "the folder")
        except OSError as error:
            raise PermissionError(f"cannot write the prepared-clip cache folder {self.cache_dir}: {error}") from error

    def remove_abandoned_temporaries(self) -> int:
        """Delete this cache's own half-written files left by a killed run (their writer is gone)."""
        return remove_abandoned_temporaries(self.cache_dir, f"*/{TEMPORARY_PREFIX}*.safetensors")

    def prepare(self, videos: Sequence[str], face_labels: Sequence[Any] | None = None, num_workers: int = -1,
                progress: bool = True) -> PrepareReport:
        """Prepare every video not in the cache yet; a video that fails is reported and the rest go on.

        ``face_labels``: one per video (``FaceLabels``, a dict of the same fields, or ``None``). ``num_workers``:
        decoding processes; ``-1`` (default) one per core (up to 4) when more than 64 clips are missing, else in
        this process; ``0``: in this process. Each video's entry path is worked out once (``report.entries``).
        """
        self.check_writable()
        self.remove_abandoned_temporaries()
        labels = list(face_labels) if face_labels is not None else [None] * len(videos)
        if len(labels) != len(videos):
            raise ValueError(f"got {len(labels)} face labels for {len(videos)} videos")
        report, todo = PrepareReport(), []
        for video, label in zip(map(str, videos), labels):
            try:
                target = self.entry_path(video, label)
            except (OSError, ValueError) as error:  # a missing file, an emptied frame folder
                report.failed[video] = f"{type(error).__name__}: {error}"
                continue
            damage = entry_damage(target) if target.is_file() else None
            if target.is_file() and damage is None:
                report.reused += 1
                report.entries[video] = str(target)
                continue
            if damage is not None:  # ours to replace: written by this cache, now unreadable (cut, overwritten)
                logger.warning("prepared-clip cache entry %s of %s cannot be read (%s): preparing it again", target,
                               video, damage)
                target.unlink(missing_ok=True)
                report.repaired += 1
            todo.append((video, label, str(target)))
        for (video, _, target), error in self._run(todo, num_workers, progress):
            if error is None:
                report.prepared += 1
                report.entries[video] = target
            else:
                report.failed[video] = error
        if report.failed:
            logger.warning("prepared-clip cache %s:\n%s", self.cache_dir, report.summary())
        return report

    def _run(self, todo: list[tuple[str, Any, str]], num_workers: int, progress: bool):
        """Prepare ``todo`` (in worker processes when there are many); yields ``(todo item, error or None)``.

        Raises:
            WorkersLost: a worker process died; every entry written before stays valid, so preparing again resumes.
        """
        if num_workers < 0:  # auto
            num_workers = min(4, os.cpu_count() or 1) if len(todo) > AUTO_WORKERS_MIN_CLIPS else 0
        options = (self.processor.to_dict(), self.frames_per_segment, self.settings)
        with tqdm(total=len(todo), desc="preparing clips", unit="clip", disable=not progress or not todo) as bar:
            for item, error in run_jobs(_prepare_job, [(*item, *options) for item in todo], num_workers,
                                        name=lambda job: job[0], initializer=_init_worker):
                bar.update(1)
                yield item[:3], error

    def load(self, video: str, face_labels: FaceLabels | dict | None = None) -> dict[str, torch.Tensor]:
        """The entry of one video, memory-mapped (``KeyError`` when it was not prepared)."""
        from safetensors.torch import load_file

        path = self.entry_path(video, face_labels)
        if not path.is_file():
            raise KeyError(f"{video} is not in the prepared-clip cache {self.cache_dir} (run mtcae-prepare)")
        return load_file(path)


_PROCESSORS: dict[str, MTCAEVideoProcessor] = {}


def _init_worker() -> None:
    torch.set_num_threads(1)  # workers run in parallel already


def _prepare_job(job) -> str | None:
    """Prepare and write one entry; the error (one line) or ``None``."""
    video, label, target, processor_dict, frames_per_segment, settings = job
    key = json.dumps(processor_dict, sort_keys=True, default=str)
    if key not in _PROCESSORS:
        _PROCESSORS[key] = MTCAEVideoProcessor(**{k: v for k, v in processor_dict.items()
                                                  if k not in ("processor_class", "video_processor_type")})
    try:
        tensors = prepare_entry(video, _PROCESSORS[key], label, frames_per_segment)
        write_safetensors_atomically(tensors, Path(target), {"video": video, "settings": json.dumps(settings)})
    except (VideoDecodeError, OSError, ValueError, RuntimeError) as error:
        return f"{type(error).__name__}: {error}"
    return None


__all__ = ["ENTRY_TENSORS", "PrepareReport", "PreparedClipCache", "default_cache_dir", "entry_damage", "entry_key",
           "pixel_settings", "prepare_entry", "write_safetensors_atomically"]
