"""The model of a training run: built from a preset, a config, a VideoMAE encoder or a trained MTCAE-DFER; its
processor; the PCA-whitened start of a from-scratch encoder; and the check that a resumed checkpoint fits."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
from transformers import VideoMAEConfig

from hub_scripts.training.arguments import DataArguments, ModelArguments, MTCAETrainingArguments
from modeling_mtcae import MTCAEConfig, MTCAEForVideoClassification
from processing.face_geometry_mtcae import FACE_MODES
from processing.video_processing_mtcae import MTCAEVideoProcessor

logger = logging.getLogger("mtcae.train")

PCA_INIT_CLIPS = 64
INPUT_FIELDS = ("image_size", "num_frames", "patch_size", "tubelet_size")
"""The encoder fields that decide the model input (read from an ``--encoder`` checkpoint)."""


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
        encoder = VideoMAEConfig.from_pretrained(model_args.encoder)
        return MTCAEConfig.from_preset(model_args.preset, encoder_config={
            name: getattr(encoder, name) for name in INPUT_FIELDS})
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


__all__ = ["INPUT_FIELDS", "PCA_INIT_CLIPS", "build_model", "check_resume_matches", "init_patch_embedding",
           "input_config", "processor_for", "run_processor", "uses_pca_init", "warn_if_resume_redraws_augmentation"]
