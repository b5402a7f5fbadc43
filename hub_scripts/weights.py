"""Checks on a model's weights shared by training, the Hub push and prediction."""

from __future__ import annotations


def non_finite_parameters(model) -> list[str]:
    """Names of the parameters and buffers of ``model`` that hold a NaN or an infinity."""
    import torch

    tensors = [*model.named_parameters(), *model.named_buffers()]
    return [name for name, tensor in tensors if tensor.is_floating_point() and not torch.isfinite(tensor).all()]


def check_finite_weights(model, source: str) -> None:
    """Raise ``ValueError`` naming ``source`` when any weight of ``model`` is NaN or infinite."""
    bad = non_finite_parameters(model)
    if bad:
        raise ValueError(f"the weights in {source} are not finite ({len(bad)} tensors hold NaN or inf, e.g. "
                         f"{', '.join(bad[:3])}): the run that wrote them diverged; it must not be pushed or used")


__all__ = ["check_finite_weights", "non_finite_parameters"]
