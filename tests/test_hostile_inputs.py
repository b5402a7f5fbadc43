"""Inputs that used to be silently wrong: rotated phone videos, extra video streams, float ranges,
NaN / uint16 frames, impossible options, and images that only pretend to be videos.

Every input is made by the test itself (PyAV-written containers, PIL images, arrays).
"""

from __future__ import annotations

import logging
import shutil
import warnings

import av
import numpy as np
import pytest
import torch
from PIL import Image

from processing.decoding_mtcae import VideoDecodeError, read_video
from processing.video_processing_mtcae import MTCAEVideoProcessor, detect_face_labels

SIZE = {"height": 16, "width": 16}


def _marker_frame(i: int, height=32, width=64) -> np.ndarray:
    """An asymmetric frame: a gradient plus a bright block in the top-left corner."""
    frame = np.zeros((height, width, 3), np.uint8)
    frame[..., 0] = (np.arange(width) * 4 + i * 7) % 256
    frame[..., 1] = (np.arange(height)[:, None] * 6) % 256
    frame[:8, :12] = 255
    return frame


def _write(path, frames, rotation=None, hflip=False, codec="libx264", rate=25):
    height, width = frames[0].shape[:2]
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        if rotation is not None:
            stream.set_display_rotation(rotation, hflip=hflip)
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def _decode_as_stored(path, stream_index=0) -> np.ndarray:
    """Reference: a plain PyAV decode loop, frames exactly as stored (no display matrix applied)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[stream_index]
        return np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(stream)])


# ---- 6: display-matrix rotation -------------------------------------------------------------------


@pytest.mark.parametrize("rotation", [0, 90, 180, 270])
@pytest.mark.parametrize("hflip", [False, True])
def test_display_matrix_rotation_is_applied_in_decoding(tmp_path, rotation, hflip):
    path = _write(tmp_path / "phone.mp4", [_marker_frame(i) for i in range(6)], rotation=rotation, hflip=hflip)
    stored = _decode_as_stored(path)
    # PyAV writes "rotate counter-clockwise by `rotation`, then mirror" (VideoStream.set_display_rotation).
    shown = np.rot90(stored, k=rotation // 90, axes=(1, 2))
    shown = shown[:, :, ::-1] if hflip else shown
    frames, _, info = read_video(path, indices=[0, 3, 5])
    np.testing.assert_array_equal(frames.numpy(), shown[[0, 3, 5]])
    assert (info["height"], info["width"]) == shown.shape[1:3]
    processor = MTCAEVideoProcessor(size=SIZE)
    from_file = processor(str(path), num_frames=3)["pixel_values"]
    assert torch.equal(from_file, processor(np.ascontiguousarray(shown), num_frames=3)["pixel_values"])


def test_faces_are_found_upright_in_a_rotated_phone_clip(clips_dir, tmp_path):
    upright, _, _ = read_video(clips_dir / "single_face.mp4", num_frames=6)
    # A phone stores the picture sideways and says "turn it a quarter counter-clockwise" in the display matrix.
    sideways = np.rot90(upright.numpy(), k=-1, axes=(1, 2))
    path = _write(tmp_path / "portrait.mp4", list(sideways), rotation=90)
    frames, _, info = read_video(path, num_frames=6)
    assert (info["height"], info["width"]) == tuple(frames.shape[1:3]) == tuple(upright.shape[1:3]) == (360, 640)
    assert np.abs(frames.numpy().astype(int) - upright.numpy()).mean() < 6  # the same picture, up to re-encoding
    found = detect_face_labels(frames)
    assert found["mask"].all()
    # The labels are in the shown (upright) frame: the face box lies where the upright clip has it.
    reference = detect_face_labels(upright)
    np.testing.assert_allclose(found["boxes"], reference["boxes"], atol=0.05)
    # The face-aligning processor finds the faces itself (no full-frame fallback).
    processor = MTCAEVideoProcessor(resize_mode="face_align", face_detector="mtcnn", size={"height": 56, "width": 56})
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        processor(str(path), num_frames=4)


# ---- 7: the main video stream -----------------------------------------------------------------------


def write_two_streams(path, frames: int = 20):
    """A file whose second video stream is the longest (``frames`` marker frames, 64x32), after a first stream of 8
    noise frames that is larger and of a higher bit rate: the one FFmpeg's "best stream" would pick."""
    noise = np.random.default_rng(0).integers(0, 256, (8, 96, 96, 3), dtype=np.uint8)
    with av.open(str(path), "w") as container:
        extra = container.add_stream("libx264", rate=25)
        extra.width, extra.height, extra.pix_fmt = 96, 96, "yuv420p"
        main = container.add_stream("libx264", rate=25)
        main.width, main.height, main.pix_fmt = 64, 32, "yuv420p"
        for i in range(frames):
            pictures = [(extra, noise[i])] if i < len(noise) else []
            for stream, picture in [*pictures, (main, _marker_frame(i))]:
                for packet in stream.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")):
                    container.mux(packet)
        for stream in (extra, main):
            for packet in stream.encode():
                container.mux(packet)
    return path


