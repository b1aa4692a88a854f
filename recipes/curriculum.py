"""Curriculum fine-tuning of a `ViTForCompoundExpression`: basic expressions first, then a growing compound share.

Launch (CPU demo, ~3 min; then any accelerate setup, 1 CPU ... N nodes x M GPUs):

    PYTHONPATH=. accelerate launch --config_file accelerate_configs/cpu.yaml recipes/curriculum.py \
        --config recipes/configs/curriculum_micro_cpu.yaml --output_dir outputs/curriculum
    accelerate launch --multi_gpu --num_processes 8 recipes/curriculum.py \
        --config recipes/configs/curriculum_vit_base_224.yaml --model_name_or_path outputs/converted

Model: `--model_name_or_path` (a converted checkpoint), `--mae_checkpoint` (an MAE checkpoint
converted on the fly) or neither (a fresh `--model_preset` model). Data: `--basic_source`,
optional `--compound_source` (natural compounds) and `--eval_source`, all source specs
(`synthetic:basic:2000`, `imagefolder:/path`, `csv:/file.csv`, `rafdb-basic:/root`, ...).
Distillation: `--teacher_model DIR` (a trained model) or `--teacher_preset resnet-small` (a CNN teacher
trained first in this run, kept in OUTPUT_DIR/teacher).
See docs/curriculum.md for every option.
"""

from __future__ import annotations

from pathlib import Path

from transformers import TrainingArguments

from cer_hf.arguments import OutputArguments, check_resume_compatible, log_to_stdout, parse_args, run_main, save_args
from cer_hf.curriculum.build import (
    CurriculumArguments,
    DataArguments,
    build_curriculum_trainer,
    build_schedule,
    check_optimiser_options,
    effective_batch_size,
    finish_run,
    training_overrides,
)
from cer_hf.curriculum.teacher import train_teacher
from cer_hf.curriculum.trainer import resolve_resume_checkpoint
from cer_hf.modeling.build import ModelArguments

# Settings a run in an output_dir with checkpoints must share with the run that wrote them.
RESUME_FIELDS = ("seed", "per_device_train_batch_size", "gradient_accumulation_steps", "learning_rate",
                 "stage_epochs", "compound_shares", "curriculum_mode", "teacher_preset", "distill_weight")


def main(argv: list[str] | None = None) -> dict:
    log_to_stdout()
    # Arguments: YAML defaults, command line overrides; the schedule and mixing options are checked first.
    model_args, data_args, curriculum_args, training_args, output_args = parse_args(
        (ModelArguments, DataArguments, CurriculumArguments, TrainingArguments, OutputArguments), argv
    )
    schedule = build_schedule(curriculum_args)
    check_optimiser_options(training_args, curriculum_args)

    # What the curriculum sets in TrainingArguments (schedule length, columns, lr rule), applied here in view.
    push_to_hub = bool(training_args.push_to_hub)
    overrides = training_overrides(training_args, curriculum_args, schedule)
    for name, value in overrides.items():
        setattr(training_args, name, value)
    main_process = training_args.process_index == 0
    # An output_dir with checkpoints of a run with other settings is refused; the checkpoint to resume is
    # resolved (complete ones only) now, so that resolved_args.json is written only once every check passed.
    args = (model_args, data_args, curriculum_args, training_args)
    output_dir = Path(training_args.output_dir)
    if not output_args.overwrite_output_dir and any(output_dir.glob("checkpoint-*")):
        check_resume_compatible(output_dir / "resolved_args.json", args, RESUME_FIELDS)
    checkpoint = resolve_resume_checkpoint(training_args.resume_from_checkpoint, output_dir)
    if main_process:
        base = curriculum_args.base_learning_rate
        print(f"[optim] effective batch {effective_batch_size(training_args)}; lr {training_args.learning_rate:g}"
              + (f" (base lr {base:g} x {effective_batch_size(training_args)}/256)" if base is not None else ""),
              flush=True)

    # With --teacher_preset, a CNN teacher trains first on the same data and curriculum (OUTPUT_DIR/teacher).
    if curriculum_args.teacher_preset is not None:
        curriculum_args.teacher_model = train_teacher(model_args, data_args, curriculum_args, training_args,
                                                      overwrite=output_args.overwrite_output_dir)

    # Model, curriculum data, collator and trainer.
    run = build_curriculum_trainer(model_args, data_args, curriculum_args, training_args, schedule)
    if main_process:
        save_args(args, training_args.output_dir)
    # Train through the stages; resume with --resume_from_checkpoint (a path, or True: the newest complete one).
    run.trainer.train(resume_from_checkpoint=checkpoint)
    # Final evaluation, save model + image processor + metrics, optionally publish.
    return finish_run(run, push_to_hub=push_to_hub, hub_model_id=training_args.hub_model_id)


if __name__ == "__main__":
    run_main(main)  # option errors: "error: ..." and exit 2, no traceback
