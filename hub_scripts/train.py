"""``mtcae-train``: fine-tune MTCAE-DFER with transformers' Trainer on one subject-independent fold.

Data sets: every entry of ``processing/dataset_registry.py`` (RAVDESS, CREMA-D, MEAD, DFEW, FERV39k,
MAFW, a class-per-folder layout, the built-in synthetic set). With no arguments it renders the synthetic
set (if absent) and trains the `tiny` preset on it on the CPU. The same script runs under every launcher:

    mtcae-train --dataset ravdess --data_root RAVDESS --fold 1 --preset paper \\
        --encoder MCG-NJU/videomae-large-finetuned-kinetics --bf16 --output_dir runs/ravdess-f1
    accelerate launch -m hub_scripts.train ...
    torchrun --nproc_per_node 2 -m hub_scripts.train ...

``--fold N`` is fold N of the scheme's protocol (fold 2 of ravdess6 tests actors 05-08), also when the
data set lacks the subjects of other folds. The output folder holds the best-on-validation model (by
UAR) with its processor and code, loadable with
``AutoModelForVideoClassification.from_pretrained(dir, trust_remote_code=True)`` and the
``video-classification`` pipeline, plus ``all_results.json``, ``eval_results.json``,
``test_results.json``, ``run_summary.json``, ``training_args.json`` and ``confusion_matrix.png``.
``--test_temporal_views 2 --test_spatial_views 2`` scores the test split on 2 x 2 views per clip (softmax
averaged, the peers' protocol; validation stays single-view); the results files record the views used.
"""

from __future__ import annotations

import json
import logging
import os
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from transformers import EvalPrediction, TrainingArguments, set_seed

from hub_scripts.cli import check_choice, check_positive, check_writable_folder, parse_arguments
from hub_scripts.multiview import MultiViewArguments, predict_multiview
from modeling_mtcae import MTCAEConfig, MTCAEForVideoClassification
from modeling_mtcae.configuration_mtcae import DECODER_MODES, PRESETS
from processing.annotation_cache import AnnotationCache, sampler_key
from processing.clip_transform import ClipTransform, find_unreadable_videos
from processing.dataset_registry import DATASETS, DatasetEntry, get_dataset
from processing.datasets import (
    MEAD_LEVELS,
    MEAD_VIEWS,
    add_validation_split,
    attach_face_labels,
    fold_scheme_names,
    get_fold,
    is_split_file,
    load_split_file,
    make_folds,
    scheme_fold_count,
)
from processing.prepared_cache import PreparedClipCache
from processing.prepared_clips import PreparedClipTransform, add_prepared_entries
from processing.video_processing_mtcae import RESIZE_MODES, MTCAEVideoProcessor

logger = logging.getLogger("mtcae.train")

DatasetName = Literal[tuple(DATASETS)]
PresetName = Literal[tuple(PRESETS)]
DecoderMode = Literal[DECODER_MODES]
ResizeMode = Literal[RESIZE_MODES]
FACE_MODES = ("face_crop", "face_align")
PCA_INIT_CLIPS = 64


