"""A faster CPU training path for attention with dropout, as a registered transformers attention function.

Package-only: ``modeling_mtcae.py`` (the Hub remote code) does not import this file, so it is not saved
next to the weights; importing the ``modeling_mtcae`` package registers it. Opt in per model::

    import modeling_mtcae  # registers "mtcae_cpu_dropout"
    model.set_attn_implementation("mtcae_cpu_dropout")
    # or MTCAEConfig.from_preset(..., attn_implementation="mtcae_cpu_dropout")

Why: PyTorch's CPU flash-attention kernel has no dropout, so ``F.scaled_dot_product_attention`` with
``dropout_p > 0`` (the decoders train with attention dropout 0.3) falls back on CPU to its unfused math
path: a "safe" softmax with extra passes over the (tokens x tokens) scores, a Bernoulli mask that is slow
to draw, a separate rescale pass, and three score-sized tensors kept for backward.
:class:`CPUAttentionWithDropout` computes the same thing with fewer passes. Everything else (no dropout,
evaluation, other devices or dtypes, CPU autocast, masks) is delegated to transformers' ``"sdpa"``
function, so the encoder (no attention dropout) runs exactly as with ``"sdpa"``. The measured gain is in
BENCHMARKS.md. The attention implementation is not saved in ``config.json``: a saved model loads with
``"sdpa"`` wherever this package is absent.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import AttentionInterface
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

ATTENTION_NAME = "mtcae_cpu_dropout"


class CPUAttentionWithDropout(torch.autograd.Function):
    """`dropout(softmax(q @ k^T * scale)) @ v` for float32 CPU tensors `(batch, heads, tokens, head_dim)`.

    The keep mask (1.0 / 0.0) is written in place over a `torch.rand` draw, the `1 / (1 - p)` rescale
    is applied to the small (tokens x head_dim) results instead of the scores, and backward keeps only
    the probabilities and the mask (8 bytes per score instead of 12), recomputing the dropped
    probabilities. Same distribution and expectation as sdpa's dropout; only the random stream differs.
    """

    @staticmethod
    def forward(ctx, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, scale: float, dropout: float):
        scores = torch.matmul(query, key.transpose(-2, -1)).mul_(scale)
        probs = torch.softmax(scores, dim=-1)
        del scores
        # Keep with probability 1 - p: rand >= p, written in place as 1.0 / 0.0 in the draw's own float
        # tensor (a bool mask would be cast to float again by every multiply).
        keep = torch.rand(probs.shape, dtype=torch.float32, device=probs.device).ge_(dropout)
        keep_scale = 1.0 / (1.0 - dropout)
        ctx.scale, ctx.keep_scale = scale, keep_scale
        ctx.save_for_backward(query, key, value, probs, keep)
        return torch.matmul(probs * keep, value).mul_(keep_scale)

    @staticmethod
    def backward(ctx, grad_context: torch.Tensor):
        query, key, value, probs, keep = ctx.saved_tensors
        grad_value = torch.matmul((probs * keep).transpose(-2, -1), grad_context).mul_(ctx.keep_scale)
        grad_probs = torch.matmul(grad_context, value.transpose(-2, -1)).mul_(keep)
        # torch's fused softmax backward, probs * (grad - sum(grad * probs)), in one pass over the scores.
        grad_scores = torch._softmax_backward_data(grad_probs, probs, -1, probs.dtype)
        del grad_probs
        factor = ctx.scale * ctx.keep_scale
        grad_query = torch.matmul(grad_scores, key).mul_(factor)
        grad_key = torch.matmul(grad_scores.transpose(-2, -1), query).mul_(factor)
        return grad_query, grad_key, grad_value, None, None


def uses_fast_path(query: torch.Tensor, dropout: float, attention_mask: torch.Tensor | None = None) -> bool:
    """Whether :class:`CPUAttentionWithDropout` applies: float32 CPU, dropout on, no mask, no CPU autocast."""
    return (
        dropout > 0.0
        and attention_mask is None
        and query.device.type == "cpu"
        and query.dtype == torch.float32
        and not torch.is_autocast_enabled("cpu")
    )


def cpu_dropout_attention_forward(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    is_causal: bool | None = None,
    **kwargs,
) -> tuple[torch.Tensor, None]:
    """An `AttentionInterface` function: the CPU fast path in training with dropout, transformers' sdpa otherwise.

    Returns `(context as (batch, query_tokens, heads, head_dim), None)` like the sdpa function.
    """
    is_causal = getattr(module, "is_causal", True) if is_causal is None else is_causal  # as the sdpa function reads it
    if is_causal or not uses_fast_path(query, dropout, attention_mask):
        return ALL_ATTENTION_FUNCTIONS["sdpa"](
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, is_causal=is_causal, **kwargs
        )
    scaling = query.shape[-1] ** -0.5 if scaling is None else scaling
    context = CPUAttentionWithDropout.apply(query, key, value, scaling, dropout)
    return context.transpose(1, 2).contiguous(), None


def register() -> None:
    """Register :func:`cpu_dropout_attention_forward` as `"mtcae_cpu_dropout"` (done on package import)."""
    AttentionInterface.register(ATTENTION_NAME, cpu_dropout_attention_forward)


register()

__all__ = ["ATTENTION_NAME", "CPUAttentionWithDropout", "cpu_dropout_attention_forward", "register", "uses_fast_path"]
