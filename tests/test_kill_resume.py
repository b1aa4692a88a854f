"""Kill anywhere, resume exactly: real SIGKILLs of real recipe processes, and a killed `accelerate launch`.

Each killed run is a subprocess that SIGKILLs itself at a chosen point (`tests/killpoint.py`: mid-step,
mid-save, right after a save at a curriculum stage boundary). It is then resumed from the newest
complete checkpoint and must end with the weights of a run never interrupted (max abs difference
≤ 1e-6 on CPU), with the same logged history (the curriculum's stage and compound share per step,
losses, learning rates, stage-end evaluations). What `test_resume.py` and `test_pretrain.py` cover in
process or with a hand-made partial checkpoint, these check with processes that really died.

The last tests kill `accelerate launch` itself (SIGTERM, SIGINT): the recipe it started must end with
it, its DataLoader workers too, and write nothing more.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file

from cer_hf.curriculum.trainer import checkpoint_problems

ROOT = Path(__file__).resolve().parents[1]
CURRICULUM = ROOT / "recipes" / "curriculum.py"
PRETRAIN = ROOT / "recipes" / "pretrain_mae.py"
KILLPOINT = ROOT / "tests" / "killpoint.py"

# Curriculum: the paper's four stages and shares, one epoch each; 48 basic faces in batches of 8 are 6 steps
# an epoch, so the stages end after steps 6, 12 and 18 of 24. A checkpoint every 3 steps, an evaluation at
# each stage's end and stochastic depth on (the RNG stream a resumed run must also continue exactly).
CURRICULUM_ARGS = [
    "--config", ROOT / "recipes" / "configs" / "curriculum_micro_cpu.yaml",
    "--basic_source", "synthetic:basic:48", "--compound_source", "synthetic:compound:16",
    "--eval_source", "synthetic:all:16", "--stage_epochs", 1, 1, 1, 1, "--compound_shares", 0, 0.2, 0.4, 1,
    "--per_device_train_batch_size", 8, "--logging_steps", 1, "--save_strategy", "steps", "--save_steps", 3,
    "--drop_path_rate", 0.1, "--dataloader_num_workers", 0,
]
STEPS_PER_EPOCH, STEPS, SHARES = 6, 24, (0.0, 0.2, 0.4, 1.0)
# Pretraining: gradient accumulation 2, two DataLoader workers; checkpoints every 6 steps and logs every 4, so
# checkpoint-6 falls inside a logging window (steps 5-8), which a run resumed from it must continue.
PRETRAIN_ARGS = [
    "--config", ROOT / "recipes" / "configs" / "pretrain_micro_cpu.yaml", "--report_to", "none",
    "--sources", "synthetic:96", "--per_device_batch_size", 4, "--gradient_accumulation_steps", 2,
    "--max_steps", 24, "--save_steps", 6, "--logging_steps", 4, "--num_workers", 2, "--shuffle_buffer", 32,
]
TIMING = ("runtime", "per_second", "images_per_s")  # logged values that differ between any two runs
TOLERANCE = 1e-6


def _env(**extra) -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
            "HF_DATASETS_OFFLINE": "1", **extra}


def _command(recipe: Path, output_dir: Path, args, *extra) -> list[str]:
    return [sys.executable, str(recipe), *map(str, args), "--output_dir", str(output_dir), *map(str, extra)]


def finished(recipe: Path, output_dir: Path, args, *extra) -> subprocess.CompletedProcess:
    """Run a recipe to its end; fail with its stderr otherwise."""
    result = subprocess.run(_command(recipe, output_dir, args, *extra), env=_env(), capture_output=True, text=True,
                            timeout=240)
    assert result.returncode == 0, result.stderr[-4000:]
    return result


def killed(recipe: Path, output_dir: Path, args, point: str) -> subprocess.CompletedProcess:
    """Run a recipe that SIGKILLs itself at `point` (see tests/killpoint.py); fail unless it died there."""
    command = [sys.executable, str(KILLPOINT), *_command(recipe, output_dir, args)[1:]]
    result = subprocess.run(command, env=_env(CER_HF_TEST_KILL_AT=point), capture_output=True, text=True,
                            timeout=240)
    assert result.returncode == -signal.SIGKILL, f"not killed at {point} ({result.returncode}):\n{result.stderr[-4000:]}"
    assert f"killpoint: SIGKILL at {point}" in result.stderr
    return result


def weight_difference(a: Path, b: Path) -> float:
    """Max abs difference between two safetensors files holding the same tensors."""
    first, second = load_file(a), load_file(b)
    assert first.keys() == second.keys()
    return max((first[key].double() - second[key].double()).abs().max().item() for key in first)


def _comparable(entry: dict) -> dict:
    return {key: value for key, value in entry.items() if not any(part in key for part in TIMING)}


def assert_same_history(resumed: list[dict], full: list[dict]) -> None:
    """Two logged histories hold the same entries (steps, keys, values up to float noise), timing aside."""
    assert [(e.get("step"), sorted(_comparable(e))) for e in resumed] == [
        (e.get("step"), sorted(_comparable(e))) for e in full]
    for mine, theirs in zip(resumed, full):
        assert _comparable(mine) == pytest.approx(_comparable(theirs), rel=1e-5, abs=TOLERANCE), mine.get("step")


def log_history(checkpoint: Path) -> list[dict]:
    return json.loads((checkpoint / "trainer_state.json").read_text())["log_history"]


def stage_lines(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines() if line.startswith("[curriculum] epoch")]


# ----------------------------------------------------------------------------- curriculum


@pytest.fixture(scope="module")
def curriculum_full(tmp_path_factory):
    """The uninterrupted curriculum run (same seed, same checkpoints), and what it printed."""
    out = tmp_path_factory.mktemp("curriculum") / "full"
    result = finished(CURRICULUM, out, CURRICULUM_ARGS)
    # The schedule itself: stage s + 1 over epoch s, each epoch's compound share as scheduled.
    assert stage_lines(result.stdout) == [f"[curriculum] epoch {s}: stage {s + 1}/4, compound share {SHARES[s]:g} "
                                          "(batch mode)" for s in range(4)]
    return out


def check_curriculum_resume(full: Path, out: Path, resumed_from: int, result) -> float:
    """The resumed run in `out` ended like `full`: weights, every checkpoint after the resume, the whole history."""
    assert f"[resume] resuming from {out / f'checkpoint-{resumed_from}'}" in result.stdout
    # It re-enters the curriculum at the stage and compound share of the step after the checkpoint ...
    epoch = resumed_from // STEPS_PER_EPOCH
    assert stage_lines(result.stdout)[0] == (f"[curriculum] epoch {epoch}: stage {epoch + 1}/4, compound share "
                                             f"{SHARES[epoch]:g} (batch mode)")
    history = log_history(out / f"checkpoint-{STEPS}")
    steps = [entry for entry in history if "loss" in entry and entry["step"] > resumed_from]
    assert [entry["step"] for entry in steps] == list(range(resumed_from + 1, STEPS + 1))
    for entry in steps:  # ... and stays on the schedule to the end
        stage = (entry["step"] - 1) // STEPS_PER_EPOCH
        assert (entry["curriculum_stage"], entry["compound_share_scheduled"]) == (stage + 1, SHARES[stage])
    # ... seeing what the uninterrupted run saw: same batches (compound share seen per step), losses, lr, evals.
    assert_same_history(history, log_history(full / f"checkpoint-{STEPS}"))
    for step in range(resumed_from + 3, STEPS + 1, 3):
        name = f"checkpoint-{step}/model.safetensors"
        assert weight_difference(out / name, full / name) <= TOLERANCE, name
    assert json.loads((out / "eval_results.json").read_text()).keys() == json.loads(
        (full / "eval_results.json").read_text()).keys()
    difference = weight_difference(out / "model.safetensors", full / "model.safetensors")
    assert difference <= TOLERANCE
    return difference


@pytest.mark.slow  # two runs; measured 27 s (--durations, 2 shared cores), plus 16 s once for the uninterrupted run
def test_curriculum_killed_mid_stage_resumes_exactly(curriculum_full, tmp_path, record_property):
    """SIGKILL inside step 11 (stage 2 of 4, mid-epoch): resumed from checkpoint-9, also mid-epoch."""
    out = tmp_path / "run"
    killed(CURRICULUM, out, CURRICULUM_ARGS, "step:10")
    assert not (out / "checkpoint-12").exists() and not (out / "model.safetensors").exists()
    result = finished(CURRICULUM, out, CURRICULUM_ARGS, "--resume_from_checkpoint", "True")
    record_property("max_abs_weight_difference", check_curriculum_resume(curriculum_full, out, 9, result))


@pytest.mark.slow  # two runs; measured 30 s
def test_curriculum_killed_while_writing_a_checkpoint_falls_back_to_the_previous_one(curriculum_full, tmp_path,
                                                                                    record_property):
    """SIGKILL while checkpoint-15 is written (weights on disk; optimizer, RNG, trainer_state.json not): the resumed
    run names and skips it and resumes from checkpoint-12, the boundary of stages 2 and 3."""
    out = tmp_path / "run"
    killed(CURRICULUM, out, CURRICULUM_ARGS, "save:15")
    partial = out / "checkpoint-15"
    assert (partial / "model.safetensors").is_file() and not (partial / "optimizer.pt").exists()
    assert checkpoint_problems(partial) == ["no trainer_state.json"]
    result = finished(CURRICULUM, out, CURRICULUM_ARGS, "--resume_from_checkpoint", "True")
    assert f"[resume] skipping incomplete checkpoint {partial} (no trainer_state.json)" in result.stdout
    record_property("max_abs_weight_difference", check_curriculum_resume(curriculum_full, out, 12, result))
    assert checkpoint_problems(partial) == []  # written again, completely, by the resumed run


@pytest.mark.slow  # two runs each; measured 24-27 s each
@pytest.mark.parametrize("boundary", [6, 12, 18])
def test_curriculum_killed_at_a_stage_boundary_resumes_in_the_next_stage(curriculum_full, tmp_path, boundary,
                                                                         record_property):
    """SIGKILL right after the checkpoint that ends a stage: the resumed run starts the next stage with its
    compound share (the sampler's epoch, not only the step), and the stage-end evaluation is in its history."""
    out = tmp_path / "run"
    killed(CURRICULUM, out, CURRICULUM_ARGS, f"saved:{boundary}")
    assert checkpoint_problems(out / f"checkpoint-{boundary}") == []
    result = finished(CURRICULUM, out, CURRICULUM_ARGS, "--resume_from_checkpoint", "True")
    record_property("max_abs_weight_difference", check_curriculum_resume(curriculum_full, out, boundary, result))
    evaluated = [entry["step"] for entry in log_history(out / f"checkpoint-{STEPS}") if "eval_loss" in entry]
    assert evaluated[: boundary // STEPS_PER_EPOCH] == list(range(STEPS_PER_EPOCH, boundary + 1, STEPS_PER_EPOCH))


# ----------------------------------------------------------------------------- MAE pretraining


@pytest.fixture(scope="module")
def pretrain_full(tmp_path_factory):
    """The uninterrupted pretraining run."""
    out = tmp_path_factory.mktemp("pretrain") / "full"
    finished(PRETRAIN, out, PRETRAIN_ARGS)
    return out


def metrics_log(output_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (output_dir / "metrics.jsonl").read_text().splitlines()]


def check_pretrain_resume(full: Path, out: Path, resumed_from: int, result) -> float:
    """The resumed pretraining run in `out` ended like `full`: weights, image count, metrics log."""
    assert f"resumed from {out / f'checkpoint-{resumed_from}'} at step {resumed_from}" in result.stdout
    assert json.loads((out / "summary.json").read_text())["images"] == STEPS * 8  # counted across the kill
    assert [_comparable(entry) for entry in metrics_log(out)] == pytest.approx(
        [_comparable(entry) for entry in metrics_log(full)], rel=1e-5, abs=TOLERANCE)
    assert not list(out.glob(".tmp-*")) and (out / "latest").read_text() == f"checkpoint-{STEPS}"
    difference = weight_difference(out / "model.safetensors", full / "model.safetensors")
    assert difference <= TOLERANCE
    return difference


@pytest.mark.slow  # two runs; measured 29 s, plus 14 s once for the uninterrupted run
def test_pretraining_killed_mid_step_resumes_exactly(pretrain_full, tmp_path, record_property):
    """SIGKILL between the two micro-batches of step 10 (gradients half accumulated): resumed from checkpoint-6."""
    out = tmp_path / "run"
    killed(PRETRAIN, out, PRETRAIN_ARGS, "step:9:1")
    assert (out / "latest").read_text() == "checkpoint-6"
    result = finished(PRETRAIN, out, PRETRAIN_ARGS, "--resume_from_checkpoint", "latest")
    record_property("max_abs_weight_difference", check_pretrain_resume(pretrain_full, out, 6, result))


@pytest.mark.slow  # two runs each; measured 29 s each
@pytest.mark.parametrize("point", ["save:12", "pointer:12"])
def test_pretraining_killed_while_writing_a_checkpoint_resumes_from_the_previous_one(pretrain_full, tmp_path, point,
                                                                                   record_property):
    """SIGKILL with checkpoint-12 half written (in its hidden temporary folder), or complete but `latest` not yet
    updated: `latest` still names checkpoint-6, and resuming from it ends like the uninterrupted run."""
    out = tmp_path / "run"
    killed(PRETRAIN, out, PRETRAIN_ARGS, point)
    assert (out / "latest").read_text() == "checkpoint-6"
    if point.startswith("save"):
        assert (out / ".tmp-checkpoint-12" / "model.safetensors").is_file()
        assert not (out / ".tmp-checkpoint-12" / "meta.json").exists() and not (out / "checkpoint-12").exists()
    else:
        assert (out / "checkpoint-12" / "meta.json").is_file()
    result = finished(PRETRAIN, out, PRETRAIN_ARGS, "--resume_from_checkpoint", "latest")
    record_property("max_abs_weight_difference", check_pretrain_resume(pretrain_full, out, 6, result))


def test_dropping_the_log_lines_a_killed_run_wrote_past_its_checkpoint(tmp_path):
    from cer_hf.pretraining import drop_log_lines_after

    log = tmp_path / "metrics.jsonl"
    log.write_text("".join(json.dumps({"step": step}) + "\n" for step in (4, 8, 12)) + '{"step": 16, "lo')
    assert drop_log_lines_after(log, 8, lambda line: json.loads(line)["step"]) == 2  # step 12 and the torn line
    assert log.read_text() == '{"step": 4}\n{"step": 8}\n'
    assert drop_log_lines_after(log, 8, lambda line: json.loads(line)["step"]) == 0
    assert drop_log_lines_after(tmp_path / "absent.jsonl", 0, int) == 0


# ----------------------------------------------------------------------------- a killed `accelerate launch`


def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (state, ppid, ...), or None once the process is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def running(pid: int) -> bool:
    """Alive and not a zombie (an orphan's exit status may never be collected in a container)."""
    fields = _stat(pid)
    return fields is not None and fields[0] not in ("Z", "X")


def children_of(pid: int) -> list[int]:
    return [int(path.parent.name) for path in Path("/proc").glob("[0-9]*/stat")
            if (fields := _stat(int(path.parent.name))) and int(fields[1]) == pid]


def files_of(folder: Path) -> dict:
    return {str(path): (stat.st_size, stat.st_mtime_ns) for path in folder.rglob("*")
            if path.is_file() and (stat := path.stat())}


def newest_checkpoint(folder: Path) -> int:
    return max((int(path.name.split("-")[1]) for path in folder.glob("checkpoint-*")), default=0)


@pytest.mark.slow  # one launch; measured 15-17 s each
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc; the launcher guard is Linux-only")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_killing_accelerate_launch_stops_the_training_process(tmp_path, sig):
    """`accelerate launch` (one process) forwards no signal to the recipe it started: killing the launcher
    used to leave the recipe training and writing checkpoints. The recipe ends with its launcher, naming why,
    its DataLoader workers too, and writes nothing more."""
    out, save_steps = tmp_path / "run", 6
    args = [*CURRICULUM_ARGS, "--stage_epochs", 50, 50, 50, 50, "--eval_source", "", "--save_steps", save_steps,
            "--save_total_limit", 2, "--logging_steps", 6, "--dataloader_num_workers", 2,
            "--dataloader_persistent_workers", "true"]
    command = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "1", "--cpu",
               "--mixed_precision", "no", "--dynamo_backend", "no", *_command(CURRICULUM, out, args)[1:]]
    log_path = tmp_path / "launch.log"
    with open(log_path, "w") as log:
        launcher = subprocess.Popen(command, env=_env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.time() + 180
        while not (out / f"checkpoint-{save_steps}").exists() and launcher.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        assert launcher.poll() is None and (out / f"checkpoint-{save_steps}").exists(), log_path.read_text()[-3000:]
        [child] = children_of(launcher.pid)
        workers = children_of(child)
        assert len(workers) == 2, workers

        launcher.send_signal(sig)
        launcher.wait(timeout=30)
        newest = newest_checkpoint(out)
        gone_by = time.time() + 5
        while any(map(running, [child, *workers])) and time.time() < gone_by:
            time.sleep(0.05)
        assert not running(child), "the training process outlived its launcher"
        assert not any(map(running, workers)), "DataLoader workers outlived the training process"
        files = files_of(out)
        time.sleep(2)
        assert files_of(out) == files  # nothing left writing
        assert newest_checkpoint(out) <= newest + save_steps  # at most the checkpoint being written then
        if sig == signal.SIGTERM:  # on SIGINT accelerate may SIGKILL the recipe itself before it can say why
            # Either the recipe noticed its launcher end, or the signal reached it first; both say why it stopped.
            said = log_path.read_text()
            assert (f"curriculum.py: the launcher (accelerate launch, pid {launcher.pid}) has ended" in said
                    or "now, without writing anything more" in said), said[-2000:]
    finally:
        if launcher.poll() is None:
            launcher.kill()
            launcher.wait()
        try:  # the launcher's session: the recipe and its workers, if the test failed with them alive
            os.killpg(launcher.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_the_launcher_guard_knows_launchers_and_leaves_other_parents_alone():
    from cer_hf.arguments import launcher_name, stop_with_launcher

    for argv0, expected in (("/venv/bin/accelerate", "accelerate launch"), ("torchrun", "torchrun"), ("python", None)):
        process = subprocess.Popen([argv0, "-c", "import time; time.sleep(30)"], executable=sys.executable)
        try:
            deadline = time.time() + 10
            while not Path(f"/proc/{process.pid}/cmdline").read_bytes().startswith(argv0.encode()):
                assert time.time() < deadline
                time.sleep(0.01)
            assert launcher_name(process.pid) == expected
        finally:
            process.kill()
            process.wait()
    assert stop_with_launcher() is None  # pytest's parent is no launcher: nothing installed
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
