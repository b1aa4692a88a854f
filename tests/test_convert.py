"""MAE → ViTForCompoundExpression conversion is exact."""

import subprocess
import sys

import pytest
import torch
from transformers import ViTMAEModel

from cer_hf.modeling.convert import convert_mae_checkpoint


def mae_hidden_states(mae_dir, pixels, interpolate=False):
    """The MAE encoder's output with masking disabled: ratio 0 and an ordered noise keep every patch in place."""
    mae = ViTMAEModel.from_pretrained(mae_dir).eval()
    mae.config.mask_ratio = 0.0
    num_patches = (pixels.shape[-1] // mae.config.patch_size) ** 2
    noise = torch.arange(num_patches, dtype=torch.float32).expand(pixels.shape[0], -1)
    with torch.no_grad():
        return mae(pixels, noise=noise, interpolate_pos_encoding=interpolate).last_hidden_state


@pytest.mark.parametrize("image_size", [32, 48])
def test_converted_encoder_equals_mae_encoder(tiny_mae_dir, tmp_path, image_size):
    model = convert_mae_checkpoint(tiny_mae_dir, tmp_path / "cer", image_size=image_size).eval()
    pixels = torch.randn(3, 3, image_size, image_size)
    with torch.no_grad():
        ours = model(pixels).last_hidden_state
    theirs = mae_hidden_states(tiny_mae_dir, pixels, interpolate=image_size != 32)
    max_abs_diff = (ours - theirs).abs().max().item()
    print(f"conversion max abs diff at {image_size}px: {max_abs_diff:.3e}")
    assert max_abs_diff <= 1e-5
    assert model.config.image_size == image_size
    assert (tmp_path / "cer" / "model.safetensors").is_file()
    assert (tmp_path / "cer" / "preprocessor_config.json").is_file()


def test_decoder_is_dropped_and_head_is_new(tiny_mae_dir, tmp_path):
    model = convert_mae_checkpoint(tiny_mae_dir, tmp_path / "cer")
    names = [name for name, _ in model.named_parameters()]
    assert not any("decoder" in name for name in names)
    assert any(name.startswith("head.") for name in names)


def test_cli_convert_and_predict(tiny_mae_dir, tmp_path):
    from PIL import Image

    out = tmp_path / "cer"
    run = subprocess.run(
        [sys.executable, "-m", "cer_hf", "convert", str(tiny_mae_dir), str(out), "--compound-set", "rafdb"],
        capture_output=True, text=True, check=True,
    )
    assert "compound set rafdb" in run.stdout
    image = tmp_path / "face.png"
    Image.new("RGB", (50, 40), (120, 80, 60)).save(image)
    run = subprocess.run(
        [sys.executable, "-m", "cer_hf", "predict", str(out), str(image)], capture_output=True, text=True, check=True
    )
    header, row = run.stdout.strip().splitlines()
    assert header.split("\t")[:3] == ["image", "compound", "face"]
    assert header.split("\t")[3:] == [
        "Happily Surprised", "Happily Disgusted", "Sadly Fearful", "Sadly Angry", "Sadly Surprised",
        "Sadly Disgusted", "Fearfully Angry", "Fearfully Surprised", "Angrily Surprised", "Angrily Disgusted",
        "Disgustedly Surprised",
    ]
    assert row.split("\t")[1] in header


def test_convert_names_a_bad_checkpoint_dir(tmp_path):
    run = subprocess.run(
        [sys.executable, "-m", "cer_hf", "convert", str(tmp_path), str(tmp_path / "out")], capture_output=True, text=True
    )
    assert run.returncode == 2
    assert f"{tmp_path}: no config.json" in run.stderr


@pytest.fixture
def conv_stem_mae_dir(tmp_path):
    """A saved micro MAE whose patch embedding has a two-layer convolutional stem (patch 8 = 2 × 2 × 2)."""
    from cer_hf.modeling.mae import build_mae_for_pretraining
    from cer_hf.presets import mae_config

    torch.manual_seed(0)
    model = build_mae_for_pretraining(mae_config("micro", image_size=32, patch_size=8, conv_stem_channels=[8, 16]))
    # give the BatchNorm running statistics non-default values, so a lost buffer would show
    model.train()
    model(torch.rand(4, 3, 32, 32))
    path = tmp_path / "mae-stem"
    model.save_pretrained(path)
    return path


def test_conv_stem_mae_saves_loads_and_converts_exactly(conv_stem_mae_dir, tmp_path, caplog):
    from transformers import ViTMAEConfig

    from cer_hf.modeling.mae import ViTMAEWithStemModel, load_mae_for_pretraining

    reloaded = load_mae_for_pretraining(conv_stem_mae_dir)
    stem = reloaded.vit.embeddings.patch_embeddings.stem
    assert [m.out_channels for m in stem.convs if isinstance(m, torch.nn.Conv2d)] == [8, 16]
    assert stem.convs[1].running_mean.abs().sum() > 0  # the BatchNorm statistics came back
    with caplog.at_level("INFO", logger="cer_hf"):
        model = convert_mae_checkpoint(conv_stem_mae_dir, tmp_path / "cer").eval()
    assert model.config.conv_stem_channels == [8, 16]
    assert "decoder (" in caplog.text and "dropped by design" in caplog.text
    config = ViTMAEConfig.from_pretrained(conv_stem_mae_dir)
    config.mask_ratio = 0.0
    mae = ViTMAEWithStemModel.from_pretrained(conv_stem_mae_dir, config=config).eval()
    pixels = torch.randn(3, 3, 32, 32)
    noise = torch.arange(16, dtype=torch.float32).expand(3, -1)
    with torch.no_grad():
        assert torch.allclose(model(pixels).last_hidden_state, mae(pixels, noise=noise).last_hidden_state, atol=1e-5)


def test_a_plain_mae_converts_without_a_load_report(tiny_mae_dir, tmp_path, capfd):
    """The decoder is dropped by design: no table of UNEXPECTED decoder keys is printed."""
    convert_mae_checkpoint(tiny_mae_dir, tmp_path / "cer")
    captured = capfd.readouterr()
    assert "LOAD REPORT" not in captured.out + captured.err and "UNEXPECTED" not in captured.out + captured.err


def _converted_equals_mae_encoder(mae, tmp_path):
    """Save a 32-px stem MAE, convert it, check the converted encoder equals the MAE encoder unmasked; return it."""
    from transformers import ViTMAEConfig

    from cer_hf.modeling.mae import ViTMAEWithStemModel

    mae.save_pretrained(tmp_path / "mae")
    model = convert_mae_checkpoint(tmp_path / "mae", tmp_path / "cer").eval()
    config = ViTMAEConfig.from_pretrained(tmp_path / "mae")
    config.mask_ratio = 0.0
    encoder = ViTMAEWithStemModel.from_pretrained(tmp_path / "mae", config=config).eval()
    pixels = torch.randn(2, 3, 32, 32)
    noise = torch.arange((32 // config.patch_size) ** 2, dtype=torch.float32).expand(2, -1)
    with torch.no_grad():
        assert torch.allclose(model(pixels).last_hidden_state, encoder(pixels, noise=noise).last_hidden_state, atol=1e-5)
    return model


def test_a_deeper_conv_stem_converts_exactly(tmp_path):
    """Two 3x3 convolutions per stem stage (the first of stride 2) on both sides, one to one."""
    from cer_hf.modeling.mae import build_mae_for_pretraining
    from cer_hf.presets import mae_config

    torch.manual_seed(0)
    mae = build_mae_for_pretraining(mae_config("micro", image_size=32, patch_size=4, conv_stem_channels=[8, 16],
                                               conv_stem_convs_per_stage=2))
    strides = [m.stride[0] for m in mae.vit.embeddings.patch_embeddings.stem.convs if isinstance(m, torch.nn.Conv2d)]
    assert strides == [2, 1, 2, 1]
    model = _converted_equals_mae_encoder(mae, tmp_path)
    assert model.config.conv_stem_convs_per_stage == 2


def test_a_pooled_conv_stem_converts_exactly(tmp_path):
    """The VGG-layout stem (full-resolution first stage, max-pool between stages) converts one to one."""
    from cer_hf.modeling.mae import build_mae_for_pretraining
    from cer_hf.presets import mae_config

    torch.manual_seed(0)
    mae = build_mae_for_pretraining(mae_config("micro", image_size=32, patch_size=8, conv_stem_channels=[4, 8, 16],
                                               conv_stem_style="pooled"))
    stem = mae.vit.embeddings.patch_embeddings
    assert [type(m).__name__ for m in stem.stem.convs][:5] == ["Conv2d", "BatchNorm2d", "ReLU", "MaxPool2d", "Conv2d"]
    assert stem.projection.stride == (2, 2)  # 8-pixel patches = two 2x2 pools, then a stride-2 projection
    model = _converted_equals_mae_encoder(mae, tmp_path)
    assert model.config.conv_stem_style == "pooled"


@pytest.mark.parametrize("masking", ["blank", "sparse"])
def test_the_stem_of_an_mae_never_sees_masked_pixels(masking):
    """Changing only the pixels of masked patches leaves every encoder output unchanged; changing a
    visible patch does not (so a stem that leaked masked pixels, or masked everything, would fail)."""
    from cer_hf.modeling.mae import build_mae_for_pretraining, visible_pixels
    from cer_hf.presets import mae_config

    torch.manual_seed(0)
    config = mae_config("micro", image_size=32, patch_size=8, conv_stem_channels=[4, 8, 16], conv_stem_style="pooled",
                        conv_stem_masking=masking)
    encoder = build_mae_for_pretraining(config).vit.eval()
    pixels, noise = torch.randn(2, 3, 32, 32), torch.rand(2, 16)
    visible = visible_pixels(noise, config.mask_ratio, 8)
    assert visible.sum().item() == 2 * 4 * 64  # 4 of 16 patches stay visible per image at 75 % masking
    with torch.no_grad():
        reference = encoder(pixels, noise=noise).last_hidden_state
        masked_changed = encoder(pixels + (1 - visible) * 5 * torch.randn_like(pixels), noise=noise).last_hidden_state
        visible_changed = encoder(pixels + visible * torch.randn_like(pixels), noise=noise).last_hidden_state
    assert torch.equal(reference, masked_changed)
    # an untrained stem in eval mode passes small signals next to the sin-cos positions; rounding is ~1e-7
    assert (reference - visible_changed).abs().max() > 1e-4


@pytest.mark.parametrize("style", ["pooled", "strided"])
def test_a_sparse_stem_takes_batchnorm_statistics_from_visible_positions_only(style):
    """SparK-style masking: every BatchNorm of the stem learns the statistics of visible positions, so after
    one training step its running mean is momentum x the visible mean (blank masking would count the zeros)."""
    from cer_hf.modeling.mae import build_mae_for_pretraining, visible_pixels
    from cer_hf.presets import mae_config

    torch.manual_seed(0)
    config = mae_config("micro", image_size=32, patch_size=8, conv_stem_channels=[4, 8], conv_stem_style=style,
                        conv_stem_masking="sparse")
    embeddings = build_mae_for_pretraining(config).vit.embeddings.train()
    stem = embeddings.patch_embeddings.stem.convs
    pixels, noise = torch.randn(4, 3, 32, 32) + 1.0, torch.rand(4, 16)
    visible = visible_pixels(noise, config.mask_ratio, 8)
    with torch.no_grad():
        conv_out = stem[0](pixels * visible)
        embeddings(pixels, noise=noise)
    mask = torch.nn.functional.interpolate(visible, size=conv_out.shape[-2:], mode="nearest")
    visible_mean = (conv_out * mask).sum((0, 2, 3)) / mask.sum()
    all_mean = conv_out.mean((0, 2, 3))
    assert torch.allclose(stem[1].running_mean, stem[1].momentum * visible_mean, atol=1e-5)
    assert not torch.allclose(visible_mean, all_mean, atol=1e-2)  # the test tells the two apart


def test_an_unknown_or_stemless_conv_stem_masking_is_refused():
    """The option is checked where it is given (mae_config) and where a saved config is built from."""
    from transformers import ViTMAEConfig

    from cer_hf.modeling.mae import build_mae_for_pretraining
    from cer_hf.presets import mae_config

    with pytest.raises(ValueError, match="--conv_stem_masking 'spark': choose one of blank, sparse"):
        mae_config("micro", image_size=32, patch_size=8, conv_stem_channels=[4, 8], conv_stem_masking="spark")
    with pytest.raises(ValueError, match="--conv_stem_masking sparse needs a conv stem"):
        mae_config("micro", image_size=32, patch_size=8, conv_stem_masking="sparse")
    edited = ViTMAEConfig(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                          intermediate_size=64, conv_stem_channels=[4, 8], conv_stem_masking="spark")
    with pytest.raises(ValueError, match="conv_stem_masking 'spark': choose one of blank, sparse"):
        build_mae_for_pretraining(edited)


def test_reinit_conv_stem_keeps_the_mae_blocks_and_starts_the_stem_afresh(tmp_path):
    from cer_hf.modeling.build import ModelArguments, build_model
    from cer_hf.modeling.mae import build_mae_for_pretraining
    from cer_hf.presets import mae_config

    torch.manual_seed(0)
    mae = build_mae_for_pretraining(mae_config("micro", image_size=32, patch_size=8, conv_stem_channels=[4, 8, 16],
                                               conv_stem_style="pooled"))
    with torch.no_grad():  # MAE weights no fresh init could produce
        for param in mae.parameters():
            param.fill_(0.5)
    mae.save_pretrained(tmp_path / "mae")
    kept, _ = build_model(ModelArguments(mae_checkpoint=str(tmp_path / "mae")))
    fresh, _ = build_model(ModelArguments(mae_checkpoint=str(tmp_path / "mae"), reinit_conv_stem=True))
    first_conv = "vit.embeddings.patch_embeddings.stem.convs.0.weight"
    assert torch.all(kept.state_dict()[first_conv] == 0.5)
    assert not torch.any(fresh.state_dict()[first_conv] == 0.5)
    assert not torch.any(fresh.state_dict()["vit.embeddings.patch_embeddings.projection.weight"] == 0.5)
    for name, tensor in fresh.state_dict().items():
        if name.startswith("vit.layers."):
            assert torch.equal(tensor, kept.state_dict()[name]), name


def test_reinit_conv_stem_needs_a_stem(tiny_mae_dir):
    from cer_hf.modeling.build import ModelArguments, build_model

    with pytest.raises(ValueError, match="--reinit_conv_stem: the MAE checkpoint .* has no conv stem"):
        build_model(ModelArguments(mae_checkpoint=str(tiny_mae_dir), reinit_conv_stem=True))


def test_converting_an_mae_without_positions_warns(tmp_path, tiny_mae_dir, caplog):
    """A checkpoint from a bare transformers 5.24 `ViTMAEForPreTraining(config)` has zero position tables."""
    from transformers import ViTMAEForPreTraining

    from cer_hf.modeling.convert import load_mae_encoder
    from cer_hf.presets import mae_config

    ViTMAEForPreTraining(mae_config("micro", image_size=32, patch_size=8)).save_pretrained(tmp_path / "bare")
    with caplog.at_level("WARNING", logger="cer_hf.modeling.convert"):
        load_mae_encoder(tiny_mae_dir)
        assert "position embeddings are all zero" not in caplog.text
        load_mae_encoder(tmp_path / "bare")
    assert f"{tmp_path / 'bare'}: the position embeddings are all zero" in caplog.text
