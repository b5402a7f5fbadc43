"""Fine-tune MTCAE-DFER with transformers' Trainer on RAVDESS, CREMA-D, MEAD, a class-per-folder
layout or the built-in synthetic set, on one subject-independent fold.

With no arguments it renders the synthetic set (if absent) and trains the `tiny` preset on it on the
CPU. The same script runs under every launcher:

    python -m hub_scripts.train --dataset ravdess --data_root RAVDESS --fold 1 --preset paper \\
        --encoder MCG-NJU/videomae-large-finetuned-kinetics --bf16 --output_dir runs/ravdess-f1
    accelerate launch -m hub_scripts.train ...
    torchrun --nproc_per_node 2 -m hub_scripts.train ...

The output folder holds the best-on-validation model (by UAR) with its processor and code, loadable
with `AutoModelForVideoClassification.from_pretrained(dir, trust_remote_code=True)` and the
`video-classification` pipeline, plus `all_results.json`, `eval_results.json`, `test_results.json`
and `confusion_matrix.png`.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from transformers import HfArgumentParser, TrainingArguments, set_seed

from modeling_mtcae import MTCAEConfig, MTCAEForVideoClassification
from processing.annotation_cache import AnnotationCache, sampler_key
from processing.clip_transform import ClipTransform, find_unreadable_videos
from processing.datasets import attach_face_labels
from processing.prepared_cache import PreparedClipCache
from processing.prepared_clips import PreparedClipTransform, attach_prepared_entries
from processing.video_processing_mtcae import MTCAEVideoProcessor

logger = logging.getLogger("mtcae.train")

DATASETS = ("synthetic", "ravdess", "crema_d", "mead", "folder")
DEFAULT_SYNTHETIC_ROOT = "data/synthetic_dfer"
DEFAULT_RESIZE_MODES = {"synthetic": "face_align"}  # every other dataset: "full_frame", as the paper
PCA_INIT_CLIPS = 64
DEFAULT_FOLD_SCHEMES = {"synthetic": "subject_kfold", "ravdess": "ravdess6", "crema_d": "crema5",
                        "mead": "subject_kfold", "folder": "subject_kfold"}


@dataclass
class DataArguments:
    dataset: str = field(default="synthetic", metadata={"help": f"one of {DATASETS}"})
    data_root: str | None = field(default=None, metadata={"help": f"dataset folder (synthetic: {DEFAULT_SYNTHETIC_ROOT})"})
    annotations: str | None = field(
        default=None, metadata={"help": "face-label cache (.parquet from mtcae-annotate); default DATA_ROOT/face_labels.parquet"})
    fold_scheme: str | None = field(
        default=None, metadata={"help": "ravdess6, crema5, subject_kfold or a JSON split file (default per dataset)"})
    fold: int = field(default=1, metadata={"help": "1-based fold to run"})
    num_folds: int = field(default=4, metadata={"help": "k for subject_kfold"})
    num_val_subjects: int | None = field(default=None, metadata={"help": "training subjects held out for validation"})
    num_classes: int = field(default=7, metadata={"help": "RAVDESS: 7 (calm merged into neutral) or 8"})
    mead_views: str = field(default="front", metadata={"help": "MEAD views, comma separated"})
    mead_levels: str = field(default="1,2,3", metadata={"help": "MEAD intensity levels, comma separated"})
    synthetic_actors: int = field(default=24, metadata={"help": "synthetic subjects (RAVDESS has 24)"})
    synthetic_clips_per_class: int = field(default=6)
    resize_mode: str | None = field(
        default=None,
        metadata={"help": "full_frame (the paper), shortest_edge, face_crop or face_align (needs face labels); "
                          "default: face_align for the synthetic set, full_frame otherwise"})
    max_train_samples: int | None = field(default=None)
    random_flip: bool = field(default=False, metadata={"help": "mirror half of the training clips left-right "
                                                               "(face labels mirrored too)"})
    temporal_jitter: bool = field(default=True, metadata={"help": "random frame inside each uniform segment "
                                                                  "(training augmentation)"})
    use_prepared_cache: bool = field(
        default=True, metadata={"help": "decode and frame each video once into --prepared_cache_dir and train from "
                                        "there (False: decode every clip in every epoch)"})
    prepared_cache_dir: str | None = field(
        default=None, metadata={"help": "the prepared-clip cache folder (default $MTCAE_CACHE/prepared, else "
                                        "~/.cache/mtcae/prepared); entries are keyed by file and setting"})
    cache_encoder_features: bool = field(
        default=False, metadata={"help": "frozen encoder only: run the encoder once per clip, store its tokens (bf16) "
                                         "and train the decoders and heads on them; needs --temporal_jitter False "
                                         "and no --random_flip"})
    preprocessing_num_workers: int = field(default=0, metadata={"help": "worker processes preparing clips"})

    def __post_init__(self):
        if self.cache_encoder_features and (self.temporal_jitter or self.random_flip):
            raise ValueError("--cache_encoder_features stores one encoder output per clip, which is wrong when the "
                             "training inputs change every epoch: pass --temporal_jitter False and drop --random_flip")
        if self.cache_encoder_features and not self.use_prepared_cache:
            raise ValueError("--cache_encoder_features reads the prepared-clip cache: drop --use_prepared_cache False")


@dataclass
class ModelArguments:
    preset: str = field(default="tiny", metadata={"help": "paper, paper_figure, base or tiny"})
    config: str | None = field(default=None, metadata={"help": "an MTCAEConfig JSON / folder instead of a preset"})
    model_name_or_path: str | None = field(default=None, metadata={"help": "start from a trained MTCAE-DFER"})
    encoder: str | None = field(default=None, metadata={"help": "VideoMAE checkpoint (Hub id or folder) for the encoder"})
    freeze_encoder: bool | None = field(default=None, metadata={"help": "override the preset's encoder freezing"})
    decoder_mode: str | None = field(default=None, metadata={"help": "cascaded, parallel, fully_shared, single_task"})
    patch_embedding_init: str = field(
        default="auto",
        metadata={"help": "pca (PCA-whitened tubelet embedding from training clips), random, or auto: pca when the "
                          "encoder trains from scratch (no --encoder / --model_name_or_path, not frozen)"})
    loss_weight_expression: float | None = None
    loss_weight_face_boxes: float | None = None
    loss_weight_face_landmarks: float | None = None


@dataclass
class MTCAETrainingArguments(TrainingArguments):
    """TrainingArguments with this project's defaults (the tiny preset on the synthetic set)."""

    output_dir: str | None = field(default="outputs/mtcae-tiny-synthetic")
    num_train_epochs: float = field(default=18.0)
    learning_rate: float = field(default=1e-3)
    weight_decay: float = field(default=1e-3)
    warmup_steps: float = field(default=0.05)
    per_device_train_batch_size: int = field(default=16)
    per_device_eval_batch_size: int = field(default=16)
    eval_strategy: str = field(default="epoch")
    save_strategy: str = field(default="epoch")
    save_total_limit: int | None = field(default=2)
    load_best_model_at_end: bool = field(default=True)
    metric_for_best_model: str | None = field(default="uar")
    greater_is_better: bool | None = field(default=True)
    logging_steps: float = field(default=10)
    remove_unused_columns: bool = field(default=False)
    report_to: None | str | list[str] = field(default="none")
    dataloader_num_workers: int = field(
        default=-1, metadata={"help": "-1 (auto): 0 without a GPU (workers would take the training step's cores), "
                                      "else min(4, CPU cores per process - 1), kept alive between epochs"})
    seed: int = field(default=42)

    def __post_init__(self):
        if self.dataloader_num_workers < 0:
            self.dataloader_num_workers = default_dataloader_workers()
            self.dataloader_persistent_workers = self.dataloader_persistent_workers or self.dataloader_num_workers > 0
        super().__post_init__()


