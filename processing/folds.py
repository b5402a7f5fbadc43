"""Subject-independent folds: the fold-scheme registry, ``make_folds`` and the validation split.

A :class:`FoldScheme` turns a loaded table (its ``subject`` column) into numbered, subject-disjoint
:class:`Fold` objects. The built-in schemes (:data:`FOLD_SCHEMES`):

- ``ravdess6``: MAE-DFER / HiCMAE, fold k (1..6) tests actors 4k-3..4k (:data:`RAVDESS6_FOLDS`);
- ``crema5``: the peers' CREMA-D folds by actor range (:data:`CREMA5_FOLDS`);
- ``ravdess_single``: the MTCAE-DFER authors' one split, 12 / 6 / 6 actors for train / validation / test
  (:data:`RAVDESS_SINGLE_SPLIT`), on the 1,440 audio-video speech clips in 7 classes: the scheme declares that
  load filter itself (:attr:`FoldScheme.load_filter`), and the data-set registry applies it;
- ``dfew5``, ``mafw5``, ``ferv39k_official``: the official folds of those data sets, read from their adapters'
  ``test_fold`` column (clip-wise: these sets publish no subject ids);
- ``subject_kfold``: scikit-learn's ``GroupKFold(k, shuffle=True, random_state=seed)`` over the subjects.

Anything else given as a scheme is a JSON split file (:func:`load_split_file`). :func:`make_folds` is a lookup
of the scheme; every fold carries its protocol number (fold 2 of ``ravdess6`` tests actors 05-08 even when
actors 01-04 are absent), :func:`get_fold` picks a fold by that number and :func:`add_validation_split` splits
validation subjects off a fold's training subjects.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .datasets_in_the_wild import DFEW_FOLDS, MAFW_FOLDS

if TYPE_CHECKING:
    from datasets import Dataset, DatasetDict

logger = logging.getLogger(__name__)

RAVDESS6_FOLDS = tuple(tuple(range(4 * k - 3, 4 * k + 1)) for k in range(1, 7))
"""HiCMAE / MAE-DFER RAVDESS protocol: fold k (1..6) tests actors 4k-3..4k."""

CREMA5_FOLDS = ((1001, 1018), (1019, 1036), (1037, 1054), (1055, 1072), (1073, 1091))
"""Peers' CREMA-D protocol: fold k tests the actors of the k-th inclusive id range."""

RAVDESS_SINGLE_SPLIT = {
    "train": (1, 2, 4, 6, 7, 9, 12, 14, 15, 17, 20, 23),
    "validation": (3, 8, 11, 16, 19, 24),
    "test": (5, 10, 13, 18, 21, 22),
}
"""Actors of the ``ravdess_single`` split (ours: the authors publish only the split's sizes).

The authors' notebook splits the 1,440 clips 720 / 360 / 360 by actor (60 clips each), but the actor
lists are not published; the test clips it prints come from actors 10, 18 and 21, which this assignment
puts in test too. Each split is gender-balanced (RAVDESS: odd actors are male, even are female):
train 6 + 6, validation 3 + 3, test 3 + 3, and the actors of each split are spread over 1-24.
"""

RAVDESS_SINGLE_LOAD_FILTER = {"num_classes": 7, "vocal": "speech", "modalities": ("01",)}
"""What ``ravdess_single`` loads: 7 classes, speech, audio-video files only (01-01-*), i.e. 24 actors x 60 =
1,440 clips (the notebook's files are named 01-01-EE-II-SS-RR-AA.mp4)."""


@dataclass
class Fold:
    """One subject-disjoint split of a dataset.

    Attributes:
        name: e.g. "fold1" (a split file's own fold names are kept).
        train_subjects / test_subjects / val_subjects: sorted subject ids (``val`` empty unless set).
        train_indices / test_indices / val_indices: row indices into the dataset the fold was made from.
        number: the fold's 1-based number in its scheme (the protocol's fold number, whichever folds
            the data set has subjects for; a split file's folds are numbered in file order).
    """

    name: str
    train_subjects: list[str]
    test_subjects: list[str]
    val_subjects: list[str] = field(default_factory=list)
    train_indices: list[int] = field(default_factory=list)
    test_indices: list[int] = field(default_factory=list)
    val_indices: list[int] = field(default_factory=list)
    number: int | None = None

    def select(self, dataset: Dataset) -> DatasetDict:
        """``DatasetDict`` with "train", "test" and (when there are validation subjects) "validation"."""
        from datasets import DatasetDict

        splits = {"train": dataset.select(self.train_indices), "test": dataset.select(self.test_indices)}
        if self.val_subjects:
            splits["validation"] = dataset.select(self.val_indices)
        return DatasetDict(splits)


