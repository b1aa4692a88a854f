"""Model tester for ViTForCompoundExpression on a tiny config."""

import pytest
import torch
from transformers import AutoConfig, AutoModel, AutoModelForImageClassification

from cer_hf import ViTForCompoundExpression, ViTForCompoundExpressionConfig


def make_model(config, seed=0):
    torch.manual_seed(seed)
    return ViTForCompoundExpression(config)


def test_shapes_loss_backward_and_no_nans(tiny_cer_config):
    model = make_model(tiny_cer_config)
    pixels = torch.randn(4, 3, 32, 32)
    labels = torch.zeros(4, 6)
    labels[0, 0] = labels[1, 3] = labels[2, [4, 0]] = labels[3, [2, 5]] = 1.0
    output = model(pixels, labels=labels)
    assert output.logits.shape == (4, 6)
    assert output.probabilities.shape == (4, 6)
    assert output.compound_scores.shape == (4, 7)
    assert output.pooled_output.shape == (4, 32)
    assert output.last_hidden_state.shape == (4, 1 + 16, 32)
    expected = torch.nn.functional.binary_cross_entropy_with_logits(output.logits, labels)
    torch.testing.assert_close(output.loss, expected)
    output.loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)
    assert model.vit.embeddings.position_embeddings.grad is None  # fixed sin-cos, as in MAE


def test_integer_labels_are_one_hot_encoded(tiny_cer_config):
    model = make_model(tiny_cer_config)
    pixels = torch.randn(2, 3, 32, 32)
    as_index = model(pixels, labels=torch.tensor([1, 4])).loss
    as_multi_hot = model(pixels, labels=torch.tensor([[0, 1, 0, 0, 0, 0], [0, 0, 0, 0, 1, 0]])).loss
    torch.testing.assert_close(as_index, as_multi_hot)


def test_compound_rule_against_a_hand_computed_example(tiny_cer_config):
    model = make_model(tiny_cer_config).eval()
    # basics: Anger, Disgust, Fear, Happiness, Sadness, Surprise
    probabilities = torch.tensor([[0.10, 0.05, 0.70, 0.20, 0.60, 0.40]])
    logits = torch.logit(probabilities)
    with torch.no_grad():
        model.head[-1].weight.zero_()
        model.head[-1].bias.copy_(logits[0])
        output = model(torch.randn(1, 3, 32, 32))
    # Fearfully Surprised 1.10, Happily Surprised 0.60, Sadly Surprised 1.00, Disgustedly Surprised 0.45,
    # Angrily Surprised 0.50, Sadly Fearful 1.30, Sadly Angry 0.70
    expected = torch.tensor([[1.10, 0.60, 1.00, 0.45, 0.50, 1.30, 0.70]])
    torch.testing.assert_close(output.compound_scores, expected, atol=1e-5, rtol=0)
    with torch.no_grad():
        assert model.predict_compounds(torch.randn(1, 3, 32, 32)) == ["Sadly Fearful"]


def test_save_load_round_trip_gives_identical_outputs(tiny_cer_config, tmp_path):
    model = make_model(tiny_cer_config, seed=3).eval()
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").is_file()
    assert not list(tmp_path.glob("*.bin"))
    loaded = ViTForCompoundExpression.from_pretrained(tmp_path).eval()
    pixels = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        a, b = model(pixels), loaded(pixels)
    assert torch.equal(a.logits, b.logits)
    assert torch.equal(a.compound_scores, b.compound_scores)
    assert loaded.config.compound_names == model.config.compound_names
    assert loaded.config.compound_constituents[6] == ["Sadness", "Anger"]
    assert loaded.config.id2label[3] == "Happiness"


def test_auto_classes_load_after_import(tiny_cer_config, tmp_path):
    make_model(tiny_cer_config).save_pretrained(tmp_path)
    assert isinstance(AutoConfig.from_pretrained(tmp_path), ViTForCompoundExpressionConfig)
    assert isinstance(AutoModel.from_pretrained(tmp_path), ViTForCompoundExpression)
    assert isinstance(AutoModelForImageClassification.from_pretrained(tmp_path), ViTForCompoundExpression)
    config = AutoConfig.from_pretrained(tmp_path)
    assert config.auto_map["AutoModelForImageClassification"].endswith("ViTForCompoundExpression")


def test_cls_pooling_and_config_validation(tiny_cer_config):
    config = ViTForCompoundExpressionConfig(**{**tiny_cer_config.to_dict(), "pooling": "cls"})
    model = make_model(config)
    assert model.fc_norm is None
    assert model(torch.randn(1, 3, 32, 32)).logits.shape == (1, 6)
    with pytest.raises(ValueError, match="pooling"):
        ViTForCompoundExpressionConfig(pooling="max")
    with pytest.raises(ValueError, match="Neutral"):
        ViTForCompoundExpressionConfig(compound_names=["X"], compound_constituents=[["Neutral", "Fear"]])


def test_wrong_image_size_is_a_clear_error(tiny_cer_config):
    with pytest.raises(ValueError, match="64x64 but the model expects 32x32"):
        make_model(tiny_cer_config)(torch.randn(1, 3, 64, 64))


def test_drop_path_only_in_training(tiny_cer_config):
    config = ViTForCompoundExpressionConfig(**{**tiny_cer_config.to_dict(), "drop_path_rate": 0.5})
    model = make_model(config)
    pixels = torch.randn(8, 3, 32, 32)
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(pixels).logits, model(pixels).logits)
    model.train()
    torch.manual_seed(1)
    with torch.no_grad():
        assert not torch.equal(model(pixels).logits, model(pixels).logits)


def test_under_cpu_bf16_the_attention_core_runs_in_float32(tiny_cer_config, monkeypatch):
    """A bf16 curriculum on a CPU hands the SDPA kernel float32 query/key/value (its bf16 CPU kernel is 3-4x
    slower), with gradients flowing back to the bf16 projections; in float32 the kernel sees float32 as before."""
    seen = []
    sdpa = torch.nn.functional.scaled_dot_product_attention
    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention",
                        lambda query, *args, **kwargs: seen.append(query.dtype) or sdpa(query, *args, **kwargs))
    model = make_model(tiny_cer_config)
    pixels, labels = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 3])
    float32_loss = model(pixels, labels=labels).loss
    assert seen == [torch.float32] * tiny_cer_config.num_hidden_layers
    seen.clear()
    projected = []
    model.vit.layers[0].attention.o_proj.register_forward_hook(lambda module, args, out: projected.append(out.dtype))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        output = model(pixels, labels=labels)
        output.loss.backward()
    assert seen == [torch.float32] * tiny_cer_config.num_hidden_layers
    assert projected == [torch.bfloat16]  # the projections around the core still compute in bf16
    assert model.vit.layers[0].attention.q_proj.weight.grad.abs().sum() > 0
    assert abs(output.loss.item() - float32_loss.item()) < 0.02
