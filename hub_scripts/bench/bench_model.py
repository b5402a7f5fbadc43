"""Benchmark: MTCAE-DFER against transformers' VideoMAEForVideoClassification with the same encoder.

Both models are built from the same preset (random weights; ``VideoMAEForVideoClassification``
gets exactly our ``config.encoder_config``, so the encoders are identical) and get the same random
clips. For each preset and mode it prints the median time of ``--repeats`` interleaved runs after
``--warmup`` runs; the time ratio (median over rounds of ours / VideoMAE, timed in the same round);
the FLOPs of one call of each model (``torch.utils.flop_counter``; the CPU sdpa kernel, which that
counter misses, is counted with torch's own sdpa formula); and the peak tensor memory of one call
(live CPU tensor storages: weights + inputs + everything the call allocates).

Modes:

- ``forward``: ``eval()`` and ``torch.inference_mode()``.
- ``train``: ``train()`` (dropout on, as configured), loss + backward, encoder trainable in both.
- ``train_frozen``: as ``train`` with the encoder frozen in both (the paper's setting: only our
  projection, decoders and heads, or VideoMAE's classifier, train).

The target (issue 6): time ratio (ours / VideoMAE) <= 1.1 x FLOP ratio, i.e. ``time/FLOP`` <= 1.1.

Clocks: ``--clock wall`` (default) is elapsed time; ``--clock cpu --threads 1`` is this process's
CPU time, which a machine shared with other work disturbs much less. ``--attn-implementation``
chooses our model's attention function (VideoMAE always runs ``sdpa``); ``--compare-attention NAME``
also times a copy of our model with attention function ``NAME`` in the same rounds (``compared``
columns), e.g. the package's CPU training path ``mtcae_cpu_dropout`` against ``sdpa``.

Examples::

    python -m hub_scripts.bench.bench_model --presets tiny base --repeats 3 --warmup 1
    python -m hub_scripts.bench.bench_model --presets base --repeats 3 --warmup 1 --threads 1 --clock cpu \
        --compare-attention mtcae_cpu_dropout
"""

from __future__ import annotations

import argparse
import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from transformers import VideoMAEConfig, VideoMAEForVideoClassification

from hub_scripts.bench.common import (
    add_timing_arguments,
    count_flops,
    machine_summary,
    markdown_table,
    paired_ratio,
    peak_cpu_tensor_bytes,
    set_threads,
    time_interleaved,
)
from modeling_mtcae import MTCAEConfig, MTCAEForVideoClassification

MODES = ("forward", "train", "train_frozen")
TARGET_TIME_OVER_FLOPS = 1.1
COLUMNS = (
    "preset",
    "mode",
    "batch",
    "clock",
    "ours ms",
    "VideoMAE ms",
    "time ratio",
    "ours GFLOP",
    "VideoMAE GFLOP",
    "FLOP ratio",
    "time/FLOP",
    "ours peak MiB",
    "VideoMAE peak MiB",
    "target met",
)
COMPARED_COLUMNS = ("compared attention", "compared ms", "compared time/FLOP", "compared peak MiB", "ours / compared")


@dataclass
class ModelPair:
    """Our model and the VideoMAE classifier with the identical encoder, plus one batch of inputs."""

    ours: torch.nn.Module
    reference: torch.nn.Module
    our_inputs: dict[str, torch.Tensor]
    reference_inputs: dict[str, torch.Tensor]


