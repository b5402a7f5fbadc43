"""Masked-video pretraining (VideoMAE) of MTCAE-DFER's shared encoder on unlabelled clips (``mtcae-pretrain``'s
library).

transformers' ``VideoMAEForPreTraining`` with Trainer: tube masking (:class:`TubeMasking`), a small transformer
decoder and the normalised-pixel target (:func:`pixel_targets`). Clips are framed exactly as
``hub_scripts.train --encoder OUTPUT_DIR --preset PRESET`` frames them and read from the same prepared-clip cache
(:mod:`hub_scripts.training.data`), never from a validation or test subject.
"""

from __future__ import annotations

import logging
import math
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from transformers import TrainerCallback, TrainingArguments, VideoMAEConfig, VideoMAEForPreTraining, set_seed

from hub_scripts.cli import check_choice, check_positive
from hub_scripts.plots import save_figure
from hub_scripts.training.arguments import (
    PATCH_EMBEDDING_INITS,
    DataArguments,
    PatchEmbeddingInit,
    default_dataloader_workers,
)
from hub_scripts.training.data import FoldData, load_fold, set_up_clips
from hub_scripts.training.model import INPUT_FIELDS, init_patch_embedding, processor_for
from hub_scripts.training.trainer import MTCAETrainer
from modeling_mtcae import MTCAEConfig
from modeling_mtcae.configuration_mtcae import PRESETS
from modeling_mtcae.modeling_mtcae import MTCAEModel, _rename_videomae_qv_biases
from processing.clip_transform import ClipTransform
from processing.dataset_files import LoadReport, find_frame_folders, find_video_files
from processing.dataset_registry import DATASETS
from processing.files import check_writable_folder, write_json
from processing.prepared_clips import PreparedClipTransform
from processing.video_processing_mtcae import MTCAEVideoProcessor

logger = logging.getLogger("mtcae.pretrain")

VIDEOS = "videos"  # --dataset videos: every video file and frame folder under --data_root
PRETRAIN_DATASETS = (*DATASETS, VIDEOS)
PretrainDatasetName = Literal[PRETRAIN_DATASETS]
PresetName = Literal[tuple(PRESETS)]
# Decoder sizes: VideoMAE's (and the peers') 4 x 384 for the real encoders; a small one for the tiny encoder.
DECODER_SIZES = {
    "default": {"decoder_hidden_size": 384, "decoder_num_hidden_layers": 4, "decoder_num_attention_heads": 6,
                "decoder_intermediate_size": 1536},
    "tiny": {"decoder_hidden_size": 64, "decoder_num_hidden_layers": 2, "decoder_num_attention_heads": 4,
             "decoder_intermediate_size": 128},
}
# What VideoMAEForPreTraining un-normalises pixel_values with before building its targets.
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@dataclass
class PretrainDataArguments(DataArguments):
    """Which clips: a data set's training subjects (the data options of ``hub_scripts.train``) or a folder."""

    dataset: PretrainDatasetName = field(default="synthetic", metadata={
        "help": "a data set of processing/dataset_registry.py (its training subjects of --fold), or 'videos': every "
                "video file and frame folder under --data_root"})
    mask_ratio: float = field(default=0.9, metadata={"help": "fraction of each frame's patches masked (tube masking)"})
    num_picture_clips: int = field(default=4, metadata={"help": "clips drawn in reconstructions.png (0: none)"})

    def __post_init__(self):
        check_choice("dataset", self.dataset, PRETRAIN_DATASETS)
        if self.cache_encoder_features:
            raise ValueError("--cache_encoder_features is for fine-tuning a frozen encoder: pretraining trains it")
        if self.dataset != VIDEOS:
            super().__post_init__()  # the fold, framing and cache checks of hub_scripts.train
        elif not self.data_root:
            raise ValueError("--dataset videos needs --data_root (a folder of videos or frame folders)")
        else:
            self.check_input_options()
        if not 0.0 < self.mask_ratio < 1.0:
            raise ValueError(f"--mask_ratio must be in (0, 1); got {self.mask_ratio}")
        if self.num_picture_clips < 0:
            raise ValueError(f"--num_picture_clips must be >= 0; got {self.num_picture_clips}")

    @property
    def framing(self) -> str:
        """``--resize_mode``, else the data set's default (``full_frame`` for a folder of videos)."""
        if self.dataset == VIDEOS:
            return self.resize_mode or "full_frame"
        return super().framing