def default_dataloader_workers() -> int:
    """Loader workers per process: none on a CPU-only machine, else up to 4 of the process's share of cores.

    With the prepared-clip cache a batch is a memory-mapped read plus a normalisation, so on a CPU
    the step itself needs every core; on a GPU the workers keep the next batches ready.
    """
    if not torch.cuda.is_available():
        return 0
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    per_process = cores // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    return max(0, min(4, per_process - 1))


# ------------------------------------------------------------------------------------------------
# Data
# ------------------------------------------------------------------------------------------------
def load_table(data_args: DataArguments):
    """The whole dataset as a table of paths, labels and subjects, with the adapter's report."""
    from processing import datasets as adapters

    name = data_args.dataset
    if name not in DATASETS:
        raise ValueError(f"--dataset {name!r} is not one of {DATASETS}")
    root = data_args.data_root
    if name == "synthetic":
        from processing.synthetic import generate_synthetic_dfer

        root = root or DEFAULT_SYNTHETIC_ROOT
        generate_synthetic_dfer(root, num_actors=data_args.synthetic_actors,
                                clips_per_class=data_args.synthetic_clips_per_class)
        table, report = adapters.load_ravdess(root, num_classes=7, return_report=True)
    elif root is None:
        raise ValueError(f"--dataset {name} needs --data_root")
    elif name == "ravdess":
        table, report = adapters.load_ravdess(root, num_classes=data_args.num_classes, return_report=True)
    elif name == "crema_d":
        table, report = adapters.load_crema_d(root, return_report=True)
    elif name == "mead":
        views = tuple(v.strip() for v in data_args.mead_views.split(","))
        levels = tuple(int(v) for v in data_args.mead_levels.split(","))
        table, report = adapters.load_mead(root, views=views, levels=levels, return_report=True)
    else:
        table, report = adapters.load_video_folder(root, return_report=True)
    return table, report, Path(root)


