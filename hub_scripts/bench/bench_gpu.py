"""GPU benchmark: the paper preset in bf16 with sdpa, inference and training, MFU against the bf16 peak.

For each batch size (default 16 and 32) and mode it times our model and
``VideoMAEForVideoClassification`` with the identical encoder, interleaved in one process (median of
``--repeats`` runs after ``--warmup`` runs), and reports clips/s or steps/s, the peak memory
(``torch.cuda.max_memory_allocated``), the FLOPs of one step (``torch.utils.flop_counter``, counted
on the eager model; attention included) and the model FLOP utilisation
``MFU = FLOPs per step / seconds per step / peak FLOP/s``.

Modes:

- ``inference``: weights and inputs in ``--dtype`` (bf16 by default), ``eval()``, ``inference_mode``.
- ``train``: one optimizer step: float32 weights, ``torch.autocast(dtype)`` forward with all targets,
  backward, fused AdamW step. The encoder is frozen as the preset says (``paper``: frozen, as in
  the authors' notebook); ``--train-encoder`` trains it in both models.

``--compile MODE ...`` adds rows with ``torch.compile`` for those modes (both models compiled alike;
compilation takes a minute or more per model and batch size). The bf16 dense peak is
taken from the device name (H100 SXM / H200: 989 TFLOP/s, H100 PCIe 756, A100 312) unless
``--peak-tflops`` is given; without a known peak MFU is left empty.

Runs on CPU too, as a smoke test of the script (``--device cpu --preset tiny``); CPU numbers say
nothing about a GPU.

Example::

    python -m hub_scripts.bench.bench_gpu --preset paper --batch-sizes 16 32 --compile inference
    python -m hub_scripts.bench.bench_gpu --device cpu --preset tiny --batch-sizes 2 --repeats 1
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Callable
from typing import Any

import torch

from hub_scripts.bench.bench_model import ModelPair, build_pair, resident_tensors
from hub_scripts.bench.common import (
    count_flops,
    machine_summary,
    markdown_table,
    paired_ratio,
    peak_cpu_tensor_bytes,
    set_threads,
    storage_bytes,
    time_interleaved,
)
from modeling_mtcae import MTCAEConfig

MODES = ("inference", "train")
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
TARGET_MFU = 0.5  # issue 6: paper preset inference at batch 32 on an H100 / H200
# Dense (no sparsity) bf16 tensor-core peaks, TFLOP/s, by a substring of the device name.
BF16_PEAK_TFLOPS = (
    ("H200", 989.0),
    ("H100 PCIe", 756.0),
    ("H100", 989.0),
    ("GH200", 989.0),
    ("A100", 312.0),
    ("L40S", 362.0),
    ("L4", 121.0),
)
COLUMNS = (
    "mode",
    "batch",
    "compiled",
    "ours ms",
    "VideoMAE ms",
    "time ratio",
    "FLOP ratio",
    "ours clips/s",
    "ours steps/s",
    "ours TFLOP/s",
    "ours MFU %",
    "VideoMAE MFU %",
    "ours peak MiB",
    "VideoMAE peak MiB",
)


def peak_tflops_for(device: torch.device, override: float | None) -> float | None:
    """The bf16 dense peak of ``device`` in TFLOP/s: ``override``, else looked up by device name."""
    if override:
        return float(override)
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key, tflops in BF16_PEAK_TFLOPS:
        if key in name:
            return tflops
    return None


def synchronizer(device: torch.device) -> Callable[[], None]:
    """A function that waits for the device's queued work (no-op on CPU)."""
    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    return lambda: None


def inference_step(model: torch.nn.Module, pixel_values: torch.Tensor) -> Callable[[], Any]:
    """One batched inference: logits of the (already cast) model."""
    model.eval()

    def step() -> Any:
        with torch.inference_mode():
            return model(pixel_values=pixel_values).logits

    return step


def train_step(
    model: torch.nn.Module, inputs: dict[str, torch.Tensor], dtype: torch.dtype, device: torch.device
) -> Callable[[], Any]:
    """One optimizer step under autocast: forward with all targets, backward, AdamW."""
    model.train()
    parameters = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=1e-3, weight_decay=1e-3, fused=device.type == "cuda")
    autocast = (
        torch.autocast(device.type, dtype=dtype) if dtype != torch.float32 else contextlib.nullcontext()
    )

    def step() -> Any:
        with autocast:
            loss = model(**inputs).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss

    return step


def peak_memory_mib(step: Callable[[], Any], model: torch.nn.Module, inputs: dict, device: torch.device) -> float:
    """Peak memory (MiB) of one call of ``step``: the model's weights and ``inputs``, plus the peak of
    what the call allocates (activations, gradients; optimizer state made in warm-up not included).

    Both models share the device, so on CUDA the working memory is ``max_memory_allocated`` minus
    what was allocated before the call, and this model's own weights and inputs are added.
    """
    resident = resident_tensors(model, inputs)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        step()
        torch.cuda.synchronize(device)
        working = torch.cuda.max_memory_allocated(device) - before
        return (storage_bytes(resident) + working) / 2**20
    return peak_cpu_tensor_bytes(step, resident) / 2**20


