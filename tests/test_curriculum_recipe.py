"""The curriculum recipe end to end (in process and through `accelerate launch`), and `cer-hf evaluate`."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MICRO = ROOT / "recipes" / "configs" / "curriculum_micro_cpu.yaml"
SMALL = [
    "--basic_source", "synthetic:basic:96", "--compound_source", "synthetic:compound:28",
    "--eval_source", "synthetic:all:39",
    "--stage_epochs", "1", "1", "--compound_shares", "0", "0.5", "--per_device_train_batch_size", "16",
    "--logging_steps", "2",
]


def _recipe():
    spec = importlib.util.spec_from_file_location("curriculum_recipe", ROOT / "recipes" / "curriculum.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _env():
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
            "HF_DATASETS_OFFLINE": "1"}


def test_recipe_from_an_mae_checkpoint_writes_model_and_metrics(tmp_path, tiny_mae_dir):
    out = tmp_path / "run"
    metrics = _recipe().main(["--config", str(MICRO), "--output_dir", str(out), "--mae_checkpoint",
                              str(tiny_mae_dir), "--layer_decay", "0.75", "--curriculum_mode", "pool", *SMALL])
    # The reported F1 is the saved model's, on the held-out synthetic:all:39 (eval seed 12345), as the
    # independent `cer-hf evaluate` path computes it. (12 steps learn nothing: learning is the slow test below.)
    from cer_hf.evaluation.images import evaluate_model

    again = evaluate_model(str(out), "synthetic:all:39", seed=12345)
    assert metrics["eval_compound_macro_f1"] == pytest.approx(again["compound_macro_f1"], abs=1e-12)
    assert metrics["eval_basic_macro_f1"] == pytest.approx(again["basic_macro_f1"], abs=1e-12)
    assert not (out / "training_args.bin").exists()  # no pickle in the output folder
    saved = json.loads((out / "metrics.json").read_text())
    assert {"compound_macro_f1", "basic_macro_f1", "f1_Sadly_Angry"} <= set(saved)
    assert (out / "eval_results.json").is_file() and (out / "model.safetensors").is_file()
    assert (out / "preprocessor_config.json").is_file() and (out / "resolved_args.json").is_file()
    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == "vit_compound_expression" and config["image_size"] == 32


@pytest.mark.slow
def test_demo_config_learns_compounds_well_above_chance(tmp_path):
    """The CPU demo config as shipped (fresh micro ViT, [5, 5, 3, 3] epochs, 3000 basic faces): ~45 s.

    Measured (torch 2.13 CPU, seed 0): compound macro F1 0.744, basic 0.761 on synthetic:all:700. Chance is
    1/7 accuracy and about 0.04 macro F1 for a constant prediction; a broken curriculum, mixer, loss or
    label mapping lands near chance, so 0.5 leaves room for platform noise and none for a broken feature.
    """
    out = tmp_path / "demo"
    metrics = _recipe().main(["--config", str(MICRO), "--output_dir", str(out), "--evaluate_each_stage", "false"])
    assert metrics["eval_compound_macro_f1"] > 0.5, metrics
    assert metrics["eval_basic_macro_f1"] > 0.5, metrics
    assert sorted(p.name for p in out.iterdir() if p.suffix in (".bin", ".pt", ".pth", ".pkl")) == []


def test_bad_schedule_fails_before_training(tmp_path):
    with pytest.raises(ValueError, match="--compound_shares"):
        _recipe().main(["--config", str(MICRO), "--output_dir", str(tmp_path), "--stage_epochs", "5", "5",
                        "--compound_shares", "0", "0.5", "1"])
    assert not (tmp_path / "resolved_args.json").exists()


def test_accelerate_launch_from_a_converted_checkpoint_then_cer_hf_evaluate(tmp_path, tiny_mae_dir):
    from cer_hf.modeling.convert import convert_mae_checkpoint

    convert_mae_checkpoint(tiny_mae_dir, tmp_path / "converted")
    out = tmp_path / "run"
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "1", "--cpu",
              str(ROOT / "recipes" / "curriculum.py"), "--config", str(MICRO), "--output_dir", str(out),
              "--model_name_or_path", str(tmp_path / "converted"),
              "--dataloader_num_workers", "2", "--loss", "bmc", *SMALL]
    result = subprocess.run(launch, env=_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "[result] compound macro F1" in result.stdout
    assert "stage 2/2, compound share 0.5" in result.stdout
    png = tmp_path / "cm.png"
    evaluate = [sys.executable, "-m", "cer_hf", "evaluate", str(out), "synthetic:compound:21",
                "--confusion-png", str(png), "--output-json", str(tmp_path / "eval.json")]
    result = subprocess.run(evaluate, env=_env(), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "compound macro F1" in result.stdout and "Sadly Angry" in result.stdout
    assert png.stat().st_size > 0
    assert json.loads((tmp_path / "eval.json").read_text())["num_compound"] == 21


def test_cer_hf_evaluate_reports_a_missing_model(tmp_path):
    result = subprocess.run([sys.executable, "-m", "cer_hf", "evaluate", str(tmp_path / "nope"),
                             "synthetic:compound:7"], env=_env(), capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "nope: no such checkpoint folder" in result.stderr


def test_push_to_hub_publishes_the_output_dir_with_its_metrics(tmp_path, monkeypatch):
    import cer_hf.curriculum.build

    calls = []
    monkeypatch.setattr(cer_hf.curriculum.build, "publish", lambda *args, **kwargs: calls.append((args, kwargs)) or "commit")
    out = tmp_path / "run"
    _recipe().main(["--config", str(MICRO), "--output_dir", str(out), "--push_to_hub", "true",
                    "--hub_model_id", "someone/cer-micro", "--evaluate_each_stage", "false", *SMALL])
    (args, kwargs), = calls
    assert args == (str(out), "someone/cer-micro")
    assert kwargs["card"] == "cer" and "compound_macro_f1" in kwargs["metrics"]


def test_same_seed_gives_identical_metrics_for_a_fresh_model(tmp_path):
    """--seed seeds the fresh model's initialisation too (it is built before the Trainer seeds), so two
    runs of one seed agree exactly on CPU, whatever ran before them in the process."""
    import torch

    metrics = []
    for run, noise in enumerate((1, 2)):
        torch.manual_seed(noise)  # a different global RNG state before each run
        torch.rand(noise * 7)
        metrics.append(_recipe().main(["--config", str(MICRO), "--output_dir", str(tmp_path / f"run{run}"),
                                       "--evaluate_each_stage", "false", "--seed", "3", *SMALL]))
    keys = [key for key in metrics[0] if key.endswith("macro_f1") or key == "eval_loss"]
    assert keys and [metrics[0][key] for key in keys] == [metrics[1][key] for key in keys]


def test_the_cnn_baseline_trains_with_the_same_curriculum_and_metric(tmp_path):
    out = tmp_path / "cnn"
    metrics = _recipe().main(["--config", str(MICRO), "--output_dir", str(out), "--model_preset", "resnet-tiny",
                              "--evaluate_each_stage", "false", *SMALL])
    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == "cnn_compound_expression"
    assert "eval_compound_macro_f1" in metrics and metrics["eval_loss"] > 0
    # the saved baseline loads back through the same evaluation entry as the ViT
    from cer_hf.evaluation.images import evaluate_model

    results = evaluate_model(str(out), "synthetic:all:39", seed=12345)
    assert results["compound_macro_f1"] == pytest.approx(metrics["eval_compound_macro_f1"], abs=1e-9)


def test_a_trained_cnn_teaches_a_vit_through_teacher_model(tmp_path, caplog):
    """--teacher_model: the CNN baseline's output folder distils into a fresh ViT run; the weight changes the
    training (different metrics from weight 0); a teacher that reads other inputs is refused by name."""
    import logging

    teacher = tmp_path / "cnn"
    _recipe().main(["--config", str(MICRO), "--output_dir", str(teacher), "--model_preset", "resnet-tiny",
                    "--evaluate_each_stage", "false", *SMALL])
    runs = {}
    for weight in ("0", "0.5"):
        with caplog.at_level(logging.INFO, logger="cer_hf.curriculum.build"):
            runs[weight] = _recipe().main(["--config", str(MICRO), "--output_dir", str(tmp_path / f"vit{weight}"),
                                           "--teacher_model", str(teacher), "--distill_weight", weight,
                                           "--evaluate_each_stage", "false", *SMALL])
    assert f"[distill] teacher {teacher} (CNNForCompoundExpression), weight 0.5" in caplog.text
    assert runs["0"]["eval_loss"] != runs["0.5"]["eval_loss"]
    with pytest.raises(ValueError, match=r"--teacher_model .*cnn does not read the student's inputs: image_size 32"):
        _recipe().main(["--config", str(MICRO), "--output_dir", str(tmp_path / "bad"), "--teacher_model",
                        str(teacher), "--image_size", "48", *SMALL])
    with pytest.raises(ValueError, match="--distill_weight must be in"):
        _recipe().main(["--config", str(MICRO), "--output_dir", str(tmp_path / "bad"), "--teacher_model",
                        str(teacher), "--distill_weight", "1.5", *SMALL])



def test_teacher_preset_trains_a_cnn_first_then_distils_and_a_rerun_reuses_it(tmp_path, caplog):
    """--teacher_preset: a CNN trains on the same data in OUTPUT_DIR/teacher, then teaches the ViT; its logged
    figure is its own metrics.json; a rerun in that folder reuses the teacher (same student metrics, no
    retraining) unless its settings differ; conflicting or unknown teacher options are refused by name."""
    import json
    import logging

    out = tmp_path / "run"
    args = ["--config", str(MICRO), "--output_dir", str(out), "--teacher_preset", "resnet-tiny",
            "--evaluate_each_stage", "false", *SMALL]
    with caplog.at_level(logging.INFO, logger="cer_hf"):
        first = _recipe().main(args)
    teacher = json.loads((out / "teacher" / "metrics.json").read_text())
    assert f"[teacher] compound macro F1 {teacher['compound_macro_f1']:.4f}" in caplog.text
    assert f"[distill] teacher {out / 'teacher'} (CNNForCompoundExpression), weight 0.5" in caplog.text
    assert json.loads((out / "resolved_args.json").read_text())["CurriculumArguments"]["teacher_model"] == str(
        out / "teacher")
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="cer_hf"):
        again = _recipe().main(args)
    assert "[teacher] reusing the resnet-tiny teacher" in caplog.text and "[teacher] compound" not in caplog.text
    assert again["eval_loss"] == first["eval_loss"]
    # a teacher trained with other settings is not reused silently; --overwrite_output_dir trains it again
    with pytest.raises(ValueError, match=r"teacher already holds a run with different settings \(seed: "):
        _recipe().main([*args, "--seed", "7"])
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="cer_hf"):
        _recipe().main([*args, "--seed", "7", "--overwrite_output_dir", "true"])
    assert "[teacher] training a resnet-tiny teacher" in caplog.text
    assert json.loads((out / "teacher" / "resolved_args.json").read_text())["TrainingArguments"]["seed"] == 7
    plain = _recipe().main(["--config", str(MICRO), "--output_dir", str(tmp_path / "plain"), "--teacher_preset",
                            "none", "--evaluate_each_stage", "false", *SMALL])
    assert plain["eval_loss"] != first["eval_loss"] and not (tmp_path / "plain" / "teacher").exists()
    with pytest.raises(ValueError, match="--teacher_preset 'micro': choose one of resnet-tiny"):
        _recipe().main(["--config", str(MICRO), "--output_dir", str(tmp_path / "bad"), "--teacher_preset", "micro",
                        *SMALL])
    with pytest.raises(ValueError, match="set only one of them"):
        _recipe().main(["--config", str(MICRO), "--output_dir", str(tmp_path / "bad"), "--teacher_preset",
                        "resnet-tiny", "--teacher_model", str(out / "teacher"), *SMALL])

def _write_folder(root: Path, rows) -> None:
    for index, (image, label) in enumerate(zip(rows["image"], rows["label"])):
        folder = root / label.replace(" ", "_")
        folder.mkdir(parents=True, exist_ok=True)
        image.save(folder / f"{index}.png")


def test_small_data_presets_run_the_readme_commands_with_neutral_as_negatives(tmp_path, caplog):
    """The two small-data presets as shipped (README, "Train on your own faces") on a tiny imagefolder
    that holds Neutral, shrunk only in size and length: the MAE, then the curriculum from it."""
    import logging

    from cer_hf.data.synthetic import synthetic_dataset

    data = tmp_path / "data"
    _write_folder(data / "basic/train", synthetic_dataset(42, kind="basic", include_neutral=True, image_size=32, seed=1))
    _write_folder(data / "compound/train", synthetic_dataset(14, kind="compound", image_size=32, seed=2))
    _write_folder(data / "compound/test", synthetic_dataset(14, kind="compound", image_size=32, seed=3))
    from test_pretrain import recipe_module

    recipe_module().main(["--config", str(ROOT / "recipes/configs/pretrain_small_data_cpu.yaml"),
                   "--sources", f"imagefolder:{data}/basic/train", f"imagefolder:{data}/compound/train",
                   "--report_to", "none", "--output_dir", str(tmp_path / "mae"), "--image_size", "32",
                   "--max_steps", "2", "--per_device_batch_size", "8", "--num_workers", "0", "--shuffle_buffer", "0"])
    with caplog.at_level(logging.INFO, logger="cer_hf.curriculum.build"):
        metrics = _recipe().main([
            "--config", str(ROOT / "recipes/configs/curriculum_small_data_cpu.yaml"), "--mae_checkpoint",
            str(tmp_path / "mae"), "--basic_source", f"imagefolder:{data}/basic/train", "--compound_source",
            f"imagefolder:{data}/compound/train", "--eval_source", f"imagefolder:{data}/compound/test",
            "--output_dir", str(tmp_path / "cer"), "--image_size", "32", "--stage_epochs", "1", "1", "1", "1",
            "--per_device_train_batch_size", "16", "--dataloader_num_workers", "0"])
    neutral = sum(label == "Neutral" for label in synthetic_dataset(42, kind="basic", include_neutral=True,
                                                                     image_size=8, seed=1)["label"])
    assert neutral > 0 and f"{neutral} rows of ['Neutral'] as all-zero targets" in caplog.text
    assert "48 samples per epoch" in caplog.text  # 42 rows, Neutral included, in whole batches of 16
    assert metrics["eval_num_compound"] == 14
    assert "basic macro F1 n/a (no basic rows in the evaluation set)" in caplog.text
    # the preset's resnet-small teacher trains first in OUT/cer/teacher, then distils into the ViT
    assert "[teacher] compound macro F1" in caplog.text and (tmp_path / "cer/teacher/model.safetensors").is_file()
    assert f"[distill] teacher {tmp_path / 'cer/teacher'} (CNNForCompoundExpression), weight 0.5" in caplog.text
