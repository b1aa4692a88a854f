"""Named ViT sizes for MAE pretraining and for building models from scratch.

`micro` is for tests and the CPU demo; the others are the standard ViT sizes (the MAE
paper's decoder, 512-d × 8 layers, is the default for all of them but `micro`).

MAE decoders have their own presets (`DECODER_PRESETS`): `micro` 32×1, `tiny` 128×2, `small` 256×4 and
`mae` 512×8 (the paper's). Without a choice a model keeps today's decoder (`micro` for the micro
encoder, `mae` for all others); `decoder_preset="scaled"` picks the one named like the encoder (base and
larger: `mae`), and explicit `decoder_*` fields override any preset.
"""

from __future__ import annotations

from transformers import ViTMAEConfig

ENCODER_PRESETS: dict[str, dict] = {
    "micro": dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64),
    "tiny": dict(hidden_size=192, num_hidden_layers=12, num_attention_heads=3, intermediate_size=768),
    # for a few thousand faces on 2 CPU cores (recipes/configs/*_small_data_cpu.yaml), behind a conv stem
    "mini": dict(hidden_size=128, num_hidden_layers=4, num_attention_heads=4, intermediate_size=512),
    "tiny-6": dict(hidden_size=192, num_hidden_layers=6, num_attention_heads=3, intermediate_size=768),
    "small": dict(hidden_size=384, num_hidden_layers=12, num_attention_heads=6, intermediate_size=1536),
    "base": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072),
    "large": dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096),
    "huge": dict(hidden_size=1280, num_hidden_layers=32, num_attention_heads=16, intermediate_size=5120),
}
MAE_DECODER = dict(
    decoder_hidden_size=512, decoder_num_hidden_layers=8, decoder_num_attention_heads=16, decoder_intermediate_size=2048
)
MICRO_DECODER = dict(
    decoder_hidden_size=32, decoder_num_hidden_layers=1, decoder_num_attention_heads=4, decoder_intermediate_size=64
)
# Light decoders for small encoders: the decoder is thrown away after pretraining, and at 512×8 it costs a tiny
# or small encoder more compute than the encoder itself (it runs on all patches, the encoder on 25%).
DECODER_PRESETS: dict[str, dict] = {
    "micro": MICRO_DECODER,
    "tiny": dict(decoder_hidden_size=128, decoder_num_hidden_layers=2, decoder_num_attention_heads=4,
                 decoder_intermediate_size=512),
    "small": dict(decoder_hidden_size=256, decoder_num_hidden_layers=4, decoder_num_attention_heads=8,
                  decoder_intermediate_size=1024),
    "mae": MAE_DECODER,
}
SCALED_DECODER = {"micro": "micro", "mini": "tiny", "tiny": "tiny", "tiny-6": "tiny", "small": "small", "base": "mae", "large": "mae", "huge": "mae"}
DECODER_FIELDS = tuple(MAE_DECODER)


def encoder_preset(name: str) -> dict:
    """The encoder fields of a named size; an unknown name is an error that names `--model_preset` and lists the sizes."""
    if name not in ENCODER_PRESETS:
        raise ValueError(f"--model_preset {name!r}: choose one of {', '.join(ENCODER_PRESETS)}")
    return dict(ENCODER_PRESETS[name])


def decoder_preset(name: str | None, encoder: str) -> dict:
    """The decoder fields of a named decoder (None: today's default for `encoder`; "scaled": the one sized like it)."""
    if name is None:
        name = "micro" if encoder == "micro" else "mae"
    elif name == "scaled":
        name = SCALED_DECODER.get(encoder, "mae")
    if name not in DECODER_PRESETS:
        raise ValueError(f"--decoder_preset {name!r}: choose one of {', '.join(DECODER_PRESETS)} or scaled")
    return dict(DECODER_PRESETS[name])


CONV_STEM_MASKING = ("blank", "sparse")
"""How an MAE's conv stem is kept from masked patches (cer_hf.modeling.mae explains both)."""


def mae_config(
    preset: str,
    *,
    image_size: int = 224,
    patch_size: int = 16,
    mask_ratio: float = 0.75,
    norm_pix_loss: bool = True,
    decoder: str | None = None,
    **overrides,
) -> ViTMAEConfig:
    """A `ViTMAEConfig` for a named size, with the MAE paper's defaults (75% masking, norm-pix loss).

    `decoder` names a decoder preset (see `decoder_preset`); `overrides` (e.g. `decoder_hidden_size=192`)
    replace single fields. The decoder width must split evenly over its attention heads.
    """
    encoder = encoder_preset(preset)
    fields = {**encoder, **decoder_preset(decoder, preset), **overrides}
    masking = fields.get("conv_stem_masking", "blank")
    if masking not in CONV_STEM_MASKING:
        raise ValueError(f"--conv_stem_masking {masking!r}: choose one of {', '.join(CONV_STEM_MASKING)}")
    if masking == "sparse" and not fields.get("conv_stem_channels"):
        raise ValueError("--conv_stem_masking sparse needs a conv stem: give --conv_stem_channels too")
    if fields["decoder_hidden_size"] % fields["decoder_num_attention_heads"]:
        raise ValueError(f"--decoder_hidden_size {fields['decoder_hidden_size']} is not a multiple of "
                         f"--decoder_num_attention_heads {fields['decoder_num_attention_heads']}")
    return ViTMAEConfig(
        image_size=image_size, patch_size=patch_size, mask_ratio=mask_ratio, norm_pix_loss=norm_pix_loss, **fields
    )
