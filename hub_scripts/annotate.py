"""``mtcae-annotate``: label a dataset folder with face boxes and 5 landmarks per sampled frame.

Writes one Parquet cache (``processing.annotation_cache.AnnotationCache``) keyed by
``(path relative to the root, sampler_key)``, with coordinates normalised to the source frame and
each video's content fingerprint. Runs are resumable: videos already in the cache are skipped, and
videos replaced since they were labelled are labelled again. The cache is saved every
``--save_every`` videos or ``--save_interval_s`` seconds, whichever comes first, so a killed run
loses only the last few seconds; runs sharing one cache merge their rows. The output is checked
writable before any labelling. A file that cannot be decoded is reported at the end and does not
stop the run.

By default the root is searched for video files. ``--dataset NAME`` takes the clips from the data set's
loader in ``processing/dataset_registry.py`` instead (its ``rel_path`` / ``video`` columns), which is how
clips given as folders of frame images (DFEW, FERV39k, MAFW) are labelled; rows stay keyed by ``rel_path``,
the column the training tools join face labels on.

Example::

    mtcae-annotate --data_root /data/RAVDESS --output /data/RAVDESS/face_labels.parquet --workers 4
    mtcae-annotate --data_root /data/DFEW --dataset dfew --workers 4
"""

from __future__ import annotations

import os
import sys
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

DEFAULT_CACHE_NAME = "face_labels.parquet"

# Per worker process state, set up once by `_init_worker`.
_WORKER: dict = {}


@dataclass
class AnnotateArguments:
    """Arguments of ``mtcae-annotate`` (flags are the field names: ``--data_root``, ``--save_every``, ...)."""

    data_root: str = field(metadata={"help": "dataset folder, searched recursively for videos"})
    dataset: str | None = field(default=None, metadata={
        "help": "take the clips from this data set's loader (processing/dataset_registry.py, e.g. dfew, ferv39k, "
                "mafw: clips given as folders of frame images) instead of searching DATA_ROOT for video files"})
    output: str | None = field(
        default=None, metadata={"help": f"cache file, ending in .parquet; unset: DATA_ROOT/{DEFAULT_CACHE_NAME}"})
    detector: Literal["mtcnn", "dlib"] = field(default="mtcnn", metadata={"help": "face detector backend"})
    num_frames: int = field(default=16, metadata={"help": "frames sampled per video"})
    mode: Literal["uniform", "stride"] = field(default="uniform", metadata={"help": "frame sampling mode"})
    label_size: int = field(
        default=224,
        metadata={"help": "detect on frames resized to this size (0 = source resolution; 224 as the authors)"})
    prefer: Literal["largest", "score"] = field(default="largest", metadata={"help": "face kept when several"})
    workers: int = field(default=max(1, (os.cpu_count() or 2) - 1), metadata={"help": "worker processes"})
    save_every: int = field(default=50, metadata={"help": "save the cache every N labelled videos ..."})
    save_interval_s: float = field(default=10.0, metadata={"help": "... or every S seconds, whichever comes first"})
    extensions: list[str] | None = field(default=None,
                                         metadata={"help": "video file extensions; unset: every known one"})
    limit: int | None = field(default=None, metadata={"help": "label at most N new videos (for a trial run)"})
    strict: bool = field(default=False, metadata={"help": "exit with status 1 if any video failed"})
    no_progress: bool = field(default=False, metadata={"help": "no progress bar"})

    def __post_init__(self):
        if not Path(self.data_root).is_dir():
            raise ValueError(f"--data_root {self.data_root} is not a folder")
        if self.dataset is not None:
            from processing.dataset_registry import dataset_key, get_dataset

            self.dataset = get_dataset(dataset_key(self.dataset)).key  # a clear error for an unknown name
        self.output = self.output or str(Path(self.data_root) / DEFAULT_CACHE_NAME)
        if Path(self.output).suffix.lower() != ".parquet":
            raise ValueError(f"--output must be a .parquet file, got {self.output}")
        for name in ("num_frames", "workers", "save_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name} must be at least 1, got {getattr(self, name)}")
        if self.label_size < 0 or (self.limit is not None and self.limit < 0):
            raise ValueError("--label_size and --limit must not be negative")
        if not self.save_interval_s > 0:
            raise ValueError(f"--save_interval_s must be positive, got {self.save_interval_s}")


def parse_args(argv: list[str] | None = None) -> AnnotateArguments:
    from transformers import HfArgumentParser

    parser = HfArgumentParser(AnnotateArguments, prog="mtcae-annotate", description=(
        "Label the sampled frames of every video under a folder with a face box and 5 landmarks."))
    (args,) = parser.parse_args_into_dataclasses(args=argv)
    return args


