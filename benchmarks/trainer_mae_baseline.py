"""A plain `transformers.Trainer` MAE pretraining run, written the way a user would write it (no cer_hf).

    python benchmarks/trainer_mae_baseline.py --data_dir /data/faces --image_size 32 --patch_size 8 \
        --hidden_size 32 --num_hidden_layers 2 --num_attention_heads 4 --intermediate_size 64 \
        --batch_size 32 --num_workers 1 --max_steps 60 --warmup_steps 10 --output /tmp/baseline.json

`load_dataset("imagefolder")`, `set_transform` with the ViT image processor (resize + normalise, decoding in
the DataLoader workers), the default `ViTMAEForPreTraining` (75 % random masking), `Trainer` with its defaults
except batch size, workers, steps and precision (`--bf16`). Writes steady-state images/s (steps after
`--warmup_steps`, timed by a callback at each step end; also per window of `--warmup_steps` steps) and the mean
training loss of the run as JSON. `benchmarks/vs_trainer.py` runs it against
`recipes/pretrain_mae.py`.
"""

import argparse
import json
import tempfile
import time

from datasets import load_dataset
from transformers import (
    Trainer, TrainerCallback, TrainingArguments, ViTImageProcessor, ViTMAEConfig, ViTMAEForPreTraining,
)


def image_transform(image_size: int):
    """The `set_transform` function: the ViT image processor (resize + rescale + normalise) on a batch of rows."""
    processor = ViTImageProcessor(size={"height": image_size, "width": image_size})

    def transform(batch):
        return {"pixel_values": processor([image.convert("RGB") for image in batch["image"]],
                                          return_tensors="pt")["pixel_values"]}

    return transform


class StepClock(TrainerCallback):
    def __init__(self):
        self.times = []

    def on_step_end(self, args, state, control, **kwargs):
        self.times.append(time.perf_counter())


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_dir", required=True)
    parser.add_argument("--image_size", type=int, default=224)
    parser.add_argument("--patch_size", type=int, default=16)
    for name, default in (("hidden_size", 768), ("num_hidden_layers", 12), ("num_attention_heads", 12),
                          ("intermediate_size", 3072), ("decoder_hidden_size", 512), ("decoder_num_hidden_layers", 8),
                          ("decoder_num_attention_heads", 16), ("decoder_intermediate_size", 2048)):
        parser.add_argument(f"--{name}", type=int, default=default)
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--num_workers", type=int, default=0)
    parser.add_argument("--max_steps", type=int, default=100)
    parser.add_argument("--warmup_steps", type=int, default=10, help="untimed first steps")
    parser.add_argument("--bf16", action="store_true")
    parser.add_argument("--persistent_workers", action="store_true", help="Trainer's dataloader_persistent_workers")
    parser.add_argument("--use_cpu", action="store_true")
    parser.add_argument("--output", required=True)
    args = parser.parse_args()

    dataset = load_dataset("imagefolder", data_dir=args.data_dir, split="train")
    dataset.set_transform(image_transform(args.image_size))
    config = ViTMAEConfig(image_size=args.image_size, patch_size=args.patch_size, norm_pix_loss=True,
                          **{name: getattr(args, name) for name in (
                              "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                              "decoder_hidden_size", "decoder_num_hidden_layers", "decoder_num_attention_heads",
                              "decoder_intermediate_size")})
    model = ViTMAEForPreTraining(config)
    clock = StepClock()
    with tempfile.TemporaryDirectory() as output_dir:
        training_args = TrainingArguments(
            output_dir=output_dir, per_device_train_batch_size=args.batch_size, max_steps=args.max_steps,
            dataloader_num_workers=args.num_workers, dataloader_persistent_workers=args.persistent_workers,
            remove_unused_columns=False, report_to="none", save_strategy="no", logging_steps=args.max_steps,
            bf16=args.bf16, use_cpu=args.use_cpu, learning_rate=1.5e-4, weight_decay=0.05, disable_tqdm=True,
        )
        trainer = Trainer(model=model, args=training_args, train_dataset=dataset, callbacks=[clock])
        result = trainer.train()
    timed = clock.times[args.warmup_steps - 1:]
    images_per_s = (len(timed) - 1) * args.batch_size / (timed[-1] - timed[0])
    # the same span in windows of --warmup_steps steps, as the recipe's metrics.jsonl logs it
    edges = timed[::args.warmup_steps]
    window_images_per_s = [args.warmup_steps * args.batch_size / (end - start) for start, end in zip(edges, edges[1:])]
    with open(args.output, "w") as handle:
        json.dump({"images_per_s": images_per_s, "window_images_per_s": window_images_per_s,
                   "timed_steps": len(timed) - 1, "mean_loss": result.training_loss}, handle)


if __name__ == "__main__":
    main()
