"""MTCAE-DFER as a transformers model.

Importing this package registers it with the Auto classes and registers the package-only CPU training
attention function `"mtcae_cpu_dropout"` (see `cpu_attention`) with transformers' `AttentionInterface`.
"""

from transformers import AutoConfig, AutoModel, AutoModelForVideoClassification

from .configuration_mtcae import DECODER_MODES, PRESETS, TASKS, MTCAEConfig
from .cpu_attention import ATTENTION_NAME as CPU_DROPOUT_ATTENTION
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

__all__ = ["CPU_DROPOUT_ATTENTION", "DECODER_MODES", "PRESETS", "TASKS", "MTCAEConfig", "MTCAEForVideoClassification",
           "MTCAEForVideoClassificationOutput", "MTCAEModel", "MTCAEModelOutput", "MTCAEPreTrainedModel"]
