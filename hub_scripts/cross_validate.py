"""Subject-independent cross-validation of MTCAE-DFER: train and test every fold, then tabulate.

Takes every argument of ``hub_scripts.train`` (dataset, preset, encoder, epochs, ...) plus
``--folds`` (default: all folds of the scheme). Each fold trains into ``OUTPUT_DIR/fold<k>``; the
summary goes to ``OUTPUT_DIR/cv_results.json`` and ``OUTPUT_DIR/cv_results.md`` (per-fold test
UAR/WAR and mean +- std, as the papers report them) and a confusion matrix summed over the folds,
``OUTPUT_DIR/cv_confusion_matrix.png``. A fold that fails is reported at the end; the others still run.

    python -m hub_scripts.cross_validate --dataset ravdess --data_root RAVDESS --preset paper \\
        --encoder MCG-NJU/videomae-large-finetuned-kinetics --output_dir runs/ravdess-cv
    accelerate launch -m hub_scripts.cross_validate --dataset crema_d --data_root CREMA-D ...
"""

from __future__ import annotations

import copy
import json
import logging
import math
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from transformers import HfArgumentParser

from hub_scripts.train import (
    DataArguments,
    MTCAETrainingArguments,
    ModelArguments,
    count_folds,
    run,
)

logger = logging.getLogger("mtcae.cross_validate")


@dataclass
class CrossValidationArguments:
    folds: str | None = field(default=None, metadata={"help": "comma-separated 1-based folds to run (default: all)"})


@dataclass
class FoldResult:
    fold: int
    metrics: dict = field(default_factory=dict)
    error: str | None = None


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and population standard deviation (as DFER papers report over folds); NaN when empty."""
    if not values:
        return math.nan, math.nan
    array = np.asarray(values, dtype=np.float64)
    return float(array.mean()), float(array.std())


def summarize(results: list[FoldResult], title: str) -> dict:
    """Per-fold and mean +- std test UAR / WAR of the folds that finished."""
    finished = [r for r in results if r.error is None]
    uar_mean, uar_std = mean_std([r.metrics["test_uar"] for r in finished])
    war_mean, war_std = mean_std([r.metrics["test_war"] for r in finished])
    return {
        "title": title,
        "folds": [
            {"fold": r.fold, **({"error": r.error} if r.error else {
                "test_uar": r.metrics["test_uar"], "test_war": r.metrics["test_war"],
                "eval_uar": r.metrics.get("eval_uar"), "num_test_clips": r.metrics.get("num_test_clips"),
                "test_subjects": r.metrics.get("test_subjects")})}
            for r in results
        ],
        "uar_mean": uar_mean, "uar_std": uar_std, "war_mean": war_mean, "war_std": war_std,
        "num_folds_finished": len(finished), "num_folds_failed": len(results) - len(finished),
    }


def markdown_table(summary: dict) -> str:
    """The summary as a Markdown table in percent: one row per fold, then mean +- std."""
    lines = [f"### {summary['title']}", "", "| fold | test subjects | test clips | UAR (%) | WAR (%) |",
             "| --- | --- | --- | --- | --- |"]
    for row in summary["folds"]:
        if "error" in row:
            lines.append(f"| {row['fold']} | failed: {row['error'].splitlines()[0][:80]} | | | |")
            continue
        subjects = ", ".join(map(str, row.get("test_subjects") or []))
        lines.append(f"| {row['fold']} | {subjects} | {row.get('num_test_clips') or ''} | "
                     f"{100 * row['test_uar']:.2f} | {100 * row['test_war']:.2f} |")
    lines.append(f"| **mean +- std** | | | **{100 * summary['uar_mean']:.2f} +- {100 * summary['uar_std']:.2f}** | "
                 f"**{100 * summary['war_mean']:.2f} +- {100 * summary['war_std']:.2f}** |")
    return "\n".join(lines) + "\n"


def cross_validate(data_args: DataArguments, model_args: ModelArguments, training_args: MTCAETrainingArguments,
                   folds: list[int] | None = None, title: str | None = None) -> dict:
    """Train and test each fold into ``training_args.output_dir/fold<k>``; write and return the summary."""
    base_dir = Path(training_args.output_dir)
    available = count_folds(data_args, training_args.seed)
    folds = folds or list(range(1, available + 1))
    wrong = [k for k in folds if not 1 <= k <= available]
    if wrong:
        raise ValueError(f"--folds {wrong} out of range: this dataset's scheme has {available} folds")
    results: list[FoldResult] = []
    class_names: list[str] = []
    confusion = None
    for k in folds:
        fold_data = copy.deepcopy(data_args)
        fold_data.fold = k
        fold_training = copy.deepcopy(training_args)
        fold_training.output_dir = str(base_dir / f"fold{k}")
        logger.info("=== fold %d of %s -> %s", k, folds, fold_training.output_dir)
        try:
            metrics = run(fold_data, model_args, fold_training)
        except Exception as error:  # one broken fold must not cost the others
            logger.error("fold %d failed:\n%s", k, traceback.format_exc())
            results.append(FoldResult(k, error=f"{type(error).__name__}: {error}"))
            continue
        results.append(FoldResult(k, metrics))
        class_names = metrics.get("class_names", class_names)
        matrix = np.asarray(metrics["test_confusion_matrix"]) if "test_confusion_matrix" in metrics else None
        if matrix is not None:
            confusion = matrix if confusion is None else confusion + matrix

    summary = summarize(results, title or f"MTCAE-DFER on {data_args.dataset} ({model_args.preset}), "
                                          f"{len(folds)}-fold subject-independent")
    summary["class_names"] = class_names
    if confusion is not None:
        summary["confusion_matrix_summed"] = confusion.tolist()
    if training_args.process_index == 0:
        base_dir.mkdir(parents=True, exist_ok=True)
        (base_dir / "cv_results.json").write_text(json.dumps(summary, indent=2))
        (base_dir / "cv_results.md").write_text(markdown_table(summary))
        if confusion is not None:
            from hub_scripts.plots import plot_confusion_matrix

            plot_confusion_matrix(confusion, class_names, base_dir / "cv_confusion_matrix.png",
                                  title=f"{data_args.dataset}: summed over {summary['num_folds_finished']} folds")
        print("\n" + markdown_table(summary))
        for row in summary["folds"]:
            if "error" in row:
                print(f"fold {row['fold']} FAILED: {row['error']}")
    return summary


def parse_fold_list(text: str | None) -> list[int] | None:
    if not text:
        return None
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError as error:
        raise ValueError(f"--folds must be comma-separated integers, got {text!r}") from error


def main(argv: list[str] | None = None) -> dict:
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    parser = HfArgumentParser((DataArguments, ModelArguments, MTCAETrainingArguments, CrossValidationArguments))
    data_args, model_args, training_args, cv_args = parser.parse_args_into_dataclasses(args=argv)
    summary = cross_validate(data_args, model_args, training_args, parse_fold_list(cv_args.folds))
    if summary["num_folds_finished"] == 0:
        sys.exit("every fold failed; see the log above")
    return summary


if __name__ == "__main__":
    main()