def build_pair(
    preset: str,
    batch_size: int,
    num_labels: int,
    freeze_encoder: bool,
    seed: int = 0,
    device: str | torch.device = "cpu",
    attn_implementation: str = "sdpa",
    reference_attn_implementation: str | None = None,
) -> ModelPair:
    """Build MTCAE-DFER (``preset``) and ``VideoMAEForVideoClassification`` on its exact encoder config.

    Both are float32, built directly on ``device``, with ``freeze_encoder`` applied to both encoders.
    VideoMAE uses ``reference_attn_implementation`` (default: the same as ours).
    """
    torch.manual_seed(seed)
    config = MTCAEConfig.from_preset(
        preset, num_labels=num_labels, freeze_encoder=freeze_encoder, attn_implementation=attn_implementation
    )
    encoder_fields = config.encoder_config.to_dict()
    for key in ("id2label", "label2id", "num_labels"):
        encoder_fields.pop(key, None)
    reference_attention = reference_attn_implementation or attn_implementation
    reference_config = VideoMAEConfig(**encoder_fields, num_labels=num_labels, attn_implementation=reference_attention)
    with torch.device(device):
        ours = MTCAEForVideoClassification(config)
        reference = VideoMAEForVideoClassification(reference_config)
    reference.videomae.requires_grad_(not freeze_encoder)

    generator = torch.Generator().manual_seed(seed)
    height, width = config.image_size
    pixel_values = torch.randn(batch_size, config.num_frames, 3, height, width, generator=generator)
    labels = torch.randint(0, num_labels, (batch_size,), generator=generator)
    our_inputs = {
        "pixel_values": pixel_values,
        "labels": labels,
        "face_boxes": torch.rand(batch_size, config.num_frames, 4, generator=generator),
        "face_landmarks": torch.rand(batch_size, config.num_frames, config.num_landmarks, 2, generator=generator),
        "face_mask": torch.ones(batch_size, config.num_frames, dtype=torch.bool),
    }
    our_inputs = {name: tensor.to(device) for name, tensor in our_inputs.items()}
    reference_inputs = {"pixel_values": our_inputs["pixel_values"], "labels": our_inputs["labels"]}
    return ModelPair(ours, reference, our_inputs, reference_inputs)


def forward_step(model: torch.nn.Module, inputs: dict[str, torch.Tensor]) -> Callable[[], Any]:
    """Inference: logits only, no labels, no autograd."""
    model.eval()
    pixel_values = inputs["pixel_values"]

    def step() -> Any:
        with torch.inference_mode():
            return model(pixel_values=pixel_values).logits

    return step


def train_step(model: torch.nn.Module, inputs: dict[str, torch.Tensor]) -> Callable[[], Any]:
    """Training: forward with all targets, backward, gradients cleared (no optimizer step)."""
    model.train()

    def step() -> Any:
        model.zero_grad(set_to_none=True)
        loss = model(**inputs).loss
        loss.backward()
        return loss

    return step


def resident_tensors(model: torch.nn.Module, inputs: dict[str, torch.Tensor]) -> list[torch.Tensor]:
    """Tensors alive throughout a step: weights, buffers and inputs."""
    return [*model.parameters(), *model.buffers(), *inputs.values()]


def _peak_memory(models: dict, steps: dict) -> dict[str, float]:
    """Peak CPU tensor memory (MiB) of each model's step, gradients cleared before and after."""
    memory = {}
    for name, (model, inputs) in models.items():
        model.zero_grad(set_to_none=True)
        memory[name] = peak_cpu_tensor_bytes(steps[name], resident_tensors(model, inputs)) / 2**20
        model.zero_grad(set_to_none=True)
    return memory


