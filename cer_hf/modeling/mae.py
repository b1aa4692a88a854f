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
spans much of a small face), turning reconstruction into copying. `conv_stem_masking` picks how that is
prevented:

- "blank" (default): the pixels of masked patches are set to zero (the normalised mean colour) before the
  stem runs. BatchNorm then counts the blank 75 % in its statistics, so the stem learns on a distribution
  it never meets again in fine-tuning.
- "sparse": as in SparK (Tian et al., ICLR 2023), masked positions are zeroed again after every layer of
  the stem, and BatchNorm takes its statistics from visible positions only, so the stem's features on
  visible patches are distributed as on whole faces.

Either way the encoder sees exactly what plain MAE's encoder sees: nothing of a masked patch.
Without `conv_stem_channels` everything here is plain `ViTMAEForPreTraining`.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import safe_open
from transformers import ViTMAEConfig, ViTMAEForPreTraining, ViTMAEModel
from transformers.conversion_mapping import get_checkpoint_conversion_mapping, register_checkpoint_conversion_mapping
from transformers.models.vit_mae.modeling_vit_mae import (
    ViTMAEEmbeddings,
    ViTMAEPatchEmbeddings,
    build_2d_sinusoidal_position_embedding,
)

from cer_hf.modeling.modeling_cer import ViTCompoundExpressionConvStem, stem_projection_stride
from cer_hf.presets import CONV_STEM_MASKING


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


def masked_batch_norm(norm: torch.nn.BatchNorm2d, features: torch.Tensor, visible: torch.Tensor) -> torch.Tensor:
    """`norm` applied with statistics from the positions where `visible` (`(batch, 1, H, W)`) is 1.

    In training the running statistics are updated from those positions only, as BatchNorm would from
    a batch of whole images; in eval mode the running statistics are used, as usual.
    """
    if not norm.training:
        return norm(features)
    count = visible.sum() * 1.0
    mean = (features * visible).sum((0, 2, 3)) / count
    centred = (features - mean[None, :, None, None]) * visible
    var = centred.pow(2).sum((0, 2, 3)) / count
    with torch.no_grad():
        norm.num_batches_tracked += 1
        norm.running_mean.lerp_(mean.detach(), norm.momentum)
        norm.running_var.lerp_(var.detach() * count / max(count - 1, 1), norm.momentum)
    scale = norm.weight * torch.rsqrt(var + norm.eps)
    return (features - mean[None, :, None, None]) * scale[None, :, None, None] + norm.bias[None, :, None, None]


def sparse_stem(stem: ViTCompoundExpressionConvStem, pixel_values: torch.Tensor, visible: torch.Tensor) -> torch.Tensor:
    """Run `stem` on the visible patches only: masked positions are zero after every layer (SparK)."""
    features = pixel_values * visible
    for layer in stem.convs:
        features = masked_batch_norm(layer, features, visible) if isinstance(layer, torch.nn.BatchNorm2d) \
            else layer(features)
        if features.shape[-2:] != visible.shape[-2:]:  # a pool or a stride-2 conv; the mask is patch-aligned
            visible = torch.nn.functional.interpolate(visible, size=features.shape[-2:], mode="nearest")
        features = features * visible
    return features