@dataclass
class DataArguments:
    """Which data set, fold and input framing (checked on construction, before anything is loaded)."""

    dataset: DatasetName = field(default="synthetic", metadata={"help": "a data set of processing/dataset_registry.py"})
    data_root: str | None = field(default=None, metadata={"help": "the data set's folder (synthetic: "
                                                                   "data/synthetic_dfer, rendered when absent)"})
    annotations: str | None = field(default=None, metadata={
        "help": "face-label cache (mtcae-annotate's .parquet); default DATA_ROOT/face_labels.parquet"})
    fold_scheme: str | None = field(default=None, metadata={
        "help": f"{', '.join(fold_scheme_names())} or a JSON split file (default: the data set's)"})
    fold: int = field(default=1, metadata={"help": "the scheme's 1-based fold number to run"})
    num_folds: int = field(default=4, metadata={"help": "k for subject_kfold"})
    num_val_subjects: int | None = field(default=None, metadata={"help": "training subjects held out for validation"})
    num_classes: Literal[7, 8] = field(default=7, metadata={"help": "RAVDESS: 7 (calm merged into neutral) or 8"})
    mead_views: list[str] = field(default_factory=lambda: ["front"], metadata={"help": f"MEAD views: {MEAD_VIEWS}"})
    mead_levels: list[int] = field(default_factory=lambda: list(MEAD_LEVELS), metadata={"help": "MEAD levels"})
    synthetic_actors: int = field(default=24, metadata={"help": "synthetic subjects (RAVDESS has 24)"})
    synthetic_clips_per_class: int = field(default=6, metadata={"help": "synthetic clips per subject and class"})
    resize_mode: ResizeMode | None = field(
        default=None, metadata={"help": "full_frame (the paper), shortest_edge, face_crop or face_align (the face "
                                        "modes need face labels); default: the data set's"})
    max_train_samples: int | None = field(default=None, metadata={"help": "train on at most this many clips"})
    random_flip: bool = field(default=False, metadata={"help": "mirror half of the training clips left-right "
                                                               "(face labels mirrored too)"})
    temporal_jitter: bool = field(default=True, metadata={"help": "a random frame inside each uniform segment "
                                                                  "(training augmentation)"})
    use_prepared_cache: bool = field(
        default=True, metadata={"help": "decode and frame each video once into --prepared_cache_dir and train from "
                                        "there (False: decode every clip again in every epoch)"})
    prepared_cache_dir: str | None = field(
        default=None, metadata={"help": "the prepared-clip cache folder (default $MTCAE_CACHE/prepared, else "
                                        "~/.cache/mtcae/prepared); entries are keyed by file and setting"})
    cache_encoder_features: bool = field(
        default=False, metadata={"help": "frozen encoder only: run the encoder once per clip, store its tokens (bf16) "
                                         "and train the decoders and heads on them; needs --temporal_jitter False "
                                         "and no --random_flip"})
    preprocessing_num_workers: int = field(
        default=-1, metadata={"help": "worker processes preparing clips (-1: one per core, up to 4, when more than "
                                      "64 clips are missing; 0: in this process)"})

    def __post_init__(self):
        check_choice("dataset", self.dataset, tuple(DATASETS))
        if self.cache_encoder_features and (self.temporal_jitter or self.random_flip):
            raise ValueError("--cache_encoder_features stores one encoder output per clip, which is wrong when the "
                             "training inputs change every epoch: pass --temporal_jitter False and drop --random_flip")
        if self.cache_encoder_features and not self.use_prepared_cache:
            raise ValueError("--cache_encoder_features reads the prepared-clip cache: drop --use_prepared_cache False")
        if self.preprocessing_num_workers < -1:
            raise ValueError(f"--preprocessing_num_workers must be >= -1; got {self.preprocessing_num_workers}")
        check_choice("num_classes", self.num_classes, (7, 8))
        if self.resize_mode is not None:
            check_choice("resize_mode", self.resize_mode, RESIZE_MODES)
        check_positive(fold=self.fold, num_val_subjects=self.num_val_subjects, max_train_samples=self.max_train_samples,
                       synthetic_actors=self.synthetic_actors, synthetic_clips_per_class=self.synthetic_clips_per_class)
        if self.num_folds < 2:
            raise ValueError(f"--num_folds must be >= 2; got {self.num_folds}")
        for view in self.mead_views:
            check_choice("mead_views", view, MEAD_VIEWS)
        for level in self.mead_levels:
            check_choice("mead_levels", level, MEAD_LEVELS)
        if is_split_file(self.scheme):
            load_split_file(self.scheme)  # a missing or malformed split file fails here, not after loading data
        total = scheme_fold_count(self.scheme, self.num_folds)
        if self.fold > total:
            raise ValueError(f"--fold {self.fold} is out of range: {self.scheme} has folds 1-{total}")

    @property
    def entry(self) -> DatasetEntry:
        return get_dataset(self.dataset)

    @property
    def scheme(self) -> str:
        """The fold scheme in use: ``--fold_scheme`` or the data set's default."""
        return self.fold_scheme or self.entry.fold_scheme

    @property
    def framing(self) -> str:
        """The input framing in use: ``--resize_mode`` or the data set's default."""
        return self.resize_mode or self.entry.resize_mode


