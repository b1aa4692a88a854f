"""Curriculum mechanics inside the `Trainer`: the sampler, the stage callback, layer-wise lr decay, the BCE/BMC loss.

`CurriculumTrainer` owns its `CurriculumSampler` and the `CurriculumCallback` that moves it from
epoch to epoch; nothing outside the trainer needs to hand one to the other.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections import Counter
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import Sampler
from transformers import Trainer, TrainerCallback

from cer_hf.curriculum.dataset import CurriculumDataset
from cer_hf.curriculum.schedule import CurriculumSchedule
from cer_hf.data.labelled import BASIC

logger = logging.getLogger(__name__)
TRAINING_ARGS_NAME = "training_args.bin"  # the pickled TrainingArguments Trainer.save_model writes
CHECKPOINT_PATTERN = re.compile(r"^checkpoint-(\d+)$")
TRUE_STRINGS = ("true", "yes", "1")


class CurriculumSampler(Sampler[int]):
    """Yields the tokens `epoch * n + position` of one epoch, in order; `set_epoch` picks the epoch.

    All randomness lives in `CurriculumDataset.plan`, so this sampler carries only the epoch.
    The Trainer (and `CurriculumCallback`) call `set_epoch` before each epoch's iterator is built.
    """

    def __init__(self, samples_per_epoch: int):
        self.samples_per_epoch = samples_per_epoch
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.samples_per_epoch

    def __iter__(self):
        start = self.epoch * self.samples_per_epoch
        return iter(range(start, start + self.samples_per_epoch))


class CurriculumCallback(TrainerCallback):
    """Moves the curriculum: sets the sampler's epoch, reports stage changes, evaluates at stage ends.

    The stage itself is derived from the epoch inside every worker (see `CurriculumDataset.plan`);
    this callback only keeps the main process's sampler and the logs in step with it.

    A stage is evaluated at its last optimizer step, before that step's checkpoint is written (the
    Trainer evaluates, then saves): the checkpoint then holds the evaluation in its history and the
    RNG state after it (the evaluation's DataLoader draws from the global RNG), so a run resumed from
    a stage's last checkpoint continues exactly like one never stopped.
    """

    def __init__(self, schedule: CurriculumSchedule, sampler: CurriculumSampler | None = None,
                 evaluate_each_stage: bool = True):
        self.schedule, self.sampler, self.evaluate_each_stage = schedule, sampler, evaluate_each_stage
        self.current_stage: int | None = None
        self.evaluated_step: int | None = None

    def on_epoch_begin(self, args, state, control, **kwargs):
        epoch = int(math.floor((state.epoch or 0.0) + 1e-6))
        if self.sampler is not None:
            self.sampler.set_epoch(epoch)
        stage = self.schedule.stage_of_epoch(epoch)
        if stage != self.current_stage:
            self.current_stage = stage
            if state.is_world_process_zero:
                logger.info(f"[curriculum] epoch {epoch}: stage {stage + 1}/{self.schedule.num_stages}, "
                            f"compound share {self.schedule.compound_shares[stage]:g} ({self.schedule.mode} mode)")
        return control

    def on_step_end(self, args, state, control, **kwargs):
        # `state.epoch` (epoch + steps done / steps per epoch) is a whole number only after an epoch's last step.
        epoch = float(state.epoch or 0.0)
        if self.evaluate_each_stage and epoch > 0 and epoch.is_integer() \
                and self.schedule.is_last_epoch_of_stage(int(epoch) - 1):
            control.should_evaluate = True
            self.evaluated_step = state.global_step
        return control

    def on_epoch_end(self, args, state, control, **kwargs):
        if self.evaluated_step == state.global_step:  # `eval_strategy="epoch"` would evaluate this stage end again
            control.should_evaluate = False
        return control



def layer_id(name: str, num_layers: int) -> int:
    """MAE fine-tuning's layer index: 0 embeddings, i + 1 for block i, num_layers + 1 for norm and head."""
    if name.startswith("vit.embeddings"):
        return 0
    if name.startswith("vit.layers."):
        return int(name.split(".")[2]) + 1
    return num_layers + 1


def layerwise_lr_groups(model: torch.nn.Module, lr: float, weight_decay: float, layer_decay: float) -> list[dict]:
    """Optimizer parameter groups with layer-wise lr decay: layer i gets `lr * layer_decay ** (L + 1 - i)`.

    No weight decay on biases, norms and 1-D parameters, nor on the CLS token (MAE's `param_groups_lrd`).
    """
    if not 0.0 < layer_decay <= 1.0:
        raise ValueError(f"--layer_decay must be in (0, 1], got {layer_decay}")
    num_layers = model.config.num_hidden_layers
    groups: dict[tuple[int, bool], dict] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        no_decay = param.ndim == 1 or name.endswith(".bias") or "cls_token" in name
        depth = layer_id(name, num_layers)
        key = (depth, no_decay)
        if key not in groups:
            scale = layer_decay ** (num_layers + 1 - depth)
            groups[key] = {"params": [], "weight_decay": 0.0 if no_decay else weight_decay, "lr": lr * scale,
                           "lr_scale": scale}
        groups[key]["params"].append(param)
    return [groups[key] for key in sorted(groups)]


def bmc_loss(predictions: torch.Tensor, targets: torch.Tensor, noise_var: float = 1.0) -> torch.Tensor:
    """Balanced MSE, batch Monte-Carlo form (Ren et al., CVPR 2022), as shipped in the ABAW7 authors' code.

    Each prediction is classified against every target of the batch with logits
    `-||p_i - y_j||² / (2 noise_var)`; the loss is the cross-entropy of the true pairing times `2 noise_var`.
    """
    distances = torch.cdist(predictions.float(), targets.float()).pow(2)
    logits = -0.5 * distances / noise_var
    labels = torch.arange(predictions.shape[0], device=predictions.device)
    return F.cross_entropy(logits, labels) * (2 * noise_var)


class CurriculumTrainer(Trainer):
    """`Trainer` for curriculum fine-tuning.

    * trains on a `CurriculumDataset` through a `CurriculumSampler` (tokens carry the epoch);
    * optional layer-wise lr decay (`layer_decay`) in `create_optimizer`;
    * `loss="bce"` (the model's multi-label BCE) or `"bmc"` (Balanced MSE on the probabilities);
    * optional distillation: with a frozen `teacher`, the training loss is
      `(1 - distill_weight) * BCE(labels) + distill_weight * BCE(sigmoid(teacher logits))` on the same batch;
    * adds to each training log the curriculum stage, the scheduled compound share and the share
      of compound samples the model actually saw since the last log.
    """

    def __init__(self, *args, layer_decay: float | None = None, loss: str = "bce", bmc_noise_var: float = 1.0,
                 evaluate_each_stage: bool = True, teacher: torch.nn.Module | None = None, distill_weight: float = 0.5,
                 **kwargs):
        if loss not in ("bce", "bmc"):
            raise ValueError(f"--loss must be 'bce' or 'bmc', got {loss!r}")
        if teacher is not None and loss != "bce":
            raise ValueError(f"--teacher_model distils into the BCE loss; it cannot be used with --loss {loss}")
        super().__init__(*args, **kwargs)
        # The model's forward takes **kwargs, so the Trainer would assume its loss is normalized by
        # `num_items_in_batch` (skipping the gradient-accumulation division and rescaling across
        # devices). Its BCE is a per-batch mean: let the Trainer scale it.
        self.model_accepts_loss_kwargs = False
        self.layer_decay, self.loss_name, self.bmc_noise_var = layer_decay, loss, bmc_noise_var
        self.teacher, self.distill_weight = teacher, distill_weight
        self._seen = Counter()
        self.curriculum_sampler = None
        # The trainer owns the callback that moves its sampler from epoch to epoch.
        self.curriculum_callback = None
        if isinstance(self.train_dataset, CurriculumDataset):
            self.curriculum_callback = CurriculumCallback(
                self.train_dataset.schedule, evaluate_each_stage=evaluate_each_stage and self.eval_dataset is not None)
            self.add_callback(self.curriculum_callback)
        self.add_callback(NonFiniteLossCallback())

    def _get_train_sampler(self, train_dataset=None):
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        if isinstance(dataset, CurriculumDataset):
            self.curriculum_sampler = CurriculumSampler(len(dataset))
            if self.curriculum_callback is not None:
                self.curriculum_callback.sampler = self.curriculum_sampler
            return self.curriculum_sampler
        return super()._get_train_sampler(train_dataset)

    def create_optimizer(self, model=None):
        if self.layer_decay is None or self.optimizer is not None:
            return super().create_optimizer(model)
        opt_model = self.model if model is None else model
        optimizer_cls, optimizer_kwargs = self.get_optimizer_cls_and_kwargs(self.args, opt_model)
        groups = layerwise_lr_groups(opt_model, self.args.learning_rate, self.args.weight_decay, self.layer_decay)
        self.optimizer = optimizer_cls(groups, **optimizer_kwargs)
        return self.optimizer

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        kinds = inputs.pop("sample_kind", None)
        stages = inputs.pop("curriculum_stage", None)
        if model.training and kinds is not None:
            self._seen["samples"] += int(kinds.numel())
            self._seen["compound"] += int((kinds != BASIC).sum())
            if stages is not None and stages.numel():
                self._seen["stage"] = int(stages.max()) + 1
        if self.teacher is not None and model.training:
            return self.distillation_loss(model, inputs, return_outputs)
        if self.loss_name == "bce":
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        labels = inputs.pop("labels")
        outputs = model(**inputs)
        loss = bmc_loss(outputs.probabilities, labels, self.bmc_noise_var)
        return (loss, outputs) if return_outputs else loss

    def distillation_loss(self, model, inputs, return_outputs=False):
        """`(1 - w) * BCE(labels) + w * BCE(teacher probabilities)`; the teacher sees the student's batch."""
        pixels = inputs["pixel_values"]
        if next(self.teacher.parameters()).device != pixels.device:
            self.teacher.to(pixels.device)
        with torch.no_grad():
            soft_targets = torch.sigmoid(self.teacher(pixel_values=pixels).logits.float())
        outputs = model(**inputs)
        soft_loss = F.binary_cross_entropy_with_logits(outputs.logits.float(), soft_targets)
        loss = (1.0 - self.distill_weight) * outputs.loss + self.distill_weight * soft_loss
        return (loss, outputs) if return_outputs else loss

    def train(self, resume_from_checkpoint=None, trial=None, ignore_keys_for_eval=None, **kwargs):
        """`Trainer.train`, resuming only from a complete checkpoint (see `resolve_resume_checkpoint`).

        `resume_from_checkpoint=True` or the string "True"/"true" (what `--resume_from_checkpoint True`
        gives) resumes from the newest complete `checkpoint-N/` in `output_dir`; a newer one left
        incomplete by a kill mid-save is skipped with a warning naming it.
        """
        checkpoint = resolve_resume_checkpoint(resume_from_checkpoint, self.args.output_dir)
        return super().train(resume_from_checkpoint=checkpoint, trial=trial,
                             ignore_keys_for_eval=ignore_keys_for_eval, **kwargs)

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        """`Trainer.save_model` without its pickle: the `training_args.bin` it writes is removed.

        The run's options are recorded as JSON (`resolved_args.json`, written by the recipe), and
        nothing reads `training_args.bin` back (resuming uses `trainer_state.json`), so the output
        folder and its checkpoints carry no pickled `TrainingArguments` for a user to unpickle.
        """
        super().save_model(output_dir, _internal_call=_internal_call)
        if self.args.should_save:
            (Path(output_dir if output_dir is not None else self.args.output_dir) / TRAINING_ARGS_NAME).unlink(
                missing_ok=True)

    def log(self, logs: dict, start_time=None) -> None:
        if "loss" in logs and self._seen["samples"]:
            logs["curriculum_stage"] = self._seen["stage"]
            logs["compound_share_seen"] = round(self._seen["compound"] / self._seen["samples"], 4)
            dataset = self.train_dataset
            if isinstance(dataset, CurriculumDataset):
                epoch = int(math.floor((self.state.epoch or 0) - 1e-9)) if self.state.epoch else 0
                logs["compound_share_scheduled"] = dataset.schedule.share_of_epoch(max(epoch, 0))
            self._seen = Counter()
        super().log(logs, start_time)


# ----------------------------------------------------------------------------- crash-safe resume


def checkpoint_problems(folder: str | Path) -> list[str]:
    """What makes `folder` an incomplete Trainer checkpoint (empty when it is complete).

    The Trainer writes a checkpoint in order: weights, optimizer/scheduler/RNG, then
    `trainer_state.json` last; a run killed mid-save leaves a `checkpoint-N/` without a readable
    `trainer_state.json` or without weights, which must not be resumed from.
    """
    path = Path(folder)
    if not path.is_dir():
        return [f"{path} is not a directory"]
    problems = []
    state = path / "trainer_state.json"
    if not state.is_file():
        problems.append("no trainer_state.json")
    else:
        try:
            json.loads(state.read_text())
        except (ValueError, OSError) as error:
            problems.append(f"unreadable trainer_state.json ({error})")
    if not any(path.glob("*.safetensors")):
        problems.append("no model weights (*.safetensors)")
    return problems


def latest_complete_checkpoint(output_dir: str | Path) -> Path | None:
    """The newest `checkpoint-N/` in `output_dir` that is complete; each newer incomplete one is logged as skipped."""
    folder = Path(output_dir)
    candidates = sorted(
        (int(match.group(1)), path) for path in (folder.iterdir() if folder.is_dir() else [])
        if path.is_dir() and (match := CHECKPOINT_PATTERN.match(path.name))
    )
    for _, path in reversed(candidates):
        problems = checkpoint_problems(path)
        if not problems:
            return path
        logger.warning(f"[resume] skipping incomplete checkpoint {path} ({'; '.join(problems)}): "
                       "probably a run killed while saving; trying the previous one")
    return None


def resolve_resume_checkpoint(value, output_dir: str | Path) -> str | None:
    """The checkpoint folder to resume from, given `--resume_from_checkpoint` (None, a bool, "True"/"true" or a path).

    True (or the string "true", any case) means the newest complete checkpoint in `output_dir`,
    skipping incomplete ones; an explicit path must be a complete checkpoint. Raises ValueError
    when there is nothing to resume from, naming the folder and what is missing.
    """
    if value is None or value is False or (isinstance(value, str) and value.strip().lower() in ("", "false", "no", "0")):
        return None
    if value is True or (isinstance(value, str) and value.strip().lower() in TRUE_STRINGS):
        checkpoint = latest_complete_checkpoint(output_dir)
        if checkpoint is None:
            raise ValueError(f"--resume_from_checkpoint {value}: no complete checkpoint-N folder in {output_dir}")
        logger.info(f"[resume] resuming from {checkpoint}")
        return str(checkpoint)
    problems = checkpoint_problems(value)
    if problems:
        newest = latest_complete_checkpoint(Path(value).parent)
        hint = f"; the newest complete one there is {newest}" if newest else ""
        raise ValueError(f"--resume_from_checkpoint {value} is not a complete checkpoint ({'; '.join(problems)}){hint}")
    return str(value)


class NonFiniteLossCallback(TrainerCallback):
    """Stops training with a clear error as soon as a logged training loss is NaN or infinite."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss):
            raise FloatingPointError(
                f"training loss became {loss} at step {state.global_step}; lower --learning_rate or check the data")
        return control

