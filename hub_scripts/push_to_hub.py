"""``mtcae-push-to-hub``: turn a training output folder into a self-contained Hub repo and upload it.

The repo folder holds everything `transformers` needs, with no copy of this package:

- ``config.json`` (with an ``auto_map`` for ``AutoConfig``, ``AutoModel`` and
  ``AutoModelForVideoClassification``), ``model.safetensors``, ``configuration_mtcae.py`` and
  ``modeling_mtcae.py``;
- ``video_preprocessor_config.json`` (``auto_map`` for ``AutoVideoProcessor``),
  ``video_processing_mtcae.py`` and the sibling files it imports (``PROCESSOR_CODE_FILES``);
- ``README.md``: the model card, rendered from ``model_card.md`` (repo root) with the run's UAR / WAR
  in the card's ``model-index`` metadata and in a results table;
- the run's result files when present (``all_results.json``, ``eval_results.json``,
  ``test_results.json``, ``train_results.json``, ``run_summary.json``, ``confusion_matrix.png``).

Checkpoint folders, optimizer states and pickles (``training_args.bin``) are never uploaded. So::

    from transformers import pipeline
    classifier = pipeline("video-classification", model="you/mtcae-ravdess", trust_remote_code=True)
    classifier("video.mp4")

works in a Python that has transformers, torch, torchvision and av, and nothing of this package.

Usage::

    mtcae-push-to-hub outputs/ravdess-f1 --dry_run /tmp/repo            # build and check the folder only
    mtcae-push-to-hub outputs/ravdess-f1 --repo_id you/mtcae-ravdess --private \\
        --revision fold-1 --commit_message "RAVDESS fold 1"
    mtcae-push-to-hub outputs/ravdess-f1 --repo_id you/mtcae-ravdess \\
        --results outputs/ravdess-f2 outputs/ravdess-f3 cv_summary.json   # per-fold rows in the card

``--results`` takes more training output folders (their ``test_results.json`` / ``run_summary.json``)
or JSON files with rows ``{"dataset": ..., "fold": ..., "split": "test", "uar": ..., "war": ...}``
(a list, or a dict with a ``"folds"`` list; keys may also be ``test_uar`` / ``eval_uar`` ...;
fractions in [0, 1], values above 1 are read as percentages).

Trainer: :class:`MTCAETrainer` is a ``transformers.Trainer`` whose ``push_to_hub`` (and its pushes
of checkpoints while training, ``hub_strategy``) upload the very same folder, built by the same code.

Model card template placeholders are ``{{ name }}``; see :func:`card_values` for the names.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import re
import shutil
import statistics
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

import yaml

logger = logging.getLogger("mtcae.push_to_hub")

# The template lives at the repo root (model_card.md); hub_scripts/model_card.md links to it so wheels ship it.
MODEL_CARD_TEMPLATE = Path(__file__).with_name("model_card.md")
CONFIG_FILE = "config.json"
PROCESSOR_CONFIG_FILE = "video_preprocessor_config.json"
MODEL_CODE_FILES = ("configuration_mtcae.py", "modeling_mtcae.py")
PROCESSOR_CODE_FILES = ("video_processing_mtcae.py", "decoding_mtcae.py", "video_inputs_mtcae.py",
                        "face_geometry_mtcae.py", "face_detection_mtcae.py")
RESULT_FILES = (
    "all_results.json",
    "train_results.json",
    "eval_results.json",
    "test_results.json",
    "run_summary.json",
    "confusion_matrix.png",
)
AUTO_CLASSES = ("AutoConfig", "AutoModel", "AutoModelForVideoClassification")
OUR_PACKAGES = ("modeling_mtcae", "processing", "hub_scripts")
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")

DATASET_INFO: dict[str, dict[str, str]] = {
    "ravdess": {
        "name": "RAVDESS",
        "license": "cc-by-nc-sa-4.0",
        "url": "https://zenodo.org/records/1188976",
        "description": (
            "[RAVDESS](https://zenodo.org/records/1188976) (Livingstone and Russo, 2018): 24 professional "
            "actors (12 female, 12 male) speaking two lexically matched statements in a neutral North "
            "American accent, filmed frontally in a studio. The paper's protocol takes the 1,440 speech "
            "clips and 7 classes (calm merged into neutral); HiCMAE / MAE-DFER use 8 classes and 6 "
            "subject-independent folds (fold k tests actors 4k-3 to 4k)."
        ),
        "citation": """@article{livingstone2018ravdess,
  title   = {The Ryerson Audio-Visual Database of Emotional Speech and Song (RAVDESS)},
  author  = {Livingstone, Steven R. and Russo, Frank A.},
  journal = {PLoS ONE},
  volume  = {13},
  number  = {5},
  pages   = {e0196391},
  year    = {2018}
}""",
    },
    "crema_d": {
        "name": "CREMA-D",
        "license": "odbl",
        "url": "https://github.com/CheyneyComputerScience/CREMA-D",
        "description": (
            "[CREMA-D](https://github.com/CheyneyComputerScience/CREMA-D) (Cao et al., 2014): 7,442 clips of "
            "91 actors (48 male, 43 female, aged 20 to 74, several ethnic backgrounds) speaking 12 sentences "
            "with 6 emotions (anger, disgust, fear, happy, neutral, sad). Folds split the actors into 5 "
            "ranges (1001-1018, 1019-1036, 1037-1054, 1055-1072, 1073-1091); four known broken files are "
            "left out."
        ),
        "citation": """@article{cao2014cremad,
  title   = {CREMA-D: Crowd-sourced Emotional Multimodal Actors Dataset},
  author  = {Cao, Houwei and Cooper, David G. and Keutmann, Michael K. and Gur, Ruben C. and Nenkova, Ani and Verma, Ragini},
  journal = {IEEE Transactions on Affective Computing},
  volume  = {5},
  number  = {4},
  pages   = {377--390},
  year    = {2014}
}""",
    },
    "mead": {
        "name": "MEAD",
        "license": "other",
        "url": "https://wywu.github.io/projects/MEAD/MEAD.html",
        "description": (
            "[MEAD](https://wywu.github.io/projects/MEAD/MEAD.html) (Wang et al., 2020): talking-face videos "
            "of actors recorded from seven views with 8 emotions at three intensity levels (neutral at one "
            "level); folds are subject-independent."
        ),
        "citation": """@inproceedings{wang2020mead,
  title     = {MEAD: A Large-scale Audio-visual Dataset for Emotional Talking-face Generation},
  author    = {Wang, Kaisiyuan and Wu, Qianyi and Song, Linsen and Yang, Zhuoqian and Wu, Wayne and Qian, Chen and He, Ran and Qiao, Yu and Loy, Chen Change},
  booktitle = {European Conference on Computer Vision (ECCV)},
  year      = {2020}
}""",
    },
    "synthetic": {
        "name": "Synthetic DFER",
        "license": "apache-2.0",
        "url": "",
        "description": (
            "The synthetic DFER set rendered by `processing/synthetic.py` of `mtcae-dfer`: cartoon faces "
            "of synthetic 'actors' animating the 7 RAVDESS expressions, in the RAVDESS file layout, with "
            "exact face boxes and landmarks. It exists to test the training pipeline end to end. **A "
            "model trained on it has no value on real faces.**"
        ),
        "citation": "",
    },
    "folder": {
        "name": "Video folder",
        "license": "other",
        "url": "",
        "description": "A class-per-folder video dataset with subject-independent folds.",
        "citation": "",
    },
}


# ------------------------------------------------------------------------------------------------
# Results
# ------------------------------------------------------------------------------------------------
def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"Cannot read {path}: {error}") from error


def _fraction(value: Any) -> float | None:
    """A metric as a fraction in [0, 1]; values above 1 are taken as percentages."""
    if value is None:
        return None
    value = float(value)
    if not math.isfinite(value):
        return None
    return value / 100.0 if value > 1.0 else value


def _dataset_key(name: str | None) -> str | None:
    if not name:
        return None
    key = str(name).strip().lower().replace("-", "_").replace(" ", "_")
    return key if key in DATASET_INFO else str(name)


def dataset_display_name(key: str | None) -> str:
    if key is None:
        return "an unnamed dataset"
    return DATASET_INFO.get(key, {}).get("name", key)


def rows_from_metrics(
    metrics: dict[str, Any], dataset: str | None, fold: Any = None, subjects: list | None = None, source: str = ""
) -> list[dict[str, Any]]:
    """Result rows (one per split) from Trainer-style metrics (``eval_uar``, ``test_war``, ...) or plain ``uar``/``war``."""
    rows = []
    for prefix, split in (("eval_", "validation"), ("test_", "test")):
        if metrics.get(f"{prefix}uar") is not None or metrics.get(f"{prefix}war") is not None:
            rows.append({
                "dataset": dataset, "fold": fold, "split": split, "uar": _fraction(metrics.get(f"{prefix}uar")),
                "war": _fraction(metrics.get(f"{prefix}war")),
                "num_samples": metrics.get(f"{prefix}samples", metrics.get(f"num_{prefix}clips")),
                "subjects": subjects if split == "test" else None, "source": source,
            })
    if not rows and (metrics.get("uar") is not None or metrics.get("war") is not None):
        rows.append({
            "dataset": dataset, "fold": fold, "split": metrics.get("split", "test"),
            "uar": _fraction(metrics.get("uar")), "war": _fraction(metrics.get("war")),
            "num_samples": metrics.get("num_samples", metrics.get("num_test_clips")), "subjects": subjects,
            "source": source,
        })
    return rows


def read_run(folder: str | Path) -> dict[str, Any]:
    """The metrics and summary a training run left in ``folder`` (``hub_scripts/train.py`` output)."""
    folder = Path(folder)
    metrics: dict[str, Any] = {}
    for name in ("all_results.json", "train_results.json", "eval_results.json", "test_results.json"):
        if (folder / name).is_file():
            metrics.update(_read_json(folder / name))
    summary = _read_json(folder / "run_summary.json") if (folder / "run_summary.json").is_file() else {}
    return {"metrics": metrics, "summary": summary}


def collect_results(sources: list[str | Path | dict], default_dataset: str | None = None) -> list[dict[str, Any]]:
    """Result rows from training output folders, result JSON files, or metric dicts.

    A folder gives the rows of its ``eval_*`` / ``test_*`` metrics, with the fold and test subjects
    of its ``run_summary.json``. A JSON file holds a list of rows, or a dict with a ``"folds"`` list
    (and optionally a top-level ``"dataset"``), or one dict of metrics.
    """
    rows: list[dict[str, Any]] = []
    for source in sources:
        if isinstance(source, dict):
            rows += rows_from_metrics(source, _dataset_key(source.get("dataset")) or default_dataset,
                                      source.get("fold"), source.get("test_subjects"), "metrics")
            continue
        path = Path(source)
        if path.is_dir():
            run = read_run(path)
            summary = run["summary"]
            dataset = _dataset_key(summary.get("dataset")) or default_dataset
            rows += rows_from_metrics(run["metrics"], dataset, summary.get("fold"), summary.get("test_subjects"),
                                      str(path))
        elif path.is_file():
            data = _read_json(path)
            top_dataset, numbered = default_dataset, False
            if isinstance(data, dict):
                top_dataset = _dataset_key(data.get("dataset")) or default_dataset
                numbered = "folds" in data
                entries = data.get("folds", [data])
            else:
                entries = data
            for i, entry in enumerate(entries):
                if not isinstance(entry, dict):
                    raise ValueError(f"{path}: fold entry {i} is not an object: {entry!r}")
                if entry.get("error"):  # a fold that failed in hub_scripts/cross_validate.py
                    logger.warning("%s: fold %s failed and is left out of the card (%s)", path, entry.get("fold"),
                                   str(entry["error"]).splitlines()[0])
                    continue
                fold = entry.get("fold", i + 1 if numbered else None)
                found = rows_from_metrics(entry, _dataset_key(entry.get("dataset")) or top_dataset, fold,
                                          entry.get("test_subjects") or entry.get("subjects"), str(path))
                if not found:
                    raise ValueError(f"{path}: entry {i} has no uar/war metrics: {sorted(entry)}")
                rows += found
        else:
            raise ValueError(f"results source {path} does not exist")
    return deduplicate_rows(rows)


def deduplicate_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (dataset, fold, split): the first one given wins (a fold's own folder before a CV summary)."""
    seen, unique = set(), []
    for row in rows:
        key = (str(row["dataset"]), str(row["fold"]), row["split"])
        if key not in seen:
            seen.add(key)
            unique.append(row)
    return unique


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.2f}"