def _subject_key(subject) -> str:
    """Canonical subject id: integer-like ids compare as integers ("01" == "1" == 1)."""
    text = str(subject).strip()
    return str(int(text)) if re.fullmatch(r"\d+", text) else text


def _fold_from_subjects(name: str, subjects: Sequence[str], train: Iterable, test: Iterable,
                        val: Iterable = (), number: int | None = None, source: str = "") -> Fold:
    """A :class:`Fold` of the rows of ``subjects``; named test or validation subjects must exist."""
    by_key: dict[str, str] = {}
    for s in subjects:
        by_key.setdefault(_subject_key(s), s)
    train_keys = {_subject_key(s) for s in train}
    test_keys = {_subject_key(s) for s in test}
    val_keys = {_subject_key(s) for s in val}
    where = f"{source}: fold {name!r}" if source else name
    overlap = (train_keys & test_keys) | (train_keys & val_keys) | (test_keys & val_keys)
    if overlap:
        raise ValueError(f"{where}: subjects {sorted(overlap)} are in more than one of train/val/test")
    for role, keys in (("test", test_keys), ("validation", val_keys)):
        missing = keys - set(by_key)
        if missing:
            raise ValueError(f"{where}: {role} subjects {sorted(missing)} are not in the data set "
                             f"(its subjects: {', '.join(sorted(by_key.values()))})")
    if not test_keys:
        raise ValueError(f"{where}: no test subjects")
    if train_keys - set(by_key):
        logger.warning("%s: training subjects %s are not in the data set", where, sorted(train_keys - set(by_key)))
    keys = np.array([_subject_key(s) for s in subjects])

    def indices(wanted: set[str]) -> list[int]:
        return np.flatnonzero(np.isin(keys, sorted(wanted))).tolist() if wanted else []

    def names(wanted: set[str]) -> list[str]:
        return sorted(by_key[k] for k in wanted if k in by_key)

    return Fold(name, names(train_keys), names(test_keys), names(val_keys),
                indices(train_keys), indices(test_keys), indices(val_keys), number=number)


def load_split_file(path: str | os.PathLike) -> dict[str, dict[str, list[str]]]:
    """Read a JSON split file: ``{"fold1": {"train": [...], "test": [...], "val": [...]}, ...}``.

    A list of such objects is accepted too (folds named fold1, fold2, ...). "val" / "validation" is
    optional. Subjects may be strings or integers; integer-like ids match regardless of zero padding.

    Raises:
        ValueError: naming the file and the fold, for a file that does not parse or a fold without
            "train" and a non-empty "test" list.
    """
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"cannot read the split file {path}: {error}") from error
    if isinstance(data, list):
        data = {f"fold{i + 1}": fold for i, fold in enumerate(data)}
    if not isinstance(data, dict) or not data:
        raise ValueError(f"{path}: expected a non-empty JSON object fold -> {{train, test[, val]}}")
    folds = {}
    for name, fold in data.items():
        if not isinstance(fold, dict) or not isinstance(fold.get("train"), list) or not fold.get("test"):
            raise ValueError(f"{path}: fold {name!r} needs a 'train' list and a non-empty 'test' list")
        folds[str(name)] = {
            "train": [str(s) for s in fold["train"]],
            "test": [str(s) for s in fold["test"]],
            "val": [str(s) for s in fold.get("val", fold.get("validation", []))],
        }
    return folds


