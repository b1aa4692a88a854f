"""SDPA attention whose core runs in float32 when a CPU model computes in bf16.

Under CPU bf16 autocast, torch's flash-attention kernel for CPU is 3-4x slower in bf16 than in float32
at ViT sequence lengths (50-200 tokens; `benchmarks/step_profile.py`): it was a quarter of a bf16 MAE
step at the tiny size. Running only the attention core (softmax(QK^T)V) in float32, with the projections
around it still in bf16, is faster and at least as precise. On a GPU, and in float32, nothing changes.

    use_fp32_attention_core(model)   # a transformers model whose attention goes through ALL_ATTENTION_FUNCTIONS
"""

from __future__ import annotations

import torch
from transformers import AttentionInterface, PreTrainedModel
from transformers.integrations.sdpa_attention import sdpa_attention_forward

FP32_CORE_SDPA = "sdpa_fp32_core"


def sdpa_with_fp32_core(module, query, key, value, attention_mask, **kwargs):
    """transformers' SDPA attention; on a CPU with half-precision inputs, computed in float32 and cast back."""
    if query.device.type != "cpu" or query.dtype == torch.float32:
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
    if attention_mask is not None and attention_mask.is_floating_point():
        attention_mask = attention_mask.float()
    with torch.autocast("cpu", enabled=False):  # autocast would cast the float32 inputs straight back to bf16
        output, weights = sdpa_attention_forward(
            module, query.float(), key.float(), value.float(), attention_mask, **kwargs)
    return output.to(query.dtype), weights


AttentionInterface.register(FP32_CORE_SDPA, sdpa_with_fp32_core)


def use_fp32_attention_core(model: PreTrainedModel) -> None:
    """Route the model's attention through `sdpa_with_fp32_core` (only the running model; nothing is saved)."""
    model.set_attn_implementation(FP32_CORE_SDPA)
    # ViTMAE's decoder reads a deep copy of the config, which set_attn_implementation does not reach
    for module in model.modules():
        config = getattr(module, "config", None)
        if config is not None and getattr(config, "_attn_implementation", None) not in (None, FP32_CORE_SDPA):
            config._attn_implementation = FP32_CORE_SDPA
