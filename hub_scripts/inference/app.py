"""The demo app (``mtcae-app``, and a Hugging Face Space's ``app.py``): a video in, the expression out.

:func:`build_app` makes a Gradio ``Interface`` around :func:`hub_scripts.inference.windows.predict_video`: upload a
video (or give its path through the API) and get the top labels of the whole clip, the timeline plot of the sliding
windows and the overlay video with the predicted face box and landmarks. The model runs as ``mtcae-predict`` runs
it (:mod:`hub_scripts.inference.engines`: ``--dtype auto`` and the rest, or the ONNX export). A Space needs only::

    # app.py
    from hub_scripts.inference.app import build_app, load_for_app

    build_app(*load_for_app("you/mtcae-ravdess")).launch()

with ``mtcae-dfer[app]`` in its ``requirements.txt``. Gradio's analytics are switched off before it is imported.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from hub_scripts.inference.engines import EngineOptions, InferenceEngine
from hub_scripts.inference.export import load_onnx
from hub_scripts.inference.overlay import write_overlay
from hub_scripts.inference.timeline import plot_timeline
from hub_scripts.inference.windows import DEFAULT_STRIDE_SECONDS, DEFAULT_WINDOW_SECONDS, load_model, predict_video

OVERLAY_MAX_SIDE = 640  # the overlay shown in the browser; the timeline JSON keeps full-resolution coordinates


def load_for_app(model: str, options: EngineOptions | None = None, device: str = "cpu"):
    """``(engine, processor)`` for a model folder or Hub id (or an ONNX export with ``backend="onnxruntime"``)."""
    options = options or EngineOptions()
    if options.backend == "onnxruntime":
        return load_onnx(model)
    model, processor = load_model(model, device)
    return InferenceEngine(model, options), processor


def analyse(video: str, engine, processor, top_k: int = 3, window: float = DEFAULT_WINDOW_SECONDS,
            stride: float = DEFAULT_STRIDE_SECONDS, output_dir: str | Path | None = None) -> tuple[dict, str, str]:
    """``({label: probability} of the whole clip, timeline PNG path, overlay MP4 path)`` for one video."""
    result = predict_video(video, engine, processor, window, stride)
    folder = Path(output_dir or tempfile.mkdtemp(prefix="mtcae-app-"))
    png, overlay = folder / f"{Path(video).stem}.timeline.png", folder / f"{Path(video).stem}.overlay.mp4"
    plot_timeline(result, png)
    write_overlay(result, overlay, OVERLAY_MAX_SIDE)
    ranked = sorted(result["clip"]["probabilities"].items(), key=lambda item: -item[1])[:top_k]
    return dict(ranked), str(png), str(overlay)


def build_app(engine, processor, top_k: int = 3, title: str = "MTCAE-DFER: facial expression in a video"):
    """A Gradio ``Interface`` (API name ``/predict``): video -> top-k labels, timeline plot, overlay video."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    import gradio as gr

    labels = ", ".join(engine.config.id2label[i] for i in range(engine.config.num_labels))
    return gr.Interface(
        fn=lambda video: analyse(video, engine, processor, top_k),
        inputs=gr.Video(label="video (a face)", sources=["upload"]),
        outputs=[gr.Label(num_top_classes=top_k, label="whole clip"), gr.Image(type="filepath", label="timeline"),
                 gr.Video(label="what the model saw")],
        title=title,
        description=f"Expression of the whole clip and of {DEFAULT_WINDOW_SECONDS:g}-s windows every "
                    f"{DEFAULT_STRIDE_SECONDS:g} s ({labels}), with the face box and five landmarks the model "
                    "predicts for each sampled frame.",
        flagging_mode="never",
        api_name="predict",
    )


__all__ = ["analyse", "build_app", "load_for_app"]