def dataset_folds(table, data_args: DataArguments, seed: int):
    """Every subject-independent fold of the dataset's scheme (``--fold_scheme`` or the dataset's default)."""
    from processing.datasets import make_folds

    scheme = data_args.fold_scheme or DEFAULT_FOLD_SCHEMES[data_args.dataset]
    return make_folds(table, scheme, k=data_args.num_folds, seed=seed)


def count_folds(data_args: DataArguments, seed: int = 42) -> int:
    """How many folds the dataset's scheme gives (renders the synthetic set first if needed)."""
    table, _, _ = load_table(data_args)
    return len(dataset_folds(table, data_args, seed))


def split_fold(table, data_args: DataArguments, seed: int):
    from processing.datasets import add_validation_split

    scheme = data_args.fold_scheme or DEFAULT_FOLD_SCHEMES[data_args.dataset]
    folds = dataset_folds(table, data_args, seed)
    if not 1 <= data_args.fold <= len(folds):
        raise ValueError(f"--fold {data_args.fold} is out of range: scheme {scheme} gives {len(folds)} folds")
    fold = folds[data_args.fold - 1]
    if not fold.val_subjects:
        fold = add_validation_split(fold, table, num_val_subjects=data_args.num_val_subjects, seed=seed)
    return fold


def drop_unreadable(splits: dict, bad: dict[str, str]) -> dict:
    if not bad:
        return splits
    return {name: split.filter(lambda row: row["video"] not in bad) for name, split in splits.items()}


# ------------------------------------------------------------------------------------------------
# Model
# ------------------------------------------------------------------------------------------------
def build_model(model_args: ModelArguments, class_names: list[str], num_frames: int | None = None):
    id2label = dict(enumerate(class_names))
    overrides = {k: getattr(model_args, k) for k in (
        "freeze_encoder", "decoder_mode", "loss_weight_expression", "loss_weight_face_boxes",
        "loss_weight_face_landmarks") if getattr(model_args, k) is not None}
    if model_args.model_name_or_path:
        model = MTCAEForVideoClassification.from_pretrained(
            model_args.model_name_or_path, id2label=id2label, label2id={v: k for k, v in id2label.items()},
            ignore_mismatched_sizes=True, **overrides)
        return model
    if model_args.encoder:
        return MTCAEForVideoClassification.from_videomae(model_args.encoder, preset=model_args.preset,
                                                         id2label=id2label, **overrides)
    if model_args.config:
        config = MTCAEConfig.from_pretrained(model_args.config, id2label=id2label, **overrides)
    else:
        config = MTCAEConfig.from_preset(model_args.preset, id2label=id2label, **overrides)
    config.label2id = {v: k for k, v in id2label.items()}
    return MTCAEForVideoClassification(config)


def processor_for(config: MTCAEConfig, resize_mode: str) -> MTCAEVideoProcessor:
    """The run's processor. Training always passes face labels; in the face modes the saved processor also
    detects faces (MTCNN, as mtcae-annotate) so the pipeline gets the same input from a raw video."""
    height, width = config.image_size
    face_detector = "mtcnn" if resize_mode in ("face_crop", "face_align") else None
    return MTCAEVideoProcessor(num_frames=config.num_frames, size={"height": height, "width": width},
                               resize_mode=resize_mode, face_detector=face_detector)