@dataclass
class PretrainModelArguments:
    """Which encoder to pretrain (checked on construction)."""

    preset: PresetName = field(default="tiny", metadata={"help": "the encoder sizes of this MTCAE preset"})
    model_name_or_path: str | None = field(default=None, metadata={
        "help": "continue from a VideoMAE checkpoint (a VideoMAEForPreTraining; an encoder alone gets a new decoder)"})
    image_size: int | None = field(default=None, metadata={"help": "override the preset's input size (e.g. 160)"})
    num_frames: int | None = field(default=None, metadata={"help": "override the preset's 16 frames"})
    decoder_hidden_size: int | None = field(default=None, metadata={"help": "default: 64 (tiny), 384"})
    decoder_num_hidden_layers: int | None = field(default=None, metadata={"help": "default: 2 (tiny), 4"})
    decoder_num_attention_heads: int | None = field(default=None, metadata={"help": "default: 4 (tiny), 6"})
    decoder_intermediate_size: int | None = field(default=None, metadata={"help": "default: 128 (tiny), 1536"})
    norm_pix_loss: bool = field(default=True, metadata={"help": "normalised-pixel target (VideoMAE's default)"})
    patch_embedding_init: PatchEmbeddingInit = field(default="auto", metadata={
        "help": "pca (PCA-whitened tubelet embedding from training clips, as hub_scripts.train), random, or auto: "
                "pca unless --model_name_or_path"})

    def __post_init__(self):
        check_choice("preset", self.preset, tuple(PRESETS))
        check_choice("patch_embedding_init", self.patch_embedding_init, PATCH_EMBEDDING_INITS)
        check_positive(image_size=self.image_size, num_frames=self.num_frames,
                       **{name: getattr(self, name) for name in DECODER_SIZES["default"]})

    def decoder_sizes(self) -> dict:
        sizes = dict(DECODER_SIZES.get(self.preset, DECODER_SIZES["default"]))
        sizes.update({k: getattr(self, k) for k in sizes if getattr(self, k) is not None})
        return sizes

    @property
    def uses_pca_init(self) -> bool:
        return self.patch_embedding_init == "pca" or (
            self.patch_embedding_init == "auto" and not self.model_name_or_path)


@dataclass
class PretrainingArguments(TrainingArguments):
    """TrainingArguments with masked-pretraining defaults (AdamW betas (0.9, 0.95), wd 0.05, cosine schedule)."""

    output_dir: str | None = field(default="outputs/videomae-pretrain-tiny")
    num_train_epochs: float = field(default=20.0)
    learning_rate: float = field(default=1e-3)
    weight_decay: float = field(default=0.05)
    adam_beta2: float = field(default=0.95)
    lr_scheduler_type: str = field(default="cosine")
    warmup_steps: float = field(default=0.05)
    per_device_train_batch_size: int = field(default=16)
    save_strategy: str = field(default="epoch")
    save_total_limit: int | None = field(default=2)
    logging_steps: float = field(default=10)
    remove_unused_columns: bool = field(default=False)
    report_to: None | str | list[str] = field(default="none")
    dataloader_num_workers: int = field(
        default=-1, metadata={"help": "-1 (auto): as hub_scripts.train (0 without a GPU); the workers start anew in "
                                      "each epoch, whose number draws the masks"})
    seed: int = field(default=42)

    def __post_init__(self):
        if self.dataloader_num_workers < 0:
            self.dataloader_num_workers = default_dataloader_workers()
        if self.bf16 and not self.use_cpu and not torch.cuda.is_available():
            self.use_cpu = True  # Trainer refuses bf16 without an accelerator unless told to run on the CPU
        super().__post_init__()
        if self.eval_strategy != "no":
            raise ValueError("pretrain.py has no evaluation split (never the test subjects): leave --eval_strategy "
                             "at 'no'; the logged training loss is the reconstruction loss")
        if self.remove_unused_columns:
            raise ValueError("--remove_unused_columns must stay False: the clips are read from their paths")
        if self.dataloader_persistent_workers:
            raise ValueError("--dataloader_persistent_workers would keep the first epoch's masks and jitter in the "
                             "workers (each epoch draws its own): leave it off")
        if self.push_to_hub:
            raise ValueError("--push_to_hub uploads MTCAE-DFER repos: upload the pretrained encoder folder with "
                             "`hf upload` instead")


