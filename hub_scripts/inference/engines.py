"""How the model runs at inference: the fast CPU path of ``mtcae-predict`` and of the inference library.

An :class:`InferenceEngine` wraps a trained model and is called like it, ``engine(pixel_values=...)``, returning the
model's output (``logits``, ``face_boxes``, ``face_landmarks``) as float32 on the CPU, whatever it computes in:

- ``dtype``: ``"fp32"``; ``"bf16"`` (bfloat16 autocast: the matrix products in bf16, softmax and norms in fp32);
  ``"auto"``: bf16 where the processor computes bf16 natively, fp32 elsewhere (emulated bf16 is slower than
  fp32). Native bf16 on a CPU means AMX (Intel Xeon 4th gen and later) or AVX512-BF16 (Intel Cooper Lake, AMD
  Zen 4 and later), as torch reports them (``torch.cpu._is_amx_tile_supported`` /
  ``_is_avx512_bf16_supported``, falling back to the ``amx_bf16`` / ``avx512_bf16`` flags of /proc/cpuinfo);
  the environment variable ``MTCAE_NATIVE_BF16=1`` or ``0`` overrides the detection. On a CUDA device ``auto``
  is bf16 where the GPU supports it.
- ``quantize="dynamic"``: the linear layers in int8 with dynamic activation scales
  (``torch.ao.quantization.quantize_dynamic``, on a copy of the model; CPU only). torch marks ``torch.ao.quantization``
  deprecated in favour of torchao; it still ships and works in torch 2.14, and its warning is silenced here.
- ``compile=True``: ``torch.compile`` of the model; the first calls of each batch shape compile (tens of
  seconds on a CPU), so it pays off on long videos or a server, not on one short clip.

:func:`agreement` compares any engine with fp32 eager on the same windows (top-1 agreement and the largest
probability difference), as ``mtcae-predict --report_agreement`` and the inference benchmark report it.
"""

from __future__ import annotations

import contextlib
import copy
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from hub_scripts.cli import check_choice

DTYPES = ("auto", "fp32", "bf16")
QUANTIZATIONS = ("none", "dynamic")
BACKENDS = ("pytorch", "onnxruntime")
NATIVE_BF16_FLAGS = ("amx_bf16", "avx512_bf16")
NATIVE_BF16_VARIABLE = "MTCAE_NATIVE_BF16"


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AMX or AVX512-BF16); ``MTCAE_NATIVE_BF16=1|0`` overrides."""
    forced = os.environ.get(NATIVE_BF16_VARIABLE)
    if forced in ("0", "1"):
        return forced == "1"
    probes = [getattr(torch.cpu, name, None) for name in ("_is_amx_tile_supported", "_is_avx512_bf16_supported")]
    if all(callable(probe) for probe in probes):
        return any(probe() for probe in probes)
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False
    return any(flag in flags for flag in NATIVE_BF16_FLAGS)


def resolve_dtype(dtype: str, device: torch.device | str = "cpu") -> str:
    """``"fp32"`` or ``"bf16"``: ``dtype`` itself, or for ``"auto"`` what this device computes fastest."""
    check_choice("dtype", dtype, DTYPES)
    if dtype != "auto":
        return dtype
    device = torch.device(device)
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if device.type == "cpu" and cpu_has_native_bf16() else "fp32"


@dataclass
class EngineOptions:
    """How ``mtcae-predict`` runs the model (flags are the field names)."""

    dtype: Literal[DTYPES] = field(default="auto", metadata={
        "help": "fp32; bf16 (bfloat16 autocast); auto: bf16 where the CPU has AMX or AVX512-BF16 (or a CUDA GPU "
                f"supports it), else fp32. {NATIVE_BF16_VARIABLE}=1|0 overrides the CPU detection"})
    quantize: Literal[QUANTIZATIONS] = field(default="none", metadata={
        "help": "dynamic: int8 linear layers with dynamic activation scales (CPU only)"})
    compile: bool = field(default=False, metadata={
        "help": "torch.compile the model: pays off after tens of seconds of compiling, on long videos"})
    backend: Literal[BACKENDS] = field(default="pytorch", metadata={
        "help": "onnxruntime: run the ONNX export made by mtcae-export (--model is its folder)"})
    report_agreement: bool = field(default=False, metadata={
        "help": "also run fp32 eager on the same windows and report top-1 agreement and the largest probability "
                "difference (in the timeline JSON, as 'agreement')"})

    def __post_init__(self):
        check_choice("dtype", self.dtype, DTYPES)
        check_choice("quantize", self.quantize, QUANTIZATIONS)
        check_choice("backend", self.backend, BACKENDS)
        if self.backend == "onnxruntime" and (self.dtype == "bf16" or self.quantize != "none" or self.compile
                                              or self.report_agreement):
            raise ValueError("--backend onnxruntime runs the export as it is (fp32, checked against PyTorch when it "
                             "was made): drop --dtype bf16, --quantize, --compile and --report_agreement")
        if self.quantize == "dynamic" and self.dtype == "bf16":
            raise ValueError("--quantize dynamic computes in int8 and fp32: leave --dtype at auto or fp32")


@dataclass
class EngineOutput:
    """The model's outputs for a batch, float32 on the CPU (``face_*`` ``None`` for a single-task model)."""

    logits: torch.Tensor
    face_boxes: torch.Tensor | None = None
    face_landmarks: torch.Tensor | None = None


