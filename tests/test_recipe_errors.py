"""Recipes at the command line: usage errors end with `error: <message>` and exit 2 (no traceback), and a
curriculum output_dir that holds another run's checkpoints is refused, listing what differs."""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from transformers import TrainingArguments

from cer_hf.arguments import OutputArguments, check_resume_compatible, parse_args, run_main, save_args
from cer_hf.curriculum.build import CurriculumArguments, DataArguments
from cer_hf.modeling.build import ModelArguments

ROOT = Path(__file__).resolve().parents[1]
MICRO = ROOT / "recipes" / "configs" / "curriculum_micro_cpu.yaml"
GROUPS = (ModelArguments, DataArguments, CurriculumArguments, TrainingArguments)


def _env():
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
            "HF_DATASETS_OFFLINE": "1"}


def _curriculum():
    return _recipe("curriculum")


# ----------------------------------------------------------------------------- usage errors


def _recipe(name: str):
    spec = importlib.util.spec_from_file_location(f"{name}_recipe", ROOT / "recipes" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


RECIPES = ("curriculum", "multitask", "pseudo_label")


@pytest.mark.parametrize("recipe", RECIPES)
def test_each_recipe_enters_through_run_main(recipe):
    tree = ast.parse((ROOT / "recipes" / f"{recipe}.py").read_text())
    entry, = [node for node in tree.body if isinstance(node, ast.If) and "__main__" in ast.unparse(node.test)]
    assert ast.unparse(entry.body[0]).startswith("run_main(main")


@pytest.mark.parametrize("recipe, options, message", [
    ("curriculum", ["--config", str(MICRO), "--stage_epochs", "5", "5", "--compound_shares", "0", "0.5", "1"],
     "--stage_epochs has 2 stages [5, 5] but --compound_shares has 3"),
    ("curriculum", ["--config", str(MICRO), "--model_name_or_path", "/nonexistent/model"],
     "--model_name_or_path /nonexistent/model: no config.json"),
    ("multitask", ["--train_source", "nosuch:/data"], "source spec 'nosuch:/data' has unknown scheme 'nosuch'"),
    ("pseudo_label", ["--train_source", "nosuch:/data"], "source spec 'nosuch:/data' has unknown scheme 'nosuch'"),
])
def test_run_main_turns_a_usage_error_into_one_line_and_exit_2(recipe, options, message, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", [f"recipes/{recipe}.py"])
    with pytest.raises(SystemExit) as caught:
        run_main(_recipe(recipe).main, ["--output_dir", str(tmp_path / "out"), *options])
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert f"{recipe}.py: error: {message}" in err and "Traceback" not in err
    assert caught.value.__suppress_context__  # `from None`: nothing chained to print


def test_run_main_leaves_other_errors_alone():
    def main(argv):
        raise KeyError("a bug")

    with pytest.raises(KeyError):
        run_main(main, [])


def test_recipe_usage_error_on_the_command_line(tmp_path):
    run = subprocess.run([sys.executable, str(ROOT / "recipes" / "curriculum.py"), "--config", str(MICRO),
                          "--output_dir", str(tmp_path), "--stage_epochs", "5", "5", "--compound_shares", "0", "0.5",
                          "1"], env=_env(), capture_output=True, text=True, timeout=300)
    assert run.returncode == 2, run.stderr[-2000:]
    assert "curriculum.py: error: --stage_epochs has 2 stages [5, 5] but --compound_shares has 3" in run.stderr
    assert "Traceback" not in run.stderr


@pytest.mark.slow
def test_under_accelerate_launch_the_recipe_prints_no_traceback(tmp_path):
    """accelerate's own launcher exits 1 on a failed child (with -q: without its CalledProcessError traceback)."""
    launch = [sys.executable, "-m", "accelerate.commands.launch", "-q", "--num_processes", "1", "--cpu",
              str(ROOT / "recipes" / "curriculum.py"), "--config", str(MICRO), "--output_dir", str(tmp_path),
              "--stage_epochs", "5", "5", "--compound_shares", "0", "0.5", "1"]
    run = subprocess.run(launch, env=_env(), capture_output=True, text=True, timeout=300)
    assert run.returncode == 1
    assert "curriculum.py: error: --stage_epochs has 2 stages" in run.stderr
    assert "Traceback" not in run.stderr


def test_main_in_process_still_raises(tmp_path):
    with pytest.raises(ValueError, match="--compound_shares"):
        _curriculum().main(["--config", str(MICRO), "--output_dir", str(tmp_path), "--stage_epochs", "5", "5",
                            "--compound_shares", "0", "0.5", "1"])


# ----------------------------------------------------------------------------- provenance


def _previous_run(out: Path, *extra: str) -> Path:
    """An output_dir as a killed run leaves it: resolved_args.json and a checkpoint folder."""
    groups = parse_args(GROUPS, ["--config", str(MICRO), "--output_dir", str(out), *extra])
    save_args(groups, out)
    (out / "checkpoint-4").mkdir()
    return out / "resolved_args.json"


def test_check_resume_compatible_lists_every_differing_field(tmp_path):
    saved = _previous_run(tmp_path, "--seed", "3", "--learning_rate", "0.001")
    same = parse_args(GROUPS, ["--config", str(MICRO), "--output_dir", str(tmp_path), "--seed", "3",
                               "--learning_rate", "0.001", "--logging_steps", "7"])
    check_resume_compatible(saved, same, ("seed", "learning_rate", "per_device_train_batch_size"))  # no error
    other = parse_args(GROUPS, ["--config", str(MICRO), "--output_dir", str(tmp_path), "--seed", "4",
                                "--per_device_train_batch_size", "8", "--stage_epochs", "1", "1", "1", "1"])
    with pytest.raises(ValueError) as caught:
        check_resume_compatible(saved, other, ("seed", "per_device_train_batch_size", "learning_rate",
                                               "stage_epochs", "curriculum_mode"))
    message = str(caught.value)
    assert "seed: 3 in resolved_args.json, 4 now" in message
    assert "per_device_train_batch_size: 32 in resolved_args.json, 8 now" in message
    assert "learning_rate: 0.001 in resolved_args.json, 0.002 now" in message
    assert "stage_epochs: [5, 5, 3, 3] in resolved_args.json, [1, 1, 1, 1] now" in message
    assert "curriculum_mode" not in message
    check_resume_compatible(tmp_path / "absent.json", other, ("seed",))  # nothing saved: nothing to compare


def test_curriculum_refuses_an_output_dir_with_another_runs_checkpoints(tmp_path):
    saved = _previous_run(tmp_path, "--seed", "3")
    before = saved.read_text()
    with pytest.raises(ValueError, match=r"already holds a run with different settings \(seed: 3 in resolved_args.json, "
                                         r"1 now; per_device_train_batch_size: 32 in resolved_args.json, 16 now\)"):
        _curriculum().main(["--config", str(MICRO), "--output_dir", str(tmp_path), "--seed", "1",
                            "--per_device_train_batch_size", "16"])
    assert saved.read_text() == before


def test_overwrite_output_dir_skips_the_comparison_and_checks_still_run_before_writing(tmp_path):
    saved = _previous_run(tmp_path, "--seed", "3")
    before = saved.read_text()
    # Past the comparison, the next check fails (no complete checkpoint to resume): resolved_args.json untouched.
    with pytest.raises(ValueError, match="no complete checkpoint-N folder"):
        _curriculum().main(["--config", str(MICRO), "--output_dir", str(tmp_path), "--seed", "1",
                            "--overwrite_output_dir", "true", "--resume_from_checkpoint", "True"])
    assert saved.read_text() == before
    assert json.loads(before)["TrainingArguments"]["seed"] == 3


def test_output_arguments_default_refuses():
    assert OutputArguments().overwrite_output_dir is False


# ----------------------------------------------------------------------------- the bad-input corpus: configs


@pytest.fixture(scope="module")
def configs(tmp_path_factory):
    from tests.bad_corpus import write_configs

    return write_configs(tmp_path_factory.mktemp("configs"))


@pytest.mark.parametrize("case, message", [
    ("unknown_yaml_key", "unknown_yaml_key.yaml: unknown argument(s) learning_rat"),
    ("yaml_not_a_mapping", "yaml_not_a_mapping.yaml: expected a mapping of argument names to values"),
    ("yaml_syntax", "yaml_syntax.yaml: not valid YAML (line 2, column 1: expected ',' or ']'"),
    ("yaml_wrong_type", "yaml_wrong_type.yaml: image_size: expected a number, got [32, 32]"),
    ("missing_config", "missing_config.yaml: no such file"),
])
@pytest.mark.parametrize("recipe", ["curriculum", "pretrain_mae"])
def test_a_bad_config_file_stops_the_recipe_with_its_name_and_writes_nothing(recipe, case, message, configs, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as caught:
        _recipe(recipe).main(["--config", str(configs[case]), "--output_dir", str(out)])
    assert f"--config {configs[case].parent}/" in str(caught.value.code) and message in str(caught.value.code)
    assert not out.exists()
