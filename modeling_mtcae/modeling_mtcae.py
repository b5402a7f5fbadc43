"""PyTorch MTCAE-DFER: a VideoMAE encoder shared by cascaded cross-attention task decoders.

Reference: Xiang, Wu, Bai, "MTCAE-DFER: Multi-Task Cascaded Autoencoder for Dynamic Facial
Expression Recognition", arXiv 2412.18988. Layer sizes follow the authors' TensorFlow notebook.
This file is Hub remote code: it imports only third-party packages and its sibling
``configuration_mtcae``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel, VideoMAEConfig, VideoMAEModel
from transformers.activations import ACT2FN
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import BaseModelOutput
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from transformers.utils import ModelOutput, logging

from .configuration_mtcae import MTCAEConfig

logger = logging.get_logger(__name__)

# VideoMAE fields that decide parameter shapes; a checkpoint must agree on them to load.
# (num_frames is left out: VideoMAE's positions are a fixed sinusoid table, not weights.)
ENCODER_ARCHITECTURE_FIELDS = (
    "image_size",
    "patch_size",
    "num_channels",
    "tubelet_size",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "qv_bias",
    "use_mean_pooling",
)


# ----------------------------------------------------------------------------------------------
# Outputs
# ----------------------------------------------------------------------------------------------
@dataclass
class MTCAEModelOutput(ModelOutput):
    """
    Outputs of [`MTCAEModel`]. `hidden_states` and `attentions` are the shared VideoMAE encoder's, named and
    shaped as `VideoMAEModel` returns them; the decoders' cross-attention maps are in `decoder_cross_attentions`.

    Args:
        last_hidden_state (`torch.FloatTensor` of shape `(batch_size, num_tokens, decoder_hidden_size)`):
            Token features of the expression decoder.
        face_detection_hidden_state (`torch.FloatTensor`, *optional*):
            Token features of the face-detection decoder (`None` in single-task mode).
        face_landmark_hidden_state (`torch.FloatTensor`, *optional*):
            Token features of the face-landmark decoder (`None` in single-task mode).
        encoder_last_hidden_state (`torch.FloatTensor` of shape `(batch_size, num_tokens, encoder_hidden_size)`):
            VideoMAE encoder tokens shared by all decoders (what [`MTCAEModel.encode`] returns and what
            `encoder_outputs=` accepts back).
        hidden_states (`tuple(torch.FloatTensor)`, *optional*):
            Encoder hidden states, when `output_hidden_states=True` (or `config.output_hidden_states`): the
            embeddings, then the output of each encoder layer, each `(batch_size, num_tokens, encoder_hidden_size)`.
        attentions (`tuple(torch.FloatTensor)`, *optional*):
            Encoder self-attention probabilities of each layer, `(batch_size, encoder_num_heads, num_tokens,
            num_tokens)`, when `output_attentions=True` (or `config.output_attentions`). As in transformers, only
            the `"eager"` attention implementation returns them; `"sdpa"` and the fused kernels give an empty tuple.
        decoder_cross_attentions (`dict[str, tuple(torch.FloatTensor)]`, *optional*):
            With `output_attentions=True`: for each decoder, by name in query order (`"face_detection"`,
            `"face_landmark"`, `"expression"`, and `"shared"` first in fully-shared mode), the cross-attention
            probabilities of each of its blocks, `(batch_size, decoder_num_heads, num_tokens, num_tokens)`
            (queries x encoder tokens). Like `attentions`, filled by the `"eager"` implementation only.
    """

    last_hidden_state: torch.FloatTensor | None = None
    face_detection_hidden_state: torch.FloatTensor | None = None
    face_landmark_hidden_state: torch.FloatTensor | None = None
    encoder_last_hidden_state: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None
    decoder_cross_attentions: dict[str, tuple[torch.FloatTensor, ...]] | None = None


@dataclass
class MTCAEForVideoClassificationOutput(ModelOutput):
    """
    Outputs of [`MTCAEForVideoClassification`].

    Args:
        loss (`torch.FloatTensor` of shape `()`, *optional*):
            Weighted multi-task loss, returned when `labels` and/or face targets are given.
        logits (`torch.FloatTensor` of shape `(batch_size, num_labels)`):
            Expression classification scores (before softmax).
        face_boxes (`torch.FloatTensor` of shape `(batch_size, num_frames, 4)`, *optional*):
            Per-frame face box `[x, y, w, h]` (top-left and size), normalised to the model input.
        face_landmarks (`torch.FloatTensor` of shape `(batch_size, num_frames, num_landmarks, 2)`, *optional*):
            Per-frame landmarks `(x, y)`, normalised to the model input.
        loss_expression, loss_face_boxes, loss_face_landmarks (`torch.FloatTensor` of shape `()`, *optional*):
            The unweighted task losses.
        hidden_states (`tuple(torch.FloatTensor)`, *optional*):
            The encoder's hidden states, as in [`MTCAEModelOutput`].
        attentions (`tuple(torch.FloatTensor)`, *optional*):
            The encoder's self-attention probabilities per layer, as in [`MTCAEModelOutput`].
        decoder_cross_attentions (`dict[str, tuple(torch.FloatTensor)]`, *optional*):
            Each decoder's cross-attention probabilities per block, as in [`MTCAEModelOutput`].
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    face_boxes: torch.FloatTensor | None = None
    face_landmarks: torch.FloatTensor | None = None
    loss_expression: torch.FloatTensor | None = None
    loss_face_boxes: torch.FloatTensor | None = None
    loss_face_landmarks: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None
    decoder_cross_attentions: dict[str, tuple[torch.FloatTensor, ...]] | None = None