def _fold_label(fold: Any) -> str:
    return "–" if fold is None else str(fold)


def results_table(rows: list[dict[str, Any]]) -> str:
    """A markdown table of the rows, with mean ± std over folds per dataset and split.

    The std is the population standard deviation over the folds, as DFER papers (and
    ``hub_scripts/cross_validate.py``) report it.
    """
    if not rows:
        return "No evaluation results were found in the training output."
    show_clips = any(row.get("num_samples") is not None for row in rows)
    lines = [
        "| Dataset | Fold | Split | Test subjects |" + (" Clips |" if show_clips else "") + " UAR (%) | WAR (%) |",
        "| --- | --- | --- | --- |" + (" --- |" if show_clips else "") + " --- | --- |",
    ]
    order = {"test": 0, "validation": 1}
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault((str(row["dataset"]), row["split"]), []).append(row)
    for (dataset, split), group in sorted(groups.items(), key=lambda kv: (kv[0][0], order.get(kv[0][1], 2))):
        for row in sorted(group, key=lambda r: (str(r["fold"]))):
            subjects = ", ".join(map(str, row["subjects"])) if row.get("subjects") else "–"
            clips = ("–" if row.get("num_samples") is None else f"{row['num_samples']}") + " | " if show_clips else ""
            lines.append(f"| {dataset_display_name(row['dataset'])} | {_fold_label(row['fold'])} | {split} | "
                         f"{subjects} | {clips}{_percent(row['uar'])} | {_percent(row['war'])} |")
        if len(group) > 1:
            cells = []
            for key in ("uar", "war"):
                values = [100 * r[key] for r in group if r[key] is not None]
                if len(values) > 1:
                    cells.append(f"{statistics.mean(values):.2f} ± {statistics.pstdev(values):.2f}")
                else:
                    cells.append(f"{values[0]:.2f}" if values else "–")
            lines.append(f"| **{dataset_display_name(group[0]['dataset'])}** | **mean ± std ({len(group)} folds)** | "
                         f"{split} | |{' |' if show_clips else ''} **{cells[0]}** | **{cells[1]}** |")
    return "\n".join(lines)


