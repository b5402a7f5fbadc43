"""The fast inference path: each video decoded once for all its windows (the same windows and outputs as decoding
each window by itself), bf16 / int8 / compiled engines that report their agreement with fp32 eager, and ``--dtype
auto`` choosing bf16 only where the CPU computes it natively (the detection forced either way)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from hub_scripts import predict
from hub_scripts.inference import windows as inference
from hub_scripts.inference.engines import (
    NATIVE_BF16_VARIABLE,
    EngineOptions,
    InferenceEngine,
    agreement,
    cpu_has_native_bf16,
    resolve_dtype,
)
from processing.decoding_mtcae import read_video, stream_video_frames
from processing.sampling_mtcae import window_frame_indices

CLIPS = ("single_face.mp4", "no_face.mp4", "face_noface.mov")


@pytest.mark.parametrize("native", ["1", "0"])
def test_auto_is_bf16_only_where_the_cpu_computes_it_natively(monkeypatch, native):
    monkeypatch.setenv(NATIVE_BF16_VARIABLE, native)
    assert cpu_has_native_bf16() is (native == "1")
    assert resolve_dtype("auto", "cpu") == ("bf16" if native == "1" else "fp32")
    assert resolve_dtype("fp32", "cpu") == "fp32" and resolve_dtype("bf16", "cpu") == "bf16"  # forced either way


def test_the_detection_reads_the_cpu_when_not_overridden(monkeypatch):
    monkeypatch.delenv(NATIVE_BF16_VARIABLE, raising=False)
    flags = open("/proc/cpuinfo").read().split()
    assert cpu_has_native_bf16() == any(flag in flags for flag in ("amx_bf16", "avx512_bf16"))


def test_streamed_frames_are_the_frames_read_video_gives(clips_dir):
    for name in CLIPS:
        path = clips_dir / name
        wanted = sorted(set(range(0, read_video(path, indices=[0])[2]["num_source_frames"], 3)))
        streamed = list(stream_video_frames(path, wanted))
        assert [index for index, _ in streamed] == wanted
        np.testing.assert_array_equal(np.stack([frame for _, frame in streamed]),
                                      read_video(path, indices=wanted)[0].numpy())


@pytest.mark.parametrize("name", CLIPS)
def test_windows_decoded_once_give_what_each_window_decoded_alone_gives(trained_output_dir, clips_dir, name):
    model, processor = inference.load_model(str(trained_output_dir))
    path = str(clips_dir / name)
    result = inference.predict_video(path, model, processor, window_seconds=1.0, stride_seconds=0.5, batch_size=3)
    spans = [(w["start_frame"], w["end_frame"]) for w in result["windows"]]
    assert len(spans) > 2
    labels = result["labels"]
    for indices, window in zip(window_frame_indices(spans, processor.num_frames), result["windows"]):
        frames, _, info = read_video(path, indices=indices)  # the reference: this window's frames alone
        prepared = processor.prepare_frames(frames, indices, num_source_frames=info["num_source_frames"])
        with torch.no_grad():
            logits = model(pixel_values=processor.finalize(prepared["frames"])["pixel_values"][None]).logits
        expected = logits.softmax(-1)[0].numpy()
        np.testing.assert_allclose([window["probabilities"][label] for label in labels], expected, rtol=0, atol=1e-6)
        assert [f["frame"] for f in window["frames"]] == indices.tolist()


@pytest.mark.parametrize("options", [EngineOptions(dtype="bf16"), EngineOptions(quantize="dynamic")],
                         ids=["bf16", "int8"])
def test_fast_engines_report_their_agreement_with_fp32_eager(trained_output_dir, clips_dir, options):
    model, processor = inference.load_model(str(trained_output_dir))
    engine = InferenceEngine(model, options)
    all_fp32, all_fast = [], []
    for name in CLIPS:
        result = inference.predict_video(str(clips_dir / name), engine, processor, window_seconds=1.0,
                                         stride_seconds=0.5, batch_size=4, report_agreement=True)
        reference = inference.predict_video(str(clips_dir / name), model, processor, window_seconds=1.0,
                                            stride_seconds=0.5, batch_size=4)
        fp32, fast = ([[w["probabilities"][label] for label in run["labels"]] for w in [run["clip"], *run["windows"]]]
                      for run in (reference, result))
        assert result["agreement"] == pytest.approx(agreement(fp32, fast), abs=1e-7)  # what it reports is so
        assert result["engine"]["dtype"] == ("fp32" if options.quantize == "dynamic" else "bf16")
        all_fp32 += fp32
        all_fast += fast
    fp32, fast = np.array(all_fp32), np.array(all_fast)
    difference = np.abs(fp32 - fast).max()
    assert 0 < difference < 0.05  # not fp32 itself, and close to it
    # Every window whose fp32 decision is not within that difference (top-2 margin > 2x) keeps its label; the
    # others are near-ties of this tiny model (the benchmark measures the base preset's agreement).
    top2 = np.sort(fp32, axis=-1)[:, -2:]
    decided = top2[:, 1] - top2[:, 0] > 2 * difference
    assert decided.mean() > 0.5 and (fp32.argmax(-1) == fast.argmax(-1))[decided].all()


def test_a_compiled_engine_gives_the_eager_outputs():
    from mtcae_test_utils import tiny_config

    from modeling_mtcae import MTCAEForVideoClassification

    torch.manual_seed(0)
    model = MTCAEForVideoClassification(tiny_config()).eval()
    pixel_values = torch.randn(2, model.config.num_frames, 3, *model.config.image_size)
    eager = InferenceEngine(model, EngineOptions(dtype="fp32"))(pixel_values=pixel_values)
    compiled = InferenceEngine(model, EngineOptions(dtype="fp32", compile=True))(pixel_values=pixel_values)
    for name in ("logits", "face_boxes", "face_landmarks"):
        torch.testing.assert_close(getattr(compiled, name), getattr(eager, name), rtol=1e-4, atol=1e-5)


def test_predict_records_how_the_model_ran_and_its_agreement(trained_output_dir, clips_dir, tmp_path, capsys):
    out = tmp_path / "out"
    assert predict.main([str(clips_dir / "single_face.mp4"), "--model", str(trained_output_dir), "--output_dir",
                         str(out), "--dtype", "bf16", "--report_agreement", "--window", "1"]) == 0
    result = json.loads((out / "single_face.timeline.json").read_text())
    assert result["engine"] == {"device": "cpu", "dtype": "bf16", "quantize": "none", "compile": False,
                                "backend": "pytorch"}
    assert result["agreement"]["windows"] == len(result["windows"]) + 1
    printed = capsys.readouterr().out
    assert "model run on cpu in bf16" in printed and "agreement with fp32 eager over" in printed


def test_int8_with_bf16_is_refused_naming_the_flags(capsys):
    with pytest.raises(SystemExit):
        predict.parse_args(["clip.mp4", "--model", "m", "--quantize", "dynamic", "--dtype", "bf16"])
    assert "--quantize dynamic" in capsys.readouterr().err


def test_the_onnx_export_matches_pytorch_and_predicts_through_onnxruntime(trained_output_dir, clips_dir, tmp_path,
                                                                          capsys):
    import onnxruntime

    from hub_scripts import export

    folder = tmp_path / "exported"
    assert export.main([str(trained_output_dir), str(folder), "--format", "onnx"]) == 0
    assert "checked with onnxruntime" in capsys.readouterr().out
    report = json.loads((folder / "export_report.json").read_text())
    assert report["outputs"] == ["logits", "face_boxes", "face_landmarks"] and report["tolerance"] == 1e-4
    assert max(report["max_abs_difference"].values()) <= 1e-4
    # Our own check, on a real clip's inputs and a batch size the export was not checked with.
    model, processor = inference.load_model(str(trained_output_dir))
    pixel_values = torch.cat([processor(str(clips_dir / name))["pixel_values"] for name in CLIPS])
    session = onnxruntime.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    got = session.run(None, {"pixel_values": pixel_values.numpy()})
    with torch.no_grad():
        expected = model(pixel_values=pixel_values)
    for value, name in zip(got, ("logits", "face_boxes", "face_landmarks")):
        np.testing.assert_allclose(value, getattr(expected, name).numpy(), rtol=0, atol=1e-4)
    out = tmp_path / "out"
    video = str(clips_dir / "single_face.mp4")
    assert predict.main([video, "--model", str(folder), "--backend", "onnxruntime", "--output_dir", str(out / "onnx"),
                         "--window", "1", "--quiet"]) == 0
    assert predict.main([video, "--model", str(trained_output_dir), "--dtype", "fp32", "--output_dir",
                         str(out / "torch"), "--window", "1", "--quiet"]) == 0
    onnx, eager = (json.loads((out / kind / "single_face.timeline.json").read_text()) for kind in ("onnx", "torch"))
    assert onnx["engine"]["backend"] == "onnxruntime" and len(onnx["windows"]) == len(eager["windows"]) > 1
    for a, b in zip([onnx["clip"], *onnx["windows"]], [eager["clip"], *eager["windows"]]):
        assert a["label"] == b["label"]
        np.testing.assert_allclose(list(a["probabilities"].values()), list(b["probabilities"].values()), atol=1e-5)
        np.testing.assert_allclose(a["frames"][0]["box"], b["frames"][0]["box"], atol=1e-4)


def test_an_export_folder_without_a_model_is_one_line(clips_dir, tmp_path, capsys):
    video = str(clips_dir / "single_face.mp4")
    assert predict.main([video, "--model", str(tmp_path), "--backend", "onnxruntime", "--output_dir",
                         str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "mtcae-export" in err


def test_the_pipeline_runs_the_remote_code_in_bf16_when_asked(trained_output_dir, clips_dir):
    from transformers import pipeline

    video = str(clips_dir / "single_face.mp4")
    fp32 = pipeline("video-classification", model=str(trained_output_dir), trust_remote_code=True)(video, top_k=7)
    classify = pipeline("video-classification", model=str(trained_output_dir), trust_remote_code=True,
                        dtype=torch.bfloat16)
    assert classify.model.dtype == torch.bfloat16
    bf16 = {item["label"]: item["score"] for item in classify(video, top_k=7)}
    assert max(abs(bf16[item["label"]] - item["score"]) for item in fp32) < 0.02
