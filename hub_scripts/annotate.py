"""``mtcae-annotate``: label a dataset folder with face boxes and 5 landmarks per sampled frame.

Writes one Parquet cache (``processing.annotation_cache.AnnotationCache``) keyed by
``(path relative to the root, sampler_key)``, with coordinates normalised to the source frame.
Runs are resumable: videos already in the cache are skipped and the cache is saved every
``--save-every`` videos, so an interrupted run loses little. A file that cannot be decoded is
reported at the end and does not stop the run.

Example::

    mtcae-annotate /data/RAVDESS --output /data/RAVDESS/face_labels.parquet --workers 4
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter
from pathlib import Path

DEFAULT_CACHE_NAME = "face_labels.parquet"

# Per worker process state, set up once by `_init_worker`.
_WORKER: dict = {}


def find_videos(root: Path, extensions: tuple[str, ...] | None = None) -> list[Path]:
    """Video files under ``root`` (recursively, hidden ones left out), sorted so runs visit them in the same order."""
    from processing.datasets import VIDEO_EXTENSIONS, LoadReport, find_video_files

    report = LoadReport(dataset="annotate", root=str(root))
    found = find_video_files(root, report, extensions or VIDEO_EXTENSIONS)
    for warning in report.warnings:
        print(f"note: {warning}")
    return [Path(root, rel) for rel in found]


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
    """(relative path, absolute path, options) -> (relative path, FaceLabels | None, error | None)."""
    relative, absolute, options = task
    from processing.face_labels import annotate_video

    try:
        labels = annotate_video(absolute, detector=_WORKER["detector"], **options)
        return relative, labels, None
    except Exception as error:  # keep going: one bad file must not stop a dataset run
        return relative, None, f"{type(error).__name__}: {error}"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mtcae-annotate",
        description="Label the sampled frames of every video under a folder with a face box and 5 landmarks.",
    )
    parser.add_argument("root", type=Path, help="dataset folder, searched recursively for videos")
    parser.add_argument("--output", "-o", type=Path, default=None, help=f"cache file (default: ROOT/{DEFAULT_CACHE_NAME})")
    parser.add_argument("--detector", default="mtcnn", help="face detector backend: mtcnn (default) or dlib")
    parser.add_argument("--num-frames", type=int, default=16, help="frames sampled per video (default 16)")
    parser.add_argument("--mode", default="uniform", choices=["uniform", "stride"], help="frame sampling mode")
    parser.add_argument(
        "--label-size", type=int, default=224,
        help="detect on frames resized to this size (0 = source resolution; default 224 as the authors)",
    )
    parser.add_argument("--prefer", default="largest", choices=["largest", "score"], help="face kept when several")
    parser.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) - 1), help="worker processes")
    parser.add_argument("--save-every", type=int, default=50, help="save the cache every N labelled videos")
    parser.add_argument("--extensions", nargs="+", default=None, help="video file extensions")
    parser.add_argument("--limit", type=int, default=None, help="label at most N new videos (for a trial run)")
    parser.add_argument("--strict", action="store_true", help="exit with status 1 if any video failed")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from tqdm.auto import tqdm

    from processing.annotation_cache import AnnotationCache, sampler_key

    root = args.root.resolve()
    if not root.is_dir():
        print(f"mtcae-annotate: {root} is not a folder", file=sys.stderr)
        return 2
    output = args.output or root / DEFAULT_CACHE_NAME
    cache = AnnotationCache(output)
    key = sampler_key(args.mode, args.num_frames)
    videos = find_videos(root, tuple(args.extensions) if args.extensions else None)
    todo = [v for v in videos if (v.relative_to(root).as_posix(), key) not in cache]
    if args.limit is not None:
        todo = todo[: args.limit]
    print(
        f"mtcae-annotate: {len(videos)} videos under {root}, {len(videos) - len(todo)} already in {output}, "
        f"{len(todo)} to label with {args.detector} ({key})"
    )
    options = {
        "num_frames": args.num_frames,
        "mode": args.mode,
        "label_size": args.label_size or None,
        "prefer": args.prefer,
    }
    tasks = [(v.relative_to(root).as_posix(), str(v), options) for v in todo]
    failures: dict[str, str] = {}
    labelled = frames_with_face = frames_total = 0
    since_save = 0
    start = time.perf_counter()

    def record(result) -> None:
        nonlocal labelled, frames_with_face, frames_total, since_save
        relative, labels, error = result
        if error is not None:
            failures[relative] = error
            return
        cache.add(relative, key, labels, detector=args.detector)
        labelled += 1
        since_save += 1
        frames_with_face += int(labels.mask.sum())
        frames_total += len(labels.mask)
        if since_save >= args.save_every:
            cache.save()
            since_save = 0

    progress = tqdm(total=len(tasks), unit="video", disable=args.no_progress, desc="annotate")
    try:
        if args.workers <= 1 or len(tasks) <= 1:
            _init_worker(args.detector, {}, single_thread=False)
            for task in tasks:
                record(_label_one(task))
                progress.update()
        else:
            import multiprocessing

            # "spawn": forked copies of OpenCV / torch thread pools can deadlock.
            context = multiprocessing.get_context("spawn")
            with context.Pool(args.workers, initializer=_init_worker, initargs=(args.detector, {}, True)) as pool:
                for result in pool.imap_unordered(_label_one, tasks, chunksize=1):
                    record(result)
                    progress.update()
    except KeyboardInterrupt:
        print("\nmtcae-annotate: interrupted; saving what is done (run again to resume)", file=sys.stderr)
        cache.save()
        return 130
    finally:
        progress.close()
    if tasks:
        cache.save()

    elapsed = time.perf_counter() - start
    print(
        f"mtcae-annotate: labelled {labelled} videos in {elapsed:.1f} s; face found on {frames_with_face} of "
        f"{frames_total} frames; cache {output} holds {len(cache)} rows"
    )
    if failures:
        print(f"mtcae-annotate: {len(failures)} videos failed:", file=sys.stderr)
        reasons = Counter(error.split(":", 1)[0] for error in failures.values())
        for relative, error in sorted(failures.items()):
            print(f"  {relative}: {error}", file=sys.stderr)
        print("  by error type: " + ", ".join(f"{k} x{v}" for k, v in reasons.most_common()), file=sys.stderr)
    # Non-zero when nothing usable came out (every video failed), or with --strict on any failure.
    already_done = len(videos) - len(todo)
    if failures and (args.strict or (labelled == 0 and already_done == 0)):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