# ----------------------------------------------------------------------------------------------
# Decoder building blocks
# ----------------------------------------------------------------------------------------------
def eager_attention_forward(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    **kwargs,
) -> tuple[torch.Tensor, torch.Tensor]:
    """`dropout(softmax(q k^T * scaling + mask)) v` on `(batch, heads, tokens, head_dim)` tensors.

    Returns the context as `(batch, query_tokens, heads, head_dim)` and the attention probabilities (after
    dropout, as transformers' eager attention returns them). The softmax runs in float32.
    """
    if scaling is None:
        scaling = query.size(-1) ** -0.5
    attn_weights = torch.matmul(query, key.transpose(2, 3)) * scaling
    if attention_mask is not None:
        attn_weights = attn_weights + attention_mask
    attn_weights = nn.functional.softmax(attn_weights, dim=-1, dtype=torch.float32).to(query.dtype)
    attn_weights = nn.functional.dropout(attn_weights, p=dropout, training=module.training)
    attn_output = torch.matmul(attn_weights, value).transpose(1, 2).contiguous()
    return attn_output, attn_weights


class MTCAECrossAttention(nn.Module):
    """Multi-head cross-attention in the Keras `MultiHeadAttention` layout of the notebook.

    Queries come from the decoder stream (`decoder_hidden_size` wide), keys and values from the decoder
    memory (`projection_dim` wide). There are `decoder_num_heads` heads of `decoder_head_dim` each, so the
    inner width is `decoder_num_heads * decoder_head_dim` (768 = 3 x 256 in the paper preset, not 256 / 3);
    scale `1 / sqrt(decoder_head_dim)`; attention-probability dropout `decoder_attention_dropout` in training.
    The attention itself is the function `config._attn_implementation` names in transformers'
    `AttentionInterface` (`"sdpa"`, `"eager"`, `"flash_attention_2"`, `"flex_attention"` or a registered one).

    Args:
        config: the model config.
    """

    def __init__(self, config: MTCAEConfig):
        super().__init__()
        self.config = config
        self.num_heads = config.decoder_num_heads
        self.head_dim = config.decoder_head_dim
        self.scaling = self.head_dim**-0.5
        self.dropout_prob = config.decoder_attention_dropout
        self.is_causal = False
        inner_dim = self.num_heads * self.head_dim
        self.query = nn.Linear(config.decoder_hidden_size, inner_dim)
        self.key = nn.Linear(config.projection_dim, inner_dim)
        self.value = nn.Linear(config.projection_dim, inner_dim)
        self.output = nn.Linear(inner_dim, config.decoder_hidden_size)

    def _split_heads(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(*x.shape[:-1], -1, self.head_dim).transpose(1, 2)

    def forward(self, hidden_states: torch.Tensor, memory: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Returns the attended queries `(batch, tokens, decoder_hidden_size)` and the probabilities, if the
        attention function gives them (`"eager"` does)."""
        query = self._split_heads(self.query(hidden_states))
        key = self._split_heads(self.key(memory))
        value = self._split_heads(self.value(memory))
        attention_interface: Callable = ALL_ATTENTION_FUNCTIONS.get_interface(
            self.config._attn_implementation, eager_attention_forward
        )
        context, attn_weights = attention_interface(
            self,
            query,
            key,
            value,
            None,
            is_causal=self.is_causal,
            scaling=self.scaling,
            dropout=self.dropout_prob if self.training else 0.0,
        )
        context = context.reshape(*hidden_states.shape[:-1], self.num_heads * self.head_dim)
        return self.output(context), attn_weights


class MTCAEDecoderMLP(nn.Module):
    """Linear -> act -> Dropout -> Linear -> act -> Dropout (the notebook applies GELU after both)."""

    def __init__(self, config: MTCAEConfig):
        super().__init__()
        self.fc1 = nn.Linear(config.decoder_hidden_size, config.decoder_intermediate_size)
        self.fc2 = nn.Linear(config.decoder_intermediate_size, config.decoder_hidden_size)
        self.act = ACT2FN[config.decoder_hidden_act]
        self.output_act = ACT2FN[config.decoder_hidden_act] if config.decoder_mlp_output_activation else nn.Identity()
        self.dropout = nn.Dropout(config.decoder_dropout)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        hidden_states = self.dropout(self.act(self.fc1(hidden_states)))
        return self.dropout(self.output_act(self.fc2(hidden_states)))


class MTCAEDecoderBlock(GradientCheckpointingLayer):
    """Pre-norm block: `y = y + CrossAttn(LN1(y), M)`, then `y = y + MLP(LN2(y))`. No self-attention."""

    def __init__(self, config: MTCAEConfig):
        super().__init__()
        width = config.decoder_hidden_size
        self.layernorm_before = nn.LayerNorm(width, eps=config.layer_norm_eps)
        self.cross_attention = MTCAECrossAttention(config)
        self.layernorm_after = nn.LayerNorm(width, eps=config.layer_norm_eps)
        self.mlp = MTCAEDecoderMLP(config)

    def forward(self, hidden_states: torch.Tensor, memory: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        attended, attn_weights = self.cross_attention(self.layernorm_before(hidden_states), memory)
        hidden_states = hidden_states + attended
        hidden_states = hidden_states + self.mlp(self.layernorm_after(hidden_states))
        return hidden_states, attn_weights


class MTCAEDecoder(nn.Module):
    """One task decoder: LayerNorm the memory once, then cross-attention blocks over it.

    Args:
        config: the model config.
        query_from_projection: whether this decoder's query is the projected encoder output `E`
            (then a Linear maps it to `decoder_hidden_size` if the widths differ).
    """

    def __init__(self, config: MTCAEConfig, query_from_projection: bool):
        super().__init__()
        self.memory_norm = nn.LayerNorm(config.projection_dim, eps=config.layer_norm_eps)
        needs_query_projection = query_from_projection and config.projection_dim != config.decoder_hidden_size
        self.query_projection = (
            nn.Linear(config.projection_dim, config.decoder_hidden_size) if needs_query_projection else None
        )
        self.blocks = nn.ModuleList([MTCAEDecoderBlock(config) for _ in range(config.decoder_num_layers)])

    def forward(
        self, query: torch.Tensor, projected_tokens: torch.Tensor
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """Returns the decoder's token output and the attention probabilities its blocks' attention
        function gave (one per block with `"eager"`, none with `"sdpa"`)."""
        memory = self.memory_norm(projected_tokens)
        hidden_states = self.query_projection(query) if self.query_projection is not None else query
        attentions = []
        for block in self.blocks:
            hidden_states, attn_weights = block(hidden_states, memory)
            if attn_weights is not None:
                attentions.append(attn_weights)
        return hidden_states, tuple(attentions)


class MTCAEProjection(nn.Module):
    """Encoder tokens -> decoder memory: [LayerNorm] -> Dropout -> Linear."""

    def __init__(self, config: MTCAEConfig):
        super().__init__()
        encoder_width = config.encoder_config.hidden_size
        self.norm = nn.LayerNorm(encoder_width, eps=config.layer_norm_eps) if config.projection_norm else None
        self.dropout = nn.Dropout(config.projection_dropout)
        self.linear = nn.Linear(encoder_width, config.projection_dim, bias=config.projection_bias)

    def forward(self, encoder_tokens: torch.Tensor) -> torch.Tensor:
        if self.norm is not None:
            encoder_tokens = self.norm(encoder_tokens)
        return self.linear(self.dropout(encoder_tokens))


class MTCAEPooledHead(nn.Module):
    """Mean over tokens -> LayerNorm -> Dropout -> Linear."""

    def __init__(self, config: MTCAEConfig, out_features: int):
        super().__init__()
        self.norm = nn.LayerNorm(config.decoder_hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.head_dropout)
        self.linear = nn.Linear(config.decoder_hidden_size, out_features)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.linear(self.dropout(self.norm(tokens.mean(dim=1))))


# ----------------------------------------------------------------------------------------------
# Pre-trained model base
# ----------------------------------------------------------------------------------------------
class MTCAEPreTrainedModel(PreTrainedModel):
    config: MTCAEConfig
    config_class = MTCAEConfig
    base_model_prefix = "mtcae"
    main_input_name = "pixel_values"
    input_modalities = "video"
    supports_gradient_checkpointing = True
    # The decoders' attention and VideoMAE's both go through transformers' AttentionInterface, so every
    # implementation VideoMAE supports works here too, and `set_attn_implementation` switches both at run time.
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_flex_attn = True
    _supports_attention_backend = True
    _no_split_modules = ["VideoMAEEmbeddings", "VideoMAELayer", "MTCAEDecoderBlock"]
    # Our forward takes no loss kwargs: let Trainer scale the loss for gradient accumulation itself.
    accepts_loss_kwargs = False

    def _init_weights(self, module: nn.Module) -> None:
        # Encoder modules: transformers' usual init (normal 0.02). Our decoder-side modules: the
        # Keras defaults the notebook trained with (Glorot-uniform kernels, zero biases).
        super()._init_weights(module)
        if isinstance(module, (MTCAECrossAttention, MTCAEDecoderMLP, MTCAEProjection, MTCAEPooledHead, MTCAEDecoder)):
            from transformers import initialization as init

            for child in module.children():
                if isinstance(child, nn.Linear):
                    init.xavier_uniform_(child.weight)
                    if child.bias is not None:
                        init.zeros_(child.bias)

    def set_encoder_frozen(self, frozen: bool) -> None:
        """Freeze (no gradients, no autograd graph) or unfreeze the shared encoder; updates the config."""
        self.config.freeze_encoder = bool(frozen)
        self.base_model.encoder.requires_grad_(not frozen)

    @classmethod
    def from_pretrained(cls, *args, **kwargs):
        loaded = super().from_pretrained(*args, **kwargs)
        model = loaded[0] if isinstance(loaded, tuple) else loaded
        # Loading materialises fresh parameters (requires_grad=True): freeze again as the config says.
        model.set_encoder_frozen(model.config.freeze_encoder)
        return loaded

    def save_pretrained(self, save_directory, *args, **kwargs):
        """`PreTrainedModel.save_pretrained`, claiming all three auto classes, with readable weight files.

        safetensors >= 0.8 writes through a temporary file that is always 0600 and keeps that mode
        (safetensors/safetensors#782), so a model saved by one user (a Docker build, a shared run
        folder) could not be read by another, although its `config.json` can: the weight files get
        the mode any new file gets (``0o666 & ~umask``).
        """
        # transformers writes an auto_map entry only for the saved class; we claim all three.
        self.config.auto_map = {
            "AutoConfig": "configuration_mtcae.MTCAEConfig",
            "AutoModel": "modeling_mtcae.MTCAEModel",
            "AutoModelForVideoClassification": "modeling_mtcae.MTCAEForVideoClassification",
        }
        result = super().save_pretrained(save_directory, *args, **kwargs)
        if os.name == "posix" and os.path.isdir(save_directory):
            mask = os.umask(0o022)
            os.umask(mask)
            for name in os.listdir(save_directory):
                path = os.path.join(save_directory, name)
                if name.endswith(".safetensors") and os.path.isfile(path) and os.stat(path).st_mode & 0o777 == 0o600:
                    os.chmod(path, 0o666 & ~mask)
        return result

    # ---------------------------------------------------------------- encoder weights
    def load_encoder_weights(self, encoder_name_or_path: str | dict[str, torch.Tensor], **hub_kwargs) -> dict:
        """Load pretrained VideoMAE weights into the shared encoder.

        Args:
            encoder_name_or_path: a Hub id or local folder of a transformers VideoMAE checkpoint
                (`VideoMAEModel`, `VideoMAEForVideoClassification` or `VideoMAEForPreTraining`), or a
                state dict in transformers' VideoMAE key names (with or without the `videomae.` prefix).
                Original MCG-NJU `.pth` files: convert them first with `mtcae-convert-videomae`.
            hub_kwargs: forwarded to `from_pretrained` (`revision`, `cache_dir`, `local_files_only`, ...).

        Returns:
            `dict` with `missing_keys`, `unexpected_keys` and `mismatched_keys` of the encoder, as
            transformers reports them; they are also logged.
        """
        encoder = self.base_model.encoder
        if isinstance(encoder_name_or_path, dict):
            return _load_encoder_state_dict(encoder, encoder_name_or_path)
        source = str(encoder_name_or_path)
        if source.endswith((".pth", ".pt", ".bin")) and not source.endswith("pytorch_model.bin"):
            raise ValueError(
                f"{source} looks like an original VideoMAE checkpoint file; convert it to a transformers "
                "folder first: `mtcae-convert-videomae --checkpoint {source} --output_dir DIR`, then pass DIR."
            )
        checkpoint_config = VideoMAEConfig.from_pretrained(source, **hub_kwargs)
        check_encoder_compatible(checkpoint_config, self.config.encoder_config, source)
        loaded, info = VideoMAEModel.from_pretrained(
            source, config=self.config.encoder_config, output_loading_info=True, **hub_kwargs
        )
        encoder.load_state_dict(loaded.state_dict())
        report = {key: sorted(info.get(key, [])) for key in ("missing_keys", "unexpected_keys", "mismatched_keys")}
        _log_loading_report(source, report)
        return report


def check_encoder_compatible(checkpoint_config: VideoMAEConfig, encoder_config: VideoMAEConfig, source: str) -> None:
    """Raise a ``ValueError`` listing the encoder fields on which a checkpoint and our config disagree."""
    differences = [
        f"{field}: checkpoint {getattr(checkpoint_config, field)!r} vs config {getattr(encoder_config, field)!r}"
        for field in ENCODER_ARCHITECTURE_FIELDS
        if getattr(checkpoint_config, field) != getattr(encoder_config, field)
    ]
    if differences:
        raise ValueError(
            f"The VideoMAE checkpoint {source} does not fit this model's encoder_config ("
            + "; ".join(differences)
            + "). Build the model from the checkpoint with MTCAEForVideoClassification.from_videomae(...) "
            "or choose the preset with the same encoder size."
        )


def _load_encoder_state_dict(encoder: VideoMAEModel, state_dict: dict[str, torch.Tensor]) -> dict:
    prefix = "videomae."
    if any(key.startswith(prefix) for key in state_dict):
        state_dict = {key[len(prefix) :]: value for key, value in state_dict.items() if key.startswith(prefix)}
    own = encoder.state_dict()
    mismatched = [k for k, v in state_dict.items() if k in own and own[k].shape != v.shape]
    if mismatched:
        raise ValueError(
            "Encoder weights with the wrong shape: "
            + ", ".join(f"{k} {tuple(state_dict[k].shape)} vs {tuple(own[k].shape)}" for k in mismatched)
        )
    result = encoder.load_state_dict(state_dict, strict=False)
    report = {
        "missing_keys": sorted(result.missing_keys),
        "unexpected_keys": sorted(result.unexpected_keys),
        "mismatched_keys": [],
    }
    _log_loading_report("state dict", report)
    return report


def _log_loading_report(source: str, report: dict) -> None:
    if report["missing_keys"]:
        logger.warning(f"Encoder weights not found in {source}, left at their init: {report['missing_keys']}")
    if report["unexpected_keys"]:
        logger.warning(f"Weights in {source} not used by the encoder: {report['unexpected_keys']}")
    if not report["missing_keys"]:
        logger.info(f"All encoder weights were loaded from {source}.")


# ----------------------------------------------------------------------------------------------
# Encoder + decoders
# ----------------------------------------------------------------------------------------------
class MTCAEModel(MTCAEPreTrainedModel):
    """The shared VideoMAE encoder and the task decoders wired as `config.decoder_mode` says."""

    def __init__(self, config: MTCAEConfig):
        super().__init__(config)
        self.encoder = VideoMAEModel(config.encoder_config)

        # Which decoders exist and what queries each: "projection" (E) or another decoder's name.
        tasks = config.tasks
        if config.decoder_mode == "cascaded":
            self.query_sources = {task: ("projection" if i == 0 else tasks[i - 1]) for i, task in enumerate(tasks)}
        elif config.decoder_mode == "fully_shared":
            self.query_sources = {"shared": "projection", **{task: "shared" for task in tasks}}
        else:  # parallel and single_task: every decoder is queried by E
            self.query_sources = {task: "projection" for task in tasks}

        decoder_names = list(self.query_sources)
        if config.projection_mode == "shared":
            self.projection = MTCAEProjection(config)
        else:
            self.projections = nn.ModuleDict({name: MTCAEProjection(config) for name in decoder_names})
        self.decoders = nn.ModuleDict(
            {name: MTCAEDecoder(config, query_from_projection=source == "projection")
             for name, source in self.query_sources.items()}
        )
        self.post_init()
        self.set_encoder_frozen(config.freeze_encoder)
        # save_pretrained writes VideoMAE's query/value biases under their original names (q_bias, v_bias)
        # and from_pretrained renames them back; a plain load_state_dict of such a file (Trainer's
        # resume_from_checkpoint and load_best_model_at_end) needs the same renaming.
        self.register_load_state_dict_pre_hook(_rename_videomae_qv_biases)

    def get_input_embeddings(self) -> nn.Module:
        return self.encoder.embeddings.patch_embeddings

    @property
    def encoder_is_frozen(self) -> bool:
        return not any(p.requires_grad for p in self.encoder.parameters())

    @torch.no_grad()
    def init_patch_embedding_from_data(self, pixel_values: torch.Tensor, eps: float = 1e-2) -> torch.Tensor:
        """Data-dependent init of the encoder's tubelet embedding: PCA whitening of the clips' tubelets.

        Each of the ``hidden_size`` filters becomes one principal direction of the (normalised) tubelet
        patches of ``pixel_values``, divided by the square root of its variance, and the bias centres
        the tokens; the initial tokens are then decorrelated, unit-variance codes of what the patches
        hold, instead of a random projection. An encoder trained from scratch on a small set (the
        ``tiny`` preset on the synthetic clips) learns several times faster from this start; it is
        meaningless for a pretrained encoder, whose embedding it would overwrite.

        Args:
            pixel_values: ``(B, T, 3, H, W)`` processed training clips (a few dozen are enough).
            eps: added to the variances before the square root (keeps near-empty directions small).

        Returns:
            The explained-variance ratio of the kept directions (a sanity figure to log).
        """
        self.check_pixel_values(pixel_values)
        conv = self.encoder.embeddings.patch_embeddings.projection
        kt, kh, kw = conv.kernel_size
        width = conv.out_channels
        b, t, c, h, w = pixel_values.shape
        patches = (
            pixel_values.double()
            .reshape(b, t // kt, kt, c, h // kh, kh, w // kw, kw)
            .permute(0, 1, 4, 6, 3, 2, 5, 7)  # tubelet grid first, then (c, kt, kh, kw) as the Conv3d weight
            .reshape(-1, c * kt * kh * kw)
        )
        if patches.shape[1] < width:
            raise ValueError(f"PCA init needs hidden_size <= tubelet size ({patches.shape[1]}), got {width}")
        if patches.shape[0] < patches.shape[1]:
            raise ValueError(f"PCA init needs at least {patches.shape[1]} tubelets, got {patches.shape[0]}: "
                             "pass more clips")
        mean = patches.mean(0)
        covariance = torch.cov((patches - mean).T)
        variances, directions = torch.linalg.eigh(covariance)  # ascending
        variances, directions = variances.flip(0).clamp_min(0), directions.flip(1)
        weight = (directions[:, :width] / torch.sqrt(variances[:width] + eps)).T
        conv.weight.copy_(weight.reshape(width, c, kt, kh, kw).to(conv.weight.dtype))
        conv.bias.copy_((-(weight @ mean)).to(conv.bias.dtype))
        return variances[:width].sum() / variances.sum().clamp_min(1e-12)

    # ---------------------------------------------------------------- encoder
    def forward_encoder(
        self,
        pixel_values: torch.Tensor,
        output_attentions: bool = False,
        output_hidden_states: bool | int | list[int] = False,
    ) -> BaseModelOutput:
        """(B, T, 3, H, W) -> the VideoMAE encoder's outputs. A frozen encoder runs without autograd."""
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.encoder_is_frozen):
            return self.encoder(
                pixel_values,
                output_attentions=output_attentions,
                output_hidden_states=output_hidden_states,
                return_dict=True,
            )

    def encode(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """The encoder tokens `(batch_size, num_tokens, encoder_hidden_size)` of `pixel_values`.

        This is what a frozen-encoder feature cache stores: `forward(encoder_outputs=tokens)` later runs
        projection, decoders (and heads) on them exactly as `forward(pixel_values)` would. Call it in
        `eval()` mode (the VideoMAE encoder has no dropout by default, but a config may add some).
        """
        self.check_pixel_values(pixel_values)
        return self.forward_encoder(pixel_values).last_hidden_state

    def resolve_encoder_outputs(
        self,
        pixel_values: torch.Tensor | None,
        encoder_outputs: BaseModelOutput | tuple | torch.Tensor | None,
        output_attentions: bool,
        output_hidden_states: bool | int | list[int],
    ) -> BaseModelOutput:
        """Run the encoder on `pixel_values`, or take the precomputed `encoder_outputs` (exactly one of them)."""
        if (pixel_values is None) == (encoder_outputs is None):
            given = "both" if pixel_values is not None else "neither"
            raise ValueError(
                f"Pass exactly one of `pixel_values` (frames) or `encoder_outputs` (precomputed encoder tokens, "
                f"e.g. from `model.encode(pixel_values)`); got {given}."
            )
        if pixel_values is not None:
            self.check_pixel_values(pixel_values)
            return self.forward_encoder(pixel_values, output_attentions, output_hidden_states)
        if isinstance(encoder_outputs, torch.Tensor):
            encoder_outputs = BaseModelOutput(last_hidden_state=encoder_outputs)
        elif not isinstance(encoder_outputs, BaseModelOutput):  # a tuple, as return_dict=False gives it
            encoder_outputs = BaseModelOutput(
                last_hidden_state=encoder_outputs[0],
                hidden_states=encoder_outputs[1] if len(encoder_outputs) > 1 else None,
                attentions=encoder_outputs[2] if len(encoder_outputs) > 2 else None,
            )
        self.check_encoder_tokens(encoder_outputs.last_hidden_state)
        # A feature cache may hold bf16/fp16 tokens: compute in the model's own dtype.
        encoder_outputs.last_hidden_state = encoder_outputs.last_hidden_state.to(self.dtype)
        return encoder_outputs

    # ---------------------------------------------------------------- decoders
    def project(self, encoder_tokens: torch.Tensor, decoder_name: str) -> torch.Tensor:
        if self.config.projection_mode == "shared":
            return self.projection(encoder_tokens)
        return self.projections[decoder_name](encoder_tokens)

    def forward_decoders(
        self, encoder_tokens: torch.Tensor
    ) -> tuple[dict[str, torch.Tensor], dict[str, tuple[torch.Tensor, ...]]]:
        """Run the decoders in query order. Returns each decoder's token output (B, N, decoder_hidden_size)
        and the cross-attention probabilities each one's attention function gave, by decoder name."""
        shared_projection = self.projection(encoder_tokens) if self.config.projection_mode == "shared" else None
        outputs: dict[str, torch.Tensor] = {}
        attentions: dict[str, tuple[torch.Tensor, ...]] = {}
        for name, source in self.query_sources.items():  # dict order is query order
            projected = shared_projection if shared_projection is not None else self.project(encoder_tokens, name)
            query = projected if source == "projection" else outputs[source]
            outputs[name], attentions[name] = self.decoders[name](query, projected)
        return outputs, attentions

    # ---------------------------------------------------------------- checks
    def check_pixel_values(self, pixel_values: torch.Tensor) -> None:
        enc = self.config.encoder_config
        expected = (self.config.num_frames, enc.num_channels, *self.config.image_size)
        if pixel_values.ndim != 5 or tuple(pixel_values.shape[1:]) != expected:
            raise ValueError(
                f"pixel_values must have shape (batch, {', '.join(map(str, expected))}) = (batch, frames, channels, "
                f"height, width); got {tuple(pixel_values.shape)}. Use the model's video processor to sample "
                f"{self.config.num_frames} frames and resize them."
            )

    def check_encoder_tokens(self, tokens: torch.Tensor) -> None:
        expected = (self.config.num_tokens, self.config.encoder_config.hidden_size)
        if tokens.ndim != 3 or tuple(tokens.shape[1:]) != expected:
            raise ValueError(
                f"encoder_outputs must hold encoder tokens of shape (batch, {expected[0]}, {expected[1]}) = (batch, "
                f"num_tokens, encoder hidden_size); got {tuple(tokens.shape)}. Compute them with "
                "`model.encode(pixel_values)` on a model with the same encoder config."
            )

    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        encoder_outputs: BaseModelOutput | tuple | torch.Tensor | None = None,
    ) -> MTCAEModelOutput | tuple:
        r"""
        pixel_values (`torch.FloatTensor` of shape `(batch_size, num_frames, num_channels, height, width)`, *optional*):
            Normalised frames, as `MTCAEVideoProcessor` returns them.
        output_attentions, output_hidden_states, return_dict (`bool`, *optional*):
            As everywhere in transformers; `None` takes the config's value.
        encoder_outputs (`BaseModelOutput`, `tuple` or `torch.FloatTensor`, *optional*):
            Precomputed encoder tokens `(batch_size, num_tokens, encoder_hidden_size)` instead of
            `pixel_values` (exactly one of the two): a tensor (as [`MTCAEModel.encode`] returns it), a
            `BaseModelOutput` or a tuple whose first item is the tokens. The encoder is then skipped; with a
            frozen encoder the outputs and every decoder gradient are those of `forward(pixel_values)`.
            Tokens in another float dtype (a bf16 feature cache) are cast to the model's dtype.
        """
        output_attentions, output_hidden_states, return_dict = _output_flags(
            self.config, output_attentions, output_hidden_states, return_dict
        )
        if output_attentions and self.config._attn_implementation != "eager":
            logger.warning_once(
                f"output_attentions=True with attn_implementation={self.config._attn_implementation!r}: only 'eager' "
                "returns attention maps. Call model.set_attn_implementation('eager') to get them."
            )
        encoder_outputs = self.resolve_encoder_outputs(
            pixel_values, encoder_outputs, output_attentions, output_hidden_states
        )
        task_tokens, cross_attentions = self.forward_decoders(encoder_outputs.last_hidden_state)
        output = MTCAEModelOutput(
            last_hidden_state=task_tokens["expression"],
            face_detection_hidden_state=task_tokens.get("face_detection"),
            face_landmark_hidden_state=task_tokens.get("face_landmark"),
            encoder_last_hidden_state=encoder_outputs.last_hidden_state,
            hidden_states=encoder_outputs.hidden_states if output_hidden_states else None,
            attentions=encoder_outputs.attentions if output_attentions else None,
            decoder_cross_attentions=cross_attentions if output_attentions else None,
        )
        return output if return_dict else output.to_tuple()


# ----------------------------------------------------------------------------------------------
# Heads and losses
# ----------------------------------------------------------------------------------------------
class MTCAEForVideoClassification(MTCAEPreTrainedModel):
    """MTCAE-DFER with its three heads: per-frame face boxes, per-frame landmarks and the expression."""

    def __init__(self, config: MTCAEConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.mtcae = MTCAEModel(config)
        if config.has_face_tasks:
            self.face_detection_head = MTCAEPooledHead(config, config.num_frames * 4)
            self.face_landmark_head = MTCAEPooledHead(config, config.num_frames * config.num_landmarks * 2)
        else:
            self.face_detection_head = None
            self.face_landmark_head = None
        self.expression_head = MTCAEPooledHead(config, config.num_labels)
        self.post_init()

    @classmethod
    def from_videomae(
        cls, encoder_name_or_path: str, preset: str = "base", hub_kwargs: dict | None = None, **config_overrides
    ) -> MTCAEForVideoClassification:
        """A new MTCAE-DFER whose encoder sizes and weights come from a VideoMAE checkpoint.

        Args:
            encoder_name_or_path: Hub id or folder of a transformers VideoMAE checkpoint.
            preset: the preset giving the decoder side (`"paper"`, `"base"`, ...).
            hub_kwargs: forwarded to `from_pretrained` (`revision`, `local_files_only`, ...).
            config_overrides: any `MTCAEConfig` field (e.g. `num_labels`, `id2label`, `freeze_encoder`).
        """
        hub_kwargs = hub_kwargs or {}
        checkpoint_config = VideoMAEConfig.from_pretrained(encoder_name_or_path, **hub_kwargs)
        encoder_fields = {field: getattr(checkpoint_config, field) for field in ENCODER_ARCHITECTURE_FIELDS}
        encoder_fields.update(
            num_frames=checkpoint_config.num_frames,
            hidden_act=checkpoint_config.hidden_act,
            layer_norm_eps=checkpoint_config.layer_norm_eps,
        )
        encoder_fields.update(config_overrides.pop("encoder_config", None) or {})
        config = MTCAEConfig.from_preset(preset, encoder_config=encoder_fields, **config_overrides)
        model = cls(config)
        model.encoder_loading_report = model.load_encoder_weights(encoder_name_or_path, **hub_kwargs)
        return model

    def init_patch_embedding_from_data(self, pixel_values: torch.Tensor, eps: float = 1e-2) -> torch.Tensor:
        """See :meth:`MTCAEModel.init_patch_embedding_from_data`."""
        return self.mtcae.init_patch_embedding_from_data(pixel_values, eps=eps)

    # ---------------------------------------------------------------- heads
    def forward_heads(self, outputs: MTCAEModelOutput) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        logits = self.expression_head(outputs.last_hidden_state)
        if self.face_detection_head is None:
            return logits, None, None
        batch, frames = logits.shape[0], self.config.num_frames
        boxes = self.face_detection_head(outputs.face_detection_hidden_state).view(batch, frames, 4)
        landmarks = self.face_landmark_head(outputs.face_landmark_hidden_state).view(
            batch, frames, self.config.num_landmarks, 2
        )
        return logits, boxes, landmarks

    # ---------------------------------------------------------------- losses
    @staticmethod
    def masked_mse(prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """Mean squared error over the frames where `mask` is True; 0 (with a graph) when none is."""
        if target.shape != prediction.shape:
            raise ValueError(f"face target shape {tuple(target.shape)} != prediction shape {tuple(prediction.shape)}")
        if mask is None:
            return F.mse_loss(prediction, target.to(prediction.dtype))
        frame_mask = mask.to(torch.bool).view(*mask.shape, *([1] * (prediction.ndim - 2)))
        # Masked frames may hold NaN placeholders: replace them before the difference (a product or a
        # single torch.where would still send NaN gradients back through the unselected branch).
        target = torch.where(frame_mask, target.to(prediction.dtype), prediction.detach())
        squared = torch.where(frame_mask, (prediction - target) ** 2, 0.0)
        values_per_frame = prediction[0, 0].numel()
        count = frame_mask.sum() * values_per_frame
        return squared.sum() / count.clamp(min=1)

    def forward_loss(
        self,
        logits: torch.Tensor,
        boxes: torch.Tensor | None,
        landmarks: torch.Tensor | None,
        labels: torch.Tensor | None,
        face_boxes: torch.Tensor | None,
        face_landmarks: torch.Tensor | None,
        face_mask: torch.Tensor | None,
    ) -> tuple[torch.Tensor | None, dict[str, torch.Tensor | None]]:
        config = self.config
        losses: dict[str, torch.Tensor | None] = {
            "loss_expression": None, "loss_face_boxes": None, "loss_face_landmarks": None
        }
        total = None
        if labels is not None:
            if labels.min() < 0 or labels.max() >= self.num_labels:
                raise ValueError(
                    f"labels must be class ids in [0, {self.num_labels - 1}] (config.num_labels={self.num_labels}); "
                    f"got values from {int(labels.min())} to {int(labels.max())}. Check the label set against "
                    "config.id2label."
                )
            losses["loss_expression"] = F.cross_entropy(
                logits.float(), labels.long(), label_smoothing=config.label_smoothing
            )
            total = config.loss_weight_expression * losses["loss_expression"]
        if boxes is not None and face_boxes is not None:
            losses["loss_face_boxes"] = self.masked_mse(boxes.float(), face_boxes, face_mask)
            total = _add(total, config.loss_weight_face_boxes * losses["loss_face_boxes"])
        if landmarks is not None and face_landmarks is not None:
            losses["loss_face_landmarks"] = self.masked_mse(landmarks.float(), face_landmarks, face_mask)
            total = _add(total, config.loss_weight_face_landmarks * losses["loss_face_landmarks"])
        if total is not None and boxes is not None and (face_boxes is None or face_landmarks is None):
            # Keep every head in the graph with a zero term, so DDP sees gradients for all parameters
            # even when a batch carries no face targets.
            total = total + 0.0 * (boxes.sum() + landmarks.sum())
        return total, losses

    def encode(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """See :meth:`MTCAEModel.encode`: the encoder tokens to store in a frozen-encoder feature cache."""
        return self.mtcae.encode(pixel_values)

    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        face_boxes: torch.Tensor | None = None,
        face_landmarks: torch.Tensor | None = None,
        face_mask: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        encoder_outputs: BaseModelOutput | tuple | torch.Tensor | None = None,
    ) -> MTCAEForVideoClassificationOutput | tuple:
        r"""
        pixel_values (`torch.FloatTensor` of shape `(batch_size, num_frames, 3, height, width)`, *optional*):
            Normalised frames, as `MTCAEVideoProcessor` returns them.
        labels (`torch.LongTensor` of shape `(batch_size,)`, *optional*):
            Expression class ids in `[0, config.num_labels)`.
        face_boxes (`torch.FloatTensor` of shape `(batch_size, num_frames, 4)`, *optional*):
            Target face box per frame, `[x, y, w, h]` normalised to the model input.
        face_landmarks (`torch.FloatTensor` of shape `(batch_size, num_frames, num_landmarks, 2)`, *optional*):
            Target landmarks per frame, normalised to the model input.
        face_mask (`torch.BoolTensor` of shape `(batch_size, num_frames)`, *optional*):
            False for frames with no face: they add nothing to the box and landmark losses.
        output_attentions, output_hidden_states, return_dict (`bool`, *optional*):
            As everywhere in transformers; `None` takes the config's value.
        encoder_outputs (`BaseModelOutput`, `tuple` or `torch.FloatTensor`, *optional*):
            Precomputed encoder tokens instead of `pixel_values` (exactly one of the two), e.g. from a
            frozen-encoder feature cache filled with [`encode`]; see [`MTCAEModel.forward`].
        """
        _, _, return_dict = _output_flags(self.config, output_attentions, output_hidden_states, return_dict)
        outputs = self.mtcae(
            pixel_values,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            return_dict=True,
            encoder_outputs=encoder_outputs,
        )
        logits, boxes, landmarks = self.forward_heads(outputs)
        loss, losses = self.forward_loss(logits, boxes, landmarks, labels, face_boxes, face_landmarks, face_mask)
        output = MTCAEForVideoClassificationOutput(
            loss=loss,
            logits=logits,
            face_boxes=boxes,
            face_landmarks=landmarks,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
            decoder_cross_attentions=outputs.decoder_cross_attentions,
            **losses,
        )
        return output if return_dict else output.to_tuple()


_VIDEOMAE_QV_BIAS = re.compile(r"(attention\.attention)\.(q|v)_bias$")


def _rename_videomae_qv_biases(module, state_dict, prefix, *args, **kwargs) -> None:
    """Load-state-dict pre-hook: `...attention.attention.q_bias` -> `...attention.attention.query.bias` (and v)."""
    for key in [k for k in state_dict if k.startswith(prefix) and _VIDEOMAE_QV_BIAS.search(k)]:
        new_key = _VIDEOMAE_QV_BIAS.sub(lambda m: f"{m.group(1)}.{'query' if m.group(2) == 'q' else 'value'}.bias", key)
        state_dict[new_key] = state_dict.pop(key)


def _add(total: torch.Tensor | None, term: torch.Tensor) -> torch.Tensor:
    return term if total is None else total + term


def _output_flags(
    config: MTCAEConfig, output_attentions: bool | None, output_hidden_states: bool | None, return_dict: bool | None
) -> tuple[bool, bool | int | list[int], bool]:
    """The forward's output flags, each taken from the config when the call leaves it `None` (as transformers does)."""
    return (
        config.output_attentions if output_attentions is None else output_attentions,
        config.output_hidden_states if output_hidden_states is None else output_hidden_states,
        config.return_dict if return_dict is None else return_dict,
    )


MTCAEConfig.register_for_auto_class()
MTCAEModel.register_for_auto_class("AutoModel")
MTCAEForVideoClassification.register_for_auto_class("AutoModelForVideoClassification")

__all__ = ["MTCAEForVideoClassification", "MTCAEForVideoClassificationOutput", "MTCAEModel", "MTCAEModelOutput",
           "MTCAEPreTrainedModel"]
