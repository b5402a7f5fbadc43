"""MTCAEVideoProcessor against transformers' video-processor contract.

Every input type gives the same pixels; save / load and AutoVideoProcessor round-trip; every keyword
argument the processor accepts (transformers' ``VideosKwargs`` and its own) either takes effect, checked
against a computation done by hand, or is refused with a message saying why.
"""

from __future__ import annotations

import json

import av
import numpy as np
import pytest
import torch
import torchvision.transforms.v2.functional as tvF
from PIL import Image
from transformers.processing_utils import VideosKwargs
from transformers.video_utils import VideoMetadata

from processing.video_processing_mtcae import MTCAEVideoProcessor, MTCAEVideoProcessorKwargs

SIZE = {"height": 16, "width": 16}
MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = 0.225
# The by-hand references resize the uint8 frames with the same torchvision call; only the order of the
# float rescale / normalise operations differs (the processor fuses them into one multiply-add).
FLOAT_ATOL = 1e-6


def _video(num_frames=20, height=30, width=40, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (num_frames, height, width, 3), dtype=np.uint8)


def _processor(**kwargs) -> MTCAEVideoProcessor:
    return MTCAEVideoProcessor(size=SIZE, **kwargs)


def _by_hand(frames: np.ndarray, size=(16, 16), interpolation="bilinear", antialias=True, rescale=1 / 255,
             mean=MEAN, std=STD) -> torch.Tensor:
    """The full-frame input computed by hand: torchvision resize of the uint8 frames, rescale, normalise."""
    video = torch.from_numpy(frames).permute(0, 3, 1, 2)
    if tuple(video.shape[-2:]) != tuple(size):
        video = tvF.resize(video, list(size), interpolation=tvF.InterpolationMode(interpolation), antialias=antialias)
    return (video.float() * rescale - mean) / std


def _centres(num_source: int, num_frames: int = 16) -> np.ndarray:
    return np.floor((np.arange(num_frames) + 0.5) * num_source / num_frames).astype(np.int64)


def _write_clip(path, num_frames=30, rate=25, width=48, height=32):
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(num_frames):
            frame = np.zeros((height, width, 3), np.uint8)
            frame[..., 0] = (np.arange(width) * 5 + i * 9) % 256
            frame[..., 1] = i * 8 % 256
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def _decode_all(path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])


# ---- inputs, save / load, Auto class -----------------------------------------------------------


def test_pil_numpy_and_torch_inputs_give_the_same_pixel_values():
    video = _video()
    processor = _processor()
    reference = processor(video)["pixel_values"]
    inputs = {
        "numpy THWC": video,
        "torch THWC": torch.from_numpy(video),
        "torch TCHW": torch.from_numpy(video).permute(0, 3, 1, 2),
        "numpy TCHW": np.ascontiguousarray(video.transpose(0, 3, 1, 2)),
        "list of PIL": [Image.fromarray(frame) for frame in video],
        "list of numpy frames": list(video),
        "batch of one (5-D)": video[None],
    }
    for name, value in inputs.items():
        assert torch.equal(processor(value)["pixel_values"], reference), name
    torch.testing.assert_close(reference[0], _by_hand(video[_centres(20)]), rtol=0, atol=FLOAT_ATOL)


def test_save_pretrained_and_from_pretrained_round_trip(tmp_path):
    from transformers import AutoVideoProcessor

    processor = MTCAEVideoProcessor(size={"height": 24, "width": 32}, resize_mode="shortest_edge", num_frames=8,
                                    sampling_mode="stride", image_mean=[0.1, 0.2, 0.3], antialias=False,
                                    do_center_crop=True, crop_size={"height": 20, "width": 20}, resample=3)
    processor.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "video_preprocessor_config.json").read_text())
    assert saved["auto_map"]["AutoVideoProcessor"] == "video_processing_mtcae.MTCAEVideoProcessor"
    for sibling in ("sampling_mtcae.py", "decoding_mtcae.py", "video_inputs_mtcae.py", "face_labels_mtcae.py",
                    "face_geometry_mtcae.py", "face_detection_mtcae.py", "video_processing_mtcae.py"):
        assert (tmp_path / sibling).is_file(), f"save_pretrained did not copy {sibling}"
    video = _video()
    expected = processor(video)["pixel_values"]
    assert expected.shape == (1, 8, 3, 20, 20)
    loaded = MTCAEVideoProcessor.from_pretrained(tmp_path)
    auto = AutoVideoProcessor.from_pretrained(tmp_path, trust_remote_code=True)
    for other in (loaded, auto):
        assert other.to_dict() == processor.to_dict()
        assert torch.equal(other(video)["pixel_values"], expected)


