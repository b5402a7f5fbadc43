"""A trained MTCAE-DFER model and its processor, loaded once for every tool (prediction, the Hub push, export, the
demo app), and the check that its weights are finite (training refuses to save, and these tools to use, a
diverged model)."""

from __future__ import annotations

import warnings

import torch

from modeling_mtcae import MTCAEForVideoClassification
from processing.video_processing_mtcae import MTCAEVideoProcessor

LOADING_PROBLEMS = ("missing_keys", "unexpected_keys", "mismatched_keys")


class ModelLoadError(ValueError):
    """The weights of a model folder or repo do not fit this version's code, or are not finite."""


def non_finite_parameters(model) -> list[str]:
    """Names of the parameters and buffers of ``model`` that hold a NaN or an infinity."""
    tensors = [*model.named_parameters(), *model.named_buffers()]
    return [name for name, tensor in tensors if tensor.is_floating_point() and not torch.isfinite(tensor).all()]


def check_finite_weights(model, source: str) -> None:
    """Raise :class:`ModelLoadError` naming ``source`` when any weight of ``model`` is NaN or infinite."""
    bad = non_finite_parameters(model)
    if bad:
        raise ModelLoadError(f"the weights in {source} are not finite ({len(bad)} tensors hold NaN or inf, e.g. "
                             f"{', '.join(bad[:3])}): the run that wrote them diverged; it must not be pushed or used")


def load_processor(model_name_or_path: str, config, revision: str | None = None) -> MTCAEVideoProcessor:
    """The model's saved video processor; without one, the default processor for the model's frames and size
    (with a warning)."""
    kwargs = {"revision": revision} if revision else {}
    try:
        return MTCAEVideoProcessor.from_pretrained(str(model_name_or_path), **kwargs)
    except (OSError, ValueError):
        height, width = config.image_size
        warnings.warn(f"{model_name_or_path} has no video processor config; using the default processor "
                      f"for {config.num_frames} frames of {height}x{width}.", stacklevel=2)
        return MTCAEVideoProcessor(num_frames=config.num_frames, size={"height": height, "width": width})


def load_trained_model(model_name_or_path: str, revision: str | None = None
                       ) -> tuple[MTCAEForVideoClassification, MTCAEVideoProcessor]:
    """The model (eval mode, CPU, float32) and its processor, with the installed ``mtcae-dfer`` classes.

    Works for a training output folder, a folder made by ``mtcae-push-to-hub`` and a Hub repo id.

    Raises:
        ModelLoadError: weights missing, unexpected or of the wrong shape for the config (each named), or not
            finite.
    """
    kwargs = {"revision": revision} if revision else {}
    # Mismatched shapes are reported below by name (transformers would raise pointing at its own log).
    model, info = MTCAEForVideoClassification.from_pretrained(str(model_name_or_path), output_loading_info=True,
                                                              ignore_mismatched_sizes=True, **kwargs)
    problems = {k: v for k, v in info.items() if k in LOADING_PROBLEMS and v}
    if problems.get("mismatched_keys"):
        problems["mismatched_keys"] = [key if isinstance(key, str) else key[0] for key in problems["mismatched_keys"]]
    if problems:
        raise ModelLoadError(f"the weights of {model_name_or_path} do not fit this version of mtcae-dfer: {problems}")
    check_finite_weights(model, str(model_name_or_path))
    return model.eval(), load_processor(model_name_or_path, model.config, revision)


__all__ = ["ModelLoadError", "check_finite_weights", "load_processor", "load_trained_model", "non_finite_parameters"]