@dataclass
class ModelArguments:
    """Which model to build or load (checked on construction)."""

    preset: PresetName = field(default="tiny", metadata={"help": "an MTCAEConfig preset"})
    config: str | None = field(default=None, metadata={"help": "an MTCAEConfig JSON / folder instead of a preset"})
    model_name_or_path: str | None = field(default=None, metadata={"help": "start from a trained MTCAE-DFER"})
    encoder: str | None = field(default=None, metadata={"help": "VideoMAE checkpoint (Hub id or folder)"})
    freeze_encoder: bool | None = field(default=None, metadata={"help": "override the preset's encoder freezing"})
    decoder_mode: DecoderMode | None = field(default=None, metadata={"help": "override the preset's decoder wiring"})
    patch_embedding_init: Literal["auto", "pca", "random"] = field(
        default="auto",
        metadata={"help": "pca (PCA-whitened tubelet embedding from training clips), random, or auto: pca when the "
                          "encoder trains from scratch (no --encoder / --model_name_or_path, not frozen)"})
    loss_weight_expression: float | None = field(default=None, metadata={"help": "override the preset's weight"})
    loss_weight_face_boxes: float | None = field(default=None, metadata={"help": "override the preset's weight"})
    loss_weight_face_landmarks: float | None = field(default=None, metadata={"help": "override the preset's weight"})

    def __post_init__(self):
        check_choice("preset", self.preset, tuple(PRESETS))
        check_choice("patch_embedding_init", self.patch_embedding_init, ("auto", "pca", "random"))
        if self.decoder_mode is not None:
            check_choice("decoder_mode", self.decoder_mode, DECODER_MODES)
        sources = [f"--{name}" for name in ("config", "model_name_or_path", "encoder") if getattr(self, name)]
        if len(sources) > 1:
            raise ValueError(f"{' and '.join(sources)} both say where the model comes from: pass one")
        for name in ("loss_weight_expression", "loss_weight_face_boxes", "loss_weight_face_landmarks"):
            if getattr(self, name) is not None and getattr(self, name) < 0:
                raise ValueError(f"--{name} must be >= 0; got {getattr(self, name)}")


@dataclass
class MTCAETrainingArguments(TrainingArguments):
    """TrainingArguments with this project's defaults (the tiny preset on the synthetic set)."""

    output_dir: str | None = field(default="outputs/mtcae-tiny-synthetic")
    num_train_epochs: float = field(default=16.0)
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
@dataclass
class FoldData:
    """One fold of a data set, ready for training: the splits and what was found on the way."""

    splits: dict
    fold: object
    class_names: list[str]
    root: Path
    report: object
    unreadable: dict[str, str]


def load_table(data_args: DataArguments, training_args: MTCAETrainingArguments | None = None):
    """The whole data set as a table of paths, labels and subjects, with the adapter's report and root.

    Under several processes the main one loads first (and renders the synthetic set if it is
    missing); the others then find it complete instead of writing the same files at the same time.
    """
    root = data_args.entry.resolve_root(data_args.data_root)
    loading = training_args.main_process_first(desc="loading the data set") if training_args else nullcontext()
    with loading:
        table, report = data_args.entry.load(root, data_args)
    return table, report, root


def dataset_folds(table, data_args: DataArguments, seed: int) -> list:
    """The folds of the data set's scheme that have test subjects (each with its protocol number)."""
    return make_folds(table, data_args.scheme, k=data_args.num_folds, seed=seed)


def available_folds(data_args: DataArguments, training_args: MTCAETrainingArguments) -> list[int]:
    """The protocol numbers of the folds this data set can run (renders the synthetic set first if needed)."""
    table, _, _ = load_table(data_args, training_args)
    return [fold.number for fold in dataset_folds(table, data_args, training_args.seed)]


def split_fold(table, data_args: DataArguments, seed: int):
    """Fold ``--fold`` of the scheme, with validation subjects split off its training subjects if it has none."""
    fold = get_fold(dataset_folds(table, data_args, seed), data_args.fold, data_args.scheme, data_args.num_folds)
    if not fold.val_subjects:
        fold = add_validation_split(fold, table, num_val_subjects=data_args.num_val_subjects, seed=seed)
    return fold


def load_fold(data_args: DataArguments, training_args: MTCAETrainingArguments) -> FoldData:
    """Load the data set and cut fold ``--fold`` (unreadable videos are found when the inputs are set up)."""
    table, report, root = load_table(data_args, training_args)
    fold = split_fold(table, data_args, training_args.seed)
    splits = dict(fold.select(table))
    logger.info("fold %d of %s: train subjects %s, validation %s, test %s", fold.number, data_args.scheme,
                fold.train_subjects, fold.val_subjects, fold.test_subjects)
    if data_args.max_train_samples:
        splits["train"] = splits["train"].shuffle(seed=training_args.seed).select(
            range(min(data_args.max_train_samples, len(splits["train"]))))
    return FoldData(splits, fold, table.features["label"].names, root, report, {})