def model_index_results(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``model-index`` results: each test row (each validation row when there is no test row) and fold means."""
    chosen = [r for r in rows if r["split"] == "test"] or [r for r in rows if r["split"] == "validation"]
    results = []

    def entry(row_dataset, split, config, uar, war, suffix=""):
        metrics = []
        if uar is not None:
            metrics.append({"type": "recall", "value": round(100 * uar, 2), "name": f"UAR{suffix}",
                            "args": {"average": "macro"}})
        if war is not None:
            metrics.append({"type": "accuracy", "value": round(100 * war, 2), "name": f"WAR{suffix}"})
        dataset = {"name": dataset_display_name(row_dataset), "type": str(row_dataset or "unknown"), "split": split}
        if config:
            dataset["config"] = config
        return {"task": {"type": "video-classification", "name": "Dynamic Facial Expression Recognition"},
                "dataset": dataset, "metrics": metrics}

    by_dataset: dict[str, list[dict]] = {}
    for row in chosen:
        by_dataset.setdefault(str(row["dataset"]), []).append(row)
    for dataset, group in by_dataset.items():
        for row in sorted(group, key=lambda r: str(r["fold"])):
            if row["uar"] is None and row["war"] is None:
                continue
            config = None if row["fold"] is None else f"fold-{row['fold']}"
            results.append(entry(row["dataset"], row["split"], config, row["uar"], row["war"]))
        if len(group) > 1:
            means = []
            for key in ("uar", "war"):
                values = [r[key] for r in group if r[key] is not None]
                means.append(statistics.mean(values) if values else None)
            results.append(entry(group[0]["dataset"], group[0]["split"], f"mean-of-{len(group)}-folds", *means,
                                 suffix=f" (mean of {len(group)} folds)"))
    return results


# ------------------------------------------------------------------------------------------------
# Model card
# ------------------------------------------------------------------------------------------------
def _training_hyperparameters(folder: Path, summary: dict) -> dict[str, Any]:
    """Hyperparameters of the run: ``run_summary.json["training_args"]``, else the Trainer's ``training_args.bin``."""
    for key in ("training_args", "hyperparameters"):
        if isinstance(summary.get(key), dict):
            return summary[key]
    path = folder / "training_args.bin"
    if path.is_file():
        try:
            import torch

            # Trainer's own pickle of its TrainingArguments, in the run folder the user pointed us at
            # (Trainer reads it back the same way when resuming).
            args = torch.load(path, weights_only=False)
            return args.to_dict()
        except Exception as error:  # an older/newer arguments class, a missing module ...
            logger.warning("Could not read the hyperparameters from %s (%s)", path, error)
    return {}


HYPERPARAMETERS_SHOWN = (
    "learning_rate", "weight_decay", "num_train_epochs", "per_device_train_batch_size",
    "gradient_accumulation_steps", "warmup_steps", "warmup_ratio", "lr_scheduler_type", "optim",
    "max_grad_norm", "label_smoothing_factor", "metric_for_best_model", "bf16", "fp16", "seed",
)


def _architecture(config, num_parameters: tuple[int, int] | None) -> str:
    enc = config.encoder_config
    height, width = config.image_size
    tasks = " → ".join(config.tasks)
    mode = {
        "cascaded": f"cascaded ({tasks}; each decoder is queried by the previous decoder's output)",
        "parallel": "parallel (non-fully-shared multi-task: every decoder is queried by the projected encoder tokens)",
        "fully_shared": "fully shared (one shared decoder, then the three task decoders on its output)",
        "single_task": "single task (the expression decoder only, no face heads)",
    }[config.decoder_mode]
    lines = [
        f"- Encoder: VideoMAE ViT (hidden {enc.hidden_size}, {enc.num_hidden_layers} layers, "
        f"{enc.num_attention_heads} heads, patch {enc.patch_size}, tubelet {enc.tubelet_size}, mean pooling), "
        f"input {config.num_frames} x 3 x {height} x {width} → {config.num_tokens} tokens; "
        + ("frozen during fine-tuning." if config.freeze_encoder else "fine-tuned with the rest."),
        f"- Projection: {'LayerNorm, ' if config.projection_norm else ''}Linear {enc.hidden_size} → "
        f"{config.projection_dim} ({config.projection_mode}).",
        f"- Decoders: {mode}; {config.decoder_num_layers} pre-norm cross-attention block(s) each, width "
        f"{config.decoder_hidden_size}, {config.decoder_num_heads} heads x {config.decoder_head_dim}, no self-attention.",
    ]
    if config.has_face_tasks:
        lines.append(f"- Heads (mean over tokens → LayerNorm → Linear): {config.num_frames} face boxes [x, y, w, h], "
                     f"{config.num_frames} x {config.num_landmarks} landmarks (eyes, nose, mouth corners), "
                     f"{config.num_labels} expression logits.")
        lines.append(f"- Loss: {config.loss_weight_face_boxes:g} MSE(boxes) + {config.loss_weight_face_landmarks:g} "
                     f"MSE(landmarks) + {config.loss_weight_expression:g} CE(expression); frames without a face "
                     "are left out of the MSE terms.")
    else:
        lines.append(f"- Head: mean over tokens → LayerNorm → Linear to {config.num_labels} expression logits; "
                     "loss: cross-entropy.")
    if num_parameters:
        total, trainable = num_parameters
        lines.append(f"- Parameters: {total:,} in total, {trainable:,} trained.")
    return "\n".join(lines)


def _processor_details(processor) -> str:
    if processor is None:
        return "see `video_preprocessor_config.json`."
    height, width = processor.output_size()
    sampling = {
        "uniform": f"{processor.num_frames} frames at the centres of {processor.num_frames} equal segments of the whole clip",
        "stride": f"{processor.num_frames} frames with stride N // {processor.num_frames} from the first frame "
                  "(the authors' notebook)",
    }.get(processor.sampling_mode, f"{processor.num_frames} frames ({processor.sampling_mode})")
    detector = getattr(processor, "face_detector", None)
    unlabelled = (f"a video given without `face_labels` gets its faces from {detector.upper()}, as `mtcae-annotate` "
                  "labels them; the whole frame where none is found" if detector else
                  "pass `face_labels` (boxes + 5 landmarks per frame, e.g. from `mtcae-annotate`) at inference too, "
                  "otherwise the whole frame is used")
    resize = {
        "full_frame": f"the whole frame resized to {height} x {width} (aspect ratio not kept, as in the paper)",
        "shortest_edge": f"the short side resized to {min(height, width)}, then a {height} x {width} centre crop",
        "face_crop": f"a square crop around the labelled face resized to {height} x {width}; {unlabelled}",
        "face_align": f"each frame warped so that the labelled eyes and nose sit on ArcFace's 5-point template, "
                      f"{height} x {width}; {unlabelled}",
    }.get(processor.resize_mode, processor.resize_mode)
    mean = ", ".join(f"{v:g}" for v in processor.image_mean)
    std = ", ".join(f"{v:g}" for v in processor.image_std)
    return f"{sampling}; {resize}; pixels scaled to [0, 1], then normalised with mean ({mean}) and std ({std})."


def _training_details(summary: dict, hyperparameters: dict, metrics: dict) -> str:
    lines = []
    if summary.get("fold") is not None:
        def subjects(key):
            value = summary.get(key)
            return ", ".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value or "?")

        lines.append(f"- Fold {summary['fold']}: training subjects {subjects('train_subjects')}; validation "
                     f"{subjects('val_subjects')}; test {subjects('test_subjects')}.")
    if summary.get("class_names"):
        lines.append(f"- Classes: {', '.join(summary['class_names'])}.")
    shown = [(k, hyperparameters[k]) for k in HYPERPARAMETERS_SHOWN if hyperparameters.get(k) not in (None, "", False)]
    if shown:
        lines.append("- Hyperparameters: " + ", ".join(f"`{k}` = {v}" for k, v in shown) + ".")
    if metrics.get("epoch") is not None:
        lines.append(f"- Epochs run: {metrics['epoch']:g}.")
    if metrics.get("train_runtime") is not None:
        lines.append(f"- Training time: {metrics['train_runtime'] / 60:.1f} min.")
    if not lines:
        lines.append("- No training summary was found next to the weights.")
    lines.append("- Optimiser and schedule follow `hub_scripts/train.py` of `mtcae-dfer` (AdamW, Trainer); the "
                 "authors' notebook used AdamW (lr 1e-3, weight decay 1e-3, batch 16), up to 100 epochs, "
                 "ReduceLROnPlateau on the validation expression loss, no augmentation.")
    return "\n".join(lines)