def input_config(model_args: ModelArguments) -> MTCAEConfig:
    """The config that decides the model input (frames, size), without loading any weights."""
    if model_args.model_name_or_path or model_args.config:
        return MTCAEConfig.from_pretrained(model_args.model_name_or_path or model_args.config)
    if model_args.encoder:
        from transformers import VideoMAEConfig

        encoder = VideoMAEConfig.from_pretrained(model_args.encoder)
        return MTCAEConfig.from_preset(model_args.preset, encoder_config={
            "image_size": encoder.image_size, "num_frames": encoder.num_frames, "patch_size": encoder.patch_size,
            "tubelet_size": encoder.tubelet_size})
    return MTCAEConfig.from_preset(model_args.preset)


def run_processor(data_args: DataArguments, model_args: ModelArguments) -> MTCAEVideoProcessor:
    """The processor a run with these arguments uses (and saves next to its model)."""
    resize_mode = data_args.resize_mode or DEFAULT_RESIZE_MODES.get(data_args.dataset, "full_frame")
    return processor_for(input_config(model_args), resize_mode)


def face_label_cache(data_args: DataArguments, root: Path, processor: MTCAEVideoProcessor):
    """The face-label cache to join, or ``None`` (refused when the resize mode needs face labels)."""
    cache_path = Path(data_args.annotations) if data_args.annotations else root / "face_labels.parquet"
    if cache_path.exists():
        return AnnotationCache(cache_path)
    if processor.resize_mode in ("face_crop", "face_align"):
        raise FileNotFoundError(f"--resize_mode {processor.resize_mode} needs face labels, and there is no face-label "
                                f"cache at {cache_path}: run mtcae-annotate on the data set first (or pass --annotations).")
    logger.warning("No face-label cache at %s: training the expression task alone on these clips "
                   "(run mtcae-annotate to add the face tasks).", cache_path)
    return None


def with_face_labels(table, cache, processor: MTCAEVideoProcessor):
    if cache is None:
        return table
    return attach_face_labels(table, cache, sampler_key(processor.sampling_mode, processor.num_frames))


def labelled_table(data_args: DataArguments, processor: MTCAEVideoProcessor):
    """The whole data set with its face labels joined (what mtcae-prepare prepares)."""
    table, _, root = load_table(data_args)
    return with_face_labels(table, face_label_cache(data_args, root, processor), processor)


def prepare_inputs(splits: dict, data_args: DataArguments, processor: MTCAEVideoProcessor,
                   training_args: TrainingArguments) -> tuple[dict, dict[str, str], object]:
    """Decode and frame every clip once (prepared-clip cache) and point the splits at it.

    Returns the splits (rows that could not be prepared dropped), ``{video: reason}`` for those, and the
    evaluation transform.
    """
    from hub_scripts.prepare import prepare_splits

    cache = PreparedClipCache(data_args.prepared_cache_dir, processor)
    with training_args.main_process_first(desc="preparing clips"):
        report = prepare_splits(splits, cache, data_args.preprocessing_num_workers,
                                progress=training_args.local_process_index == 0)
    logger.info("prepared-clip cache %s: %s", cache.cache_dir, report.summary().splitlines()[0])
    splits = {name: attach_prepared_entries(split, cache, progress=False)[0] for name, split in splits.items()}
    train_transform = PreparedClipTransform(cache, train=data_args.temporal_jitter, random_flip=data_args.random_flip)
    splits["train"].set_transform(train_transform)
    for name in ("validation", "test"):
        splits[name].set_transform(PreparedClipTransform(cache))
    return splits, report.failed, PreparedClipTransform(cache)


def use_encoder_features(model, splits: dict, eval_transform: PreparedClipTransform,
                         data_args: DataArguments, training_args: TrainingArguments) -> dict:
    """Run the frozen encoder once per clip (bf16 tokens on disk) and train on the stored tokens."""
    from processing.feature_cache import EncoderFeatureCache, EncoderFeatureTransform

    features = EncoderFeatureCache(data_args.prepared_cache_dir, model)
    with training_args.main_process_first(desc="encoding clips"):
        encoded = sum(features.fill(split, eval_transform, training_args.per_device_eval_batch_size,
                                    progress=training_args.local_process_index == 0) for split in splits.values())
    logger.info("encoder feature cache %s: %d clip(s) encoded now", features.folder, encoded)
    transform = EncoderFeatureTransform(features, eval_transform)
    for split in splits.values():
        split.set_transform(transform)
    return splits


