"""Benchmark: face-labelling throughput (frames/s) of each installed detector backend.

The frames are the 16 sampled frames of real clips (``--videos``; default ``single_face.mp4`` and
``no_face.mp4`` from ``tests/data/clips`` (or ``$MTCAE_CLIPS_DIR``); a generated clip when none is
found), labelled as ``annotate_video`` does it: ``label_frames`` with each backend's default
resize to ``--label-size`` (224, the authors' protocol; 0 = source resolution). Decoding is not
timed. The reference is MTCNN (``mtcnn``, the paper's detector family): the ratio column is
MTCNN's time over the backend's. Median of ``--repeats`` interleaved rounds after ``--warmup``.

Example::

    python -m hub_scripts.bench.bench_face_labels --repeats 5
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path
from typing import Any

from hub_scripts.bench.common import (
    add_timing_arguments,
    machine_summary,
    make_test_clip,
    markdown_table,
    set_threads,
    time_interleaved,
)
from processing.decoding_mtcae import read_video
from processing.face_detectors import available_detectors, get_detector, label_frames

REFERENCE = "mtcnn"
COLUMNS = ("clip", "detector", "label size", "ms / frame", "frames/s", "speed vs mtcnn", "faces found")


def default_videos() -> list[Path]:
    """The real test clips shipped in tests/data/clips (or $MTCAE_CLIPS_DIR)."""
    clips_dir = os.environ.get("MTCAE_CLIPS_DIR")
    folder = Path(clips_dir) if clips_dir else Path(__file__).resolve().parents[2] / "tests" / "data" / "clips"
    return [path for path in (folder / "single_face.mp4", folder / "no_face.mp4") if path.exists()]


def benchmark_clip(
    label: str, frames: Any, detectors: list[str], label_size: int | None, repeats: int, warmup: int, clock: str
) -> list[dict[str, Any]]:
    """Rows for one clip: every detector labelling the same frames, timed interleaved."""
    instances = {name: get_detector(name) for name in detectors}
    found = {name: int(label_frames(frames, detector, label_size)[2].sum()) for name, detector in instances.items()}
    calls = {
        name: (lambda detector=detector: label_frames(frames, detector, label_size))
        for name, detector in instances.items()
    }
    timings = time_interleaved(calls, repeats, warmup, clock=clock)
    reference = timings[REFERENCE].median if REFERENCE in timings else float("nan")
    num_frames = len(frames)
    return [
        {
            "clip": label,
            "detector": name,
            "label size": label_size or "source",
            "ms / frame": timing.median / num_frames * 1e3,
            "frames/s": num_frames / timing.median,
            "speed vs mtcnn": reference / timing.median,
            "faces found": f"{found[name]}/{num_frames}",
        }
        for name, timing in timings.items()
    ]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--videos", type=Path, nargs="+", default=None, help="clips to label (default: the real test clips)"
    )
    parser.add_argument("--detectors", nargs="+", default=None, help="default: every installed backend")
    parser.add_argument("--label-size", type=int, default=224, help="0: source resolution")
    add_timing_arguments(parser, repeats=5, warmup=1)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    """Run the benchmark, print the table, and return its rows."""
    args = parse_args(argv)
    set_threads(args.threads)
    detectors = args.detectors or available_detectors()
    if not detectors:
        raise SystemExit("No face detector backend is installed: pip install 'mtcae-dfer[label]'")
    print(f"machine: {machine_summary()}")
    print(f"detectors: {', '.join(detectors)}; median of {args.repeats} interleaved rounds after {args.warmup} warm-up")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        videos = args.videos or default_videos() or [make_test_clip(Path(tmp) / "generated.mp4", 1.0, 640, 360)]
        for video in videos:
            frames, _, info = read_video(video)
            label = f"{Path(video).name} ({info['width']}x{info['height']})"
            rows.extend(
                benchmark_clip(label, frames, detectors, args.label_size or None, args.repeats, args.warmup, args.clock)
            )
    print()
    print(markdown_table(rows, COLUMNS))
    return rows


if __name__ == "__main__":
    main()