def with_face_labels(splits: dict, data_args: DataArguments, root: Path, processor: MTCAEVideoProcessor) -> dict:
    """The splits with the face-label cache's labels joined; the face modes refuse to run without a cache."""
    cache_path = Path(data_args.annotations) if data_args.annotations else root / "face_labels.parquet"
    if cache_path.exists():
        cache, key = AnnotationCache(cache_path), sampler_key(processor.sampling_mode, processor.num_frames)
        return {name: attach_face_labels(split, cache, key) for name, split in splits.items()}
    if data_args.framing in FACE_MODES:
        raise FileNotFoundError(f"--resize_mode {data_args.framing} needs face labels, and there is no face-label "
                                f"cache at {cache_path}: run mtcae-annotate on the data set first (or pass "
                                "--annotations).")
    logger.warning("No face-label cache at %s: training the expression task alone on these clips "
                   "(run mtcae-annotate to add the face tasks).", cache_path)
    return splits


def drop_videos(splits: dict, bad: dict[str, str]) -> dict:
    if not bad:
        return splits
    return {name: split.filter(lambda row: row["video"] not in bad) for name, split in splits.items()}


def prepared_inputs(data: FoldData, data_args: DataArguments, processor: MTCAEVideoProcessor, training_args):
    """Decode and frame every clip once (the prepared-clip cache) and read the splits from it.

    Videos that cannot be prepared are left out and recorded in ``data.unreadable``; returns the
    evaluation transform (deterministic frames), also used for the PCA start and the feature cache.
    """
    from hub_scripts.prepare import prepare_splits

    cache = PreparedClipCache(data_args.prepared_cache_dir, processor)
    with training_args.main_process_first(desc="preparing clips"):
        report = prepare_splits(data.splits, cache, data_args.preprocessing_num_workers,
                                progress=training_args.local_process_index == 0)
    logger.info("prepared-clip cache %s: %s", cache.cache_dir, report.summary().splitlines()[0])
    data.unreadable.update(report.failed)
    data.splits = {name: add_prepared_entries(split, cache)
                   for name, split in drop_videos(data.splits, report.failed).items()}
    data.splits["train"].set_transform(PreparedClipTransform(cache, train=data_args.temporal_jitter,
                                                             random_flip=data_args.random_flip))
    for name in data.splits.keys() - {"train"}:  # validation, test (mtcae-pretrain has neither)
        data.splits[name].set_transform(PreparedClipTransform(cache))
    return PreparedClipTransform(cache)


def on_the_fly_inputs(data: FoldData, data_args: DataArguments, processor: MTCAEVideoProcessor, training_args):
    """Decode and preprocess the clips in every epoch (probing every video first); returns the eval transform."""
    with training_args.main_process_first(desc="probing videos"):
        data.unreadable.update(find_unreadable_videos(sorted({v for s in data.splits.values() for v in s["video"]})))
    data.splits = drop_videos(data.splits, data.unreadable)
    data.splits["train"].set_transform(ClipTransform(processor, train=data_args.temporal_jitter,
                                                     random_flip=data_args.random_flip))
    for name in data.splits.keys() - {"train"}:
        data.splits[name].set_transform(ClipTransform(processor, train=False))
    return ClipTransform(processor, train=False)


def use_encoder_features(model, data: FoldData, eval_transform: PreparedClipTransform, data_args: DataArguments,
                         training_args) -> None:
    """Run the frozen encoder once per clip (bf16 tokens on disk) and train on the stored tokens."""
    from processing.feature_cache import EncoderFeatureCache, EncoderFeatureTransform

    features = EncoderFeatureCache(data_args.prepared_cache_dir, model)
    with training_args.main_process_first(desc="encoding clips"):
        encoded = sum(features.fill(split, eval_transform, training_args.per_device_eval_batch_size,
                                    progress=training_args.local_process_index == 0) for split in data.splits.values())
    logger.info("encoder feature cache %s: %d clip(s) encoded now", features.folder, encoded)
    for split in data.splits.values():
        split.set_transform(EncoderFeatureTransform(features, eval_transform))


