"""`ViTMAEForPreTraining` with the optional convolutional stem of `ViTForCompoundExpression`.

transformers' ViTMAE patchifies with one strided convolution. For small face datasets the
encoder learns far more with a convolutional stem in front of the patch projection (see
docs/curriculum.md, "Small data"), so a config may carry `conv_stem_channels`; the MAE then gets
the same `ViTCompoundExpressionConvStem` the fine-tuning model has, under the same parameter
names, and conversion copies it one to one.

    config = mae_config("tiny", image_size=64, patch_size=8, conv_stem_channels=[32, 64, 128])
    model = build_mae_for_pretraining(config)          # a ViTMAEForPreTraining
    model.save_pretrained(out)                          # config.json keeps conv_stem_channels
    model = load_mae_for_pretraining(out)               # rebuilt with the stem, weights loaded

A convolution would let a visible patch see its masked neighbours (the "pooled" stem's receptive field
spans much of a small face), turning reconstruction into copying. So the pixels of masked patches are
set to zero (the normalised mean colour) before the stem runs, as in sparse-convolution MAEs
(SparK, ConvMAE): the encoder sees exactly what plain MAE's encoder sees.
Without `conv_stem_channels` everything here is plain `ViTMAEForPreTraining`.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import safe_open
from transformers import ViTMAEConfig, ViTMAEForPreTraining, ViTMAEModel
from transformers.conversion_mapping import get_checkpoint_conversion_mapping, register_checkpoint_conversion_mapping
from transformers.models.vit_mae.modeling_vit_mae import ViTMAEEmbeddings, ViTMAEPatchEmbeddings

from cer_hf.modeling.modeling_cer import ViTCompoundExpressionConvStem, stem_projection_stride


class ViTMAEConvStemPatchEmbeddings(ViTMAEPatchEmbeddings):
    """ViTMAE's patch embeddings with a convolutional stem before a smaller-stride projection."""

    def __init__(self, config: ViTMAEConfig):
        super().__init__(config)
        channels = list(config.conv_stem_channels)
        style = getattr(config, "conv_stem_style", "strided")
        stride = stem_projection_stride(config.patch_size, channels, style)
        self.stem = ViTCompoundExpressionConvStem(config.num_channels, channels,
                                                  getattr(config, "conv_stem_convs_per_stage", 1), style)
        self.projection = torch.nn.Conv2d(channels[-1], config.hidden_size, kernel_size=stride, stride=stride)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.projection(self.stem(pixel_values)).flatten(2).transpose(1, 2)


def visible_pixels(noise: torch.Tensor, mask_ratio: float, patch_size: int) -> torch.Tensor:
    """`(batch, 1, H, W)` 1 where a pixel's patch stays visible under ViTMAE's `random_masking` with this noise."""
    batch, length = noise.shape
    keep = torch.argsort(noise, dim=1)[:, : int(length * (1 - mask_ratio))]
    visible = torch.zeros_like(noise).scatter_(1, keep, 1.0)
    grid = int(length**0.5)
    visible = visible.view(batch, 1, grid, grid)
    return visible.repeat_interleave(patch_size, dim=2).repeat_interleave(patch_size, dim=3)


class ViTMAEConvStemEmbeddings(ViTMAEEmbeddings):
    """ViTMAE's embeddings with the conv stem; masked patches are blanked before the stem sees them."""

    def __init__(self, config: ViTMAEConfig):
        super().__init__(config)
        self.patch_embeddings = ViTMAEConvStemPatchEmbeddings(config)

    def forward(self, pixel_values: torch.Tensor, noise: torch.Tensor | None = None,
                interpolate_pos_encoding: bool = False):
        if noise is None:  # the draw ViTMAE's random_masking would make, made here so the mask is known
            noise = torch.rand(pixel_values.shape[0], self.patch_embeddings.num_patches, device=pixel_values.device)
        visible = visible_pixels(noise, self.config.mask_ratio, self.config.patch_size)
        return super().forward(pixel_values * visible.to(pixel_values.dtype), noise, interpolate_pos_encoding)


def conv_stem_channels(config) -> list[int]:
    """The config's stem widths (empty: plain patchify)."""
    return list(getattr(config, "conv_stem_channels", None) or [])


class ViTMAEWithStemForPreTraining(ViTMAEForPreTraining):
    """`ViTMAEForPreTraining` whose patch embeddings get the config's conv stem (none: identical to the parent).

    Loading goes through transformers' own `from_pretrained` (its checkpoint key conversions included).
    """

    def __init__(self, config: ViTMAEConfig):
        super().__init__(config)
        if conv_stem_channels(config):
            self.vit.embeddings = ViTMAEConvStemEmbeddings(config)
            self.post_init()


class ViTMAEWithStemModel(ViTMAEModel):
    """The MAE encoder (`ViTMAEModel`) with the config's conv stem; loads the encoder of a pretraining checkpoint.

    The decoder's tensors are left out by design, so transformers does not list them as unexpected.
    """

    _keys_to_ignore_on_load_unexpected = [r"^decoder\."]

    def __init__(self, config: ViTMAEConfig):
        super().__init__(config)
        if conv_stem_channels(config):
            self.embeddings = ViTMAEConvStemEmbeddings(config)
            self.post_init()


# transformers converts ViTMAE checkpoint keys by class name: the subclasses load and save exactly like their parents.
register_checkpoint_conversion_mapping(
    "ViTMAEWithStemForPreTraining", get_checkpoint_conversion_mapping("ViTMAEForPreTraining"), overwrite=True)
register_checkpoint_conversion_mapping("ViTMAEWithStemModel", get_checkpoint_conversion_mapping("ViTMAEModel"), overwrite=True)


def build_mae_for_pretraining(config: ViTMAEConfig) -> ViTMAEForPreTraining:
    """A freshly initialised MAE for pretraining: plain `ViTMAEForPreTraining`, or with the config's conv stem."""
    return ViTMAEWithStemForPreTraining(config) if conv_stem_channels(config) else ViTMAEForPreTraining(config)


def load_mae_for_pretraining(path: str | Path, **kwargs) -> ViTMAEForPreTraining:
    """Load a saved MAE (with or without a conv stem) to continue pretraining; safetensors only."""
    config = ViTMAEConfig.from_pretrained(path)
    cls = ViTMAEWithStemForPreTraining if conv_stem_channels(config) else ViTMAEForPreTraining
    return cls.from_pretrained(path, config=config, use_safetensors=True, **kwargs)


def load_mae_encoder_model(path: str | Path, config: ViTMAEConfig) -> tuple[ViTMAEModel, int]:
    """The encoder of a saved MAE without its decoder; returns (model, number of decoder tensors left out).

    Any tensor the encoder misses, or that fits neither encoder nor decoder, is an error.
    """
    model, info = ViTMAEWithStemModel.from_pretrained(path, config=config, use_safetensors=True,
                                                      output_loading_info=True)
    if info["missing_keys"] or info["mismatched_keys"] or info["unexpected_keys"]:
        raise ValueError(f"{path}: the encoder does not match its config: missing {list(info['missing_keys'])[:3]}, "
                         f"mismatched {list(info['mismatched_keys'])[:3]}, unexpected {list(info['unexpected_keys'])[:3]}")
    with safe_open(str(Path(path) / "model.safetensors"), "pt") as weights:
        dropped = sum(name.startswith("decoder") for name in weights.keys())
    return model.eval(), dropped
