"""Converting a plain-ViT video checkpoint (VideoMAE's original ``.pth`` layout) into a transformers
``VideoMAEModel`` folder that MTCAE-DFER's encoder loads.

Supported layouts (``--layout``; ``auto`` tells HiCMAE and the LGI-Former apart from the key names):

- ``hicmae``: HiCMAE (audio-visual MAE), ``{'model': ...}``, the video branch under ``encoder.``; published sizes:
  width 512, 10 layers, 8 heads, MLP 2048, patch 16, tubelet 2, final LayerNorm; input 16 frames x 160 x 160
  (800 tokens).
- ``s4d``: S4D / UniLearn ``vit_base_voxceleb2+affectnet_100.pt``, ``{'model': ...}``, ``encoder.``; ViT-B: width
  768, 12 layers, 12 heads, MLP 3072, patch 16, tubelet 2, final LayerNorm; input 16 frames x 160 x 160 (800 tokens).
- ``videomae``: MCG-NJU VideoMAE pre-training (``encoder.``) or fine-tuning (no prefix, ``fc_norm`` + ``head``)
  files and other wrappers; sizes read from the tensors, heads by width (ViT-S 6, 512: 8, B 12, L 16, H 16); input
  224 px unless ``--image_size``.

Wrappers: the state dict may sit under ``model`` / ``module`` / ``state_dict`` (nested too); keys may carry
``module.`` (DDP) and the encoder ``encoder.`` or ``backbone.``. Conversion (after the prefix): ``patch_embed.proj``
-> ``embeddings.patch_embeddings.projection``; ``blocks.i.norm1`` / ``norm2`` -> ``encoder.layer.i.layernorm_before``
/ ``layernorm_after``; the fused ``attn.qkv.weight`` is split by rows into ``attention.attention.query`` / ``key`` /
``value``; ``attn.q_bias`` / ``attn.v_bias`` become the query / value biases (VideoMAE's key has no bias); a fused
``attn.qkv.bias`` is split the same way, its key third dropped (a key bias adds the same amount to every score of a
query, which softmax ignores); ``attn.proj`` -> ``attention.output.dense``; ``mlp.fc1`` / ``fc2`` ->
``intermediate.dense`` / ``output.dense``; layer-scale ``gamma_1`` / ``gamma_2`` are folded into ``attn.proj`` /
``mlp.fc2``; ``norm`` -> ``layernorm`` (``use_mean_pooling=False``). A checkpoint with ``fc_norm`` and no ``norm`` is
the mean-pooling variant (``use_mean_pooling=True``); ``fc_norm`` and ``head`` belong to the classifier, not to the
encoder's tokens, and are reported as skipped. Positions are VideoMAE's fixed sinusoid table in all of these; a stored
``pos_embed`` gives the input size and must equal that table. LayerNorm eps is 1e-6 (the original code's).

Sizes (width, layers, MLP, patch, tubelet, channels) are read from the tensors and checked; the number of heads is
not in the shapes (``--num_attention_heads``, per-layout default); the image size comes from a stored ``pos_embed``,
else ``--image_size`` (per-layout default). Skipped groups (HiCMAE's ``encoder_audio.*`` / ``encoder_fusion.*``,
MAE ``decoder*`` / ``encoder_to_decoder*`` / ``mask_token*``, classifier heads) are reported by name; any other key
stops the conversion unless ``--allow_unused``. The report is printed and saved as ``conversion_report.json``.

MAE-DFER's encoder is refused: it is an LGI-Former (``lg_region_tokens`` plus ``first_attn`` / ``second_attn`` /
``third_attn`` stages per block), not a plain ViT, and VideoMAEModel cannot represent it.

Command line: ``mtcae-convert-videomae`` (:mod:`hub_scripts.convert_videomae_checkpoint`).
"""

from __future__ import annotations

import argparse
import logging
import pickle
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from transformers import VideoMAEConfig, VideoMAEModel

