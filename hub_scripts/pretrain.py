"""Masked-video pretraining (VideoMAE) of MTCAE-DFER's shared encoder on unlabelled clips, with Trainer.

transformers' ``VideoMAEForPreTraining``: tube masking (one random spatial mask of ``--mask_ratio`` of the
patches, 0.9 by default, repeated at every time step, as VideoMAE), a small transformer decoder, and the
normalised-pixel target (``norm_pix_loss``: each masked tubelet's pixels standardised by their own mean and
std). Clips are decoded by MTCAE-DFER's own video processor with temporal jitter and the same framing
(``--resize_mode``, face labels from the data set's face-label cache) as fine-tuning, so the encoder sees
what ``hub_scripts.train`` will feed it.

Data (never a test subject):
- ``--dataset synthetic|ravdess|crema_d|mead|folder``: the TRAINING subjects of ``--fold`` under the same
  fold logic as ``hub_scripts.train`` (its validation and test subjects are left out);
- ``--dataset videos --data_root DIR``: every video under DIR (no labels, no subjects: keep test videos out).

Encoder sizes: ``--preset`` (tiny, base, paper, paper_figure: the MTCAE preset's encoder, so the preset's
fine-tuning loads it). The output folder (``save_pretrained`` of the ``VideoMAEForPreTraining``, with its
``VideoMAEConfig`` and the processor) loads with no missing encoder weight in
``python -m hub_scripts.train --encoder DIR`` and ``MTCAEForVideoClassification.from_videomae(DIR)``
(the decoder's weights are reported there as not used by the encoder). It also holds
``reconstructions.png`` (original / masked / reconstructed frames of a few clips), ``all_results.json``
and ``pretrain_summary.json``. The training loss Trainer logs is the reconstruction loss.

    python -m hub_scripts.pretrain --output_dir runs/pretrain-tiny            # synthetic set, tiny encoder
    accelerate launch -m hub_scripts.pretrain --dataset videos --data_root VoxCeleb2/ --preset base ...
    torchrun --nproc_per_node 2 -m hub_scripts.pretrain ...
    python -m hub_scripts.train --encoder runs/pretrain-tiny

The peers pretrained for 100 epochs on VoxCeleb2 (1.09 M clips) with AdamW betas (0.9, 0.95), weight decay
0.05 and lr 1.5e-4 x batch / 256 at 160 px; the defaults here (lr 1e-3) are for the tiny encoder on a CPU.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from transformers import (
    HfArgumentParser,
    Trainer,
    TrainerCallback,
    TrainingArguments,
    VideoMAEConfig,
    VideoMAEForPreTraining,
    set_seed,
)

from hub_scripts.train import (
    DATASETS,
    DEFAULT_RESIZE_MODES,
    DataArguments,
    init_patch_embedding,
    load_table,
    split_fold,
)
from modeling_mtcae import MTCAEConfig
from modeling_mtcae.configuration_mtcae import PRESETS
from modeling_mtcae.modeling_mtcae import _rename_videomae_qv_biases
from processing.annotation_cache import AnnotationCache, sampler_key
from processing.clip_transform import ClipTransform, find_unreadable_videos
from processing.datasets import attach_face_labels
from processing.video_processing_mtcae import MTCAEVideoProcessor

logger = logging.getLogger("mtcae.pretrain")

PRETRAIN_DATASETS = (*DATASETS, "videos")
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
    """Which clips: a data set's training subjects (the fold options of ``hub_scripts.train``) or a folder."""

    dataset: str = field(default="synthetic", metadata={
        "help": f"one of {PRETRAIN_DATASETS}: a data set's training subjects of --fold, or 'videos' (every video "
                "under --data_root)"})
    mask_ratio: float = field(default=0.9, metadata={"help": "fraction of each frame's patches masked (tube masking)"})
    num_picture_clips: int = field(default=4, metadata={"help": "clips drawn in reconstructions.png (0: none)"})

    def __post_init__(self):
        if self.dataset not in PRETRAIN_DATASETS:
            raise ValueError(f"--dataset {self.dataset!r} is not one of {PRETRAIN_DATASETS}")
        if self.dataset == "videos" and not self.data_root:
            raise ValueError("--dataset videos needs --data_root (a folder of videos)")
        if not 0.0 < self.mask_ratio < 1.0:
            raise ValueError(f"--mask_ratio must be in (0, 1), got {self.mask_ratio}")
        if self.num_picture_clips < 0:
            raise ValueError("--num_picture_clips must be >= 0")


