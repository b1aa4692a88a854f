"""A convolutional teacher trained inside the curriculum run, before the student (`--teacher_preset`).

DeiT-style distillation (Touvron et al., 2021) from the toolkit's CNN baseline: the teacher trains on the
student's data with the student's curriculum, is saved to `OUTPUT_DIR/teacher/` and then teaches the
student as a `--teacher_model` would. On a few thousand faces a small CNN learns from pixels what a ViT
cannot yet (docs/curriculum.md, "Small data"); the student learns it from the teacher's soft targets.
"""

from __future__ import annotations

import copy
import gc
import logging
from dataclasses import replace
from pathlib import Path

from accelerate import PartialState

from cer_hf.arguments import check_resume_compatible, save_args
from cer_hf.curriculum.build import (
    CurriculumArguments,
    DataArguments,
    build_curriculum_trainer,
    build_schedule,
    finish_run,
)
from cer_hf.modeling.build import ModelArguments

logger = logging.getLogger(__name__)
# finish_run writes metrics.json after the weights and the image processor: its presence marks a whole teacher.
COMPLETE_MARKER = "metrics.json"
# A teacher left by an earlier run is reused only if these match this run's.
REUSE_FIELDS = ("model_preset", "image_size", "basic_source", "compound_source", "drop_labels", "negative_labels",
                "seed", "stage_epochs", "compound_shares", "per_device_train_batch_size", "learning_rate")


def teacher_folder(output_dir: str | Path) -> Path:
    """Where a run with `--teacher_preset` keeps its teacher."""
    return Path(output_dir) / "teacher"


def train_teacher(model_args: ModelArguments, data_args: DataArguments, options: CurriculumArguments,
                  training_args, *, overwrite: bool = False) -> str:
    """Train a `--teacher_preset` CNN on the student's data and curriculum; return its folder for `--teacher_model`.

    The teacher uses the student's options except the model (a fresh `options.teacher_preset`, no
    checkpoint) and the output folder (`teacher_folder(training_args.output_dir)`). A complete teacher
    left there by an earlier run (e.g. one killed while the student trained) is reused, not retrained,
    if it was trained with the same data, seed and schedule (refused otherwise, naming what differs);
    `overwrite` (`--overwrite_output_dir`) trains it again. `training_args` is not changed.
    """
    folder = teacher_folder(training_args.output_dir)
    state = PartialState()
    teacher_model_args = replace(model_args, model_preset=options.teacher_preset, mae_checkpoint=None,
                                 model_name_or_path=None)
    teacher_options = replace(options, teacher_preset=None, teacher_model=None)
    teacher_training = copy.deepcopy(training_args)
    teacher_training.output_dir = str(folder)
    teacher_training.resume_from_checkpoint = None
    args = (teacher_model_args, data_args, teacher_options, teacher_training)
    if (folder / COMPLETE_MARKER).is_file() and not overwrite:
        check_resume_compatible(folder / "resolved_args.json", args, REUSE_FIELDS)
        logger.info(f"[teacher] reusing the {options.teacher_preset} teacher in {folder} "
                    "(trained by an earlier run in this output_dir; --overwrite_output_dir true trains it again)")
        return str(folder)
    logger.info(f"[teacher] training a {options.teacher_preset} teacher in {folder} before the student")
    run = build_curriculum_trainer(*args, build_schedule(teacher_options))
    if state.is_main_process:
        (folder / COMPLETE_MARKER).unlink(missing_ok=True)  # an overwritten teacher is whole again only at the end
        save_args(args, folder)
    run.trainer.train()
    finish_run(run, tag="teacher")
    del run
    gc.collect()
    state.wait_for_everyone()  # every process loads the teacher only once the main one has written it
    return str(folder)
