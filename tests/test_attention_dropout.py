"""The package-only CPU attention-with-dropout function, registered as "mtcae_cpu_dropout" (issues 6 and 11)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from mtcae_test_utils import tiny_config
from transformers import AttentionInterface

from modeling_mtcae import CPU_DROPOUT_ATTENTION, MTCAEForVideoClassification
from modeling_mtcae.cpu_attention import (
    CPUAttentionWithDropout,
    cpu_dropout_attention_forward,
    uses_fast_path,
)

HUB_FILES = ("modeling_mtcae.py", "configuration_mtcae.py")


def _qkv(seed: int = 0, dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, ...]:
    generator = torch.Generator().manual_seed(seed)
    shapes = ((2, 3, 12, 8), (2, 3, 10, 8), (2, 3, 10, 5))
    return tuple(torch.randn(*shape, generator=generator, dtype=dtype, requires_grad=True) for shape in shapes)


def _reference(query, key, value, scale, dropout, keep):
    """Plain autograd: softmax, dropout with the given keep mask, matmul."""
    probs = torch.softmax(query @ key.transpose(-2, -1) * scale, dim=-1)
    return (probs * keep / (1.0 - dropout)) @ value


@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_matches_autograd_with_the_same_mask(dropout):
    query, key, value = _qkv()
    scale = 0.4
    torch.manual_seed(123)
    ours = CPUAttentionWithDropout.apply(query, key, value, scale, dropout)
    torch.manual_seed(123)  # the function draws its mask with torch.rand on the default generator
    keep = torch.rand(2, 3, 12, 10) >= dropout
    grad = torch.randn_like(ours)
    ours_grads = torch.autograd.grad(ours, (query, key, value), grad)
    reference = _reference(query, key, value, scale, dropout, keep)
    reference_grads = torch.autograd.grad(reference, (query, key, value), grad)
    torch.testing.assert_close(ours, reference)
    for mine, theirs in zip(ours_grads, reference_grads):
        torch.testing.assert_close(mine, theirs)


def test_gradcheck_without_dropout():
    generator = torch.Generator().manual_seed(1)
    query, key, value = (
        torch.randn(*shape, generator=generator, dtype=torch.float64, requires_grad=True)
        for shape in ((1, 2, 4, 3), (1, 2, 5, 3), (1, 2, 5, 2))
    )

    def attention(q, k, v):
        return CPUAttentionWithDropout.apply(q, k, v, 0.3, 0.0)

    assert torch.autograd.gradcheck(attention, (query, key, value))


def test_drops_the_expected_fraction():
    query = torch.zeros(1, 1, 400, 4)
    value = torch.ones(1, 1, 400, 1)
    # Uniform probabilities 1/400: each output is (kept count) / 400 / (1 - p), about 1 on average.
    out = CPUAttentionWithDropout.apply(query, query, value, 1.0, 0.5)
    assert abs(out.mean().item() - 1.0) < 0.05


def test_fast_path_only_for_float32_cpu_with_dropout_and_no_mask():
    x = torch.zeros(1, 1, 2, 2)
    assert uses_fast_path(x, 0.3)
    assert not uses_fast_path(x, 0.0)
    assert not uses_fast_path(x, 0.3, attention_mask=torch.zeros(1, 1, 2, 2))
    assert not uses_fast_path(x.to(torch.bfloat16), 0.3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not uses_fast_path(x, 0.3)


def test_without_dropout_it_is_transformers_sdpa():
    query, key, value = (t.detach().float() for t in _qkv())
    module = torch.nn.Module()
    ours, weights = cpu_dropout_attention_forward(
        module, query, key, value, None, dropout=0.0, scaling=0.4, is_causal=False
    )
    sdpa, _ = AttentionInterface()["sdpa"](module, query, key, value, None, dropout=0.0, scaling=0.4, is_causal=False)
    assert weights is None
    torch.testing.assert_close(ours, sdpa, rtol=0, atol=0)
    # The layout is transformers' (batch, query_tokens, heads, head_dim), as the model reshapes it.
    assert ours.shape == (2, 12, 3, 5)


def test_registered_and_selectable_at_run_time():
    assert AttentionInterface()[CPU_DROPOUT_ATTENTION] is cpu_dropout_attention_forward
    torch.manual_seed(0)
    model = MTCAEForVideoClassification(tiny_config(decoder_attention_dropout=0.3)).eval()
    pixel_values = torch.randn(2, 4, 3, 32, 32)
    expected = model(pixel_values).logits
    model.set_attn_implementation(CPU_DROPOUT_ATTENTION)
    assert model.mtcae.encoder.config._attn_implementation == CPU_DROPOUT_ATTENTION
    torch.testing.assert_close(model(pixel_values).logits, expected, rtol=1e-6, atol=1e-6)  # eval: no dropout

    calls = []
    original = CPUAttentionWithDropout.apply
    CPUAttentionWithDropout.apply = lambda *args: calls.append(args[-1]) or original(*args)
    try:
        loss = model.train()(pixel_values, labels=torch.tensor([0, 1])).loss
    finally:
        CPUAttentionWithDropout.apply = original
    loss.backward()
    assert calls == [0.3] * (3 * model.config.decoder_num_layers)  # every decoder block, not the encoder
    query_weight = model.mtcae.decoders["expression"].blocks[0].cross_attention.query.weight
    assert torch.isfinite(loss) and query_weight.grad.abs().sum() > 0


@pytest.mark.parametrize("name", HUB_FILES)
def test_hub_files_use_no_private_torch_api_and_do_not_ship_the_fast_path(name):
    source = (Path(__file__).resolve().parents[1] / "modeling_mtcae" / name).read_text()
    assert not re.search(r"torch\._[a-z]", source)
    assert "cpu_attention" not in source and "autograd.Function" not in source