def card_values(
    config,
    processor=None,
    *,
    rows: list[dict[str, Any]] = (),
    summary: dict | None = None,
    metrics: dict | None = None,
    hyperparameters: dict | None = None,
    num_parameters: tuple[int, int] | None = None,
    repo_id: str | None = None,
    model_name: str | None = None,
    dataset: str | None = None,
    license: str | None = None,
) -> dict[str, str]:
    """The values of the template placeholders.

    ``model_name``, ``repo_id``, ``license``, ``dataset_name``, ``dataset_license``, ``num_labels``,
    ``num_frames``, ``label_list``, ``label_table``, ``architecture``, ``processor_details``,
    ``dataset_section``, ``training_details``, ``results_table``, ``dataset_citation``.
    """
    summary = summary or {}
    info = DATASET_INFO.get(dataset or "", {})
    labels = [config.id2label[i] for i in sorted(config.id2label)]
    model_name = model_name or (repo_id.split("/")[-1] if repo_id else "mtcae-dfer")
    dataset_section = info.get("description") or f"{dataset_display_name(dataset)}."
    if summary.get("class_names"):
        dataset_section += f" Classes used: {', '.join(summary['class_names'])}."
    license = license or info.get("license") or "other"
    return {
        "model_name": model_name,
        "repo_id": repo_id or f"path/to/{model_name}",
        "license": license,
        "dataset_name": dataset_display_name(dataset),
        "dataset_license": info.get("license", "see the dataset's terms"),
        "num_labels": str(config.num_labels),
        "num_frames": str(config.num_frames),
        "label_list": ", ".join(labels),
        "label_table": ", ".join(f"{i}: {config.id2label[i]}" for i in sorted(config.id2label)) + ".",
        "architecture": _architecture(config, num_parameters),
        "processor_details": _processor_details(processor),
        "dataset_section": dataset_section,
        "training_details": _training_details(summary, hyperparameters or {}, metrics or {}),
        "results_table": results_table(list(rows)),
        "dataset_citation": ("Dataset:\n\n```bibtex\n" + info["citation"] + "\n```") if info.get("citation") else "",
    }


_PLACEHOLDER = re.compile(r"\{\{\s*(\w+)\s*\}\}")


def render_model_card(
    values: dict[str, str],
    rows: list[dict[str, Any]],
    template: str | None = None,
    datasets: list[str] | None = None,
    base_model: str | None = None,
) -> str:
    """Fill the template's placeholders and its ``model-index`` with the result rows."""
    template = MODEL_CARD_TEMPLATE.read_text(encoding="utf-8") if template is None else template

    def fill(match: re.Match) -> str:
        name = match.group(1)
        if name not in values:
            raise KeyError(f"model card template uses an unknown placeholder {{{{ {name} }}}}; known: {sorted(values)}")
        return values[name]

    # Fill the front matter with YAML-quoted values, the body with plain text.
    metadata_text = re.match(r"\A---\s*\n(.*?)\n---\s*\n", template, flags=re.DOTALL)
    if metadata_text:
        head = _PLACEHOLDER.sub(fill, metadata_text.group(1))
        body = _PLACEHOLDER.sub(fill, template[metadata_text.end():])
        metadata = yaml.safe_load(head) or {}
    else:
        metadata, body = {}, _PLACEHOLDER.sub(fill, template)
    results = model_index_results(rows)
    index = metadata.get("model-index") or [{"name": values["model_name"], "results": []}]
    if results:
        index[0]["results"] = results
        index[0].setdefault("name", values["model_name"])
        metadata["model-index"] = index
    else:
        metadata.pop("model-index", None)  # the Hub refuses a model-index without results
    if datasets:
        metadata["datasets"] = datasets
    if base_model:
        metadata["base_model"] = base_model
    front = yaml.safe_dump(metadata, sort_keys=False, allow_unicode=True, width=1000)
    return f"---\n{front}---\n{body}"


# ------------------------------------------------------------------------------------------------
# Building and checking the repo folder
# ------------------------------------------------------------------------------------------------
def _load_model(source: Path):
    from modeling_mtcae import MTCAEForVideoClassification

    model, info = MTCAEForVideoClassification.from_pretrained(str(source), output_loading_info=True)
    problems = {k: v for k, v in info.items() if k in ("missing_keys", "unexpected_keys", "mismatched_keys") and v}
    if problems:
        raise ValueError(f"The weights in {source} do not match its config.json: {problems}")
    return model


def _load_processor(source: Path, config):
    from processing.video_processing_mtcae import MTCAEVideoProcessor

    if (source / PROCESSOR_CONFIG_FILE).is_file():
        return MTCAEVideoProcessor.from_pretrained(str(source))
    height, width = config.image_size
    warnings.warn(f"{source} has no {PROCESSOR_CONFIG_FILE}; using a default MTCAEVideoProcessor for "
                  f"{config.num_frames} frames of {height}x{width}.")
    return MTCAEVideoProcessor(num_frames=config.num_frames, size={"height": height, "width": width})


