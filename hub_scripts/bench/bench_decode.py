"""Benchmark: decoding the 16 sampled frames of a clip against decoding every frame.

Generates a 3 s 1280x720 H.264 clip with PyAV in a temporary folder (nothing is downloaded) and
times, median of ``--repeats`` runs after ``--warmup`` runs:

- ``all frames``: decode every frame and convert each to RGB (what a decode-then-sample loader does);
- ``all frames, transformers``: ``transformers.video_utils.load_video(backend="pyav")`` asked for
  every frame;
- ``sampled``: ``read_video`` of the video processor (16 uniform frames over the whole clip: only
  those are converted to RGB, keyframes are seeked to, decoding stops after the last one).

Example::

    python -m hub_scripts.bench.bench_decode --repeats 7
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def make_test_clip(
    path: str | Path, seconds: float = 3.0, width: int = 1280, height: int = 720, fps: int = 30, gop: int | None = None
) -> Path:
    """Write a textured, moving H.264 clip (yuv420p) with PyAV; ``gop`` is the keyframe interval."""
    import av

    rng = np.random.default_rng(0)
    texture = rng.integers(0, 60, (height, width + 16 * int(seconds * fps), 3), dtype=np.uint8)
    ys, xs = np.mgrid[0:height, 0:width]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        if gop:
            stream.codec_context.gop_size = gop
        for i in range(int(seconds * fps)):
            frame = np.stack([(xs + 8 * i) % 256, (2 * ys + 4 * i) % 256, np.hypot(xs - width / 2, ys - height / 2) % 256], -1)
            frame = (frame // 2).astype(np.uint8) + texture[:, 3 * i : 3 * i + width]
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return Path(path)


def time_it(fn, repeats: int, warmup: int) -> float:
    """Median seconds of ``repeats`` calls after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def decode_every_frame(path: str) -> np.ndarray:
    import av

    with av.open(path) as container:
        return np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--video", type=Path, default=None, help="benchmark this file instead of a generated clip")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--gop", type=int, nargs="+", default=[0, 30], help="keyframe intervals to generate (0: x264 default, 250)")
    parser.add_argument("--num-frames", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args(argv)

    from transformers.video_utils import load_video

    from processing.video_processing_mtcae import read_video

    with tempfile.TemporaryDirectory() as tmp:
        if args.video is not None:
            clips = {args.video.name: args.video}
        else:
            clips = {}
            for gop in args.gop:
                name = f"{args.width}x{args.height}, {args.seconds:g} s, gop {gop or 'default'}"
                clips[name] = make_test_clip(Path(tmp) / f"clip_gop{gop}.mp4", args.seconds, args.width, args.height, gop=gop or None)
        for name, path in clips.items():
            path = str(path)
            num_source = len(decode_every_frame(path))
            every = time_it(lambda: decode_every_frame(path), args.repeats, args.warmup)
            every_hf = time_it(
                lambda: load_video(path, backend="pyav", sample_indices_fn=lambda metadata, **_: np.arange(metadata.total_num_frames)),
                args.repeats,
                args.warmup,
            )
            results = {"all frames (PyAV loop)": every, "all frames (transformers load_video)": every_hf}
            for mode in ("uniform", "stride"):
                results[f"sampled {args.num_frames} ({mode})"] = time_it(
                    lambda: read_video(path, num_frames=args.num_frames, mode=mode), args.repeats, args.warmup
                )
            print(f"\n{name}: {num_source} frames; median of {args.repeats} after {args.warmup} warm-up runs")
            for label, seconds in results.items():
                print(f"  {label:40s} {seconds * 1000:8.1f} ms   {every / seconds:5.2f}x vs all frames")


if __name__ == "__main__":
    main()
