"""Benchmark: face-label throughput (frames/s) of each installed detector backend.

Frames are the 16 sampled frames of a real clip (``--video``; default ``../shared/clips/single_face.mp4``
or ``$MTCAE_CLIPS_DIR/single_face.mp4``), labelled as ``annotate_video`` does (each backend's default
resize to 224). Median of ``--repeats`` runs after ``--warmup`` runs; decoding is not timed.

Example::

    python -m hub_scripts.bench.bench_face_labels --repeats 5
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

DEFAULT_CLIP = Path(__file__).resolve().parents[3] / "shared" / "clips" / "single_face.mp4"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    clips_dir = os.environ.get("MTCAE_CLIPS_DIR")
    parser.add_argument("--video", type=Path, default=Path(clips_dir) / "single_face.mp4" if clips_dir else DEFAULT_CLIP)
    parser.add_argument("--detectors", nargs="+", default=None, help="default: every installed backend")
    parser.add_argument("--label-size", type=int, default=224, help="0: source resolution")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    args = parser.parse_args(argv)

    from hub_scripts.bench.bench_decode import time_it
    from processing.face_labels import available_detectors, get_detector, label_frames
    from processing.video_processing_mtcae import read_video

    frames, _, info = read_video(args.video)
    print(f"{args.video.name}: 16 frames of {info['width']}x{info['height']}, label size {args.label_size or 'source'}")
    for name in args.detectors or available_detectors():
        detector = get_detector(name)
        result = label_frames(frames, detector, args.label_size or None)
        seconds = time_it(lambda: label_frames(frames, detector, args.label_size or None), args.repeats, args.warmup)
        print(
            f"  {name:8s} {len(frames) / seconds:7.1f} frames/s  {seconds / len(frames) * 1000:6.1f} ms/frame  "
            f"faces on {int(result[2].sum())}/{len(frames)} frames"
        )


if __name__ == "__main__":
    main()
