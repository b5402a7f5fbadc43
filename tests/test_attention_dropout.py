"""The decoders' CPU dropout speed paths (issue 6): attention with dropout, and MTCAEDropout."""

from __future__ import annotations

import pytest
import torch

from modeling_mtcae.modeling_mtcae import MTCAEDropout, _CPUAttentionWithDropout, _use_cpu_dropout_attention


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
    ours = _CPUAttentionWithDropout.apply(query, key, value, scale, dropout)
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
        return _CPUAttentionWithDropout.apply(q, k, v, 0.3, 0.0)

    assert torch.autograd.gradcheck(attention, (query, key, value))


def test_drops_the_expected_fraction():
    query = torch.zeros(1, 1, 400, 4)
    value = torch.ones(1, 1, 400, 1)
    # Uniform probabilities 1/400: each output is (kept count) / 400 / (1 - p), about 1 on average.
    out = _CPUAttentionWithDropout.apply(query, query, value, 1.0, 0.5)
    assert abs(out.mean().item() - 1.0) < 0.05


def test_used_only_for_float32_cpu_with_dropout():
    x = torch.zeros(1, 1, 2, 2)
    assert _use_cpu_dropout_attention(x, 0.3)
    assert not _use_cpu_dropout_attention(x, 0.0)
    assert not _use_cpu_dropout_attention(x.to(torch.bfloat16), 0.3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not _use_cpu_dropout_attention(x, 0.3)


def test_mtcae_dropout_is_inverted_dropout_with_the_right_rate():
    dropout = MTCAEDropout(0.3).train()
    x = torch.ones(200_000, requires_grad=True)
    y = dropout(x)
    kept = y != 0
    assert abs(kept.float().mean().item() - 0.7) < 0.01
    torch.testing.assert_close(y[kept], torch.full_like(y[kept], 1 / 0.7))
    y.sum().backward()
    torch.testing.assert_close(x.grad, y.detach())  # gradient = the same mask and scale


def test_mtcae_dropout_is_identity_in_eval_and_nn_dropout_elsewhere():
    x = torch.randn(4, 5)
    assert MTCAEDropout(0.3).eval()(x) is x
    assert isinstance(MTCAEDropout(0.3), torch.nn.Dropout)
    torch.manual_seed(0)
    expected = torch.nn.functional.dropout(x.double(), 0.3, True)
    torch.manual_seed(0)
    torch.testing.assert_close(MTCAEDropout(0.3).train()(x.double()), expected)  # float64: nn.Dropout's path
