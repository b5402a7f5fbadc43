"""The paper's own RAVDESS protocol: one 12 / 6 / 6-actor split of the 1,440 audio-video speech clips, 7 classes."""

from collections import Counter
from pathlib import Path

import pytest

from processing.datasets import load_ravdess
from processing.folds import (
    RAVDESS6_FOLDS,
    RAVDESS_SINGLE_LOAD_FILTER,
    RAVDESS_SINGLE_SPLIT,
    make_folds,
    ravdess_single,
)


def _speech_trials() -> list[tuple[int, int, int, int]]:
    """RAVDESS's 60 speech trials per actor: (emotion, intensity, statement, repetition).

    Neutral has no strong intensity.
    """
    return [(e, i, s, r) for e in range(1, 9) for i in (1, 2) for s in (1, 2) for r in (1, 2)
            if not (e == 1 and i == 2)]


@pytest.fixture(scope="module")
def full_ravdess(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ravdess")
    for actor in range(1, 25):
        folder = root / f"Actor_{actor:02d}"
        folder.mkdir()
        for modality in (1, 2):  # audio-video and video-only copies of every speech trial
            for e, i, s, r in _speech_trials():
                (folder / f"{modality:02d}-01-{e:02d}-{i:02d}-{s:02d}-{r:02d}-{actor:02d}.mp4").touch()
        (folder / f"01-02-03-01-01-01-{actor:02d}.mp4").touch()  # a song clip: not in the protocol
    return root


def test_ravdess_single_is_720_360_360_clips_of_12_6_6_disjoint_actors(full_ravdess):
    dataset = load_ravdess(full_ravdess, **RAVDESS_SINGLE_LOAD_FILTER)
    assert len(dataset) == 1440
    assert dataset.features["label"].num_classes == 7
    [fold] = ravdess_single(dataset)
    assert (len(fold.train_indices), len(fold.val_indices), len(fold.test_indices)) == (720, 360, 360)
    assert (len(fold.train_subjects), len(fold.val_subjects), len(fold.test_subjects)) == (12, 6, 6)
    train, val, test = set(fold.train_subjects), set(fold.val_subjects), set(fold.test_subjects)
    assert not (train & val or train & test or val & test)
    assert train | val | test == {f"{a:02d}" for a in range(1, 25)}
    splits = fold.select(dataset)
    assert set(splits) == {"train", "validation", "test"}
    for name, actors in (("train", train), ("validation", val), ("test", test)):
        assert set(splits[name]["subject"]) == actors
        # 7 classes, calm merged into neutral: per actor 4 neutral + 8 calm clips, and 8 of each other class.
        expected = {0: 12 * len(actors), **{label: 8 * len(actors) for label in range(1, 7)}}
        assert Counter(splits[name]["label"]) == expected


def test_ravdess_single_is_gender_balanced_and_keeps_the_notebooks_test_actors():
    for name, size in (("train", 12), ("validation", 6), ("test", 6)):
        actors = RAVDESS_SINGLE_SPLIT[name]
        assert len(actors) == size
        assert sum(a % 2 == 1 for a in actors) == size // 2  # odd actors are male
    assert {10, 18, 21} <= set(RAVDESS_SINGLE_SPLIT["test"])


def test_ravdess_single_differs_from_the_peers_six_folds(full_ravdess):
    subjects = [f"{a:02d}" for a in range(1, 25)]
    peers_test_sets = [set(f"{a:02d}" for a in actors) for actors in RAVDESS6_FOLDS]
    assert [set(f.test_subjects) for f in make_folds(subjects, "ravdess6")] == peers_test_sets
    [fold] = ravdess_single(subjects)
    assert set(fold.test_subjects) not in peers_test_sets
    assert fold.name == "single" and fold.val_subjects


def test_ravdess_single_scheme_loads_the_protocol_and_keeps_its_validation_actors(full_ravdess):
    from hub_scripts.training.arguments import DataArguments
    from hub_scripts.training.data import split_fold
    from processing.folds import get_fold, scheme_fold_count

    data_args = DataArguments(dataset="ravdess", data_root=str(full_ravdess), fold_scheme="ravdess_single")
    # The registry applies RAVDESS_SINGLE_LOAD_FILTER for this scheme: no video-only copies, no song clip.
    table, _ = data_args.entry.load(full_ravdess, data_args.load_options(), data_args.scheme)
    assert len(table) == 1440 and table.features["label"].num_classes == 7
    assert set(table["modality"]) == {"01"} and set(table["vocal"]) == {"speech"}
    peers = DataArguments(dataset="ravdess", data_root=str(full_ravdess), fold_scheme="ravdess6")
    # other schemes keep the video-only copies
    assert len(peers.entry.load(full_ravdess, peers.load_options(), peers.scheme)[0]) == 2880
    folds = make_folds(table, "ravdess_single")
    assert scheme_fold_count("ravdess_single") == 1 and [f.number for f in folds] == [1]
    fold = get_fold(folds, 1, "ravdess_single")
    assert (len(fold.train_subjects), len(fold.val_subjects), len(fold.test_subjects)) == (12, 6, 6)
    assert (len(fold.train_indices), len(fold.val_indices), len(fold.test_indices)) == (720, 360, 360)
    for name in ("train", "validation", "test"):
        assert [int(a) for a in getattr(fold, {"validation": "val"}.get(name, name) + "_subjects")] == list(
            RAVDESS_SINGLE_SPLIT[name])
    # mtcae-train keeps the protocol's validation actors instead of drawing its own.
    kept = split_fold(table, data_args, seed=0)
    assert (kept.train_subjects, kept.val_subjects, kept.test_subjects) == (
        fold.train_subjects, fold.val_subjects, fold.test_subjects)
    with pytest.raises(ValueError, match="fold 2 is out of range: ravdess_single has folds 1-1"):
        get_fold(folds, 2, "ravdess_single")


def test_ravdess_single_refuses_eight_classes(full_ravdess):
    from hub_scripts.training.arguments import DataArguments

    data_args = DataArguments(dataset="ravdess", data_root=str(full_ravdess), fold_scheme="ravdess_single",
                              num_classes=8)
    with pytest.raises(ValueError, match="ravdess_single is the paper's 7-class protocol"):
        data_args.entry.load(full_ravdess, data_args.load_options(), data_args.scheme)
