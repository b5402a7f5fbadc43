"""The demo app: started on localhost and called the way a user's script calls it (gradio_client), on a real clip;
what it returns is what the inference library gives for that clip."""

from __future__ import annotations

import os
import socket

import numpy as np

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
import gradio_client  # noqa: E402  (the [app] extra, part of the test extra)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_the_app_answers_a_client_with_labels_timeline_and_overlay(trained_output_dir, clips_dir, tmp_path):
    import av
    from PIL import Image

    from hub_scripts.inference import windows as inference
    from hub_scripts.inference.app import build_app, load_for_app
    from hub_scripts.inference.engines import EngineOptions

    engine, processor = load_for_app(str(trained_output_dir), EngineOptions(dtype="fp32"))
    app = build_app(engine, processor, top_k=3)
    port = _free_port()
    app.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        client = gradio_client.Client(f"http://127.0.0.1:{port}/", download_files=str(tmp_path), verbose=False)
        video = clips_dir / "single_face.mp4"
        labels, timeline, overlay = client.predict(gradio_client.handle_file(str(video)), api_name="/predict")
    finally:
        app.close()
    model, processor = inference.load_model(str(trained_output_dir))
    expected = inference.predict_video(str(video), model, processor)["clip"]["probabilities"]
    top = sorted(expected, key=expected.get, reverse=True)
    assert labels["label"] == top[0]
    got = {item["label"]: item["confidence"] for item in labels["confidences"]}
    assert list(got) == top[:3]
    np.testing.assert_allclose([got[label] for label in top[:3]], [expected[label] for label in top[:3]], atol=1e-5)
    assert Image.open(timeline).size[0] > 300  # the timeline plot
    overlay_path = overlay["video"] if isinstance(overlay, dict) else overlay
    with av.open(overlay_path) as container, av.open(str(video)) as source:
        assert container.streams.video[0].frames == source.streams.video[0].frames  # every frame drawn on
