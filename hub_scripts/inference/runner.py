"""Running ``mtcae-predict``: its options, the checks made before any work, and the loop over the videos."""

from __future__ import annotations

import math
import os
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import torch

from hub_scripts.inference.engines import EngineOptions, InferenceEngine
from hub_scripts.inference.export import load_onnx
from hub_scripts.inference.multiview import MultiViewArguments
from hub_scripts.inference.overlay import OVERLAY_CODECS, write_overlay
from hub_scripts.inference.timeline import write_timeline
from hub_scripts.inference.windows import (
    DEFAULT_STRIDE_SECONDS,
    DEFAULT_WINDOW_SECONDS,
    PredictError,
    load_model,
    predict_video,
    probe,
)
from processing.decoding_mtcae import VideoDecodeError
from processing.files import check_writable_folder


def _format_probabilities(probabilities: dict[str, float], top_k: int) -> str:
    ranked = sorted(probabilities.items(), key=lambda kv: -kv[1])[:top_k]
    return ", ".join(f"{label} {p:.3f}" for label, p in ranked)


@dataclass
class PredictArguments:
    """Arguments of ``mtcae-predict`` (flags are the field names; the videos may also come first, unnamed)."""

    video: list[str] = field(metadata={
        "help": "video file(s) (mp4, mov, avi, flv, mkv, webm, ...), also given first without --video; "
                "a bad one is reported at the end"})
    model: str = field(metadata={"help": "trained model folder or Hub repo id"})
    window: float = field(default=DEFAULT_WINDOW_SECONDS,
                          metadata={"help": "window length in seconds (0: one window, the whole clip)"})
    stride: float = field(default=DEFAULT_STRIDE_SECONDS, metadata={"help": "window step in seconds"})
    output_dir: str = field(default=".", metadata={"help": "where the timeline files go"})
    name: str | None = field(default=None,
                             metadata={"help": "file name stem of the outputs (default: the video's; one video)"})
    overlay: str | None = field(default=None, metadata={
        "help": f"write the annotated video here ({', '.join(sorted(OVERLAY_CODECS))}; one video)", "metavar": "OUT"})
    overlay_max_side: int | None = field(default=None, metadata={"help": "downscale the overlay to this size"})
    batch_size: int = field(default=4, metadata={"help": "windows per forward pass"})
    top_k: int = field(default=3, metadata={"help": "labels printed per window"})
    device: str = field(default="cuda" if torch.cuda.is_available() else "cpu", metadata={"help": "torch device"})
    revision: str | None = field(default=None, metadata={"help": "model revision (branch, tag or commit)"})
    quiet: bool = field(default=False, metadata={"help": "print only the output paths"})

    def __post_init__(self):
        if not math.isfinite(self.window) or self.window < 0:
            raise ValueError(f"--window must be a finite number of seconds >= 0, got {self.window}")
        if not math.isfinite(self.stride) or self.stride <= 0:
            raise ValueError(f"--stride must be a finite number of seconds > 0, got {self.stride}")
        for flag, value, low in (("--batch_size", self.batch_size, 1), ("--top_k", self.top_k, 1),
                                 ("--overlay_max_side", self.overlay_max_side, 2)):
            if value is not None and value < low:
                raise ValueError(f"{flag} must be >= {low}, got {value}")
        if len(self.video) > 1 and (self.overlay or self.name):
            raise ValueError("--overlay and --name take one video; give one video, or leave them out")
        if self.overlay and Path(self.overlay).suffix.lower() not in OVERLAY_CODECS:
            raise ValueError(f"--overlay {self.overlay}: unsupported extension; use one of "
                             f"{', '.join(sorted(OVERLAY_CODECS))}")


def check_arguments(args: PredictArguments) -> None:
    """What needs the machine, checked before any work: the device, and that the outputs can be written.

    Raises:
        PredictError: naming the flag and what is wrong with it.
    """
    try:
        device = torch.device(args.device)
    except (RuntimeError, TypeError) as error:
        raise PredictError(f"--device {args.device!r} is not a device ({error})") from error
    if device.type == "cuda" and not torch.cuda.is_available():
        raise PredictError(f"--device {args.device}: no CUDA GPU is available here; use --device cpu")
    if args.overlay and Path(args.overlay).is_dir():
        raise PredictError(f"--overlay {args.overlay} is a folder; give a file name such as "
                           f"{Path(args.overlay) / 'overlay.mp4'}")
    try:
        check_writable_folder(Path(args.output_dir), "--output_dir")
        if args.overlay:
            check_writable_folder(Path(args.overlay).parent, "--overlay's folder")
    except OSError as error:
        raise PredictError(str(error)) from error


def _views_text(views: dict) -> str:
    """``"1 view"`` or ``"4 views: 2 temporal x 2 spatial (crops)"``."""
    temporal, spatial = views["test_temporal_views"], views["test_spatial_views"]
    if temporal * spatial == 1:
        return "1 view"
    return f"{temporal * spatial} views: {temporal} temporal x {spatial} spatial ({views['test_spatial_mode']})"