# ---- every keyword argument: honoured (checked by hand) or refused -----------------------------


def _check_do_convert_rgb():
    video = _video()
    rgba = np.concatenate([video, np.full(video.shape[:3] + (1,), 9, np.uint8)], axis=-1)
    assert torch.equal(_processor()(rgba, do_convert_rgb=True)["pixel_values"], _processor()(video)["pixel_values"])
    with pytest.raises(ValueError, match="do_convert_rgb=False keeps the video's 4 channels"):
        _processor()(rgba, do_convert_rgb=False)
    assert torch.equal(_processor()(video, do_convert_rgb=False)["pixel_values"], _processor()(video)["pixel_values"])


def _check_do_resize():
    video = _video()
    out = _processor()(video, do_resize=False)["pixel_values"]
    torch.testing.assert_close(out[0], _by_hand(video[_centres(20)], size=(30, 40)), rtol=0, atol=FLOAT_ATOL)


def _check_size():
    video = _video()
    out = _processor()(video, size={"height": 12, "width": 20})["pixel_values"]
    torch.testing.assert_close(out[0], _by_hand(video[_centres(20)], size=(12, 20)), rtol=0, atol=FLOAT_ATOL)
    square = _processor()(video, size=12)["pixel_values"]
    torch.testing.assert_close(square[0], _by_hand(video[_centres(20)], size=(12, 12)), rtol=0, atol=FLOAT_ATOL)


def _check_default_to_square():
    assert _processor()(_video(), default_to_square=True)["pixel_values"].shape == (1, 16, 3, 16, 16)
    with pytest.raises(ValueError, match="default_to_square=False"):
        _processor()(_video(), default_to_square=False)


def _check_resample():
    video = _video()
    for resample, name in ((0, "nearest"), (2, "bilinear"), (3, "bicubic")):
        out = _processor()(video, resample=resample)["pixel_values"]
        torch.testing.assert_close(out[0], _by_hand(video[_centres(20)], interpolation=name), rtol=0, atol=FLOAT_ATOL)
    with pytest.raises(ValueError, match="resample=1 is not supported"):
        _processor()(video, resample=1)  # Lanczos


def _check_do_rescale():
    video = _video()
    out = _processor()(video, do_rescale=False)["pixel_values"]
    torch.testing.assert_close(out[0], _by_hand(video[_centres(20)], rescale=1.0), rtol=1e-6, atol=1e-4)


def _check_rescale_factor():
    video = _video()
    out = _processor()(video, rescale_factor=1 / 127.5)["pixel_values"]
    torch.testing.assert_close(out[0], _by_hand(video[_centres(20)], rescale=1 / 127.5), rtol=1e-6, atol=1e-5)


def _check_do_normalize():
    video = _video()
    out = _processor()(video, do_normalize=False)["pixel_values"]
    torch.testing.assert_close(out[0], _by_hand(video[_centres(20)], mean=0.0, std=1.0), rtol=0, atol=1e-6)


def _check_image_mean():
    video = _video()
    out = _processor()(video, image_mean=[0.5, 0.25, 0.0])["pixel_values"]
    mean = torch.tensor([0.5, 0.25, 0.0]).view(1, 3, 1, 1)
    torch.testing.assert_close(out[0], _by_hand(video[_centres(20)], mean=mean), rtol=1e-6, atol=1e-5)


def _check_image_std():
    video = _video()
    out = _processor()(video, image_std=[0.5, 0.25, 1.0])["pixel_values"]
    std = torch.tensor([0.5, 0.25, 1.0]).view(1, 3, 1, 1)
    torch.testing.assert_close(out[0], _by_hand(video[_centres(20)], std=std), rtol=1e-6, atol=1e-5)
    with pytest.raises(ValueError, match="image_std must not contain 0"):
        _processor()(video, image_std=[0.5, 0.0, 0.5])


