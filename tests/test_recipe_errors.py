"""Recipes at the command line: usage errors end with `error: <message>` and exit 2 (no traceback), and a
curriculum output_dir that holds another run's checkpoints is refused, listing what differs."""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import re
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


RECIPES = ("curriculum", "multitask", "pseudo_label", "pretrain_mae")


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



def test_resuming_with_another_teacher_setting_is_refused_before_any_teacher_trains(tmp_path):
    _previous_run(tmp_path, "--teacher_preset", "resnet-tiny")
    with pytest.raises(ValueError, match=r"distill_weight: 0.5 in resolved_args.json, 0.25 now"):
        _curriculum().main(["--config", str(MICRO), "--output_dir", str(tmp_path), "--teacher_preset", "resnet-tiny",
                            "--distill_weight", "0.25"])
    assert not (tmp_path / "teacher").exists()

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


# ----------------------------------------------------------------------------- the bad-input corpus: pretraining sources

PRETRAIN_MICRO = ROOT / "recipes" / "configs" / "pretrain_micro_cpu.yaml"
PRETRAIN_FAST = ["--max_steps", "2", "--num_workers", "0", "--per_device_batch_size", "4", "--save_steps", "100",
                 "--logging_steps", "1", "--shuffle_buffer", "0"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    from tests.bad_corpus import write_corpus

    return write_corpus(tmp_path_factory.mktemp("corpus"), videos=False)


def _earlier_run(out: Path) -> dict:
    """An output_dir holding an earlier run's files; returns their contents."""
    out.mkdir(parents=True)
    (out / "resolved_args.json").write_text('{"earlier": "run"}')
    (out / "metrics.jsonl").write_text('{"step": 1, "loss": 0.5}\n')
    return {path.name: path.read_bytes() for path in out.iterdir()}


def _pretrain_sources(corpus, case):
    folder = corpus.root / "sources"
    return {"only_unreadable": f"imagefolder:{folder / 'only_bad'}", "missing_folder": f"imagefolder:{folder / 'nope'}",
            "unknown_scheme": "nosuch:/data"}[case]


@pytest.mark.parametrize("case, options, message", [
    ("only_unreadable", [], "yielded no usable image"),
    ("missing_folder", [], "nope': not a folder"),
    ("unknown_scheme", [], "source 'nosuch:/data': expected one of"),
    (None, ["--normalization", "sepia"], "unknown normalization 'sepia'"),
    (None, ["--resume_from_checkpoint", "{out}/checkpoint-9"], "checkpoint-9: not a checkpoint folder"),
])
def test_pretraining_that_fails_on_its_data_keeps_the_earlier_runs_files(case, options, message, corpus, tmp_path,
                                                                         capsys, monkeypatch):
    out = tmp_path / "out"
    before = _earlier_run(out)
    sources = ["--sources", _pretrain_sources(corpus, case)] if case else []
    argv = ["--config", str(PRETRAIN_MICRO), "--output_dir", str(out), "--report_to", "none", *PRETRAIN_FAST,
            *sources, *(option.format(out=out) for option in options)]
    monkeypatch.setattr(sys, "argv", ["recipes/pretrain_mae.py"])
    with pytest.raises(SystemExit) as caught:
        run_main(_recipe("pretrain_mae").main, argv)
    assert caught.value.code == 2
    assert "pretrain_mae.py: error: " in (err := capsys.readouterr().err) and message in err
    assert {path.name: path.read_bytes() for path in out.iterdir()} == before


def test_pretraining_names_each_unreadable_image_and_counts_them(corpus, tmp_path, capsys):
    out = tmp_path / "out"
    _recipe("pretrain_mae").main(["--config", str(PRETRAIN_MICRO), "--output_dir", str(out), "--report_to", "none",
                                  *PRETRAIN_FAST, "--max_steps", "3",  # 9 readable images: one whole pass
                                  "--sources", f"imagefolder:{corpus.root / 'sources' / 'mixed'}"])
    printed = capsys.readouterr().out
    for name in ("corrupt.png", "truncated.jpg", "zero_byte.png", "notes.jpg", "bomb.png", "one_pixel.png"):
        assert f"happy/{name}: skipped (" in printed, name
    assert "images skipped: 6 (too_small 1, truncated 1, undecodable 4)" in printed
    assert "converted: 3 (CMYK 1, I;16 1, RGBA 1)" in printed


@pytest.mark.parametrize("options, message", [
    (["--report_to", "wandbx"], "--report_to wandbx: one of none, "),
    (["--report_to", "tensorboard"], "--report_to tensorboard: tensorboard is not installed (pip install tensorboard)"),
    (["--mixed_precision", "fp8x"], "--mixed_precision fp8x: one of no, fp16, bf16"),
    (["--source_probabilities", "0.5", "0.5"], "--source_probabilities has 2 values but --sources has 1"),
])
def test_pretraining_tracker_and_precision_are_checked_before_anything_is_written(options, message, tmp_path,
                                                                                   monkeypatch):
    import accelerate.tracking

    monkeypatch.setattr(accelerate.tracking, "get_available_trackers", list)  # as in a default install
    out = tmp_path / "out"
    with pytest.raises(SystemExit, match=re.escape(message)):
        _recipe("pretrain_mae").main(["--config", str(PRETRAIN_MICRO), "--output_dir", str(out), *options])
    assert not out.exists()


def test_pretraining_reports_to_no_tracker_by_default():
    """tensorboard is not in the default install (pip install -e '.[video,plots]'): accelerate dropped it silently."""
    from cer_hf.arguments import parse_args

    module = _recipe("pretrain_mae")
    groups = (module.ModelArguments, module.DataArguments, module.PretrainingArguments)
    assert parse_args(groups, ["--output_dir", "x"])[2].report_to == "none"
    assert parse_args(groups, ["--config", str(PRETRAIN_MICRO), "--output_dir", "x"])[2].report_to == "none"


# ----------------------------------------------------------------------------- the bad-input corpus: curriculum

CURRICULUM_SMALL = ["--basic_source", "synthetic:basic:12", "--compound_source", "synthetic:compound:6",
                    "--eval_source", "synthetic:all:7", "--stage_epochs", "1", "--compound_shares", "0",
                    "--per_device_train_batch_size", "4"]


@pytest.mark.parametrize("options, message", [
    (["--learning_rate=-0.1"], "--learning_rate -0.1: must be positive"),
    (["--base_learning_rate=-1"], "--base_learning_rate -1: must be positive"),
    (["--per_device_train_batch_size", "0"], "--per_device_train_batch_size 0: must be at least 1"),
    (["--basic_source", "imagefolder:{sources}/only_bad"],
     "--basic_source imagefolder:{sources}/only_bad: no basic-expression rows to train on"),
    (["--compound_source", "imagefolder:{sources}/only_bad"],
     "--compound_source imagefolder:{sources}/only_bad: no natural compound rows"),
    (["--eval_source", "imagefolder:{sources}/only_bad"],
     "--eval_source imagefolder:{sources}/only_bad: no rows to evaluate on"),
    (["--basic_source", "csv:{sources}/tables/malformed.csv"],
     "{sources}/tables/malformed.csv, line 3: 4 columns, but the header has 2"),
    (["--basic_source", "imagefolder:{sources}/unknown_class"],
     "folder '{sources}/unknown_class/banana' is not an expression label"),
    (["--basic_source", "csv:{sources}/tables/empty.csv"], "{sources}/tables/empty.csv, line 1: empty file"),
    (["--negative_labels", "happy"], "--negative_labels ['Happiness']: these are model outputs"),
])
def test_curriculum_refuses_bad_data_and_options_naming_them_and_keeps_the_earlier_runs_files(
        options, message, corpus, tmp_path, capsys, monkeypatch):
    out = tmp_path / "out"
    before = _earlier_run(out)
    sources = corpus.root / "sources"
    monkeypatch.setattr(sys, "argv", ["recipes/curriculum.py"])
    with pytest.raises(SystemExit) as caught:
        run_main(_curriculum().main, ["--config", str(MICRO), "--output_dir", str(out), *CURRICULUM_SMALL,
                                      *(option.format(sources=sources) for option in options)])
    assert caught.value.code == 2
    assert f"curriculum.py: error: {message.format(sources=sources)}" in capsys.readouterr().err
    assert {path.name: path.read_bytes() for path in out.iterdir()} == before


@pytest.mark.slow  # a subprocess: ~20 s of imports on a busy 2-core machine
def test_pretraining_data_error_on_the_command_line_is_one_line_and_exit_2(tmp_path):
    run = subprocess.run([sys.executable, str(ROOT / "recipes" / "pretrain_mae.py"), "--config", str(PRETRAIN_MICRO),
                          "--output_dir", str(tmp_path / "out"), "--sources", f"imagefolder:{tmp_path / 'none'}"],
                         env=_env(), capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 2, run.stderr[-2000:]
    assert f"pretrain_mae.py: error: imagefolder source '{tmp_path / 'none'}': not a folder" in run.stderr
    assert "Traceback" not in run.stderr and not (tmp_path / "out" / "resolved_args.json").exists()