@dataclass(frozen=True)
class FoldScheme:
    """How a scheme cuts a table into folds.

    Args:
        name: the ``--fold_scheme`` name (a split file's path for a split file).
        folds: ``folds(dataset, subjects, k, seed) -> list[Fold]``; ``subjects`` is the ``subject`` column.
        count: how many folds the scheme defines (``count(k)``), whatever subjects a data set has.
        ranges: the subject-id ranges of a protocol's folds (to name them in errors), if it has them.
        load_filter: load options (:class:`processing.dataset_registry.LoadOptions` fields) a data set must be
            loaded with for this scheme, and ``filter_reason``, what to say when an option asks otherwise.
    """

    name: str
    folds: Callable[[Any, list[str], int, int], list[Fold]]
    count: Callable[[int], int]
    ranges: tuple[tuple[int, int], ...] | None = None
    load_filter: dict[str, Any] = field(default_factory=dict)
    filter_reason: str = ""


FOLD_SCHEMES: dict[str, FoldScheme] = {}


def register_fold_scheme(scheme: FoldScheme) -> FoldScheme:
    """Add (or replace) a built-in fold scheme; returns it."""
    FOLD_SCHEMES[scheme.name] = scheme
    return scheme


def fold_scheme_names() -> tuple[str, ...]:
    """The built-in fold schemes (anything else given as a scheme is read as a JSON split file)."""
    return tuple(FOLD_SCHEMES)


def is_split_file(scheme: str | os.PathLike) -> bool:
    """Whether a fold scheme names a JSON split file rather than a built-in scheme."""
    return str(scheme) not in FOLD_SCHEMES


def get_fold_scheme(scheme: str | os.PathLike) -> FoldScheme:
    """The built-in scheme of that name, or the scheme of a JSON split file."""
    name = str(scheme)
    if name in FOLD_SCHEMES:
        return FOLD_SCHEMES[name]
    if Path(name).suffix.lower() == ".json" or Path(name).is_file():
        splits = load_split_file(name)
        return FoldScheme(name, lambda dataset, subjects, k, seed: _split_file_folds(name, splits, subjects),
                          lambda k: len(splits))
    raise ValueError(f"unknown fold scheme {name!r}: use one of {', '.join(fold_scheme_names())} or a "
                     "JSON split file")


def _split_file_folds(name: str, splits: dict, subjects: list[str]) -> list[Fold]:
    return [_fold_from_subjects(fold, subjects, split["train"], split["test"], split["val"], number=number,
                                source=name) for number, (fold, split) in enumerate(splits.items(), start=1)]


def _subjects(dataset) -> list[str]:
    return list(dataset["subject"]) if hasattr(dataset, "column_names") else [str(s) for s in dataset]


def make_folds(dataset, scheme: str | os.PathLike = "subject_kfold", k: int = 5, seed: int = 0) -> list[Fold]:
    """Subject-disjoint cross-validation folds of ``scheme``, each with its protocol number (:attr:`Fold.number`).

    Args:
        dataset: a table from one of the adapters (needs a ``subject`` column), or a sequence of subject ids,
            one per row.
        scheme: a built-in scheme (see the module docstring) or a path to a JSON split file (folds as given,
            validated to be subject-disjoint and to name only test / validation subjects the data set has).
        k: number of folds for "subject_kfold".
        seed: shuffle seed for "subject_kfold".

    Returns:
        A list of :class:`Fold`. For the built-in schemes every subject present is tested exactly once.
    """
    subjects = _subjects(dataset)
    if not subjects:
        raise ValueError("the dataset has no subjects")
    return get_fold_scheme(scheme).folds(dataset, subjects, k, seed)


def scheme_fold_count(scheme: str | os.PathLike, k: int = 5) -> int:
    """How many folds a scheme defines, whatever subjects a data set has."""
    return get_fold_scheme(scheme).count(k)


def get_fold(folds: Sequence[Fold], number: int, scheme: str | os.PathLike, k: int = 5) -> Fold:
    """The fold numbered ``number`` in its scheme (see :attr:`Fold.number`).

    Raises:
        ValueError: for a number outside the scheme, or a protocol fold none of whose subjects the
            data set has (naming the folds that it can run).
    """
    for fold in folds:
        if fold.number == number:
            return fold
    found = get_fold_scheme(scheme)
    total, runnable = found.count(k), ", ".join(str(f.number) for f in folds) or "none"
    if 1 <= number <= total:
        who = f" (subjects {found.ranges[number - 1][0]}-{found.ranges[number - 1][1]})" if found.ranges else ""
        raise ValueError(f"fold {number} of {scheme}{who} has no test subjects in this data set; "
                         f"folds it can run: {runnable}")
    raise ValueError(f"fold {number} is out of range: {scheme} has folds 1-{total} (this data set: {runnable})")