def test_the_longest_video_stream_is_decoded_and_reported(tmp_path, caplog):
    path = write_two_streams(tmp_path / "two_streams.mkv", frames=30)
    reference = _decode_as_stored(path, stream_index=1)
    with caplog.at_level(logging.INFO, logger="processing.decoding_mtcae"):
        frames, indices, info = read_video(path)
    assert info["stream_index"] == 1 and info["num_video_streams"] == 2 and info["num_source_frames"] == 30
    np.testing.assert_array_equal(frames.numpy(), reference[indices])
    assert "2 video streams" in caplog.text and "using #1, the longest" in caplog.text


# ---- 8: float range, NaN, uint16, impossible options ----------------------------------------------


def test_float_frames_follow_do_rescale_not_the_data():
    frames = np.random.default_rng(0).integers(0, 256, (16, 24, 32, 3), dtype=np.uint8)
    processor = MTCAEVideoProcessor(size=SIZE)
    reference = processor(frames)["pixel_values"]
    assert torch.equal(processor(frames.astype(np.float32))["pixel_values"], reference)  # 0-255 floats
    in_unit_range = frames.astype(np.float32) / 255
    torch.testing.assert_close(processor(in_unit_range, do_rescale=False)["pixel_values"], reference)
    # One bright outlier no longer changes how the rest of the clip is read: it is refused, by name.
    outlier = in_unit_range.copy()
    outlier[3, 2, 1, 0] = 1.5
    with pytest.raises(ValueError, match=r"span \[0, 1.5\].*do_rescale=False float frames must be in \[0, 1\]"):
        processor(outlier, do_rescale=False)
    with pytest.warns(UserWarning, match="already rescaled"):
        processor(outlier)  # do_rescale=True reads them as 0-255 values, and says that looks wrong
    with pytest.raises(ValueError, match=r"\[0, 255\]"):
        processor(frames.astype(np.float32) * 2)


@pytest.mark.parametrize("bad", ["nan", "inf", "-inf"])
def test_non_finite_frames_are_refused(bad):
    frames = np.random.default_rng(0).random((16, 24, 32, 3)).astype(np.float32)
    frames[5, 3, 3, 1] = float(bad)
    with pytest.raises(ValueError, match="NaN or infinite"):
        MTCAEVideoProcessor(size=SIZE)(frames, do_rescale=False)


def test_integer_frames_must_be_8_bit_values():
    frames = np.random.default_rng(0).integers(0, 256, (16, 24, 32, 3), dtype=np.uint8)
    processor = MTCAEVideoProcessor(size=SIZE)
    reference = processor(frames)["pixel_values"]
    for dtype in (np.uint16, np.int32, np.int64):
        assert torch.equal(processor(frames.astype(dtype))["pixel_values"], reference), dtype
    sixteen_bit = frames.astype(np.uint16) * 257
    with pytest.raises(ValueError, match=r"uint16 video values span \[0, 65535\].*8-bit"):
        processor(sixteen_bit)
    with pytest.raises(ValueError, match=r"int64 video values span \[-1"):
        processor(frames.astype(np.int64) - 1)
    with pytest.raises(ValueError, match="bool"):
        processor(frames > 128)


