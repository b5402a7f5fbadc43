"""``mtcae-app``: the demo app on this machine: upload a video, get its expression, timeline and overlay.

Runs :func:`hub_scripts.inference.app.build_app` with Gradio (the ``[app]`` extra: ``pip install
"mtcae-dfer[app]"``) on ``--host`` / ``--port``; the model runs as in ``mtcae-predict`` (``--dtype``,
``--quantize``, ``--compile``, ``--backend onnxruntime``). The same app serves as a Hugging Face Space's
``app.py`` (see the module's docstring).

Example::

    mtcae-app outputs/mtcae-tiny-synthetic --port 7860
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

from hub_scripts.cli import parse_arguments, reports_errors
from hub_scripts.inference.app import build_app, load_for_app
from hub_scripts.inference.engines import EngineOptions


@dataclass
class AppArguments:
    """Arguments of ``mtcae-app`` (the model may come first, unnamed)."""

    model: str = field(metadata={"help": "trained model folder or Hub repo id (or an ONNX export folder)"})
    host: str = field(default="127.0.0.1", metadata={"help": "address to serve on (0.0.0.0: every interface)"})
    port: int = field(default=7860, metadata={"help": "port to serve on"})
    top_k: int = field(default=3, metadata={"help": "labels shown"})


@reports_errors("mtcae-app")
def main(argv: list[str] | None = None) -> None:
    args, options = parse_arguments((AppArguments, EngineOptions), argv, prog="mtcae-app", description=__doc__,
                                    positional="model")
    build_app(*load_for_app(args.model, options), top_k=args.top_k).launch(server_name=args.host,
                                                                           server_port=args.port)


if __name__ == "__main__":
    sys.exit(main())
