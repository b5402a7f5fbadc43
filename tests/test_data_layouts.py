"""Paths and folder layouts that real data sets have: a colon in a file name (FFmpeg took ``12:30.mp4`` for a
protocol), folders linked in from another disk (``os.walk`` did not enter them: the clips were not found), the
archives extracted one per folder (``Video_Speech_Actor_01/Actor_01/...``: every clip refused), and a link to a
file that is gone."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from processing.dataset_files import find_video_files
from processing.datasets import load_mead, load_ravdess
from processing.decoding_mtcae import read_video
from processing.labelling import find_clips
from processing.synthetic import generate_synthetic_dfer


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> list[Path]:
    root = tmp_path_factory.mktemp("layouts")
    generate_synthetic_dfer(root, num_actors=2, clips_per_class=1, num_frames=12, size=(48, 64), num_workers=0,
                            progress=False)
    return sorted(root.rglob("*.mp4"))


@pytest.mark.parametrize("name", ["12:30.mp4", "file:2.mp4", "http:x.mp4"])
def test_a_colon_in_a_file_name_is_a_file_not_a_protocol(clips_dir, tmp_path, monkeypatch, name):
    shutil.copy(clips_dir / "single_face.mp4", tmp_path / name)
    reference = read_video(clips_dir / "single_face.mp4", num_frames=4)[0]
    monkeypatch.chdir(tmp_path)  # given as a relative path, as a shell glob gives it
    frames = read_video(name, num_frames=4)[0]
    assert np.array_equal(frames.numpy(), reference.numpy())
    assert np.array_equal(read_video(tmp_path / name, num_frames=4)[0].numpy(), reference.numpy())


def test_the_synthetic_set_renders_into_a_relative_folder_with_a_colon(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    generate_synthetic_dfer("file:take", num_actors=1, clips_per_class=1, num_frames=8, size=(48, 64), num_workers=0,
                            progress=False)
    table = load_ravdess("file:take", num_classes=7)
    assert len(table) == 7 and read_video(table[0]["video"], num_frames=4)[0].shape == (4, 48, 64, 3)


def test_folders_linked_in_from_elsewhere_are_searched_once(clips, tmp_path):
    elsewhere = tmp_path / "other_disk"
    root = tmp_path / "ravdess"
    for clip in clips:
        target = elsewhere / clip.parent.name / clip.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(clip, target)
    root.mkdir()
    for actor in sorted(elsewhere.iterdir()):
        os.symlink(actor, root / actor.name, target_is_directory=True)
    os.symlink(root, root / "Actor_01" / "loop", target_is_directory=True)  # a link back up: not a loop forever
    table = load_ravdess(root, num_classes=7)
    assert len(table) == len(clips) == 14
    assert sorted(Path(rel).name for rel in table["rel_path"]) == sorted(clip.name for clip in clips)
    assert len(find_clips(root)) == 14  # mtcae-annotate finds them too


def test_the_ravdess_archives_extracted_one_per_folder_load_with_their_actors(clips, tmp_path):
    root = tmp_path / "RAVDESS"
    for clip in clips:
        actor = clip.parent.name  # Actor_01
        folder = root / f"Video_Speech_{actor}" / actor
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(clip, folder / clip.name)
    stray = root / "Video_Speech_Actor_02" / "Actor_02" / clips[0].name  # an actor-01 clip in actor 02's folder
    shutil.copy(clips[0], stray)
    table, report = load_ravdess(root, num_classes=7, return_report=True)
    assert len(table) == 14 and set(table["subject"]) == {"01", "02"}
    assert [rel for rel, _ in report.invalid] == [stray.relative_to(root).as_posix()]
    assert "does not match folder Actor_02" in report.invalid[0][1]


def test_mead_subjects_below_an_extra_folder_load(clips, tmp_path):
    folder = tmp_path / "MEAD" / "downloads" / "M003" / "video" / "front" / "angry" / "level_1"
    folder.mkdir(parents=True)
    shutil.copy(clips[0], folder / "001.mp4")
    table = load_mead(tmp_path / "MEAD")
    assert table["subject"] == ["M003"] and table["clip"] == ["001"] and table["level"] == [1]


def test_a_link_to_a_missing_file_is_reported_not_loaded(clips, tmp_path):
    folder = tmp_path / "set" / "Actor_01"
    folder.mkdir(parents=True)
    shutil.copy(clips[0], folder / clips[0].name)
    os.symlink(tmp_path / "gone.mp4", folder / clips[1].name)
    table, report = load_ravdess(tmp_path / "set", num_classes=7, return_report=True)
    assert len(table) == 1
    assert report.invalid == [(f"Actor_01/{clips[1].name}", "a symbolic link to a file that does not exist")]
    assert find_video_files(tmp_path / "set") == [f"Actor_01/{clips[0].name}"]
