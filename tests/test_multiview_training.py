"""Test-time multi-view scoring in mtcae-train / mtcae-cross-validate: the results files and the saved model agree."""

from __future__ import annotations

import json

import numpy as np
from sklearn.metrics import confusion_matrix, recall_score
from test_training_runs import QUICK_ARGS, synthetic_root  # noqa: F401  (the module-scoped fixture)

VIEWS = {"test_temporal_views": 2, "test_spatial_views": 2, "test_spatial_mode": "crops"}


def _independent_test_scores(output_dir, root, test_subjects):
    """View-averaged probabilities of the saved model on the fold's test clips, computed outside mtcae-train."""
    from hub_scripts.inference.multiview import predict_multiview
    from modeling_mtcae import MTCAEForVideoClassification
    from processing.annotation_cache import AnnotationCache, attach_face_labels
    from processing.datasets import load_ravdess
    from processing.video_processing_mtcae import MTCAEVideoProcessor

    model = MTCAEForVideoClassification.from_pretrained(output_dir).eval()
    processor = MTCAEVideoProcessor.from_pretrained(output_dir)
    table = load_ravdess(root, num_classes=7)
    cache = AnnotationCache(root / "face_labels.parquet")
    test = attach_face_labels(table.filter(lambda row: row["subject"] in test_subjects), cache)
    labels = cache.labels_of(test)
    probabilities = predict_multiview(model, processor, test["video"], 2, 2, face_labels=labels)
    return probabilities, np.asarray(test["label"])


def test_two_by_two_cross_validation_scores_the_test_split_with_the_saved_model(synthetic_root, tmp_path,  # noqa: F811
                                                                              monkeypatch):
    import hub_scripts.training.engine
    from hub_scripts.cross_validate import main

    scored = []  # what mtcae-train's own predict_multiview call returned (passed through unchanged)

    def recording(*args, **kwargs):
        scored.append(real(*args, **kwargs))
        return scored[-1]

    real = hub_scripts.training.engine.predict_multiview
    monkeypatch.setattr(hub_scripts.training.engine, "predict_multiview", recording)
    output_dir = tmp_path / "cv"
    main(["--data_root", str(synthetic_root), *QUICK_ARGS, "--max_steps", "1", "--save_steps", "1", "--eval_steps",
          "1", "--folds", "1", "--test_temporal_views", "2", "--test_spatial_views", "2", "--output_dir",
          str(output_dir)])
    cv = json.loads((output_dir / "cv_results.json").read_text())
    assert {key: cv[key] for key in VIEWS} == VIEWS
    assert "Test-time views: 2 temporal x 2 spatial (crops)" in (output_dir / "cv_results.md").read_text()
    fold_dir = output_dir / "fold1"
    for name in ("test_results.json", "all_results.json", "run_summary.json"):
        written = json.loads((fold_dir / name).read_text())
        assert {key: written[key] for key in VIEWS} == VIEWS, name
    results = json.loads((fold_dir / "test_results.json").read_text())
    summary = json.loads((fold_dir / "run_summary.json").read_text())

    probabilities, references = _independent_test_scores(fold_dir, synthetic_root, set(summary["test_subjects"]))
    # The run scored the test clips on the 2 x 2 views with the saved model and its face labels (the views
    # change these probabilities by ~1e-2 on this model: a 1 x 1 pass or other labels would not match).
    [run_scores] = scored
    np.testing.assert_allclose(run_scores, probabilities, rtol=0, atol=1e-5)
    predictions = probabilities.argmax(-1)
    assert len(references) == cv["folds"][0]["num_test_clips"] == 14
    uar = recall_score(references, predictions, labels=np.unique(references), average="macro")
    assert results["test_uar"] == cv["folds"][0]["test_uar"]
    np.testing.assert_allclose(results["test_uar"], uar, rtol=0, atol=1e-12)
    np.testing.assert_allclose(results["test_war"], np.mean(predictions == references), rtol=0, atol=1e-12)
    assert summary["test_confusion_matrix"] == confusion_matrix(references, predictions, labels=range(7)).tolist()


def test_views_and_new_fold_schemes_are_checked_before_any_data_is_loaded(tmp_path, capsys):
    from hub_scripts.cross_validate import main as cross_validate_main
    from hub_scripts.train import main as train_main

    data_root = tmp_path / "never-rendered"
    common = ["--data_root", str(data_root), "--output_dir", str(tmp_path / "out")]
    cases = {
        ("--test_temporal_views", "0"): "need at least one temporal and one spatial view",
        ("--test_spatial_mode", "flip", "--test_spatial_views", "3"): "gives 1 or 2 spatial views",
        ("--fold_scheme", "ravdess_single", "--fold", "2"): "--fold 2 is out of range: ravdess_single has folds 1-1",
        ("--dataset", "dfew", "--fold", "6"): "--fold 6 is out of range: dfew5 has folds 1-5",
    }
    for tool in (train_main, cross_validate_main):
        for flags, message in cases.items():
            try:
                tool([*common, *flags])
            except SystemExit as info:
                assert info.code == 2 and message in capsys.readouterr().err, (tool, flags)
            else:
                raise AssertionError(f"{flags} was accepted")
    assert not data_root.exists()