def test_impossible_options_are_refused():
    with pytest.raises(ValueError, match="num_frames must be >= 1"):
        MTCAEVideoProcessor(num_frames=0)
    with pytest.raises(ValueError, match="num_frames must be >= 1"):
        MTCAEVideoProcessor()(np.zeros((4, 8, 8, 3), np.uint8), num_frames=0)
    with pytest.raises(ValueError, match="image_std must not contain 0"):
        MTCAEVideoProcessor(image_std=[0.2, 0.0, 0.2])
    with pytest.raises(ValueError, match="image_std must not contain 0"):
        MTCAEVideoProcessor()(np.zeros((4, 8, 8, 3), np.uint8), image_std=0.0)
    with pytest.raises(ValueError, match="fps must be > 0"):
        MTCAEVideoProcessor()(np.zeros((4, 8, 8, 3), np.uint8), fps=float("nan"))


# ---- 11: images that pretend to be videos ---------------------------------------------------------


@pytest.mark.parametrize("image_format", ["PNG", "JPEG", "GIF"])
def test_an_image_named_mp4_is_refused_as_not_a_video(tmp_path, image_format):
    image = tmp_path / f"picture.{image_format.lower()}"
    Image.fromarray(_marker_frame(0)).save(image, format=image_format)
    fake = tmp_path / "clip.mp4"
    shutil.copy(image, fake)
    with pytest.raises(VideoDecodeError, match="is a still image") as info:
        read_video(fake)
    assert str(fake) in str(info.value)
    with pytest.raises(VideoDecodeError, match="not a video"):
        MTCAEVideoProcessor(size=SIZE)(str(fake))


def test_an_animated_gif_is_still_a_video(tmp_path):
    frames = [Image.fromarray(_marker_frame(i)) for i in range(5)]
    path = tmp_path / "animated.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=40, loop=0)
    decoded, _, info = read_video(path, num_frames=5)
    assert info["num_source_frames"] == 5 and decoded.shape == (5, 32, 64, 3)


# ---- 16: the video-classification pipeline on a list ---------------------------------------------


def _tiny_pipeline(**kwargs):
    from transformers import VideoMAEConfig, VideoMAEForVideoClassification, pipeline

    config = VideoMAEConfig(image_size=32, patch_size=16, num_frames=4, tubelet_size=2, hidden_size=16,
                            num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, num_labels=3)
    torch.manual_seed(0)
    model = VideoMAEForVideoClassification(config).eval()
    processor = MTCAEVideoProcessor(size={"height": 32, "width": 32}, num_frames=4)
    extra = {"feature_extractor": processor} if kwargs.pop("batched", False) else {}
    return pipeline("video-classification", model=model, video_processor=processor, **extra, **kwargs)


def test_pipeline_on_a_list_with_a_bad_video_names_that_video(tmp_path):
    good = [str(_write(tmp_path / f"clip{i}.mp4", [_marker_frame(i + t) for t in range(8)])) for i in range(2)]
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00garbage" * 64)
    with pytest.raises(VideoDecodeError, match=f"Cannot decode video '{bad}'"):
        _tiny_pipeline()([good[0], str(bad), good[1]])


def test_pipeline_batches_when_given_the_processor_as_feature_extractor(tmp_path):
    # transformers' pipelines collate a batch only through a tokenizer or feature extractor; handing the
    # video processor in that role makes batch_size > 1 work, with the same results as one at a time.
    videos = [str(_write(tmp_path / f"clip{i}.mp4", [_marker_frame(3 * i + t) for t in range(8)])) for i in range(3)]
    one_by_one = _tiny_pipeline()(videos, top_k=3)
    batched = _tiny_pipeline(batched=True)(videos, batch_size=2, top_k=3)
    assert len(batched) == 3
    for a, b in zip(one_by_one, batched):
        assert [x["label"] for x in a] == [x["label"] for x in b]
        np.testing.assert_allclose([x["score"] for x in a], [x["score"] for x in b], atol=1e-6)
    with pytest.raises(ValueError, match="cannot do batching"):
        _tiny_pipeline()(videos, batch_size=2)  # what transformers says without it
