"""DFEW, FERV39k and MAFW adapters on fake trees with the real naming and split-file formats, bad rows included."""

from pathlib import Path

import pytest

from processing.datasets_in_the_wild import DFEW_CLASSES, MAFW_CLASSES, load_dfew, load_ferv39k, load_mafw
from processing.folds import dfew5, ferv39k_official, mafw5


def _frames(folder: Path, count: int, name=lambda i: f"{i:05d}.jpg") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(1, count + 1):
        (folder / name(i)).touch()  # the adapters count frames by name; no image is opened


def _write(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def _assert_invalid(report, expected: dict[str, str]) -> None:
    """``report.invalid`` holds exactly the rows ``expected`` names, each with a reason containing its text."""
    reasons = dict(report.invalid)
    assert sorted(reasons) == sorted(expected), report.summary()
    for row, text in expected.items():
        assert text in reasons[row], (row, reasons[row])


# ------------------------------------------------------------------------------------------------ DFEW

DFEW_LABELS = {1: 1, 2: 2, 3: 7, 4: 3, 5: 5}  # clip -> DFEW label (1 Happy ... 7 Fear)


@pytest.fixture
def dfew_root(tmp_path) -> Path:
    frames = tmp_path / "Clip" / "clip_224x224"
    for clip in (1, 2, 3, 4, 5, 6, 7):
        _frames(frames / f"{clip:05d}", 3 + clip, name=lambda i, c=clip: f"{c:05d}_{i:05d}.jpg")
    (frames / "00008").mkdir()  # listed, but holds no frames
    splits = tmp_path / "EmoLabel_DataSplit"
    for k in range(1, 6):
        train = [f"{c},{DFEW_LABELS[c]}" for c in DFEW_LABELS if c != k]
        test = [f"{k},{DFEW_LABELS[k]}"]
        if k == 1:  # bad rows: label out of range, not a number, bad name, missing folder, a repeat
            train += ["2,8", "3,x", "abc,1", "99,1", "2,2"]
        if k == 2:  # clip 6 in both train and test of fold 2
            train.append("6,4")
            test.append("6,4")
        if k == 3:  # clip 2 with another label than in the other folds
            train = [row if row != "2,2" else "2,4" for row in train]
        if k == 4:
            train.append("8,1")
        _write(splits / "train(single-labeled)" / f"set_{k}.csv", ["video_name,label", *train])
        _write(splits / "test(single-labeled)" / f"set_{k}.csv", ["video_name,label", *test])
    return tmp_path


def test_dfew_all_folds_labels_and_report(dfew_root):
    dataset, report = load_dfew(dfew_root, return_report=True)
    rows = {row["subject"]: row for row in dataset}
    assert sorted(rows) == ["00001", "00002", "00003", "00004", "00005"]
    for clip, dfew_label in DFEW_LABELS.items():
        row = rows[f"{clip:05d}"]
        assert row["label"] == dfew_label - 1
        assert row["test_fold"] == clip and row["split"] is None
        assert row["rel_path"] == f"Clip/clip_224x224/{clip:05d}"
        assert Path(row["video"]) == dfew_root / row["rel_path"] and row["num_frames"] == 3 + clip
    assert dataset.features["label"].names == list(DFEW_CLASSES)
    assert dataset.features["label"].int2str(rows["00003"]["label"]) == "fear"
    train = "EmoLabel_DataSplit/train(single-labeled)/set_{}.csv:{}".format
    _assert_invalid(report, {
        train(1, 6): "label '8' is not one of DFEW's labels 1-7",
        train(1, 7): "label 'x'",
        train(1, 8): "video_name 'abc' is not a clip number",
        train(1, 9): "00099: does not exist",
        train(1, 10): "clip 00002 repeats",
        "EmoLabel_DataSplit/test(single-labeled)/set_2.csv:3": "clip 00006 is in both train and test of fold 2",
        train(3, 3): "clip 00002 has label id 3 here but 1",
        train(4, 6): "00008: the folder is empty",
    })
    assert report.filtered == 1  # 00007: on disk, in no split file (as DFEW's multi-labelled clips)
    assert any("fold 3 lists 1 loaded clip(s) in neither train nor test" in w for w in report.warnings)
    assert report.num_loaded == 5 and "5 videos loaded, 8 invalid" in dataset.info.description


def test_dfew5_folds_test_each_clip_once(dfew_root):
    dataset = load_dfew(dfew_root)
    folds = dfew5(dataset)
    assert [f.name for f in folds] == [f"fold{k}" for k in range(1, 6)]
    for k, fold in enumerate(folds, start=1):
        assert fold.test_subjects == [f"{k:05d}"]
        assert fold.train_subjects == sorted(f"{c:05d}" for c in DFEW_LABELS if c != k)
        assert dataset.select(fold.test_indices)["subject"] == [f"{k:05d}"]
        assert not set(fold.train_indices) & set(fold.test_indices)


def test_dfew_one_fold_has_the_official_split(dfew_root):
    dataset, report = load_dfew(dfew_root, fold=2, return_report=True)
    splits = dict(zip(dataset["subject"], dataset["split"]))
    assert splits == {"00001": "train", "00003": "train", "00004": "train", "00005": "train", "00002": "test"}
    _assert_invalid(report, {"EmoLabel_DataSplit/test(single-labeled)/set_2.csv:3": "both train and test"})
    assert report.filtered == 2  # 00007 and 00008 are not in fold 2's lists
    [fold] = dfew5(dataset)
    assert fold.name == "fold2" and fold.test_subjects == ["00002"] and len(fold.train_subjects) == 4


def test_dfew_bad_split_files_raise(dfew_root):
    with pytest.raises(ValueError, match="fold must be 1-5"):
        load_dfew(dfew_root, fold=6)
    (dfew_root / "EmoLabel_DataSplit" / "test(single-labeled)" / "set_5.csv").unlink()
    with pytest.raises(FileNotFoundError, match="set_5.csv"):
        load_dfew(dfew_root)
    _write(dfew_root / "EmoLabel_DataSplit" / "test(single-labeled)" / "set_4.csv", ["name,label", "4,3"])
    with pytest.raises(ValueError, match="header 'video_name,label'"):
        load_dfew(dfew_root, fold=4)


# --------------------------------------------------------------------------------------------- FERV39k


@pytest.fixture
def ferv39k_root(tmp_path) -> Path:
    frames = tmp_path / "2_ClipsforFaceCrop"
    for clip in ("Action/Sad/0010", "Action/Happy/0001", "Daily Life/Fear/0003", "Action/Neutral/0002",
                 "Action/Sad/0011", "Action/Angry/0005", "Action/Surprise/0007"):
        _frames(frames / clip, 2)
    setups = tmp_path / "4_setups" / "All_scenes"
    _write(setups / "train_All.csv", [
        "Action/Sad/0010 Sad", "Action/Happy/0001 Happy",
        "Action/Sad/0011 Happy",  # label disagrees with the emotion folder
        "Action/Sad/0012",  # no label
        "Action/Bored/0001 Bored",  # unknown class
        "Action/Sad/0099 Sad",  # no such folder
        "Action/Sad/0010 Sad",  # repeat
        "Action/Surprise/0007 Surprise",  # also in test
    ])
    _write(setups / "test_All.csv", [
        "Daily Life/Fear/0003 Fear", "Action/Neutral/0002 Neutral", "Action/Surprise/0007 Surprise",
    ])
    return tmp_path


def test_ferv39k_official_split_labels_and_report(ferv39k_root):
    dataset, report = load_ferv39k(ferv39k_root, return_report=True)
    rows = {row["subject"]: row for row in dataset}
    assert {s: (DFEW_CLASSES[r["label"]], r["split"], r["scene"]) for s, r in rows.items()} == {
        "Action/Sad/0010": ("sad", "train", "Action"),
        "Action/Happy/0001": ("happy", "train", "Action"),
        "Daily Life/Fear/0003": ("fear", "test", "Daily Life"),
        "Action/Neutral/0002": ("neutral", "test", "Action"),
    }
    assert rows["Daily Life/Fear/0003"]["rel_path"] == "2_ClipsforFaceCrop/Daily Life/Fear/0003"
    train = "4_setups/All_scenes/train_All.csv:{}".format
    _assert_invalid(report, {
        train(3): "label 'Happy' disagrees with the clip's emotion folder 'Sad'",
        train(4): "expected '<Scene>/<Emotion>/<NNNN> <Emotion>'",
        train(5): "label 'Bored' is not one of Happy, Sad",
        train(6): "0099: does not exist",
        train(7): "repeats",
        "4_setups/All_scenes/test_All.csv:3": "clip Action/Surprise/0007 is in both train and test",
    })
    assert report.filtered == 1  # Action/Angry/0005
    [fold] = ferv39k_official(dataset)
    assert fold.test_subjects == ["Action/Neutral/0002", "Daily Life/Fear/0003"]
    assert fold.train_subjects == ["Action/Happy/0001", "Action/Sad/0010"]


# ------------------------------------------------------------------------------------------------ MAFW

MAFW_LABELS = {1: "anger", 2: "disappointment", 3: "happiness", 4: "contempt", 5: "neutral"}


@pytest.fixture
def mafw_root(tmp_path) -> Path:
    for clip in list(MAFW_LABELS) + [9]:
        _frames(tmp_path / "data" / "frames" / f"{clip:05d}", 4, name=lambda i: f"{i}.png")
    sets = tmp_path / "Train & Test Set" / "single" / "no_caption"
    for k in range(1, 6):
        train = [f"{c:05d}.mp4 {MAFW_LABELS[c]}" for c in MAFW_LABELS if c != k]
        if k == 1:
            train += ["00006.mp4 joy", "00007.mp4", "abc.mp4 anger", "00099.mp4 anger"]
        _write(sets / f"set_{k}" / "train.txt", train)
        _write(sets / f"set_{k}" / "test.txt", [f"{k:05d}.mp4 {MAFW_LABELS[k]}"])
    return tmp_path


def test_mafw_labels_folds_and_report(mafw_root):
    dataset, report = load_mafw(mafw_root, return_report=True)
    labels = {s: MAFW_CLASSES[label] for s, label in zip(dataset["subject"], dataset["label"])}
    assert labels == {f"{c:05d}": name for c, name in MAFW_LABELS.items()}
    assert dataset.features["label"].names == list(MAFW_CLASSES) and len(MAFW_CLASSES) == 11
    assert MAFW_CLASSES.index("disappointment") == 10 and MAFW_CLASSES.index("anger") == 0
    assert set(dataset["num_frames"]) == {4}
    train = "Train & Test Set/single/no_caption/set_1/train.txt:{}".format
    _assert_invalid(report, {train(5): "label 'joy' is not one of MAFW's classes",
                             train(6): "expected 'NNNNN.mp4 label'", train(7): "clip name 'abc.mp4' is not NNNNN.mp4",
                             train(8): "00099: does not exist"})
    assert report.filtered == 1  # 00009 is in no list
    folds = mafw5(dataset)
    assert [fold.test_subjects for fold in folds] == [[f"{k:05d}"] for k in range(1, 6)]
    set_5 = mafw_root / "Train & Test Set" / "single" / "no_caption" / "set_5"
    _write(set_5 / "train.txt", [f"{c:05d}.mp4 {MAFW_LABELS[c]}" for c in (2, 3, 4)])
    _write(set_5 / "test.txt", ["00005.mp4 neutral", "00001.mp4 anger"])  # clip 1 tested in folds 1 and 5
    _, report = load_mafw(mafw_root, return_report=True)
    assert any("1 clip(s) are in the test lists of several folds, e.g. ['00001']" in w for w in report.warnings)
    one = load_mafw(mafw_root, fold=3)
    assert sorted(zip(one["subject"], one["split"])) == [
        ("00001", "train"), ("00002", "train"), ("00003", "test"), ("00004", "train"), ("00005", "train")]


# -------------------------------------------------------------------------------------- registry, folds


@pytest.mark.parametrize("key, root_fixture, classes, scheme, tested", [
    ("dfew", "dfew_root", DFEW_CLASSES, "dfew5", {k: [f"{k:05d}"] for k in range(1, 6)}),
    ("mafw", "mafw_root", MAFW_CLASSES, "mafw5", {k: [f"{k:05d}"] for k in range(1, 6)}),
    ("ferv39k", "ferv39k_root", DFEW_CLASSES, "ferv39k_official",
     {1: ["Action/Neutral/0002", "Daily Life/Fear/0003"]}),
])
def test_registry_entries_load_the_trees_and_pick_official_folds_by_number(key, root_fixture, classes, scheme, tested,
                                                                           request):
    from processing.dataset_registry import get_dataset
    from processing.folds import get_fold, make_folds, scheme_fold_count

    entry = get_dataset(key)
    assert (entry.class_names, entry.fold_scheme, entry.resize_mode) == (classes, scheme, "full_frame")
    assert entry.citation.startswith("@inproceedings") and entry.url.startswith("https://")
    root = request.getfixturevalue(root_fixture)
    table, report = entry.load(root, None)
    assert table.features["label"].names == list(classes) and report.num_loaded == len(table)
    folds = make_folds(table, scheme)
    assert scheme_fold_count(scheme) == len(tested) == len(folds)
    for number, test_subjects in tested.items():
        fold = get_fold(folds, number, scheme)
        assert fold.number == number and fold.test_subjects == test_subjects
        assert sorted(fold.train_subjects) == sorted(set(table["subject"]) - set(test_subjects))
    with pytest.raises(ValueError, match=f"fold {len(tested) + 1} is out of range: {scheme} has folds 1-{len(tested)}"):
        get_fold(folds, len(tested) + 1, scheme)


def test_official_folds_of_another_data_set_are_refused(tmp_path):
    from processing.folds import make_folds

    with pytest.raises(ValueError, match="need a dataset loaded with load_dfew"):
        make_folds(["01", "02"], "dfew5")


def test_training_run_takes_the_official_test_list_and_splits_validation_off_its_training_clips(dfew_root):
    from hub_scripts.training.arguments import DataArguments
    from hub_scripts.training.data import split_fold

    data_args = DataArguments(dataset="dfew", data_root=str(dfew_root), fold=4)
    assert data_args.scheme == "dfew5" and data_args.framing == "full_frame"
    table, _ = data_args.entry.load(dfew_root, data_args.load_options(), data_args.scheme)
    fold = split_fold(table, data_args, seed=0)
    assert fold.number == 4 and fold.test_subjects == ["00004"]
    assert len(fold.val_subjects) == 1 and len(fold.train_subjects) == 3
    assert set(fold.val_subjects) | set(fold.train_subjects) == {"00001", "00002", "00003", "00005"}
