"""Label a data set's clips with a face box and the landmarks per sampled frame (``mtcae-annotate``'s library):
resumable, saved on a schedule, past bad files; see :func:`annotate_dataset`."""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from tqdm.auto import tqdm

from .annotation_cache import AnnotationCache, sampler_key
from .dataset_files import LoadReport, find_video_files
from .dataset_registry import dataset_key, get_dataset
from .decoding_mtcae import VIDEO_EXTENSIONS
from .face_detectors import annotate_video, get_detector
from .files import FileFingerprint
from .workers import WorkersLost, run_jobs

DEFAULT_CACHE_NAME = "face_labels.parquet"

# Per worker process state, set up once by `_init_worker`.
_WORKER: dict = {}


def find_videos(root: Path, extensions: tuple[str, ...] | None = None) -> list[Path]:
    """Video files under ``root`` (recursively, hidden ones left out), sorted so runs visit them in the same order."""
    report = LoadReport(dataset="annotate", root=str(root))
    found = find_video_files(root, report, extensions or VIDEO_EXTENSIONS)
    for warning in report.warnings:
        print(f"note: {warning}")
    return [Path(root, rel) for rel in found]


def find_clips(root: Path, dataset: str | None = None,
               extensions: Sequence[str] | None = None) -> list[tuple[str, Path]]:
    """``(relative path, path)`` of every clip to label: the videos under ``root``, or ``dataset``'s clips."""
    if dataset is None:
        videos = find_videos(root, tuple(extensions) if extensions else None)
        return [(video.relative_to(root).as_posix(), video) for video in videos]
    table, load_report = get_dataset(dataset_key(dataset)).load(root)
    if load_report.invalid or load_report.skipped or load_report.warnings:
        print(f"note: {load_report.summary()}")
    clips = dict(zip(table["rel_path"], table["video"]))  # a clip listed by several splits is labelled once
    return [(relative, Path(clips[relative])) for relative in sorted(clips)]


def _init_worker(detector: str, detector_kwargs: dict, single_thread: bool) -> None:
    if single_thread:
        # Workers run in parallel already; threads inside each would oversubscribe the cores.
        try:
            import cv2

            cv2.setNumThreads(1)
        except ImportError:
            pass
        import torch

        torch.set_num_threads(1)
    _WORKER["detector"] = get_detector(detector, **detector_kwargs)


def _label_one(task: tuple[str, str, dict]):
    """(relative path, absolute path, options) -> (relative path, labels, fingerprint, error); None where absent.

    The fingerprint is taken before decoding, so a file replaced while it is labelled is labelled again next run.
    """
    relative, absolute, options = task
    try:
        fingerprint = FileFingerprint.of(absolute)
        labels = annotate_video(absolute, detector=_WORKER["detector"], **options)
        return relative, labels, fingerprint, None
    except Exception as error:  # noqa: BLE001  (keep going: one bad file must not stop a dataset run)
        return relative, None, None, f"{type(error).__name__}: {error}"


def plan(clips: list[tuple[str, Path]], root: Path, cache, key: str,
         limit: int | None) -> tuple[list[tuple[str, Path]], int, str]:
    """The clips to label now (not in the cache, or changed since), how many are already in, and a line saying so."""
    states = {(relative, clip): cache.state(relative, key, clip) for relative, clip in clips}
    counts = Counter(states.values())
    todo = [clip for clip, state in states.items() if state != "current"]
    line = f"{len(clips)} videos under {root}, {counts['current']} already in {cache.path}"
    if counts["changed"]:
        line += f", {counts['changed']} changed since labelled (labelled again)"
    if counts["unverified"]:
        line += f", {counts['unverified']} labelled before the cache kept file fingerprints (labelled again)"
    if counts["damaged"]:
        line += f", {counts['damaged']} with a damaged row (labelled again)"
    if limit is not None and len(todo) > limit:
        line += f"; --limit {limit}: {len(todo) - limit} left for a later run"
        todo = todo[:limit]
    return todo, counts["current"], f"{line}; {len(todo)} to label"


class SaveSchedule:
    """Save after ``every`` results or ``interval_s`` seconds since the last save, whichever comes first."""

    def __init__(self, every: int, interval_s: float):
        self.every, self.interval_s = every, interval_s
        self.pending, self.last = 0, time.monotonic()

    def record(self) -> bool:
        """Count one result; True when it is time to save."""
        self.pending += 1
        return self.pending >= self.every or time.monotonic() - self.last >= self.interval_s

    def saved(self) -> None:
        self.pending, self.last = 0, time.monotonic()


