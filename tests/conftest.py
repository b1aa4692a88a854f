"""Shared fixtures and the opt-in markers (slow, gpu)."""

import os

import pytest
import torch

# Nothing in the tests may reach the real Hub (huggingface_hub reads these at import time).
# Tests that talk to the local Hub-API test server set their own environment in subprocesses.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def pytest_addoption(parser):
    parser.addoption("--run-slow", action="store_true", help="run tests marked slow")
    parser.addoption("--run-gpu", action="store_true", help="run tests marked gpu")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "slow" in item.keywords and not config.getoption("--run-slow"):
            item.add_marker(pytest.mark.skip(reason="slow: pass --run-slow"))
        if "gpu" in item.keywords and not (config.getoption("--run-gpu") and torch.cuda.is_available()):
            item.add_marker(pytest.mark.skip(reason="gpu: pass --run-gpu on a CUDA machine"))


TINY_ENCODER = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64)


@pytest.fixture
def tiny_cer_config():
    """A 32-px, hidden-32 compound-expression config (ABAW7 compounds over the six basics)."""
    from cer_hf.modeling.convert import compound_config

    return compound_config("abaw7", image_size=32, patch_size=8, head_hidden_sizes=[16], **TINY_ENCODER)


@pytest.fixture
def tiny_mae_dir(tmp_path):
    """A saved, randomly initialised 32-px micro ViTMAEForPreTraining checkpoint, as the recipe builds it."""
    from cer_hf.modeling.mae import build_mae_for_pretraining
    from cer_hf.presets import mae_config

    torch.manual_seed(0)
    model = build_mae_for_pretraining(mae_config("micro", image_size=32, patch_size=8))
    path = tmp_path / "mae"
    model.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A saved random 32-px, hidden-32 ViTForCompoundExpression (ABAW7) with its image processor."""
    from transformers.models.vit.image_processing_pil_vit import ViTImageProcessorPil

    from cer_hf.modeling.convert import compound_config
    from cer_hf.modeling.modeling_cer import ViTForCompoundExpression

    torch.manual_seed(0)
    config = compound_config("abaw7", image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2,
                             num_attention_heads=4, intermediate_size=64)
    path = tmp_path_factory.mktemp("tiny-cer")
    ViTForCompoundExpression(config).save_pretrained(path)
    ViTImageProcessorPil(size={"height": 32, "width": 32}).save_pretrained(path)
    return path
