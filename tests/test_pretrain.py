"""hub_scripts/pretrain.py: tube masking and targets against transformers' VideoMAEForPreTraining, a one-epoch
run on a tiny synthetic set read from the prepared-clip cache, its checkpoint in hub_scripts.train --encoder and
from_videomae, resume, bf16 on a folder of videos and frame folders."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file
from test_training_runs import QUICK_ARGS as TRAIN_QUICK_ARGS
from test_training_runs import StopAtStep, synthetic_root  # noqa: F401  (the shared tiny synthetic set)
from transformers import TrainerCallback, VideoMAEConfig, VideoMAEForPreTraining

from hub_scripts.pretrain import parse_args
from hub_scripts.training.pretraining import TubeMasking, pixel_targets, reconstruct, run
from modeling_mtcae import MTCAEConfig, MTCAEForVideoClassification

QUICK_ARGS = ["--synthetic_actors", "4", "--synthetic_clips_per_class", "1", "--num_folds", "2",
              "--per_device_train_batch_size", "4", "--logging_steps", "1", "--num_picture_clips", "0"]


class RecordTrainingClips(TrainerCallback):
    """Records the transform of the data set Trainer trains on."""

    def on_train_begin(self, args, state, control, train_dataloader=None, **kwargs):
        self.dataset = train_dataloader.dataset
        self.transform = self.dataset.format["format_kwargs"]["transform"]


@pytest.fixture(scope="module")
def pretrained(synthetic_root, tmp_path_factory) -> tuple[Path, Path, RecordTrainingClips]:  # noqa: F811
    """``(output_dir, prepared-clip cache folder, what the run trained on)`` of a one-epoch pretraining."""
    folder = tmp_path_factory.mktemp("pretrain")
    output_dir, cache_dir, record = folder / "tiny", folder / "prepared", RecordTrainingClips()
    run(*parse_args(["--data_root", str(synthetic_root), *QUICK_ARGS, "--num_train_epochs", "1",
                     "--num_picture_clips", "2", "--prepared_cache_dir", str(cache_dir),
                     "--output_dir", str(output_dir)]), callbacks=[record])
    return output_dir, cache_dir, record


def _tiny_pretraining_config(**overrides) -> VideoMAEConfig:
    fields = MTCAEConfig.from_preset("tiny").encoder_config.to_dict()
    fields.update(num_frames=4, decoder_hidden_size=16, decoder_num_hidden_layers=1, decoder_num_attention_heads=2,
                  decoder_intermediate_size=32)
    fields.update(overrides)
    return VideoMAEConfig.from_dict(fields)


def test_tube_masks_repeat_one_spatial_mask_over_time_with_the_ratio_of_videomae():
    masking = TubeMasking(time_steps=8, patches_per_frame=49, mask_ratio=0.9)
    mask = masking(3, generator=torch.Generator().manual_seed(0))
    assert mask.shape == (3, 8 * 49) and mask.dtype == torch.bool
    per_step = mask.view(3, 8, 49)
    assert torch.equal(per_step, per_step[:, :1].expand(-1, 8, -1))  # a tube: the same patches at every step
    assert per_step[:, 0].sum(dim=1).tolist() == [44, 44, 44]  # int(0.9 * 49), as TubeMaskingGenerator
    assert not torch.equal(per_step[0, 0], per_step[1, 0])  # each clip its own mask
    with pytest.raises(ValueError, match="at least one must be masked"):
        TubeMasking(time_steps=8, patches_per_frame=4, mask_ratio=0.1)


@pytest.mark.parametrize("norm_pix_loss", [True, False])
def test_targets_are_the_models_and_a_perfect_prediction_reconstructs_the_clip(norm_pix_loss):
    torch.manual_seed(0)
    config = _tiny_pretraining_config(norm_pix_loss=norm_pix_loss)
    model = VideoMAEForPreTraining(config).eval()
    pixel_values = torch.randn(2, 4, 3, 56, 56)
    mask = TubeMasking.for_config(config, 0.9)(2)
    with torch.no_grad():
        outputs = model(pixel_values, bool_masked_pos=mask)
    targets = pixel_targets(pixel_values, config)[0][mask].view(2, -1, outputs.logits.shape[-1])
    # Our targets are the model's own: the loss it reports is the MSE to them.
    torch.testing.assert_close(torch.nn.functional.mse_loss(outputs.logits, targets), outputs.loss)

    masked, rebuilt = reconstruct(pixel_values, targets, mask, config)
    torch.testing.assert_close(rebuilt, pixel_values, rtol=1e-4, atol=1e-4)
    masked_rebuilt = reconstruct(pixel_values, outputs.logits, mask, config)[1]
    assert not torch.allclose(masked_rebuilt, pixel_values, atol=1e-2)  # an untrained decoder does not
    visible = ~mask.view(2, 2, 7, 7).repeat_interleave(2, 1).repeat_interleave(8, 2).repeat_interleave(8, 3)
    visible = visible.unsqueeze(2).expand_as(pixel_values)
    torch.testing.assert_close(masked_rebuilt[visible], pixel_values[visible], rtol=1e-4, atol=1e-4)
    assert torch.equal(masked[visible], masked_rebuilt[visible])


def test_pretraining_uses_only_training_subjects_and_writes_checkpoint_and_picture(pretrained,
                                                                                   synthetic_root):  # noqa: F811
    from hub_scripts.training.arguments import DataArguments
    from hub_scripts.training.data import load_table, split_fold

    pretrained_dir = pretrained[0]
    summary = json.loads((pretrained_dir / "pretrain_summary.json").read_text())
    data_args = DataArguments(data_root=str(synthetic_root), synthetic_actors=4, synthetic_clips_per_class=1,
                              num_folds=2)
    fold = split_fold(load_table(data_args)[0], data_args, seed=42)
    assert summary["pretrain_subjects"] == fold.train_subjects  # the fine-tuning fold's training subjects
    assert not set(summary["pretrain_subjects"]) & (set(fold.test_subjects) | set(fold.val_subjects))
    assert summary["num_clips"] == 7 * len(fold.train_subjects) and summary["resize_mode"] == "face_align"

    config = json.loads((pretrained_dir / "config.json").read_text())
    assert config["architectures"] == ["VideoMAEForPreTraining"] and config["norm_pix_loss"] is True
    assert (config["hidden_size"], config["image_size"], config["patch_size"]) == (96, 56, 8)  # the tiny preset
    state = json.loads(next(pretrained_dir.glob("checkpoint-*/trainer_state.json")).read_text())
    losses = [entry["loss"] for entry in state["log_history"] if "loss" in entry]
    assert len(losses) == state["global_step"] == 2 and all(math.isfinite(v) and v > 0 for v in losses)
    picture = pretrained_dir / "reconstructions.png"
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and picture.stat().st_size > 10_000


def test_pretraining_reads_the_training_subjects_clips_from_the_prepared_cache(pretrained,
                                                                               synthetic_root):  # noqa: F811
    from hub_scripts.training.arguments import DataArguments, ModelArguments
    from hub_scripts.training.data import FoldData, load_table, split_fold, with_face_labels
    from hub_scripts.training.model import run_processor
    from processing.prepared_cache import PreparedClipCache
    from processing.prepared_clips import PreparedClipTransform

    pretrained_dir, cache_dir, record = pretrained
    data_args = DataArguments(data_root=str(synthetic_root), synthetic_actors=4, synthetic_clips_per_class=1,
                              num_folds=2)
    table = load_table(data_args)[0]
    splits = split_fold(table, data_args, seed=42).select(table)
    entries = sorted(cache_dir.glob("*/*.safetensors"))
    cached = set()
    for entry in entries:
        with safe_open(str(entry), framework="pt") as handle:
            cached.add(handle.metadata()["video"])
    assert len(entries) == len(cached) == len(splits["train"])  # one entry per training clip, nothing else
    assert cached == set(splits["train"]["video"])
    assert not cached & (set(splits["test"]["video"]) | set(splits["validation"]["video"]))
    # Trainer's clips: the training transform reads those entries (with temporal jitter), not the videos.
    clips = record.transform.clips
    assert isinstance(clips, PreparedClipTransform) and clips.train and clips.cache.cache_dir == cache_dir
    assert {str(path) for path in record.dataset.with_format(None)["prepared_entry"]} == {str(e) for e in entries}
    # They are the entries that fine-tuning this encoder (train --encoder DIR) reads for its training split.
    fine_tuning = PreparedClipCache(cache_dir, run_processor(data_args, ModelArguments(encoder=str(pretrained_dir))))
    data = with_face_labels(FoldData({"train": splits["train"]}, None, [], synthetic_root, None), data_args,
                            fine_tuning.processor)
    train = data.splits["train"]
    labels = data.face_labels.labels_of(train)
    assert all((video, label) in fine_tuning for video, label in zip(train["video"], labels))


def test_pretrained_encoder_loads_in_from_videomae_and_train_with_no_missing_keys(pretrained, tmp_path,
                                                                                   synthetic_root):  # noqa: F811
    from hub_scripts.train import parse_args as train_args
    from hub_scripts.train import run as train_run
    from hub_scripts.training.arguments import ModelArguments
    from hub_scripts.training.model import build_model

    pretrained_dir = pretrained[0]
    saved = load_file(str(pretrained_dir / "model.safetensors"))
    model = MTCAEForVideoClassification.from_videomae(str(pretrained_dir), preset="tiny", num_labels=7)
    assert model.encoder_loading_report["missing_keys"] == []
    assert all(k.startswith(("decoder.", "encoder_to_decoder", "mask_token"))
               for k in model.encoder_loading_report["unexpected_keys"])
    encoder = model.mtcae.encoder.state_dict()
    name = "embeddings.patch_embeddings.projection.weight"
    assert torch.equal(encoder[name], saved["videomae." + name])

    built = build_model(ModelArguments(preset="tiny", encoder=str(pretrained_dir)), ["a", "b"])
    assert built.encoder_loading_report["missing_keys"] == [] and not built.mtcae.encoder_is_frozen
    results = train_run(*train_args(["--data_root", str(synthetic_root), *TRAIN_QUICK_ARGS, "--encoder",
                                     str(pretrained_dir), "--max_steps", "1", "--eval_strategy", "no",
                                     "--save_strategy", "no", "--load_best_model_at_end", "False",
                                     "--output_dir", str(tmp_path / "finetune")]))
    assert 0.0 <= results["test_uar"] <= 1.0


def test_resumed_pretraining_ends_with_the_weights_of_an_uninterrupted_run(synthetic_root, tmp_path):  # noqa: F811
    common = ["--data_root", str(synthetic_root), *QUICK_ARGS, "--per_device_train_batch_size", "2",
              "--max_steps", "4", "--save_strategy", "steps", "--save_steps", "2", "--seed", "3"]
    full_dir, cut_dir = tmp_path / "full", tmp_path / "cut"
    run(*parse_args(common + ["--output_dir", str(full_dir)]))
    run(*parse_args(common + ["--output_dir", str(cut_dir)]), callbacks=[StopAtStep(2)])
    interrupted = load_file(str(cut_dir / "model.safetensors"))
    run(*parse_args(common + ["--output_dir", str(cut_dir), "--resume_from_checkpoint", str(cut_dir / "checkpoint-2")]))

    full, resumed = load_file(str(full_dir / "model.safetensors")), load_file(str(cut_dir / "model.safetensors"))
    assert full.keys() == resumed.keys()
    for name in full:
        torch.testing.assert_close(resumed[name], full[name], rtol=0, atol=1e-6, msg=name)
    assert any(not torch.equal(interrupted[name], full[name]) for name in full)


class RecordTrainingSetup(TrainerCallback):
    """Records whether activation checkpointing is on and the dtype an encoder Linear computes in."""

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self.dtypes = set()
        model.videomae.encoder.layer[0].intermediate.dense.register_forward_hook(
            lambda module, inputs, output: self.dtypes.add(output.dtype))

    def on_step_end(self, args, state, control, model=None, **kwargs):
        self.checkpointing = model.is_activation_checkpointing


def _write_frame_folder(folder: Path, num_frames: int, seed: int) -> None:
    folder.mkdir(parents=True)
    frames = np.random.default_rng(seed).integers(0, 256, (num_frames, 48, 64, 3), dtype=np.uint8)
    for i, frame in enumerate(frames):
        Image.fromarray(frame).save(folder / f"img_{i}.png")


def test_a_folder_of_videos_and_frame_folders_pretrains_in_bf16_with_activation_checkpointing(
        tmp_path, synthetic_root):  # noqa: F811
    root = tmp_path / "unlabelled"
    (root / "speaker_a").mkdir(parents=True)
    video = next(iter(sorted(synthetic_root.glob("Actor_01/*.mp4"))))
    shutil.copy(video, root / "speaker_a" / "clip.mp4")
    _write_frame_folder(root / "speaker_b" / "clip_1", 12, seed=0)
    _write_frame_folder(root / "speaker_b" / "clip_2", 20, seed=1)
    (root / "notes.txt").write_text("not a clip")
    record = RecordTrainingSetup()
    results = run(*parse_args(["--dataset", "videos", "--data_root", str(root), *QUICK_ARGS[6:], "--max_steps", "1",
                               "--bf16", "--activation_checkpointing", "--save_strategy", "no",
                               "--use_prepared_cache", "False", "--output_dir", str(tmp_path / "bf16")]),
                  callbacks=[record])
    assert record.checkpointing and record.dtypes == {torch.bfloat16}  # CPU autocast in bf16
    assert results["global_step"] == 1 and math.isfinite(results["train_loss"])
    assert results["num_clips"] == 3 and results["clip_source"] == "decoded on the fly"
    assert results["resize_mode"] == "full_frame" and results["unreadable_videos"] == {}
    assert (tmp_path / "bf16" / "model.safetensors").is_file()


def test_masks_and_jitter_are_a_function_of_seed_epoch_and_clips(synthetic_root):  # noqa: F811
    from hub_scripts.training.pretraining import MaskedClipTransform
    from processing.clip_transform import ClipTransform
    from processing.video_processing_mtcae import MTCAEVideoProcessor

    processor = MTCAEVideoProcessor(num_frames=16, size={"height": 56, "width": 56})
    clips = sorted(str(p.relative_to(synthetic_root)) for p in synthetic_root.glob("Actor_01/*.mp4"))[:2]
    batch = {"video": [str(synthetic_root / c) for c in clips], "rel_path": clips}
    transform = MaskedClipTransform(ClipTransform(processor, train=True), TubeMasking(8, 49), seed=1)
    first, again = transform(batch), transform(batch)
    assert torch.equal(first["bool_masked_pos"], again["bool_masked_pos"])
    assert torch.equal(first["pixel_values"], again["pixel_values"])  # same temporal jitter
    transform.epoch = 1
    later = transform(batch)
    assert not torch.equal(first["bool_masked_pos"], later["bool_masked_pos"])
    assert not torch.equal(first["pixel_values"], later["pixel_values"])
