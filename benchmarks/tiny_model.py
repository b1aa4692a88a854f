"""A saved random 32-px, hidden-32 ViTForCompoundExpression (ABAW7), for benchmark scripts that need any model."""

from __future__ import annotations

from pathlib import Path


def save_tiny_model(folder: Path) -> Path:
    """Save a seeded random tiny model and its image processor into `folder`; returns `folder`."""
    import torch
    from transformers.models.vit.image_processing_pil_vit import ViTImageProcessorPil

    from cer_hf.modeling.convert import compound_config
    from cer_hf.modeling.modeling_cer import ViTForCompoundExpression

    torch.manual_seed(0)
    config = compound_config("abaw7", image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2,
                             num_attention_heads=4, intermediate_size=64)
    ViTForCompoundExpression(config).save_pretrained(folder)
    ViTImageProcessorPil(size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder
