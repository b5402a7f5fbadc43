"""One training run, end to end (``mtcae-train``'s library, as mae's ``engine_finetune``): data, model, Trainer,
the best-on-validation model tested once, and the run's report files.

:func:`run` trains on one fold and returns its test and validation metrics; cross-validation and the ablation
(:mod:`hub_scripts.training.cross_validation`) call it once per fold.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from transformers import EvalPrediction, set_seed

from hub_scripts.inference.multiview import MultiViewArguments, predict_multiview
from hub_scripts.metrics import dfer_metrics
from hub_scripts.plots import plot_confusion_matrix
from hub_scripts.training.arguments import DataArguments, ModelArguments, MTCAETrainingArguments
from hub_scripts.training.data import FoldData, load_fold, set_up_clips, use_encoder_features
from hub_scripts.training.model import (
    build_model,
    check_resume_matches,
    init_patch_embedding,
    processor_for,
    uses_pca_init,
    warn_if_resume_redraws_augmentation,
)
from hub_scripts.training.trainer import MTCAETrainer
from processing.files import check_writable_folder, write_json

logger = logging.getLogger("mtcae.train")


class ComputeMetrics:
    """Trainer's ``compute_metrics``: UAR, WAR and per-class recall from the offline metric module.

    The full result of the last call (with the confusion matrix) stays in :attr:`last`, so the test
    split is scored once.
    """

    def __init__(self, num_labels: int):
        import evaluate  # deferred: evaluate (the train extra) is only needed once metrics are computed

        self.metric = evaluate.load(dfer_metrics.__file__)
        self.num_labels = num_labels
        self.last: dict | None = None

    def __call__(self, prediction) -> dict[str, float]:
        logits = prediction.predictions[0] if isinstance(prediction.predictions, tuple) else prediction.predictions
        self.last = self.metric.compute(predictions=np.argmax(logits, -1), references=prediction.label_ids,
                                        num_labels=self.num_labels)
        scalars = {"uar": self.last["uar"], "war": self.last["war"]}
        scalars.update({f"recall_{i}": float(r) for i, r in enumerate(self.last["per_class_recall"])})
        return scalars


def prepare_run(data_args: DataArguments, model_args: ModelArguments, training_args: MTCAETrainingArguments):
    """Data, model and processor of one fold, with the clip transforms set; returns ``(data, model, processor)``."""
    data = load_fold(data_args, training_args)
    model = build_model(model_args, data.class_names)
    if training_args.resume_from_checkpoint:
        check_resume_matches(model, training_args.resume_from_checkpoint)
        warn_if_resume_redraws_augmentation(data_args, training_args)
    if data_args.cache_encoder_features and not model.base_model.encoder_is_frozen:
        raise ValueError("--cache_encoder_features needs a frozen encoder (the preset's freeze_encoder or "
                         "--freeze_encoder True): a trained encoder changes its tokens every step")
    processor = processor_for(model.config, data_args.framing)
    eval_transform = set_up_clips(data, data_args, processor, training_args)
    if uses_pca_init(model_args, model) and not training_args.resume_from_checkpoint:
        init_patch_embedding(model, data.splits["train"], eval_transform)
    if data_args.cache_encoder_features:
        use_encoder_features(model, data, eval_transform, data_args, training_args)
    return data, model, processor


def multiview_test_metrics(trainer, data: FoldData, views: MultiViewArguments, metrics: ComputeMetrics) -> dict:
    """``test_*`` metrics of the trainer's (best) model with softmax scores averaged over the test-time views.

    Each test clip is scored on ``views``' temporal x spatial views
    (:func:`hub_scripts.inference.multiview.predict_multiview`, its face labels following each view); every
    process scores the whole split (no gathering needed).
    """
    rows = data.splits["test"].with_format(None)  # the rows themselves, not ClipTransform's single-view clips
    face_labels = data.face_labels.labels_of(rows) if data.face_labels is not None else None
    probabilities = predict_multiview(trainer.model.eval(), trainer.processing_class, rows["video"],
                                      views.test_temporal_views, views.test_spatial_views,
                                      batch_size=trainer.args.per_device_eval_batch_size,
                                      spatial_mode=views.test_spatial_mode, face_labels=face_labels)
    scalars = metrics(EvalPrediction(predictions=probabilities, label_ids=np.asarray(rows["label"])))
    return {**{f"test_{k}": v for k, v in scalars.items()}, "test_confusion_matrix": metrics.last["confusion_matrix"]}


def train_and_evaluate(trainer, data: FoldData, metrics: ComputeMetrics, training_args,
                       views: MultiViewArguments | None = None) -> tuple[dict, dict]:
    """Train, keep the best model, score it on validation and (once) on test; returns ``(eval, test)`` metrics.

    Validation is single-view; the test split is scored on ``views`` (default 1 x 1, the Trainer's own pass).
    """
    train_result = trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    trainer.save_model()  # the best checkpoint (load_best_model_at_end), with processor and code
    trainer.log_metrics("train", train_result.metrics)
    trainer.save_metrics("train", train_result.metrics)
    eval_metrics = trainer.evaluate(metric_key_prefix="eval")
    trainer.log_metrics("eval", eval_metrics)
    trainer.save_metrics("eval", eval_metrics)
    views = views or MultiViewArguments()
    if views.test_temporal_views * views.test_spatial_views > 1:
        test_metrics = multiview_test_metrics(trainer, data, views, metrics)
    else:
        test_metrics = dict(trainer.predict(data.splits["test"], metric_key_prefix="test").metrics)
        test_metrics["test_confusion_matrix"] = metrics.last["confusion_matrix"]
    test_metrics.update(views.to_results())
    scalars = {k: v for k, v in test_metrics.items() if k != "test_confusion_matrix"}
    trainer.log_metrics("test", scalars)
    trainer.save_metrics("test", scalars)
    return eval_metrics, test_metrics


def write_run_report(data: FoldData, data_args: DataArguments, training_args, test_metrics: dict) -> None:
    """``run_summary.json`` (the protocol fold, subjects, left-out files), the confusion matrix, a printed summary."""
    fold, output_dir = data.fold, Path(training_args.output_dir)
    summary = {"dataset": data_args.dataset, "fold_scheme": data_args.scheme, "fold": fold.number,
               "world_size": training_args.world_size, "train_subjects": fold.train_subjects,
               "val_subjects": fold.val_subjects, "test_subjects": fold.test_subjects,
               "class_names": data.class_names, "resize_mode": data_args.framing,
               "unreadable_videos": data.unreadable, "invalid_files": data.report.invalid,
               "skipped_files": data.report.skipped, "test_confusion_matrix": test_metrics["test_confusion_matrix"],
               **{key: test_metrics[key] for key in MultiViewArguments().to_results()}}
    write_json(output_dir / "run_summary.json", summary, indent=2)
    plot_confusion_matrix(np.asarray(summary["test_confusion_matrix"]), data.class_names,
                          output_dir / "confusion_matrix.png",
                          title=f"{data_args.dataset} fold {fold.number}: test UAR {test_metrics['test_uar']:.3f}")
    if data.unreadable:
        print(f"\n{len(data.unreadable)} video(s) could not be read and were left out:")
        for path, reason in data.unreadable.items():
            print(f"  {path}: {reason}")
    print(f"\nTest UAR {test_metrics['test_uar']:.4f}  WAR {test_metrics['test_war']:.4f}  (fold {fold.number}, "
          f"{len(data.splits['test'])} clips, chance UAR {1 / len(data.class_names):.3f})")
    print(f"Model, processor and code saved to {output_dir}")


def run(data_args: DataArguments, model_args: ModelArguments, training_args: MTCAETrainingArguments,
        views: MultiViewArguments | None = None, callbacks: list | None = None) -> dict:
    """Train on one fold, keep the best-on-validation model, test it on ``views``; returns test and validation metrics.

    The returned dict holds ``test_*`` and ``eval_*`` metrics plus ``fold`` (the protocol number),
    ``test_subjects``, ``num_test_clips``, ``class_names`` and ``test_confusion_matrix`` (what
    :mod:`hub_scripts.training.cross_validation` tabulates).
    """
    set_seed(training_args.seed)
    check_writable_folder(training_args.output_dir, "--output_dir")
    data, model, processor = prepare_run(data_args, model_args, training_args)
    metrics = ComputeMetrics(len(data.class_names))
    # MTCAETrainer: Trainer whose Hub pushes upload the self-contained repo (code, processor, card).
    trainer = MTCAETrainer(model=model, args=training_args, train_dataset=data.splits["train"],
                           eval_dataset=data.splits["validation"], processing_class=processor,
                           compute_metrics=metrics, callbacks=callbacks,
                           hub_card_kwargs={"dataset": data_args.dataset, "base_model": model_args.encoder})
    eval_metrics, test_metrics = train_and_evaluate(trainer, data, metrics, training_args, views)
    if trainer.is_world_process_zero():
        write_run_report(data, data_args, training_args, test_metrics)
    if training_args.push_to_hub:
        trainer.push_to_hub(commit_message=f"MTCAE-DFER {data_args.dataset} fold {data.fold.number}")
    return {**test_metrics, **eval_metrics, "fold": data.fold.number, "test_subjects": data.fold.test_subjects,
            "num_test_clips": len(data.splits["test"]), "class_names": data.class_names}


__all__ = ["ComputeMetrics", "multiview_test_metrics", "prepare_run", "run", "train_and_evaluate", "write_run_report"]