class ViTMAEConvStemEmbeddings(ViTMAEEmbeddings):
    """ViTMAE's embeddings with the conv stem, which never sees a masked patch (`conv_stem_masking`)."""

    def __init__(self, config: ViTMAEConfig):
        super().__init__(config)
        self.patch_embeddings = ViTMAEConvStemPatchEmbeddings(config)
        masking = getattr(config, "conv_stem_masking", "blank")
        if masking not in CONV_STEM_MASKING:
            raise ValueError(f"conv_stem_masking {masking!r}: choose one of {', '.join(CONV_STEM_MASKING)}")
        self.sparse = masking == "sparse"

    def forward(self, pixel_values: torch.Tensor, noise: torch.Tensor | None = None,
                interpolate_pos_encoding: bool = False):
        if noise is None:  # the draw ViTMAE's random_masking would make, made here so the mask is known
            noise = torch.rand(pixel_values.shape[0], self.patch_embeddings.num_patches, device=pixel_values.device)
        visible = visible_pixels(noise, self.config.mask_ratio, self.config.patch_size).to(pixel_values.dtype)
        if not self.sparse:
            return super().forward(pixel_values * visible, noise, interpolate_pos_encoding)
        height, width = pixel_values.shape[2:]
        if not interpolate_pos_encoding and (height, width) != tuple(self.image_size):
            raise ValueError(f"Input image size ({height}*{width}) doesn't match model "
                             f"({self.image_size[0]}*{self.image_size[1]}).")
        patches = self.patch_embeddings.projection(sparse_stem(self.patch_embeddings.stem, pixel_values, visible))
        embeddings = patches.flatten(2).transpose(1, 2)
        positions = self.interpolate_pos_encoding(embeddings, height, width) if interpolate_pos_encoding \
            else self.position_embeddings
        embeddings, mask, ids_restore = self.random_masking(embeddings + positions[:, 1:, :], noise)
        cls_tokens = (self.cls_token + positions[:, :1, :]).expand(embeddings.shape[0], -1, -1)
        return torch.cat((cls_tokens, embeddings), dim=1), mask, ids_restore


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


def mae_position_embedding(grid_size: int, dim: int) -> torch.Tensor:
    """ViTMAE's fixed 2-D sin-cos position table, `(1, 1 + grid_size**2, dim)`, cls row (zeros) first, in the
    half-swapped layout of ViTMAE's own initialisation and pretrained checkpoints."""
    table = build_2d_sinusoidal_position_embedding(height=grid_size, width=grid_size, embed_dim=dim, cls_token=True)
    half = dim // 2
    return torch.cat([table[..., half:], table[..., :half]], dim=-1).reshape(1, 1 + grid_size**2, dim)


def initialise_mae(model: ViTMAEForPreTraining) -> ViTMAEForPreTraining:
    """Give a freshly built MAE the MAE paper's initialisation, which transformers 5.24 leaves out.

    There, `ViTMAEForPreTraining(config)` ends with all-zero encoder and decoder position embeddings
    (frozen, so they stay zero) and an untouched cls token: the embeddings' own `initialize_weights` returns
    early because the projection was already initialised as a plain convolution, and `_init_weights` zeroes
    the decoder's table. Without positions the decoder cannot tell one masked patch from another and the
    encoder learns features of a bag of patches. Set here: both sin-cos tables, the projection as a linear
    layer (Xavier), cls and mask tokens N(0, 0.02).
    """
    embeddings, decoder, std = model.vit.embeddings, model.decoder, model.config.initializer_range
    grid = int(embeddings.patch_embeddings.num_patches**0.5)
    with torch.no_grad():
        embeddings.position_embeddings.copy_(mae_position_embedding(grid, embeddings.position_embeddings.shape[-1]))
        decoder.decoder_pos_embed.copy_(mae_position_embedding(grid, decoder.decoder_pos_embed.shape[-1]))
        weight = embeddings.patch_embeddings.projection.weight
        torch.nn.init.xavier_uniform_(weight.view(weight.shape[0], -1))
        torch.nn.init.normal_(embeddings.cls_token, std=std)
        torch.nn.init.normal_(decoder.mask_token, std=std)
    return model


def build_mae_for_pretraining(config: ViTMAEConfig) -> ViTMAEForPreTraining:
    """A freshly initialised MAE for pretraining: plain `ViTMAEForPreTraining`, or with the config's conv stem."""
    model = ViTMAEWithStemForPreTraining(config) if conv_stem_channels(config) else ViTMAEForPreTraining(config)
    return initialise_mae(model)


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
