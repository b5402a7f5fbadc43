"""Published plain-ViT checkpoint layouts -> transformers VideoMAEModel folder -> MTCAE encoder.

Each test writes random tensors under the real key names and shapes of a published layout (tiny widths where
the layout allows), converts them, and checks that VideoMAEModel gives the outputs of the original forward,
re-implemented here from the original key names (timm-style blocks with a fused qkv and VideoMAE's q/v biases).
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mtcae_test_utils import tiny_encoder_kwargs
from transformers import VideoMAEConfig, VideoMAEModel

from hub_scripts.convert_videomae_checkpoint import main as convert_main
from hub_scripts.hub.videomae_conversion import LGIFormerCheckpointError
from modeling_mtcae import MTCAEForVideoClassification


# ------------------------------------------------------------------------------------------------
# The original forward, from the original key names
# ------------------------------------------------------------------------------------------------
def original_sinusoid_table(n_position: int, d_hid: int) -> torch.Tensor:
    """get_sinusoid_encoding_table of the VideoMAE / HiCMAE code, as written there."""
    def angles(position):
        return [position / np.power(10000, 2 * (j // 2) / d_hid) for j in range(d_hid)]

    table = np.array([angles(i) for i in range(n_position)])
    table[:, 0::2] = np.sin(table[:, 0::2])
    table[:, 1::2] = np.cos(table[:, 1::2])
    return torch.FloatTensor(table).unsqueeze(0)


def original_forward(state: dict, pixel_values: torch.Tensor, num_heads: int, eps: float = 1e-6) -> torch.Tensor:
    """The original PatchEmbed + Block(s) + norm forward; ``state`` keys without the encoder prefix."""
    weight = state["patch_embed.proj.weight"]
    x = F.conv3d(pixel_values.permute(0, 2, 1, 3, 4), weight, state["patch_embed.proj.bias"], stride=weight.shape[2:])
    x = x.flatten(2).transpose(1, 2)
    batch, tokens, width = x.shape
    x = x + original_sinusoid_table(tokens, width)
    depth = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("blocks."))
    for i in range(depth):
        block = {k[len(f"blocks.{i}."):]: v for k, v in state.items() if k.startswith(f"blocks.{i}.")}
        h = F.layer_norm(x, (width,), block["norm1.weight"], block["norm1.bias"], eps)
        if "attn.q_bias" in block:
            bias = torch.cat([block["attn.q_bias"], torch.zeros_like(block["attn.v_bias"]), block["attn.v_bias"]])
        else:
            bias = block.get("attn.qkv.bias")
        qkv = F.linear(h, block["attn.qkv.weight"], bias)
        qkv = qkv.reshape(batch, tokens, 3, num_heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attention = ((q * (width // num_heads) ** -0.5) @ k.transpose(-2, -1)).softmax(dim=-1)
        h = F.linear((attention @ v).transpose(1, 2).reshape(batch, tokens, width),
                     block["attn.proj.weight"], block["attn.proj.bias"])
        x = x + block.get("gamma_1", 1.0) * h
        h = F.layer_norm(x, (width,), block["norm2.weight"], block["norm2.bias"], eps)
        h = F.linear(F.gelu(F.linear(h, block["mlp.fc1.weight"], block["mlp.fc1.bias"])),
                     block["mlp.fc2.weight"], block["mlp.fc2.bias"])
        x = x + block.get("gamma_2", 1.0) * h
    if "norm.weight" in state:
        x = F.layer_norm(x, (width,), state["norm.weight"], state["norm.bias"], eps)
    return x


# ------------------------------------------------------------------------------------------------
# State dicts in the published layouts
# ------------------------------------------------------------------------------------------------
def _randn(*shape, scale: float | None = None) -> torch.Tensor:
    return torch.randn(*shape) * (scale if scale is not None else shape[-1] ** -0.5)


def vit_tensors(width: int, depth: int, mlp: int, patch: int = 16, tubelet: int = 2, qkv_bias: str = "qv",
                final_norm: bool = True, layer_scale: bool = False) -> dict[str, torch.Tensor]:
    """A VideoMAE-style ViT in the original names; ``qkv_bias``: "qv" (q_bias/v_bias), "fused" (attn.qkv.bias)."""
    state = {"patch_embed.proj.weight": _randn(width, 3, tubelet, patch, patch, scale=(3 * tubelet) ** -0.5 / patch),
             "patch_embed.proj.bias": _randn(width, scale=0.1)}
    for i in range(depth):
        b = f"blocks.{i}."
        for norm in ("norm1", "norm2"):
            state[f"{b}{norm}.weight"] = 1 + _randn(width, scale=0.1)
            state[f"{b}{norm}.bias"] = _randn(width, scale=0.1)
        state[b + "attn.qkv.weight"] = _randn(3 * width, width)
        if qkv_bias == "qv":
            state[b + "attn.q_bias"], state[b + "attn.v_bias"] = _randn(width, scale=0.1), _randn(width, scale=0.1)
        elif qkv_bias == "fused":
            state[b + "attn.qkv.bias"] = _randn(3 * width, scale=0.5)  # a non-zero key third, too
        linears = {"attn.proj": (width, width), "mlp.fc1": (mlp, width), "mlp.fc2": (width, mlp)}
        for name, (rows, cols) in linears.items():
            state[f"{b}{name}.weight"], state[f"{b}{name}.bias"] = _randn(rows, cols), _randn(rows, scale=0.1)
        if layer_scale:
            state[b + "gamma_1"] = 0.1 + _randn(width, scale=0.05)
            state[b + "gamma_2"] = 0.1 + _randn(width, scale=0.05)
    if final_norm:
        state["norm.weight"], state["norm.bias"] = 1 + _randn(width, scale=0.1), _randn(width, scale=0.1)
    return state


def _prefixed(prefix: str, state: dict) -> dict:
    return {prefix + k: v for k, v in state.items()}


def mae_decoder_tensors(encoder_width: int, decoder_width: int = 16, suffix: str = "", out: int = 1536) -> dict:
    """VideoMAE / HiCMAE pre-training parts around the encoder (decoder, projection, mask token)."""
    decoder = _prefixed(f"decoder{suffix}.", vit_tensors(decoder_width, 1, 2 * decoder_width, final_norm=True))
    decoder = {k: v for k, v in decoder.items() if "patch_embed" not in k}
    decoder[f"decoder{suffix}.head.weight"] = _randn(out, decoder_width)
    decoder[f"decoder{suffix}.head.bias"] = _randn(out, scale=0.1)
    decoder[f"encoder_to_decoder{suffix}.weight"] = _randn(decoder_width, encoder_width)
    decoder[f"mask_token{suffix}"] = _randn(1, 1, decoder_width, scale=0.02)
    return decoder


def hicmae_checkpoint(width: int = 64, depth: int = 2) -> tuple[dict, dict]:
    """HiCMAE's pre-training file: video encoder, audio encoder, fusion encoder, two MAE decoders, training args."""
    video = vit_tensors(width, depth, 4 * width)
    audio = vit_tensors(width, 1, 4 * width)
    audio["patch_embed.proj.weight"] = _randn(width, 1, 16, 16)  # Conv2d on the spectrogram
    fusion = {"encoder_fusion.blocks.0.cross_attn.q.weight": _randn(width, width),
              "encoder_fusion.blocks.0.cross_attn.kv.weight": _randn(2 * width, width),
              "encoder_fusion.blocks.0.attn.qkv.weight": _randn(3 * width, width),
              "encoder_fusion.norm.weight": torch.ones(width), "encoder_fusion.norm_audio.weight": torch.ones(width)}
    model = {**_prefixed("encoder.", video), **_prefixed("encoder_audio.", audio), **fusion,
             **mae_decoder_tensors(width), **mae_decoder_tensors(width, suffix="_audio", out=256)}
    checkpoint = {"model": model, "optimizer": {"state": {}, "param_groups": [{"lr": 1e-4}]}, "epoch": 99,
                  "args": argparse.Namespace(model="pretrain_hicmae_dim512_patch16_160_a256", input_size=160)}
    return checkpoint, video


