"""``mtcae-export``: a trained model as ONNX, checked against PyTorch before it is reported done.

Writes ``OUTPUT/model.onnx`` with the model's ``config.json``, its video processor config and
``export_report.json`` (the largest difference of each output from PyTorch's on random inputs of batch 1 and 2).
The export is kept only when every output is within ``--tolerance``. ``mtcae-predict VIDEO --model OUTPUT
--backend onnxruntime`` runs it. Needs the ``[onnx]`` extra (``pip install "mtcae-dfer[onnx]"``).

Example::

    mtcae-export outputs/mtcae-tiny-synthetic exported/ --format onnx
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Literal

from hub_scripts.cli import parse_arguments, reports_errors
from hub_scripts.inference.export import ExportError, export_onnx
from hub_scripts.inference.windows import PredictError, load_model


@dataclass
class ExportArguments:
    """Arguments of ``mtcae-export`` (the model and the output folder may come first, unnamed)."""

    model: str = field(metadata={"help": "trained model folder or Hub repo id"})
    output: str = field(metadata={"help": "folder for model.onnx, config.json and the processor config"})
    format: Literal["onnx"] = field(default="onnx", metadata={"help": "export format"})
    tolerance: float = field(default=1e-4, metadata={"help": "largest difference from PyTorch accepted, per output"})
    revision: str | None = field(default=None, metadata={"help": "model revision (branch, tag or commit)"})

    def __post_init__(self):
        if not self.tolerance > 0:
            raise ValueError(f"--tolerance must be > 0, got {self.tolerance}")


@reports_errors("mtcae-export")
def main(argv: list[str] | None = None) -> int:
    """0 when the export was written and checked; 2 when the model cannot be loaded or the check fails."""
    (args,) = parse_arguments((ExportArguments,), argv, prog="mtcae-export", description=__doc__,
                              positional=("model", "output"))
    try:
        model, processor = load_model(args.model, "cpu", args.revision)
        report = export_onnx(model, processor, args.output, args.tolerance)
    except (PredictError, ExportError) as error:
        print(f"mtcae-export: error: {error}", file=sys.stderr)
        return 2
    differences = ", ".join(f"{name} {value:.1e}" for name, value in report["max_abs_difference"].items())
    print(f"mtcae-export: {args.output}/model.onnx checked with onnxruntime {report['onnxruntime']}: largest "
          f"differences from PyTorch {differences} (tolerance {args.tolerance:g})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
