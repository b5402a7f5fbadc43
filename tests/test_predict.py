"""mtcae-predict on real clips with a model trained by hub_scripts/train.py."""

from __future__ import annotations

import csv
import json
import shutil
from importlib.metadata import entry_points

import av
import numpy as np
import pytest
import torch
from PIL import Image

from hub_scripts import predict
from hub_scripts.inference import windows as inference
from processing.video_processing_mtcae import MTCAEVideoProcessor, detect_face_labels, read_video, sample_frame_indices


def _decode(path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def _frame_times(path) -> np.ndarray:
    """Reference: each frame's presentation time from a plain PyAV decode loop, from the first frame."""
    with av.open(str(path)) as container:
        times = np.array([frame.time for frame in container.decode(video=0)])
    return times - times[0]


def test_windows_cover_every_frame():
    assert inference.plan_windows(72, 30.0, 2.0, 1.0) == [(0, 60), (12, 72)]
    assert inference.plan_windows(72, 30.0, 3.0, 1.0) == [(0, 72)]  # shorter than a window
    assert inference.plan_windows(72, 30.0, 0, 1.0) == [(0, 72)]  # --window 0: the whole clip
    windows = inference.plan_windows(169, 26.4, 2.0, 0.5)
    assert windows[0] == (0, 53) and windows[-1] == (116, 169)
    assert all(b[0] - a[0] == 13 for a, b in zip(windows[:-2], windows[1:-1]))
    covered = np.zeros(169, bool)
    for start, end in windows:
        covered[start:end] = True
    assert covered.all()
    with pytest.raises(inference.PredictError, match="stride"):
        inference.plan_windows(100, 25.0, 2.0, 0)


def test_boxes_are_mapped_back_to_the_source_frame():
    # shortest_edge crops the sides of a wide frame: labels_to_source must undo labels_to_input.
    processor = MTCAEVideoProcessor(resize_mode="shortest_edge", size={"height": 112, "width": 112})
    boxes = np.array([[0.40, 0.20, 0.15, 0.50], [0.35, 0.30, 0.20, 0.40]])
    landmarks = np.random.default_rng(0).uniform(0.35, 0.55, (2, 5, 2))
    geometry = processor.frame_geometry((360, 640), [0, 1])
    mapped_boxes, mapped_landmarks, mask = geometry.labels_to_input(boxes, landmarks, [True, True])
    assert mask.all()
    back_boxes, back_landmarks = geometry.labels_to_source(mapped_boxes.numpy(), mapped_landmarks.numpy())
    np.testing.assert_allclose(back_boxes, boxes, atol=1e-6)
    np.testing.assert_allclose(back_landmarks, landmarks, atol=1e-6)


def test_aligned_boxes_are_mapped_back_to_the_source_frame():
    # face_align warps every frame differently: the per-frame inverse must undo the mapping.
    processor = MTCAEVideoProcessor(resize_mode="face_align", size={"height": 56, "width": 56})
    rng = np.random.default_rng(0)
    landmarks = rng.uniform(0.3, 0.6, (4, 5, 2))
    landmarks[:, :2, 1] = 0.35  # eyes level-ish above the nose, so each frame's warp is a plain similarity
    landmarks[:, 1, 0] = landmarks[:, 0, 0] + rng.uniform(0.1, 0.2, 4)
    landmarks[:, 2] = landmarks[:, :2].mean(1) + [0.0, 0.1]
    low, high = landmarks[:, :3].min(1) - 0.02, landmarks[:, :3].max(1) + 0.02  # a box that stays inside the input
    boxes = np.concatenate([low, high - low], -1)
    mask = np.array([True, True, False, True])
    labels = {"boxes": boxes, "landmarks": landmarks, "mask": mask}
    geometry = processor.frame_geometry((240, 320), np.arange(4), labels)
    assert geometry.mode == "face_align"
    mapped_boxes, mapped_landmarks, mapped_mask = geometry.labels_to_input(boxes, landmarks, mask)
    back_boxes, back_landmarks = geometry.labels_to_source(mapped_boxes.numpy(), mapped_landmarks.numpy())
    np.testing.assert_allclose(back_landmarks[mask], landmarks[mask], atol=1e-5)
    # A box comes back as the bounds of its warped bounds: it contains the original box, a little larger when rolled.
    assert np.all(back_boxes[mask, :2] <= boxes[mask, :2] + 1e-5)
    assert np.all(back_boxes[mask, :2] + back_boxes[mask, 2:] >= boxes[mask, :2] + boxes[mask, 2:] - 1e-5)
    assert np.all(back_boxes[mask, 2:] < 1.3 * boxes[mask, 2:])


@pytest.mark.parametrize("name,overlay", [("single_face.mp4", "overlay.gif"), ("face_noface.mov", "overlay.mp4")])
def test_predict_writes_timeline_and_overlay(trained_output_dir, clips_dir, tmp_path, capsys, name, overlay):
    video = clips_dir / name
    out = tmp_path / "out"
    argv = [str(video), "--model", str(trained_output_dir), "--output_dir", str(out), "--overlay",
            str(tmp_path / overlay)]
    if overlay.endswith(".gif"):
        argv += ["--overlay_max_side", "320"]
    assert predict.main(argv) == 0
    printed = capsys.readouterr().out
    stem = video.stem
    result = json.loads((out / f"{stem}.timeline.json").read_text())

    source_frames = _decode(video)
    n = len(source_frames)
    assert result["num_frames"] == n and (result["height"], result["width"]) == source_frames[0].shape[:2]
    labels = result["labels"]
    assert labels == ["neutral", "happy", "sad", "angry", "fearful", "disgust", "surprised"]
    windows = result["windows"]
    times = _frame_times(video)  # face_noface.mov is variable-rate: 72 frames at 30 fps, then 24 fps
    _, _, info = read_video(str(video), indices=[0])
    assert [(w["start_frame"], w["end_frame"]) for w in windows] == inference.plan_windows(
        n, result["fps"], 2.0, 1.0, frame_times=inference.frame_times(info))
    for window in windows:  # windows start every second by the clock and last 2 s
        assert window["start_time"] == pytest.approx(times[window["start_frame"]], abs=1e-6)
        assert window["start_time"] == pytest.approx(round(window["start_time"]), abs=0.05) or \
            window is windows[-1]
        assert all(f["time"] == pytest.approx(times[f["frame"]], abs=1e-6) for f in window["frames"])
    assert len(windows) >= 2 and f"{len(windows)} windows of 2 s" in printed
    for window in windows:
        assert abs(sum(window["probabilities"].values()) - 1.0) < 1e-5
        assert window["label"] == max(window["probabilities"], key=window["probabilities"].get)
        expected_indices = window["start_frame"] + sample_frame_indices(window["end_frame"] - window["start_frame"], 16)
        assert [f["frame"] for f in window["frames"]] == expected_indices.tolist()
        assert all(len(f["box"]) == 4 and np.asarray(f["landmarks"]).shape == (5, 2) for f in window["frames"])

    # The whole-clip result is what the pipeline computes (16 frames over the whole clip, faces found and
    # aligned by the processor itself, softmax); boxes come back through the inverse of that alignment.
    model, processor = inference.load_model(str(trained_output_dir))
    assert processor.resize_mode == "face_align" and processor.face_detector == "mtcnn"
    with torch.no_grad():
        output = model(**processor(str(video), return_tensors="pt"))
    expected = output.logits.softmax(-1)[0]
    got = torch.tensor([result["clip"]["probabilities"][label] for label in labels])
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)
    frames, indices, _ = read_video(str(video), num_frames=16)
    geometry = processor.frame_geometry(frames.shape[1:3], indices, detect_face_labels(frames))
    assert geometry.mode == "face_align"
    expected_boxes, expected_landmarks = geometry.labels_to_source(output.face_boxes[0].numpy(),
                                                                   output.face_landmarks[0].numpy())
    np.testing.assert_allclose([f["box"] for f in result["clip"]["frames"]], expected_boxes, atol=1e-5)
    np.testing.assert_allclose([f["landmarks"] for f in result["clip"]["frames"]], expected_landmarks, atol=1e-5)
    assert [f["frame"] for f in result["clip"]["frames"]] == sample_frame_indices(n, 16).tolist()

    with (out / f"{stem}.timeline.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == len(windows)
    assert float(rows[-1][f"p_{labels[0]}"]) == pytest.approx(windows[-1]["probabilities"][labels[0]], abs=1e-6)
    with Image.open(out / f"{stem}.timeline.png") as png:
        assert png.format == "PNG" and png.width > 300 and png.height > 200

    # The overlay decodes back with every frame, and the drawing is there.
    overlay_frames = _decode(tmp_path / overlay)
    assert len(overlay_frames) == n
    height, width = overlay_frames[0].shape[:2]
    if overlay.endswith(".gif"):
        assert max(height, width) == 320
    else:
        assert (height, width) == source_frames[0].shape[:2]
        panel = (slice(0, 60), slice(0, 100))  # the darkened probability panel, top left
        assert overlay_frames[0][panel].mean() < 0.7 * source_frames[0][panel].mean()
        middle = (slice(height // 3, 2 * height // 3), slice(width // 3, 2 * width // 3))
        difference = np.abs(overlay_frames[n // 2][middle].astype(int) - source_frames[n // 2][middle].astype(int))
        assert difference.mean() < 12  # away from the drawing, the frame is the source (up to compression)


def test_predict_on_a_pushed_repo_with_one_window(pushed_repo, clips_dir, tmp_path):
    hub, repo_id, revision = pushed_repo
    video, folder = clips_dir / "single_face.mp4", hub.folder(repo_id, revision)
    assert predict.main([str(video), "--model", str(folder), "--window", "0", "--output_dir", str(tmp_path),
                         "--quiet"]) == 0
    result = json.loads((tmp_path / "single_face.timeline.json").read_text())
    assert len(result["windows"]) == 1 and result["window_seconds"] is None
    assert (result["windows"][0]["start_frame"], result["windows"][0]["end_frame"]) == (0, 72)
    assert result["windows"][0]["probabilities"] == result["clip"]["probabilities"]
    with Image.open(tmp_path / "single_face.timeline.png") as png:  # a bar chart for one window
        assert png.format == "PNG"


def test_weights_that_do_not_fit_the_code_are_refused(trained_output_dir, tmp_path, capsys):
    from safetensors.torch import load_file, save_file

    folder = tmp_path / "model"
    shutil.copytree(trained_output_dir, folder, ignore=shutil.ignore_patterns("checkpoint-*"))
    weights = load_file(folder / "model.safetensors")
    weights.pop("expression_head.linear.weight")
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(inference.PredictError, match="expression_head.linear.weight"):
        inference.load_model(str(folder))


def test_bad_input_gives_clear_errors(tmp_path, capsys):
    text = tmp_path / "notes.mp4"
    text.write_text("not a video\n" * 20)
    audio = tmp_path / "audio.mkv"
    with av.open(str(audio), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
        frame.sample_rate = 8000
        for packet in stream.encode(frame):
            container.mux(packet)
    cases = {text: "not a readable video", audio: "no video stream", tmp_path / "missing.mp4": "does not exist"}
    for path, reason in cases.items():
        # The model is never loaded for a bad video, so a missing model folder does not matter here.
        assert predict.main([str(path), "--model", str(tmp_path / "no-model")]) == 2
        err = capsys.readouterr().err
        assert f"mtcae-predict: error: Cannot decode video '{path}'" in err and reason in err
    assert _exit_status([str(text), "--model", "m", "--overlay", str(tmp_path / "out.xyz")]) == 2
    assert "unsupported extension" in capsys.readouterr().err


def test_bad_model_gives_a_clear_error(clips_dir, tmp_path, capsys, fake_hub):
    assert predict.main([str(clips_dir / "single_face.mp4"), "--model", str(tmp_path / "no-model")]) == 2
    assert "cannot load the model" in capsys.readouterr().err


def _exit_status(argv: list[str]) -> int:
    """``predict.main``'s status: its return value, or the status of a usage error (a bad option value)."""
    try:
        return predict.main(argv)
    except SystemExit as exit:
        return exit.code


def _one_line_error(capsys, expected: str) -> str:
    """The error is one line (after the usage text, for a bad option value) and names the problem."""
    err = capsys.readouterr().err
    assert "Traceback" not in err and expected in err, err
    lines = err.strip().splitlines()
    errors = [line for line in lines if line.startswith("mtcae-predict: error:")]
    assert len(errors) == 1 and expected in errors[0], err
    assert lines[-1] == errors[0] and (len(lines) == 1 or lines[0].startswith("usage: mtcae-predict")), err
    return err


def test_model_whose_config_and_weights_disagree_gives_one_line(trained_output_dir, clips_dir, tmp_path, capsys):
    folder = tmp_path / "model"
    shutil.copytree(trained_output_dir, folder, ignore=shutil.ignore_patterns("checkpoint-*"))
    config = json.loads((folder / "config.json").read_text())
    config["decoder_hidden_size"] = config["decoder_hidden_size"] * 2  # the decoders' weights no longer fit
    (folder / "config.json").write_text(json.dumps(config))
    video = str(clips_dir / "single_face.mp4")
    assert predict.main([video, "--model", str(folder), "--output_dir", str(tmp_path / "out")]) == 2
    _one_line_error(capsys, "cannot load the model")


def test_truncated_weights_give_one_line(trained_output_dir, clips_dir, tmp_path, capsys):
    folder = tmp_path / "model"
    shutil.copytree(trained_output_dir, folder, ignore=shutil.ignore_patterns("checkpoint-*"))
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    video = str(clips_dir / "single_face.mp4")
    assert predict.main([video, "--model", str(folder), "--output_dir", str(tmp_path / "out")]) == 2
    _one_line_error(capsys, "cannot load the model")


@pytest.mark.parametrize("flags,expected", [
    (["--window", "nan"], "--window must be a finite number"),
    (["--window", "-1"], "--window must be a finite number"),
    (["--stride", "inf"], "--stride must be a finite number"),
    (["--batch_size", "0"], "--batch_size must be >= 1"),
    (["--test_spatial_mode", "flip", "--test_spatial_views", "3"], "gives 1 or 2 spatial views"),
    (["--device", "cuda:0"], "no CUDA GPU"),
    (["--device", "toaster"], "is not a device"),
])
def test_bad_flags_give_one_line_before_any_work(flags, expected, clips_dir, tmp_path, capsys):
    if "cuda" in flags[-1] and torch.cuda.is_available():
        pytest.skip("a GPU is present, so --device cuda is valid here")
    # The model folder does not exist: a flag error must come first, before the model or the video is read.
    assert _exit_status([str(clips_dir / "single_face.mp4"), "--model", str(tmp_path / "none"), *flags]) == 2
    _one_line_error(capsys, expected)


def test_several_videos_are_taken_unnamed_and_refuse_one_video_flags(clips_dir, tmp_path, capsys):
    videos = [str(clips_dir / "single_face.mp4"), str(clips_dir / "no_face.mp4")]
    args, views, _ = predict.parse_args([*videos, "--model", "m", "--test_temporal_views", "2"])
    assert args.video == videos and args.model == "m" and views.test_temporal_views == 2
    assert _exit_status([*videos, "--model", str(tmp_path / "none"), "--name", "x"]) == 2
    _one_line_error(capsys, "--overlay and --name take one video")


def test_test_views_average_the_whole_clip_and_leave_the_windows_single_view(trained_output_dir, clips_dir,
                                                                            tmp_path, capsys):
    from hub_scripts.inference.multiview import multiview_probabilities

    video, out = clips_dir / "single_face.mp4", tmp_path / "out"
    flags = ["--model", str(trained_output_dir), "--output_dir", str(out), "--window", "1", "--stride", "1"]
    assert predict.main([str(video), *flags, "--name", "single"]) == 0
    assert predict.main([str(video), *flags, "--test_temporal_views", "2", "--test_spatial_views", "2"]) == 0
    assert "whole clip (4 views: 2 temporal x 2 spatial (crops)):" in capsys.readouterr().out
    single = json.loads((out / "single.timeline.json").read_text())
    result = json.loads((out / "single_face.timeline.json").read_text())
    assert single["views"] == {"test_temporal_views": 1, "test_spatial_views": 1, "test_spatial_mode": "crops"}
    assert result["views"] == {"test_temporal_views": 2, "test_spatial_views": 2, "test_spatial_mode": "crops"}

    # The whole clip: the view average that hub_scripts.multiview computes on the same model and clip.
    model, processor = inference.load_model(str(trained_output_dir))
    expected, per_view = multiview_probabilities(model, processor, str(video), 2, 2, "crops")
    labels = result["labels"]
    got = np.array([result["clip"]["probabilities"][label] for label in labels])
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)
    np.testing.assert_allclose(result["clip"]["view_probabilities"], per_view, rtol=0, atol=1e-5)
    assert result["clip"]["label"] == labels[int(expected.argmax())]
    assert not np.allclose(got, [single["clip"]["probabilities"][label] for label in labels], atol=1e-7)
    # The windows (several, 1 s each) are the single-view ones.
    assert len(result["windows"]) > 1 and result["windows"] == single["windows"]


def test_outputs_that_cannot_be_written_are_refused_before_any_work(clips_dir, tmp_path, capsys):
    a_file = tmp_path / "taken"
    a_file.write_text("not a folder")
    video, model = str(clips_dir / "single_face.mp4"), str(tmp_path / "none")
    assert predict.main([video, "--model", model, "--output_dir", str(a_file)]) == 2
    _one_line_error(capsys, f"--output_dir {a_file} is a file, not a folder")
    assert predict.main([video, "--model", model, "--output_dir", str(a_file / "sub")]) == 2
    _one_line_error(capsys, "--output_dir")
    assert predict.main([video, "--model", model, "--output_dir", str(tmp_path), "--overlay",
                         str(a_file / "overlay.mp4")]) == 2
    _one_line_error(capsys, "--overlay's folder")
    (tmp_path / "dir.mp4").mkdir()
    assert predict.main([video, "--model", model, "--output_dir", str(tmp_path), "--overlay",
                         str(tmp_path / "dir.mp4")]) == 2
    _one_line_error(capsys, "is a folder")


def test_a_bad_video_among_several_is_reported_and_the_others_are_predicted(trained_output_dir, clips_dir,
                                                                             tmp_path, capsys):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"not a video at all" * 100)
    videos = [str(clips_dir / "single_face.mp4"), str(bad), str(clips_dir / "no_face.mp4")]
    out = tmp_path / "out"
    assert predict.main([*videos, "--model", str(trained_output_dir), "--output_dir", str(out), "--quiet",
                         "--window", "0"]) == 2
    assert (out / "single_face.timeline.json").is_file() and (out / "no_face.timeline.json").is_file()
    assert not (out / "broken.timeline.json").exists()
    err = capsys.readouterr().err
    assert f"Cannot decode video '{bad}'" in err and "1 of 3 videos failed" in err and "Traceback" not in err


def test_window_times_come_from_frame_timestamps_on_a_variable_frame_rate_clip(trained_output_dir, tmp_path):
    from fractions import Fraction

    # 30 frames at 30 fps, then 20 at 10 fps: 3 s, an average of 16.7 fps that no frame runs at.
    times = np.concatenate([np.arange(30) / 30, 1 + np.arange(1, 21) / 10])
    path = tmp_path / "vfr.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.codec_context.time_base = stream.time_base = Fraction(1, 1000)
        for i, t in enumerate(times):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), i * 4, np.uint8), format="rgb24")
            frame.pts, frame.time_base = int(round(t * 1000)), Fraction(1, 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    reference = _frame_times(path)
    np.testing.assert_allclose(reference, times, atol=1e-3)
    model, processor = inference.load_model(str(trained_output_dir))
    result = inference.predict_video(path, model, processor, window_seconds=1.0, stride_seconds=1.0)
    assert result["duration"] == pytest.approx(3.1, abs=1e-3)
    spans = [(w["start_frame"], w["end_frame"]) for w in result["windows"]]
    # One second each by the clock (30 frames, then 9 or 10), not 17 frames each; the last one ends the clip.
    assert spans == [(0, 30), (30, 39), (39, 49), (40, 50)]
    for window in result["windows"]:
        assert window["start_time"] == pytest.approx(reference[window["start_frame"]], abs=1e-6)
        for frame in window["frames"]:
            assert frame["time"] == pytest.approx(reference[frame["frame"]], abs=1e-6)


def test_console_scripts_are_installed():
    scripts = {ep.name: ep.value for ep in entry_points(group="console_scripts")}
    assert scripts.get("mtcae-predict") == "hub_scripts.predict:main"
    assert scripts.get("mtcae-push-to-hub") == "hub_scripts.push_to_hub:main"


def test_videos_with_the_same_file_name_get_a_timeline_each(trained_output_dir, clips_dir, tmp_path, capsys):
    for folder, source in (("a", "single_face.mp4"), ("b", "no_face.mp4")):  # DFEW / per-actor layouts repeat names
        (tmp_path / folder).mkdir()
        shutil.copy(clips_dir / source, tmp_path / folder / "clip.mp4")
    shutil.copy(clips_dir / "face_noface.mov", tmp_path / "a" / "clip.mov")
    videos = [str(tmp_path / "a" / "clip.mp4"), str(tmp_path / "b" / "clip.mp4"), str(tmp_path / "a" / "clip.mov"),
              str(tmp_path / "b" / ".." / "b" / "clip.mp4")]  # the last: b's clip again, given another way
    out = tmp_path / "out"
    assert predict.main([*videos, "--model", str(trained_output_dir), "--output_dir", str(out), "--quiet",
                         "--window", "0"]) == 0
    written = sorted(path.name for path in out.glob("*.timeline.json"))
    assert written == ["a__clip.mov.timeline.json", "a__clip.mp4.timeline.json", "b__clip.timeline.json"]
    sources = {json.loads((out / name).read_text())["video"] for name in written}
    assert sources == {videos[0], videos[1], videos[2]}  # each result is its own video's
    assert capsys.readouterr().out.count("timeline json:") == 3  # b's clip predicted once


def test_videos_whose_output_names_would_still_clash_are_refused_before_any_work(tmp_path, capsys):
    videos = [tmp_path / "a__b" / "c.mp4", tmp_path / "a" / "b" / "c.mp4"]  # both would be a__b__c
    for video in videos:
        video.parent.mkdir(parents=True)
        video.write_bytes(b"never read")
    assert predict.main([*map(str, videos), "--model", str(tmp_path / "none")]) == 2
    _one_line_error(capsys, "would write results under one name")
