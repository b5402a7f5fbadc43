"""Original MCG-NJU VideoMAE .pth -> transformers folder -> MTCAE encoder, checked against transformers."""

from __future__ import annotations

import pytest
import torch
from mtcae_test_utils import tiny_encoder_kwargs
from transformers import VideoMAEConfig, VideoMAEModel

from hub_scripts.convert_videomae_checkpoint import main as convert_main
from modeling_mtcae import MTCAEForVideoClassification


def _original_layout(model: VideoMAEModel, pretraining: bool) -> dict[str, torch.Tensor]:
    """Write an HF VideoMAE in the original repository's key names (the inverse of the converter)."""
    state = {"patch_embed.proj.weight": model.embeddings.patch_embeddings.projection.weight,
             "patch_embed.proj.bias": model.embeddings.patch_embeddings.projection.bias}
    for i, layer in enumerate(model.encoder.layer):
        attention = layer.attention.attention
        state[f"blocks.{i}.attn.qkv.weight"] = torch.cat(
            [attention.query.weight, attention.key.weight, attention.value.weight])
        state[f"blocks.{i}.attn.q_bias"] = attention.query.bias
        state[f"blocks.{i}.attn.v_bias"] = attention.value.bias
        pairs = {"norm1": layer.layernorm_before, "norm2": layer.layernorm_after,
                 "attn.proj": layer.attention.output.dense, "mlp.fc1": layer.intermediate.dense,
                 "mlp.fc2": layer.output.dense}
        for name, module in pairs.items():
            state[f"blocks.{i}.{name}.weight"] = module.weight
            state[f"blocks.{i}.{name}.bias"] = module.bias
    if model.layernorm is not None:
        state["norm.weight"], state["norm.bias"] = model.layernorm.weight, model.layernorm.bias
    else:
        state["fc_norm.weight"] = torch.ones(model.config.hidden_size)
        state["fc_norm.bias"] = torch.zeros(model.config.hidden_size)
        state["head.weight"] = torch.zeros(7, model.config.hidden_size)
    state = {k: v.detach().clone() for k, v in state.items()}
    if pretraining:
        state = {f"encoder.{k}": v for k, v in state.items()}
        state["mask_token"] = torch.zeros(1, 1, 8)
        state["decoder.head.weight"] = torch.zeros(3, 8)
        return {"model": state, "epoch": 3}
    return {"module": state}


@pytest.mark.parametrize("pretraining", [False, True])
def test_original_checkpoint_converts_and_loads_exactly(tmp_path, pretraining):
    torch.manual_seed(0)
    reference = VideoMAEModel(VideoMAEConfig(
        **tiny_encoder_kwargs(use_mean_pooling=not pretraining), layer_norm_eps=1e-6)).eval()
    torch.save(_original_layout(reference, pretraining), tmp_path / "original.pth")
    convert_main(["--checkpoint", str(tmp_path / "original.pth"), "--output_dir", str(tmp_path / "hf"),
                  "--num_frames", "4", "--image_size", "32", "--num_attention_heads", "4"])

    model = MTCAEForVideoClassification.from_videomae(str(tmp_path / "hf"), preset="tiny", num_labels=3).eval()
    assert model.encoder_loading_report["missing_keys"] == []
    assert model.config.encoder_config.use_mean_pooling is (not pretraining)
    pixel_values = torch.randn(2, 4, 3, 32, 32)
    torch.testing.assert_close(model.mtcae(pixel_values).encoder_last_hidden_state,
                               reference(pixel_values).last_hidden_state, rtol=1e-6, atol=1e-6)


def test_a_non_videomae_file_is_refused(tmp_path):
    torch.save({"model": {"conv1.weight": torch.zeros(1)}}, tmp_path / "resnet.pth")
    with pytest.raises(ValueError, match="not a VideoMAE checkpoint"):
        convert_main(["--checkpoint", str(tmp_path / "resnet.pth"), "--output_dir", str(tmp_path / "out")])

