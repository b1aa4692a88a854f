"""Time one curriculum training step (forward + BCE + backward) of `ViTForCompoundExpression` on this machine.

Three rows, same model, same batch: float32; bf16 autocast as shipped (the attention core in float32 on a CPU);
bf16 autocast with the core left in bf16 (what the model did before). Median over `--repeats` rounds of
`--steps` steps each, after two untimed steps.

    python benchmarks/curriculum_precision.py                                   # the small-data preset's ViT
    python benchmarks/curriculum_precision.py --preset tiny --image-size 112 --patch-size 16 --no-stem
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from contextlib import nullcontext
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from cer_hf import ViTForCompoundExpression  # noqa: E402
from cer_hf.modeling.convert import compound_config  # noqa: E402
from cer_hf.modeling.modeling_cer import ViTCompoundExpressionAttention  # noqa: E402
from cer_hf.presets import encoder_preset  # noqa: E402


def seconds_per_step(model, pixels, labels, bf16: bool, steps: int, repeats: int) -> float:
    """Median over `repeats` rounds of the mean seconds of one forward + backward."""
    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else nullcontext():
            loss = model(pixels, labels=labels).loss
        loss.backward()

    step(), step()
    rounds = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            step()
        rounds.append((time.perf_counter() - start) / steps)
    return statistics.median(rounds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="mini")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--patch-size", type=int, default=8)
    parser.add_argument("--no-stem", action="store_true", help="plain patch projection instead of the preset's stem")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    stem = {} if args.no_stem else dict(conv_stem_channels=[16, 64, 96, 192], conv_stem_convs_per_stage=2,
                                        conv_stem_style="pooled")  # recipes/configs/curriculum_small_data_cpu.yaml
    config = compound_config("abaw7", image_size=args.image_size, patch_size=args.patch_size,
                             **encoder_preset(args.preset), **stem)
    torch.manual_seed(0)
    model = ViTForCompoundExpression(config).train()
    pixels = torch.randn(args.batch_size, 3, args.image_size, args.image_size)
    labels = torch.randint(0, len(config.basic_labels), (args.batch_size,))
    print(f"{args.preset}, {args.image_size} px, patch {args.patch_size}, {'no stem' if args.no_stem else 'conv stem'}, "
          f"batch {args.batch_size}, {torch.get_num_threads()} threads")
    rows = {}
    for name, bf16, float32_core in (("float32", False, True), ("bf16, float32 attention core (shipped)", True, True),
                                     ("bf16, bf16 attention core", True, False)):
        ViTCompoundExpressionAttention.float32_core_on_cpu = float32_core
        rows[name] = seconds_per_step(model, pixels, labels, bf16, args.steps, args.repeats)
        print(f"  {name:42s} {rows[name] * 1000:8.1f} ms/step  {args.batch_size / rows[name]:7.1f} images/s")
    ViTCompoundExpressionAttention.float32_core_on_cpu = True
    shipped, old = rows["bf16, float32 attention core (shipped)"], rows["bf16, bf16 attention core"]
    print(f"float32 core speed-up in bf16: {old / shipped:.2f}x; bf16 (shipped) vs float32: "
          f"{rows['float32'] / shipped:.2f}x")


if __name__ == "__main__":
    main()
