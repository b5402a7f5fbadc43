"""Result rows of training runs and the one results table (per fold, then mean ± std over the folds).

A row is a dict ``{"dataset", "fold", "split", "uar", "war", "num_samples", "subjects", "source"}``
(UAR / WAR as fractions in [0, 1], ``split`` "test" or "validation"), optionally with ``"group"`` (the
table's first column when it is not the data set, e.g. a decoder mode) and ``"error"`` (a fold that
failed). ``mtcae-push-to-hub``'s model card, ``mtcae-cross-validate`` and ``mtcae-ablate`` all write
their tables with :func:`results_table`; the std is the population standard deviation over the folds,
as DFER papers report it.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from processing.dataset_registry import dataset_key, display_name

logger = logging.getLogger("mtcae.results")

RUN_METRIC_FILES = ("all_results.json", "train_results.json", "eval_results.json", "test_results.json")
RUN_SUMMARY_FILE = "run_summary.json"


def read_json(path: Path) -> Any:
    """The parsed JSON file; a ``ValueError`` naming the file when it cannot be read."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"Cannot read {path}: {error}") from error


def fraction(value: Any) -> float | None:
    """A metric as a fraction in [0, 1]; values above 1 are taken as percentages; ``None`` when missing or NaN."""
    if value is None:
        return None
    value = float(value)
    if not math.isfinite(value):
        return None
    return value / 100.0 if value > 1.0 else value


def mean_std(values: Iterable[float]) -> tuple[float, float]:
    """Mean and population standard deviation (as DFER papers report over folds); NaN when empty."""
    array = np.asarray([v for v in values if v is not None], dtype=np.float64)
    if array.size == 0:
        return math.nan, math.nan
    return float(array.mean()), float(array.std())


def rows_from_metrics(metrics: dict[str, Any], dataset: str | None, fold: Any = None, subjects: list | None = None,
                      source: str = "") -> list[dict[str, Any]]:
    """Rows (one per split) from Trainer-style metrics (``eval_uar``, ``test_war``, ...) or plain ``uar``/``war``."""
    rows = []
    for prefix, split in (("eval_", "validation"), ("test_", "test")):
        if metrics.get(f"{prefix}uar") is not None or metrics.get(f"{prefix}war") is not None:
            rows.append({
                "dataset": dataset, "fold": fold, "split": split, "uar": fraction(metrics.get(f"{prefix}uar")),
                "war": fraction(metrics.get(f"{prefix}war")),
                "num_samples": metrics.get(f"{prefix}samples", metrics.get(f"num_{prefix}clips")),
                "subjects": subjects if split == "test" else None, "source": source,
            })
    if not rows and (metrics.get("uar") is not None or metrics.get("war") is not None):
        rows.append({
            "dataset": dataset, "fold": fold, "split": metrics.get("split", "test"),
            "uar": fraction(metrics.get("uar")), "war": fraction(metrics.get("war")),
            "num_samples": metrics.get("num_samples", metrics.get("num_test_clips")), "subjects": subjects,
            "source": source,
        })
    return rows


def read_run(folder: str | Path) -> dict[str, Any]:
    """The metrics and summary a training run (``mtcae-train``) left in ``folder``."""
    folder = Path(folder)
    metrics: dict[str, Any] = {}
    for name in RUN_METRIC_FILES:
        if (folder / name).is_file():
            metrics.update(read_json(folder / name))
    summary = read_json(folder / RUN_SUMMARY_FILE) if (folder / RUN_SUMMARY_FILE).is_file() else {}
    return {"metrics": metrics, "summary": summary}


def _rows_from_json(path: Path, default_dataset: str | None) -> list[dict[str, Any]]:
    data = read_json(path)
    top_dataset, numbered = default_dataset, False
    if isinstance(data, dict):
        top_dataset = dataset_key(data.get("dataset")) or default_dataset
        numbered = "folds" in data
        entries = data.get("folds", [data])
    else:
        entries = data
    rows = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise ValueError(f"{path}: fold entry {i} is not an object: {entry!r}")
        if entry.get("error"):  # a fold that failed in mtcae-cross-validate
            logger.warning("%s: fold %s failed and is left out (%s)", path, entry.get("fold"),
                           str(entry["error"]).splitlines()[0])
            continue
        found = rows_from_metrics(entry, dataset_key(entry.get("dataset")) or top_dataset,
                                  entry.get("fold", i + 1 if numbered else None),
                                  entry.get("test_subjects") or entry.get("subjects"), str(path))
        if not found:
            raise ValueError(f"{path}: entry {i} has no uar/war metrics: {sorted(entry)}")
        rows += found
    return rows


