"""Clips given as folders of frame images read the same frames as those frames encoded losslessly as a video."""

import shutil
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from mtcae_test_utils import REPO_ROOT, run_isolated
from PIL import Image

from processing.frame_folders import (
    FrameFolderError,
    count_frames,
    is_frame_folder,
    list_frames,
    read_frame_folder,
)
from processing.video_processing_mtcae import MTCAEVideoProcessor, read_video, sample_frame_indices


def _random_frames(num: int, height: int = 24, width: int = 40, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (num, height, width, 3), dtype=np.uint8)


def _write_folder(folder: Path, frames: np.ndarray, name=lambda i: f"img_{i}.png") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    # Written in reverse so that nothing relies on the file system's listing order.
    for i in reversed(range(len(frames))):
        Image.fromarray(frames[i]).save(folder / name(i))
    return folder


def _write_lossless_video(path: Path, frames: np.ndarray) -> Path:
    """FFV1 in Matroska: lossless, so decoding gives back exactly ``frames``."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("ffv1", rate=25)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "bgr0"
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return path


@pytest.fixture(params=[10, 37], ids=["shorter_than_16", "longer_than_16"])
def clip(request, tmp_path):
    frames = _random_frames(request.param, seed=request.param)
    folder = _write_folder(tmp_path / "clip", frames)
    video = _write_lossless_video(tmp_path / "clip.mkv", frames)
    return frames, folder, video


def test_frame_folder_reads_the_frames_a_lossless_video_decodes_to(clip):
    frames, folder, video = clip
    from_video, video_indices, video_info = read_video(video)  # 16 frames, uniform over the clip
    from_folder, folder_indices, folder_info = read_frame_folder(folder, lambda n: sample_frame_indices(n, 16))
    assert np.array_equal(from_video.numpy(), frames[video_indices])  # the video is really lossless
    assert np.array_equal(folder_indices, video_indices)
    assert from_folder.dtype == torch.uint8 and from_folder.shape == from_video.shape
    assert torch.equal(from_folder, from_video)
    for key in ("num_source_frames", "width", "height"):
        assert folder_info[key] == video_info[key]
    assert folder_info["fps"] is None and folder_info["backend"] == "frames"
    if len(frames) < 16:
        assert len(np.unique(folder_indices)) == len(frames)  # every frame used, some repeated


def test_processor_gives_the_same_pixel_values_for_folder_frames_and_the_video(clip):
    frames, folder, video = clip
    processor = MTCAEVideoProcessor(size={"height": 32, "width": 32}, return_frame_indices=True)
    from_video = processor(str(video))
    every_frame, _, _ = read_frame_folder(folder)  # the processor samples them
    sampled, _, _ = read_frame_folder(folder, lambda n: sample_frame_indices(n, 16))  # already sampled
    for frames_in_memory in (every_frame, sampled):
        from_folder = processor(frames_in_memory)
        assert from_folder["pixel_values"].shape == (1, 16, 3, 32, 32)
        assert torch.equal(from_folder["pixel_values"], from_video["pixel_values"])


def test_a_frame_folder_path_is_a_clip_everywhere_a_video_path_is(clip, tmp_path):
    from processing.prepared_cache import PreparedClipCache
    from processing.prepared_clips import ENTRY_COLUMN, PreparedClipTransform

    frames, folder, video = clip
    processor = MTCAEVideoProcessor(size={"height": 32, "width": 32}, return_frame_indices=True)
    from_video, from_folder = processor(str(video)), processor(str(folder))  # the folder's path, not arrays
    assert torch.equal(from_folder["pixel_values"], from_video["pixel_values"])
    assert torch.equal(from_folder["frame_indices"], from_video["frame_indices"])
    cache = PreparedClipCache(tmp_path / "cache", processor)
    assert cache.prepare([str(folder)], progress=False).prepared == 1  # and in the prepared-clip cache
    cached = PreparedClipTransform(cache)({ENTRY_COLUMN: [str(cache.entry_path(str(folder)))], "label": [0]})
    assert torch.equal(cached["pixel_values"], from_video["pixel_values"])
    (folder / "img_0.png").write_bytes(b"not an image")
    with pytest.raises(ValueError, match="img_0.png|clip"):
        read_video(folder)


def test_frames_sort_by_frame_number_not_by_text(tmp_path):
    frames = _random_frames(12, height=8, width=8)
    folder = _write_folder(tmp_path / "natural", frames)  # img_0.png ... img_11.png: "img_10" < "img_2" as text
    got, indices, _ = read_frame_folder(folder)
    assert np.array_equal(indices, np.arange(12))
    assert np.array_equal(got.numpy(), frames)
    dfew = _write_folder(tmp_path / "00042", frames, name=lambda i: f"00042_{i + 1:05d}.jpg")
    names = [Path(f).name for f in list_frames(dfew)]
    assert names == [f"00042_{i:05d}.jpg" for i in range(1, 13)]
    assert count_frames(dfew) == 12


def test_explicit_indices_are_clipped_and_repeat(tmp_path):
    frames = _random_frames(5, height=8, width=8)
    folder = _write_folder(tmp_path / "c", frames)
    got, indices, info = read_frame_folder(folder, [4, 0, 0, 9])
    assert indices.tolist() == [4, 0, 0, 4]
    assert np.array_equal(got.numpy(), frames[[4, 0, 0, 4]])
    assert info["num_source_frames"] == 5
    with pytest.raises(ValueError, match="empty"):
        read_frame_folder(folder, [])


def test_bad_frame_folders_give_errors_naming_the_folder(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FrameFolderError, match="empty.*folder is empty"):
        read_frame_folder(empty)
    no_images = tmp_path / "no_images"
    no_images.mkdir()
    (no_images / "notes.txt").write_text("x")
    (no_images / ".hidden.jpg").write_bytes(b"")
    with pytest.raises(FrameFolderError, match="no_images.*no image files"):
        count_frames(no_images)
    mixed = _write_folder(tmp_path / "mixed", _random_frames(2, height=8, width=8))
    Image.fromarray(_random_frames(1, height=9, width=8)[0]).save(mixed / "img_2.png")
    with pytest.raises(FrameFolderError, match="mixed.*differ in size.*8x9"):
        read_frame_folder(mixed)
    broken = _write_folder(tmp_path / "broken", _random_frames(2, height=8, width=8))
    (broken / "img_2.png").write_bytes(b"not a png")
    with pytest.raises(FrameFolderError, match="img_2.png.*not a readable image"):
        list_frames(broken)
    with pytest.raises(FrameFolderError, match="does not exist"):
        list_frames(tmp_path / "missing")


def test_is_frame_folder_tells_folders_from_video_files_and_arrays(tmp_path):
    video = _write_lossless_video(tmp_path / "v.mkv", _random_frames(2, height=8, width=8))
    assert is_frame_folder(tmp_path) and is_frame_folder(str(tmp_path))
    assert not is_frame_folder(video)
    assert not is_frame_folder(tmp_path / "missing")
    assert not is_frame_folder(np.zeros((2, 8, 8, 3), np.uint8))


def test_frame_folders_module_runs_without_this_package(tmp_path):
    """It ships next to the model as remote code: a copy must import and read frames with no mtcae-dfer installed."""
    shutil.copy(REPO_ROOT / "processing" / "frame_folders.py", tmp_path / "frame_folders.py")
    frames = _random_frames(3, height=8, width=8)
    _write_folder(tmp_path / "clip", frames)
    result = run_isolated(
        """
        import sys
        sys.path.insert(0, ".")
        from frame_folders import read_frame_folder
        frames, indices, info = read_frame_folder("clip", [2, 0])
        print(list(frames.shape), indices.tolist(), int(frames[0].sum()))
        """,
        cwd=tmp_path,
    )
    assert result.stdout.split("\n")[0] == f"[2, 8, 8, 3] [2, 0] {int(frames[2].sum())}"
