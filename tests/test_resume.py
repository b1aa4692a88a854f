"""Crash-safe resume: a checkpoint left incomplete by a kill mid-save is skipped, never resumed from."""

from __future__ import annotations

import json
import logging
import shutil

import pytest
import torch
from transformers import TrainerCallback, TrainingArguments

from cer_hf.curriculum.augment import TrainAugment
from cer_hf.curriculum.collate import CurriculumCollator
from cer_hf.curriculum.dataset import CurriculumDataset, CurriculumSchedule
from cer_hf.curriculum.mixing import CompoundMixer
from cer_hf.curriculum.trainer import (
    CurriculumTrainer,
    checkpoint_problems,
    latest_complete_checkpoint,
    resolve_resume_checkpoint,
)
from cer_hf.data.synthetic import synthetic_dataset
from cer_hf.modeling.modeling_cer import ViTForCompoundExpression

SCHEDULE = CurriculumSchedule([1, 1], [0.0, 0.5])
BATCH = 8


class StopAt(TrainerCallback):
    """Stops training after `step` (a run killed right after its step-`step` checkpoint)."""

    def __init__(self, step):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step >= self.step:
            control.should_training_stop = True
        return control


@pytest.fixture(scope="module")
def rows():
    return synthetic_dataset(48, kind="basic", image_size=32, seed=3)


def _trainer(output_dir, rows, config, schedule=SCHEDULE, eval_dataset=None, **extra):
    torch.manual_seed(0)
    model = ViTForCompoundExpression(config)
    dataset = CurriculumDataset(rows, schedule, batch_size=BATCH, image_size=32, seed=11)
    args = TrainingArguments(
        output_dir=str(output_dir), per_device_train_batch_size=BATCH, num_train_epochs=schedule.num_epochs,
        learning_rate=1e-3, use_cpu=True, report_to="none", remove_unused_columns=False, disable_tqdm=True,
        logging_steps=100, seed=0, **extra,
    )
    collator = CurriculumCollator(mixer=CompoundMixer(), augment=TrainAugment())
    trainer = CurriculumTrainer(model=model, args=args, train_dataset=dataset, data_collator=collator,
                                eval_dataset=eval_dataset)
    batches = []
    model.register_forward_pre_hook(
        lambda module, args, kwargs: batches.append(kwargs["labels"].clone()) if module.training else None,
        with_kwargs=True)
    return trainer, batches


@pytest.fixture(scope="module")
def runs(rows, tmp_path_factory):
    """An uninterrupted run, and a run that saved checkpoint-3 and checkpoint-6 then stopped."""
    from cer_hf.modeling.convert import compound_config

    config = compound_config("abaw7", image_size=32, patch_size=8, head_hidden_sizes=[16], hidden_size=32,
                             num_hidden_layers=2, num_attention_heads=4, intermediate_size=64)
    root = tmp_path_factory.mktemp("resume")
    full, full_batches = _trainer(root / "full", rows, config, save_strategy="no")
    full.train()
    first, _ = _trainer(root / "run", rows, config, save_strategy="steps", save_steps=3)
    first.add_callback(StopAt(6))  # the same schedule as the full run (max_steps would change the lr schedule)
    first.train()
    assert first.state.global_step == 6
    return dict(config=config, root=root, full=full, full_batches=full_batches, steps=len(full_batches))


def _fresh_copy(runs, name):
    """A copy of the stopped run's output_dir (each test damages its own)."""
    target = runs["root"] / name
    shutil.copytree(runs["root"] / "run", target)
    return target


def _state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_checkpoints_of_a_clean_run_are_complete(runs):
    for step in (3, 6):
        assert checkpoint_problems(runs["root"] / "run" / f"checkpoint-{step}") == []
    assert latest_complete_checkpoint(runs["root"] / "run").name == "checkpoint-6"


