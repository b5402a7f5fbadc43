"""The torchcodec decoding backend gives the frames the PyAV backend gives: the real clips, phone rotation (with and
without a mirror) and the choice among several video streams. Its one documented difference: ``info`` has no frame
``timestamps`` (the tools that need them, mtcae-predict's window times, decode with PyAV).

torchcodec loads its FFmpeg libraries from the system (Debian: libavcodec59 libavformat59 libavutil57 libswscale6
libswresample4 libavfilter8 libavdevice59; ``.ci/run`` installs them when missing). Without them these tests skip
with the loading error, unless ``MTCAE_REQUIRE_TORCHCODEC=1`` (set by ``.ci/run``), where they fail instead.
"""

from __future__ import annotations

import importlib
import os

import numpy as np
import pytest
import torch
from test_hostile_inputs import _decode_as_stored, _marker_frame, _write, write_two_streams

from processing.decoding_mtcae import read_video
from processing.video_processing_mtcae import MTCAEVideoProcessor

CLIPS = ("single_face.mp4", "no_face.mp4", "face_noface.mov")


@pytest.fixture(autouse=True, scope="module")
def _torchcodec_loads():
    try:
        importlib.import_module("torchcodec.decoders")
    except Exception as error:  # ImportError, or OSError / RuntimeError: FFmpeg's libraries are missing
        reason = (f"torchcodec cannot load ({type(error).__name__}: {str(error).splitlines()[0][:200]}); install "
                  "Debian's FFmpeg 5.1 libraries (see this module's docstring)")
        if os.environ.get("MTCAE_REQUIRE_TORCHCODEC") == "1":
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)


def _both(path, **sampling):
    """``(torchcodec frames, PyAV frames, torchcodec info, PyAV info)`` for one sampling request."""
    codec = read_video(path, backend="torchcodec", **sampling)
    pyav = read_video(path, backend="pyav", **sampling)
    np.testing.assert_array_equal(codec[1], pyav[1])  # the same frames asked for
    return codec[0], pyav[0], codec[2], pyav[2]


@pytest.mark.parametrize("name", CLIPS)
def test_the_real_clips_decode_to_the_same_frames_as_pyav(clips_dir, name):
    for sampling in ({"num_frames": 16}, {"num_frames": 16, "mode": "stride"}, {"indices": [0, 1, 2, 5, 8]}):
        codec, pyav, codec_info, pyav_info = _both(clips_dir / name, **sampling)
        assert codec.dtype == pyav.dtype == torch.uint8 and codec.shape == pyav.shape
        assert torch.equal(codec, pyav), f"{name} {sampling}: max difference {(codec.int() - pyav.int()).abs().max()}"
        for key in ("num_source_frames", "height", "width", "stream_index"):
            assert codec_info[key] == pyav_info[key], key
        assert codec_info["backend"] == "torchcodec" and "timestamps" not in codec_info  # the documented difference


def test_the_processor_gives_the_same_inputs_with_either_backend(clips_dir):
    processor = MTCAEVideoProcessor(num_frames=8, size={"height": 64, "width": 64})
    path = str(clips_dir / "face_noface.mov")
    torch.testing.assert_close(processor(path, video_backend="torchcodec")["pixel_values"],
                               processor(path, video_backend="pyav")["pixel_values"], rtol=0, atol=0)


@pytest.mark.parametrize("rotation", [0, 90, 180, 270])
@pytest.mark.parametrize("hflip", [False, True])
def test_a_rotated_phone_clip_is_shown_upright_as_pyav_shows_it(tmp_path, rotation, hflip):
    path = _write(tmp_path / "phone.mp4", [_marker_frame(i) for i in range(6)], rotation=rotation, hflip=hflip)
    shown = np.rot90(_decode_as_stored(path), k=rotation // 90, axes=(1, 2))  # PyAV: turn, then mirror
    shown = shown[:, :, ::-1] if hflip else shown
    codec, pyav, codec_info, _ = _both(path, indices=[0, 3, 5])
    np.testing.assert_array_equal(codec.numpy(), shown[[0, 3, 5]])
    assert torch.equal(codec, pyav) and (codec_info["height"], codec_info["width"]) == shown.shape[1:3]


def test_the_longest_of_several_video_streams_is_decoded(tmp_path):
    path = write_two_streams(tmp_path / "two_streams.mkv")
    codec, indices, info = read_video(path, backend="torchcodec", num_frames=8)
    assert info["stream_index"] == 1 and info["num_source_frames"] == 20
    np.testing.assert_array_equal(codec.numpy(), _decode_as_stored(path, stream_index=1)[indices])
    assert torch.equal(codec, read_video(path, backend="pyav", num_frames=8)[0])
