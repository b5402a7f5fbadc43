"""MTCAEVideoProcessor, frame sampling and decoding, checked against independent references."""

from __future__ import annotations

import json

import av
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from processing.video_processing_mtcae import (
    MTCAEVideoProcessor,
    VideoDecodeError,
    read_video,
    sample_frame_indices,
)

MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = 0.225
# The processor resizes uint8 frames with torch's fixed-point kernel; the reference resizes floats
# and rounds, so a pixel may differ by one uint8 step.
ONE_STEP = 1.0 / (255 * STD) + 1e-5


def decode_all_frames(path) -> np.ndarray:
    """Reference decoder: every frame, in order, converted to RGB."""
    with av.open(str(path)) as container:
        return np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])


def reference_pixel_values(frames: np.ndarray, size=(224, 224)) -> torch.Tensor:
    video = torch.from_numpy(frames).permute(0, 3, 1, 2).float()
    video = F.interpolate(video, size=size, mode="bilinear", antialias=True, align_corners=False)
    video = video.round().clamp(0, 255)
    return (video / 255.0 - MEAN) / STD


def write_clip(path, num_frames=20, width=96, height=64, codec="libx264", rate=25, pix_fmt="yuv420p", draw=None):
    """A small synthetic clip; ``draw(i) -> (H, W, 3) uint8`` gives frame i (a moving gradient by default)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        for i in range(num_frames):
            if draw is None:
                frame = np.zeros((height, width, 3), np.uint8)
                frame[..., 0] = (np.arange(width) * 2 + i * 9) % 256
                frame[..., 1] = (np.arange(height)[:, None] * 3 + i * 5) % 256
                frame[..., 2] = i * 10 % 256
            else:
                frame = draw(i)
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


# ---- sampling ----------------------------------------------------------------------------------


def test_uniform_sampling_takes_segment_centres_over_the_whole_clip():
    indices = sample_frame_indices(72, 16)
    expected = np.floor((np.arange(16) + 0.5) * 72 / 16).astype(np.int64)
    np.testing.assert_array_equal(indices, expected)
    assert indices.dtype == np.int64
    assert indices[-1] >= 72 - 72 // 16  # reaches the end, not "the first half second"


def test_stride_sampling_is_the_notebooks():
    np.testing.assert_array_equal(sample_frame_indices(100, 16, "stride"), np.arange(16) * 6)
    np.testing.assert_array_equal(sample_frame_indices(10, 16, "stride"), np.minimum(np.arange(16), 9))


def test_jitter_stays_inside_segments_and_is_reproducible():
    n, t = 95, 16
    a = sample_frame_indices(n, t, jitter=True, generator=np.random.default_rng(0))
    b = sample_frame_indices(n, t, jitter=True, generator=np.random.default_rng(0))
    np.testing.assert_array_equal(a, b)
    starts, ends = np.arange(t) * n // t, (np.arange(t) + 1) * n // t
    assert np.all(a >= starts) and np.all(a < ends)
    draws = {tuple(sample_frame_indices(n, t, jitter=True, generator=np.random.default_rng(s))) for s in range(5)}
    assert len(draws) > 1


def test_short_clips_repeat_frames():
    indices = sample_frame_indices(5, 16)
    assert len(indices) == 16 and indices.min() == 0 and indices.max() == 4
    assert np.all(np.diff(indices) >= 0)
    np.testing.assert_array_equal(sample_frame_indices(1, 16, jitter=True), np.zeros(16))
    with pytest.raises(ValueError):
        sample_frame_indices(0, 16)
    with pytest.raises(ValueError):
        sample_frame_indices(10, 16, mode="first_half_second")


# ---- decoding ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["single_face.mp4", "face_noface.mov"])
@pytest.mark.parametrize("mode", ["uniform", "stride"])
def test_read_video_equals_decoding_every_frame(clips_dir, name, mode):
    reference = decode_all_frames(clips_dir / name)
    frames, indices, info = read_video(clips_dir / name, mode=mode)
    assert info["num_source_frames"] == len(reference)
    assert (info["height"], info["width"]) == reference.shape[1:3]
    assert info["fps"] > 0
    np.testing.assert_array_equal(indices, sample_frame_indices(len(reference), 16, mode))
    assert frames.dtype == torch.uint8 and frames.shape == (16, *reference.shape[1:])
    np.testing.assert_array_equal(frames.numpy(), reference[indices])


def test_read_video_counts_frames_of_an_edit_listed_mp4(clips_dir):
    # no_face.mp4 holds 98 packets, 3 of them discarded by its edit list: 95 frames decode.
    reference = decode_all_frames(clips_dir / "no_face.mp4")
    frames, indices, info = read_video(clips_dir / "no_face.mp4")
    assert info["num_source_frames"] == len(reference) == 95
    np.testing.assert_array_equal(frames.numpy(), reference[indices])


def test_read_video_seeks_to_keyframes(tmp_path):
    # Keyframe every 4 frames and sparse indices: the decoder must seek and still return the exact frames.
    path = tmp_path / "gop4.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.codec_context.gop_size = 4
        for i in range(80):
            frame = np.full((48, 64, 3), (i * 3) % 256, np.uint8)
            frame[:, : i % 64] = 255 - frame[:, : i % 64]
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    reference = decode_all_frames(path)
    indices = np.array([1, 2, 30, 31, 77, 77, 79])
    frames, got, _ = read_video(path, indices=indices)
    np.testing.assert_array_equal(got, indices)
    np.testing.assert_array_equal(frames.numpy(), reference[indices])


@pytest.mark.parametrize(
    "suffix,codec,pix_fmt",
    [(".avi", "mpeg4", "yuv420p"), (".mkv", "libx264", "yuv420p"), (".flv", "flv", "yuv420p"),
     (".mov", "mpeg4", "yuv420p")],
)
def test_containers(tmp_path, suffix, codec, pix_fmt):
    path = write_clip(tmp_path / f"clip{suffix}", num_frames=24, codec=codec, pix_fmt=pix_fmt)
    reference = decode_all_frames(path)
    out = MTCAEVideoProcessor()(str(path), return_frame_indices=True)
    assert out["pixel_values"].shape == (1, 16, 3, 224, 224)
    indices = out["frame_indices"][0].numpy()
    torch.testing.assert_close(
        out["pixel_values"][0], reference_pixel_values(reference[indices]), atol=ONE_STEP, rtol=0
    )


def test_bad_files_raise_errors_that_name_the_file(tmp_path):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 50)
    audio_only = tmp_path / "audio.mkv"
    with av.open(str(audio_only), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
        frame.sample_rate = 8000
        for packet in stream.encode(frame):
            container.mux(packet)
    cases = {
        tmp_path / "missing.mp4": "does not exist",
        empty: "empty",
        text: "not a readable video",
        audio_only: "no video stream",
        tmp_path: "no image files",  # a folder is read as a clip of frame images (DFEW, MAFW): it has none
    }
    for path, reason in cases.items():
        with pytest.raises(VideoDecodeError, match=reason) as info:
            MTCAEVideoProcessor()(str(path))
        assert str(path) in str(info.value)
        assert isinstance(info.value, ValueError)


def test_short_file_is_padded_with_a_warning(tmp_path):
    path = write_clip(tmp_path / "short.mp4", num_frames=5)
    with pytest.warns(UserWarning, match="only 5 frames"):
        out = MTCAEVideoProcessor()(str(path), return_frame_indices=True)
    assert out["pixel_values"].shape == (1, 16, 3, 224, 224)
    assert out["frame_indices"][0].tolist() == sample_frame_indices(5, 16).tolist()


# ---- processor output against an independent reference ---------------------------------------


@pytest.mark.parametrize("name", ["single_face.mp4", "face_noface.mov"])
def test_processor_matches_reference(clips_dir, name):
    processor = MTCAEVideoProcessor()
    out = processor(str(clips_dir / name), return_frame_indices=True)
    pixel_values = out["pixel_values"]
    assert pixel_values.shape == (1, 16, 3, 224, 224) and pixel_values.dtype == torch.float32
    reference_frames = decode_all_frames(clips_dir / name)
    indices = sample_frame_indices(len(reference_frames), 16)
    np.testing.assert_array_equal(out["frame_indices"][0].numpy(), indices)
    reference = reference_pixel_values(reference_frames[indices])
    difference = (pixel_values[0] - reference).abs()
    assert difference.max() <= ONE_STEP
    assert difference.mean() < 0.1 * ONE_STEP


def test_in_memory_inputs_match_the_file_path(clips_dir):
    processor = MTCAEVideoProcessor()
    path = str(clips_dir / "single_face.mp4")
    from_path = processor(path)["pixel_values"]
    frames = decode_all_frames(path)
    from PIL import Image

    inputs = {
        "numpy THWC": (frames, {}),
        "torch TCHW": (torch.from_numpy(frames).permute(0, 3, 1, 2), {}),
        "PIL list": ([Image.fromarray(f) for f in frames], {}),
        "float [0, 255]": (frames.astype(np.float32), {}),
        # transformers' rule: frames already in [0, 1] are passed with do_rescale=False.
        "float [0, 1]": (torch.from_numpy(frames).float() / 255.0, {"do_rescale": False}),
    }
    for name, (video, kwargs) in inputs.items():
        out = processor(video, **kwargs)["pixel_values"]
        torch.testing.assert_close(out, from_path, atol=ONE_STEP, rtol=0, msg=name)
    batch = processor([path, frames])["pixel_values"]
    assert batch.shape == (2, 16, 3, 224, 224)
    torch.testing.assert_close(batch[1], from_path[0], atol=ONE_STEP, rtol=0)


def test_grayscale_rgba_and_odd_sizes():
    processor = MTCAEVideoProcessor()
    rng = np.random.default_rng(0)
    gray = rng.integers(0, 256, (20, 37, 53), dtype=np.uint8)
    out_gray = processor(gray)["pixel_values"]
    rgb = np.repeat(gray[..., None], 3, axis=-1)
    torch.testing.assert_close(out_gray, processor(rgb)["pixel_values"])
    rgba = np.concatenate([rgb, np.full((20, 37, 53, 1), 7, np.uint8)], axis=-1)
    torch.testing.assert_close(processor(rgba)["pixel_values"], out_gray)
    one_channel = torch.from_numpy(gray[:, None])  # (T, 1, H, W)
    torch.testing.assert_close(processor(one_channel)["pixel_values"], out_gray)
    with pytest.warns(UserWarning, match="repeating frames"):
        single = processor(gray[0])["pixel_values"]  # one (H, W) frame
    assert single.shape == (1, 16, 3, 224, 224)


def test_bad_arrays_raise_clear_errors():
    processor = MTCAEVideoProcessor()
    with pytest.raises(ValueError, match="empty"):
        processor(np.zeros((0, 32, 32, 3), np.uint8))
    with pytest.raises(ValueError, match="shape"):
        processor(np.zeros((2, 3, 32, 32, 3, 1), np.uint8))
    with pytest.raises(ValueError, match="channels"):
        processor(np.zeros((4, 7, 32, 32), np.uint8))
    with pytest.raises(TypeError):
        processor(12345)
    with pytest.raises(ValueError, match="resize_mode"):
        MTCAEVideoProcessor(resize_mode="stretch")


def test_normalisation_and_sampling_are_configurable():
    video = np.full((32, 20, 30, 3), 255, np.uint8)
    video[::2] = 0
    processor = MTCAEVideoProcessor(image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5],
                                    size={"height": 16, "width": 16})
    out = processor(video, return_frame_indices=True)
    assert out["pixel_values"].shape == (1, 16, 3, 16, 16)
    np.testing.assert_array_equal(out["frame_indices"][0].numpy(), sample_frame_indices(32, 16))
    expected = torch.where(out["frame_indices"][0] % 2 == 0, -1.0, 1.0)
    torch.testing.assert_close(out["pixel_values"][0, :, 0, 0, 0], expected)
    stride = processor(video, sampling_mode="stride", num_frames=8, return_frame_indices=True)
    assert stride["frame_indices"][0].tolist() == list(range(0, 32, 4))
    a = processor(video, temporal_jitter=True, generator=np.random.default_rng(1), return_frame_indices=True)
    b = processor(video, temporal_jitter=True, generator=np.random.default_rng(1), return_frame_indices=True)
    assert a["frame_indices"].tolist() == b["frame_indices"].tolist()


# ---- face-label geometry: labels follow the pixels -------------------------------------------


def _box_video(height=180, width=320, box=(100, 40, 60, 60), num_frames=16):
    x, y, w, h = box
    video = np.zeros((num_frames, height, width, 3), np.uint8)
    video[:, y : y + h, x : x + w] = 255
    boxes = np.tile([[x / width, y / height, w / width, h / height]], (num_frames, 1))
    landmarks = np.tile(
        np.array([[x + 0.3 * w, y + 0.4 * h], [x + 0.7 * w, y + 0.4 * h], [x + 0.5 * w, y + 0.6 * h],
                  [x + 0.35 * w, y + 0.8 * h], [x + 0.65 * w, y + 0.8 * h]]) / [width, height],
        (num_frames, 1, 1),
    )
    mask = np.ones(num_frames, bool)
    mask[3] = False
    return video, {"boxes": boxes, "landmarks": landmarks, "mask": mask}


@pytest.mark.parametrize("resize_mode", ["full_frame", "shortest_edge", "face_crop", "face_align"])
def test_face_labels_follow_the_pixels(resize_mode):
    video, labels = _box_video()
    processor = MTCAEVideoProcessor(resize_mode=resize_mode)
    out = processor(video, face_labels=[labels])
    boxes, landmarks, mask = out["face_boxes"][0], out["face_landmarks"][0], out["face_mask"][0]
    assert boxes.shape == (16, 4) and landmarks.shape == (16, 5, 2) and mask.shape == (16,)
    assert mask.tolist() == labels["mask"].tolist()
    assert torch.all(boxes[3] == 0) and torch.all(landmarks[3] == 0)
    bright = out["pixel_values"][0, 0, 0] > 0  # the white square in model-input pixels
    rows, cols = torch.nonzero(bright, as_tuple=True)
    size = bright.shape[0]
    x, y, w, h = (boxes[0] * size).tolist()
    # The square's edges agree with the mapped box to within the resize blur (2 pixels).
    assert abs(cols.min().item() - x) <= 2 and abs(cols.max().item() + 1 - (x + w)) <= 2
    assert abs(rows.min().item() - y) <= 2 and abs(rows.max().item() + 1 - (y + h)) <= 2
    # Landmarks keep their place relative to the box (face_align: up to the template's slight roll,
    # which makes the warped square's bounding box a little larger).
    relative = (landmarks[0] - boxes[0, :2]) / boxes[0, 2:]
    atol = 5e-3 if resize_mode == "face_align" else 1e-4
    torch.testing.assert_close(relative[0], torch.tensor([0.3, 0.4]), atol=atol, rtol=0)
    if resize_mode in ("face_crop", "face_align"):
        assert w > 0.4 * size  # the face fills the crop
    assert ((boxes >= 0) & (boxes <= 1)).all() and ((landmarks >= 0) & (landmarks <= 1)).all()


def test_random_flip_mirrors_pixels_and_labels_together():
    video, labels = _box_video(box=(40, 50, 60, 60))  # off-centre square, so a mirror moves it
    processor = MTCAEVideoProcessor(size={"height": 112, "width": 112})
    plain = processor(video, face_labels=[labels])
    flips = []
    for seed in range(12):
        out = processor(video, face_labels=[labels], random_flip=True, generator=np.random.default_rng(seed))
        flipped = not torch.equal(out["pixel_values"], plain["pixel_values"])
        flips.append(flipped)
        if not flipped:
            torch.testing.assert_close(out["face_landmarks"], plain["face_landmarks"])
            continue
        torch.testing.assert_close(out["pixel_values"], plain["pixel_values"].flip(-1))
        boxes, landmarks, mask = out["face_boxes"][0], out["face_landmarks"][0], out["face_mask"][0]
        expected_x = 1 - plain["face_boxes"][0, :, 0] - plain["face_boxes"][0, :, 2]
        torch.testing.assert_close(boxes[mask, 0], expected_x[mask])
        # "Left eye" is still the one with the smaller image x, and it is the mirror of the old right eye.
        assert torch.all(landmarks[mask, 0, 0] < landmarks[mask, 1, 0])
        torch.testing.assert_close(landmarks[mask, 0, 0], 1 - plain["face_landmarks"][0, mask, 1, 0])
        assert torch.all(boxes[~mask] == 0) and torch.all(landmarks[~mask] == 0)
        # The mirrored box still sits on the mirrored square.
        cols = torch.nonzero(out["pixel_values"][0, 0, 0] > 0, as_tuple=True)[1]
        assert abs(cols.min().item() - boxes[0, 0].item() * 112) <= 2
    assert 2 <= sum(flips) <= 10  # about half of the draws flip
    # Same generator seed, same draw: the augmentation is reproducible.
    again = processor(video, face_labels=[labels], random_flip=True, generator=np.random.default_rng(0))
    first = processor(video, face_labels=[labels], random_flip=True, generator=np.random.default_rng(0))
    torch.testing.assert_close(again["pixel_values"], first["pixel_values"])


def _dots_video(landmarks_px: np.ndarray, height=240, width=320) -> np.ndarray:
    """Black frames with a bright 5x5 dot at each of the first 3 landmarks (eyes, nose) of each frame."""
    video = np.zeros((len(landmarks_px), height, width, 3), np.uint8)
    for t, points in enumerate(landmarks_px):
        for x, y in points[:3]:
            video[t, int(round(y)) - 2 : int(round(y)) + 3, int(round(x)) - 2 : int(round(x)) + 3] = 255
    return video


def test_face_align_puts_eyes_and_nose_on_the_template():
    from processing.face_geometry_mtcae import FACE_ALIGN_TEMPLATE

    # A face on the template, rotated, scaled and moved differently in every frame: alignment undoes it.
    rng = np.random.default_rng(0)
    size, padding = 112, 0.25
    template = (FACE_ALIGN_TEMPLATE - 0.5) / (1 + padding) + 0.5  # normalised output coordinates
    landmarks_px = []
    for _ in range(16):
        angle, scale = rng.uniform(-0.5, 0.5), rng.uniform(0.6, 1.4)
        rotation = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        landmarks_px.append((template * size - size / 2) @ rotation.T + rng.uniform([100, 90], [220, 150]))
    landmarks_px = np.stack(landmarks_px)
    video = _dots_video(landmarks_px)
    mask = np.ones(16, bool)
    mask[5] = False  # no face in this frame: it reuses the nearest labelled frame's warp
    labels = {"boxes": np.tile([0.3, 0.3, 0.3, 0.3], (16, 1)), "landmarks": landmarks_px / [320, 240], "mask": mask}
    processor = MTCAEVideoProcessor(resize_mode="face_align", size={"height": size, "width": size},
                                    face_align_padding=padding, do_normalize=False, do_rescale=False)
    out = processor(video, face_labels=[labels])
    aligned = out["face_landmarks"][0].numpy()
    assert np.abs(aligned[mask][:, :3] - template[:3]).max() < 1e-5
    assert out["face_mask"][0].tolist() == mask.tolist() and np.all(aligned[5] == 0)
    # The pixels moved the same way: every bright dot is now centred on its template point.
    pixels = out["pixel_values"][0, :, 0].numpy()  # (T, H, W), red channel
    for t in np.flatnonzero(mask):
        for x, y in template[:3] * size:
            window = pixels[t, int(y) - 4 : int(y) + 5, int(x) - 4 : int(x) + 5]
            assert window.max() > 100, f"frame {t}: no dot near the template point ({x:.0f}, {y:.0f})"
        assert pixels[t].mean() < 25  # and nothing else bright
    # Frame 5 got frame 4's or 6's warp: its dots land within the two faces' motion of the template.
    assert pixels[5].max() > 100


def test_face_align_without_faces_falls_back_to_the_full_frame():
    video = np.random.default_rng(0).integers(0, 255, (16, 60, 80, 3), dtype=np.uint8)
    processor = MTCAEVideoProcessor(resize_mode="face_align", size={"height": 56, "width": 56})
    full = MTCAEVideoProcessor(resize_mode="full_frame", size={"height": 56, "width": 56})(video)["pixel_values"]
    no_face = {"boxes": np.zeros((16, 4)), "landmarks": np.zeros((16, 5, 2)), "mask": np.zeros(16, bool)}
    degenerate = dict(no_face, mask=np.ones(16, bool))  # "faces" whose points all coincide cannot be aligned
    for kwargs in ({"face_labels": [no_face]}, {"face_labels": [degenerate]}, {}):
        with pytest.warns(UserWarning, match="face_align"):
            out = processor(video, **kwargs)
        torch.testing.assert_close(out["pixel_values"], full)


def test_label_mapping_full_frame_is_identity_and_crop_clips():
    processor = MTCAEVideoProcessor()
    boxes = np.array([[0.1, 0.2, 0.3, 0.4]])
    landmarks = np.full((1, 5, 2), 0.25)
    geometry = processor.frame_geometry((360, 640), [0])
    b, lm, m = geometry.labels_to_input(boxes, landmarks, [True])
    torch.testing.assert_close(b, torch.tensor(boxes, dtype=torch.float32))
    torch.testing.assert_close(lm, torch.tensor(landmarks, dtype=torch.float32))
    # A face off the centre crop of a wide frame is dropped from the mask.
    geometry = processor.frame_geometry((360, 640), [0], resize_mode="shortest_edge")
    b, lm, m = geometry.labels_to_input([[0.0, 0.1, 0.1, 0.2]], np.full((1, 5, 2), 0.05), [True])
    assert not m[0] and torch.all(b == 0)


def test_face_labels_for_every_source_frame_or_with_indices():
    video, labels = _box_video(num_frames=40)
    processor = MTCAEVideoProcessor()
    every = processor(video, face_labels=[labels], return_frame_indices=True)
    indices = every["frame_indices"][0].numpy()
    with_indices = {
        "frame_indices": indices,
        "boxes": labels["boxes"][indices],
        "landmarks": labels["landmarks"][indices],
        "mask": labels["mask"][indices],
    }
    again = processor(video, face_labels=with_indices)
    for key in ("face_boxes", "face_landmarks", "face_mask"):
        torch.testing.assert_close(again[key], every[key])
    assert every["face_mask"][0].tolist() == labels["mask"][indices].tolist()
    with pytest.raises(ValueError, match="face labels hold"):
        processor(video, face_labels=[{k: v[:7] for k, v in labels.items()}])


# ---- save / load, Auto classes, remote code, pipeline ------------------------------------------


def test_save_load_and_auto_class(tmp_path):
    from transformers import AutoVideoProcessor

    processor = MTCAEVideoProcessor(resize_mode="shortest_edge", sampling_mode="stride", image_std=[0.2, 0.3, 0.4])
    processor.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "video_preprocessor_config.json").read_text())
    assert saved["auto_map"]["AutoVideoProcessor"] == "video_processing_mtcae.MTCAEVideoProcessor"
    assert (tmp_path / "video_processing_mtcae.py").exists()
    loaded = MTCAEVideoProcessor.from_pretrained(tmp_path)
    auto = AutoVideoProcessor.from_pretrained(tmp_path, trust_remote_code=True)
    for other in (loaded, auto):
        assert type(other).__name__ == "MTCAEVideoProcessor"
        assert other.resize_mode == "shortest_edge" and other.sampling_mode == "stride"
        assert tuple(other.image_std) == (0.2, 0.3, 0.4)
        assert other.to_dict() == processor.to_dict()


def test_auto_video_processor_maps_the_model_type(tmp_path):
    import processing

    assert processing.register_auto_classes()
    from transformers import AutoVideoProcessor
    from transformers.models.auto.video_processing_auto import VIDEO_PROCESSOR_MAPPING

    from modeling_mtcae.configuration_mtcae import MTCAEConfig

    assert VIDEO_PROCESSOR_MAPPING[MTCAEConfig]["torchvision"] is MTCAEVideoProcessor
    # A folder whose processor config names no class: AutoVideoProcessor finds it through config.json.
    MTCAEConfig().save_pretrained(tmp_path)
    (tmp_path / "video_preprocessor_config.json").write_text(json.dumps({"num_frames": 16}))
    assert isinstance(AutoVideoProcessor.from_pretrained(tmp_path), MTCAEVideoProcessor)
    # A folder written by save_pretrained (auto_map + class name) loads the installed class too.
    MTCAEVideoProcessor(num_frames=8).save_pretrained(tmp_path)
    loaded = AutoVideoProcessor.from_pretrained(tmp_path)
    assert type(loaded) is MTCAEVideoProcessor and loaded.num_frames == 8


def test_remote_code_loads_without_this_package(tmp_path, clips_dir):
    from mtcae_test_utils import run_isolated

    saved = tmp_path / "saved"
    processor = MTCAEVideoProcessor()
    processor.save_pretrained(saved)
    clip = str(clips_dir / "single_face.mp4")
    expected = processor(clip)["pixel_values"]
    result_file = tmp_path / "remote.pt"
    run_isolated(
        f"""
        import os
        os.environ["HF_MODULES_CACHE"] = {str(tmp_path / "modules")!r}
        import torch
        from transformers import AutoVideoProcessor
        processor = AutoVideoProcessor.from_pretrained({str(saved)!r}, trust_remote_code=True)
        assert type(processor).__module__.startswith("transformers_modules"), type(processor).__module__
        torch.save(processor({clip!r})["pixel_values"], {str(result_file)!r})
        """,
        cwd=tmp_path,
    )
    torch.testing.assert_close(torch.load(result_file), expected, atol=0, rtol=0)


def test_video_classification_pipeline_samples_the_whole_clip(clips_dir):
    from transformers import VideoMAEConfig, VideoMAEForVideoClassification, pipeline

    config = VideoMAEConfig(
        image_size=224, patch_size=16, num_frames=16, tubelet_size=2, hidden_size=16, num_hidden_layers=1,
        num_attention_heads=2, intermediate_size=32, num_labels=3, use_mean_pooling=True,
    )
    model = VideoMAEForVideoClassification(config).eval()
    processor = MTCAEVideoProcessor()
    seen = []
    original = processor.preprocess

    def spy(videos, **kwargs):
        out = original(videos, return_frame_indices=True, **kwargs)
        seen.append(out.pop("frame_indices"))
        return out

    processor.preprocess = spy
    classifier = pipeline("video-classification", model=model, video_processor=processor)
    result = classifier(str(clips_dir / "single_face.mp4"), top_k=2)
    assert len(result) == 2 and {"label", "score"} <= set(result[0])
    assert seen[0][0].tolist() == sample_frame_indices(72, 16).tolist()


@pytest.mark.parametrize("name", ["single_face.mp4", "face_noface.mov"])
def test_a_shared_reformatter_gives_the_pixels_of_a_plain_to_ndarray(clips_dir, name):
    """read_video converts with one VideoReformatter per stream; it must not change a pixel."""
    from av.video.reformatter import VideoReformatter

    from processing.decoding_mtcae import frame_to_rgb

    reformatter = VideoReformatter()
    with av.open(str(clips_dir / name)) as container:
        pairs = [(frame_to_rgb(frame, reformatter), frame.to_ndarray(format="rgb24"))
                 for frame in container.decode(video=0)]
    assert len(pairs) > 10
    for shared, plain in pairs:
        np.testing.assert_array_equal(shared, plain)
    # The whole read path agrees with the plain decode too (every frame, no sampling).
    frames, _, _ = read_video(str(clips_dir / name), num_frames=len(pairs), mode="uniform")
    np.testing.assert_array_equal(np.asarray(frames), np.stack([plain for _, plain in pairs]))
