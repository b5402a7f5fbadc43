"""What only a CUDA GPU can check (run by hub_scripts/bench/device_check.py; skipped where there is no GPU): a bf16
training step against fp32, the flash sdpa kernel against the math one, torch.compile against eager, the paper
preset's forward and backward, and a two-step Trainer run on the synthetic set at 224 px."""

from __future__ import annotations

import pytest
import torch

from modeling_mtcae import MTCAEConfig, MTCAEForVideoClassification

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


def _model(preset: str = "base", **overrides) -> MTCAEForVideoClassification:
    torch.manual_seed(0)
    config = MTCAEConfig.from_preset(preset, num_labels=7, **overrides)
    for name in ("projection_dropout", "decoder_dropout", "decoder_attention_dropout", "head_dropout"):
        setattr(config, name, 0.0)
    return MTCAEForVideoClassification(config).cuda()


def _batch(config, batch_size: int = 2) -> dict:
    generator = torch.Generator().manual_seed(1)
    pixel_values = torch.randn(batch_size, config.num_frames, 3, *config.image_size, generator=generator)
    return {"pixel_values": pixel_values.cuda(), "labels": torch.tensor([1, 4][:batch_size]).cuda()}


def test_a_bf16_training_step_follows_the_fp32_one():
    model = _model(freeze_encoder=False).train()
    batch = _batch(model.config)
    losses, grads = [], []
    for dtype in (torch.float32, torch.bfloat16):
        model.zero_grad()
        with torch.autocast("cuda", dtype=dtype, enabled=dtype != torch.float32):
            loss = model(**batch).loss
        loss.backward()
        losses.append(loss.item())
        grads.append(torch.cat([p.grad.flatten().float() for p in model.parameters() if p.grad is not None]))
    assert abs(losses[1] - losses[0]) < 0.05 * abs(losses[0])
    cosine = torch.nn.functional.cosine_similarity(grads[0], grads[1], dim=0)
    assert torch.isfinite(grads[1]).all() and cosine > 0.99


def test_the_flash_kernel_gives_the_math_kernels_outputs():
    from torch.nn.attention import SDPBackend, sdpa_kernel

    model = _model().eval().to(torch.bfloat16)
    batch = _batch(model.config)["pixel_values"].to(torch.bfloat16)
    outputs = []
    for backend in (SDPBackend.MATH, SDPBackend.FLASH_ATTENTION):
        with sdpa_kernel(backend), torch.no_grad():
            outputs.append(model(pixel_values=batch).logits.float())
    torch.testing.assert_close(outputs[1], outputs[0], rtol=0, atol=3e-2)


def test_a_compiled_model_gives_the_eager_outputs_on_the_gpu():
    model = _model().eval()
    batch = _batch(model.config)["pixel_values"]
    with torch.no_grad():
        eager = model(pixel_values=batch)
        compiled = torch.compile(model)(pixel_values=batch)
    for name in ("logits", "face_boxes", "face_landmarks"):
        torch.testing.assert_close(getattr(compiled, name), getattr(eager, name), rtol=1e-3, atol=1e-3)


def test_the_paper_preset_runs_forward_and_backward():
    model = _model("paper").train()
    with torch.autocast("cuda", dtype=torch.bfloat16):
        loss = model(**_batch(model.config)).loss
    loss.backward()
    trained = [p for p in model.parameters() if p.requires_grad]
    assert torch.isfinite(loss) and all(p.grad is not None and torch.isfinite(p.grad).all() for p in trained)


def test_two_trainer_steps_on_the_synthetic_set_at_224_px(tmp_path):
    from hub_scripts.train import parse_args, run

    result = run(*parse_args(["--synthetic_actors", "4", "--synthetic_clips_per_class", "1", "--num_folds", "2",
                              "--data_root", str(tmp_path / "synthetic"), "--preset", "base", "--bf16",
                              "--max_steps", "2", "--per_device_train_batch_size", "2", "--eval_strategy", "no",
                              "--save_strategy", "no", "--output_dir", str(tmp_path / "run")]))
    assert 0 <= result["test_uar"] <= 1