# ------------------------------------------------------------------------------------------------
# Model
# ------------------------------------------------------------------------------------------------
def build_model(model_args: ModelArguments, class_names: list[str]) -> MTCAEForVideoClassification:
    """A new model from the preset / config, a VideoMAE encoder, or a trained MTCAE-DFER, for ``class_names``."""
    id2label = dict(enumerate(class_names))
    label2id = {v: k for k, v in id2label.items()}
    overrides = {k: getattr(model_args, k) for k in (
        "freeze_encoder", "decoder_mode", "loss_weight_expression", "loss_weight_face_boxes",
        "loss_weight_face_landmarks") if getattr(model_args, k) is not None}
    if model_args.model_name_or_path:
        return MTCAEForVideoClassification.from_pretrained(
            model_args.model_name_or_path, id2label=id2label, label2id=label2id, ignore_mismatched_sizes=True,
            **overrides)
    if model_args.encoder:
        return MTCAEForVideoClassification.from_videomae(model_args.encoder, preset=model_args.preset,
                                                         id2label=id2label, **overrides)
    if model_args.config:
        config = MTCAEConfig.from_pretrained(model_args.config, id2label=id2label, **overrides)
    else:
        config = MTCAEConfig.from_preset(model_args.preset, id2label=id2label, **overrides)
    config.label2id = label2id
    return MTCAEForVideoClassification(config)


def processor_for(config: MTCAEConfig, resize_mode: str) -> MTCAEVideoProcessor:
    """The run's processor. Training always passes face labels; in the face modes the saved processor also
    detects faces (MTCNN, as mtcae-annotate) so the pipeline gets the same input from a raw video."""
    height, width = config.image_size
    face_detector = "mtcnn" if resize_mode in FACE_MODES else None
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
            name: getattr(encoder, name) for name in ("image_size", "num_frames", "patch_size", "tubelet_size")})
    return MTCAEConfig.from_preset(model_args.preset)


def run_processor(data_args: DataArguments, model_args: ModelArguments) -> MTCAEVideoProcessor:
    """The processor a run with these arguments uses (and saves next to its model)."""
    return processor_for(input_config(model_args), data_args.framing)


def uses_pca_init(model_args: ModelArguments, model: MTCAEForVideoClassification) -> bool:
    """Whether the tubelet embedding starts from the PCA whitening of training clips (see --patch_embedding_init)."""
    if model_args.patch_embedding_init == "auto":
        from_scratch = not (model_args.encoder or model_args.model_name_or_path)
        return from_scratch and not model.mtcae.encoder_is_frozen
    return model_args.patch_embedding_init == "pca"


def init_patch_embedding(model: MTCAEForVideoClassification, train_split, eval_transform) -> None:
    """PCA-whitened tubelet embedding from training clips spread over the split (deterministic: no jitter)."""
    picked = np.unique(np.linspace(0, len(train_split) - 1, min(PCA_INIT_CLIPS, len(train_split))).round().astype(int))
    rows = train_split.with_format(None).select(picked.tolist())[:]  # raw rows, not the training transform
    pixel_values = eval_transform(rows)["pixel_values"]
    explained = model.init_patch_embedding_from_data(pixel_values)
    logger.info("Patch embedding initialised by PCA whitening of %d training clips (%.1f %% of the tubelet "
                "variance kept).", len(pixel_values), 100 * float(explained))


class ComputeMetrics:
    """Trainer's ``compute_metrics``: UAR, WAR and per-class recall from the offline metric module.

    The full result of the last call (with the confusion matrix) stays in :attr:`last`, so the test
    split is scored once.
    """

    def __init__(self, num_labels: int):
        import evaluate

        from hub_scripts.metrics import dfer_metrics

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


# ------------------------------------------------------------------------------------------------
# Run
# ------------------------------------------------------------------------------------------------
# Config fields a checkpoint must share with the run that resumes it, and the option that sets each.
RESUME_FIELDS = {"decoder_mode": "--decoder_mode", "task_order": "--preset", "decoder_hidden_size": "--preset",
                 "decoder_num_layers": "--preset", "projection_dim": "--preset", "projection_mode": "--preset",
                 "freeze_encoder": "--freeze_encoder", "num_frames": "--preset",
                 "id2label": "--dataset / --num_classes"}
ENCODER_RESUME_FIELDS = ("hidden_size", "num_hidden_layers", "image_size", "patch_size", "tubelet_size")


