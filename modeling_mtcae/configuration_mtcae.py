"""MTCAE-DFER configuration.

The numbers of the ``paper`` preset (arXiv 2412.18988) were read cell by cell from the authors' public
notebook: a frozen VideoMAE ViT-L/16 encoder, a shared 1024 -> 256 projection and three cascaded
cross-attention decoders (face detection -> face landmarks -> expression).

This file is copied next to the weights by ``save_pretrained`` (Hub remote code), so it may only
import third-party packages.
"""

from __future__ import annotations

import copy
from typing import Any, ClassVar

from transformers import PreTrainedConfig, VideoMAEConfig

TASKS = ("face_detection", "face_landmark", "expression")
DECODER_MODE_DESCRIPTIONS = {
    "cascaded": ("cascaded MTL (MTCAE-DFER)",
                 "cascaded ({tasks}; each decoder is queried by the previous decoder's output)"),
    "parallel": ("non-fully-shared MTL (parallel decoders)",
                 "parallel (non-fully-shared multi-task: every decoder is queried by the projected encoder tokens)"),
    "fully_shared": ("fully-shared MTL",
                     "fully shared (one shared decoder, then the three task decoders on its output)"),
    "single_task": ("single-task (expression decoder only)",
                    "single task (the expression decoder only, no face heads)"),
}
"""The paper's four frameworks: ``decoder_mode`` -> (its name in the paper's ablation, its wiring)."""
DECODER_MODES = tuple(DECODER_MODE_DESCRIPTIONS)
PROJECTION_MODES = ("shared", "per_task")

# Encoder sizes of the presets. All use the mean-pooling VideoMAE variant (no final LayerNorm).
_VIDEOMAE_LARGE = dict(
    hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096, use_mean_pooling=True
)
_VIDEOMAE_BASE = dict(
    hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072, use_mean_pooling=True
)
# 56 px with 8 px patches: the same 392 tokens as 112 px / 16 px, but tubelets of 384 values instead of
# 1536, which a from-scratch encoder learns from far fewer clips (measured in the README).
_VIDEOMAE_TINY = dict(
    image_size=56,
    patch_size=8,
    hidden_size=96,
    num_hidden_layers=3,
    num_attention_heads=3,
    intermediate_size=192,
    use_mean_pooling=True,
)

PRESETS: dict[str, dict[str, Any]] = {
    # The notebook's model exactly: 9,800,935 trainable / 313,659,623 total parameters with 7 classes.
    "paper": dict(encoder_config=_VIDEOMAE_LARGE, freeze_encoder=True),
    # The paper's figure: LayerNorm + one 1024 -> 512 projection per task.
    "paper_figure": dict(
        encoder_config=_VIDEOMAE_LARGE,
        freeze_encoder=True,
        projection_mode="per_task",
        projection_norm=True,
        projection_dim=512,
        decoder_hidden_size=512,
        decoder_head_dim=512,
        decoder_intermediate_size=1024,
    ),
    # ViT-B/16 encoder (e.g. MCG-NJU/videomae-base checkpoints), same decoders as the paper.
    "base": dict(encoder_config=_VIDEOMAE_BASE, freeze_encoder=True),
    # Seconds on a CPU: 56 px input (392 tokens), small encoder and decoders, encoder trained.
    "tiny": dict(
        encoder_config=_VIDEOMAE_TINY,
        freeze_encoder=False,
        projection_dim=64,
        decoder_hidden_size=64,
        decoder_num_layers=1,
        decoder_num_heads=2,
        decoder_head_dim=32,
        decoder_intermediate_size=128,
        projection_dropout=0.1,
        decoder_dropout=0.1,
        decoder_attention_dropout=0.0,
        head_dropout=0.1,
    ),
}


