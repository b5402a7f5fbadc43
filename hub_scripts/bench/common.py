"""Helpers shared by the benchmark scripts: interleaved timing, FLOP and memory counting, tables.

Every benchmark times our code and its reference *in the same process, interleaved*: each round
runs every candidate once (the order rotates from round to round), so a slow spell on a shared
machine hits all candidates alike, and the ratios stay meaningful when the absolute times do not.
"""

from __future__ import annotations

import math
import os
import platform
import statistics
import time
import weakref
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

# ----------------------------------------------------------------------------------------------
# Timing
# ----------------------------------------------------------------------------------------------
CLOCKS = ("wall", "cpu")


@dataclass
class Timing:
    """Seconds of the timed runs of one candidate, by wall clock and by this process's CPU time.

    ``clock="wall"`` is what a user waits. ``clock="cpu"`` (``time.process_time``: CPU seconds of all
    this process's threads) is steadier on a machine shared with other work, because time spent
    descheduled does not count; it is a fair measure of work only with ``torch.set_num_threads(1)``
    (idle OpenMP threads spin and would count) and only for CPU work (GPU kernels do not count).
    """

    name: str
    clock: str = "wall"
    wall_seconds: list[float] = field(default_factory=list)
    cpu_seconds: list[float] = field(default_factory=list)

    @property
    def seconds(self) -> list[float]:
        """The samples of the chosen ``clock``."""
        return self.cpu_seconds if self.clock == "cpu" else self.wall_seconds

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def spread(self) -> float:
        """(max - min) / median of the timed runs: how noisy this candidate's runs were."""
        return (max(self.seconds) - min(self.seconds)) / self.median if self.median > 0 else 0.0


