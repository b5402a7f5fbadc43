"""Cross-validation (:func:`cross_validate`: every fold with :func:`hub_scripts.training.engine.run`) and the
framework ablation (:func:`ablate`: each ``decoder_mode`` on the same folds): the library of ``mtcae-cross-validate``
and ``mtcae-ablate``."""

from __future__ import annotations

import copy
import logging
import traceback
from pathlib import Path

import numpy as np

from hub_scripts.hub.model_card import decoder_mode_title
from hub_scripts.hub.results import mean_std, results_table
from hub_scripts.inference.multiview import MultiViewArguments
from hub_scripts.plots import plot_confusion_matrix
from hub_scripts.training.arguments import DataArguments, ModelArguments, MTCAETrainingArguments
from hub_scripts.training.data import available_folds
from hub_scripts.training.engine import run
from processing.dataset_registry import display_name
from processing.files import write_json, write_text

logger = logging.getLogger("mtcae.cross_validate")


def fold_rows(summary: dict, group: str | None = None) -> list[dict]:
    """The result rows (hub_scripts.hub.results) of a cross-validation summary, failed folds included."""
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
    write_json(base_dir / "cv_results.json", summary, indent=2)
    write_text(base_dir / "cv_results.md", markdown_table(summary))
    if finished:
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


def ablation_table(summaries: dict[str, dict]) -> str:
    """The one results table over the modes: each mode's folds, then its mean ± std."""
    rows = [row for mode, summary in summaries.items()
            for row in fold_rows(summary, group=f"{decoder_mode_title(mode)} (`{mode}`)")]
    return results_table(rows, group_header="Framework") + "\n"


def ablate(data_args: DataArguments, model_args: ModelArguments, training_args: MTCAETrainingArguments,
           modes: list[str], folds: list[int] | None = None,
           views: MultiViewArguments | None = None) -> dict[str, dict]:
    """Cross-validate each decoder mode into ``OUTPUT_DIR/<mode>``; write and return the summaries by mode."""
    base_dir = Path(training_args.output_dir)
    summaries: dict[str, dict] = {}
    for mode in modes:
        mode_model = copy.deepcopy(model_args)
        mode_model.decoder_mode = mode
        mode_training = copy.deepcopy(training_args)
        mode_training.output_dir = str(base_dir / mode)
        summaries[mode] = cross_validate(data_args, mode_model, mode_training, folds,
                                         title=f"{decoder_mode_title(mode)} on {data_args.dataset}", views=views)
    if training_args.process_index == 0:
        table = ablation_table(summaries)
        base_dir.mkdir(parents=True, exist_ok=True)
        write_text(base_dir / "ablation.md", table)
        write_json(base_dir / "ablation.json", summaries, indent=2)
        print("\nFramework ablation (same folds, same settings):\n" + table)
    return summaries


__all__ = ["ablate", "ablation_table", "cross_validate", "fold_rows", "markdown_table", "run_fold", "summarize",
           "views_line", "write_summary"]
