"""No pickle where a user looks: pickle-only checkpoints are refused by every model-building path,
and a curriculum run leaves no pickled TrainingArguments behind."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from cer_hf.modeling.build import ModelArguments, build_model
from cer_hf.modeling.convert import convert_mae_checkpoint, load_mae_encoder
from cer_hf.safe_weights import UnsafeWeightsError, check_safe_weights

ROOT = Path(__file__).resolve().parents[1]


def _pickle_only(folder: Path) -> Path:
    """Turn a saved checkpoint into a `pytorch_model.bin`-only one (same weights, pickled)."""
    from safetensors.torch import load_file

    weights = folder / "model.safetensors"
    torch.save(load_file(weights), folder / "pytorch_model.bin")
    weights.unlink()
    return folder


def test_hub_loading_re_exports_the_one_check():
    from cer_hf.hub import loading

    assert loading.check_safe_weights is check_safe_weights and loading.UnsafeWeightsError is UnsafeWeightsError


def test_model_name_or_path_with_only_pytorch_model_bin_is_refused_naming_the_folder(tiny_mae_dir, tmp_path):
    converted = tmp_path / "converted"
    convert_mae_checkpoint(tiny_mae_dir, converted)
    build_model(ModelArguments(model_name_or_path=str(converted)))  # safetensors: loads
    _pickle_only(converted)
    with pytest.raises(UnsafeWeightsError, match=rf"--model_name_or_path {converted} holds only pickled weights "
                                                 r"\(pytorch_model.bin\)"):
        build_model(ModelArguments(model_name_or_path=str(converted)))


def test_mae_checkpoint_with_only_pytorch_model_bin_is_refused_naming_the_folder(tiny_mae_dir):
    load_mae_encoder(tiny_mae_dir)
    _pickle_only(tiny_mae_dir)
    with pytest.raises(UnsafeWeightsError, match=rf"{tiny_mae_dir} holds only pickled weights \(pytorch_model.bin\)"):
        load_mae_encoder(tiny_mae_dir)
    with pytest.raises(UnsafeWeightsError, match="pytorch_model.bin"):
        build_model(ModelArguments(mae_checkpoint=str(tiny_mae_dir)))


def test_a_folder_with_both_loads_the_safetensors(tiny_mae_dir):
    torch.save({"not": torch.zeros(1)}, tiny_mae_dir / "pytorch_model.bin")  # never read
    assert load_mae_encoder(tiny_mae_dir).config.model_type == "vit_mae"


def test_curriculum_recipe_refuses_a_pickle_only_mae_checkpoint_before_writing_anything(tiny_mae_dir, tmp_path):
    spec = importlib.util.spec_from_file_location("curriculum_recipe", ROOT / "recipes" / "curriculum.py")
    recipe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(recipe)
    _pickle_only(tiny_mae_dir)
    out = tmp_path / "run"
    with pytest.raises(UnsafeWeightsError, match=f"{tiny_mae_dir} holds only pickled weights"):
        recipe.main(["--config", str(ROOT / "recipes" / "configs" / "curriculum_micro_cpu.yaml"),
                     "--output_dir", str(out), "--mae_checkpoint", str(tiny_mae_dir),
                     "--basic_source", "synthetic:basic:16", "--eval_source", "synthetic:all:7"])
    assert not (out / "resolved_args.json").exists()


def test_curriculum_trainer_saves_no_training_args_bin(tiny_cer_config, tmp_path):
    from transformers import TrainingArguments

    from cer_hf.curriculum.trainer import CurriculumTrainer
    from cer_hf.modeling.modeling_cer import ViTForCompoundExpression

    args = TrainingArguments(output_dir=str(tmp_path / "run"), use_cpu=True, report_to="none")
    trainer = CurriculumTrainer(model=ViTForCompoundExpression(tiny_cer_config), args=args)
    trainer.save_model(str(tmp_path / "final"))
    assert (tmp_path / "final" / "model.safetensors").is_file()
    assert sorted(p.name for p in (tmp_path / "final").iterdir() if p.suffix in (".bin", ".pt", ".pth")) == []
