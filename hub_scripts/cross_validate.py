"""``mtcae-cross-validate``: subject-independent cross-validation of MTCAE-DFER: train and test every fold.

Takes every argument of ``mtcae-train`` (dataset, preset, encoder, epochs, test-time views, ...) plus
``--folds`` (default: every fold of the scheme the data set has subjects for; numbers are the protocol's). Each
fold trains into ``OUTPUT_DIR/fold<k>``; the summary goes to ``OUTPUT_DIR/cv_results.json`` and
``OUTPUT_DIR/cv_results.md`` (per-fold test UAR / WAR and mean ± std, as the papers report them, and the
test-time views ``--test_temporal_views`` x ``--test_spatial_views`` they were scored on) and
a confusion matrix summed over the folds, ``OUTPUT_DIR/cv_confusion_matrix.png``. A fold that fails
is reported at the end; the others still run.

    mtcae-cross-validate --dataset ravdess --data_root RAVDESS --preset paper \\
        --encoder MCG-NJU/videomae-large-finetuned-kinetics --output_dir runs/ravdess-cv
    accelerate launch -m hub_scripts.cross_validate --dataset crema_d --data_root CREMA-D ...
"""

from __future__ import annotations

import copy
import json
import logging
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hub_scripts.cli import parse_arguments
from hub_scripts.multiview import MultiViewArguments
from hub_scripts.results import mean_std, results_table
from hub_scripts.train import DataArguments, ModelArguments, MTCAETrainingArguments, available_folds, run
from processing.dataset_registry import display_name

logger = logging.getLogger("mtcae.cross_validate")


@dataclass
class CrossValidationArguments:
    """Which folds to run (checked on construction; checked against the data set before any training)."""

    folds: list[int] | None = field(default=None, metadata={"help": "protocol fold numbers to run (default: all "
                                                                    "the data set has subjects for)"})

    def __post_init__(self):
        if self.folds is not None:
            if not self.folds or any(k < 1 for k in self.folds) or len(set(self.folds)) != len(self.folds):
                raise ValueError(f"--folds must be distinct numbers >= 1; got {self.folds}")


def fold_rows(summary: dict, group: str | None = None) -> list[dict]:
    """The result rows (hub_scripts.results) of a cross-validation summary, failed folds included."""
    return [{"dataset": summary["dataset"], "group": group, "fold": row["fold"], "split": "test",
             "uar": row.get("test_uar"), "war": row.get("test_war"), "num_samples": row.get("num_test_clips"),
             "subjects": row.get("test_subjects"), "error": row.get("error")} for row in summary["folds"]]


def summarize(results: list[dict], dataset: str, title: str, views: MultiViewArguments | None = None) -> dict:
    """Per-fold and mean ± std test UAR / WAR of the folds that finished, and the test views (``cv_results.json``)."""
    finished = [r for r in results if not r.get("error")]
    uar_mean, uar_std = mean_std(r["test_uar"] for r in finished)
    war_mean, war_std = mean_std(r["test_war"] for r in finished)
    return {"title": title, "dataset": dataset, "folds": results, "uar_mean": uar_mean, "uar_std": uar_std,
            "war_mean": war_mean, "war_std": war_std, "num_folds_finished": len(finished),
            "num_folds_failed": len(results) - len(finished), **(views or MultiViewArguments()).to_results()}


def views_line(summary: dict) -> str:
    """How the test clips were scored, e.g. "Test-time views: 2 temporal x 2 spatial (crops), softmax averaged"."""
    temporal, spatial = summary.get("test_temporal_views", 1), summary.get("test_spatial_views", 1)
    if temporal * spatial == 1:
        return "Test-time views: 1 x 1 (one 16-frame sampling of each clip)."
    return (f"Test-time views: {temporal} temporal x {spatial} spatial ({summary.get('test_spatial_mode', 'crops')}), "
            "softmax scores averaged per clip.")


def markdown_table(summary: dict) -> str:
    """The summary as the one results table, under its title and the line naming the test views."""
    return f"### {summary['title']}\n\n{views_line(summary)}\n\n{results_table(fold_rows(summary))}\n"


def run_fold(k: int, data_args: DataArguments, model_args: ModelArguments, training_args, base_dir: Path,
             views: MultiViewArguments | None = None) -> dict:
    """Train and test fold ``k`` into ``base_dir/fold<k>``; a failure becomes ``{"fold": k, "error": ...}``."""
    fold_data = copy.deepcopy(data_args)
    fold_data.fold = k
    fold_training = copy.deepcopy(training_args)
    fold_training.output_dir = str(base_dir / f"fold{k}")
    logger.info("=== fold %d -> %s", k, fold_training.output_dir)
    try:
        metrics = run(fold_data, model_args, fold_training, views)
    except Exception as error:  # one broken fold must not cost the others
        logger.error("fold %d failed:\n%s", k, traceback.format_exc())
        return {"fold": k, "error": f"{type(error).__name__}: {error}"}
    keep = ("test_uar", "test_war", "eval_uar", "num_test_clips", "test_subjects", "test_confusion_matrix",
            "class_names")
    return {"fold": k, **{key: metrics.get(key) for key in keep}}


def write_summary(summary: dict, base_dir: Path, results: list[dict]) -> None:
    """``cv_results.json`` / ``.md``, the confusion matrix summed over the finished folds, and a printed report."""
    finished = [r for r in results if not r.get("error")]
    base_dir.mkdir(parents=True, exist_ok=True)
    (base_dir / "cv_results.json").write_text(json.dumps(summary, indent=2))
    (base_dir / "cv_results.md").write_text(markdown_table(summary))
    if finished:
        from hub_scripts.plots import plot_confusion_matrix

        confusion = np.sum([np.asarray(r["test_confusion_matrix"]) for r in finished], axis=0)
        plot_confusion_matrix(confusion, finished[0]["class_names"], base_dir / "cv_confusion_matrix.png",
                              title=f"{summary['dataset']}: summed over {len(finished)} folds")
    print("\n" + markdown_table(summary))
    for row in results:
        if row.get("error"):
            print(f"fold {row['fold']} FAILED: {row['error']}")


def cross_validate(data_args: DataArguments, model_args: ModelArguments, training_args: MTCAETrainingArguments,
                   folds: list[int] | None = None, title: str | None = None,
                   views: MultiViewArguments | None = None) -> dict:
    """Train and test (on ``views``) each fold into ``OUTPUT_DIR/fold<k>``; write and return the summary."""
    base_dir = Path(training_args.output_dir)
    available = available_folds(data_args, training_args)
    wrong = [k for k in folds or [] if k not in available]
    if wrong:
        raise ValueError(f"--folds {wrong}: {data_args.scheme} folds this data set can run are {available}")
    folds = folds or available
    results = [run_fold(k, data_args, model_args, training_args, base_dir, views) for k in folds]
    summary = summarize(results, data_args.dataset, title or f"MTCAE-DFER on {display_name(data_args.dataset)} "
                                                              f"({model_args.preset}), folds {folds} of "
                                                              f"{data_args.scheme}", views)
    if training_args.process_index == 0:
        write_summary(summary, base_dir, results)
    return summary


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    data_args, model_args, training_args, views, cv_args = parse_arguments(
        (DataArguments, ModelArguments, MTCAETrainingArguments, MultiViewArguments, CrossValidationArguments), argv,
        prog="mtcae-cross-validate", description=__doc__)
    summary = cross_validate(data_args, model_args, training_args, cv_args.folds, views=views)
    if summary["num_folds_finished"] == 0:
        sys.exit("every fold failed; see the log above")


if __name__ == "__main__":
    main()