from processing.files import write_json

logger = logging.getLogger("mtcae.convert")

# Heads per width of the usual ViT sizes (not recoverable from tensor shapes).
HEADS_BY_WIDTH = {384: 6, 512: 8, 768: 12, 1024: 16, 1280: 16}
LAYER_NORM_EPS = 1e-6  # partial(nn.LayerNorm, eps=1e-6) in VideoMAE, HiCMAE, S4D


@dataclass(frozen=True)
class Layout:
    """A published checkpoint layout: its defaults for what the tensors do not say, and its published sizes."""

    name: str
    description: str
    num_attention_heads: int | None  # None: by width (HEADS_BY_WIDTH)
    image_size: int
    published: dict = field(default_factory=dict)  # sizes of the released weights (for a note, not a check)


LAYOUTS = {
    "hicmae": Layout("hicmae", "HiCMAE video encoder", 8, 160, {
        "hidden_size": 512, "num_hidden_layers": 10, "intermediate_size": 2048, "patch_size": 16, "tubelet_size": 2}),
    "s4d": Layout("s4d", "S4D / UniLearn ViT-B/16", 12, 160, {
        "hidden_size": 768, "num_hidden_layers": 12, "intermediate_size": 3072, "patch_size": 16, "tubelet_size": 2}),
    "videomae": Layout("videomae", "VideoMAE-style ViT", None, 224),
}

ENCODER_PREFIXES = ("encoder.", "backbone.", "")
WRAPPER_KEYS = ("model", "module", "state_dict")
# Checkpoint parts that are not the video encoder: group name -> key prefixes (outside the encoder prefix).
SKIPPED_GROUPS = {
    "HiCMAE audio encoder": ("encoder_audio.",),
    "HiCMAE audio-visual fusion encoder": ("encoder_fusion.",),
    "MAE decoder": ("decoder",),
    "MAE encoder-to-decoder projection": ("encoder_to_decoder",),
    "MAE mask token": ("mask_token",),
    "MAE decoder position table": ("pos_embed",),
}
# Inside the encoder prefix: the classifier on the pooled tokens (VideoMAEForVideoClassification's part).
ENCODER_SKIPPED_GROUPS = {"classification head (fc_norm, head)": ("fc_norm.", "head.")}
LGI_FORMER_KEY = re.compile(r"(^|\.)(lg_region_tokens|blocks\.\d+\.(first|second|third)_attn)")

_BLOCK_RENAMES = {
    "norm1": "layernorm_before",
    "norm2": "layernorm_after",
    "attn.proj": "attention.output.dense",
    "mlp.fc1": "intermediate.dense",
    "mlp.fc2": "output.dense",
}
_LAYER_SCALE = {"attn.proj": "gamma_1", "mlp.fc2": "gamma_2"}


class LGIFormerCheckpointError(ValueError):
    """MAE-DFER's LGI-Former is not a plain ViT and cannot be converted to VideoMAEModel."""


# ------------------------------------------------------------------------------------------------
# Reading the checkpoint
# ------------------------------------------------------------------------------------------------
def unwrap_checkpoint(checkpoint: dict) -> dict[str, torch.Tensor]:
    """The tensors of a training checkpoint: descends ``model`` / ``module`` / ``state_dict``, strips ``module.``."""
    while isinstance(checkpoint, dict) and not _is_state_dict(checkpoint):
        inner = next((checkpoint[k] for k in WRAPPER_KEYS if isinstance(checkpoint.get(k), dict)), None)
        if inner is None:
            raise ValueError(f"no state dict found: top-level keys {sorted(checkpoint)[:10]} hold no tensors and none "
                             f"of {WRAPPER_KEYS}")
        checkpoint = inner
    return {k.removeprefix("module."): v for k, v in checkpoint.items()}