def collect_results(sources: list[str | Path | dict], default_dataset: str | None = None) -> list[dict[str, Any]]:
    """Rows from training output folders, result JSON files, or metric dicts (first one given wins).

    A folder gives the rows of its ``eval_*`` / ``test_*`` metrics, with the fold and test subjects
    of its ``run_summary.json``. A JSON file holds a list of rows, or a dict with a ``"folds"`` list
    (and optionally a top-level ``"dataset"``, as ``cv_results.json``), or one dict of metrics.
    """
    rows: list[dict[str, Any]] = []
    for source in sources:
        if isinstance(source, dict):
            rows += rows_from_metrics(source, dataset_key(source.get("dataset")) or default_dataset,
                                      source.get("fold"), source.get("test_subjects"), "metrics")
        elif Path(source).is_dir():
            run = read_run(source)
            summary = run["summary"]
            rows += rows_from_metrics(run["metrics"], dataset_key(summary.get("dataset")) or default_dataset,
                                      summary.get("fold"), summary.get("test_subjects"), str(source))
        elif Path(source).is_file():
            rows += _rows_from_json(Path(source), default_dataset)
        else:
            raise ValueError(f"results source {source} does not exist")
    return deduplicate_rows(rows)


def deduplicate_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (group, dataset, fold, split): the first one given wins (a fold's own folder before a summary)."""
    seen, unique = set(), []
    for row in rows:
        key = (str(row.get("group")), str(row["dataset"]), str(row["fold"]), row["split"])
        if key not in seen:
            seen.add(key)
            unique.append(row)
    return unique


# ------------------------------------------------------------------------------------------------
# The table
# ------------------------------------------------------------------------------------------------
def _percent(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.2f}"


def mean_std_cell(values: Iterable[float | None]) -> str:
    """``"75.00 ± 4.08"`` (percent) over the values given; the value alone for one, "–" for none."""
    present = [v for v in values if v is not None]
    if len(present) < 2:
        return _percent(present[0]) if present else "–"
    mean, std = mean_std(present)
    return f"{100 * mean:.2f} ± {100 * std:.2f}"


def _fold_order(row: dict) -> tuple:
    fold = row["fold"]
    return (0, int(fold), "") if isinstance(fold, int) or str(fold).isdigit() else (1, 0, str(fold))


def _groups(rows: list[dict[str, Any]]) -> dict[tuple[str, str], list[dict]]:
    """Rows by (group label, split), groups in the order given, test before validation."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        label = row.get("group") or display_name(row["dataset"])
        groups.setdefault((label, row["split"]), []).append(row)
    order = {"test": 0, "validation": 1}
    labels = list(dict.fromkeys(label for label, _ in groups))
    return dict(sorted(groups.items(), key=lambda kv: (labels.index(kv[0][0]), order.get(kv[0][1], 2))))


def results_table(rows: list[dict[str, Any]], group_header: str = "Dataset", per_fold: bool = True) -> str:
    """A markdown table of the rows, with mean ± std over the folds of each group and split.

    Args:
        rows: result rows (see the module docstring); rows with an ``"error"`` are listed as failed.
        group_header: the title of the first column (each row's ``"group"``, else its data set's name).
        per_fold: one line per fold before each mean; ``False`` gives the mean lines only.
    """
    if not rows:
        return "No evaluation results were found."
    show_clips = any(row.get("num_samples") is not None for row in rows)
    clips_header = " Clips |" if show_clips else ""
    lines = [f"| {group_header} | Fold | Split | Test subjects |{clips_header} UAR (%) | WAR (%) |",
             "| --- | --- | --- | --- |" + (" --- |" if show_clips else "") + " --- | --- |"]
    for (label, split), group in _groups(rows).items():
        finished = [r for r in group if not r.get("error")]
        for row in sorted(group, key=_fold_order) if per_fold or len(finished) < 2 else []:
            fold = "–" if row["fold"] is None else str(row["fold"])
            if row.get("error"):
                subjects = "failed: " + str(row["error"]).splitlines()[0][:80]
            else:
                subjects = ", ".join(map(str, row["subjects"])) if row.get("subjects") else "–"
            clips = (f" {'–' if row.get('num_samples') is None else row['num_samples']} |" if show_clips else "")
            lines.append(f"| {label} | {fold} | {split} | {subjects} |{clips} {_percent(row.get('uar'))} | "
                         f"{_percent(row.get('war'))} |")
        if len(finished) > 1:
            uar, war = (mean_std_cell(r[key] for r in finished) for key in ("uar", "war"))
            lines.append(f"| **{label}** | **mean ± std ({len(finished)} folds)** | {split} | |"
                         f"{' |' if show_clips else ''} **{uar}** | **{war}** |")
    return "\n".join(lines)


__all__ = ["collect_results", "deduplicate_rows", "fraction", "mean_std", "mean_std_cell", "read_json", "read_run",
           "results_table", "rows_from_metrics"]
