"""DFER metrics (UAR, WAR, per-class recall, confusion matrix) as an offline-loadable `evaluate` module.

This file ships inside the package and needs nothing from the Hub::

    import evaluate
    from hub_scripts.metrics import dfer_metrics

    metric = evaluate.load(dfer_metrics.__file__)          # works with HF_HUB_OFFLINE=1
    metric.compute(predictions=[0, 1, 1], references=[0, 1, 2], num_labels=3)

or without `evaluate`::

    from hub_scripts.metrics.dfer_metrics import compute_dfer_metrics
    compute_dfer_metrics(predictions, references, num_labels=7)

The numbers come from scikit-learn (``recall_score``, ``accuracy_score`` and
``confusion_matrix``). It imports only numpy, scikit-learn, datasets and evaluate
(evaluate copies the file into its module cache, so it must not import the rest of this package).
"""

from __future__ import annotations

from collections.abc import Sequence

import datasets
import evaluate
import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, recall_score

_DESCRIPTION = """\
Dynamic facial expression recognition metrics:
- UAR (unweighted average recall): the mean over classes of the per-class recall, over the classes
  that occur in the references (= scikit-learn's balanced_accuracy_score with the default labels).
- WAR (weighted average recall): plain accuracy.
- per_class_recall: recall of each label in `labels` order (NaN for labels absent from the references).
- support: number of references per label.
- confusion_matrix: rows = reference label, columns = predicted label, in `labels` order (nested list;
  samples whose reference or prediction is not in `labels` are not counted in it).
"""

_KWARGS_DESCRIPTION = """\
Args:
    predictions (`list` of `int`): predicted class ids.
    references (`list` of `int`): true class ids.
    num_labels (`int`, optional): number of classes; the labels are 0..num_labels-1.
    labels (`list` of `int`, optional): the label ids to report, in order (overrides `num_labels`).
        Default: the sorted union of the ids in predictions and references.
Returns:
    uar (`float`), war (`float`), per_class_recall (`list` of `float`), support (`list` of `int`),
    confusion_matrix (`list` of `list` of `int`), labels (`list` of `int`).
Examples:
    >>> metric = evaluate.load("hub_scripts/metrics/dfer_metrics.py")
    >>> metric.compute(predictions=[0, 1, 1, 2], references=[0, 1, 2, 2], num_labels=3)["uar"]
    0.8333333333333334
"""

_CITATION = """\
@article{xiang2024mtcaedfer,
  title={MTCAE-DFER: Multi-Task Cascaded Autoencoder for Dynamic Facial Expression Recognition},
  author={Xiang, Peihao and Wu, Kaida and Bai, Ou},
  journal={arXiv preprint arXiv:2412.18988},
  year={2024}
}
"""


def _resolve_labels(predictions: np.ndarray, references: np.ndarray, num_labels: int | None,
                    labels: Sequence[int] | None) -> np.ndarray:
    if labels is not None:
        resolved = np.asarray(list(labels), dtype=np.int64)
        if len(set(resolved.tolist())) != len(resolved):
            raise ValueError(f"labels must be unique, got {list(labels)}")
        return resolved
    if num_labels is not None:
        return np.arange(int(num_labels), dtype=np.int64)
    return np.union1d(predictions, references).astype(np.int64)


def compute_dfer_metrics(
    predictions: Sequence[int],
    references: Sequence[int],
    num_labels: int | None = None,
    labels: Sequence[int] | None = None,
) -> dict:
    """UAR, WAR, per-class recall, support and confusion matrix of class-id predictions.

    Args:
        predictions: predicted class ids (ints; e.g. ``logits.argmax(-1)``).
        references: true class ids.
        num_labels: number of classes (labels ``0..num_labels-1``).
        labels: explicit label ids in report order (overrides ``num_labels``).

    Returns:
        ``{"uar", "war", "per_class_recall", "support", "confusion_matrix", "labels"}``; UAR averages
        the recall over the labels present in ``references`` only.
    """
    predictions = np.asarray(predictions, dtype=np.int64).reshape(-1)
    references = np.asarray(references, dtype=np.int64).reshape(-1)
    if predictions.shape != references.shape:
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references")
    if len(references) == 0:
        raise ValueError("no predictions to score")
    label_ids = _resolve_labels(predictions, references, num_labels, labels)

    war = float(accuracy_score(references, predictions))
    # Recall over every sample of the class, so predictions outside `labels` count as misses; NaN when absent.
    recalls = recall_score(references, predictions, labels=label_ids, average=None, zero_division=np.nan)
    support = [int(np.sum(references == label)) for label in label_ids]
    # The macro recall over the classes of `labels` present in the references: with the default labels this is
    # balanced_accuracy_score.
    present = [int(label) for label, count in zip(label_ids, support) if count > 0]
    uar = float(recall_score(references, predictions, labels=present, average="macro")) if present else float("nan")
    matrix = confusion_matrix(references, predictions, labels=label_ids)
    return {
        "uar": uar,
        "war": war,
        "per_class_recall": [float(r) for r in recalls],
        "support": support,
        "confusion_matrix": matrix.tolist(),
        "labels": label_ids.tolist(),
    }


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class DferMetrics(evaluate.Metric):
    """UAR / WAR / per-class recall / confusion matrix for dynamic facial expression recognition."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("int32"), "references": datasets.Value("int32")}
            ),
            reference_urls=["https://arxiv.org/abs/2412.18988"],
        )

    def _compute(self, predictions, references, num_labels: int | None = None,
                 labels: Sequence[int] | None = None) -> dict:
        return compute_dfer_metrics(predictions, references, num_labels=num_labels, labels=labels)


__all__ = ["DferMetrics", "compute_dfer_metrics"]