def decode_on_the_fly(splits: dict, data_args: DataArguments, processor: MTCAEVideoProcessor,
                      training_args: TrainingArguments) -> tuple[dict, dict[str, str], object]:
    """The uncached path: every epoch decodes the clips again (probing them first)."""
    with training_args.main_process_first(desc="probing videos"):
        bad_videos = find_unreadable_videos(sorted({v for s in splits.values() for v in s["video"]}))
    splits = drop_unreadable(splits, bad_videos)
    splits["train"].set_transform(ClipTransform(processor, train=data_args.temporal_jitter,
                                                random_flip=data_args.random_flip))
    for name in ("validation", "test"):
        splits[name].set_transform(ClipTransform(processor, train=False))
    return splits, bad_videos, ClipTransform(processor, train=False)


def uses_pca_init(model_args: ModelArguments, model: MTCAEForVideoClassification) -> bool:
    choice = model_args.patch_embedding_init
    if choice not in ("auto", "pca", "random"):
        raise ValueError(f"--patch_embedding_init must be auto, pca or random, got {choice!r}")
    if choice == "auto":
        from_scratch = not (model_args.encoder or model_args.model_name_or_path)
        return from_scratch and not model.mtcae.encoder_is_frozen
    return choice == "pca"


def init_patch_embedding(model: MTCAEForVideoClassification, train_split, eval_transform) -> None:
    """PCA-whitened tubelet embedding from training clips spread over the split (deterministic: no jitter)."""
    picked = np.unique(np.linspace(0, len(train_split) - 1, min(PCA_INIT_CLIPS, len(train_split))).round().astype(int))
    rows = train_split.with_format(None).select(picked.tolist())[:]  # raw rows, no training transform
    pixel_values = eval_transform(rows)["pixel_values"]
    explained = model.init_patch_embedding_from_data(pixel_values)
    logger.info("Patch embedding initialised by PCA whitening of %d training clips (%.1f %% of the tubelet "
                "variance kept).", len(pixel_values), 100 * float(explained))


def metrics_function(num_labels: int):
    import evaluate

    from hub_scripts.metrics import dfer_metrics

    metric = evaluate.load(dfer_metrics.__file__)

    def compute_metrics(prediction) -> dict[str, float]:
        logits = prediction.predictions[0] if isinstance(prediction.predictions, tuple) else prediction.predictions
        result = metric.compute(predictions=np.argmax(logits, -1), references=prediction.label_ids,
                                num_labels=num_labels)
        scalars = {"uar": result["uar"], "war": result["war"]}
        scalars.update({f"recall_{i}": float(r) for i, r in enumerate(result["per_class_recall"])})
        return scalars

    return compute_metrics