# ----------------------------------------------------------------------------------------------------
# The built-in schemes.
# ----------------------------------------------------------------------------------------------------


def _sorted_unique(subjects: list[str]) -> list[str]:
    return sorted(set(subjects), key=lambda s: (not s.isdigit(), int(s) if s.isdigit() else 0, s))


def _protocol_folds(scheme: str, ranges: tuple[tuple[int, int], ...], subjects: list[str]) -> list[Fold]:
    unique = _sorted_unique(subjects)
    non_numeric = [s for s in unique if not s.isdigit()]
    if non_numeric:
        raise ValueError(f"{scheme} needs numeric subject ids, got e.g. {non_numeric[:3]}")
    outside = [s for s in unique if not any(lo <= int(s) <= hi for lo, hi in ranges)]
    if outside:
        raise ValueError(f"{scheme}: subjects {outside} fall outside the protocol's ranges")
    folds = []
    for number, (lo, hi) in enumerate(ranges, start=1):
        test = [s for s in unique if lo <= int(s) <= hi]
        if not test:
            logger.warning("%s: fold %d (subjects %d-%d) has no subjects in this data set; left out", scheme,
                           number, lo, hi)
            continue
        train = [s for s in unique if s not in test]
        folds.append(_fold_from_subjects(f"fold{number}", subjects, train, test, number=number))
    return folds


def _subject_kfold(subjects: list[str], k: int, seed: int) -> list[Fold]:
    from sklearn.model_selection import GroupKFold

    unique = _sorted_unique(subjects)
    if not 2 <= k <= len(unique):
        raise ValueError(f"subject_kfold needs 2 <= k <= number of subjects ({len(unique)}), got {k}")
    splitter = GroupKFold(n_splits=k, shuffle=True, random_state=seed)
    folds = []
    for number, (_, test_rows) in enumerate(splitter.split(np.zeros(len(subjects)), groups=subjects), start=1):
        test = sorted({subjects[i] for i in test_rows})
        train = [s for s in unique if s not in set(test)]
        folds.append(_fold_from_subjects(f"fold{number}", subjects, train, test, number=number))
    return folds


def ravdess_single(dataset) -> list[Fold]:
    """The one ``ravdess_single`` fold (train / validation / test actors of :data:`RAVDESS_SINGLE_SPLIT`).

    Args:
        dataset: a RAVDESS table (``subject`` = actor code "01".."24"), or its subject ids, one per row.

    Returns:
        ``[Fold("single", ..., number=1)]`` (a list, like :func:`make_folds`) with ``val_subjects`` set.
    """
    split = RAVDESS_SINGLE_SPLIT
    return [_fold_from_subjects("single", _subjects(dataset), split["train"], split["test"], split["validation"],
                                number=1)]


def official_folds(dataset, num_folds: int) -> list[Fold]:
    """Fold k tests the clips whose ``test_fold`` is k and trains on every other loaded clip (DFEW, FERV39k, MAFW).

    Folds without test clips in ``dataset`` (e.g. a data set loaded with one ``fold``) are left out (logged).
    """
    if "test_fold" not in getattr(dataset, "column_names", ()):
        raise ValueError("the official folds need a dataset loaded with load_dfew / load_ferv39k / load_mafw "
                         "(--dataset dfew, ferv39k or mafw): this one has no test_fold column")
    subjects, test_fold = list(dataset["subject"]), list(dataset["test_fold"])
    folds = []
    for k in range(1, num_folds + 1):
        test = [s for s, f in zip(subjects, test_fold) if f == k]
        if not test:
            logger.info("official fold %d has no test clips in this dataset; left out", k)
            continue
        train = [s for s, f in zip(subjects, test_fold) if f != k]
        folds.append(_fold_from_subjects(f"fold{k}", subjects, train, test, number=k))
    if not folds:
        raise ValueError("the dataset has no test clips in the official test lists")
    return folds


