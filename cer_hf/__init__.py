"""cer_hf: compound facial expression recognition on the Hugging Face stack.

Importing the package registers `ViTForCompoundExpression` with the transformers Auto classes,
so `AutoModelForImageClassification.from_pretrained(path)` works without remote code.
"""

from transformers import AutoConfig, AutoModel, AutoModelForImageClassification

from cer_hf.extensions.multitask.modeling import ViTForMultiTaskExpression, ViTMultiTaskExpressionConfig  # registers with the Auto classes
from cer_hf.inference.predictor import CompoundExpressionPredictor, CompoundPrediction
from cer_hf.modeling.cnn import CNNForCompoundExpression, CNNForCompoundExpressionConfig
from cer_hf.modeling.configuration_cer import ViTForCompoundExpressionConfig
from cer_hf.modeling.modeling_cer import CompoundExpressionOutput, ViTForCompoundExpression

__version__ = "0.1.0"

AutoConfig.register(ViTForCompoundExpressionConfig.model_type, ViTForCompoundExpressionConfig, exist_ok=True)
AutoModel.register(ViTForCompoundExpressionConfig, ViTForCompoundExpression, exist_ok=True)
AutoModelForImageClassification.register(ViTForCompoundExpressionConfig, ViTForCompoundExpression, exist_ok=True)
AutoConfig.register(CNNForCompoundExpressionConfig.model_type, CNNForCompoundExpressionConfig, exist_ok=True)
AutoModelForImageClassification.register(CNNForCompoundExpressionConfig, CNNForCompoundExpression, exist_ok=True)
# A pushed checkpoint then carries `auto_map` and loads with trust_remote_code where cer_hf is absent.
ViTForCompoundExpressionConfig.register_for_auto_class()
ViTForCompoundExpression.register_for_auto_class("AutoModelForImageClassification")


__all__ = [
    "CNNForCompoundExpression",
    "CNNForCompoundExpressionConfig",
    "CompoundExpressionOutput",
    "CompoundExpressionPredictor",
    "CompoundPrediction",
    "ViTForCompoundExpression",
    "ViTForCompoundExpressionConfig",
    "ViTForMultiTaskExpression",
    "ViTMultiTaskExpressionConfig",
]