def load_checkpoint(path: str | Path) -> dict:
    """``torch.load`` with ``weights_only=True`` (no code runs); allows the ``argparse.Namespace`` of training args."""
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise ValueError(f"{path} holds pickled objects other than tensors and training arguments, which are not "
                         f"loaded (it could run code): {str(error).splitlines()[0]}. Save its state dict alone from "
                         "a trusted copy and convert that.") from error


def _is_state_dict(mapping: dict) -> bool:
    return bool(mapping) and all(isinstance(v, torch.Tensor) for v in mapping.values())


def detect_layout(state: dict[str, torch.Tensor]) -> str:
    """``hicmae`` or ``videomae`` from the key names; raises for MAE-DFER's LGI-Former."""
    lgi_keys = [k for k in state if LGI_FORMER_KEY.search(k)]
    if lgi_keys:
        raise LGIFormerCheckpointError(
            f"This is MAE-DFER's LGI-Former (keys such as {lgi_keys[:3]}): an encoder with local region tokens "
            "(lg_region_tokens) and three attention stages per block (first_attn: local intra-region, second_attn: "
            "global inter-region on the region tokens, third_attn: local-global interaction), not a plain ViT. "
            "transformers' VideoMAEModel cannot represent it, so it is not converted (loading only the keys that "
            "look alike would build a different, wrong network).")
    if any(k.startswith(("encoder_audio.", "encoder_fusion.")) for k in state):
        return "hicmae"
    return "videomae"


