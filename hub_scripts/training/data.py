"""The data of a training run: the data set's table, one fold's splits, face labels and the clips the model reads.

The clips are read from the prepared-clip cache (:func:`prepared_inputs`: every video decoded and framed once)
or decoded in every epoch (:func:`on_the_fly_inputs`); with a frozen encoder the encoder's tokens can be cached
too (:func:`use_encoder_features`). Videos that cannot be read are left out and reported (``FoldData.unreadable``).
"""

from __future__ import annotations

import logging
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

from hub_scripts.training.arguments import DataArguments, ModelArguments, MTCAETrainingArguments
from hub_scripts.training.model import run_processor
from processing.annotation_cache import AnnotationCache, attach_face_labels, sampler_key
from processing.clip_transform import ClipTransform, find_unreadable_videos
from processing.dataset_files import LoadReport
from processing.face_geometry_mtcae import FACE_MODES
from processing.feature_cache import EncoderFeatureCache, EncoderFeatureTransform
from processing.files import write_json
from processing.folds import Fold, add_validation_split, get_fold, make_folds
from processing.labelling import DEFAULT_CACHE_NAME
from processing.prepared_cache import PreparedClipCache
from processing.prepared_clips import PreparedClipTransform, add_prepared_entries
from processing.sampling_mtcae import DEFAULT_FRAMES_PER_SEGMENT
from processing.video_processing_mtcae import MTCAEVideoProcessor

logger = logging.getLogger("mtcae.train")


@dataclass
class FoldData:
    """One fold of a data set, ready for training: the splits and what was found on the way.

    ``face_labels`` is the face-label cache the splits' ``face_labels`` keys find each clip's labels in (``None``
    without one).
    """

    splits: dict
    fold: Fold | None
    class_names: list[str]
    root: Path
    report: LoadReport
    unreadable: dict[str, str] = field(default_factory=dict)
    face_labels: AnnotationCache | None = None


def load_table(data_args: DataArguments, training_args: MTCAETrainingArguments | None = None):
    """The whole data set as a table of paths, labels and subjects, with the adapter's report and root.

    Under several processes the main one loads first (and renders the synthetic set if it is
    missing); the others then find it complete instead of writing the same files at the same time.
    """
    root = data_args.entry.resolve_root(data_args.data_root)
    loading = training_args.main_process_first(desc="loading the data set") if training_args else nullcontext()
    with loading:
        table, report = data_args.entry.load(root, data_args.load_options(), data_args.scheme)
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
    return FoldData(splits, fold, table.features["label"].names, root, report)


def face_label_cache(data_args: DataArguments, root: Path) -> AnnotationCache | None:
    """The data set's face-label cache (``--annotations``, default ``DATA_ROOT/face_labels.parquet``), if it has one;
    the face modes refuse to run without one."""
    path = Path(data_args.annotations) if data_args.annotations else root / DEFAULT_CACHE_NAME
    if path.exists():
        return AnnotationCache(path, root=root)
    if data_args.framing in FACE_MODES:
        raise FileNotFoundError(f"--resize_mode {data_args.framing} needs face labels, and there is no face-label "
                                f"cache at {path}: run mtcae-annotate on the data set first (or pass "
                                "--annotations).")
    logger.warning("No face-label cache at %s: training the expression task alone on these clips "
                   "(run mtcae-annotate to add the face tasks).", path)
    return None


def with_face_labels(data: FoldData, data_args: DataArguments, processor: MTCAEVideoProcessor) -> FoldData:
    """``data`` with its face-label cache and, in its splits, the key of each clip's labels (the rows of the
    processor's sampler, else the clip's ``"all"`` row)."""
    data.face_labels = face_label_cache(data_args, data.root)
    if data.face_labels is not None:
        key = sampler_key(processor.sampling_mode, processor.num_frames)
        data.splits = {name: attach_face_labels(split, data.face_labels, key) for name, split in data.splits.items()}
    return data


def prepare_splits(data: FoldData, cache: PreparedClipCache, num_workers: int = 0, progress: bool = True):
    """Prepare every clip of the splits (each video once, even when it is in several splits)."""
    videos = {}
    for split in data.splits.values():
        found = data.face_labels.labels_of(split) if data.face_labels is not None else [None] * len(split)
        for video, label in zip(split["video"], found):
            videos.setdefault(video, label)
    return cache.prepare(list(videos), list(videos.values()), num_workers=num_workers, progress=progress)


