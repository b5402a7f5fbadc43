"""The offline `evaluate` DFER metric module and the confusion-matrix plot."""

import math
import os
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, balanced_accuracy_score, confusion_matrix, recall_score

from hub_scripts.metrics import dfer_metrics
from hub_scripts.metrics.dfer_metrics import compute_dfer_metrics
from hub_scripts.plots import plot_confusion_matrix

METRIC_PATH = str(Path(dfer_metrics.__file__).resolve())


@pytest.fixture
def offline_metric(monkeypatch, tmp_path):
    import evaluate

    # evaluate reads its offline switch at import time: patch the module's value.
    monkeypatch.setattr(evaluate.config, "HF_EVALUATE_OFFLINE", True)
    return evaluate.load(METRIC_PATH, cache_dir=str(tmp_path / "cache"))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_sklearn(offline_metric, seed):
    rng = np.random.default_rng(seed)
    references = rng.integers(0, 7, 300)
    # Better than chance and with a class bias, so UAR and WAR differ.
    predictions = np.where(rng.uniform(size=300) < 0.5, references, rng.choice(7, 300, p=[.4, .1, .1, .1, .1, .1, .1]))
    result = offline_metric.compute(predictions=predictions.tolist(), references=references.tolist(), num_labels=7)
    assert math.isclose(result["uar"], balanced_accuracy_score(references, predictions), rel_tol=1e-12)
    assert math.isclose(result["war"], accuracy_score(references, predictions), rel_tol=1e-12)
    assert result["confusion_matrix"] == confusion_matrix(references, predictions, labels=range(7)).tolist()
    np.testing.assert_allclose(result["per_class_recall"],
                               recall_score(references, predictions, labels=range(7), average=None))
    assert result["support"] == np.bincount(references, minlength=7).tolist()
    assert result["uar"] != result["war"]


def test_absent_classes_and_labels_kwarg():
    references = np.array([0, 0, 1, 1, 1, 3])
    predictions = np.array([0, 1, 1, 1, 2, 3])
    result = compute_dfer_metrics(predictions, references, num_labels=5)
    # UAR averages over the classes present in the references only (0, 1, 3), as sklearn does.
    assert math.isclose(result["uar"], balanced_accuracy_score(references, predictions))
    assert math.isclose(result["uar"], (0.5 + 2 / 3 + 1.0) / 3)
    assert math.isnan(result["per_class_recall"][2]) and math.isnan(result["per_class_recall"][4])
    assert np.array(result["confusion_matrix"]).shape == (5, 5)

    default = compute_dfer_metrics(predictions, references)  # labels = union of ids seen
    assert default["labels"] == [0, 1, 2, 3]
    assert default["confusion_matrix"] == confusion_matrix(references, predictions).tolist()

    subset = compute_dfer_metrics(predictions, references, labels=[3, 1])
    assert subset["labels"] == [3, 1]
    assert subset["confusion_matrix"] == confusion_matrix(references, predictions, labels=[3, 1]).tolist()
    assert math.isclose(subset["uar"], recall_score(references, predictions, labels=[3, 1], average="macro"))
    assert subset["per_class_recall"] == [1.0, 2 / 3]  # class 1's third sample was predicted as 2, outside labels
    with pytest.raises(ValueError):
        compute_dfer_metrics([0, 1], [0])


def test_metric_batches(offline_metric):
    rng = np.random.default_rng(3)
    references, predictions = rng.integers(0, 6, 100), rng.integers(0, 6, 100)
    for start in range(0, 100, 32):
        offline_metric.add_batch(predictions=predictions[start:start + 32], references=references[start:start + 32])
    result = offline_metric.compute(num_labels=6)
    assert math.isclose(result["uar"], balanced_accuracy_score(references, predictions))


def test_confusion_matrix_png(tmp_path):
    matrix = [[5, 1, 0], [2, 3, 0], [0, 0, 0]]
    for normalize in (True, False):
        out = plot_confusion_matrix(matrix, ["neutral", "happy", "sad"], tmp_path / f"cm_{normalize}" / "cm.png",
                                    normalize=normalize)
        assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert os.path.getsize(out) > 1000
    with pytest.raises(ValueError):
        plot_confusion_matrix(matrix, ["a", "b"], tmp_path / "x.png")
