"""The options of the training tools (``HfArgumentParser`` dataclasses; each checks itself on construction).

:class:`DataArguments` (which data set, fold and framing), :class:`ModelArguments` (which model) and
:class:`MTCAETrainingArguments` (transformers' ``TrainingArguments`` with this project's defaults) are read by
``mtcae-train``, ``mtcae-cross-validate``, ``mtcae-ablate``, ``mtcae-prepare`` and (extended) ``mtcae-pretrain``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Literal

import torch
from transformers import TrainingArguments

from hub_scripts.cli import check_choice, check_positive
from hub_scripts.inference.multiview import MultiViewArguments
from modeling_mtcae.configuration_mtcae import DECODER_MODES, PRESETS
from processing.dataset_registry import DATASETS, DatasetEntry, LoadOptions, get_dataset
from processing.datasets import MEAD_LEVELS, MEAD_VIEWS
from processing.face_geometry_mtcae import RESIZE_MODES
from processing.folds import fold_scheme_names, is_split_file, load_split_file, scheme_fold_count

DatasetName = Literal[tuple(DATASETS)]
PresetName = Literal[tuple(PRESETS)]
DecoderMode = Literal[DECODER_MODES]
ResizeMode = Literal[RESIZE_MODES]
PATCH_EMBEDDING_INITS = ("auto", "pca", "random")
PatchEmbeddingInit = Literal[PATCH_EMBEDDING_INITS]


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
    num_classes: Literal[7, 8] = field(default=LoadOptions.num_classes,
                                       metadata={"help": "RAVDESS: 7 (calm merged into neutral) or 8"})
    mead_views: list[str] = field(default_factory=lambda: list(LoadOptions.mead_views),
                                  metadata={"help": f"MEAD views: {MEAD_VIEWS}"})
    mead_levels: list[int] = field(default_factory=lambda: list(LoadOptions.mead_levels),
                                   metadata={"help": "MEAD levels"})
    synthetic_actors: int = field(default=LoadOptions.synthetic_actors,
                                  metadata={"help": "synthetic subjects (RAVDESS has 24)"})
    synthetic_clips_per_class: int = field(default=LoadOptions.synthetic_clips_per_class,
                                           metadata={"help": "synthetic clips per subject and class"})
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
        self.check_input_options()
        check_choice("num_classes", self.num_classes, (7, 8))
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

    def check_input_options(self) -> None:
        """The checks of the framing and of how clips are read, which every source of clips shares."""
        if self.cache_encoder_features and (self.temporal_jitter or self.random_flip):
            raise ValueError("--cache_encoder_features stores one encoder output per clip, which is wrong when the "
                             "training inputs change every epoch: pass --temporal_jitter False and drop --random_flip")
        if self.cache_encoder_features and not self.use_prepared_cache:
            raise ValueError("--cache_encoder_features reads the prepared-clip cache: drop --use_prepared_cache False")
        if self.preprocessing_num_workers < -1:
            raise ValueError(f"--preprocessing_num_workers must be >= -1; got {self.preprocessing_num_workers}")
        if self.resize_mode is not None:
            check_choice("resize_mode", self.resize_mode, RESIZE_MODES)

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

    def load_options(self) -> LoadOptions:
        """The data set loader's options given on the command line."""
        return LoadOptions(num_classes=self.num_classes, mead_views=tuple(self.mead_views),
                           mead_levels=tuple(self.mead_levels), synthetic_actors=self.synthetic_actors,
                           synthetic_clips_per_class=self.synthetic_clips_per_class)


@dataclass
class ModelArguments:
    """Which model to build or load (checked on construction)."""

    preset: PresetName = field(default="tiny", metadata={"help": "an MTCAEConfig preset"})
    config: str | None = field(default=None, metadata={"help": "an MTCAEConfig JSON / folder instead of a preset"})
    model_name_or_path: str | None = field(default=None, metadata={"help": "start from a trained MTCAE-DFER"})
    encoder: str | None = field(default=None, metadata={"help": "VideoMAE checkpoint (Hub id or folder)"})
    freeze_encoder: bool | None = field(default=None, metadata={"help": "override the preset's encoder freezing"})
    decoder_mode: DecoderMode | None = field(default=None, metadata={"help": "override the preset's decoder wiring"})
    patch_embedding_init: PatchEmbeddingInit = field(
        default="auto",
        metadata={"help": "pca (PCA-whitened tubelet embedding from training clips), random, or auto: pca when the "
                          "encoder trains from scratch (no --encoder / --model_name_or_path, not frozen)"})
    loss_weight_expression: float | None = field(default=None, metadata={"help": "override the preset's weight"})
    loss_weight_face_boxes: float | None = field(default=None, metadata={"help": "override the preset's weight"})
    loss_weight_face_landmarks: float | None = field(default=None, metadata={"help": "override the preset's weight"})

    def __post_init__(self):
        check_choice("preset", self.preset, tuple(PRESETS))
        check_choice("patch_embedding_init", self.patch_embedding_init, PATCH_EMBEDDING_INITS)
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


@dataclass
class CrossValidationArguments:
    """Which folds to run (checked on construction; checked against the data set before any training)."""

    folds: list[int] | None = field(default=None, metadata={"help": "protocol fold numbers to run (default: all "
                                                                    "the data set has subjects for)"})

    def __post_init__(self):
        if self.folds is not None:
            if not self.folds or any(k < 1 for k in self.folds) or len(set(self.folds)) != len(self.folds):
                raise ValueError(f"--folds must be distinct numbers >= 1; got {self.folds}")


@dataclass
class AblationArguments:
    """Which decoder modes to compare (checked on construction)."""

    modes: list[str] = field(default_factory=lambda: list(DECODER_MODES),
                             metadata={"help": f"decoder modes to compare, from {', '.join(DECODER_MODES)}"})

    def __post_init__(self):
        for mode in self.modes:
            check_choice("modes", mode, tuple(DECODER_MODES))
        if not self.modes or len(set(self.modes)) != len(self.modes):
            raise ValueError(f"--modes must be distinct decoder modes; got {self.modes}")


RUN_ARGUMENTS = (DataArguments, ModelArguments, MTCAETrainingArguments, MultiViewArguments)
"""What one training run is given (``mtcae-train``); cross-validation and the ablation add their own."""


__all__ = ["PATCH_EMBEDDING_INITS", "RUN_ARGUMENTS", "AblationArguments", "CrossValidationArguments", "DataArguments",
           "MTCAETrainingArguments", "ModelArguments", "default_dataloader_workers"]
