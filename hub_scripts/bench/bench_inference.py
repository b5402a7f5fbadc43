"""Benchmark: ``mtcae-predict``'s inference paths against transformers' video-classification pipeline.

A textured H.264 clip (default 60 s, 640x360, 25 fps) is cut into windows of 16 frames every second (1-s windows,
1-s stride). MTCAE-DFER (``--preset``, random weights) runs :func:`hub_scripts.inference.windows.predict_video` on it
in each ``--paths`` entry (fp32 eager, bf16 autocast, dynamic int8, compiled: :mod:`hub_scripts.inference.engines`;
onnxruntime on the model's ONNX export, :mod:`hub_scripts.inference.export`);
the reference is ``pipeline("video-classification")`` with ``VideoMAEForVideoClassification`` on the same encoder
(random weights), called once per window on that window's 16 frames, decoded with PyAV as a pipeline user would.
Every candidate runs in the same rounds (interleaved). One row per framing (``full_frame``; ``face_align`` with
MTCNN finding the faces) and path: seconds, windows/s, real-time factor (video seconds per second of work), the
paired time ratio against the pipeline (> 1: faster), and the agreement with fp32 eager on the same windows (top-1,
largest probability difference). Our path also scores the whole clip (one window more than the pipeline's).

Example::

    python -m hub_scripts.bench.bench_inference --preset base --seconds 60 --repeats 1 --warmup 0
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hub_scripts.bench.bench_model import build_pair
from hub_scripts.bench.common import (
    add_timing_arguments,
    machine_summary,
    make_test_clip,
    markdown_table,
    paired_ratio,
    set_threads,
    time_interleaved,
)
from hub_scripts.inference.engines import EngineOptions, InferenceEngine, agreement
from hub_scripts.inference.export import OnnxEngine, export_onnx
from hub_scripts.inference.windows import predict_video
from processing.decoding_mtcae import read_video
from processing.sampling_mtcae import window_frame_indices
from processing.video_processing_mtcae import MTCAEVideoProcessor

PATHS = {"fp32": EngineOptions(dtype="fp32"), "bf16": EngineOptions(dtype="bf16"),
         "int8": EngineOptions(quantize="dynamic"), "compiled": EngineOptions(dtype="fp32", compile=True),
         "onnxruntime": EngineOptions(backend="onnxruntime")}
FRAMINGS = ("full_frame", "face_align")
COLUMNS = ("framing", "path", "seconds", "windows/s", "real-time factor", "x pipeline", "top-1 agreement",
           "max prob diff")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="base", help="MTCAEConfig preset (random weights)")
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the test clip")
    parser.add_argument("--size", type=int, nargs=2, default=(640, 360), metavar=("WIDTH", "HEIGHT"))
    parser.add_argument("--paths", nargs="+", default=list(PATHS), choices=list(PATHS))
    parser.add_argument("--framings", nargs="+", default=list(FRAMINGS), choices=list(FRAMINGS))
    parser.add_argument("--batch_size", type=int, default=4, help="windows per forward pass on our path")
    parser.add_argument("--device", default="cpu", help="where both models run (int8 stays on the CPU)")
    add_timing_arguments(parser, repeats=1, warmup=0, clock=False)
    return parser.parse_args(argv)


def _pipeline_windows(path: Path, reference, spans: list[tuple[int, int]], num_frames: int, device: str):
    """The reference: the video-classification pipeline on each window's frames (decoded per window)."""
    from transformers import pipeline
    from transformers.models.videomae.video_processing_videomae import VideoMAEVideoProcessor

    size = reference.config.image_size
    video_processor = VideoMAEVideoProcessor(size={"shortest_edge": size}, crop_size={"height": size, "width": size})
    classify = pipeline("video-classification", model=reference, video_processor=video_processor, device=device)
    indices = window_frame_indices(spans, num_frames)

    def run() -> list:
        return [classify(read_video(path, indices=window)[0].numpy(), num_frames=num_frames) for window in indices]

    return run


def _probabilities(result: dict) -> np.ndarray:
    return np.array([[w["probabilities"][label] for label in result["labels"]]
                     for w in [result["clip"], *result["windows"]]])


def _engine(name: str, model, processor, device: str, folder: Path):
    """The engine of one path; ``onnxruntime`` exports the model first (checked against PyTorch by the export)."""
    if name == "onnxruntime":
        export_onnx(model, processor, folder / "onnx")
        return OnnxEngine(folder / "onnx")
    return InferenceEngine(model, PATHS[name], "cpu" if name == "int8" else device)


def bench_framing(framing: str, clip: Path, args: argparse.Namespace, seconds: float) -> list[dict[str, Any]]:
    """One row per path for one framing, the pipeline first."""
    pair = build_pair(args.preset, batch_size=1, num_labels=7, freeze_encoder=False)
    model = pair.ours.eval()
    height, width = model.config.image_size
    processor = MTCAEVideoProcessor(num_frames=model.config.num_frames, size={"height": height, "width": width},
                                    resize_mode=framing, face_detector="mtcnn" if framing == "face_align" else None)
    engines = {name: _engine(name, model, processor, args.device, Path(clip).parent) for name in args.paths}
    results: dict[str, dict] = {}

    def ours(name: str):
        def run():
            results[name] = predict_video(clip, engines[name], processor, 1.0, 1.0, args.batch_size)
        return run

    first = predict_video(clip, engines[args.paths[0]], processor, 1.0, 1.0, args.batch_size)
    spans = [(w["start_frame"], w["end_frame"]) for w in first["windows"]]
    candidates = {"pipeline": _pipeline_windows(clip, pair.reference.eval(), spans, model.config.num_frames,
                                                args.device)}
    candidates.update({name: ours(name) for name in args.paths})
    timings = time_interleaved(candidates, args.repeats, args.warmup)
    reference = _probabilities(results["fp32"]) if "fp32" in results else None
    rows = []
    for name, timing in timings.items():
        windows = len(spans) + (name != "pipeline")
        row = {"framing": framing, "path": name, "seconds": timing.median, "windows/s": windows / timing.median,
               "real-time factor": seconds / timing.median,
               "x pipeline": 1.0 / paired_ratio(timing, timings["pipeline"])}
        if name != "pipeline" and reference is not None:
            same = agreement(reference, _probabilities(results[name]))
            row.update({"top-1 agreement": same["top1_agreement"], "max prob diff": same["max_probability_difference"]})
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    """Run the benchmark, print the table, and return its rows."""
    args = parse_args(argv)
    set_threads(args.threads)
    torch.manual_seed(0)
    print(f"machine: {machine_summary()}")
    print(f"{args.preset} preset, {args.seconds:g}-s {args.size[0]}x{args.size[1]} clip, 1-s windows every 1 s; "
          f"median of {args.repeats} interleaved runs after {args.warmup} warm-up runs")
    with tempfile.TemporaryDirectory() as folder:
        clip = make_test_clip(Path(folder) / "clip.mp4", seconds=args.seconds, width=args.size[0],
                              height=args.size[1], fps=25)
        rows = [row for framing in args.framings for row in bench_framing(framing, clip, args, args.seconds)]
    print()
    print(markdown_table(rows, COLUMNS, digits=3))
    return rows


if __name__ == "__main__":
    main()