def _check_do_center_crop():
    video = _video()
    labels = {"boxes": np.tile([0.25, 0.25, 0.5, 0.5], (20, 1)), "landmarks": np.full((20, 5, 2), 0.5)}
    out = _processor()(video, face_labels=labels, do_center_crop=True, crop_size={"height": 10, "width": 12})
    reference = tvF.center_crop(_by_hand(video[_centres(20)]), [10, 12])
    torch.testing.assert_close(out["pixel_values"][0], reference, rtol=0, atol=FLOAT_ATOL)
    # The box (4..12 of 16 pixels) is cut at rows 3..13 and columns 2..14 of the resized frame.
    torch.testing.assert_close(out["face_boxes"][0, 0], torch.tensor([2 / 12, 1 / 10, 8 / 12, 8 / 10]))
    with pytest.raises(ValueError, match="needs crop_size"):
        _processor()(video, do_center_crop=True)


def _check_crop_size():
    video = _video()
    with_crop = _processor()(video, do_center_crop=True, crop_size=8)["pixel_values"]
    expected = tvF.center_crop(_by_hand(video[_centres(20)]), [8, 8])
    torch.testing.assert_close(with_crop[0], expected, rtol=0, atol=FLOAT_ATOL)
    # Without do_center_crop, crop_size is only the crop's size: no crop happens (as in transformers).
    assert _processor()(video, crop_size=8)["pixel_values"].shape[-2:] == (16, 16)


def _check_do_pad():
    assert _processor()(_video(), do_pad=False)["pixel_values"].shape == (1, 16, 3, 16, 16)
    with pytest.raises(ValueError, match="nothing to pad"):
        _processor()(_video(), do_pad=True)


def _check_data_format():
    assert _processor()(_video(), data_format="channels_first")["pixel_values"].shape == (1, 16, 3, 16, 16)
    with pytest.raises(ValueError, match="always channels-first"):
        _processor()(_video(), data_format="channels_last")


def _check_input_data_format():
    # (T, 3, 8, 4): a last axis of 4 looks like RGBA channels; the format says it is channels-first.
    frames = np.random.default_rng(1).integers(0, 256, (6, 8, 4, 3), dtype=np.uint8)
    channels_first = torch.from_numpy(frames).permute(0, 3, 1, 2).contiguous()
    given = _processor()(channels_first, input_data_format="channels_first", do_sample_frames=False)
    torch.testing.assert_close(given["pixel_values"][0], _by_hand(frames), rtol=0, atol=FLOAT_ATOL)
    guessed = _processor()(channels_first, do_sample_frames=False)
    assert guessed["pixel_values"].shape != given["pixel_values"].shape or not torch.equal(
        guessed["pixel_values"], given["pixel_values"])


def _check_device():
    video = _video()
    out = _processor()(video, device="cpu")["pixel_values"]
    assert out.device == torch.device("cpu") and torch.equal(out, _processor()(video)["pixel_values"])
    out = _processor()(video, device=torch.device("cpu"))["pixel_values"]
    assert torch.equal(out, _processor()(video)["pixel_values"])
    with pytest.raises(ValueError, match="device"):
        _processor()(video, device="quantum")


def _check_do_sample_frames(tmp_path):
    video = _video()
    out = _processor()(video, do_sample_frames=False, return_frame_indices=True)
    assert out["frame_indices"][0].tolist() == list(range(20))
    torch.testing.assert_close(out["pixel_values"][0], _by_hand(video), rtol=0, atol=FLOAT_ATOL)
    path = _write_clip(tmp_path / "clip.mp4", num_frames=22)
    every = _processor()(str(path), do_sample_frames=False)["pixel_values"]
    torch.testing.assert_close(every[0], _by_hand(_decode_all(path)), rtol=0, atol=FLOAT_ATOL)