def test_resume_true_string_skips_a_partial_newest_checkpoint_and_is_exact(runs, rows, caplog):
    out = _fresh_copy(runs, "killed")
    partial = out / "checkpoint-9"  # a kill mid-save: weights written, trainer_state.json not yet
    shutil.copytree(out / "checkpoint-6", partial)
    (partial / "trainer_state.json").unlink()
    assert checkpoint_problems(partial) == ["no trainer_state.json"]

    resumed, batches = _trainer(out, rows, runs["config"], save_strategy="no")
    with caplog.at_level(logging.INFO, logger="cer_hf.curriculum.trainer"):
        resumed.train(resume_from_checkpoint="True")  # what `--resume_from_checkpoint True` hands over
    assert f"skipping incomplete checkpoint {partial} (no trainer_state.json)" in caplog.text
    assert f"resuming from {out / 'checkpoint-6'}" in caplog.text
    # Exactly the rest of the uninterrupted run: same batches from step 6 on, same final weights.
    assert len(batches) == runs["steps"] - 6
    for seen, expected in zip(batches, runs["full_batches"][6:]):
        assert torch.equal(seen, expected)
    assert resumed.state.global_step == runs["full"].state.global_step
    full_state, resumed_state = _state(runs["full"].model), _state(resumed.model)
    assert all(torch.allclose(full_state[k], resumed_state[k], atol=1e-6) for k in full_state)


def test_resume_lowercase_true_also_skips_a_checkpoint_without_weights(runs, rows, caplog):
    out = _fresh_copy(runs, "no-weights")
    for weights in (out / "checkpoint-6").glob("*.safetensors"):
        weights.unlink()
    resumed, batches = _trainer(out, rows, runs["config"], save_strategy="no")
    with caplog.at_level(logging.WARNING, logger="cer_hf.curriculum.trainer"):
        resumed.train(resume_from_checkpoint="true")
    assert "checkpoint-6 (no model weights (*.safetensors))" in caplog.text
    assert len(batches) == runs["steps"] - 3


def test_resolve_resume_checkpoint_values(runs, tmp_path):
    out = _fresh_copy(runs, "values")
    assert resolve_resume_checkpoint(None, out) is None
    assert resolve_resume_checkpoint("false", out) is None
    assert resolve_resume_checkpoint(True, out) == str(out / "checkpoint-6")
    assert resolve_resume_checkpoint(str(out / "checkpoint-3"), out) == str(out / "checkpoint-3")
    (out / "checkpoint-6" / "trainer_state.json").write_text('{"global_step": 6, "log_hist')  # torn write
    assert resolve_resume_checkpoint("TRUE", out) == str(out / "checkpoint-3")
    with pytest.raises(ValueError, match=r"checkpoint-6 is not a complete checkpoint \(unreadable trainer_state.json"
                                         r".*the newest complete one there is .*checkpoint-3"):
        resolve_resume_checkpoint(str(out / "checkpoint-6"), out)
    with pytest.raises(ValueError, match=f"no complete checkpoint-N folder in {tmp_path}"):
        resolve_resume_checkpoint("True", tmp_path)


@pytest.mark.parametrize("eval_strategy, evaluated", [("no", [12, 18]), ("epoch", [6, 12, 18])])
def test_a_stage_end_is_evaluated_before_its_checkpoint_and_once(rows, tmp_path, tiny_cer_config, eval_strategy,
                                                                 evaluated):
    """Stages of 2 and 1 epochs (6 steps each): each stage is evaluated at its last step, before that step's
    checkpoint is written, so the checkpoint holds the evaluation (and the RNG state after it: a run resumed
    from it goes on exactly); `eval_strategy="epoch"` adds the other epoch ends but no second evaluation."""
    from cer_hf.data.labelled import LabelledImageDataset

    trainer, _ = _trainer(tmp_path, rows, tiny_cer_config, schedule=CurriculumSchedule([2, 1], [0.0, 0.5]),
                          eval_dataset=LabelledImageDataset(rows.select(range(8)), image_size=32),
                          save_strategy="steps", save_steps=6, eval_strategy=eval_strategy)
    trainer.train()
    assert [entry["step"] for entry in trainer.state.log_history if "eval_loss" in entry] == evaluated
    saved = json.loads((tmp_path / "checkpoint-12" / "trainer_state.json").read_text())["log_history"]
    assert [entry["step"] for entry in saved if "eval_loss" in entry] == [step for step in evaluated if step <= 12]