def build_repo_folder(
    source_dir: str | Path,
    repo_dir: str | Path,
    *,
    repo_id: str | None = None,
    model_name: str | None = None,
    dataset: str | None = None,
    results: list[str | Path | dict] = (),
    metrics: dict | None = None,
    template: str | Path | None = None,
    license: str | None = None,
    base_model: str | None = None,
    overwrite: bool = False,
) -> list[str]:
    """Build the self-contained repo folder from a training output (or checkpoint) folder.

    Args:
        source_dir: what ``Trainer.save_model`` / ``save_pretrained`` wrote (config, weights, processor).
        repo_dir: the folder to build (created; must be empty unless ``overwrite``).
        repo_id: the Hub repo, for the card's usage snippet.
        model_name: the card's title and model-index name (default: the repo name or the folder name).
        dataset: ``ravdess``, ``crema_d``, ``mead``, ``synthetic``, ``folder`` (default: ``run_summary.json``).
        results: more result sources for the card (other fold folders, cross-validation JSON).
        metrics: metrics to use instead of the folder's result files (a checkpoint in training).
        template: model card template: a path, or the text itself (a string with line breaks);
            default ``hub_scripts/model_card.md``.
        license: the card's license tag (default: the dataset's).
        base_model: the encoder checkpoint the model was fine-tuned from (card metadata).
        overwrite: empty ``repo_dir`` first when it holds files.

    Returns:
        The relative paths of the files in ``repo_dir``, sorted.
    """
    source, repo = Path(source_dir), Path(repo_dir)
    if not (source / CONFIG_FILE).is_file():
        raise FileNotFoundError(f"{source} has no {CONFIG_FILE}: not a saved model folder")
    if source.resolve() == repo.resolve():
        raise ValueError("repo_dir must differ from source_dir")
    if repo.exists() and any(repo.iterdir()):
        if not overwrite:
            raise FileExistsError(f"{repo} is not empty (pass overwrite=True / --overwrite)")
        shutil.rmtree(repo)
    repo.mkdir(parents=True, exist_ok=True)

    model = _load_model(source)
    processor = _load_processor(source, model.config)
    model.save_pretrained(str(repo))
    processor.save_pretrained(str(repo))

    run = read_run(source)
    summary = run["summary"]
    if metrics is not None:
        run["metrics"] = dict(metrics)
    else:
        for name in RESULT_FILES:
            if (source / name).is_file():
                shutil.copy2(source / name, repo / name)
    dataset = _dataset_key(dataset) or _dataset_key(summary.get("dataset"))
    rows = rows_from_metrics(run["metrics"], dataset, summary.get("fold"), summary.get("test_subjects"), str(source))
    rows = deduplicate_rows(rows + collect_results(list(results), default_dataset=dataset))
    base_model = base_model or summary.get("base_model") or summary.get("encoder")
    num_parameters = (sum(p.numel() for p in model.parameters()),
                      sum(p.numel() for p in model.parameters() if p.requires_grad))
    values = card_values(
        model.config, processor, rows=rows, summary=summary, metrics=run["metrics"],
        hyperparameters=_training_hyperparameters(source, summary), num_parameters=num_parameters,
        repo_id=repo_id, model_name=model_name or (None if repo_id else source.resolve().name), dataset=dataset,
        license=license,
    )
    if isinstance(template, Path) or (isinstance(template, str) and "\n" not in template):
        if not Path(template).is_file():
            raise FileNotFoundError(f"model card template {template} does not exist")
        template = Path(template).read_text(encoding="utf-8")  # else: the template's text itself
    datasets = sorted({DATASET_INFO.get(str(r["dataset"]), {}).get("name", str(r["dataset"]))
                       for r in rows if r["dataset"] and r["dataset"] != "synthetic"})
    card = render_model_card(values, rows, template, datasets=datasets or None, base_model=base_model)
    (repo / "README.md").write_text(card, encoding="utf-8")
    return verify_repo_folder(repo)


_OWN_IMPORT = re.compile(rf"^\s*(?:from|import)\s+({'|'.join(OUR_PACKAGES)})\b", flags=re.MULTILINE)


def verify_repo_folder(repo_dir: str | Path) -> list[str]:
    """Check that ``repo_dir`` is a self-contained MTCAE-DFER repo; return its files (relative, sorted).

    Raises:
        ValueError: listing every problem (a missing file, an ``auto_map`` entry without its code file,
            code that imports this package, a pickle, a model card whose metadata does not parse).
    """
    repo = Path(repo_dir)
    files = sorted(p.relative_to(repo).as_posix() for p in repo.rglob("*") if p.is_file())
    problems = []
    weights = "model.safetensors" in files or "model.safetensors.index.json" in files
    if not weights:
        problems.append("no model.safetensors")
    for name in (CONFIG_FILE, PROCESSOR_CONFIG_FILE, "README.md", *MODEL_CODE_FILES, *PROCESSOR_CODE_FILES):
        if name not in files:
            problems.append(f"missing {name}")
    if CONFIG_FILE in files:
        auto_map = json.loads((repo / CONFIG_FILE).read_text()).get("auto_map", {})
        for auto_class in AUTO_CLASSES:
            if auto_class not in auto_map:
                problems.append(f"{CONFIG_FILE}: auto_map has no {auto_class}")
        for target in auto_map.values():
            module = str(target).split("--")[-1].rsplit(".", 1)[0]
            if f"{module}.py" not in files:
                problems.append(f"{CONFIG_FILE}: auto_map names {target} but {module}.py is missing")
    if PROCESSOR_CONFIG_FILE in files:
        auto_map = json.loads((repo / PROCESSOR_CONFIG_FILE).read_text()).get("auto_map", {})
        target = auto_map.get("AutoVideoProcessor")
        if target is None:
            problems.append(f"{PROCESSOR_CONFIG_FILE}: auto_map has no AutoVideoProcessor")
        elif f"{target.rsplit('.', 1)[0]}.py" not in files:
            problems.append(f"{PROCESSOR_CONFIG_FILE}: auto_map names {target} but its file is missing")
    for name in files:
        if name.endswith(".py"):
            match = _OWN_IMPORT.search((repo / name).read_text(encoding="utf-8"))
            if match:
                problems.append(f"{name} imports {match.group(1)}, which a Hub user does not have")
        if name.endswith(PICKLE_SUFFIXES):
            problems.append(f"{name} is a pickle; only safetensors weights are uploaded")
        if "/" in name:
            problems.append(f"{name}: the repo must be one flat folder")
    if "README.md" in files:
        from huggingface_hub import ModelCard

        try:
            ModelCard((repo / "README.md").read_text(encoding="utf-8"), ignore_metadata_errors=False)
        except Exception as error:
            problems.append(f"README.md metadata does not parse: {error}")
    if problems:
        raise ValueError(f"{repo} is not a self-contained MTCAE-DFER repo:\n  " + "\n  ".join(problems))
    return files


