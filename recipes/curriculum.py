"""Curriculum fine-tuning of a `ViTForCompoundExpression`: basic expressions first, then a growing compound share.

Launch (CPU demo, ~3 min; then any accelerate setup, 1 CPU ... N nodes x M GPUs):

    PYTHONPATH=. accelerate launch --num_processes 1 --cpu recipes/curriculum.py \
        --config recipes/configs/curriculum_micro_cpu.yaml --output_dir outputs/curriculum
    accelerate launch --multi_gpu --num_processes 8 recipes/curriculum.py \
        --config recipes/configs/curriculum_vit_base_224.yaml --model_name_or_path outputs/converted

Model: `--model_name_or_path` (a converted checkpoint), `--mae_checkpoint` (an MAE checkpoint
converted on the fly) or neither (a fresh `--model_preset` model). Data: `--basic_source`,
optional `--compound_source` (natural compounds) and `--eval_source`, all source specs
(`synthetic:basic:2000`, `imagefolder:/path`, `csv:/file.csv`, `rafdb-basic:/root`, ...).
See docs/curriculum.md for every option.
"""

from __future__ import annotations

from transformers import TrainingArguments

from cer_hf.arguments import parse_args, save_args
from cer_hf.finetuning import (
    CurriculumOptions,
    DataOptions,
    ModelOptions,
    build_curriculum_trainer,
    finish_run,
)


def main(argv: list[str] | None = None) -> dict:
    # Arguments: YAML defaults, command line overrides.
    model_args, data_args, curriculum_args, training_args = parse_args(
        (ModelOptions, DataOptions, CurriculumOptions, TrainingArguments), argv
    )
    # Trainer, model, curriculum data and callbacks (validated before anything trains).
    trainer, context = build_curriculum_trainer(model_args, data_args, curriculum_args, training_args)
    if training_args.process_index == 0:
        save_args((model_args, data_args, curriculum_args, training_args), training_args.output_dir)
    # Train through the stages; resume with --resume_from_checkpoint.
    trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    # Final evaluation, save model + image processor + metrics, optionally publish.
    return finish_run(trainer, context, push_to_hub=context["push_to_hub"], hub_model_id=training_args.hub_model_id)


if __name__ == "__main__":
    main()
