"""Named ViT sizes for MAE pretraining and for building models from scratch.

`micro` is for tests and the CPU demo; the others are the standard ViT sizes (the MAE
paper's decoder, 512-d × 8 layers, is the default for all of them but `micro`).
"""

from __future__ import annotations

from transformers import ViTMAEConfig

ENCODER_PRESETS: dict[str, dict] = {
    "micro": dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64),
    "tiny": dict(hidden_size=192, num_hidden_layers=12, num_attention_heads=3, intermediate_size=768),
    # half-depth tiny, for a few thousand faces on CPU (recipes/configs/*_small_data_cpu.yaml)
    "tiny-6": dict(hidden_size=192, num_hidden_layers=6, num_attention_heads=3, intermediate_size=768),
    "small": dict(hidden_size=384, num_hidden_layers=12, num_attention_heads=6, intermediate_size=1536),
    "base": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072),
    "large": dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096),
    "huge": dict(hidden_size=1280, num_hidden_layers=32, num_attention_heads=16, intermediate_size=5120),
}
MAE_DECODER = dict(
    decoder_hidden_size=512, decoder_num_hidden_layers=8, decoder_num_attention_heads=16, decoder_intermediate_size=2048
)
# A light decoder for small encoders on CPU: the paper's 512 x 8 costs more than a tiny encoder.
LIGHT_DECODER = dict(
    decoder_hidden_size=128, decoder_num_hidden_layers=2, decoder_num_attention_heads=4, decoder_intermediate_size=512
)
MICRO_DECODER = dict(
    decoder_hidden_size=32, decoder_num_hidden_layers=1, decoder_num_attention_heads=4, decoder_intermediate_size=64
)


def encoder_preset(name: str) -> dict:
    """The encoder fields of a named size; an unknown name is an error that names `--model_preset` and lists the sizes."""
    if name not in ENCODER_PRESETS:
        raise ValueError(f"--model_preset {name!r}: choose one of {', '.join(ENCODER_PRESETS)}")
    return dict(ENCODER_PRESETS[name])


def mae_config(
    preset: str,
    *,
    image_size: int = 224,
    patch_size: int = 16,
    mask_ratio: float = 0.75,
    norm_pix_loss: bool = True,
    **overrides,
) -> ViTMAEConfig:
    """A `ViTMAEConfig` for a named size, with the MAE paper's defaults (75% masking, norm-pix loss)."""
    encoder = encoder_preset(preset)
    decoder = {"micro": MICRO_DECODER, "tiny-6": LIGHT_DECODER}.get(preset, MAE_DECODER)
    fields = {**encoder, **decoder, **overrides}
    return ViTMAEConfig(
        image_size=image_size, patch_size=patch_size, mask_ratio=mask_ratio, norm_pix_loss=norm_pix_loss, **fields
    )