# ------------------------------------------------------------------------------------------------
# Upload
# ------------------------------------------------------------------------------------------------
def push_folder(
    repo_dir: str | Path,
    repo_id: str,
    *,
    token: str | None = None,
    private: bool | None = None,
    revision: str | None = None,
    commit_message: str | None = None,
    create_pr: bool = False,
    run_as_future: bool = False,
    api=None,
):
    """Create the repo (and the branch ``revision``) if needed and upload ``repo_dir`` in one commit.

    Returns the ``CommitInfo`` of ``HfApi.upload_folder`` (a ``Future`` with ``run_as_future``), with the
    full repo id in ``repo_id`` (``create_repo`` adds the user's namespace to a bare name).
    """
    from huggingface_hub import HfApi

    verify_repo_folder(repo_dir)
    api = api or HfApi()
    url = api.create_repo(repo_id, token=token, private=private, repo_type="model", exist_ok=True)
    repo_id = getattr(url, "repo_id", None) or repo_id
    if revision and revision != "main" and not create_pr:
        api.create_branch(repo_id, branch=revision, token=token, repo_type="model", exist_ok=True)
    return api.upload_folder(
        repo_id=repo_id,
        folder_path=str(repo_dir),
        commit_message=commit_message or "Upload MTCAE-DFER model",
        token=token,
        repo_type="model",
        revision=None if create_pr else revision,
        create_pr=create_pr,
        run_as_future=run_as_future,
    )


# ------------------------------------------------------------------------------------------------
# Trainer
# ------------------------------------------------------------------------------------------------
try:
    from transformers import Trainer as _Trainer
except ImportError:  # pragma: no cover - transformers is a hard dependency
    _Trainer = object


class MTCAETrainer(_Trainer):
    """``transformers.Trainer`` whose Hub pushes upload the self-contained repo of :func:`build_repo_folder`.

    - ``push_to_hub()`` saves the model like Trainer does, then builds the repo folder from
      ``output_dir`` (weights, config, code, processor, result files, the rendered model card) and
      uploads exactly that: no ``training_args.bin``, no checkpoints, no Trainer-generated card.
    - Pushes while training (``push_to_hub=True`` with ``hub_strategy`` ``every_save``,
      ``checkpoint`` or ``all_checkpoints``) upload the same folder built from the checkpoint just
      saved, with the latest validation metrics in the card; ``checkpoint`` / ``all_checkpoints``
      also upload the checkpoint folder itself to resume from, as Trainer does.
    - ``create_model_card()`` writes this project's card to ``output_dir/README.md``.

    Args:
        hub_card_kwargs: forwarded to :func:`build_repo_folder` (``dataset``, ``license``,
            ``base_model``, ``results``, ``template``, ``model_name``).
        Everything else: as ``transformers.Trainer``.
    """

    STAGING = "_hub_staging"  # inside output_dir; Trainer's own uploads ignore "_*"

    def __init__(self, *args, hub_card_kwargs: dict | None = None, **kwargs):
        self.hub_card_kwargs = dict(hub_card_kwargs or {})
        super().__init__(*args, **kwargs)

    def _build_for_hub(self, source: str | Path, staging: Path, metrics: dict | None = None) -> list[str]:
        return build_repo_folder(source, staging, repo_id=self.hub_model_id, metrics=metrics, overwrite=True,
                                 **self.hub_card_kwargs)

    def _latest_eval_metrics(self) -> dict:
        metrics: dict = {}
        for entry in self.state.log_history:
            if any(k.startswith("eval_") for k in entry):
                metrics.update(entry)
        return metrics

    def create_model_card(self, **kwargs) -> None:  # noqa: D102 - documented on the class
        if not self.is_world_process_zero():
            return
        with tempfile.TemporaryDirectory() as staging:
            self._build_for_hub(self.args.output_dir, Path(staging) / "repo")
            shutil.copy2(Path(staging) / "repo" / "README.md", Path(self.args.output_dir) / "README.md")

    def push_to_hub(self, commit_message: str | None = "End of training", blocking: bool = True,
                    token: str | None = None, revision: str | None = None, private: bool | None = None, **kwargs):
        """Save the model, build the self-contained repo folder from ``output_dir`` and upload it (blocking)."""
        self.callback_handler.on_push_begin(self.args, self.state, self.control)
        token = token if token is not None else self.args.hub_token
        if self.hub_model_id is None:
            self.init_hf_repo(token=token, private=private)
        self.save_model(_internal_call=True)
        if not self.is_world_process_zero():
            return None
        if not blocking:
            logger.info("MTCAETrainer.push_to_hub uploads in the foreground (blocking=False is not supported).")
        self._finish_current_push()
        staging = Path(self.args.output_dir) / self.STAGING / "final"
        try:
            self._build_for_hub(self.args.output_dir, staging)
            return push_folder(staging, self.hub_model_id, token=token,
                               private=self.args.hub_private_repo if private is None else private,
                               revision=revision if revision is not None else self.args.hub_revision,
                               commit_message=commit_message, api=_trainer_hf_api())
        finally:
            shutil.rmtree(Path(self.args.output_dir) / self.STAGING, ignore_errors=True)

    def _push_from_checkpoint(self, checkpoint_folder: str) -> None:
        from transformers.trainer_utils import HubStrategy
        from transformers.utils.hub import PushInProgress

        if not self.is_world_process_zero() or self.args.hub_strategy == HubStrategy.END:
            return
        if not self.args.hub_always_push and self.push_in_progress is not None and not self.push_in_progress.is_done():
            return
        self.callback_handler.on_push_begin(self.args, self.state, self.control)
        staging_root = Path(self.args.output_dir) / self.STAGING
        if self.push_in_progress is None or self.push_in_progress.is_done():
            shutil.rmtree(staging_root, ignore_errors=True)  # earlier uploads are finished
        staging = staging_root / Path(checkpoint_folder).name
        self._build_for_hub(checkpoint_folder, staging, metrics=self._latest_eval_metrics())
        if self.args.save_strategy == "steps":
            commit_message = f"Training in progress, step {self.state.global_step}"
        else:
            commit_message = f"Training in progress, epoch {int(self.state.epoch or 0)}"
        api = _trainer_hf_api()
        jobs = [push_folder(staging, self.hub_model_id, token=self.args.hub_token,
                            private=self.args.hub_private_repo, revision=self.args.hub_revision,
                            commit_message=commit_message, run_as_future=True, api=api)]
        if self.args.hub_strategy in (HubStrategy.CHECKPOINT, HubStrategy.ALL_CHECKPOINTS):
            path_in_repo = ("last-checkpoint" if self.args.hub_strategy == HubStrategy.CHECKPOINT
                            else Path(checkpoint_folder).name)
            jobs.append(api.upload_folder(repo_id=self.hub_model_id, folder_path=checkpoint_folder,
                                          path_in_repo=path_in_repo, commit_message=commit_message + ", checkpoint",
                                          token=self.args.hub_token, run_as_future=True,
                                          revision=self.args.hub_revision))
        if self.push_in_progress is None or self.push_in_progress.is_done():
            self.push_in_progress = PushInProgress(jobs)
        else:
            self.push_in_progress.jobs.extend(jobs)


