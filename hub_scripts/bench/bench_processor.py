"""Benchmark: MTCAEVideoProcessor against transformers' VideoMAE processors on the same frames.

Every processor gets the same decoded uint8 clip (16 x H x W x 3, decoded once from a generated
H.264 clip, or from ``--video``) and does the same work: full-frame antialiased bilinear resize to
224 x 224 (no crop), rescale by 1/255 and normalise with mean (0.485, 0.456, 0.406) and std 0.225,
float32 output of shape (clips, 16, 3, 224, 224). The script checks the output shapes and dtypes
match and prints the largest difference from ours. Decoding is not timed.

Candidates (the reference's time over ours is the speed-up; targets from issue 6):

- ``VideoMAEImageProcessor``: transformers 5's default image processor (torchvision backend,
  frames stacked and resized as one batch). Target: ours >= 2x.
- ``VideoMAEVideoProcessor``: transformers' video processor. Target: ours >= 1.3x.
- ``VideoMAEImageProcessorPil``: the PIL/NumPy backend (what ``VideoMAEImageProcessor`` was in
  transformers 4), when installed; no target.

Median of ``--repeats`` interleaved rounds after ``--warmup`` rounds.

Example::

    python -m hub_scripts.bench.bench_processor --sizes 1280x720 640x360 --repeats 15
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from hub_scripts.bench.common import machine_summary, make_test_clip, markdown_table, set_threads, time_interleaved
from processing.decoding_mtcae import read_video
from processing.video_processing_mtcae import MTCAEVideoProcessor

OURS = "MTCAEVideoProcessor"
TARGETS = {"VideoMAEImageProcessor": 2.0, "VideoMAEVideoProcessor": 1.3}
COLUMNS = ("input", "processor", "ms / call", "clips/s", "ours faster by", "target", "target met", "max |diff| vs ours")
SAME_OUTPUT = dict(
    size={"height": 224, "width": 224},
    do_center_crop=False,
    image_mean=[0.485, 0.456, 0.406],
    image_std=[0.225, 0.225, 0.225],
)


def parse_size(text: str) -> tuple[int, int]:
    """``"1280x720"`` -> ``(1280, 720)`` (width, height)."""
    width, height = text.lower().split("x")
    return int(width), int(height)


def decode_clip(video: Path | None, width: int, height: int) -> np.ndarray:
    """The 16 sampled frames (uint8, (16, H, W, 3)) of ``video``, or of a generated clip of that size."""
    with tempfile.TemporaryDirectory() as tmp:
        path = video or make_test_clip(Path(tmp) / "clip.mp4", 1.0, width, height)
        frames, _, _ = read_video(path)
    return frames.numpy()


def make_candidates(clips: list[np.ndarray], include_pil: bool) -> dict[str, Callable[[], Any]]:
    """name -> a call that processes ``clips`` (a batch of uint8 videos) into pixel_values."""
    from transformers import VideoMAEImageProcessor, VideoMAEVideoProcessor

    ours = MTCAEVideoProcessor()
    video_processor = VideoMAEVideoProcessor(**SAME_OUTPUT)
    image_processor = VideoMAEImageProcessor(**SAME_OUTPUT)
    frame_lists = [list(clip) for clip in clips]
    candidates = {
        OURS: lambda: ours(clips, return_tensors="pt")["pixel_values"],
        "VideoMAEImageProcessor": lambda: image_processor(frame_lists, return_tensors="pt")["pixel_values"],
        "VideoMAEVideoProcessor": lambda: video_processor(clips, return_tensors="pt")["pixel_values"],
    }
    if include_pil:
        try:  # transformers 5 keeps the PIL/NumPy implementation under its own name
            from transformers import VideoMAEImageProcessorPil
        except ImportError:
            return candidates
        pil_processor = VideoMAEImageProcessorPil(**SAME_OUTPUT)
        candidates["VideoMAEImageProcessorPil"] = lambda: pil_processor(frame_lists, return_tensors="pt")[
            "pixel_values"
        ]
    return candidates


def check_same_output(candidates: dict[str, Callable[[], Any]]) -> dict[str, float]:
    """Run each candidate once; assert shape/dtype equal ours; return max |difference| from ours."""
    import torch

    reference = candidates[OURS]()
    differences = {}
    for name, call in candidates.items():
        out = call()
        out = torch.stack(list(out)) if isinstance(out, (list, tuple)) else out
        if tuple(out.shape) != tuple(reference.shape) or out.dtype != reference.dtype:
            raise AssertionError(
                f"{name} returns {tuple(out.shape)} {out.dtype}, ours {tuple(reference.shape)} {reference.dtype}"
            )
        differences[name] = (out.float() - reference).abs().max().item()
    return differences


def benchmark_input(
    label: str, clip: np.ndarray, clips_per_call: int, repeats: int, warmup: int, include_pil: bool
) -> list[dict[str, Any]]:
    """Rows for one input size: every candidate timed interleaved on the same frames."""
    clips = [clip] * clips_per_call
    candidates = make_candidates(clips, include_pil)
    differences = check_same_output(candidates)
    timings = time_interleaved(candidates, repeats, warmup)
    ours_seconds = timings[OURS].median
    rows = []
    for name, timing in timings.items():
        speedup = timing.median / ours_seconds
        target = TARGETS.get(name)
        rows.append(
            {
                "input": label,
                "processor": name,
                "ms / call": timing.median * 1e3,
                "clips/s": clips_per_call / timing.median,
                "ours faster by": speedup,
                "target": f">= {target}x" if target else "",
                "target met": (speedup >= target) if target else None,
                "max |diff| vs ours": f"{differences[name]:.1e}",
            }
        )
    return rows


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--video", type=Path, default=None, help="decode the frames from this file instead")
    parser.add_argument("--sizes", nargs="+", default=["1280x720", "640x360"], help="generated clip sizes, WxH")
    parser.add_argument("--clips-per-call", type=int, default=1, help="clips passed to each processor call")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--skip-pil", action="store_true", help="leave out the (slow) PIL image processor")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    """Run the benchmark, print the table, and return its rows."""
    args = parse_args(argv)
    set_threads(args.threads)
    print(f"machine: {machine_summary()}")
    print(
        f"output ({args.clips_per_call}, 16, 3, 224, 224) float32; median of {args.repeats} interleaved rounds "
        f"after {args.warmup} warm-up rounds"
    )
    inputs = {}
    if args.video is not None:
        clip = decode_clip(args.video, 0, 0)
        inputs[f"{args.video.name} ({clip.shape[2]}x{clip.shape[1]})"] = clip
    else:
        for size in args.sizes:
            width, height = parse_size(size)
            inputs[f"16 x {width}x{height}"] = decode_clip(None, width, height)
    rows = []
    for label, clip in inputs.items():
        rows.extend(benchmark_input(label, clip, args.clips_per_call, args.repeats, args.warmup, not args.skip_pil))
    print()
    print(markdown_table(rows, COLUMNS))
    return rows


if __name__ == "__main__":
    main()