def label_all(tasks: list[tuple[str, str, dict]], cache: AnnotationCache, key: str, detector: str = "mtcnn",
              workers: int = 1, save_every: int = 50, save_interval_s: float = 10.0, progress: bool = True) -> dict:
    """Label ``tasks`` (in worker processes if asked), adding rows to ``cache`` and saving on schedule.

    Raises:
        WorkersLost: a worker process died; the rows labelled before are in ``cache`` (not saved yet).
    """
    stats = {"labelled": 0, "faces": 0, "frames": 0, "failures": {}}
    schedule = SaveSchedule(save_every, save_interval_s)

    def record(result) -> None:
        relative, labels, fingerprint, error = result
        if error is not None:
            stats["failures"][relative] = error
            return
        cache.add(relative, key, labels, detector=detector, fingerprint=fingerprint)
        stats["labelled"] += 1
        stats["faces"] += int(labels.mask.sum())
        stats["frames"] += len(labels.mask)
        if schedule.record():
            cache.save()
            schedule.saved()

    if workers <= 1 or len(tasks) <= 1:
        _init_worker(detector, {}, single_thread=False)
    with tqdm(total=len(tasks), unit="video", disable=not progress, desc="annotate") as bar:
        for _, result in run_jobs(_label_one, tasks, workers, name=lambda task: task[0], initializer=_init_worker,
                                  initargs=(detector, {}, True)):
            record(result)
            bar.update()
    return stats


def report(stats: dict, cache, elapsed: float) -> None:
    print(
        f"mtcae-annotate: labelled {stats['labelled']} videos in {elapsed:.1f} s; face found on {stats['faces']} of "
        f"{stats['frames']} frames; cache {cache.path} holds {len(cache)} rows"
    )
    failures = stats["failures"]
    if failures:
        print(f"mtcae-annotate: {len(failures)} videos failed:", file=sys.stderr)
        reasons = Counter(error.split(":", 1)[0] for error in failures.values())
        for relative, error in sorted(failures.items()):
            print(f"  {relative}: {error}", file=sys.stderr)
        print("  by error type: " + ", ".join(f"{k} x{v}" for k, v in reasons.most_common()), file=sys.stderr)


def annotate_dataset(data_root: str | Path, output: str | Path | None = None, *, dataset: str | None = None,
                     detector: str = "mtcnn", num_frames: int = 16, mode: str = "uniform", label_size: int = 224,
                     prefer: str = "largest", workers: int = 1, save_every: int = 50, save_interval_s: float = 10.0,
                     extensions: Sequence[str] | None = None, limit: int | None = None, strict: bool = False,
                     progress: bool = True) -> int:
    """Label every clip under ``data_root`` (or ``dataset``'s clips) into ``output``; returns the exit status.

    0 when labelling went through; 1 when nothing usable came out (every video failed), a worker process died (what
    was labelled is saved; the lost clips are named) or, with ``strict``, when any video failed; 2 when the output
    cannot be written or the clips cannot be listed (said in one line on standard error, before any labelling).
    ``label_size`` 0 detects at source resolution.
    """
    root = Path(data_root).resolve()
    try:
        cache = AnnotationCache(output or root / DEFAULT_CACHE_NAME, root=root)
        cache.check_writable()  # before any labelling, so no work is lost to an unwritable output
        clips = find_clips(root, dataset, extensions)
    except (ValueError, OSError) as error:  # unreadable cache, unwritable output, a loader refusing the root
        print(f"mtcae-annotate: {error}", file=sys.stderr)
        return 2
    key = sampler_key(mode, num_frames)
    todo, already_in, found = plan(clips, root, cache, key, limit)
    print(f"mtcae-annotate: {found} with {detector} ({key})")
    options = {"num_frames": num_frames, "mode": mode, "label_size": label_size or None, "prefer": prefer}
    tasks = [(relative, str(clip), options) for relative, clip in todo]
    start = time.perf_counter()
    try:
        stats = label_all(tasks, cache, key, detector, workers, save_every, save_interval_s, progress)
    except KeyboardInterrupt:
        print("\nmtcae-annotate: interrupted; saving what is done (run again to resume)", file=sys.stderr)
        cache.save()
        return 130
    except WorkersLost as error:
        cache.save()
        print(f"mtcae-annotate: error: {error}", file=sys.stderr)
        return 1
    if cache.modified:
        cache.save()
    report(stats, cache, time.perf_counter() - start)
    if stats["failures"] and (strict or (stats["labelled"] == 0 and already_in == 0)):
        return 1
    return 0


__all__ = ["DEFAULT_CACHE_NAME", "SaveSchedule", "annotate_dataset", "find_clips", "find_videos", "label_all", "plan"]
