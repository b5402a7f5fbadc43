"""Convert an original MCG-NJU VideoMAE ``.pth`` checkpoint into a transformers ``VideoMAEModel`` folder.

The original repository (and MAE-DFER / HiCMAE, which build on it) saves timm-style keys
(``blocks.N.attn.qkv.weight`` with separate ``q_bias``/``v_bias``); pre-training checkpoints put the
encoder under ``encoder.``. The folder this writes loads into MTCAE-DFER's encoder with
``model.load_encoder_weights(folder)`` or ``MTCAEForVideoClassification.from_videomae(folder)``.

Example:
    mtcae-convert-videomae --checkpoint mae_dfer_pretrained.pth --output_dir videomae-dfer --num_frames 16
"""

from __future__ import annotations

import argparse
import logging
import re
from pathlib import Path

import torch
from transformers import VideoMAEConfig, VideoMAEModel

logger = logging.getLogger("mtcae.convert")

# Heads per width of the standard ViT sizes (not recoverable from tensor shapes).
HEADS_BY_WIDTH = {384: 6, 768: 12, 1024: 16, 1280: 16}

# original key pattern -> transformers VideoMAEModel key (block index in group 1)
_BLOCK_KEYS = {
    r"norm1\.(weight|bias)": "layernorm_before.{}",
    r"norm2\.(weight|bias)": "layernorm_after.{}",
    r"attn\.proj\.(weight|bias)": "attention.output.dense.{}",
    r"mlp\.fc1\.(weight|bias)": "intermediate.dense.{}",
    r"mlp\.fc2\.(weight|bias)": "output.dense.{}",
}


def unwrap_checkpoint(checkpoint: dict) -> dict[str, torch.Tensor]:
    """The state dict inside a training checkpoint (``model`` / ``module`` / ``state_dict``), prefixes removed."""
    for key in ("model", "module", "state_dict"):
        if key in checkpoint and isinstance(checkpoint[key], dict):
            checkpoint = checkpoint[key]
            break
    state = {k[len("module."):] if k.startswith("module.") else k: v for k, v in checkpoint.items()}
    if any(k.startswith("encoder.blocks.") for k in state):  # pre-training layout
        state = {k[len("encoder."):]: v for k, v in state.items() if k.startswith("encoder.")}
    if "patch_embed.proj.weight" not in state:
        raise ValueError("not a VideoMAE checkpoint: no 'patch_embed.proj.weight' (or 'encoder.patch_embed...') key")
    return state


def infer_config(state: dict[str, torch.Tensor], num_frames: int, image_size: int,
                 num_attention_heads: int | None) -> VideoMAEConfig:
    hidden_size, channels, tubelet, patch, _ = state["patch_embed.proj.weight"].shape
    num_layers = 1 + max(int(m.group(1)) for k in state if (m := re.match(r"blocks\.(\d+)\.", k)))
    heads = num_attention_heads or HEADS_BY_WIDTH.get(hidden_size)
    if heads is None:
        raise ValueError(f"cannot guess the number of heads for width {hidden_size}; pass --num_attention_heads")
    return VideoMAEConfig(
        image_size=image_size,
        patch_size=patch,
        num_channels=channels,
        num_frames=num_frames,
        tubelet_size=tubelet,
        hidden_size=hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=heads,
        intermediate_size=state["blocks.0.mlp.fc1.weight"].shape[0],
        qv_bias="blocks.0.attn.q_bias" in state,
        # A final `norm` without `fc_norm` means the CLS-free "no mean pooling" variant.
        use_mean_pooling="norm.weight" not in state,
        layer_norm_eps=1e-6,  # the original code's LayerNorm eps
    )


def convert_state_dict(state: dict[str, torch.Tensor], config: VideoMAEConfig) -> tuple[dict, list[str]]:
    """Map original keys to transformers' ``VideoMAEModel`` keys; returns (converted, unused original keys)."""
    converted: dict[str, torch.Tensor] = {}
    unused: list[str] = []
    width = config.hidden_size
    for key, value in state.items():
        if key.startswith("patch_embed.proj."):
            converted["embeddings.patch_embeddings.projection." + key.rsplit(".", 1)[1]] = value
            continue
        if key in ("norm.weight", "norm.bias") and not config.use_mean_pooling:
            converted["layernorm." + key.rsplit(".", 1)[1]] = value
            continue
        block = re.match(r"blocks\.(\d+)\.(.+)", key)
        if block is None:
            unused.append(key)  # fc_norm, head, pos_embed (sinusoid, recomputed), MAE decoder, ...
            continue
        layer, rest = block.groups()
        prefix = f"encoder.layer.{layer}."
        if rest == "attn.qkv.weight":
            query, key_weight, value_weight = value.split(width, dim=0)
            converted[prefix + "attention.attention.query.weight"] = query
            converted[prefix + "attention.attention.key.weight"] = key_weight
            converted[prefix + "attention.attention.value.weight"] = value_weight
        elif rest == "attn.q_bias":
            converted[prefix + "attention.attention.query.bias"] = value
        elif rest == "attn.v_bias":
            converted[prefix + "attention.attention.value.bias"] = value
        else:
            for pattern, target in _BLOCK_KEYS.items():
                match = re.fullmatch(pattern, rest)
                if match:
                    converted[prefix + target.format(match.group(1))] = value
                    break
            else:
                unused.append(key)
    return converted, sorted(unused)


def convert_checkpoint(checkpoint_path: str | Path, output_dir: str | Path, num_frames: int = 16,
                       image_size: int = 224, num_attention_heads: int | None = None) -> dict:
    """Convert and save; returns a report with the missing and unused keys."""
    checkpoint = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
    state = unwrap_checkpoint(checkpoint)
    config = infer_config(state, num_frames, image_size, num_attention_heads)
    converted, unused = convert_state_dict(state, config)
    model = VideoMAEModel(config)
    result = model.load_state_dict(converted, strict=False)
    if result.unexpected_keys:
        raise RuntimeError(f"conversion produced keys VideoMAEModel does not have: {result.unexpected_keys}")
    model.save_pretrained(output_dir)
    report = {"missing_keys": sorted(result.missing_keys), "unused_keys": unused, "config": config.to_diff_dict()}
    if report["missing_keys"]:
        logger.warning("Encoder weights missing from %s (left at init): %s", checkpoint_path, report["missing_keys"])
    if unused:
        logger.info("Checkpoint keys not part of the encoder (dropped): %s", unused)
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="original VideoMAE / MAE-DFER .pth file")
    parser.add_argument("--output_dir", required=True, help="where to write the transformers VideoMAEModel folder")
    parser.add_argument("--num_frames", type=int, default=16)
    parser.add_argument("--image_size", type=int, default=224)
    parser.add_argument("--num_attention_heads", type=int, default=None,
                        help="heads per layer (guessed from the width for ViT-S/B/L/H)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    report = convert_checkpoint(args.checkpoint, args.output_dir, args.num_frames, args.image_size,
                                args.num_attention_heads)
    print(f"Wrote {args.output_dir}: {len(report['missing_keys'])} missing encoder keys, "
          f"{len(report['unused_keys'])} checkpoint keys not used by the encoder.")


if __name__ == "__main__":
    main()
