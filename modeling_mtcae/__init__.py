"""MTCAE-DFER as a transformers model. Importing this package registers it with the Auto classes."""

from transformers import AutoConfig, AutoModel, AutoModelForVideoClassification

from .configuration_mtcae import DECODER_MODES, PRESETS, TASKS, MTCAEConfig
from .modeling_mtcae import (
    MTCAEForVideoClassification,
    MTCAEForVideoClassificationOutput,
    MTCAEModel,
    MTCAEModelOutput,
    MTCAEPreTrainedModel,
)

AutoConfig.register(MTCAEConfig.model_type, MTCAEConfig, exist_ok=True)
AutoModel.register(MTCAEConfig, MTCAEModel, exist_ok=True)
AutoModelForVideoClassification.register(MTCAEConfig, MTCAEForVideoClassification, exist_ok=True)

__all__ = [
    "DECODER_MODES",
    "PRESETS",
    "TASKS",
    "MTCAEConfig",
    "MTCAEForVideoClassification",
    "MTCAEForVideoClassificationOutput",
    "MTCAEModel",
    "MTCAEModelOutput",
    "MTCAEPreTrainedModel",
]
