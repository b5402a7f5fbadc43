"""Dataset adapters on fake trees of empty files with the real naming, and subject-disjoint folds."""

import json
import logging
from pathlib import Path

import pytest

from processing.datasets import (
    CREMA_D_CLASSES,
    MEAD_CLASSES,
    RAVDESS_7_CLASSES,
    RAVDESS_8_CLASSES,
    load_crema_d,
    load_mead,
    load_ravdess,
    load_video_folder,
)
from processing.folds import add_validation_split, get_fold, make_folds


def _touch(root: Path, *relpaths: str) -> None:
    for rel in relpaths:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()


def _by_rel(dataset) -> dict:
    return {row["rel_path"]: row for row in dataset}


def _invalid(report) -> set:
    return {rel for rel, _ in report.invalid}


# ---------------------------------------------------------------------------------------------- RAVDESS


@pytest.fixture
def ravdess_root(tmp_path) -> Path:
    _touch(
        tmp_path,
        "Actor_01/01-01-03-01-01-01-01.mp4",  # AV speech happy
        "Actor_01/02-01-02-02-01-02-01.mp4",  # video-only speech calm
        "Actor_01/02-01-01-01-02-01-01.mp4",  # neutral
        "Actor_01/02-02-04-01-01-01-01.mp4",  # song sad: filtered for speech
        "Actor_01/03-01-03-01-01-01-01.wav",  # audio-only: not a video, ignored
        "Actor_02/02-01-08-02-02-02-02.mp4",  # surprised
        "Actor_02/01-01-05-01-01-01-02.mp4",  # angry
        "Actor_02/notes.txt",
        # Reported: bad name, out-of-range codes, wrong folder, audio-only modality in a video file.
        "Actor_01/foo.mp4",
        "Actor_01/02-01-09-01-01-01-01.mp4",
        "Actor_01/02-01-03-03-01-01-01.mp4",
        "Actor_02/02-01-03-01-01-01-05.mp4",
        "Actor_02/03-01-03-01-01-01-02.mp4",
        "Actor_02/04-01-03-01-01-01-02.mp4",
    )
    return tmp_path


def test_ravdess_7_classes(ravdess_root, caplog):
    with caplog.at_level(logging.WARNING):
        dataset, report = load_ravdess(ravdess_root, num_classes=7, return_report=True)
    assert dataset.features["label"].names == list(RAVDESS_7_CLASSES)
    rows = _by_rel(dataset)
    assert set(rows) == {
        "Actor_01/01-01-03-01-01-01-01.mp4",
        "Actor_01/02-01-02-02-01-02-01.mp4",
        "Actor_01/02-01-01-01-02-01-01.mp4",
        "Actor_02/02-01-08-02-02-02-02.mp4",
        "Actor_02/01-01-05-01-01-01-02.mp4",
    }
    names = RAVDESS_7_CLASSES
    assert names[rows["Actor_01/01-01-03-01-01-01-01.mp4"]["label"]] == "happy"
    assert names[rows["Actor_01/02-01-02-02-01-02-01.mp4"]["label"]] == "neutral"  # calm merged
    assert names[rows["Actor_01/02-01-01-01-02-01-01.mp4"]["label"]] == "neutral"
    assert names[rows["Actor_02/02-01-08-02-02-02-02.mp4"]["label"]] == "surprised"
    assert names[rows["Actor_02/01-01-05-01-01-01-02.mp4"]["label"]] == "angry"
    row = rows["Actor_02/02-01-08-02-02-02-02.mp4"]
    assert row["subject"] == "02" and row["actor"] == 2 and row["gender"] == "female"
    assert (row["intensity"], row["statement"], row["repetition"]) == (2, 2, 2)
    assert Path(row["video"]).is_absolute() and Path(row["video"]).is_file()

    assert _invalid(report) == {
        "Actor_01/foo.mp4",
        "Actor_01/02-01-09-01-01-01-01.mp4",
        "Actor_01/02-01-03-03-01-01-01.mp4",
        "Actor_02/02-01-03-01-01-01-05.mp4",
        "Actor_02/03-01-03-01-01-01-02.mp4",
        "Actor_02/04-01-03-01-01-01-02.mp4",
    }
    assert report.filtered == 1 and report.ignored_non_video == 2
    assert "6 invalid" in dataset.info.description and "Actor_01/foo.mp4" in dataset.info.description
    assert "do not match the RAVDESS layout" in caplog.text


