"""A convolutional baseline with the same head, loss and compound scores as `ViTForCompoundExpression`.

`CNNForCompoundExpression` puts the toolkit's multi-label head on a transformers ResNet built from
a config (nothing downloaded): one sigmoid logit per basic expression, a compound scored as the
sum of its constituents' probabilities, the same BCE loss and output dataclass. The curriculum,
the metric, `cer-hf evaluate` and the predictor take it wherever they take the ViT, so a user can
see on their own faces whether the ViT earns its cost:

    --model_preset resnet-small          # instead of micro | tiny | small | base ...
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import PreTrainedModel, ResNetConfig, ResNetModel

from cer_hf.modeling.configuration_cer import ViTForCompoundExpressionConfig
from cer_hf.modeling.modeling_cer import CompoundExpressionOutput, compound_expression_output

# Small ResNets for small face images (basic blocks; widths double at each stage).
CNN_PRESETS: dict[str, dict] = {
    "resnet-tiny": dict(embedding_size=16, hidden_sizes=[16, 32, 64, 128], depths=[1, 1, 1, 1], layer_type="basic"),
    "resnet-small": dict(embedding_size=32, hidden_sizes=[32, 64, 128, 256], depths=[1, 1, 2, 1], layer_type="basic"),
    "resnet-18": dict(embedding_size=64, hidden_sizes=[64, 128, 256, 512], depths=[2, 2, 2, 2], layer_type="basic"),
}


class CNNForCompoundExpressionConfig(ViTForCompoundExpressionConfig):
    """The label space, compound set and head of `ViTForCompoundExpressionConfig`, with a ResNet backbone.

    `backbone` holds the `ResNetConfig` fields; the ViT encoder fields inherited from the parent
    (hidden_size, num_hidden_layers, ...) are not used by this model.
    """

    model_type = "cnn_compound_expression"

    def __init__(self, backbone: dict | None = None, **kwargs):
        self.backbone = dict(backbone or CNN_PRESETS["resnet-small"])
        super().__init__(**kwargs)


class CNNForCompoundExpression(PreTrainedModel):
    """ResNet features (global average pool) → dropout → one logit per basic; compound scores on top."""

    config_class = CNNForCompoundExpressionConfig
    base_model_prefix = "backbone"
    main_input_name = "pixel_values"
    accepts_loss_kwargs = False

    def __init__(self, config: CNNForCompoundExpressionConfig):
        super().__init__(config)
        self.backbone = ResNetModel(ResNetConfig(num_channels=config.num_channels, **config.backbone))
        width = config.backbone["hidden_sizes"][-1]
        self.head = nn.Sequential(nn.Dropout(config.head_dropout), nn.Linear(width, len(config.basic_labels)))
        self.post_init()

    def forward(self, pixel_values: torch.Tensor, labels: torch.Tensor | None = None, **kwargs
                ) -> CompoundExpressionOutput:
        features = self.backbone(pixel_values)
        pooled = features.pooler_output.flatten(1)
        return compound_expression_output(self.config, self.head(pooled), labels, pooled, features.last_hidden_state)


def cnn_compound_config(preset: str, compound_fields: dict, *, image_size: int, head_dropout: float = 0.0
                        ) -> CNNForCompoundExpressionConfig:
    """A CNN model config for a named ResNet size and the label fields of a compound config."""
    if preset not in CNN_PRESETS:
        raise ValueError(f"--model_preset {preset!r}: choose one of {', '.join(CNN_PRESETS)}")
    return CNNForCompoundExpressionConfig(backbone=CNN_PRESETS[preset], image_size=image_size,
                                          head_dropout=head_dropout, **compound_fields)
