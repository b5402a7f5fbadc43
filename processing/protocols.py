"""Named evaluation protocols that are not k-fold schemes: the MTCAE-DFER paper's own RAVDESS split.

Two RAVDESS protocols are in use:

- ``ravdess6`` (:func:`processing.datasets.make_folds`): MAE-DFER / HiCMAE, 8 classes, 6 subject-independent
  folds (fold k tests actors 4k-3..4k).
- ``ravdess_single`` (:func:`ravdess_single`): the MTCAE-DFER authors' setting, 7 classes (calm merged into
  neutral) on the 1,440 audio-video speech clips, one split of 720 / 360 / 360 clips = 12 / 6 / 6 actors
  for train / validation / test. Load the data with :data:`RAVDESS_SINGLE_LOAD_KWARGS`; ``make_folds(dataset,
  "ravdess_single")`` gives this fold, and ``--dataset ravdess --fold_scheme ravdess_single`` of the training
  tools loads and splits the data so (:mod:`processing.dataset_registry` applies the load arguments).
"""

from __future__ import annotations

from .datasets import Fold, _fold_from_subjects

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

RAVDESS_SINGLE_LOAD_KWARGS = {"num_classes": 7, "vocal": "speech", "modalities": ("01",)}
"""``load_ravdess`` arguments for ``ravdess_single``: 7 classes, speech, audio-video files only (01-01-*),
i.e. 24 actors x 60 = 1,440 clips (the notebook's files are named 01-01-EE-II-SS-RR-AA.mp4)."""


def ravdess_single(dataset) -> list[Fold]:
    """The one ``ravdess_single`` fold (train / validation / test actors of :data:`RAVDESS_SINGLE_SPLIT`).

    Args:
        dataset: a RAVDESS dataset (``subject`` = actor code "01".."24"), or its subject ids, one per row.

    Returns:
        ``[Fold("single", ..., number=1)]`` (a list, like :func:`processing.datasets.make_folds`, whose scheme
        ``"ravdess_single"`` this is) with ``val_subjects`` set.
    """
    subjects = list(dataset["subject"]) if hasattr(dataset, "column_names") else [str(s) for s in dataset]
    split = RAVDESS_SINGLE_SPLIT
    return [_fold_from_subjects("single", subjects, split["train"], split["test"], split["validation"], number=1)]


__all__ = ["RAVDESS_SINGLE_LOAD_KWARGS", "RAVDESS_SINGLE_SPLIT", "ravdess_single"]