# ------------------------------------------------------------------------------------------------
# Masking and targets
# ------------------------------------------------------------------------------------------------
@dataclass
class TubeMasking:
    """VideoMAE's tube masking: the same random ``mask_ratio`` of a frame's patches masked at every time step.

    ``__call__(batch_size)`` gives ``bool_masked_pos`` (B, time_steps x patches_per_frame) in the token order of
    ``VideoMAEPatchEmbeddings`` (time, then rows, then columns), with the same number of masked tokens per clip.
    """

    time_steps: int
    patches_per_frame: int
    mask_ratio: float = 0.9

    def __post_init__(self):
        self.num_masked = int(self.mask_ratio * self.patches_per_frame)  # as VideoMAE's TubeMaskingGenerator
        if not 0 < self.num_masked < self.patches_per_frame:
            raise ValueError(f"mask_ratio {self.mask_ratio} masks {self.num_masked} of {self.patches_per_frame} "
                             "patches per frame: at least one must be masked and one visible")

    @classmethod
    def for_config(cls, config: VideoMAEConfig, mask_ratio: float) -> TubeMasking:
        side = config.image_size // config.patch_size
        return cls(config.num_frames // config.tubelet_size, side * side, mask_ratio)

    def __call__(self, batch_size: int, generator: torch.Generator | None = None) -> torch.Tensor:
        order = torch.rand(batch_size, self.patches_per_frame, generator=generator).argsort(dim=1)
        frame = torch.zeros(batch_size, self.patches_per_frame, dtype=torch.bool)
        frame.scatter_(1, order[:, : self.num_masked], True)
        return frame.repeat(1, self.time_steps)


class MaskedClipTransform:
    """``set_transform`` for unlabelled clips: a clip transform's ``pixel_values``, then a tube mask per clip.

    The jitter, flip and mask of a batch are drawn from a generator seeded by (``seed``, ``epoch``, the batch's
    clips), not from the global RNG at fetch time: Trainer's data loader fetches one batch ahead, so fetch-time
    draws would make a run resumed mid-epoch differ from an uninterrupted one. :class:`EpochSeed` sets ``epoch``.

    Args:
        clips: the training clip transform (:class:`PreparedClipTransform` reading the prepared-clip cache, or the
            on-the-fly :class:`ClipTransform`); it draws its jitter and flips from torch's global RNG.
        masking: the tube masking.
        seed: the run's seed.
    """

    def __init__(self, clips: PreparedClipTransform | ClipTransform, masking: TubeMasking, seed: int = 0):
        self.clips = clips
        self.masking = masking
        self.seed = seed
        self.epoch = 0

    def batch_seed(self, rel_paths: list[str]) -> int:
        key = zlib.crc32("\n".join(rel_paths).encode())
        return int(np.random.SeedSequence([self.seed, self.epoch, key]).generate_state(1)[0])

    def __call__(self, batch: dict) -> dict[str, torch.Tensor]:
        with torch.random.fork_rng(devices=[]):  # the clip transform draws from torch's RNG: give it this batch's seed
            torch.manual_seed(self.batch_seed(batch["rel_path"]))
            pixel_values = self.clips(batch)["pixel_values"]
            mask = self.masking(len(pixel_values))
        return {"pixel_values": pixel_values, "bool_masked_pos": mask}


def training_clips(eval_transform: PreparedClipTransform | ClipTransform,
                   data_args: PretrainDataArguments) -> PreparedClipTransform | ClipTransform:
    """The training counterpart of the run's evaluation transform (same source: cache or decoding)."""
    if isinstance(eval_transform, PreparedClipTransform):
        return PreparedClipTransform(eval_transform.cache, train=data_args.temporal_jitter,
                                     random_flip=data_args.random_flip, face_targets=False)
    return ClipTransform(eval_transform.processor, train=data_args.temporal_jitter, random_flip=data_args.random_flip)


class EpochSeed(TrainerCallback):
    """Gives :class:`MaskedClipTransform` the epoch, so that every epoch draws new masks and jitter."""

    def __init__(self, transform: MaskedClipTransform):
        self.transform = transform

    def on_epoch_begin(self, args, state, control, **kwargs):
        self.transform.epoch = math.floor((state.epoch or 0.0) + 1e-6)  # a resumed run re-enters its epoch


def patchify(frames: torch.Tensor, tubelet: int, patch: int) -> torch.Tensor:
    """(B, T, C, H, W) -> (B, tokens, tubelet x patch x patch, C), VideoMAEForPreTraining's target layout."""
    b, t, c, h, w = frames.shape
    frames = frames.view(b, t // tubelet, tubelet, c, h // patch, patch, w // patch, patch)
    return frames.permute(0, 1, 4, 6, 2, 5, 7, 3).reshape(b, -1, tubelet * patch * patch, c)


def unpatchify(patches: torch.Tensor, shape: torch.Size, tubelet: int, patch: int) -> torch.Tensor:
    """The inverse of :func:`patchify`."""
    b, t, c, h, w = shape
    grid = patches.view(b, t // tubelet, h // patch, w // patch, tubelet, patch, patch, c)
    return grid.permute(0, 1, 4, 7, 2, 5, 3, 6).reshape(shape)


def pixel_targets(pixel_values: torch.Tensor, config: VideoMAEConfig,
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(targets (B, tokens, values), per-patch mean, per-patch std) exactly as VideoMAEForPreTraining builds them.

    The model un-normalises ``pixel_values`` with ImageNet's mean/std; with ``norm_pix_loss`` each patch and channel
    is then standardised by its own mean and (unbiased) std + 1e-6, which cancels any per-channel affine
    normalisation, so the processor's own mean/std make no difference to the target.
    """
    mean = torch.tensor(IMAGENET_MEAN).view(1, 1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 1, 3, 1, 1)
    patches = patchify(pixel_values * std + mean, config.tubelet_size, config.patch_size)
    if not config.norm_pix_loss:
        return patches.flatten(2), torch.zeros_like(patches[:, :, :1]), torch.ones_like(patches[:, :, :1])
    patch_mean = patches.mean(dim=-2, keepdim=True)
    patch_std = patches.var(dim=-2, unbiased=True, keepdim=True).sqrt() + 1e-6
    return ((patches - patch_mean) / patch_std).flatten(2), patch_mean, patch_std


def reconstruct(pixel_values: torch.Tensor, logits: torch.Tensor, mask: torch.Tensor, config: VideoMAEConfig,
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """(masked input, reconstruction) as ``pixel_values``: masked patches zeroed / replaced by the prediction.

    The predicted patches are un-normalised with the per-patch mean and std of the original (what the
    normalised-pixel target removed), visible patches are the original's.
    """
    _, patch_mean, patch_std = pixel_targets(pixel_values, config)
    tubelet, patch = config.tubelet_size, config.patch_size
    mean = torch.tensor(IMAGENET_MEAN).view(1, 1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 1, 3, 1, 1)
    patches = patchify(pixel_values * std + mean, tubelet, patch)
    predicted = logits.reshape(len(logits), -1, *patches.shape[2:]) * patch_std[mask].view(len(logits), -1, 1, 3)
    filled = patches.clone()
    filled[mask] = (predicted + patch_mean[mask].view(len(logits), -1, 1, 3)).flatten(0, 1)
    hidden = patches.clone()
    hidden[mask] = 0.0
    back = [(unpatchify(p, pixel_values.shape, tubelet, patch) - mean) / std for p in (hidden, filled)]
    return back[0], back[1]


# ------------------------------------------------------------------------------------------------
# Data and model
# ------------------------------------------------------------------------------------------------
def folder_clips(root: Path) -> FoldData:
    """Every video file and frame folder under ``root``, as the training split of a fold without subjects."""
    from datasets import Dataset  # deferred: datasets (the train extra)

    report = LoadReport(dataset=VIDEOS, root=str(root))
    rel_paths = sorted(find_video_files(root, report) + find_frame_folders(root))
    if not rel_paths:
        raise FileNotFoundError(f"--data_root {root} holds no video file and no folder of frame images")
    report.num_loaded = len(rel_paths)
    clips = Dataset.from_dict({"video": [str(root / rel) for rel in rel_paths], "rel_path": rel_paths})
    return FoldData({"train": clips}, None, [], root, report)


def load_clips(data_args: PretrainDataArguments, training_args: PretrainingArguments) -> tuple[FoldData, dict]:
    """``(data, summary)``: a folder's clips, or the training subjects of a data set's ``--fold`` (split "train")."""
    if data_args.dataset == VIDEOS:
        data = folder_clips(Path(data_args.data_root))
        if data_args.max_train_samples:
            data.splits["train"] = data.splits["train"].shuffle(seed=training_args.seed).select(
                range(min(data_args.max_train_samples, len(data.splits["train"]))))
        return data, {"dataset": VIDEOS, "invalid_files": data.report.invalid, "warnings": data.report.warnings}
    data = load_fold(data_args, training_args)
    data.splits = {"train": data.splits["train"]}  # never the validation or test subjects
    fold = data.fold
    return data, {"dataset": data_args.dataset, "fold": fold.number, "pretrain_subjects": fold.train_subjects,
                  "excluded_val_subjects": fold.val_subjects, "excluded_test_subjects": fold.test_subjects,
                  "invalid_files": data.report.invalid}


def encoder_config(model_args: PretrainModelArguments) -> VideoMAEConfig:
    """The preset's encoder (MTCAEConfig.from_preset(preset).encoder_config) plus the MAE decoder sizes."""
    fields = MTCAEConfig.from_preset(model_args.preset).encoder_config.to_dict()
    fields.update({k: getattr(model_args, k) for k in ("image_size", "num_frames") if getattr(model_args, k)})
    fields.update(model_args.decoder_sizes(), norm_pix_loss=model_args.norm_pix_loss)
    return VideoMAEConfig.from_dict(fields)


def build_model(model_args: PretrainModelArguments) -> VideoMAEForPreTraining:
    if model_args.model_name_or_path:
        model = VideoMAEForPreTraining.from_pretrained(model_args.model_name_or_path,
                                                       norm_pix_loss=model_args.norm_pix_loss)
    else:
        model = VideoMAEForPreTraining(encoder_config(model_args))
    model.accepts_loss_kwargs = False  # forward has **kwargs: let Trainer scale gradient accumulation itself
    # save_pretrained writes the query/value biases as q_bias / v_bias; Trainer's resume loads checkpoints with a
    # plain load_state_dict, which needs them renamed back (as MTCAE-DFER's own model does).
    model.register_load_state_dict_pre_hook(_rename_videomae_qv_biases)
    return model


def fine_tuning_processor(config: VideoMAEConfig, preset: str, framing: str) -> MTCAEVideoProcessor:
    """The processor of ``hub_scripts.train --encoder OUTPUT_DIR --preset PRESET`` (the runs share prepared clips)."""
    encoder = {name: getattr(config, name) for name in INPUT_FIELDS}
    return processor_for(MTCAEConfig.from_preset(preset, encoder_config=encoder), framing)


class EncoderPCAStart:
    """What :func:`hub_scripts.training.model.init_patch_embedding` needs of a model, for a ``VideoMAEForPreTraining``.

    The PCA-whitened tubelet embedding of ``MTCAEModel.init_patch_embedding_from_data``, applied to this
    model's encoder.
    """

    def __init__(self, model: VideoMAEForPreTraining):
        self.encoder = model.videomae

    def check_pixel_values(self, pixel_values: torch.Tensor) -> None:
        """The clips come from the run's own processor (sized for this encoder)."""

    def init_patch_embedding_from_data(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return MTCAEModel.init_patch_embedding_from_data(self, pixel_values)


# ------------------------------------------------------------------------------------------------
# Picture
# ------------------------------------------------------------------------------------------------
@torch.no_grad()
def reconstruction_rows(model: VideoMAEForPreTraining, pixel_values: torch.Tensor, masking: TubeMasking,
                        processor: MTCAEVideoProcessor) -> list[tuple[str, torch.Tensor]]:
    """``[(name, clips in [0, 1])]`` for the original, masked and reconstructed clips (a fixed mask)."""
    mask = masking(len(pixel_values), generator=torch.Generator().manual_seed(0))
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    logits = model(pixel_values.to(device), bool_masked_pos=mask.to(device)).logits.float().cpu()
    model.train(was_training)
    masked, rebuilt = reconstruct(pixel_values, logits, mask, model.config)
    mean = torch.tensor(processor.image_mean).view(1, 1, 3, 1, 1)
    std = torch.tensor(processor.image_std).view(1, 1, 3, 1, 1)
    return [(name, (video * std + mean).clamp(0, 1)) for name, video in
            (("original", pixel_values), ("masked", masked), ("reconstructed", rebuilt))]


def save_reconstructions(model: VideoMAEForPreTraining, clips, eval_transform, masking: TubeMasking, path: Path,
                         num_clips: int = 4, num_frames_shown: int = 4) -> Path:
    """Original / masked / reconstructed frames of ``num_clips`` clips (evaluation frames, a fixed mask) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    picked = np.unique(np.linspace(0, len(clips) - 1, min(num_clips, len(clips))).round().astype(int)).tolist()
    pixel_values = eval_transform(clips.with_format(None).select(picked)[:])["pixel_values"]
    rows = reconstruction_rows(model, pixel_values, masking, eval_transform.processor)
    frames = np.linspace(0, pixel_values.shape[1] - 1, num_frames_shown).round().astype(int)
    fig, axes = plt.subplots(3 * len(picked), len(frames), figsize=(1.6 * len(frames), 1.6 * 3 * len(picked)),
                             squeeze=False)
    for clip in range(len(picked)):
        for r, (name, video) in enumerate(rows):
            for c, frame in enumerate(frames):
                ax = axes[3 * clip + r, c]
                ax.imshow(video[clip, frame].permute(1, 2, 0).numpy())
                ax.set_xticks([]), ax.set_yticks([])
                if c == 0:
                    ax.set_ylabel(f"clip {clip + 1}\n{name}", fontsize=7)
    fig.suptitle(f"tube mask {masking.num_masked}/{masking.patches_per_frame} patches per frame; frames "
                 f"{frames.tolist()}\nmasked patches: predicted normalised pixels x the original patch's std + its "
                 "mean", fontsize=7)
    return save_figure(fig, path)


# ------------------------------------------------------------------------------------------------
# Main
# ------------------------------------------------------------------------------------------------
def prepare_pretraining(data_args: PretrainDataArguments, model_args: PretrainModelArguments,
                        training_args: PretrainingArguments):
    """``(data, summary, model, processor, eval_transform)``: the clips set up as ``hub_scripts.train`` sets them."""
    data, summary = load_clips(data_args, training_args)
    model = build_model(model_args)
    processor = fine_tuning_processor(model.config, model_args.preset, data_args.framing)
    eval_transform = set_up_clips(data, data_args, processor, training_args)  # unreadable clips: data.unreadable
    if model_args.uses_pca_init and not training_args.resume_from_checkpoint:
        init_patch_embedding(EncoderPCAStart(model), data.splits["train"], eval_transform)
    summary.update(clip_source=(f"prepared-clip cache {eval_transform.cache.cache_dir}"
                                if data_args.use_prepared_cache else "decoded on the fly"),
                   resize_mode=data_args.framing)
    return data, summary, model, processor, eval_transform


def run(data_args: PretrainDataArguments, model_args: PretrainModelArguments, training_args: PretrainingArguments,
        callbacks: list | None = None) -> dict:
    """Pretrain and save; returns Trainer's train metrics plus what was pretrained on."""
    set_seed(training_args.seed)
    check_writable_folder(training_args.output_dir, "--output_dir")
    data, summary, model, processor, eval_transform = prepare_pretraining(data_args, model_args, training_args)
    clips = data.splits["train"]
    masking = TubeMasking.for_config(model.config, data_args.mask_ratio)
    transform = MaskedClipTransform(training_clips(eval_transform, data_args), masking, seed=training_args.seed)
    clips.set_transform(transform)
    # MTCAETrainer: a NaN / infinite loss stops the run instead of saving a broken encoder.
    trainer = MTCAETrainer(model=model, args=training_args, train_dataset=clips, processing_class=processor,
                           callbacks=[*(callbacks or []), EpochSeed(transform)])
    result = trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    trainer.save_model()
    metrics = {**result.metrics, "num_clips": len(clips), "global_step": trainer.state.global_step}
    trainer.log_metrics("train", metrics)
    trainer.save_metrics("train", metrics)
    summary.update(num_clips=len(clips), unreadable_videos=data.unreadable, mask_ratio=data_args.mask_ratio,
                   encoder_config=model.config.to_diff_dict())
    if trainer.is_world_process_zero():
        write_outputs(model, clips, eval_transform, masking, summary, data_args, model_args, training_args)
    return {**metrics, **summary}


def write_outputs(model, clips, eval_transform, masking: TubeMasking, summary: dict, data_args: PretrainDataArguments,
                  model_args: PretrainModelArguments, training_args: PretrainingArguments) -> None:
    """``reconstructions.png`` and ``pretrain_summary.json``, and a printed summary."""
    output_dir = Path(training_args.output_dir)
    if data_args.num_picture_clips:
        picture = save_reconstructions(model, clips, eval_transform, masking, output_dir / "reconstructions.png",
                                       data_args.num_picture_clips)
        logger.info("Reconstructions of %d clips written to %s", data_args.num_picture_clips, picture)
    write_json(output_dir / "pretrain_summary.json", summary, indent=2, default=str)
    if summary["unreadable_videos"]:
        print(f"\n{len(summary['unreadable_videos'])} video(s) could not be read and were left out:")
        for path, reason in summary["unreadable_videos"].items():
            print(f"  {path}: {reason}")
    print(f"\nPretrained encoder ({summary['num_clips']} clips, {summary['clip_source']}) saved to {output_dir}: "
          f"fine-tune it with `mtcae-train --encoder {output_dir} --preset {model_args.preset}`")


__all__ = ["EpochSeed", "MaskedClipTransform", "PretrainDataArguments", "PretrainModelArguments",
           "PretrainingArguments", "TubeMasking", "pixel_targets", "reconstruct", "run"]