class MTCAEConfig(PreTrainedConfig):
    r"""
    Configuration of an MTCAE-DFER model: a VideoMAE encoder shared by three task decoders.

    Fields are grouped by purpose. Defaults reproduce the authors' notebook (the ``paper``
    preset) except for the encoder, which defaults to VideoMAE-B sizes.

    Encoder:
        encoder_config (`VideoMAEConfig` or `dict`): the shared VideoMAE ViT encoder. Saved nested in
            ``config.json``. Its ``num_frames`` must equal ``num_frames``.
        num_frames (`int`, defaults to 16): frames per clip; also the number of per-frame boxes and
            landmark sets the face heads predict.
        freeze_encoder (`bool`, defaults to `True`): train only projection, decoders and heads (the
            notebook's setting). The encoder then runs without autograd.

    Projection (encoder width -> decoder memory width):
        projection_dim (`int`, defaults to 256): width of the projected encoder tokens ``E``.
        projection_mode (`str`, defaults to `"shared"`): `"shared"` (one projection, the notebook) or
            `"per_task"` (one per decoder, the paper's figure).
        projection_norm (`bool`, defaults to `False`): LayerNorm before the projection (the figure).
        projection_bias (`bool`, defaults to `False`): bias in the projection Linear.
        projection_dropout (`float`, defaults to 0.3): dropout on encoder tokens before projecting.

    Decoders (pre-norm cross-attention blocks, no self-attention, no positional encodings):
        decoder_mode (`str`, defaults to `"cascaded"`): one of the paper's four frameworks:
            `"cascaded"` (each decoder queried by the previous one's output), `"parallel"` (all
            queried by ``E``; the non-fully-shared MTL), `"fully_shared"` (one shared decoder, then
            the three task decoders in parallel on its output) and `"single_task"` (expression only).
        task_order (`list[str]`): cascade order of `"face_detection"`, `"face_landmark"`, `"expression"`.
        decoder_hidden_size (`int`, defaults to 256): width of a decoder's query stream. When it
            differs from ``projection_dim`` the first decoder's query gets its own Linear.
        decoder_num_layers (`int`, defaults to 3): blocks per decoder.
        decoder_num_heads (`int`, defaults to 3): cross-attention heads.
        decoder_head_dim (`int`, defaults to 256): width per head (the notebook's key_dim; the inner
            attention width is ``decoder_num_heads * decoder_head_dim`` = 768, not 256 / 3).
        decoder_intermediate_size (`int`, defaults to 512): MLP hidden width.
        decoder_hidden_act (`str`, defaults to `"gelu"`): MLP activation (exact erf GELU).
        decoder_mlp_output_activation (`bool`, defaults to `True`): apply the activation after the
            MLP's second Linear too, as the notebook does.
        decoder_dropout (`float`, defaults to 0.3): MLP dropout.
        decoder_attention_dropout (`float`, defaults to 0.3): attention-probability dropout.
        layer_norm_eps (`float`, defaults to 1e-6): eps of every decoder and head LayerNorm.

    Heads (mean over tokens -> LayerNorm -> Dropout -> Linear):
        head_dropout (`float`, defaults to 0.1).
        num_landmarks (`int`, defaults to 5): left eye, right eye, nose, mouth left, mouth right.

    Loss (``loss = w_box * MSE(box) + w_lmk * MSE(landmarks) + w_expr * CE(expression)``):
        loss_weight_face_boxes (`float`, defaults to 0.5).
        loss_weight_face_landmarks (`float`, defaults to 0.5).
        loss_weight_expression (`float`, defaults to 1.5).
        label_smoothing (`float`, defaults to 0.0): cross-entropy label smoothing.

    Example:

    ```python
    >>> from modeling_mtcae import MTCAEConfig, MTCAEForVideoClassification
    >>> config = MTCAEConfig.from_preset("tiny", num_labels=7)
    >>> model = MTCAEForVideoClassification(config)
    ```
    """

    model_type = "mtcae"
    sub_configs_defaults = {"encoder_config": VideoMAEConfig}
    # Trainer: keep only the logits in EvalPrediction.predictions (metrics work on them).
    keys_to_ignore_at_inference: ClassVar[list[str]] = [
        "face_boxes",
        "face_landmarks",
        "loss_expression",
        "loss_face_boxes",
        "loss_face_landmarks",
        "hidden_states",
        "attentions",
        "decoder_cross_attentions",
    ]

    # --- encoder ---
    encoder_config: dict | PreTrainedConfig | None = None
    num_frames: int = 16
    freeze_encoder: bool = True
    # --- projection ---
    projection_dim: int = 256
    projection_mode: str = "shared"
    projection_norm: bool = False
    projection_bias: bool = False
    projection_dropout: float = 0.3
    # --- decoders ---
    decoder_mode: str = "cascaded"
    task_order: list[str] | tuple[str, ...] = TASKS
    decoder_hidden_size: int = 256
    decoder_num_layers: int = 3
    decoder_num_heads: int = 3
    decoder_head_dim: int = 256
    decoder_intermediate_size: int = 512
    decoder_hidden_act: str = "gelu"
    decoder_mlp_output_activation: bool = True
    decoder_dropout: float = 0.3
    decoder_attention_dropout: float = 0.3
    layer_norm_eps: float = 1e-6
    # --- heads ---
    head_dropout: float = 0.1
    num_landmarks: int = 5
    # --- loss ---
    loss_weight_face_boxes: float = 0.5
    loss_weight_face_landmarks: float = 0.5
    loss_weight_expression: float = 1.5
    label_smoothing: float = 0.0

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        self.task_order = list(self.task_order)
        self.validate_architecture()

    # ------------------------------------------------------------------ validation
    def validate_architecture(self) -> None:
        """Raise a ``ValueError`` naming the field to change when the settings cannot build a model."""
        enc = self.encoder_config
        if self.decoder_mode not in DECODER_MODES:
            raise ValueError(f"decoder_mode={self.decoder_mode!r} is not one of {DECODER_MODES}.")
        if self.projection_mode not in PROJECTION_MODES:
            raise ValueError(f"projection_mode={self.projection_mode!r} is not one of {PROJECTION_MODES}.")
        if sorted(self.task_order) != sorted(TASKS):
            raise ValueError(
                f"task_order={self.task_order!r} must name each of {TASKS} exactly once "
                "(in single_task mode only the expression decoder is built, but the order is still checked)."
            )
        if self.num_frames != enc.num_frames:
            raise ValueError(
                f"num_frames={self.num_frames} differs from encoder_config.num_frames={enc.num_frames}; "
                "set both to the same value."
            )
        if self.num_frames % enc.tubelet_size:
            raise ValueError(
                f"num_frames={self.num_frames} is not a multiple of encoder_config.tubelet_size={enc.tubelet_size}."
            )
        for size in _pair(enc.image_size):
            for patch in _pair(enc.patch_size):
                if size % patch:
                    raise ValueError(
                        f"encoder_config.image_size={enc.image_size} is not a multiple of "
                        f"encoder_config.patch_size={enc.patch_size}."
                    )
        if enc.hidden_size % enc.num_attention_heads:
            raise ValueError(
                f"encoder_config.hidden_size={enc.hidden_size} is not divisible by "
                f"encoder_config.num_attention_heads={enc.num_attention_heads}."
            )
        positive = (
            "projection_dim",
            "decoder_hidden_size",
            "decoder_num_layers",
            "decoder_num_heads",
            "decoder_head_dim",
            "decoder_intermediate_size",
            "num_landmarks",
            "num_frames",
        )
        for name in positive:
            if int(getattr(self, name)) <= 0:
                raise ValueError(f"{name}={getattr(self, name)} must be a positive integer.")
        for name in ("projection_dropout", "decoder_dropout", "decoder_attention_dropout", "head_dropout"):
            if not 0.0 <= float(getattr(self, name)) < 1.0:
                raise ValueError(f"{name}={getattr(self, name)} must be in [0, 1).")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f"label_smoothing={self.label_smoothing} must be in [0, 1).")
        for name in ("loss_weight_face_boxes", "loss_weight_face_landmarks", "loss_weight_expression"):
            if float(getattr(self, name)) < 0:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 0.")
        if self.num_labels < 1:
            raise ValueError(f"num_labels={self.num_labels} must be at least 1.")

    # ------------------------------------------------------------------ derived sizes
    @property
    def tasks(self) -> list[str]:
        """Decoders built, in query order."""
        return ["expression"] if self.decoder_mode == "single_task" else list(self.task_order)

    @property
    def has_face_tasks(self) -> bool:
        return self.decoder_mode != "single_task"

    @property
    def num_tokens(self) -> int:
        """Encoder tokens per clip: (T / tubelet) x (H / patch) x (W / patch), 1568 for 16 x 224 x 224."""
        enc = self.encoder_config
        height, width = _pair(enc.image_size)
        patch_h, patch_w = _pair(enc.patch_size)
        return (self.num_frames // enc.tubelet_size) * (height // patch_h) * (width // patch_w)

    @property
    def image_size(self) -> tuple[int, int]:
        return _pair(self.encoder_config.image_size)

    # ------------------------------------------------------------------ presets
    @classmethod
    def from_preset(cls, name: str, **overrides) -> MTCAEConfig:
        """Build a named preset (`"paper"`, `"paper_figure"`, `"base"`, `"tiny"`), then apply ``overrides``.

        ``overrides`` may hold any config field, ``num_labels``/``id2label``/``label2id``, and
        ``encoder_config`` as a dict of VideoMAE fields to change (merged into the preset's encoder).
        """
        if name not in PRESETS:
            raise ValueError(f"Unknown preset {name!r}; choose one of {sorted(PRESETS)}.")
        kwargs = copy.deepcopy(PRESETS[name])
        encoder_kwargs = kwargs.pop("encoder_config")
        encoder_override = overrides.pop("encoder_config", None)
        if isinstance(encoder_override, PreTrainedConfig):
            encoder_override = encoder_override.to_dict()
        encoder_kwargs.update(encoder_override or {})
        kwargs.update(overrides)
        id2label, num_labels = kwargs.get("id2label"), kwargs.get("num_labels")
        if id2label is not None and num_labels is not None and len(id2label) != num_labels:
            raise ValueError(f"num_labels={num_labels} but id2label has {len(id2label)} names; pass only one of them.")
        num_frames = kwargs.get("num_frames", encoder_kwargs.get("num_frames", 16))
        encoder_kwargs["num_frames"] = num_frames
        kwargs["num_frames"] = num_frames
        return cls(encoder_config=VideoMAEConfig(**encoder_kwargs), **kwargs)


def _pair(value) -> tuple[int, int]:
    return (int(value[0]), int(value[1])) if isinstance(value, (list, tuple)) else (int(value), int(value))


__all__ = ["MTCAEConfig", "PRESETS", "TASKS", "DECODER_MODES", "DECODER_MODE_DESCRIPTIONS", "PROJECTION_MODES"]