def test_ravdess_8_classes_and_filters(ravdess_root):
    dataset = load_ravdess(ravdess_root, num_classes=8, vocal="both")
    assert dataset.features["label"].names == list(RAVDESS_8_CLASSES)
    rows = _by_rel(dataset)
    assert RAVDESS_8_CLASSES[rows["Actor_01/02-01-02-02-01-02-01.mp4"]["label"]] == "calm"
    assert RAVDESS_8_CLASSES[rows["Actor_01/02-02-04-01-01-01-01.mp4"]["label"]] == "sad"
    assert len(dataset) == 6
    video_only = load_ravdess(ravdess_root, modalities=("02",))
    assert set(video_only["modality"]) == {"02"} and len(video_only) == 3
    song = load_ravdess(ravdess_root, vocal="song")
    assert song["vocal"] == ["song"]
    with pytest.raises(ValueError):
        load_ravdess(ravdess_root, modalities=("03",))


# ---------------------------------------------------------------------------------------------- CREMA-D


def test_crema_d(tmp_path):
    _touch(
        tmp_path,
        "VideoFlash/1001_DFA_ANG_XX.flv",
        "VideoFlash/1001_IEO_HAP_HI.flv",
        "VideoFlash/1091_TSI_NEU_XX.flv",
        "VideoFlash/1050_WSI_SAD_LO.flv",
        "VideoFlash/1020_ITS_FEA_MD.flv",
        "VideoFlash/1033_IWW_DIS_HI.flv",
        "VideoFlash/1076_MTI_NEU_XX.flv",  # known broken: skipped
        "VideoFlash/1064_IEO_DIS_MD.flv",  # known broken: skipped
        "VideoFlash/0999_DFA_ANG_XX.flv",  # actor out of range
        "VideoFlash/1001_DFA_CAL_XX.flv",  # unknown emotion
        "VideoFlash/1001_ABC_ANG_XX.flv",  # unknown sentence
        "VideoFlash/1001_DFA_ANG_ZZ.flv",  # unknown level
        "VideoFlash/readme.flv",
        "VideoFlash/1001_DFA_ANG_XX.mp4",  # wrong extension
        "AudioWAV/1001_DFA_ANG_XX.wav",
    )
    dataset, report = load_crema_d(tmp_path, return_report=True)
    assert dataset.features["label"].names == list(CREMA_D_CLASSES)
    rows = _by_rel(dataset)
    expected = {
        "VideoFlash/1001_DFA_ANG_XX.flv": ("angry", "1001", "XX"),
        "VideoFlash/1001_IEO_HAP_HI.flv": ("happy", "1001", "HI"),
        "VideoFlash/1091_TSI_NEU_XX.flv": ("neutral", "1091", "XX"),
        "VideoFlash/1050_WSI_SAD_LO.flv": ("sad", "1050", "LO"),
        "VideoFlash/1020_ITS_FEA_MD.flv": ("fear", "1020", "MD"),
        "VideoFlash/1033_IWW_DIS_HI.flv": ("disgust", "1033", "HI"),
    }
    assert set(rows) == set(expected)
    for rel, (name, subject, level) in expected.items():
        assert CREMA_D_CLASSES[rows[rel]["label"]] == name
        assert rows[rel]["subject"] == subject and rows[rel]["level"] == level
    assert {rel for rel, _ in report.skipped} == {"VideoFlash/1076_MTI_NEU_XX.flv", "VideoFlash/1064_IEO_DIS_MD.flv"}
    assert _invalid(report) == {
        "VideoFlash/0999_DFA_ANG_XX.flv",
        "VideoFlash/1001_DFA_CAL_XX.flv",
        "VideoFlash/1001_ABC_ANG_XX.flv",
        "VideoFlash/1001_DFA_ANG_ZZ.flv",
        "VideoFlash/readme.flv",
        "VideoFlash/1001_DFA_ANG_XX.mp4",
    }
    # The VideoFlash folder itself as root (files directly in root).
    flat = load_crema_d(tmp_path / "VideoFlash")
    assert sorted(flat["rel_path"]) == sorted(Path(r).name for r in expected)


# ---------------------------------------------------------------------------------------------- MEAD


