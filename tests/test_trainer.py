"""MTCAE-DFER under transformers' Trainer: gradient accumulation and EvalPrediction."""

from __future__ import annotations

import numpy as np
import torch
from mtcae_test_utils import tiny_config
from torch.utils.data import Dataset
from transformers import Trainer, TrainingArguments

from modeling_mtcae import MTCAEForVideoClassification


class RandomClips(Dataset):
    def __init__(self, config, size: int, seed: int = 0):
        generator = torch.Generator().manual_seed(seed)
        height, width = config.image_size
        frames = config.num_frames
        self.items = [
            {
                "pixel_values": torch.randn(frames, 3, height, width, generator=generator),
                "labels": torch.randint(0, config.num_labels, (), generator=generator),
                "face_boxes": torch.rand(frames, 4, generator=generator),
                "face_landmarks": torch.rand(frames, config.num_landmarks, 2, generator=generator),
                "face_mask": torch.ones(frames, dtype=torch.bool),
            }
            for _ in range(size)
        ]

    def __len__(self):
        return len(self.items)

    def __getitem__(self, index):
        return self.items[index]


def _train_one_step(tmp_path, batch_size: int, accumulation: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    model = MTCAEForVideoClassification(tiny_config())
    args = TrainingArguments(
        output_dir=str(tmp_path / f"b{batch_size}x{accumulation}"),
        per_device_train_batch_size=batch_size,
        gradient_accumulation_steps=accumulation,
        max_steps=1,
        learning_rate=0.5,
        optim="sgd",
        lr_scheduler_type="constant",
        weight_decay=0.0,
        max_grad_norm=0.0,
        use_cpu=True,
        report_to="none",
        save_strategy="no",
        seed=0,
        data_seed=0,
        remove_unused_columns=False,
        disable_tqdm=True,
    )
    Trainer(model=model, args=args, train_dataset=RandomClips(model.config, size=4)).train()
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def test_gradient_accumulation_matches_the_full_batch(tmp_path):
    full = _train_one_step(tmp_path, batch_size=4, accumulation=1)
    accumulated = _train_one_step(tmp_path, batch_size=2, accumulation=2)
    torch.manual_seed(0)
    initial = dict(MTCAEForVideoClassification(tiny_config()).named_parameters())
    assert any(not torch.equal(full[name], initial[name]) for name in full), "the step changed nothing"
    for name in full:
        torch.testing.assert_close(accumulated[name], full[name], rtol=1e-4, atol=1e-6, msg=name)


def test_eval_prediction_holds_logits_and_labels(tmp_path):
    torch.manual_seed(0)
    model = MTCAEForVideoClassification(tiny_config())
    seen = {}

    def compute_metrics(prediction):
        seen["predictions"], seen["labels"] = prediction.predictions, prediction.label_ids
        return {"accuracy": float((prediction.predictions.argmax(-1) == prediction.label_ids).mean())}

    args = TrainingArguments(output_dir=str(tmp_path), per_device_eval_batch_size=3, use_cpu=True,
                             report_to="none", remove_unused_columns=False, disable_tqdm=True)
    dataset = RandomClips(model.config, size=5, seed=1)
    metrics = Trainer(model=model, args=args, eval_dataset=dataset, compute_metrics=compute_metrics).evaluate()
    assert isinstance(seen["predictions"], np.ndarray)
    assert seen["predictions"].shape == (5, model.config.num_labels)
    np.testing.assert_array_equal(seen["labels"], [int(item["labels"]) for item in dataset.items])
    assert "eval_accuracy" in metrics and "eval_loss" in metrics
    model.eval()
    with torch.no_grad():
        expected = model(torch.stack([item["pixel_values"] for item in dataset.items])).logits.numpy()
    np.testing.assert_allclose(seen["predictions"], expected, rtol=1e-5, atol=1e-5)


def test_trainer_runs_with_gradient_checkpointing_and_frozen_encoder(tmp_path):
    torch.manual_seed(0)
    model = MTCAEForVideoClassification(tiny_config(freeze_encoder=True))
    encoder_before = {n: p.clone() for n, p in model.mtcae.encoder.named_parameters()}
    args = TrainingArguments(output_dir=str(tmp_path), per_device_train_batch_size=2, max_steps=2,
                             learning_rate=1e-2, use_cpu=True, report_to="none", save_strategy="no",
                             gradient_checkpointing=True, remove_unused_columns=False,
                             disable_tqdm=True)
    result = Trainer(model=model, args=args, train_dataset=RandomClips(model.config, size=4)).train()
    assert np.isfinite(result.training_loss)
    for name, parameter in model.mtcae.encoder.named_parameters():
        assert torch.equal(parameter, encoder_before[name]), name
