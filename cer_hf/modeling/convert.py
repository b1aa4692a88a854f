"""Turn a pretrained ViTMAE encoder into a `ViTForCompoundExpression` (the decoder is dropped).

The copy is exact: with masking disabled, the converted encoder's last hidden states equal
the MAE encoder's. When the image size changes, the position embeddings are interpolated
bicubically, the same way ViTMAE's `interpolate_pos_encoding` does.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
import torch.nn.functional as F
from transformers import ViTMAEConfig, ViTMAEModel
from transformers.models.vit.image_processing_pil_vit import ViTImageProcessorPil

from cer_hf.modeling.configuration_cer import ViTForCompoundExpressionConfig
from cer_hf.modeling.mae import conv_stem_channels, load_mae_encoder_model
from cer_hf.modeling.modeling_cer import ViTForCompoundExpression
from cer_hf.image_io import FACE_MEAN, FACE_STD, IMAGENET_MEAN, IMAGENET_STD
from cer_hf.safe_weights import check_safe_folder
from cer_hf.taxonomy import EMOTION_BASICS, compound_set

logger = logging.getLogger(__name__)
# Fields that ViTMAEConfig and ViTForCompoundExpressionConfig share, copied one to one.
ENCODER_FIELDS = (
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "hidden_act",
    "hidden_dropout_prob",
    "attention_probs_dropout_prob",
    "initializer_range",
    "layer_norm_eps",
    "patch_size",
    "num_channels",
    "qkv_bias",
)


def compound_config(compound_set_name: str = "abaw7", **encoder_and_head) -> ViTForCompoundExpressionConfig:
    """A model config for a named compound set over the six basics (Neutral excluded)."""
    classes = compound_set(compound_set_name)
    return ViTForCompoundExpressionConfig(
        basic_labels=list(EMOTION_BASICS),
        compound_set=compound_set_name,
        compound_names=[c.name for c in classes],
        compound_constituents=[list(c.constituents) for c in classes],
        **encoder_and_head,
    )


def interpolate_position_embeddings(position_embeddings: torch.Tensor, new_grid: int) -> torch.Tensor:
    """Resize `(1, 1 + g², dim)` position embeddings to a `new_grid`² patch grid (CLS row kept)."""
    cls_row, patch_rows = position_embeddings[:, :1], position_embeddings[:, 1:]
    old_grid = int(patch_rows.shape[1] ** 0.5)
    if old_grid == new_grid:
        return position_embeddings.clone()
    dim = patch_rows.shape[-1]
    grid = patch_rows.reshape(1, old_grid, old_grid, dim).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, size=(new_grid, new_grid), mode="bicubic", align_corners=False)
    return torch.cat([cls_row, grid.permute(0, 2, 3, 1).reshape(1, -1, dim)], dim=1)


def mae_encoder_fields(mae_config: ViTMAEConfig, image_size: int | None = None) -> dict:
    """The encoder fields of a new config built from an MAE config, `image_size` included (validated)."""
    old_size = mae_config.image_size if isinstance(mae_config.image_size, int) else mae_config.image_size[0]
    image_size = image_size or old_size
    if image_size % mae_config.patch_size:
        raise ValueError(f"--image-size {image_size} is not a multiple of the patch size {mae_config.patch_size}")
    fields = {field: getattr(mae_config, field) for field in ENCODER_FIELDS}
    return {"image_size": image_size, **fields, "conv_stem_channels": conv_stem_channels(mae_config),
            "conv_stem_convs_per_stage": getattr(mae_config, "conv_stem_convs_per_stage", 1),
            "conv_stem_style": getattr(mae_config, "conv_stem_style", "strided")}


def mae_encoder_state(mae: ViTMAEModel, image_size: int) -> dict[str, torch.Tensor]:
    """The MAE encoder's tensors under our `vit.` names, position embeddings resized to `image_size`."""
    state = {f"vit.{name}": tensor for name, tensor in mae.state_dict().items()}
    state["vit.embeddings.position_embeddings"] = interpolate_position_embeddings(
        state["vit.embeddings.position_embeddings"], image_size // mae.config.patch_size
    )
    return state