def test_mead(tmp_path):
    _touch(
        tmp_path,
        "M003/video/front/angry/level_1/001.mp4",
        "M003/video/front/neutral/level_1/001.mp4",
        "M003/video/front/contempt/level_2/003.mp4",
        "W009/video/front/happy/level_3/002.mp4",
        "W009/video/front/surprised/level_1/010.mp4",
        "M003/video/left_30/angry/level_1/001.mp4",  # other view: filtered
        "M003/audio/angry/level_1/001.m4a",  # audio: ignored
        "M003/video/front/neutral/level_2/001.mp4",  # neutral only at level 1
        "M003/video/front/anger/level_1/001.mp4",  # unknown emotion
        "M003/video/side/angry/level_1/001.mp4",  # unknown view
        "M003/video/front/angry/level_4/001.mp4",  # level out of range
        "M003/video/front/angry/level_1/clip.mp4",  # bad clip name
        "M003/front/angry/level_1/001.mp4",  # wrong depth
    )
    dataset, report = load_mead(tmp_path, return_report=True)
    assert dataset.features["label"].names == list(MEAD_CLASSES)
    rows = _by_rel(dataset)
    expected = {
        "M003/video/front/angry/level_1/001.mp4": ("angry", "M003", 1),
        "M003/video/front/neutral/level_1/001.mp4": ("neutral", "M003", 1),
        "M003/video/front/contempt/level_2/003.mp4": ("contempt", "M003", 2),
        "W009/video/front/happy/level_3/002.mp4": ("happy", "W009", 3),
        "W009/video/front/surprised/level_1/010.mp4": ("surprised", "W009", 1),
    }
    assert set(rows) == set(expected)
    for rel, (name, subject, level) in expected.items():
        assert MEAD_CLASSES[rows[rel]["label"]] == name
        assert rows[rel]["subject"] == subject and rows[rel]["level"] == level and rows[rel]["view"] == "front"
    assert report.filtered == 1 and report.ignored_non_video == 1
    assert _invalid(report) == {
        "M003/video/front/neutral/level_2/001.mp4",
        "M003/video/front/anger/level_1/001.mp4",
        "M003/video/side/angry/level_1/001.mp4",
        "M003/video/front/angry/level_4/001.mp4",
        "M003/video/front/angry/level_1/clip.mp4",
        "M003/front/angry/level_1/001.mp4",
    }
    both = load_mead(tmp_path, views=("front", "left_30"), levels=(1,))
    assert len(both) == 4 and set(both["view"]) == {"front", "left_30"}


# ---------------------------------------------------------------------------------------------- generic


def test_video_folder(tmp_path):
    _touch(tmp_path, "happy/s01_a.mp4", "happy/deeper/s02_b.avi", "sad/s01_c.mp4", "sad/x.mp4",
           "other/s03_d.mp4", "loose.mp4", "sad/readme.md")
    dataset, report = load_video_folder(tmp_path, class_names=["sad", "happy"],
                                        subject_regex=r"(?P<subject>s\d+)_", return_report=True)
    assert dataset.features["label"].names == ["sad", "happy"]
    rows = _by_rel(dataset)
    assert {rel: (row["label"], row["subject"]) for rel, row in rows.items()} == {
        "happy/s01_a.mp4": (1, "s01"),
        "happy/deeper/s02_b.avi": (1, "s02"),
        "sad/s01_c.mp4": (0, "s01"),
        "sad/x.mp4": (0, "unknown"),
    }
    assert _invalid(report) == {"other/s03_d.mp4", "loose.mp4"}
    assert any("sad/x.mp4" in w for w in report.warnings)
    default = load_video_folder(tmp_path)
    assert default.features["label"].names == ["happy", "other", "sad"]  # sorted when not given
    assert set(default["subject"]) == {"unknown"}


def test_the_same_clip_under_two_extensions_is_loaded_once(tmp_path):
    _touch(tmp_path / "ravdess", "Actor_01/02-01-03-01-01-01-01.avi", "Actor_01/02-01-03-01-01-01-01.mp4",
           "Actor_01/02-01-04-01-01-01-01.avi")
    _touch(tmp_path / "folder", "happy/s01_a.webm", "happy/s01_a.mp4")
    dataset, report = load_ravdess(tmp_path / "ravdess", return_report=True)
    assert sorted(dataset["rel_path"]) == ["Actor_01/02-01-03-01-01-01-01.mp4", "Actor_01/02-01-04-01-01-01-01.avi"]
    assert report.skipped == [("Actor_01/02-01-03-01-01-01-01.avi",
                               "the same clip as Actor_01/02-01-03-01-01-01-01.mp4 (one file per clip is loaded)")]
    folder, report = load_video_folder(tmp_path / "folder", return_report=True)
    assert folder["rel_path"] == ["happy/s01_a.mp4"] and [r for r, _ in report.skipped] == ["happy/s01_a.webm"]


# ---------------------------------------------------------------------------------------------- folds