def step_inputs(pair: ModelPair, mode: str, dtype: torch.dtype) -> dict[str, dict[str, torch.Tensor]]:
    """Per model, the tensors its step consumes: inference takes ``dtype`` pixels only."""
    if mode == "inference":
        pixel_values = pair.our_inputs["pixel_values"].to(dtype)
        return {"ours": {"pixel_values": pixel_values}, "VideoMAE": {"pixel_values": pixel_values}}
    return {"ours": pair.our_inputs, "VideoMAE": pair.reference_inputs}


def make_steps(
    pair: ModelPair,
    inputs: dict[str, dict[str, torch.Tensor]],
    mode: str,
    dtype: torch.dtype,
    device: torch.device,
    compile_models: bool,
) -> dict[str, Callable[[], Any]]:
    """The two candidates of one row; casts the models for inference, compiles when asked."""
    models = {"ours": pair.ours, "VideoMAE": pair.reference}
    if mode == "inference":
        for model in models.values():
            model.to(dtype)
    if compile_models:
        models = {name: torch.compile(model) for name, model in models.items()}
    if mode == "inference":
        return {name: inference_step(model, inputs[name]["pixel_values"]) for name, model in models.items()}
    return {name: train_step(model, inputs[name], dtype, device) for name, model in models.items()}


def benchmark_row(
    args: argparse.Namespace, mode: str, batch_size: int, compile_models: bool, peak_tflops: float | None
) -> dict[str, Any]:
    """Build both models, count FLOPs on the eager ones, time both interleaved, measure memory."""
    device = torch.device(args.device)
    dtype = DTYPES[args.dtype]
    freeze_encoder = False if args.train_encoder else _preset_freeze(args.preset)
    pair = build_pair(args.preset, batch_size, args.num_labels, freeze_encoder=freeze_encoder, device=device)
    inputs = step_inputs(pair, mode, dtype)
    eager_steps = make_steps(pair, inputs, mode, dtype, device, compile_models=False)
    flops = {name: count_flops(step) for name, step in eager_steps.items()}
    steps = make_steps(pair, inputs, mode, dtype, device, compile_models) if compile_models else eager_steps
    timings = time_interleaved(steps, args.repeats, args.warmup, synchronize=synchronizer(device))
    memory = {
        "ours": peak_memory_mib(steps["ours"], pair.ours, inputs["ours"], device),
        "VideoMAE": peak_memory_mib(steps["VideoMAE"], pair.reference, inputs["VideoMAE"], device),
    }
    seconds = {name: timing.median for name, timing in timings.items()}
    achieved = {name: flops[name] / seconds[name] for name in seconds}
    mfu = {name: (achieved[name] / (peak_tflops * 1e12) * 100 if peak_tflops else float("nan")) for name in seconds}
    del pair, steps, eager_steps
    if compile_models:
        torch._dynamo.reset()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return {
        "mode": mode,
        "batch": batch_size,
        "compiled": compile_models,
        "ours ms": seconds["ours"] * 1e3,
        "VideoMAE ms": seconds["VideoMAE"] * 1e3,
        "time ratio": paired_ratio(timings["ours"], timings["VideoMAE"]),
        "FLOP ratio": flops["ours"] / flops["VideoMAE"],
        "ours clips/s": batch_size / seconds["ours"],
        "ours steps/s": 1.0 / seconds["ours"] if mode == "train" else None,
        "ours TFLOP/s": achieved["ours"] / 1e12,
        "ours MFU %": mfu["ours"],
        "VideoMAE MFU %": mfu["VideoMAE"],
        "ours peak MiB": memory["ours"],
        "VideoMAE peak MiB": memory["VideoMAE"],
    }


def _preset_freeze(preset: str) -> bool:
    return bool(MTCAEConfig.from_preset(preset).freeze_encoder)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--preset", default="paper", help="MTCAEConfig preset (default: paper)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[16, 32])
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="bf16", help="inference weights / training autocast")
    parser.add_argument(
        "--compile", nargs="*", choices=MODES, default=[], help="also time torch.compile'd models in these modes"
    )
    parser.add_argument("--train-encoder", action="store_true", help="train the encoder too (both models)")
    parser.add_argument(
        "--peak-tflops", "--peak_tflops", type=float, default=None, help="override the bf16 peak, TFLOP/s"
    )
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--num-labels", type=int, default=7)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (CPU runs)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    """Run the benchmark, print the table, and return its rows."""
    args = parse_args(argv)
    set_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        where = f"{torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda})"
    else:
        where = "CPU: a smoke test of this script, not a GPU measurement"
    peak = peak_tflops_for(device, args.peak_tflops)
    print(f"device: {where}; host: {machine_summary()}")
    print(
        f"preset {args.preset}, {args.dtype}, sdpa; median of {args.repeats} interleaved runs after {args.warmup} "
        f"warm-up runs; bf16 peak {peak if peak else 'unknown'} TFLOP/s"
    )
    rows = []
    for batch_size in args.batch_sizes:
        for mode in args.modes:
            for compile_models in ([False, True] if mode in args.compile else [False]):
                row = benchmark_row(args, mode, batch_size, compile_models, peak)
                rows.append(row)
                summary = f"{mode} batch {batch_size} compiled={compile_models}: {row['ours ms']:.1f} ms"
                print(f"  done: {summary}", flush=True)
    print()
    print(markdown_table(rows, COLUMNS))
    print(
        "\nclips/s = batch / step time (training: clips trained per second); steps/s = optimizer steps per second. "
        f"Target: paper preset inference MFU >= {TARGET_MFU:.0%} at batch 32 on an H100/H200."
    )
    return rows


if __name__ == "__main__":
    main()