def _trainer_hf_api():
    """The HfApi instance transformers uses (tagged with its library name), or a plain one."""
    try:
        from transformers.utils.hub import hf_api

        return hf_api()
    except ImportError:  # older transformers
        from huggingface_hub import HfApi

        return HfApi()


# ------------------------------------------------------------------------------------------------
# Command line
# ------------------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="mtcae-push-to-hub", description=__doc__.split("\n\n")[0].replace("``", ""),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("output_dir", help="training output folder (hub_scripts/train.py --output_dir)")
    parser.add_argument("--repo_id", help="Hub repo, 'user/name' or 'name' (required unless --dry_run)")
    parser.add_argument("--dry_run", metavar="DIR", help="build and check the repo folder in DIR; upload nothing")
    parser.add_argument("--private", action="store_true", default=None, help="create the repo as private")
    parser.add_argument("--revision", help="branch to push to (created from main when missing)")
    parser.add_argument("--commit_message", default=None, help="commit message of the upload")
    parser.add_argument("--create_pr", action="store_true", help="open a pull request instead of committing")
    parser.add_argument("--token", default=None, help="Hub token (default: the logged-in user's)")
    parser.add_argument("--dataset", default=None, help=f"one of {sorted(DATASET_INFO)} (default: run_summary.json)")
    parser.add_argument("--results", nargs="*", default=[], metavar="PATH",
                        help="more result rows for the card: other folds' output folders or results JSON files")
    parser.add_argument("--model_card", default=None, metavar="TEMPLATE", help="model card template (markdown)")
    parser.add_argument("--model_name", default=None, help="title of the card (default: the repo name)")
    parser.add_argument("--license", default=None, help="license tag of the card (default: the dataset's)")
    parser.add_argument("--base_model", default=None, help="encoder checkpoint the model was fine-tuned from")
    parser.add_argument("--overwrite", action="store_true", help="let --dry_run replace a non-empty folder")
    args = parser.parse_args(argv)
    if not args.dry_run and not args.repo_id:
        parser.error("--repo_id is required (or pass --dry_run DIR to build the folder only)")
    return args


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s", level=logging.INFO)
    args = parse_args(argv)
    build = dict(repo_id=args.repo_id, model_name=args.model_name, dataset=args.dataset, results=args.results,
                 template=args.model_card, license=args.license, base_model=args.base_model)
    try:
        if args.dry_run:
            files = build_repo_folder(args.output_dir, args.dry_run, overwrite=args.overwrite, **build)
            print(f"Built {args.dry_run} ({len(files)} files); nothing was uploaded:")
            for name in files:
                print(f"  {name}")
            return 0
        with tempfile.TemporaryDirectory(prefix="mtcae-hub-") as staging:
            files = build_repo_folder(args.output_dir, Path(staging) / "repo", **build)
            info = push_folder(Path(staging) / "repo", args.repo_id, token=args.token, private=args.private,
                               revision=args.revision, commit_message=args.commit_message, create_pr=args.create_pr)
    except (FileNotFoundError, FileExistsError, ValueError) as error:
        print(f"mtcae-push-to-hub: error: {error}", file=sys.stderr)
        return 2
    print(f"Uploaded {len(files)} files: {', '.join(files)}")
    url = getattr(info, "pr_url", None) or getattr(info, "commit_url", None)
    if url:
        print(url)
    return 0


if __name__ == "__main__":
    sys.exit(main())