class InferenceEngine:
    """A trained model run as ``options`` say, called like the model: ``engine(pixel_values=...)``.

    Args:
        model: an ``MTCAEForVideoClassification`` (eval mode).
        options: dtype, quantization and compilation (:class:`EngineOptions`).
        device: where the model runs; inputs come and outputs go back on the CPU.
    """

    def __init__(self, model, options: EngineOptions | None = None, device: torch.device | str | None = None):
        options = options or EngineOptions()
        self.device = torch.device(device) if device is not None else next(model.parameters()).device
        self.dtype = "fp32" if options.quantize == "dynamic" else resolve_dtype(options.dtype, self.device)
        self.quantize, self.compiled = options.quantize, options.compile
        if self.quantize == "dynamic" and self.device.type != "cpu":
            raise ValueError("--quantize dynamic runs on the CPU only; use --device cpu")
        self.config, self.reference = model.config, model
        if self.quantize == "dynamic":  # a quantized copy on the CPU; the model itself stays as it is
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*torch.ao.quantization is deprecated.*")
                model = torch.ao.quantization.quantize_dynamic(copy.deepcopy(model).cpu().eval(), {torch.nn.Linear},
                                                               dtype=torch.qint8, inplace=True)
        else:
            model = model.to(self.device).eval()
        self.model = torch.compile(model) if self.compiled else model

    @property
    def description(self) -> dict:
        """What runs, for the results: ``{"device", "dtype", "quantize", "compile", "backend"}``."""
        return {"device": str(self.device), "dtype": self.dtype, "quantize": self.quantize, "compile": self.compiled,
                "backend": "pytorch"}

    @torch.no_grad()
    def __call__(self, pixel_values: torch.Tensor) -> EngineOutput:
        autocast = (torch.autocast(self.device.type, dtype=torch.bfloat16) if self.dtype == "bf16"
                    else contextlib.nullcontext())
        with autocast:
            output = self.model(pixel_values=pixel_values.to(self.device, torch.float32))
        return EngineOutput(*(None if value is None else value.float().cpu()
                              for value in (output.logits, output.face_boxes, output.face_landmarks)))


def as_engine(model):
    """An engine as it is (this module's, or the ONNX one), a model run in fp32 eager on its own device."""
    return InferenceEngine(model, EngineOptions(dtype="fp32")) if isinstance(model, torch.nn.Module) else model


def agreement(reference: np.ndarray, probabilities: np.ndarray) -> dict:
    """``{"windows", "top1_agreement", "max_probability_difference"}`` of two ``(windows, labels)`` arrays."""
    reference, probabilities = np.asarray(reference), np.asarray(probabilities)
    return {"windows": int(len(reference)),
            "top1_agreement": float(np.mean(reference.argmax(-1) == probabilities.argmax(-1))),
            "max_probability_difference": float(np.abs(reference - probabilities).max())}


__all__ = ["BACKENDS", "DTYPES", "EngineOptions", "EngineOutput", "InferenceEngine", "NATIVE_BF16_VARIABLE",
           "QUANTIZATIONS", "agreement", "as_engine", "cpu_has_native_bf16", "resolve_dtype"]