# ------------------------------------------------------------------------------------------------
# Main
# ------------------------------------------------------------------------------------------------
def run(data_args: DataArguments, model_args: ModelArguments, training_args: MTCAETrainingArguments,
        callbacks: list | None = None) -> dict:
    """Train on one fold, keep the best-on-validation model, test it; returns test and validation metrics.

    The returned dict holds ``test_*`` and ``eval_*`` metrics plus ``test_subjects``, ``num_test_clips``,
    ``class_names`` and ``test_confusion_matrix`` (what :mod:`hub_scripts.cross_validate` tabulates).
    """
    set_seed(training_args.seed)
    table, report, root = load_table(data_args)
    class_names = table.features["label"].names
    fold = split_fold(table, data_args, training_args.seed)
    splits = dict(fold.select(table))
    logger.info("fold %d: train subjects %s, validation %s, test %s", data_args.fold, fold.train_subjects,
                fold.val_subjects, fold.test_subjects)
    if data_args.max_train_samples:
        splits["train"] = splits["train"].shuffle(seed=training_args.seed).select(
            range(min(data_args.max_train_samples, len(splits["train"]))))

    model = build_model(model_args, class_names)
    if data_args.cache_encoder_features and not model.base_model.encoder_is_frozen:
        raise ValueError("--cache_encoder_features needs a frozen encoder (the preset's freeze_encoder or "
                         "--freeze_encoder True): a trained encoder changes its tokens every step")
    resize_mode = data_args.resize_mode or DEFAULT_RESIZE_MODES.get(data_args.dataset, "full_frame")
    processor = processor_for(model.config, resize_mode)
    labels_cache = face_label_cache(data_args, root, processor)
    splits = {name: with_face_labels(split, labels_cache, processor) for name, split in splits.items()}
    inputs = prepare_inputs if data_args.use_prepared_cache else decode_on_the_fly
    splits, bad_videos, eval_transform = inputs(splits, data_args, processor, training_args)
    if uses_pca_init(model_args, model) and not training_args.resume_from_checkpoint:
        init_patch_embedding(model, splits["train"], eval_transform)
    if data_args.cache_encoder_features:
        splits = use_encoder_features(model, splits, eval_transform, data_args, training_args)

    from hub_scripts.push_to_hub import MTCAETrainer

    # MTCAETrainer: Trainer whose Hub pushes upload the self-contained repo (code, processor, card).
    trainer = MTCAETrainer(
        model=model,
        args=training_args,
        train_dataset=splits["train"],
        eval_dataset=splits["validation"],
        processing_class=processor,
        compute_metrics=metrics_function(len(class_names)),
        callbacks=callbacks,
        hub_card_kwargs={"dataset": data_args.dataset, "base_model": model_args.encoder},
    )
    train_result = trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    trainer.save_model()  # the best checkpoint (load_best_model_at_end), with processor and code
    trainer.log_metrics("train", train_result.metrics)
    trainer.save_metrics("train", train_result.metrics)
    eval_metrics = trainer.evaluate(metric_key_prefix="eval")
    trainer.log_metrics("eval", eval_metrics)
    trainer.save_metrics("eval", eval_metrics)

    prediction = trainer.predict(splits["test"], metric_key_prefix="test")
    test_metrics = dict(prediction.metrics)
    trainer.log_metrics("test", test_metrics)
    trainer.save_metrics("test", test_metrics)
    summary = {"dataset": data_args.dataset, "fold": data_args.fold, "world_size": training_args.world_size, "train_subjects": fold.train_subjects, "val_subjects": fold.val_subjects,
               "test_subjects": fold.test_subjects, "class_names": class_names,
               "unreadable_videos": bad_videos, "invalid_files": report.invalid, "skipped_files": report.skipped,
               "training_args": training_args.to_sanitized_dict()}
    from hub_scripts.metrics.dfer_metrics import compute_dfer_metrics

    logits = prediction.predictions[0] if isinstance(prediction.predictions, tuple) else prediction.predictions
    detail = compute_dfer_metrics(np.argmax(logits, -1), prediction.label_ids, num_labels=len(class_names))
    summary["test_confusion_matrix"] = detail["confusion_matrix"]
    if trainer.is_world_process_zero():
        from hub_scripts.plots import plot_confusion_matrix

        plot_confusion_matrix(np.asarray(detail["confusion_matrix"]), class_names,
                              Path(training_args.output_dir) / "confusion_matrix.png",
                              title=f"{data_args.dataset} fold {data_args.fold}: test UAR {detail['uar']:.3f}")
        (Path(training_args.output_dir) / "run_summary.json").write_text(json.dumps(summary, indent=2))
        if bad_videos:
            print(f"\n{len(bad_videos)} video(s) could not be read and were left out:")
            for path, reason in bad_videos.items():
                print(f"  {path}: {reason}")
        print(f"\nTest UAR {test_metrics['test_uar']:.4f}  WAR {test_metrics['test_war']:.4f}  "
              f"(fold {data_args.fold}, {len(splits['test'])} clips, chance UAR {1 / len(class_names):.3f})")
        print(f"Model, processor and code saved to {training_args.output_dir}")
    if training_args.push_to_hub:
        trainer.push_to_hub(commit_message=f"MTCAE-DFER {data_args.dataset} fold {data_args.fold}")
    return {**test_metrics, **eval_metrics, "test_subjects": fold.test_subjects, "num_test_clips": len(splits["test"]),
            "class_names": class_names, "test_confusion_matrix": detail["confusion_matrix"]}


def parse_args(argv: list[str] | None = None):
    parser = HfArgumentParser((DataArguments, ModelArguments, MTCAETrainingArguments))
    if argv is None and len(sys.argv) == 2 and sys.argv[1].endswith(".json"):
        return parser.parse_json_file(os.path.abspath(sys.argv[1]))
    return parser.parse_args_into_dataclasses(args=argv)


def main(argv: list[str] | None = None) -> dict:
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    data_args, model_args, training_args = parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    return run(data_args, model_args, training_args)


if __name__ == "__main__":
    main()