@dataclass
class PretrainModelArguments:
    preset: str = field(default="tiny", metadata={"help": f"encoder sizes of this MTCAE preset: {sorted(PRESETS)}"})
    model_name_or_path: str | None = field(default=None, metadata={
        "help": "continue from a VideoMAE checkpoint (a VideoMAEForPreTraining; an encoder alone gets a new decoder)"})
    image_size: int | None = field(default=None, metadata={"help": "override the preset's input size (e.g. 160)"})
    num_frames: int | None = field(default=None, metadata={"help": "override the preset's 16 frames"})
    decoder_hidden_size: int | None = field(default=None, metadata={"help": "default: 64 (tiny), 384"})
    decoder_num_hidden_layers: int | None = field(default=None, metadata={"help": "default: 2 (tiny), 4"})
    decoder_num_attention_heads: int | None = field(default=None, metadata={"help": "default: 4 (tiny), 6"})
    decoder_intermediate_size: int | None = field(default=None, metadata={"help": "default: 128 (tiny), 1536"})
    norm_pix_loss: bool = field(default=True, metadata={"help": "normalised-pixel target (VideoMAE's default)"})
    patch_embedding_init: str = field(default="auto", metadata={
        "help": "pca (PCA-whitened tubelet embedding from training clips, as hub_scripts.train), random, or auto: "
                "pca unless --model_name_or_path"})

    def __post_init__(self):
        if self.preset not in PRESETS:
            raise ValueError(f"--preset {self.preset!r} is not one of {sorted(PRESETS)}")
        if self.patch_embedding_init not in ("auto", "pca", "random"):
            raise ValueError(f"--patch_embedding_init must be auto, pca or random, got {self.patch_embedding_init!r}")

    def decoder_sizes(self) -> dict:
        sizes = dict(DECODER_SIZES.get(self.preset, DECODER_SIZES["default"]))
        sizes.update({k: getattr(self, k) for k in sizes if getattr(self, k) is not None})
        return sizes


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
    dataloader_num_workers: int = field(default=0)
    seed: int = field(default=42)

    def __post_init__(self):
        if self.bf16 and not self.use_cpu and not torch.cuda.is_available():
            self.use_cpu = True  # Trainer refuses bf16 without an accelerator unless told to run on the CPU
        super().__post_init__()
        if self.eval_strategy != "no":
            raise ValueError("pretrain.py has no evaluation split (never the test subjects): leave --eval_strategy "
                             "at 'no'; the logged training loss is the reconstruction loss")
        if self.remove_unused_columns:
            raise ValueError("--remove_unused_columns must stay False: clips are decoded on the fly from their paths")


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
            raise ValueError(f"mask_ratio {self.mask_ratio} masks {self.num_masked} of {self.patches_per_frame} patches "
                             "per frame: at least one must be masked and one visible")

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
    """``set_transform`` for unlabelled clips: ClipTransform's decoding, then a tube mask per clip.

    The jitter, flip and mask of a batch are drawn from a generator seeded by (``seed``, ``epoch``, the batch's
    clips), not from the global RNG at fetch time: Trainer's data loader fetches one batch ahead, so fetch-time
    draws would make a run resumed mid-epoch differ from an uninterrupted one. :class:`EpochSeed` sets ``epoch``.

    Args:
        processor: the video processor (frames, size, framing, normalisation).
        masking: the tube masking.
        train: temporal jitter (and ``random_flip``) as in fine-tuning.
        random_flip: mirror half of the clips left-right.
        seed: the run's seed.
    """

    def __init__(self, processor: MTCAEVideoProcessor, masking: TubeMasking, train: bool = True,
                 random_flip: bool = False, seed: int = 0):
        self.clips = ClipTransform(processor, train=train, random_flip=random_flip)
        self.masking = masking
        self.seed = seed
        self.epoch = 0

    def batch_seed(self, rel_paths: list[str]) -> int:
        key = zlib.crc32("\n".join(rel_paths).encode())
        return int(np.random.SeedSequence([self.seed, self.epoch, key]).generate_state(1)[0])

    def __call__(self, batch: dict) -> dict[str, torch.Tensor]:
        with torch.random.fork_rng(devices=[]):  # ClipTransform draws from torch's RNG: give it this batch's seed
            torch.manual_seed(self.batch_seed(batch["rel_path"]))
            pixel_values = self.clips(batch)["pixel_values"]
            mask = self.masking(len(pixel_values))
        return {"pixel_values": pixel_values, "bool_masked_pos": mask}


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


