"""Helper for test_curriculum.py: run under a 2-process `accelerate launch`, record per rank the labels
of every training batch the model saw, write each rank's per-epoch compound share and the metrics of
an evaluation over a set whose size does not divide by the number of ranks."""

import json
import sys
from pathlib import Path

import torch
from transformers import TrainingArguments

from cer_hf.modeling.convert import compound_config
from cer_hf.curriculum.trainer import CurriculumCallback
from cer_hf.curriculum.collate import CurriculumCollator
from cer_hf.curriculum.dataset import CurriculumDataset, CurriculumSchedule
from cer_hf.data.labelled import LabelledImageDataset
from cer_hf.data.synthetic import synthetic_dataset
from cer_hf.curriculum.build import CurriculumTrainer, compound_metrics_fn, keep_logits
from cer_hf.curriculum.mixing import CompoundMixer
from cer_hf.modeling.modeling_cer import ViTForCompoundExpression


def main(out: str) -> None:
    schedule = CurriculumSchedule([1, 1, 1], [0.0, 0.3, 1.0])
    rows = synthetic_dataset(96, kind="basic", image_size=32, seed=3)
    dataset = CurriculumDataset(rows, schedule, batch_size=8, image_size=32, seed=5)
    torch.manual_seed(0)
    model = ViTForCompoundExpression(compound_config("abaw7", image_size=32, patch_size=8, hidden_size=32,
                                                     num_hidden_layers=1, num_attention_heads=4,
                                                     intermediate_size=64))
    seen = []
    model.register_forward_pre_hook(
        lambda module, args, kwargs: seen.append(kwargs["labels"].clone()) if module.training else None,
        with_kwargs=True)
    args = TrainingArguments(output_dir=out, per_device_train_batch_size=8, per_device_eval_batch_size=4, num_train_epochs=3, use_cpu=True,
                             report_to="none", remove_unused_columns=False, save_strategy="no",
                             disable_tqdm=True, dataloader_num_workers=2, logging_steps=1000)
    eval_rows = synthetic_dataset(21, kind="compound", image_size=32, seed=9)
    trainer = CurriculumTrainer(model=model, args=args, train_dataset=dataset,
                                eval_dataset=LabelledImageDataset(eval_rows, image_size=32),
                                data_collator=CurriculumCollator(mixer=CompoundMixer()),
                                compute_metrics=compound_metrics_fn(model.config),
                                preprocess_logits_for_metrics=keep_logits)
    trainer.add_callback(CurriculumCallback(schedule, evaluate_each_stage=False))
    trainer.train()
    steps = len(seen) // 3
    shares = [torch.cat([(b.sum(1) > 1.5).float() for b in seen[e * steps:(e + 1) * steps]]).mean().item()
              for e in range(3)]
    metrics = trainer.evaluate()
    rank = trainer.args.process_index
    Path(out, f"rank{rank}.json").write_text(json.dumps({"shares": shares, "batches": len(seen),
                                                         "world_size": trainer.args.world_size,
                                                         "eval_num_compound": metrics["eval_num_compound"]}))


if __name__ == "__main__":
    main(sys.argv[1])
