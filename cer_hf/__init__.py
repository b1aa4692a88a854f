"""cer_hf: compound facial expression recognition on the Hugging Face stack.

Importing the package registers `ViTForCompoundExpression` with the transformers Auto classes,
so `AutoModelForImageClassification.from_pretrained(path)` works without remote code.
"""

from transformers import AutoConfig, AutoModel, AutoModelForImageClassification

from .configuration_cer import ViTForCompoundExpressionConfig
from .modeling_cer import CompoundExpressionOutput, ViTForCompoundExpression
from .multitask import ViTForMultiTaskExpression, ViTMultiTaskExpressionConfig  # registers with the Auto classes

__version__ = "0.1.0"

AutoConfig.register(ViTForCompoundExpressionConfig.model_type, ViTForCompoundExpressionConfig, exist_ok=True)
AutoModel.register(ViTForCompoundExpressionConfig, ViTForCompoundExpression, exist_ok=True)
AutoModelForImageClassification.register(ViTForCompoundExpressionConfig, ViTForCompoundExpression, exist_ok=True)
# A pushed checkpoint then carries `auto_map` and loads with trust_remote_code where cer_hf is absent.
ViTForCompoundExpressionConfig.register_for_auto_class()
ViTForCompoundExpression.register_for_auto_class("AutoModelForImageClassification")


def __getattr__(name: str):
    # Lazy: the predictor pulls in image processing, which plain model use does not need.
    if name in ("CompoundExpressionPredictor", "CompoundPrediction"):
        from . import predict

        return getattr(predict, name)
    raise AttributeError(f"module 'cer_hf' has no attribute {name!r}")


__all__ = [
    "CompoundExpressionOutput",
    "CompoundExpressionPredictor",
    "CompoundPrediction",
    "ViTForCompoundExpression",
    "ViTForCompoundExpressionConfig",
    "ViTForMultiTaskExpression",
    "ViTMultiTaskExpressionConfig",
]
