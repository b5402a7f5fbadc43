"""ONNX export of a trained model, checked against PyTorch, and the onnxruntime engine that runs it.

:func:`export_onnx` writes ``OUTPUT/model.onnx`` (torch's ONNX exporter, ``dynamo=True``; one input
``pixel_values`` of shape ``(batch, frames, 3, height, width)`` float32, the batch dimension dynamic; outputs
``logits``, ``face_boxes``, ``face_landmarks`` as the model names them, the face outputs absent for a single-task
model) with the model's ``config.json`` and video processor config beside it, then runs onnxruntime on random inputs
of batch 1 and 2 and compares every output with PyTorch's (the weights lie beside it in ``model.onnx.data``,
ONNX's external data): the export is kept only when each differs by at most
``tolerance`` (default 1e-4), and ``export_report.json`` records the differences. optimum has no export config for
VideoMAE or for remote-code models, so the input and output names and the dynamic axis are set here.
"""

from __future__ import annotations

import copy
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch

from hub_scripts.inference.engines import EngineOutput
from modeling_mtcae import MTCAEConfig
from processing.files import write_json
from processing.video_processing_mtcae import MTCAEVideoProcessor

ONNX_FILE = "model.onnx"
REPORT_FILE = "export_report.json"
OUTPUT_NAMES = ("logits", "face_boxes", "face_landmarks")
DEFAULT_TOLERANCE = 1e-4


class ExportError(ValueError):
    """The export failed or onnxruntime's outputs differ from PyTorch's by more than the tolerance."""


class _Outputs(torch.nn.Module):
    """The model with plain tensor outputs, as the exporter needs them."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, pixel_values: torch.Tensor):
        output = self.model(pixel_values=pixel_values)
        return tuple(value for value in (output.logits, output.face_boxes, output.face_landmarks) if value is not None)


def _random_inputs(config, batch_size: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    channels = config.encoder_config.num_channels
    return torch.randn(batch_size, config.num_frames, channels, *config.image_size, generator=generator)


def export_onnx(model, processor: MTCAEVideoProcessor, output_dir: str | Path,
                tolerance: float = DEFAULT_TOLERANCE) -> dict:
    """Export ``model`` (eval, CPU, float32) to ``output_dir`` and check it with onnxruntime; returns the report.

    Raises:
        ExportError: the exporter failed, or an output of onnxruntime differs from PyTorch's by more than
            ``tolerance`` (nothing is written to ``output_dir`` then).
    """
    import onnxruntime

    model = copy.deepcopy(model).to("cpu", torch.float32).eval()  # the caller's model stays where it is
    wrapped, example = _Outputs(model).eval(), _random_inputs(model.config, 2, seed=0)
    with torch.no_grad():
        output = model(pixel_values=example)
    names = [name for name in OUTPUT_NAMES if getattr(output, name) is not None]  # no face outputs: single-task
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=output_dir) as folder:
        onnx_path = Path(folder) / ONNX_FILE
        try:
            torch.onnx.export(wrapped, (example,), str(onnx_path), input_names=["pixel_values"], output_names=names,
                              dynamic_shapes={"pixel_values": {0: torch.export.Dim("batch", min=1, max=1024)}},
                              dynamo=True, verbose=False)
        except Exception as error:  # the exporter's many error types
            raise ExportError(f"torch.onnx.export failed: {type(error).__name__}: {error}") from error
        session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
        differences = {}
        for batch_size, seed in ((1, 1), (2, 2)):
            inputs = _random_inputs(model.config, batch_size, seed)
            with torch.no_grad():
                expected = wrapped(inputs)
            got = session.run(None, {"pixel_values": inputs.numpy()})
            for name, ours, theirs in zip(names, got, expected):
                difference = float(np.abs(ours - theirs.numpy()).max())
                differences[name] = max(differences.get(name, 0.0), difference)
        report = {"format": "onnx", "file": ONNX_FILE, "outputs": names, "tolerance": tolerance,
                  "max_abs_difference": differences, "onnxruntime": onnxruntime.__version__,
                  "torch": torch.__version__, "checked_batch_sizes": [1, 2]}
        worst = max(differences, key=differences.get)
        if differences[worst] > tolerance:
            raise ExportError(f"onnxruntime's {worst} differs from PyTorch's by {differences[worst]:.2e} > "
                              f"--tolerance {tolerance:g}; nothing was written")
        for written in Path(folder).iterdir():  # model.onnx and its weights file (model.onnx.data)
            shutil.move(str(written), output_dir / written.name)
        report["files"] = sorted(written.name for written in output_dir.glob(f"{ONNX_FILE}*"))
    model.config.save_pretrained(output_dir)
    processor.save_pretrained(output_dir)
    write_json(output_dir / REPORT_FILE, report, indent=2)
    return report


class OnnxEngine:
    """An exported model (:func:`export_onnx`'s folder) run by onnxruntime, called like an
    :class:`~hub_scripts.inference.engines.InferenceEngine`."""

    reference = None  # no PyTorch model to compare with: the export was checked when it was made

    def __init__(self, folder: str | Path, threads: int | None = None):
        import onnxruntime

        folder = Path(folder)
        if not (folder / ONNX_FILE).is_file():
            raise FileNotFoundError(f"{folder} holds no {ONNX_FILE}; make one with mtcae-export MODEL {folder}")
        options = onnxruntime.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        self.session = onnxruntime.InferenceSession(str(folder / ONNX_FILE), options,
                                                    providers=["CPUExecutionProvider"])
        self.names = [output.name for output in self.session.get_outputs()]
        self.config = MTCAEConfig.from_pretrained(folder)
        self.device = torch.device("cpu")

    @property
    def description(self) -> dict:
        return {"device": "cpu", "dtype": "fp32", "quantize": "none", "compile": False, "backend": "onnxruntime"}

    def __call__(self, pixel_values: torch.Tensor) -> EngineOutput:
        values = self.session.run(None, {"pixel_values": pixel_values.float().numpy()})
        outputs = {name: torch.from_numpy(value) for name, value in zip(self.names, values)}
        return EngineOutput(outputs["logits"], outputs.get("face_boxes"), outputs.get("face_landmarks"))


def load_onnx(folder: str | Path) -> tuple[OnnxEngine, MTCAEVideoProcessor]:
    """The onnxruntime engine of an export folder and the processor saved beside it."""
    return OnnxEngine(folder), MTCAEVideoProcessor.from_pretrained(str(folder))


__all__ = ["DEFAULT_TOLERANCE", "ExportError", "OnnxEngine", "export_onnx", "load_onnx"]
