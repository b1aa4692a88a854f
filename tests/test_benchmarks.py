"""The one-call GPU check runs end to end on a CPU with tiny sizes (`--smoke`).

Slow: about 2 minutes on a busy 2-core machine (five Python processes, each importing transformers and
datasets), so it runs with `--run-slow`.
"""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_check_smoke_runs_every_section_on_cpu():
    result = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--smoke"], capture_output=True,
                            text=True, timeout=480)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    out = result.stdout
    assert "gpu_check: all sections ran" in out
    for expected in ("MFU (model only / end to end)", "channels_last", "curriculum fine-tune step",
                     "video pipeline (faces cropped, gaussian smoothing)", "3 skipped"):
        assert expected in out, expected


@pytest.mark.slow
def test_bad_input_corpus_script_counts_the_push_cases(tmp_path):
    """The counting script on one entry point (nine subprocesses, about 2 minutes): a table and the totals."""
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bad_input_corpus.py"), "--work",
                             str(tmp_path / "work"), "--only", "cer-hf push"], capture_output=True, text=True,
                            timeout=900, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "| cer-hf push | pickled_weights | clean error | 2 |" in result.stdout
    assert result.stdout.strip().endswith("tried 9; tracebacks 0; unclear 0; lost 0; skipped+named 0; clean error 9; "
                                          "handled 0")


def test_step_profile_accounts_for_the_whole_step():
    """benchmarks/step_profile.py at micro size: the phase shares and the operator-kind shares each add up to the
    whole, and under bf16 the attention kernel is reached (through the float32 core)."""
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "step_profile.py"), "--preset", "micro",
                             "--image-size", "32", "--patch-size", "8", "--batch-size", "4", "--steps", "2",
                             "--source-size", "40", "--bf16"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if "threads:" in line)
    split = next(i for i, line in enumerate(lines) if line.startswith("forward + backward by operator kind"))
    phases = {line[:40].strip(): float(line.split()[-2]) for line in lines[start + 1:split]}
    kinds = {line[:40].strip(): float(line.split()[-2]) for line in lines[split + 1:] if line.startswith("  ")}
    assert list(phases) == ["decode + augment (loader workers)", "normalise + mask noise", "forward", "backward",
                            "AdamW step + zero_grad", "non-finite check (host sync)"]
    assert abs(sum(phases.values()) - 100) < 0.5 and abs(sum(kinds.values()) - 100) < 0.5
    assert kinds["matrix multiply"] > 0 and kinds["attention kernel"] > 0


def test_curriculum_precision_times_the_three_paths():
    """benchmarks/curriculum_precision.py at micro size prints float32, shipped bf16 and bf16-core rows and the
    two ratios, each computed from those rows."""
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "curriculum_precision.py"), "--preset", "micro",
                             "--image-size", "32", "--no-stem", "--batch-size", "4", "--steps", "1", "--repeats", "1"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    ms = {line[:44].strip(): float(line.split()[-4]) for line in lines if "ms/step" in line}
    assert list(ms) == ["float32", "bf16, float32 attention core (shipped)", "bf16, bf16 attention core"]
    speed_up, versus_float32 = (float(part.split()[-1].rstrip("x")) for part in lines[-1].split(";"))
    shipped = ms["bf16, float32 attention core (shipped)"]
    # the printed ms are rounded to 0.1 and the ratios to 0.01, so compare at a few percent
    assert speed_up == pytest.approx(ms["bf16, bf16 attention core"] / shipped, rel=0.04, abs=0.006)
    assert versus_float32 == pytest.approx(ms["float32"] / shipped, rel=0.04, abs=0.006)


def test_small_data_benchmark_reads_the_student_and_the_teacher_lines():
    """benchmarks/small_data.py takes the ViT's figure from `[result]` and the CNN baseline's from `[teacher]`."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("small_data", ROOT / "benchmarks" / "small_data.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    log = ("[teacher] compound macro F1 0.7314 (chance 1/7); basic macro F1 n/a\n...\n"
           "[result] compound macro F1 0.8126 (chance 1/7); basic macro F1 n/a\n")
    assert (module.f1_of(log), module.f1_of(log, "teacher")) == (0.8126, 0.7314)
    with pytest.raises(ValueError, match=r"no \[teacher\] line"):
        module.f1_of("[result] compound macro F1 0.5 (chance 1/7)", "teacher")


def load_benchmark(name: str):
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_vs_trainer_separates_the_whole_span_from_the_steady_step():
    """Three equal windows of N images at 10, 10 and 5 images/s (a stall in the last): the span takes
    N/10 + N/10 + N/5 = 0.4 N seconds for 3 N images, 7.5 images/s; the steady (median) window is 10."""
    span, steady = load_benchmark("vs_trainer").span_and_steady([10.0, 10.0, 5.0])
    assert (span, steady) == (pytest.approx(7.5), 10.0)


@pytest.mark.slow
def test_vs_trainer_runs_both_sides_on_the_same_work():
    """benchmarks/vs_trainer.py at micro size, one pair: both sides build the same model (same trainable parameters
    and FLOPs per step), the pass boundaries in the span are counted, and each printed ratio is the ratio of the
    printed medians."""
    import re

    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "vs_trainer.py"), "--preset", "micro", "--image-size", "32",
         "--patch-size", "8", "--images", "64", "--batch-size", "16", "--steps", "10", "--warmup-steps", "2",
         "--pairs", "1", "--num-workers", "1"],
        capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    work = re.search(r"ours ([\d,]+) trainable parameters, ([\d.]+) GFLOP; Trainer ([\d,]+), ([\d.]+) GFLOP",
                     result.stdout)
    assert work, result.stdout
    assert work.group(1) == work.group(3) == "39,392" and work.group(2) == work.group(4)
    assert "one pass over the folder = 4 steps: 2 pass boundaries in the timed span" in result.stdout
    ratios = re.findall(r"([\d.]+) vs ([\d.]+) images/s: ratio of medians ([\d.]+)", result.stdout)
    assert len(ratios) == 4, result.stdout  # equal and defaults, each over the span and steady
    for ours, trainer, ratio in ratios:
        assert float(ratio) == pytest.approx(float(ours) / float(trainer), abs=0.006)
