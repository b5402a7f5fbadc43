"""Benchmark: decoding the 16 sampled frames of a clip against decoding every frame with PyAV.

Generates 3 s 1280x720 H.264 clips with PyAV in a temporary folder (nothing is downloaded), in
three encodings, or uses ``--video``:

- ``x264 default``: libx264's defaults; for this synthetic texture that is one keyframe and only
  P-frames, the hardest case for sampling (every frame up to the last sampled one must be decoded);
- ``gop 30``: a keyframe every second (typical of cameras and streaming);
- ``3 B-frames``: one keyframe, a fixed P B B B pattern (like the real test clips).

Candidates, each returning uint8 RGB frames, timed interleaved (median of ``--repeats`` rounds
after ``--warmup`` rounds):

- ``all frames, PyAV loop`` (the reference of issue 6): ``container.decode`` every frame with
  PyAV's default settings and convert each to RGB;
- ``all frames, PyAV loop, threaded``: the same with ``thread_type="AUTO"``;
- ``all frames, transformers load_video``: ``transformers.video_utils.load_video(backend="pyav")``
  asked for every frame;
- ``sampled 16 (uniform)`` / ``sampled 16 (stride)``: this package's ``read_video`` (only sampled
  frames converted to RGB, non-reference frames that are not sampled not decoded, keyframes sought
  to when that skips frames; PyAV's default slice threading).

The speed-up is the reference's time over the candidate's; the target is >= 2x for the sampled rows.

Example::

    python -m hub_scripts.bench.bench_decode --repeats 7
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from hub_scripts.bench.common import (
    add_timing_arguments,
    machine_summary,
    make_test_clip,
    markdown_table,
    set_threads,
    time_interleaved,
)
from processing.decoding_mtcae import read_video

REFERENCE = "all frames, PyAV loop"
THREADED_REFERENCE = "all frames, PyAV loop, threaded"
TARGET_SPEEDUP = 2.0
# name -> (gop, bframes) passed to make_test_clip
VARIANTS = {"x264 default": (None, None), "gop 30": (30, None), "3 B-frames": (None, 3)}
COLUMNS = ("clip", "frames", "decoder", "ms", "speed-up vs PyAV loop", "vs threaded loop", "target met")


def decode_every_frame(path: str, threaded: bool = False) -> np.ndarray:
    """Every frame of ``path`` as uint8 RGB (T, H, W, 3), with a plain PyAV decode loop."""
    import av

    with av.open(path) as container:
        stream = container.streams.video[0]
        if threaded:
            stream.thread_type = "AUTO"
        return np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(stream)])


def load_every_frame_transformers(path: str) -> Any:
    """Every frame through ``transformers.video_utils.load_video`` with the PyAV backend."""
    from transformers.video_utils import load_video

    def every_index(metadata, **_) -> np.ndarray:
        return np.arange(metadata.total_num_frames)

    return load_video(path, backend="pyav", sample_indices_fn=every_index)


def make_candidates(path: str, num_frames: int) -> dict[str, Callable[[], Any]]:
    """name -> one decode of ``path``."""
    return {
        REFERENCE: lambda: decode_every_frame(path),
        THREADED_REFERENCE: lambda: decode_every_frame(path, threaded=True),
        "all frames, transformers load_video": lambda: load_every_frame_transformers(path),
        f"sampled {num_frames} (uniform)": lambda: read_video(path, num_frames=num_frames, mode="uniform"),
        f"sampled {num_frames} (stride)": lambda: read_video(path, num_frames=num_frames, mode="stride"),
    }


def frame_types(path: str) -> str:
    """A short description of the stream: frame count and I/P/B counts."""
    import av

    names = {int(kind): kind.name for kind in getattr(av.video.frame, "PictureType", [])}
    counts: dict[str, int] = {}
    with av.open(path) as container:
        for frame in container.decode(video=0):
            kind = getattr(frame.pict_type, "name", None) or names.get(int(frame.pict_type), str(frame.pict_type))
            counts[kind] = counts.get(kind, 0) + 1
    order = {"I": 0, "P": 1, "B": 2}
    return " ".join(f"{counts[kind]} {kind}" for kind in sorted(counts, key=lambda kind: (order.get(kind, 9), kind)))


def benchmark_clip(label: str, path: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    """Rows for one clip: all candidates timed interleaved."""
    candidates = make_candidates(path, args.num_frames)
    timings = time_interleaved(candidates, args.repeats, args.warmup, clock=args.clock)
    reference = timings[REFERENCE].median
    threaded = timings[THREADED_REFERENCE].median
    description = frame_types(path)
    rows = []
    for name, timing in timings.items():
        sampled = name.startswith("sampled")
        speedup = reference / timing.median
        rows.append(
            {
                "clip": label,
                "frames": description,
                "decoder": name,
                "ms": timing.median * 1e3,
                "speed-up vs PyAV loop": speedup,
                "vs threaded loop": threaded / timing.median,
                "target met": (speedup >= TARGET_SPEEDUP) if sampled else None,
            }
        )
    return rows


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--video", type=Path, default=None, help="benchmark this file instead of generated clips")
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--num-frames", type=int, default=16)
    add_timing_arguments(parser, repeats=7, warmup=1)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    """Run the benchmark, print the table, and return its rows."""
    args = parse_args(argv)
    set_threads(args.threads)
    print(f"machine: {machine_summary()}")
    print(f"median of {args.repeats} interleaved rounds after {args.warmup} warm-up rounds ({args.clock} clock)")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        if args.video is not None:
            clips = {args.video.name: args.video}
        else:
            clips = {}
            for variant in args.variants:
                gop, bframes = VARIANTS[variant]
                path = Path(tmp) / f"{variant.replace(' ', '_')}.mp4"
                label = f"{args.width}x{args.height} {args.seconds:g} s, {variant}"
                clips[label] = make_test_clip(path, args.seconds, args.width, args.height, gop=gop, bframes=bframes)
        for label, path in clips.items():
            rows.extend(benchmark_clip(label, str(path), args))
    print()
    print(markdown_table(rows, COLUMNS))
    print(f"\ntarget: sampled decoding >= {TARGET_SPEEDUP}x faster than the PyAV loop over every frame")
    return rows


if __name__ == "__main__":
    main()