def _check_partition(folds, subjects):
    tested = [s for fold in folds for s in fold.test_subjects]
    assert sorted(tested) == sorted(set(subjects)), "every subject tested exactly once"
    for fold in folds:
        assert not set(fold.train_subjects) & set(fold.test_subjects)
        assert set(fold.train_subjects) | set(fold.test_subjects) == set(subjects)
        assert {subjects[i] for i in fold.test_indices} == set(fold.test_subjects)
        assert {subjects[i] for i in fold.train_indices} == set(fold.train_subjects)
        assert len(fold.train_indices) + len(fold.test_indices) == len(subjects)


def test_ravdess6_and_crema5_folds():
    subjects = [f"{a:02d}" for a in range(1, 25) for _ in range(3)]
    folds = make_folds(subjects, "ravdess6")
    assert len(folds) == 6
    assert folds[0].test_subjects == ["01", "02", "03", "04"]
    assert folds[5].test_subjects == ["21", "22", "23", "24"]
    _check_partition(folds, subjects)

    crema = [str(a) for a in range(1001, 1092)]
    folds = make_folds(crema, "crema5")
    assert [len(f.test_subjects) for f in folds] == [18, 18, 18, 18, 19]
    assert folds[4].test_subjects[0] == "1073" and folds[4].test_subjects[-1] == "1091"
    _check_partition(folds, crema)

    # A subset (e.g. 12 actors) keeps only the folds that have actors.
    assert len(make_folds([f"{a:02d}" for a in range(1, 13)], "ravdess6")) == 3


def test_fold_numbers_are_the_protocol_folds_when_subjects_are_missing():
    subjects = [f"{a:02d}" for a in range(5, 11) for _ in range(2)]  # actors 05-10 only
    folds = make_folds(subjects, "ravdess6")
    assert [f.number for f in folds] == [2, 3]
    assert get_fold(folds, 2, "ravdess6").test_subjects == ["05", "06", "07", "08"]
    assert get_fold(folds, 3, "ravdess6").test_subjects == ["09", "10"]
    with pytest.raises(ValueError, match=r"fold 1 of ravdess6 \(subjects 1-4\) has no test subjects.*can run: 2, 3"):
        get_fold(folds, 1, "ravdess6")
    with pytest.raises(ValueError, match="fold 7 is out of range: ravdess6 has folds 1-6"):
        get_fold(folds, 7, "ravdess6")
    # The validation split keeps the fold's number.
    assert add_validation_split(folds[0], subjects, num_val_subjects=1).number == 2


def test_subject_kfold_and_validation(ravdess_root):
    from sklearn.model_selection import GroupKFold

    subjects = [f"S{i}" for i in range(10) for _ in range(2)]
    folds = make_folds(subjects, "subject_kfold", k=3, seed=0)
    reference = GroupKFold(n_splits=3, shuffle=True, random_state=0).split(subjects, groups=subjects)
    assert [f.test_indices for f in folds] == [test.tolist() for _, test in reference]
    assert [f.number for f in folds] == [1, 2, 3]
    assert len(folds) == 3 and sorted(len(f.test_subjects) for f in folds) == [3, 3, 4]
    _check_partition(folds, subjects)
    assert [f.test_subjects for f in make_folds(subjects, "subject_kfold", k=3, seed=0)] == \
        [f.test_subjects for f in folds], "deterministic by seed"

    fold = add_validation_split(folds[0], subjects, num_val_subjects=2, seed=1)
    assert len(fold.val_subjects) == 2
    assert not set(fold.val_subjects) & (set(fold.train_subjects) | set(fold.test_subjects))
    assert set(fold.val_subjects) | set(fold.train_subjects) == set(folds[0].train_subjects)
    assert {subjects[i] for i in fold.val_indices} == set(fold.val_subjects)

    dataset = load_ravdess(ravdess_root)
    splits = make_folds(dataset, "subject_kfold", k=2)[0].select(dataset)
    assert set(splits) == {"train", "test"}
    assert not set(splits["train"]["subject"]) & set(splits["test"]["subject"])
    assert len(splits["train"]) + len(splits["test"]) == len(dataset)
    with pytest.raises(ValueError):
        make_folds(subjects, "subject_kfold", k=11)