def check_resume_matches(model: MTCAEForVideoClassification, checkpoint: str | Path) -> None:
    """Refuse to resume a checkpoint made with other model options, naming the option that changed."""
    path = Path(checkpoint) / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"--resume_from_checkpoint {checkpoint} has no config.json: not a checkpoint folder")
    saved, current = json.loads(path.read_text()), model.config.to_dict()
    def differs(name: str) -> bool:
        return json.dumps(saved[name], sort_keys=True) != json.dumps(current.get(name), sort_keys=True)

    changed = [(name, flag) for name, flag in RESUME_FIELDS.items() if name in saved and differs(name)]
    changed += [(f"encoder_config.{name}", "--preset / --encoder") for name in ENCODER_RESUME_FIELDS
                if saved.get("encoder_config", {}).get(name) != current["encoder_config"].get(name)]
    if changed:
        name, flag = changed[0]
        value = saved.get(name) if "." not in name else saved["encoder_config"].get(name.split(".", 1)[1])
        raise ValueError(f"--resume_from_checkpoint {checkpoint} was trained with {name}={value!r}, this run builds "
                         f"another model ({', '.join(n for n, _ in changed)} differ): pass the same {flag} as the "
                         "run that wrote it, or start a new --output_dir")


def warn_if_resume_redraws_augmentation(data_args: DataArguments, training_args: MTCAETrainingArguments) -> bool:
    """Say so when a resumed run cannot end with an uninterrupted run's weights bit for bit.

    Jitter and flips are drawn from the loading process's random state. With 0 loader workers that
    is the training process, whose state the checkpoint restores, so the resumed run is exact (tested);
    loader workers are seeded anew when the resumed epoch starts, so the rest of that epoch gets other
    draws (measured: weights within 2e-3 of the uninterrupted run's after 4 steps of the tiny preset).
    """
    augmented = (data_args.temporal_jitter or data_args.random_flip) and not data_args.cache_encoder_features
    if augmented and training_args.dataloader_num_workers > 0:
        logger.warning("Resuming with %d loader worker(s) and training augmentation: the rest of the resumed epoch "
                       "draws new jitter / flips, so the weights will be close to, not equal to, an uninterrupted "
                       "run's. --dataloader_num_workers 0 resumes exactly.", training_args.dataloader_num_workers)
        return True
    return False


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
    data.splits = with_face_labels(data.splits, data_args, data.root, processor)
    inputs = prepared_inputs if data_args.use_prepared_cache else on_the_fly_inputs
    eval_transform = inputs(data, data_args, processor, training_args)
    if uses_pca_init(model_args, model) and not training_args.resume_from_checkpoint:
        init_patch_embedding(model, data.splits["train"], eval_transform)
    if data_args.cache_encoder_features:
        use_encoder_features(model, data, eval_transform, data_args, training_args)
    return data, model, processor


def multiview_test_metrics(trainer, data: FoldData, views: MultiViewArguments, metrics: ComputeMetrics) -> dict:
    """``test_*`` metrics of the trainer's (best) model with softmax scores averaged over the test-time views.

    Each test clip is scored on ``views``' temporal x spatial views (:func:`hub_scripts.multiview.predict_multiview`,
    its joined face labels following each view); every process scores the whole split (no gathering needed).
    """
    rows = data.splits["test"].with_format(None)  # the rows themselves, not ClipTransform's single-view clips
    face_labels = None
    if "face_boxes" in rows.column_names:
        face_labels = [dict(frame_indices=f, boxes=b, landmarks=lm, mask=m) for f, b, lm, m in zip(
            rows["face_frame_indices"], rows["face_boxes"], rows["face_landmarks"], rows["face_mask"])]
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
    from hub_scripts.plots import plot_confusion_matrix

    fold, output_dir = data.fold, Path(training_args.output_dir)
    summary = {"dataset": data_args.dataset, "fold_scheme": data_args.scheme, "fold": fold.number,
               "world_size": training_args.world_size, "train_subjects": fold.train_subjects,
               "val_subjects": fold.val_subjects, "test_subjects": fold.test_subjects,
               "class_names": data.class_names, "resize_mode": data_args.framing,
               "unreadable_videos": data.unreadable, "invalid_files": data.report.invalid,
               "skipped_files": data.report.skipped, "test_confusion_matrix": test_metrics["test_confusion_matrix"],
               **{key: test_metrics[key] for key in MultiViewArguments().to_results()}}
    (output_dir / "run_summary.json").write_text(json.dumps(summary, indent=2))
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
    :mod:`hub_scripts.cross_validate` tabulates).
    """
    from hub_scripts.trainer import MTCAETrainer

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


def parse_args(argv: list[str] | None = None) -> tuple[DataArguments, ModelArguments, MTCAETrainingArguments,
                                                      MultiViewArguments]:
    return parse_arguments((DataArguments, ModelArguments, MTCAETrainingArguments, MultiViewArguments), argv,
                           prog="mtcae-train", description=__doc__)


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    run(*parse_args(argv))


if __name__ == "__main__":
    main()