def pixel_targets(pixel_values: torch.Tensor, config: VideoMAEConfig) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
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
def load_clips(data_args: PretrainDataArguments, seed: int):
    """(clips, root, summary): a folder's videos, or a data set's training subjects of ``--fold``."""
    from datasets import Dataset

    from processing.datasets import LoadReport, find_video_files

    if data_args.dataset == "videos":
        root = Path(data_args.data_root)
        report = LoadReport(dataset="videos", root=str(root))
        rel_paths = find_video_files(root, report)
        if not rel_paths:
            raise FileNotFoundError(f"no video files under {root}")
        clips = Dataset.from_dict({"video": [str(root / rel) for rel in rel_paths], "rel_path": rel_paths})
        return clips, root, {"dataset": "videos", "invalid_files": report.invalid, "warnings": report.warnings}
    table, report, root = load_table(data_args)
    fold = split_fold(table, data_args, seed)
    clips = fold.select(table)["train"]
    summary = {"dataset": data_args.dataset, "fold": data_args.fold, "pretrain_subjects": fold.train_subjects,
               "excluded_val_subjects": fold.val_subjects, "excluded_test_subjects": fold.test_subjects,
               "invalid_files": report.invalid}
    return clips.select_columns(["video", "rel_path"]), root, summary


def with_face_labels(clips, data_args: PretrainDataArguments, root: Path, processor: MTCAEVideoProcessor):
    """Joins the data set's face-label cache (the face framing modes need it), as hub_scripts.train does."""
    cache_path = Path(data_args.annotations) if data_args.annotations else root / "face_labels.parquet"
    if cache_path.exists():
        return attach_face_labels(clips, AnnotationCache(cache_path),
                                  sampler_key(processor.sampling_mode, processor.num_frames))
    if processor.resize_mode in ("face_crop", "face_align"):
        raise FileNotFoundError(f"--resize_mode {processor.resize_mode} needs face labels, and there is no face-label "
                                f"cache at {cache_path}: run mtcae-annotate first (or pass --annotations).")
    return clips


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


def init_patch_embedding_from_data(model: VideoMAEForPreTraining, pixel_values: torch.Tensor) -> torch.Tensor:
    """MTCAE-DFER's PCA-whitened tubelet embedding (``MTCAEModel.init_patch_embedding_from_data``) on this encoder."""
    from modeling_mtcae.modeling_mtcae import MTCAEModel

    holder = SimpleNamespace(encoder=model.videomae, check_pixel_values=lambda values: None)
    return MTCAEModel.init_patch_embedding_from_data(holder, pixel_values)