def benchmark_mode(
    preset: str,
    mode: str,
    batch_size: int,
    repeats: int,
    warmup: int,
    num_labels: int,
    measure_memory: bool,
    clock: str = "wall",
    attn_implementation: str = "sdpa",
    compare_attention: str | None = None,
) -> dict[str, Any]:
    """One table row: interleaved timing, FLOPs and peak memory of ours and VideoMAE's (sdpa).

    With ``compare_attention``, a copy of our model running that attention function is timed in the
    same rounds; same FLOPs, reported as ``compared`` columns.
    """
    freeze = mode == "train_frozen"
    pair = build_pair(
        preset, batch_size, num_labels, freeze_encoder=freeze, attn_implementation=attn_implementation,
        reference_attn_implementation="sdpa",
    )
    make_step = forward_step if mode == "forward" else train_step
    models = {"ours": (pair.ours, pair.our_inputs), "VideoMAE": (pair.reference, pair.reference_inputs)}
    if compare_attention:
        compared = copy.deepcopy(pair.ours)
        compared.set_attn_implementation(compare_attention)
        models["compared"] = (compared, pair.our_inputs)
    steps = {name: make_step(model, inputs) for name, (model, inputs) in models.items()}
    timings = time_interleaved(steps, repeats, warmup, clock=clock)
    flops = {name: count_flops(steps[name]) for name in ("ours", "VideoMAE")}
    memory = _peak_memory(models, steps) if measure_memory else {name: float("nan") for name in models}
    time_ratio = paired_ratio(timings["ours"], timings["VideoMAE"])
    flop_ratio = flops["ours"] / flops["VideoMAE"]
    row = {
        "preset": preset,
        "mode": mode,
        "batch": batch_size,
        "clock": clock,
        "ours ms": timings["ours"].median * 1e3,
        "VideoMAE ms": timings["VideoMAE"].median * 1e3,
        "time ratio": time_ratio,
        "ours GFLOP": flops["ours"] / 1e9,
        "VideoMAE GFLOP": flops["VideoMAE"] / 1e9,
        "FLOP ratio": flop_ratio,
        "time/FLOP": time_ratio / flop_ratio,
        "ours peak MiB": memory["ours"],
        "VideoMAE peak MiB": memory["VideoMAE"],
        "target met": time_ratio / flop_ratio <= TARGET_TIME_OVER_FLOPS,
    }
    if compare_attention:
        row.update({"compared attention": compare_attention, "compared ms": timings["compared"].median * 1e3,
                    "compared time/FLOP": paired_ratio(timings["compared"], timings["VideoMAE"]) / flop_ratio,
                    "compared peak MiB": memory["compared"],
                    "ours / compared": paired_ratio(timings["ours"], timings["compared"])})
    return row


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--presets", nargs="+", default=["tiny", "base"], help="MTCAEConfig presets (default: tiny base)"
    )
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument("--batch-size", type=int, default=1)
    add_timing_arguments(parser, repeats=3, warmup=1)
    parser.add_argument("--num-labels", type=int, default=7)
    parser.add_argument("--no-memory", action="store_true", help="skip the (slower) peak-memory pass")
    parser.add_argument(
        "--attn-implementation", default="sdpa", help="our model's attention function (default: sdpa)"
    )
    parser.add_argument(
        "--compare-attention",
        default=None,
        metavar="NAME",
        help="also time our model with this attention function in the same rounds (e.g. mtcae_cpu_dropout, "
        "registered by importing modeling_mtcae)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    """Run the benchmark, print the table, and return its rows."""
    args = parse_args(argv)
    set_threads(args.threads)
    print(f"machine: {machine_summary()}")
    print(
        f"median of {args.repeats} interleaved runs after {args.warmup} warm-up runs ({args.clock} clock); "
        f"batch {args.batch_size}"
    )
    rows = run_all(args)
    columns = list(COLUMNS) + (list(COMPARED_COLUMNS) if args.compare_attention else [])
    print()
    print(markdown_table(rows, columns))
    print(f"\ntarget: time/FLOP = (ours / VideoMAE time) / (ours / VideoMAE FLOPs) <= {TARGET_TIME_OVER_FLOPS}")
    return rows


def run_all(args: argparse.Namespace) -> list[dict[str, Any]]:
    """One row per preset and mode."""
    rows = []
    for preset in args.presets:
        for mode in args.modes:
            row = benchmark_mode(
                preset,
                mode,
                args.batch_size,
                args.repeats,
                args.warmup,
                args.num_labels,
                not args.no_memory,
                args.clock,
                args.attn_implementation,
                args.compare_attention,
            )
            rows.append(row)
            summary = f"time ratio {row['time ratio']:.2f}, FLOP ratio {row['FLOP ratio']:.2f}"
            print(f"  done: {preset} {mode}: {summary}", flush=True)
    return rows


if __name__ == "__main__":
    main()
