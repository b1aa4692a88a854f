"""GPU correctness (run with `pytest --run-gpu -m gpu` on a CUDA machine; skipped elsewhere)."""

import pytest
import torch
from transformers import ViTMAEForPreTraining

from cer_hf import ViTForCompoundExpression
from cer_hf.modeling.convert import compound_config, convert_mae_model
from cer_hf.presets import mae_config

pytestmark = pytest.mark.gpu


def test_model_matches_cpu_in_fp32_and_bf16_is_close():
    torch.manual_seed(0)
    config = compound_config(image_size=224, patch_size=16, hidden_size=192, num_hidden_layers=4,
                             num_attention_heads=3, intermediate_size=768)
    model = ViTForCompoundExpression(config).eval()
    pixels = torch.randn(8, 3, 224, 224)
    with torch.no_grad():
        cpu = model(pixels).compound_scores
        gpu_model = model.cuda()
        torch.backends.cuda.matmul.allow_tf32 = False
        gpu = gpu_model(pixels.cuda()).compound_scores.cpu()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            bf16 = gpu_model(pixels.cuda()).compound_scores.float().cpu()
    torch.testing.assert_close(gpu, cpu, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(bf16, cpu, atol=3e-2, rtol=3e-2)


def test_conversion_is_exact_on_gpu():
    torch.manual_seed(0)
    mae = ViTMAEForPreTraining(mae_config("tiny", image_size=224)).vit.cuda().eval()
    model = convert_mae_model(mae).cuda().eval()
    mae.config.mask_ratio = 0.0
    pixels = torch.randn(4, 3, 224, 224, device="cuda")
    noise = torch.arange(196, device="cuda", dtype=torch.float32).expand(4, -1)
    torch.backends.cuda.matmul.allow_tf32 = False
    with torch.no_grad():
        diff = (model(pixels).last_hidden_state - mae(pixels, noise=noise).last_hidden_state).abs().max().item()
    assert diff <= 1e-4, diff


def test_training_step_in_bf16_lowers_the_loss():
    torch.manual_seed(0)
    config = compound_config(image_size=64, patch_size=16, hidden_size=64, num_hidden_layers=2,
                             num_attention_heads=4, intermediate_size=128)
    model = ViTForCompoundExpression(config).cuda().train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    pixels = torch.randn(16, 3, 64, 64, device="cuda")
    labels = torch.randint(0, 2, (16, 6), device="cuda").float()
    losses = []
    for _ in range(30):
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = model(pixels, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < losses[0] * 0.8
