"""Benchmark: MTCAEVideoProcessor against transformers' VideoMAE processors on the same frames.

All of them get the same decoded uint8 frames (16 x H x W x 3, from a generated 1280x720 clip unless
``--video`` is given) and produce the same output: float32 (1, 16, 3, 224, 224), full-frame
bilinear resize to 224x224 (no crop), mean (0.485, 0.456, 0.406), std 0.225. Decoding is not timed.
Median of ``--repeats`` runs after ``--warmup`` runs; the ratio is the others' time over ours.

Example::

    python -m hub_scripts.bench.bench_processor --repeats 15
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--video", type=Path, default=None, help="decode the frames from this file")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--skip-pil", action="store_true", help="leave out the (slow) PIL image processor")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    args = parser.parse_args(argv)

    import torch
    from transformers import VideoMAEImageProcessor, VideoMAEVideoProcessor

    try:  # transformers 5 also keeps the PIL (NumPy, per frame) implementation
        from transformers import VideoMAEImageProcessorPil
    except ImportError:
        VideoMAEImageProcessorPil = None

    from hub_scripts.bench.bench_decode import make_test_clip, time_it
    from processing.video_processing_mtcae import MTCAEVideoProcessor, read_video

    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        video_path = args.video or make_test_clip(Path(tmp) / "clip.mp4", 3.0, args.width, args.height)
        frames, _, info = read_video(video_path)
    video = frames.numpy()  # (16, H, W, 3) uint8, the same input for everyone

    same_output = dict(
        size={"height": 224, "width": 224}, do_center_crop=False, image_mean=[0.485, 0.456, 0.406], image_std=[0.225] * 3
    )
    ours = MTCAEVideoProcessor()
    image_processor = VideoMAEImageProcessor(**same_output)
    video_processor = VideoMAEVideoProcessor(**same_output)
    candidates = {
        "MTCAEVideoProcessor": lambda: ours(video, return_tensors="pt")["pixel_values"],
        "VideoMAEVideoProcessor": lambda: video_processor(video, return_tensors="pt")["pixel_values"],
        "VideoMAEImageProcessor": lambda: image_processor(list(video), return_tensors="pt")["pixel_values"],
    }
    if VideoMAEImageProcessorPil is not None and not args.skip_pil:
        pil_processor = VideoMAEImageProcessorPil(**same_output)
        candidates["VideoMAEImageProcessorPil"] = lambda: pil_processor(list(video), return_tensors="pt")["pixel_values"]
    reference = candidates["MTCAEVideoProcessor"]()
    print(
        f"input: 16 frames of {info['width']}x{info['height']} uint8; output {tuple(reference.shape)} {reference.dtype}; "
        f"torch threads {torch.get_num_threads()}; median of {args.repeats} after {args.warmup} warm-up runs"
    )
    ours_seconds = None
    for name, fn in candidates.items():
        out = fn()
        assert out.shape == reference.shape and out.dtype == reference.dtype, (name, out.shape, out.dtype)
        difference = (out.float() - reference).abs().max().item()
        seconds = time_it(fn, args.repeats, args.warmup)
        ours_seconds = ours_seconds or seconds
        print(
            f"  {name:24s} {seconds * 1000:8.1f} ms  {16 / seconds:8.0f} frames/s  "
            f"ours is {seconds / ours_seconds:5.2f}x faster  (max |diff| vs ours {difference:.2e})"
        )


if __name__ == "__main__":
    main()
