"""The frozen-encoder feature cache: the encoder run once per clip, its tokens trained on.

With a frozen encoder and deterministic inputs (no temporal jitter, no flip: the authors' notebook
trained so), every epoch feeds the encoder the same clip and gets the same tokens back; for the
``paper`` preset (ViT-L, 1,568 tokens) that forward costs far more than the trainable projection,
decoders and heads. This cache stores each clip's encoder tokens once, as bf16 (or fp16 / fp32)
safetensors files memory-mapped on read, and the training rows then carry ``encoder_outputs``
instead of ``pixel_values`` (``MTCAEForVideoClassification.forward(encoder_outputs=...)``).

Entries live in ``CACHE_DIR/features/<encoder digest>/<prepared entry>.safetensors``: the digest
covers the encoder's weights, config and the storage dtype, and the prepared entry's name covers
the video file, its face labels and the processor setting, so nothing stale is ever served.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

import torch

from .prepared_cache import default_cache_dir, entry_damage, write_safetensors_atomically
from .prepared_clips import ENTRY_COLUMN, PreparedClipTransform

logger = logging.getLogger(__name__)

STORAGE_DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}
FEATURE_COLUMN = "encoder_features"


def encoder_digest(model, dtype: str) -> str:
    """A digest of the encoder's weights and config plus the storage dtype."""
    encoder = model.base_model.encoder
    digest = hashlib.sha256(json.dumps(encoder.config.to_dict(), sort_keys=True, default=str).encode())
    digest.update(dtype.encode())
    for name, tensor in sorted(encoder.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().to(torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()[:24]


class EncoderFeatureCache:
    """Encoder tokens of prepared clips for one frozen encoder.

    Args:
        cache_dir: the prepared-clip cache folder (features go in its ``features/`` sub-folder).
        model: an ``MTCAEForVideoClassification`` (or ``MTCAEModel``) whose encoder is frozen.
        dtype: storage dtype, ``"bfloat16"`` (default), ``"float16"`` or ``"float32"``.
    """

    def __init__(self, cache_dir: str | os.PathLike | None, model, dtype: str = "bfloat16"):
        if dtype not in STORAGE_DTYPES:
            raise ValueError(f"dtype must be one of {sorted(STORAGE_DTYPES)}, got {dtype!r}")
        if not model.base_model.encoder_is_frozen:
            raise ValueError("the encoder feature cache needs a frozen encoder (freeze_encoder=True): a trained "
                             "encoder changes its tokens every step")
        self.model, self.dtype = model, dtype
        root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.folder = root / "features" / encoder_digest(model, dtype)

    def feature_path(self, entry_path: str) -> Path:
        return self.folder / Path(entry_path).name

    @torch.no_grad()
    def fill(self, dataset, inputs: PreparedClipTransform, batch_size: int = 8, progress: bool = True) -> int:
        """Encode every row of ``dataset`` (a prepared split) not cached yet; returns how many were encoded."""
        from tqdm.auto import tqdm

        entries = list(dict.fromkeys(dataset.with_format(None)[ENTRY_COLUMN]))
        todo = [entry for entry in entries if self._missing(entry)]
        self.folder.mkdir(parents=True, exist_ok=True)
        was_training = self.model.training
        self.model.eval()
        try:
            for start in tqdm(range(0, len(todo), batch_size), desc="encoding clips", unit="batch",
                              disable=not progress or not todo):
                chunk = todo[start:start + batch_size]
                pixel_values = torch.stack([inputs.clip(entry, None)["pixel_values"] for entry in chunk])
                pixel_values = pixel_values.to(self.model.device, self.model.dtype)
                tokens = self.model.base_model.encode(pixel_values).to(STORAGE_DTYPES[self.dtype]).cpu()
                for entry, clip_tokens in zip(chunk, tokens):
                    write_safetensors_atomically({"encoder_tokens": clip_tokens.contiguous()},
                                                 self.feature_path(entry))
        finally:
            self.model.train(was_training)
        return len(todo)

    def _missing(self, entry_path: str) -> bool:
        """Whether a clip's tokens must be encoded: absent, or unreadable (logged, then encoded again)."""
        path = self.feature_path(entry_path)
        damage = entry_damage(path, required=("encoder_tokens",)) if path.is_file() else "absent"
        if damage not in (None, "absent"):
            logger.warning("encoder feature cache entry %s cannot be read (%s): encoding it again", path, damage)
        return damage is not None

    def load(self, entry_path: str) -> torch.Tensor:
        from safetensors.torch import load_file

        return load_file(self.feature_path(entry_path))["encoder_tokens"]


class EncoderFeatureTransform:
    """A batch transform giving ``encoder_outputs`` (cached tokens) plus labels and face targets.

    Args:
        features: the filled :class:`EncoderFeatureCache`.
        inputs: the split's evaluation :class:`PreparedClipTransform` (for the face targets).
    """

    def __init__(self, features: EncoderFeatureCache, inputs: PreparedClipTransform):
        self.features, self.inputs = features, inputs

    def __call__(self, batch: dict[str, list[Any]]) -> dict[str, torch.Tensor]:
        entries = batch[ENTRY_COLUMN]
        result = {"encoder_outputs": torch.stack([self.features.load(e) for e in entries]),
                  "labels": torch.as_tensor(batch["label"], dtype=torch.long)}
        if self.inputs.face_targets:
            targets = [self.inputs.targets(entry) for entry in entries]
            if all(targets):
                for name in ("face_boxes", "face_landmarks", "face_mask"):
                    result[name] = torch.stack([t[name] for t in targets])
        return result


__all__ = ["EncoderFeatureCache", "EncoderFeatureTransform", "encoder_digest", "FEATURE_COLUMN"]