def convert_mae_model(
    mae: ViTMAEModel,
    *,
    compound_set_name: str = "abaw7",
    image_size: int | None = None,
    **head_options,
) -> ViTForCompoundExpression:
    """Copy a loaded `ViTMAEModel`'s encoder into a new `ViTForCompoundExpression` (head freshly initialised).

    `head_options` are further `ViTForCompoundExpressionConfig` fields (pooling, head_hidden_sizes, …).
    """
    config = compound_config(compound_set_name, **mae_encoder_fields(mae.config, image_size), **head_options)
    model = ViTForCompoundExpression(config)
    missing, unexpected = model.load_state_dict(mae_encoder_state(mae, config.image_size), strict=False)
    if unexpected or any(name.startswith("vit.") for name in missing):
        raise ValueError(f"MAE encoder does not match: missing {missing}, unexpected {unexpected}")
    return model


def load_mae_encoder(mae_dir: str | Path) -> ViTMAEModel:
    """Load the encoder of a saved `ViTMAEForPreTraining` or `ViTMAEModel` checkpoint (safetensors only).

    The decoder is left out by design and said so in one log line; a tensor the encoder misses,
    or one that belongs to no part of the MAE, is an error.
    """
    path = Path(mae_dir)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"{path}: no config.json here; expected a saved ViTMAE checkpoint directory")
    config = ViTMAEConfig.from_pretrained(path)
    if config.model_type != "vit_mae":
        raise ValueError(f"{path}/config.json has model_type {config.model_type!r}, expected 'vit_mae'")
    check_safe_folder(path)  # safetensors only: a pytorch_model.bin-only checkpoint is refused, never unpickled
    model, dropped = load_mae_encoder_model(path, config)
    logger.info(f"[convert] {path}: encoder loaded; the decoder ({dropped} tensors) is dropped by design")
    if not model.embeddings.position_embeddings.any():
        logger.warning(f"[convert] {path}: the position embeddings are all zero, so this MAE learned without "
                       "positions (a fresh transformers 5.24 ViTMAEForPreTraining; docs/pretraining.md, "
                       "'Initialisation'); pretrain it again with recipes/pretrain_mae.py")
    return model


def image_processor_for(mae_dir: str | Path, image_size: int) -> ViTImageProcessorPil:
    """The MAE checkpoint's image processor resized to `image_size` (ImageNet statistics if it has none)."""
    path = Path(mae_dir)
    if (path / "preprocessor_config.json").is_file():
        processor = ViTImageProcessorPil.from_pretrained(path)
        mean, std = processor.image_mean, processor.image_std
    else:
        mean, std = list(IMAGENET_MEAN), list(IMAGENET_STD)
    return ViTImageProcessorPil(size={"height": image_size, "width": image_size}, image_mean=mean, image_std=std)


def checkpoint_normalization(mae_dir: str | Path | None, image_size: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, std) the model must see: the MAE checkpoint's image processor's (`image_processor_for`), or, for a
    fresh model (`mae_dir` None), the ABAW7 face statistics that fresh models record in their processors."""
    if mae_dir is None:
        return tuple(FACE_MEAN), tuple(FACE_STD)
    processor = image_processor_for(mae_dir, image_size)
    return tuple(processor.image_mean), tuple(processor.image_std)


def convert_mae_checkpoint(
    mae_dir: str | Path,
    out_dir: str | Path,
    *,
    compound_set_name: str = "abaw7",
    image_size: int | None = None,
    seed: int = 0,
    **head_options,
) -> ViTForCompoundExpression:
    """Convert a saved MAE checkpoint and save the result (safetensors + image processor) to `out_dir`."""
    torch.manual_seed(seed)  # the new head's initialisation
    model = convert_mae_model(
        load_mae_encoder(mae_dir), compound_set_name=compound_set_name, image_size=image_size, **head_options
    )
    model.save_pretrained(out_dir)
    image_processor_for(mae_dir, model.config.image_size).save_pretrained(out_dir)
    return model