def _check_video_metadata(tmp_path):
    video = _video()
    out = _processor()(video, video_metadata={"fps": 10.0}, fps=5, return_frame_indices=True)
    assert out["frame_indices"][0].tolist() == _centres(20, 10).tolist()  # 20 frames at 10 fps = 2 s -> 10 frames
    with pytest.raises(ValueError, match="says 99 frames"):
        _processor()(video, video_metadata={"total_num_frames": 99, "fps": 10.0})
    path = _write_clip(tmp_path / "clip.mp4")
    with pytest.raises(ValueError, match="video_metadata is for in-memory videos"):
        _processor()(str(path), video_metadata={"fps": 10.0})


def _check_fps(tmp_path):
    path = _write_clip(tmp_path / "clip.mp4", num_frames=30, rate=25)
    processor = _processor()
    out = processor(str(path), fps=10, return_frame_indices=True)
    expected = processor.sample_frames(VideoMetadata(total_num_frames=30, fps=25.0), fps=10)
    assert len(expected) == 12  # 30 frames at 25 fps = 1.2 s -> 12 frames
    assert out["frame_indices"][0].tolist() == expected.tolist() == _centres(30, 12).tolist()
    torch.testing.assert_close(out["pixel_values"][0], _by_hand(_decode_all(path)[expected]), rtol=0, atol=FLOAT_ATOL)
    with pytest.raises(ValueError, match="mutually exclusive"):
        processor(str(path), fps=10, num_frames=8)
    with pytest.raises(ValueError, match="frame rate"):
        processor(_video(), fps=10)  # an array has no frame rate of its own


def _check_num_frames():
    out = _processor()(_video(), num_frames=8, return_frame_indices=True)
    assert out["pixel_values"].shape[1] == 8 and out["frame_indices"][0].tolist() == _centres(20, 8).tolist()


def _check_return_metadata():
    out = _processor()(_video(), return_metadata=True)
    metadata = out["video_metadata"][0]
    assert metadata.total_num_frames == 20 and metadata.frames_indices == _centres(20).tolist()
    assert "video_metadata" not in _processor()(_video())


def _check_return_tensors():
    assert isinstance(_processor()(_video(), return_tensors="np")["pixel_values"], np.ndarray)
    assert isinstance(_processor()(_video(), return_tensors="pt")["pixel_values"], torch.Tensor)
    assert isinstance(_processor()(_video())["pixel_values"], torch.Tensor)


def _check_resize_mode():
    video = _video()
    out = _processor()(video, resize_mode="shortest_edge")["pixel_values"]
    resized = tvF.resize(torch.from_numpy(video[_centres(20)]).permute(0, 3, 1, 2), [16, 21], antialias=True)
    reference = (tvF.center_crop(resized, [16, 16]).float() / 255 - MEAN) / STD
    torch.testing.assert_close(out[0], reference, rtol=0, atol=FLOAT_ATOL)
    with pytest.raises(ValueError, match="resize_mode"):
        _processor()(video, resize_mode="stretch")


def _check_sampling_mode():
    out = _processor()(_video(num_frames=40), sampling_mode="stride", num_frames=8, return_frame_indices=True)
    assert out["frame_indices"][0].tolist() == list(range(0, 40, 5))
    with pytest.raises(ValueError, match="sampling_mode"):
        _processor()(_video(), sampling_mode="random")


def _check_temporal_jitter():
    video = _video(num_frames=64)
    draws = {tuple(_processor()(video, temporal_jitter=True, generator=np.random.default_rng(seed),
                                return_frame_indices=True)["frame_indices"][0].tolist()) for seed in range(4)}
    assert len(draws) > 1 and tuple(_centres(64)) not in draws
    starts = np.arange(16) * 64 // 16
    assert all(np.all((np.array(d) >= starts) & (np.array(d) < starts + 4)) for d in draws)


def _check_random_flip():
    video = _video()
    plain = _processor()(video)["pixel_values"]
    outs = [_processor()(video, random_flip=True, generator=np.random.default_rng(seed))["pixel_values"]
            for seed in range(8)]
    flipped = [torch.equal(out, plain.flip(-1)) for out in outs]
    assert any(flipped) and not all(flipped)
    assert all(f or torch.equal(out, plain) for f, out in zip(flipped, outs))


def _face_video():
    video, boxes = np.zeros((16, 60, 80, 3), np.uint8), np.tile([0.4, 0.3, 0.2, 0.3], (16, 1))
    video[:, 18:36, 32:48] = 200
    return video, {"boxes": boxes, "landmarks": np.full((16, 5, 2), 0.5)}


def _check_face_crop_margin():
    video, labels = _face_video()
    tight = _processor(resize_mode="face_crop")(video, face_labels=labels, face_crop_margin=0.0)
    wide = _processor(resize_mode="face_crop")(video, face_labels=labels, face_crop_margin=0.25)
    # The box is 16 x 18 pixels: a square of 18 (margin 0) or 27 (margin 0.25) around it.
    torch.testing.assert_close(tight["face_boxes"][0, 0, 2:], torch.tensor([16 / 18, 1.0]))
    torch.testing.assert_close(wide["face_boxes"][0, 0, 2:], torch.tensor([16 / 27, 18 / 27]))


def _check_face_align_padding():
    from processing.face_geometry_mtcae import FACE_ALIGN_TEMPLATE

    video, labels = _face_video()
    labels["landmarks"] = np.tile((FACE_ALIGN_TEMPLATE * 20 + [30, 20]) / [80, 60], (16, 1, 1))  # a face of 20 px
    for padding in (0.0, 0.5):
        out = _processor(resize_mode="face_align")(video, face_labels=labels, face_align_padding=padding)
        expected = (FACE_ALIGN_TEMPLATE[:3] - 0.5) / (1 + padding) + 0.5
        np.testing.assert_allclose(out["face_landmarks"][0, 0, :3].numpy(), expected, atol=1e-5)


def _check_face_detector():
    video, _ = _face_video()
    with pytest.warns(UserWarning, match="face_detector=None"):
        out = _processor(resize_mode="face_crop")(video, face_detector=None)
    assert torch.equal(out["pixel_values"], _processor()(video)["pixel_values"])  # the full frame
    with pytest.raises(ValueError, match="face_detector"):
        _processor()(video, face_detector="retinaface")


def _check_antialias():
    video = _video()
    out = _processor()(video, antialias=False)["pixel_values"]
    torch.testing.assert_close(out[0], _by_hand(video[_centres(20)], antialias=False), rtol=0, atol=FLOAT_ATOL)
    assert not torch.equal(out, _processor()(video)["pixel_values"])


def _check_video_backend(tmp_path):
    path = _write_clip(tmp_path / "clip.mp4")
    expected = _processor()(str(path))["pixel_values"]
    from processing.decoding_mtcae import is_torchcodec_usable

    backends = ["pyav", "auto"] + (["torchcodec"] if is_torchcodec_usable() else [])
    for backend in backends:
        torch.testing.assert_close(_processor()(str(path), video_backend=backend)["pixel_values"], expected)
    with pytest.raises(ValueError, match="video_backend"):
        _processor()(str(path), video_backend="opencv")


def _check_return_frame_indices():
    out = _processor()(_video(), return_frame_indices=True)
    assert out["frame_indices"].tolist() == [_centres(20).tolist()]
    assert "frame_indices" not in _processor()(_video())


def _check_frame_sampling_rate():
    with pytest.raises(ValueError, match="frame_sampling_rate"):
        _processor()(_video(), frame_sampling_rate=2)


CHECKS = {name[len("_check_"):]: check for name, check in globals().items() if name.startswith("_check_")}


def test_every_keyword_argument_has_a_check():
    assert set(CHECKS) == set(MTCAEVideoProcessorKwargs.__annotations__)
    assert set(VideosKwargs.__annotations__) <= set(CHECKS)


@pytest.mark.parametrize("name", sorted(MTCAEVideoProcessorKwargs.__annotations__))
def test_keyword_argument_is_honoured_or_refused(name, tmp_path):
    check = CHECKS[name]
    check(tmp_path) if check.__code__.co_argcount else check()


def test_unknown_keyword_arguments_are_refused():
    with pytest.raises(TypeError, match="Unexpected keyword arguments.*'do_resise'"):
        _processor()(_video(), do_resise=False)
    with pytest.raises(TypeError, match="Unexpected keyword arguments"):
        _processor().prepare_frames(torch.zeros(1, 8, 8, 3, dtype=torch.uint8), [0], colour="red")