def find_videos(root: Path, extensions: tuple[str, ...] | None = None) -> list[Path]:
    """Video files under ``root`` (recursively, hidden ones left out), sorted so runs visit them in the same order."""
    from processing.datasets import VIDEO_EXTENSIONS, LoadReport, find_video_files

    report = LoadReport(dataset="annotate", root=str(root))
    found = find_video_files(root, report, extensions or VIDEO_EXTENSIONS)
    for warning in report.warnings:
        print(f"note: {warning}")
    return [Path(root, rel) for rel in found]


def find_clips(root: Path, args: AnnotateArguments) -> list[tuple[str, Path]]:
    """``(relative path, path)`` of every clip to label: the videos under ``root``, or ``--dataset``'s clips."""
    if args.dataset is None:
        videos = find_videos(root, tuple(args.extensions) if args.extensions else None)
        return [(video.relative_to(root).as_posix(), video) for video in videos]
    from processing.dataset_registry import get_dataset

    table, load_report = get_dataset(args.dataset).load(root, args)
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
    from processing.face_labels import get_detector

    _WORKER["detector"] = get_detector(detector, **detector_kwargs)


def _label_one(task: tuple[str, str, dict]):
    """(relative path, absolute path, options) -> (relative path, labels, fingerprint, error); None where absent.

    The fingerprint is taken before decoding, so a file replaced while it is labelled is labelled again next run.
    """
    relative, absolute, options = task
    from processing.annotation_cache import FileFingerprint
    from processing.face_labels import annotate_video

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


@contextmanager
def _results(tasks: list[tuple[str, str, dict]], args: AnnotateArguments) -> Iterator[Iterable]:
    """The results of `_label_one` on ``tasks``, in this process or in ``args.workers`` worker processes."""
    if args.workers <= 1 or len(tasks) <= 1:
        _init_worker(args.detector, {}, single_thread=False)
        yield map(_label_one, tasks)
        return
    import multiprocessing

    # "spawn": forked copies of OpenCV / torch thread pools can deadlock.
    with multiprocessing.get_context("spawn").Pool(
            args.workers, initializer=_init_worker, initargs=(args.detector, {}, True)) as pool:
        yield pool.imap_unordered(_label_one, tasks, chunksize=1)


def label_all(tasks: list[tuple[str, str, dict]], args: AnnotateArguments, cache, key: str) -> dict:
    """Label ``tasks`` (in worker processes if asked), adding rows to ``cache`` and saving on schedule."""
    from tqdm.auto import tqdm

    stats = {"labelled": 0, "faces": 0, "frames": 0, "failures": {}}
    schedule = SaveSchedule(args.save_every, args.save_interval_s)

    def record(result) -> None:
        relative, labels, fingerprint, error = result
        if error is not None:
            stats["failures"][relative] = error
            return
        cache.add(relative, key, labels, detector=args.detector, fingerprint=fingerprint)
        stats["labelled"] += 1
        stats["faces"] += int(labels.mask.sum())
        stats["frames"] += len(labels.mask)
        if schedule.record():
            cache.save()
            schedule.saved()

    with tqdm(total=len(tasks), unit="video", disable=args.no_progress, desc="annotate") as progress, \
            _results(tasks, args) as results:
        for result in results:
            record(result)
            progress.update()
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


def main(argv: list[str] | None = None) -> int:
    from processing.annotation_cache import AnnotationCache, sampler_key

    try:
        args = parse_args(argv)
        root = Path(args.data_root).resolve()
        cache = AnnotationCache(args.output, root=root)
        cache.check_writable()  # before any labelling, so no work is lost to an unwritable output
    except (ValueError, OSError) as error:  # bad arguments, unreadable cache, unwritable output: one line
        print(f"mtcae-annotate: {error}", file=sys.stderr)
        return 2
    key = sampler_key(args.mode, args.num_frames)
    try:
        clips = find_clips(root, args)
    except (ValueError, OSError) as error:  # the data set's loader refused the root: one line
        print(f"mtcae-annotate: {error}", file=sys.stderr)
        return 2
    todo, already_in, found = plan(clips, root, cache, key, args.limit)
    print(f"mtcae-annotate: {found} with {args.detector} ({key})")
    options = {"num_frames": args.num_frames, "mode": args.mode, "label_size": args.label_size or None,
               "prefer": args.prefer}
    tasks = [(relative, str(clip), options) for relative, clip in todo]
    start = time.perf_counter()
    try:
        stats = label_all(tasks, args, cache, key)
    except KeyboardInterrupt:
        print("\nmtcae-annotate: interrupted; saving what is done (run again to resume)", file=sys.stderr)
        cache.save()
        return 130
    if cache.modified:
        cache.save()
    report(stats, cache, time.perf_counter() - start)
    # Non-zero when nothing usable came out (every video failed), or with --strict on any failure.
    if stats["failures"] and (args.strict or (stats["labelled"] == 0 and already_in == 0)):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