def _print_result(result: dict, args: PredictArguments) -> None:
    print(f"{Path(result['video']).name}: {result['num_frames']} frames, {result['fps']:.2f} fps, "
          f"{result['duration']:.2f} s, {result['width']}x{result['height']}")
    engine = result["engine"]
    print(f"model run on {engine['device']} in {engine['dtype']}" + (" with int8 linear layers" if engine["quantize"]
          == "dynamic" else "") + (", compiled" if engine["compile"] else "") + (" through onnxruntime" if
          engine["backend"] == "onnxruntime" else ""))
    if "agreement" in result:
        print("agreement with fp32 eager over {windows} windows: top-1 {top1_agreement:.1%}, largest probability "
              "difference {max_probability_difference:.2e}".format(**result["agreement"]))
    print(f"whole clip ({_views_text(result['views'])}): "
          f"{_format_probabilities(result['clip']['probabilities'], args.top_k)}")
    if len(result["windows"]) > 1:
        print(f"{len(result['windows'])} windows of {args.window:g} s every {args.stride:g} s:")
        for window in result["windows"]:
            print(f"  {window['start_time']:6.2f}-{window['end_time']:6.2f} s  "
                  f"{_format_probabilities(window['probabilities'], args.top_k)}")


def output_names(videos: list[Path]) -> dict[Path, str]:
    """A distinct output name for each video: its stem, or, where stems repeat (``a/clip.mp4`` and ``b/clip.mp4``,
    ``clip.mp4`` and ``clip.mov``), its path below the videos' common folder (``a__clip``, ``clip.mov``).

    Raises:
        PredictError: two videos still share a name (``a__b/clip.mp4`` and ``a/b__clip.mp4``): refused before any
            work rather than one result overwriting the other.
    """
    resolved = [video.resolve() for video in videos]
    common = Path(os.path.commonpath([str(path.parent) for path in resolved])) if resolved else Path()
    stems = Counter(video.stem for video in videos)

    def relative(path: Path, keep_suffix: bool) -> str:
        rel = path.relative_to(common)
        return "__".join((rel if keep_suffix else rel.with_suffix("")).parts)

    names = {video: video.stem if stems[video.stem] == 1 else relative(path, False)
             for video, path in zip(videos, resolved)}
    repeated = Counter(names.values())
    names = {video: relative(path, True) if repeated[names[video]] > 1 else names[video]
             for video, path in zip(videos, resolved)}
    clashes = sorted(str(video) for video in videos if Counter(names.values())[names[video]] > 1)
    if clashes:
        raise PredictError(f"videos {', '.join(clashes)} would write results under one name; predict them in "
                           "separate runs with --output_dir set apart")
    return names


def _predict_one(video: Path, name: str, engine: InferenceEngine, processor, args: PredictArguments,
                 views: MultiViewArguments, report_agreement: bool) -> None:
    result = predict_video(video, engine, processor, args.window, args.stride, args.batch_size, views,
                           report_agreement)
    result["model"] = args.model
    paths = write_timeline(result, args.output_dir, args.name or name)
    overlay_frames = write_overlay(result, args.overlay, args.overlay_max_side) if args.overlay else None
    if not args.quiet:
        _print_result(result, args)
    for kind, path in paths.items():
        print(f"timeline {kind}: {path}")
    if args.overlay:
        print(f"overlay: {args.overlay} ({overlay_frames} frames)")


def _load_engine(args: PredictArguments, options: EngineOptions):
    """``(engine, processor)``: the model run as ``options`` say, or the ONNX export with onnxruntime."""
    if options.backend == "onnxruntime":
        try:
            return load_onnx(args.model)
        except Exception as error:  # no export there, onnxruntime missing, a damaged file
            raise PredictError(f"cannot load the ONNX export {args.model!r}: {type(error).__name__}: "
                               f"{str(error).splitlines()[0] if str(error) else ''}") from error
    model, processor = load_model(args.model, args.device, args.revision)
    try:
        return InferenceEngine(model, options), processor
    except ValueError as error:  # an option this device cannot run
        raise PredictError(str(error)) from error


def predict_files(args: PredictArguments, views: MultiViewArguments, options: EngineOptions | None = None) -> int:
    """Predict every video of ``args``, the model run as ``options`` say (:mod:`hub_scripts.inference.engines`);
    returns 0 when every video was predicted, 2 otherwise (each problem printed as one line; a bad video does not
    stop the others)."""
    options = options or EngineOptions()
    failed: dict[str, str] = {}
    try:
        check_arguments(args)
        given = {video.resolve(): video for video in map(Path, reversed(args.video))}  # a file given twice: once
        names = output_names(list(reversed(given.values())))  # distinct inputs never overwrite each other's results
        videos = []
        for video in names:
            try:
                probe(str(video))  # a bad file fails here, before the model is loaded
                videos.append(video)
            except VideoDecodeError as error:
                failed[str(video)] = str(error)
        if videos:
            model, processor = _load_engine(args, options)
        for video in videos:
            try:
                _predict_one(video, names[video], model, processor, args, views, options.report_agreement)
            except (VideoDecodeError, PredictError, OSError) as error:  # the next video may still work
                failed[str(video)] = str(error)
    except PredictError as error:
        print(f"mtcae-predict: error: {error}", file=sys.stderr)
        return 2
    for reason in failed.values():
        print(f"mtcae-predict: error: {reason}", file=sys.stderr)
    if failed and len(args.video) > 1:
        print(f"mtcae-predict: {len(failed)} of {len(args.video)} videos failed", file=sys.stderr)
    return 2 if failed else 0


__all__ = ["PredictArguments", "check_arguments", "output_names", "predict_files"]