def time_interleaved(
    candidates: dict[str, Callable[[], Any]],
    repeats: int,
    warmup: int,
    synchronize: Callable[[], None] | None = None,
    clock: str = "wall",
) -> dict[str, Timing]:
    """Timings of several candidates, run round-robin in one process.

    Args:
        candidates: name -> zero-argument callable doing one unit of work.
        repeats: timed rounds; each round calls every candidate once, the order rotating by one
            candidate per round.
        warmup: untimed rounds before the timed ones.
        synchronize: called before reading the clocks (e.g. ``torch.cuda.synchronize``).
        clock: ``"wall"`` or ``"cpu"``: which samples :attr:`Timing.median` uses (both are kept).

    Returns:
        name -> :class:`Timing` with ``repeats`` samples each.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    if clock not in CLOCKS:
        raise ValueError(f"clock must be one of {CLOCKS}, got {clock!r}")
    sync = synchronize or (lambda: None)
    names = list(candidates)
    for _ in range(warmup):
        for name in names:
            candidates[name]()
    sync()
    timings = {name: Timing(name, clock) for name in names}
    for round_index in range(repeats):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            wall_start, cpu_start = time.perf_counter(), time.process_time()
            candidates[name]()
            sync()
            timings[name].wall_seconds.append(time.perf_counter() - wall_start)
            timings[name].cpu_seconds.append(time.process_time() - cpu_start)
    return timings


def paired_ratio(numerator: Timing, denominator: Timing) -> float:
    """Median over rounds of ``numerator / denominator`` times measured in the same round.

    Pairing the two samples of each round cancels load that changes between rounds (a neighbour's
    job starting or stopping), which a ratio of the two medians does not.
    """
    if len(numerator.seconds) != len(denominator.seconds):
        raise ValueError("paired_ratio needs timings from the same rounds")
    return statistics.median(a / b for a, b in zip(numerator.seconds, denominator.seconds))


# ----------------------------------------------------------------------------------------------
# FLOPs
# ----------------------------------------------------------------------------------------------
def _cpu_sdpa_flop_mapping() -> dict:
    """FLOP formulas for the CPU flash-attention kernels, which ``FlopCounterMode`` does not count.

    ``FlopCounterMode`` (torch 2.x) registers the CUDA sdpa kernels only; on CPU,
    ``F.scaled_dot_product_attention`` dispatches to ``_scaled_dot_product_flash_attention_for_cpu``
    and would count as zero. The formulas are torch's own sdpa ones (2 matmuls forward, 4 backward).
    """
    import torch
    from torch.utils import flop_counter

    aten = torch.ops.aten
    mapping = {}
    forward_op = getattr(aten, "_scaled_dot_product_flash_attention_for_cpu", None)
    backward_op = getattr(aten, "_scaled_dot_product_flash_attention_for_cpu_backward", None)
    if forward_op is not None:

        def forward_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
            return flop_counter.sdpa_flop_count(query_shape, key_shape, value_shape)

        mapping[forward_op] = forward_flops
    if backward_op is not None:

        def backward_flops(grad_out_shape, query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
            return flop_counter.sdpa_backward_flop_count(grad_out_shape, query_shape, key_shape, value_shape)

        mapping[backward_op] = backward_flops
    return mapping


def count_flops(fn: Callable[[], Any]) -> int:
    """FLOPs (multiply and add counted separately) of one call of ``fn``, attention included.

    Matmuls, convolutions and attention are counted (``torch.utils.flop_counter``, plus the CPU
    sdpa kernels); element-wise ops, norms and softmax are not, for either model alike.
    """
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False, custom_mapping=_cpu_sdpa_flop_mapping()) as counter:
        fn()
    return int(counter.get_total_flops())


# ----------------------------------------------------------------------------------------------
# Memory
# ----------------------------------------------------------------------------------------------
class _LiveTensorMemory:
    """Tracks the bytes of tensor storages created while active, freed as they die.

    A ``TorchDispatchMode`` sees every ATen op (forward and, on CPU, backward): each output whose
    storage is new (not one of the op's inputs') is counted until its storage is garbage collected.
    """

    def __init__(self) -> None:
        self.current = 0
        self.peak = 0
        self._tracked: set[int] = set()

    def add(self, storage) -> None:
        key = id(storage)
        if key in self._tracked:
            return
        nbytes = storage.nbytes()
        self._tracked.add(key)
        self.current += nbytes
        self.peak = max(self.peak, self.current)
        weakref.finalize(storage, self._free, key, nbytes)

    def _free(self, key: int, nbytes: int) -> None:
        self._tracked.discard(key)
        self.current -= nbytes


def peak_cpu_tensor_bytes(fn: Callable[[], Any], resident: Iterable[Any] = ()) -> int:
    """Peak bytes of live CPU tensors during ``fn()``: ``resident`` tensors + the peak of new ones.

    Args:
        fn: the work (a forward, or a forward + backward).
        resident: tensors alive throughout (parameters, buffers, inputs); their unique storages are
            added once.
    """
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_leaves

    tracker = _LiveTensorMemory()

    class _Mode(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            inputs = {
                id(t.untyped_storage()) for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)
            }
            for t in tree_leaves(out):
                if isinstance(t, torch.Tensor) and t.device.type == "cpu":
                    storage = t.untyped_storage()
                    if id(storage) not in inputs:
                        tracker.add(storage)
            return out

    resident_bytes = storage_bytes(resident)
    with _Mode():
        fn()
    return resident_bytes + tracker.peak


def storage_bytes(tensors: Iterable[Any]) -> int:
    """Bytes of the distinct storages behind ``tensors`` (views and tied weights counted once)."""
    storages = {}
    for tensor in tensors:
        storage = tensor.untyped_storage()
        storages[(storage.device, storage.data_ptr())] = storage.nbytes()
    return sum(storages.values())


# ----------------------------------------------------------------------------------------------
# Tables and the machine
# ----------------------------------------------------------------------------------------------
def format_number(value: Any, digits: int = 2) -> str:
    """Numbers for tables: ints with thousands separators, floats with ``digits`` decimals."""
    if isinstance(value, bool) or value is None:
        return "" if value is None else ("yes" if value else "no")
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isnan(value):
            return "n/a"
        return f"{value:,.{digits}f}"
    return str(value)


def markdown_table(rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None, digits: int = 2) -> str:
    """A GitHub markdown table of ``rows`` (dicts), columns in ``columns`` order (default: first row's)."""
    if not rows:
        return "(no rows)"
    columns = list(columns or rows[0].keys())
    cells = [[format_number(row.get(column), digits) for column in columns] for row in rows]
    widths = [max(len(column), *(len(line[i]) for line in cells)) for i, column in enumerate(columns)]
    header = "| " + " | ".join(column.ljust(width) for column, width in zip(columns, widths)) + " |"
    rule = "| " + " | ".join("-" * width for width in widths) + " |"
    body = ["| " + " | ".join(cell.rjust(width) for cell, width in zip(line, widths)) + " |" for line in cells]
    return "\n".join([header, rule, *body])


def cpu_name() -> str:
    """The CPU model name from /proc/cpuinfo (Linux), else ``platform.processor()``."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_summary() -> str:
    """One line naming the machine and the library versions the numbers depend on."""
    import torch
    import transformers

    load = ""
    if hasattr(os, "getloadavg"):
        load = f", load avg {os.getloadavg()[0]:.2f}"
    return (
        f"{cpu_name()}, {os.cpu_count()} logical CPUs{load}; torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), transformers {transformers.__version__}, "
        f"Python {platform.python_version()}"
    )


def add_timing_arguments(parser, repeats: int, warmup: int, clock: bool = True) -> None:
    """The options every benchmark shares: --repeats, --warmup, --threads and (optionally) --clock."""
    parser.add_argument("--repeats", type=int, default=repeats, help="timed interleaved rounds (median reported)")
    parser.add_argument("--warmup", type=int, default=warmup, help="untimed rounds first")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    if clock:
        parser.add_argument("--clock", choices=CLOCKS, default="wall",
                            help="wall: elapsed time (default); cpu: process CPU time (steadier on a shared "
                                 "machine; use with --threads 1)")


def set_threads(threads: int | None) -> None:
    """``torch.set_num_threads`` when ``threads`` is given (>0)."""
    if threads:
        import torch

        torch.set_num_threads(threads)


# ----------------------------------------------------------------------------------------------
# Test media
# ----------------------------------------------------------------------------------------------
def make_test_clip(
    path: str | Path,
    seconds: float = 3.0,
    width: int = 1280,
    height: int = 720,
    fps: int = 30,
    gop: int | None = None,
    bframes: int | None = None,
) -> Path:
    """Write a textured, moving H.264 clip (yuv420p) with PyAV.

    Args:
        gop: keyframe interval; ``None`` keeps libx264's default (250: one keyframe in a 3 s clip).
        bframes: force this many consecutive B-frames (fixed pattern, ``b-adapt=0``); ``None`` lets
            libx264 decide (it picks no B-frames for this synthetic texture).
    """
    from fractions import Fraction

    import av

    rng = np.random.default_rng(0)
    num_frames = int(seconds * fps)
    texture = rng.integers(0, 60, (height, width + 3 * num_frames, 3), dtype=np.uint8)
    ys, xs = np.mgrid[0:height, 0:width]
    radial = np.hypot(xs - width / 2, ys - height / 2) % 256
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        if gop:
            stream.codec_context.gop_size = gop
        if bframes is not None:
            stream.codec_context.options = {"x264-params": f"bframes={bframes}:b-adapt=0"}
        for i in range(num_frames):
            pixels = np.stack([(xs + 8 * i) % 256, (2 * ys + 4 * i) % 256, radial], -1)
            pixels = (pixels // 2).astype(np.uint8) + texture[:, 3 * i : 3 * i + width]
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, fps)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return Path(path)