# ------------------------------------------------------------------------------------------------
# Picture
# ------------------------------------------------------------------------------------------------
@torch.no_grad()
def save_reconstructions(model: VideoMAEForPreTraining, clips, processor: MTCAEVideoProcessor,
                         masking: TubeMasking, path: Path, num_clips: int = 4, num_frames_shown: int = 4) -> Path:
    """Original / masked / reconstructed frames of ``num_clips`` clips (no jitter, a fixed mask) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from hub_scripts.plots import save_figure

    picked = np.unique(np.linspace(0, len(clips) - 1, min(num_clips, len(clips))).round().astype(int)).tolist()
    pixel_values = ClipTransform(processor, train=False)(clips.select(picked)[:])["pixel_values"]
    mask = masking(len(pixel_values), generator=torch.Generator().manual_seed(0))
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    logits = model(pixel_values.to(device), bool_masked_pos=mask.to(device)).logits.float().cpu()
    model.train(was_training)
    masked, rebuilt = reconstruct(pixel_values, logits, mask, model.config)
    mean = torch.tensor(processor.image_mean).view(1, 1, 3, 1, 1)
    std = torch.tensor(processor.image_std).view(1, 1, 3, 1, 1)
    rows = [(name, (video * std + mean).clamp(0, 1)) for name, video in
            (("original", pixel_values), ("masked", masked), ("reconstructed", rebuilt))]
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
    fig.suptitle(f"tube mask {masking.num_masked}/{masking.patches_per_frame} patches per frame; frames {frames.tolist()}\n"
                 "masked patches: predicted normalised pixels x the original patch's std + its mean", fontsize=7)
    return save_figure(fig, path)


# ------------------------------------------------------------------------------------------------
# Main
# ------------------------------------------------------------------------------------------------
def run(data_args: PretrainDataArguments, model_args: PretrainModelArguments, training_args: PretrainingArguments,
        callbacks: list | None = None) -> dict:
    """Pretrain and save; returns Trainer's train metrics plus what was pretrained on."""
    set_seed(training_args.seed)
    output_dir = Path(training_args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    if not os.access(output_dir, os.W_OK):
        raise PermissionError(f"--output_dir {output_dir} is not writable")
    clips, root, summary = load_clips(data_args, training_args.seed)
    with training_args.main_process_first(desc="probing videos"):
        bad_videos = find_unreadable_videos(sorted(clips["video"]))
    if bad_videos:
        clips = clips.filter(lambda row: row["video"] not in bad_videos)
    model = build_model(model_args)
    config = model.config
    resize_mode = data_args.resize_mode or DEFAULT_RESIZE_MODES.get(data_args.dataset, "full_frame")
    processor = MTCAEVideoProcessor(num_frames=config.num_frames, resize_mode=resize_mode,
                                    size={"height": config.image_size, "width": config.image_size})
    clips = with_face_labels(clips, data_args, root, processor)
    pca = model_args.patch_embedding_init == "pca" or (
        model_args.patch_embedding_init == "auto" and not model_args.model_name_or_path)
    if pca and not training_args.resume_from_checkpoint:
        init_patch_embedding(SimpleNamespace(init_patch_embedding_from_data=lambda pv: init_patch_embedding_from_data(
            model, pv)), clips, processor)
    masking = TubeMasking.for_config(config, data_args.mask_ratio)
    transform = MaskedClipTransform(processor, masking, train=True, random_flip=data_args.random_flip,
                                    seed=training_args.seed)
    trainer = Trainer(model=model, args=training_args, train_dataset=clips.with_transform(transform),
                      processing_class=processor, callbacks=[*(callbacks or []), EpochSeed(transform)])
    result = trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    trainer.save_model()
    metrics = {**result.metrics, "num_clips": len(clips), "global_step": trainer.state.global_step}
    trainer.log_metrics("train", metrics)
    trainer.save_metrics("train", metrics)
    if trainer.is_world_process_zero():
        if data_args.num_picture_clips:
            picture = save_reconstructions(model, clips, processor, masking, output_dir / "reconstructions.png",
                                           data_args.num_picture_clips)
            logger.info("Reconstructions of %d clips written to %s", data_args.num_picture_clips, picture)
        summary.update(num_clips=len(clips), unreadable_videos=bad_videos, resize_mode=resize_mode,
                       mask_ratio=data_args.mask_ratio, encoder_config=config.to_diff_dict())
        (output_dir / "pretrain_summary.json").write_text(json.dumps(summary, indent=2, default=str))
        print(f"\nPretrained encoder saved to {output_dir}: fine-tune it with "
              f"`python -m hub_scripts.train --encoder {output_dir} --preset {model_args.preset}`")
    return {**metrics, **summary}


def parse_args(argv: list[str] | None = None):
    parser = HfArgumentParser((PretrainDataArguments, PretrainModelArguments, PretrainingArguments))
    if argv is None and len(sys.argv) == 2 and sys.argv[1].endswith(".json"):
        return parser.parse_json_file(os.path.abspath(sys.argv[1]))
    return parser.parse_args_into_dataclasses(args=argv)


def main(argv: list[str] | None = None) -> dict:
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    return run(*parse_args(argv))


if __name__ == "__main__":
    main()