def test_split_file_folds(tmp_path):
    subjects = ["01", "02", "03", "04", "05", "06"]
    split_file = tmp_path / "splits.json"
    split_file.write_text(json.dumps({
        "a": {"train": [1, 2, 3], "val": ["04"], "test": ["05", "06"]},
        "b": {"train": ["05", "06", "03"], "test": ["01", "02"]},
    }))
    folds = make_folds(subjects, split_file)
    assert [f.name for f in folds] == ["a", "b"]
    assert folds[0].train_subjects == ["01", "02", "03"]  # integer ids match zero-padded ones
    assert folds[0].val_subjects == ["04"] and folds[0].test_subjects == ["05", "06"]
    assert folds[0].val_indices == [3] and folds[0].test_indices == [4, 5]
    assert folds[1].val_subjects == [] and folds[1].test_indices == [0, 1]

    assert [f.number for f in folds] == [1, 2]

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"x": {"train": ["01", "02"], "test": ["02"]}}))
    with pytest.raises(ValueError, match="more than one"):
        make_folds(subjects, bad)
    # A test or validation subject the data set does not have is refused up front, naming file and fold.
    typo = tmp_path / "typo.json"
    typo.write_text(json.dumps({"a": {"train": ["01", "02"], "test": ["05", "66"]}}))
    with pytest.raises(ValueError, match=r"typo.json: fold 'a': test subjects \['66'\] are not in the data set"):
        make_folds(subjects, typo)
    typo.write_text(json.dumps({"a": {"train": ["01"], "val": ["07"], "test": ["05"]}}))
    with pytest.raises(ValueError, match=r"validation subjects \['7'\]"):
        make_folds(subjects, typo)
    typo.write_text(json.dumps({"a": {"train": ["01"], "test": []}}))
    with pytest.raises(ValueError, match="non-empty 'test' list"):
        make_folds(subjects, typo)
    typo.write_text("{not json")
    with pytest.raises(ValueError, match="cannot read the split file"):
        make_folds(subjects, typo)
    with pytest.raises(ValueError):
        make_folds(subjects, "nonsense")


# ---------------------------------------------------------------------------------------------- face labels


def test_face_labels_are_joined_from_the_annotation_cache(ravdess_root, caplog):
    import numpy as np
    import torch

    from processing.annotation_cache import AnnotationCache
    from processing.clip_transform import ClipTransform
    from processing.face_labels_mtcae import FaceLabels

    labelled = "Actor_01/01-01-03-01-01-01-01.mp4"
    cache = AnnotationCache(ravdess_root / "face_labels.parquet")
    rng = np.random.default_rng(0)
    labels = FaceLabels(frame_indices=np.arange(0, 32, 2), boxes=rng.uniform(0.1, 0.4, (16, 4)).astype(np.float32),
                        landmarks=rng.uniform(0.2, 0.5, (16, 5, 2)).astype(np.float32),
                        mask=np.arange(16) % 5 != 0, scores=np.ones(16, np.float32), width=64, height=48,
                        num_source_frames=32)
    cache.add(labelled, "uniform:16", labels, detector="mtcnn")
    cache.save()

    with caplog.at_level(logging.WARNING):
        dataset = load_ravdess(ravdess_root, annotations=ravdess_root / "face_labels.parquet")
    rows = _by_rel(dataset)
    joined = dict(zip(dataset["rel_path"], AnnotationCache(ravdess_root / "face_labels.parquet").labels_of(dataset)))
    row = joined[labelled]  # the row's labels, found by its face_labels key
    np.testing.assert_array_equal(row.frame_indices, labels.frame_indices)
    np.testing.assert_allclose(row.boxes, labels.boxes, rtol=0, atol=1e-7)
    np.testing.assert_allclose(row.landmarks, labels.landmarks, rtol=0, atol=1e-7)
    assert row.mask.tolist() == labels.mask.tolist()
    unlabelled = [r for rel, r in joined.items() if rel != labelled]
    assert unlabelled and all(r is None for r in unlabelled)
    assert "have no face labels" in caplog.text

    # ClipTransform hands the joined labels to the processor as they are.
    class RecordingProcessor:
        def __call__(self, videos, face_labels=None, **kwargs):
            self.face_labels = face_labels
            n = len(videos)
            return {"pixel_values": torch.zeros(n, 1), "face_boxes": torch.zeros(n, 16, 4),
                    "face_landmarks": torch.zeros(n, 16, 5, 2), "face_mask": torch.zeros(n, 16, dtype=torch.bool)}

    processor = RecordingProcessor()
    batch = dataset.select([list(rows).index(labelled), list(rows).index(next(iter(set(rows) - {labelled})))])[:]
    ClipTransform(processor, face_labels=AnnotationCache(ravdess_root / "face_labels.parquet"))(batch)
    first, second = processor.face_labels
    np.testing.assert_array_equal(first.frame_indices, labels.frame_indices)
    assert first.mask.tolist() == labels.mask.tolist() and second is None