def dfew5(dataset) -> list[Fold]:
    """DFEW's five official folds (``EmoLabel_DataSplit/*/set_{1..5}.csv``) of a ``load_dfew`` table."""
    return official_folds(dataset, DFEW_FOLDS)


def mafw5(dataset) -> list[Fold]:
    """MAFW's five official single-label folds of a ``load_mafw`` table."""
    return official_folds(dataset, MAFW_FOLDS)


def ferv39k_official(dataset) -> list[Fold]:
    """FERV39k's one official train / test split of a ``load_ferv39k`` table (as a one-fold list)."""
    return official_folds(dataset, 1)


def _protocol_scheme(name: str, ranges: tuple[tuple[int, int], ...]) -> FoldScheme:
    return FoldScheme(name, lambda dataset, subjects, k, seed: _protocol_folds(name, ranges, subjects),
                      lambda k: len(ranges), ranges=ranges)


def _official_scheme(name: str, folds: Callable[[Any], list[Fold]], count: int) -> FoldScheme:
    return FoldScheme(name, lambda dataset, subjects, k, seed: folds(dataset), lambda k: count)


for _scheme in (
    _protocol_scheme("ravdess6", tuple((a[0], a[-1]) for a in RAVDESS6_FOLDS)),
    _protocol_scheme("crema5", CREMA5_FOLDS),
    FoldScheme("ravdess_single", lambda dataset, subjects, k, seed: ravdess_single(subjects), lambda k: 1,
               load_filter=RAVDESS_SINGLE_LOAD_FILTER,
               filter_reason="the paper's 7-class protocol (use ravdess6 for the peers' 8 classes)"),
    _official_scheme("dfew5", dfew5, DFEW_FOLDS),
    _official_scheme("mafw5", mafw5, MAFW_FOLDS),
    _official_scheme("ferv39k_official", ferv39k_official, 1),
    FoldScheme("subject_kfold", lambda dataset, subjects, k, seed: _subject_kfold(subjects, k, seed), lambda k: k),
):
    register_fold_scheme(_scheme)


def add_validation_split(fold: Fold, dataset, num_val_subjects: int | None = None, val_fraction: float = 0.2,
                         seed: int = 0) -> Fold:
    """Move some of a fold's training subjects to a validation split (subject-disjoint from train and test).

    Args:
        fold: the fold to split (its existing validation subjects are replaced).
        dataset: the dataset the fold was made from (or its subject ids, one per row).
        num_val_subjects: how many training subjects become validation subjects; default
            ``round(val_fraction * len(train_subjects))``, at least 1.
        val_fraction: used when ``num_val_subjects`` is None.
        seed: which subjects are drawn.

    Returns:
        A new :class:`Fold` with ``val_subjects`` / ``val_indices`` set and the training split reduced.
    """
    subjects = _subjects(dataset)
    pool = sorted(set(fold.train_subjects) | set(fold.val_subjects))
    if num_val_subjects is None:
        num_val_subjects = max(1, int(round(val_fraction * len(pool))))
    if not 1 <= num_val_subjects < len(pool):
        raise ValueError(f"need 1 <= num_val_subjects < {len(pool)} training subjects, got {num_val_subjects}")
    chosen = np.random.default_rng(seed).choice(len(pool), size=num_val_subjects, replace=False)
    val = sorted(pool[i] for i in chosen)
    train = [s for s in pool if s not in set(val)]
    return _fold_from_subjects(fold.name, subjects, train, fold.test_subjects, val, number=fold.number)




__all__ = ["CREMA5_FOLDS", "FOLD_SCHEMES", "RAVDESS6_FOLDS", "RAVDESS_SINGLE_LOAD_FILTER", "RAVDESS_SINGLE_SPLIT",
           "Fold", "FoldScheme", "add_validation_split", "dfew5", "ferv39k_official", "fold_scheme_names", "get_fold",
           "get_fold_scheme", "is_split_file", "load_split_file", "make_folds", "mafw5", "official_folds",
           "ravdess_single", "register_fold_scheme", "scheme_fold_count"]