def prepare_dataset(data_args: DataArguments, model_args: ModelArguments, cache_dir: str | None = None,
                    frames_per_segment: int = DEFAULT_FRAMES_PER_SEGMENT, num_workers: int = -1):
    """Prepare every clip of the data set (``mtcae-prepare``): the entries a training run with these options reads.

    Returns ``(report, cache)``; the report is also written to ``CACHE_DIR/prepare_report.json``.
    """
    processor = run_processor(data_args, model_args)
    cache = PreparedClipCache(cache_dir, processor, frames_per_segment)
    cache.check_writable()  # before reading the data set
    table, load_report, root = load_table(data_args)
    data = with_face_labels(FoldData({"all": table}, None, [], root, load_report), data_args, processor)
    report = prepare_splits(data, cache, num_workers)
    write_json(cache.cache_dir / "prepare_report.json",
               {"prepared": report.prepared, "reused": report.reused, "failed": report.failed}, indent=2)
    return report, cache


def drop_videos(splits: dict, bad: dict[str, str]) -> dict:
    if not bad:
        return splits
    return {name: split.filter(lambda row: row["video"] not in bad) for name, split in splits.items()}


def prepared_inputs(data: FoldData, data_args: DataArguments, processor: MTCAEVideoProcessor, training_args):
    """Decode and frame every clip once (the prepared-clip cache) and read the splits from it.

    Videos that cannot be prepared are left out and recorded in ``data.unreadable``; returns the
    evaluation transform (deterministic frames), also used for the PCA start and the feature cache.
    """
    cache = PreparedClipCache(data_args.prepared_cache_dir, processor)
    with training_args.main_process_first(desc="preparing clips"):
        report = prepare_splits(data, cache, data_args.preprocessing_num_workers,
                                progress=training_args.local_process_index == 0)
    logger.info("prepared-clip cache %s: %s", cache.cache_dir, report.summary().splitlines()[0])
    data.unreadable.update(report.failed)
    data.splits = {name: add_prepared_entries(split, report) for name, split in data.splits.items()}
    return _set_transforms(data, lambda train: PreparedClipTransform(
        cache, train=train and data_args.temporal_jitter, random_flip=train and data_args.random_flip))


def on_the_fly_inputs(data: FoldData, data_args: DataArguments, processor: MTCAEVideoProcessor, training_args):
    """Decode and preprocess the clips in every epoch (probing every video first); returns the eval transform."""
    with training_args.main_process_first(desc="probing videos"):
        data.unreadable.update(find_unreadable_videos(sorted({v for s in data.splits.values() for v in s["video"]})))
    data.splits = drop_videos(data.splits, data.unreadable)
    return _set_transforms(data, lambda train: ClipTransform(
        processor, train=train and data_args.temporal_jitter, random_flip=train and data_args.random_flip,
        face_labels=data.face_labels))


def _set_transforms(data: FoldData, make):
    """The training split reads ``make(True)``, the others (validation, test) ``make(False)``; returns a
    ``make(False)``: the evaluation transform (deterministic frames)."""
    for name, split in data.splits.items():
        split.set_transform(make(name == "train"))
    return make(False)


def set_up_clips(data: FoldData, data_args: DataArguments, processor: MTCAEVideoProcessor, training_args):
    """The splits' face labels and clip transforms (the prepared-clip cache, or ``--use_prepared_cache False``:
    decoding in every epoch); returns the evaluation transform."""
    with_face_labels(data, data_args, processor)
    inputs = prepared_inputs if data_args.use_prepared_cache else on_the_fly_inputs
    return inputs(data, data_args, processor, training_args)


def use_encoder_features(model, data: FoldData, eval_transform: PreparedClipTransform, data_args: DataArguments,
                         training_args) -> None:
    """Run the frozen encoder once per clip (bf16 tokens on disk) and train on the stored tokens."""
    features = EncoderFeatureCache(data_args.prepared_cache_dir, model)
    with training_args.main_process_first(desc="encoding clips"):
        encoded = sum(features.fill(split, eval_transform, training_args.per_device_eval_batch_size,
                                    progress=training_args.local_process_index == 0) for split in data.splits.values())
    logger.info("encoder feature cache %s: %d clip(s) encoded now", features.folder, encoded)
    for split in data.splits.values():
        split.set_transform(EncoderFeatureTransform(features, eval_transform))


__all__ = ["FoldData", "available_folds", "face_label_cache", "load_fold", "load_table", "on_the_fly_inputs",
           "prepare_dataset", "prepare_splits", "prepared_inputs", "set_up_clips", "split_fold", "use_encoder_features",
           "with_face_labels"]
