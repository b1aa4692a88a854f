"""recipes/ablate.py: each row over several seeds, mean ± sd as printed, a seed reproduces its score."""

import importlib.util
import json
import statistics
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MICRO = ROOT / "recipes" / "configs" / "curriculum_micro_cpu.yaml"
TINY = ["--basic_source", "synthetic:basic:48", "--compound_source", "synthetic:compound:14",
        "--eval_source", "synthetic:all:21", "--per_device_train_batch_size", "16", "--epoch_scale", "0.2"]


def _ablate():
    spec = importlib.util.spec_from_file_location("ablate_recipe", ROOT / "recipes" / "ablate.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses resolve their annotations through sys.modules
    spec.loader.exec_module(module)
    return module


def test_table_1_rows_hold_each_seed_and_their_mean_and_sd(tmp_path, capsys):
    """Table 1 with seeds 0, 0, 1: the repeated seed gives the same score (rows do not depend on order), each
    row's mean ± sd is that of its scores, the report is written; a preset's --teacher_preset is not trained."""
    results = _ablate().main(["--config", str(MICRO), "--output_dir", str(tmp_path), "--tables", "1",
                              "--seeds", "0", "0", "1", "--teacher_preset", "resnet-tiny", *TINY])
    out = capsys.readouterr().out
    assert "--teacher_preset resnet-tiny ignored" in out and not any(tmp_path.glob("**/teacher"))
    assert set(results) == {"mixup1-cutmix0", "mixup0-cutmix1", "curriculum-5-5-3-3"}
    for name, row in results.items():
        assert row["scores"][0] == row["scores"][1], name
        assert row["mean"] == pytest.approx(statistics.mean(row["scores"]))
        assert row["sd"] == pytest.approx(statistics.stdev(row["scores"]))
        assert f"{row['mean']:.3f} ± {row['sd']:.3f}" in (tmp_path / "ablation.md").read_text()
    assert json.loads((tmp_path / "ablation.json").read_text()) == results
    assert any(row["scores"][0] != row["scores"][2] for row in results.values())  # seed 1 is another run


def test_fewer_than_three_seeds_are_refused(tmp_path):
    with pytest.raises(ValueError, match="--seeds: give at least 3 seeds"):
        _ablate().main(["--config", str(MICRO), "--output_dir", str(tmp_path), "--seeds", "0", "1", *TINY])