def lgi_former_checkpoint(width: int = 64) -> dict:
    """MAE-DFER's LGI-Former encoder keys (region tokens, three attention stages per block)."""
    encoder = {"patch_embed.proj.weight": _randn(width, 3, 2, 16, 16), "patch_embed.proj.bias": torch.zeros(width),
               "lg_region_tokens": _randn(20, width), "norm.weight": torch.ones(width), "norm.bias": torch.zeros(width)}
    for stage in ("first_attn", "second_attn", "third_attn"):
        encoder[f"blocks.0.{stage}_norm0.weight"] = torch.ones(width)
        encoder[f"blocks.0.{stage}.q.weight"] = _randn(width, width)
        encoder[f"blocks.0.{stage}.kv.weight"] = _randn(2 * width, width)
        encoder[f"blocks.0.{stage}.q_bias"] = torch.zeros(width)
        encoder[f"blocks.0.{stage}.proj.weight"] = _randn(width, width)
    encoder["blocks.0.mlp.fc1.weight"] = _randn(4 * width, width)
    return {"model": {**_prefixed("encoder.", encoder), **mae_decoder_tensors(width)}}


# ------------------------------------------------------------------------------------------------
# Helpers
# ------------------------------------------------------------------------------------------------
def _convert(tmp_path, checkpoint: dict, *flags: str) -> tuple[dict, VideoMAEModel]:
    torch.save(checkpoint, tmp_path / "checkpoint.pth")
    report = convert_main(["--checkpoint", str(tmp_path / "checkpoint.pth"), "--output_dir", str(tmp_path / "hf"),
                           *flags])
    model, info = VideoMAEModel.from_pretrained(str(tmp_path / "hf"), output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
    return report, model.eval()


def _assert_same_outputs(model: VideoMAEModel, original: dict, num_heads: int) -> None:
    config = model.config
    pixel_values = torch.randn(2, config.num_frames, 3, config.image_size, config.image_size)
    with torch.no_grad():
        expected = original_forward(original, pixel_values, num_heads)
        torch.testing.assert_close(model(pixel_values).last_hidden_state, expected, rtol=1e-4, atol=1e-4)


# ------------------------------------------------------------------------------------------------
# Layouts
# ------------------------------------------------------------------------------------------------
def test_hicmae_video_branch_matches_the_original_forward_and_skips_audio_fusion_and_decoders(tmp_path):
    torch.manual_seed(0)
    checkpoint, video = hicmae_checkpoint()
    report, model = _convert(tmp_path, checkpoint, "--num_frames", "4")

    config = model.config
    assert report["layout"] == "hicmae" and report["encoder_prefix"] == "encoder."
    assert (config.image_size, config.patch_size, config.tubelet_size) == (160, 16, 2)  # HiCMAE's 160 px default
    assert (config.hidden_size, config.num_hidden_layers, config.num_attention_heads) == (64, 2, 8)
    assert config.intermediate_size == 256 and config.layer_norm_eps == 1e-6
    assert config.use_mean_pooling is False and config.qv_bias is True  # `norm` -> layernorm
    assert set(report["skipped"]) == {"HiCMAE audio encoder", "HiCMAE audio-visual fusion encoder", "MAE decoder",
                                      "MAE encoder-to-decoder projection", "MAE mask token"}
    assert "decoder_audio.head.weight" in report["skipped"]["MAE decoder"]
    assert report["unused_keys"] == [] and report["missing_keys"] == []
    assert any("published HiCMAE" in note for note in report["notes"])  # 64 wide, not the released 512
    assert json.loads((tmp_path / "hf" / "conversion_report.json").read_text())["layout"] == "hicmae"
    _assert_same_outputs(model, video, num_heads=8)


def test_s4d_vit_b_layout_needs_heads_that_divide_the_width_and_matches_the_original(tmp_path):
    torch.manual_seed(1)
    encoder = vit_tensors(40, 2, 80)
    checkpoint = {"model": {**_prefixed("encoder.", encoder), **mae_decoder_tensors(40)}}
    torch.save(checkpoint, tmp_path / "s4d.pt")
    with pytest.raises(ValueError, match="not divisible by 12 heads.*--num_attention_heads"):  # S4D's ViT-B default
        convert_main(["--checkpoint", str(tmp_path / "s4d.pt"), "--output_dir", str(tmp_path / "x"), "--layout", "s4d"])

    report, model = _convert(tmp_path, checkpoint, "--layout", "s4d", "--num_attention_heads", "4", "--num_frames", "2")
    assert report["layout"] == "s4d" and model.config.image_size == 160 and model.config.num_attention_heads == 4
    assert set(report["skipped"]) == {"MAE decoder", "MAE encoder-to-decoder projection", "MAE mask token"}
    _assert_same_outputs(model, encoder, num_heads=4)


def test_wrapped_fine_tuned_checkpoint_with_fused_qkv_bias_and_layer_scale_matches_the_original(tmp_path):
    """module/DDP/backbone wrapping, mean pooling (fc_norm + head), timm's fused qkv bias, layer scale."""
    torch.manual_seed(2)
    encoder = vit_tensors(32, 2, 64, qkv_bias="fused", final_norm=False, layer_scale=True)
    classifier = {"fc_norm.weight": torch.ones(32), "fc_norm.bias": torch.zeros(32),
                  "head.weight": _randn(7, 32), "head.bias": torch.zeros(7)}
    checkpoint = {"module": _prefixed("module.backbone.", {**encoder, **classifier}), "epoch": 3}
    report, model = _convert(tmp_path, checkpoint, "--num_frames", "4", "--image_size", "32",
                             "--num_attention_heads", "4")  # width 32 is no usual ViT width: heads are a flag

    assert report["encoder_prefix"] == "backbone." and report["layout"] == "videomae"
    assert model.config.use_mean_pooling is True and model.layernorm is None
    assert report["skipped"] == {"classification head (fc_norm, head)": sorted(classifier)}
    assert len(report["folded"]) == 4 and any("key bias dropped" in note for note in report["notes"])
    _assert_same_outputs(model, encoder, num_heads=4)


def test_state_dict_wrapper_with_a_stored_sinusoid_table_gives_the_input_size(tmp_path):
    torch.manual_seed(3)
    encoder = vit_tensors(24, 1, 48, patch=8)
    encoder["pos_embed"] = original_sinusoid_table(2 * 6 * 6, 24)  # 4 frames / tubelet 2, 48 / 8 = 6
    _, model = _convert(tmp_path, {"state_dict": encoder}, "--num_frames", "4", "--num_attention_heads", "3")
    assert model.config.image_size == 48 and model.config.patch_size == 8
    _assert_same_outputs(model, encoder, num_heads=3)

    encoder["pos_embed"] = torch.randn(1, 72, 24)  # learned positions: VideoMAEModel cannot hold them
    torch.save({"state_dict": encoder}, tmp_path / "learned.pth")
    with pytest.raises(ValueError, match="not VideoMAE's fixed sinusoid table"):
        convert_main(["--checkpoint", str(tmp_path / "learned.pth"), "--output_dir", str(tmp_path / "learned"),
                      "--num_frames", "4", "--num_attention_heads", "3"])


def test_unknown_keys_stop_the_conversion_unless_allowed_and_are_reported(tmp_path):
    torch.manual_seed(4)
    encoder = vit_tensors(32, 1, 64)
    checkpoint = {"model": {**_prefixed("encoder.", encoder), "encoder.blocks.0.attn.rel_pos_bias": torch.zeros(3),
                            "teacher.proj.weight": torch.zeros(2, 2)}}
    torch.save(checkpoint, tmp_path / "odd.pth")
    args = ["--checkpoint", str(tmp_path / "odd.pth"), "--num_frames", "2", "--image_size", "32",
            "--num_attention_heads", "4"]
    with pytest.raises(ValueError, match=r"2 keys belong neither.*rel_pos_bias.*teacher\.proj\.weight.*--allow_unused"):
        convert_main(args + ["--output_dir", str(tmp_path / "refused")])
    assert not (tmp_path / "refused" / "config.json").exists()

    report = convert_main(args + ["--output_dir", str(tmp_path / "allowed"), "--allow_unused"])
    assert report["unused_keys"] == ["blocks.0.attn.rel_pos_bias", "teacher.proj.weight"]


def test_mae_dfer_lgi_former_is_refused_as_not_a_plain_vit(tmp_path):
    torch.save(lgi_former_checkpoint(), tmp_path / "mae_dfer.pth")
    with pytest.raises(LGIFormerCheckpointError, match=r"LGI-Former.*region tokens.*three attention stages.*"
                                                       r"VideoMAEModel cannot represent it"):
        convert_main(["--checkpoint", str(tmp_path / "mae_dfer.pth"), "--output_dir", str(tmp_path / "out")])
    assert not (tmp_path / "out" / "model.safetensors").exists()


def test_a_non_videomae_file_is_refused(tmp_path):
    torch.save({"model": {"conv1.weight": torch.zeros(1)}}, tmp_path / "resnet.pth")
    with pytest.raises(ValueError, match="not a VideoMAE / ViT checkpoint"):
        convert_main(["--checkpoint", str(tmp_path / "resnet.pth"), "--output_dir", str(tmp_path / "out")])


# ------------------------------------------------------------------------------------------------
# Into MTCAE-DFER
# ------------------------------------------------------------------------------------------------
def _hf_layout(model: VideoMAEModel, pretraining: bool) -> dict[str, torch.Tensor]:
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
    state = {k: v.detach().clone() for k, v in state.items()}
    if pretraining:
        return {"model": {**_prefixed("encoder.", state), **mae_decoder_tensors(model.config.hidden_size)}}
    return {"module": state}


@pytest.mark.parametrize("pretraining", [False, True])
def test_transformers_videomae_round_trips_through_the_original_layout_into_mtcae(tmp_path, pretraining):
    torch.manual_seed(0)
    reference = VideoMAEModel(VideoMAEConfig(
        **tiny_encoder_kwargs(use_mean_pooling=not pretraining), layer_norm_eps=1e-6)).eval()
    torch.save(_hf_layout(reference, pretraining), tmp_path / "original.pth")
    convert_main(["--checkpoint", str(tmp_path / "original.pth"), "--output_dir", str(tmp_path / "hf"),
                  "--num_frames", "4", "--image_size", "32", "--num_attention_heads", "4"])

    model = MTCAEForVideoClassification.from_videomae(str(tmp_path / "hf"), preset="tiny", num_labels=3).eval()
    assert model.encoder_loading_report["missing_keys"] == []
    assert model.config.encoder_config.use_mean_pooling is (not pretraining)
    pixel_values = torch.randn(2, 4, 3, 32, 32)
    torch.testing.assert_close(model.mtcae(pixel_values).encoder_last_hidden_state,
                               reference(pixel_values).last_hidden_state, rtol=1e-6, atol=1e-6)


def test_paper_preset_and_processor_follow_a_converted_160px_encoder(tmp_path, clips_dir):
    """A HiCMAE-layout encoder at 160 px, 16 frames: 8 x 10 x 10 = 800 tokens, and a 160 px processor."""
    from hub_scripts.training.model import processor_for
    from processing.video_processing_mtcae import MTCAEVideoProcessor

    torch.manual_seed(5)
    checkpoint, video = hicmae_checkpoint(width=32, depth=1)
    _convert(tmp_path, checkpoint, "--num_frames", "16", "--num_attention_heads", "4")
    model = MTCAEForVideoClassification.from_videomae(str(tmp_path / "hf"), preset="paper", num_labels=7).eval()
    assert model.encoder_loading_report["missing_keys"] == []
    assert model.config.num_tokens == 800 and model.config.image_size == (160, 160)
    assert model.mtcae.encoder_is_frozen  # the paper preset's frozen encoder

    processor = processor_for(model.config, "full_frame")
    processor.save_pretrained(tmp_path / "processor")
    reloaded = MTCAEVideoProcessor.from_pretrained(tmp_path / "processor")
    assert reloaded.size.height == 160 and reloaded.size.width == 160
    pixel_values = reloaded(str(clips_dir / "single_face.mp4"), return_tensors="pt")["pixel_values"]
    assert tuple(pixel_values.shape) == (1, 16, 3, 160, 160)
    with torch.no_grad():
        tokens = model.mtcae.forward_encoder(pixel_values)[0]
        torch.testing.assert_close(tokens, original_forward(video, pixel_values, num_heads=4), rtol=1e-4, atol=1e-4)
