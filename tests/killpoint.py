"""Run a recipe as `__main__` and SIGKILL it at one chosen point (the kill-and-resume tests' helper).

    CER_HF_TEST_KILL_AT=save:15 python tests/killpoint.py recipes/curriculum.py --config ... --output_dir ...

Nothing in the package imports this file, and without `CER_HF_TEST_KILL_AT` it only runs the recipe.
With it, the process kills itself with SIGKILL at the named point: no handler, no cleanup, nothing
flushed, exactly what the OOM killer or a preempting scheduler does. Just before, it writes the line
`killpoint: SIGKILL at <point>` to stderr, so that a test can tell the kill from a crash.

Points (N counts completed optimizer steps; `pretrain_mae.py` or any Trainer recipe):

    step:N[:M]  inside step N + 1. Trainer recipes: as its first micro-batch starts (batch loaded).
                pretrain_mae.py: when micro-batch M (default 0) of that step draws its mask, i.e. after
                micro-batches 0 .. M - 1 were forward- and backward-passed (mid gradient accumulation).
    save:N      while checkpoint-N is being written. Trainer recipes: after the model weights, before
                the optimizer, scheduler, RNG state and trainer_state.json. pretrain_mae.py: after
                `accelerator.save_state` wrote weights, optimizer and RNG into the hidden temporary folder,
                before the per-rank state, meta.json and the rename into place.
    saved:N     right after checkpoint-N is complete (Trainer recipes: the Trainer's whole save, old
                checkpoints rotated; pretrain_mae.py: renamed into place and `latest` updated).
    pointer:N   pretrain_mae.py only: checkpoint-N renamed into place, `latest` not yet rewritten.
"""

from __future__ import annotations

import os
import runpy
import signal
import sys
from pathlib import Path

VARIABLE = "CER_HF_TEST_KILL_AT"


def kill(point: str) -> None:
    """Say where, then SIGKILL this process."""
    sys.stderr.write(f"killpoint: SIGKILL at {point}\n")
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def install_pretraining(kind: str, at: int, micro: int, point: str) -> None:
    """Hooks into `cer_hf.pretraining` and accelerate, installed before the recipe imports them by name."""
    import accelerate

    import cer_hf.pretraining as pretraining

    if kind == "step":
        original_noise = pretraining.mask_noise

        def mask_noise(*args, step: int, micro_step: int = 0, **kwargs):
            if (step, micro_step) == (at, micro):
                kill(point)
            return original_noise(*args, step=step, micro_step=micro_step, **kwargs)

        pretraining.mask_noise = mask_noise
    elif kind == "save":
        original_save_state = accelerate.Accelerator.save_state

        def save_state(self, output_dir=None, *args, **kwargs):
            result = original_save_state(self, output_dir, *args, **kwargs)
            if Path(output_dir).name == f".tmp-checkpoint-{at}":
                kill(point)
            return result

        accelerate.Accelerator.save_state = save_state
    elif kind == "pointer":
        original_write = pretraining._write_atomic

        def write_atomic(path, text):
            if Path(path).name == pretraining.LATEST_FILE and text == f"checkpoint-{at}":
                kill(point)
            return original_write(path, text)

        pretraining._write_atomic = write_atomic
    elif kind == "saved":
        original_save = pretraining.CheckpointManager.save

        def save(self, accelerator, state):
            result = original_save(self, accelerator, state)
            if state.step == at:
                kill(point)
            return result

        pretraining.CheckpointManager.save = save
    else:
        raise SystemExit(f"{VARIABLE}={point}: unknown point for pretrain_mae.py")


def install_trainer(kind: str, step: int, point: str) -> None:
    """Hooks into `transformers.Trainer` (what every Trainer recipe's trainer inherits)."""
    from transformers import Trainer

    if kind == "step":
        original_training_step = Trainer.training_step

        def training_step(self, model, inputs, *args, **kwargs):
            if self.state.global_step == step:
                kill(point)
            return original_training_step(self, model, inputs, *args, **kwargs)

        Trainer.training_step = training_step
    elif kind == "save":
        original_save_optimizer = Trainer._save_optimizer_and_scheduler

        def save_optimizer_and_scheduler(self, output_dir):
            if self.state.global_step == step:
                kill(point)
            return original_save_optimizer(self, output_dir)

        Trainer._save_optimizer_and_scheduler = save_optimizer_and_scheduler
    elif kind == "saved":
        original_checkpoint = Trainer._save_checkpoint

        def save_checkpoint(self, model, trial):
            result = original_checkpoint(self, model, trial)
            if self.state.global_step == step:
                kill(point)
            return result

        Trainer._save_checkpoint = save_checkpoint
    else:
        raise SystemExit(f"{VARIABLE}={point}: unknown point for a Trainer recipe")


def main() -> None:
    """`killpoint.py RECIPE ARGS...`: install the hook named by the variable (if set), run the recipe."""
    recipe, *args = sys.argv[1:]
    point = os.environ.get(VARIABLE)
    if point:
        kind, step, *micro = point.split(":")
        if Path(recipe).stem == "pretrain_mae":
            install_pretraining(kind, int(step), int(micro[0]) if micro else 0, point)
        else:
            install_trainer(kind, int(step), point)
    sys.argv = [recipe, *args]
    runpy.run_path(recipe, run_name="__main__")


if __name__ == "__main__":
    main()