def split_encoder(state: dict[str, torch.Tensor]) -> tuple[str, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(prefix, encoder tensors without the prefix, the other tensors)."""
    for prefix in ENCODER_PREFIXES:
        if f"{prefix}patch_embed.proj.weight" in state:
            encoder = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
            rest = {k: v for k, v in state.items() if not k.startswith(prefix)}
            return prefix, encoder, rest
    raise ValueError("not a VideoMAE / ViT checkpoint: no 'patch_embed.proj.weight' key (also looked under "
                     f"'encoder.' and 'backbone.'); first keys: {sorted(state)[:8]}")


def group_keys(keys, groups: dict[str, tuple[str, ...]]) -> tuple[dict[str, list[str]], list[str]]:
    """Sort keys into the named groups by prefix; returns (groups found, keys in no group)."""
    found: dict[str, list[str]] = {}
    rest = []
    for key in sorted(keys):
        name = next((g for g, prefixes in groups.items() if key.startswith(prefixes)), None)
        if name is None:
            rest.append(key)
        else:
            found.setdefault(name, []).append(key)
    return found, rest


# ------------------------------------------------------------------------------------------------
# Sizes
# ------------------------------------------------------------------------------------------------
def sinusoid_table(num_positions: int, width: int) -> torch.Tensor:
    """VideoMAE's fixed position table (1, N, D): sin on even, cos on odd channels, 10000^(2i/D)."""
    exponent = 2 * (np.arange(width) // 2) / width
    angles = np.arange(num_positions)[:, None] / np.power(10000, exponent)[None, :]
    angles[:, 0::2], angles[:, 1::2] = np.sin(angles[:, 0::2]), np.cos(angles[:, 1::2])
    return torch.tensor(angles, dtype=torch.float32).unsqueeze(0)


def image_size_from_positions(pos_embed: torch.Tensor, num_frames: int, tubelet: int, patch: int) -> int:
    """The square input size whose token grid has as many positions as the stored table; checks it is the sinusoid."""
    num_positions, width = pos_embed.shape[-2:]
    per_frame = num_positions / (num_frames // tubelet)
    side = round(per_frame ** 0.5)
    if side * side * (num_frames // tubelet) != num_positions:
        raise ValueError(f"pos_embed has {num_positions} positions, which is not {num_frames // tubelet} time steps "
                         f"x a square grid: check --num_frames ({num_frames})")
    if not torch.allclose(pos_embed.reshape(1, num_positions, width).float(), sinusoid_table(num_positions, width),
                          atol=1e-4):
        raise ValueError("pos_embed is not VideoMAE's fixed sinusoid table (learned positions?): VideoMAEModel "
                         "recomputes the sinusoid table and cannot hold learned position embeddings")
    return side * patch


def infer_config(encoder: dict[str, torch.Tensor], layout: Layout, num_frames: int, image_size: int | None,
                 num_attention_heads: int | None) -> VideoMAEConfig:
    """VideoMAEConfig from the tensors (width, depth, MLP, patch, tubelet, biases, pooling) and the flags."""
    hidden_size, channels, tubelet, patch_h, patch_w = encoder["patch_embed.proj.weight"].shape
    if patch_h != patch_w:
        raise ValueError(f"patch_embed.proj has a {patch_h}x{patch_w} kernel; VideoMAEModel needs square patches")
    layers = sorted({int(m.group(1)) for k in encoder if (m := re.match(r"blocks\.(\d+)\.", k))})
    if not layers or layers != list(range(len(layers))):
        raise ValueError(f"transformer blocks must be numbered 0..N-1, found {layers[:5]}...{layers[-3:]}")
    qkv_rows = encoder["blocks.0.attn.qkv.weight"].shape[0] if "blocks.0.attn.qkv.weight" in encoder else None
    if qkv_rows != 3 * hidden_size:
        raise ValueError(f"blocks.0.attn.qkv.weight must have 3 x {hidden_size} rows (fused query/key/value of the "
                         f"width), found {qkv_rows}")
    heads = num_attention_heads or layout.num_attention_heads or HEADS_BY_WIDTH.get(hidden_size)
    if heads is None:
        raise ValueError(f"the number of heads is not stored in the tensors and width {hidden_size} is not a usual "
                         "ViT width: pass --num_attention_heads")
    if hidden_size % heads:
        raise ValueError(f"width {hidden_size} is not divisible by {heads} heads: pass --num_attention_heads")
    if num_frames % tubelet:
        raise ValueError(f"--num_frames {num_frames} is not a multiple of the checkpoint's tubelet size {tubelet}")
    if "pos_embed" in encoder:
        stored = image_size_from_positions(encoder["pos_embed"], num_frames, tubelet, patch_h)
        if image_size is not None and image_size != stored:
            raise ValueError(f"--image_size {image_size} disagrees with the stored pos_embed ({stored} px)")
        image_size = stored
    image_size = image_size or layout.image_size
    if image_size % patch_h:
        raise ValueError(f"image size {image_size} is not a multiple of the patch size {patch_h}")
    return VideoMAEConfig(
        image_size=image_size, patch_size=patch_h, num_channels=channels, num_frames=num_frames, tubelet_size=tubelet,
        hidden_size=hidden_size, num_hidden_layers=len(layers), num_attention_heads=heads,
        intermediate_size=encoder["blocks.0.mlp.fc1.weight"].shape[0],
        qv_bias="blocks.0.attn.q_bias" in encoder or "blocks.0.attn.qkv.bias" in encoder,
        use_mean_pooling="norm.weight" not in encoder,  # no final norm: the mean-pooling (fc_norm) variant
        layer_norm_eps=LAYER_NORM_EPS,
    )


# ------------------------------------------------------------------------------------------------
# Renaming
# ------------------------------------------------------------------------------------------------
def convert_block(index: int, block: dict[str, torch.Tensor], report: dict) -> dict[str, torch.Tensor]:
    """One transformer block's tensors (keys without ``blocks.i.``) in VideoMAELayer names."""
    prefix = f"encoder.layer.{index}."
    attention = prefix + "attention.attention."
    out: dict[str, torch.Tensor] = {}
    used = set()
    if "attn.qkv.weight" in block:
        for name, part in zip(("query", "key", "value"), block["attn.qkv.weight"].chunk(3, dim=0)):
            out[f"{attention}{name}.weight"] = part
        used.add("attn.qkv.weight")
    if "attn.qkv.bias" in block:
        query_bias, key_bias, value_bias = block["attn.qkv.bias"].chunk(3)
        out[attention + "query.bias"], out[attention + "value.bias"] = query_bias, value_bias
        if key_bias.abs().max() > 0:
            report["notes"].append(f"blocks.{index}.attn.qkv.bias: key bias dropped (softmax ignores it)")
        used.add("attn.qkv.bias")
    for original, target in (("attn.q_bias", "query.bias"), ("attn.v_bias", "value.bias")):
        if original in block:
            out[attention + target] = block[original]
            used.add(original)
    for original, target in _BLOCK_RENAMES.items():
        for kind in ("weight", "bias"):
            if f"{original}.{kind}" in block:
                out[f"{prefix}{target}.{kind}"] = block[f"{original}.{kind}"]
                used.add(f"{original}.{kind}")
    for module, gamma in _LAYER_SCALE.items():  # y = gamma * (W x + b) = (gamma W) x + gamma b
        if gamma in block:
            target = prefix + _BLOCK_RENAMES[module]
            out[f"{target}.weight"] = block[gamma][:, None] * out[f"{target}.weight"]
            out[f"{target}.bias"] = block[gamma] * out[f"{target}.bias"]
            report["folded"].append(f"blocks.{index}.{gamma} -> {_BLOCK_RENAMES[module]}")
            used.add(gamma)
    report["unused_keys"] += [f"blocks.{index}.{k}" for k in sorted(set(block) - used)]
    return out


def convert_encoder(encoder: dict[str, torch.Tensor], config: VideoMAEConfig, report: dict) -> dict[str, torch.Tensor]:
    """All encoder tensors (prefix removed) in VideoMAEModel names; what is not converted lands in ``report``."""
    converted: dict[str, torch.Tensor] = {}
    blocks: dict[int, dict[str, torch.Tensor]] = {}
    rest = []
    for key, value in encoder.items():
        if key.startswith("patch_embed.proj."):
            converted["embeddings.patch_embeddings.projection." + key.rsplit(".", 1)[1]] = value
        elif key in ("norm.weight", "norm.bias") and not config.use_mean_pooling:
            converted["layernorm." + key.rsplit(".", 1)[1]] = value
        elif key == "pos_embed":
            continue  # checked against the sinusoid table by infer_config
        elif match := re.match(r"blocks\.(\d+)\.(.+)", key):
            blocks.setdefault(int(match.group(1)), {})[match.group(2)] = value
        else:
            rest.append(key)
    for index in sorted(blocks):
        converted.update(convert_block(index, blocks[index], report))
    skipped, unknown = group_keys(rest, ENCODER_SKIPPED_GROUPS)
    report["skipped"].update(skipped)
    report["unused_keys"] += unknown
    return converted


def convert_state_dict(state: dict[str, torch.Tensor], num_frames: int = 16, image_size: int | None = None,
                       num_attention_heads: int | None = None, layout: str = "auto",
                       ) -> tuple[VideoMAEConfig, dict[str, torch.Tensor], dict]:
    """An unwrapped checkpoint -> (VideoMAEConfig, VideoMAEModel state dict, report).

    The report holds ``layout``, ``encoder_prefix``, ``skipped`` (group -> keys), ``unused_keys`` (keys of no
    known group: refused by :func:`convert_checkpoint` unless ``allow_unused``), ``folded`` (layer scales),
    ``notes`` and ``published_sizes`` (the layout's released sizes, where these differ).
    """
    detected = detect_layout(state)
    name = detected if layout == "auto" else layout
    if name not in LAYOUTS:
        raise ValueError(f"--layout {layout!r} is not one of auto, {', '.join(LAYOUTS)}")
    prefix, encoder, others = split_encoder(state)
    report = {"layout": name, "encoder_prefix": prefix, "skipped": {}, "unused_keys": [], "folded": [], "notes": []}
    skipped, unknown = group_keys(others, SKIPPED_GROUPS)
    report["skipped"].update(skipped)
    report["unused_keys"] += unknown
    config = infer_config(encoder, LAYOUTS[name], num_frames, image_size, num_attention_heads)
    converted = convert_encoder(encoder, config, report)
    report["unused_keys"] = sorted(report["unused_keys"])
    published = {k: v for k, v in LAYOUTS[name].published.items() if getattr(config, k) != v}
    if published:
        report["notes"].append(f"sizes differ from the published {LAYOUTS[name].description}: "
                               + ", ".join(f"{k} {getattr(config, k)} (published {v})" for k, v in published.items()))
    return config, converted, report


def build_encoder(config: VideoMAEConfig, converted: dict[str, torch.Tensor]) -> VideoMAEModel:
    """A VideoMAEModel holding exactly ``converted``; raises on any shape mismatch, missing or extra tensor."""
    model = VideoMAEModel(config)
    own = model.state_dict()
    wrong = [f"{k} {tuple(v.shape)} vs {tuple(own[k].shape)}" for k, v in converted.items()
             if k in own and own[k].shape != v.shape]
    if wrong:
        raise ValueError("tensors whose shape does not fit the inferred sizes: " + "; ".join(wrong[:10]))
    result = model.load_state_dict(converted, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise ValueError(f"the converted encoder is incomplete: missing {sorted(result.missing_keys)}, "
                         f"not in VideoMAEModel {sorted(result.unexpected_keys)}")
    return model


def convert_checkpoint(checkpoint_path: str | Path, output_dir: str | Path, num_frames: int = 16,
                       image_size: int | None = None, num_attention_heads: int | None = None, layout: str = "auto",
                       allow_unused: bool = False) -> dict:
    """Convert, check and save (``save_pretrained`` + ``conversion_report.json``); returns the report."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)  # fails early when the folder cannot be written
    checkpoint = load_checkpoint(checkpoint_path)
    config, converted, report = convert_state_dict(unwrap_checkpoint(checkpoint), num_frames, image_size,
                                                   num_attention_heads, layout)
    if report["unused_keys"] and not allow_unused:
        raise ValueError(f"{checkpoint_path}: {len(report['unused_keys'])} keys belong neither to the encoder nor to "
                         f"a known skipped group: {report['unused_keys'][:20]}. Pass --allow_unused to convert anyway.")
    build_encoder(config, converted).save_pretrained(output_dir)
    report["config"] = {k: getattr(config, k) for k in (
        "image_size", "patch_size", "num_frames", "tubelet_size", "hidden_size", "num_hidden_layers",
        "num_attention_heads", "intermediate_size", "qv_bias", "use_mean_pooling", "layer_norm_eps")}
    report["missing_keys"] = []  # build_encoder refuses an incomplete encoder
    write_json(output_dir / "conversion_report.json", report, indent=2)
    return report


def format_report(report: dict, output_dir: str) -> str:
    config = report["config"]
    lines = [(f"Wrote {output_dir}: {report['layout']} layout (encoder prefix {report['encoder_prefix']!r}), "
              f"{config['hidden_size']} wide, {config['num_hidden_layers']} layers, {config['num_attention_heads']} "
              f"heads, {config['num_frames']} x {config['image_size']} x {config['image_size']} input, "
              f"use_mean_pooling={config['use_mean_pooling']}; no encoder weight missing.")]
    for group, keys in report["skipped"].items():
        lines.append(f"  skipped {group}: {len(keys)} tensors (e.g. {', '.join(keys[:2])})")
    lines += [f"  folded {item}" for item in report["folded"][:4]]
    lines += [f"  note: {note}" for note in report["notes"]]
    lines += [f"  NOT USED: {key}" for key in report["unused_keys"]]
    return "\n".join(lines)
