"""Where one MAE pretraining step's time goes, on the recipe's own code path.

    PYTHONPATH=$PWD python benchmarks/step_profile.py --preset tiny --image-size 112 --patch-size 16 --batch-size 32
    PYTHONPATH=$PWD python benchmarks/step_profile.py --preset base --image-size 224 --source-size 256 --batch-size 8 --bf16

Runs what `recipes/pretrain_mae.py` runs for one step, each phase timed on its own (median over `--steps`):
decoding and augmenting a batch of JPEG faces (`MAETrainTransform`, done in the loader workers during a real
run), normalising it and drawing the mask noise, the forward pass, the backward pass, the AdamW step, and the
per-step non-finite check (a host sync). Then `torch.profiler` splits the forward + backward by operator kind,
and the matrix-multiply rate (GFLOP/s per thread) says how close the step is to what the CPU can do at all.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from torch.profiler import ProfilerActivity, profile  # noqa: E402

from cer_hf.data.synthetic import synthetic_sample  # noqa: E402
from cer_hf.data.transforms import MAETrainTransform, normalize_pixels  # noqa: E402
from cer_hf.image_io import normalization  # noqa: E402
from cer_hf.modeling.attention import use_fp32_attention_core  # noqa: E402
from cer_hf.modeling.mae import build_mae_for_pretraining  # noqa: E402
from cer_hf.presets import ENCODER_PRESETS, mae_config  # noqa: E402
from cer_hf.pretraining import mask_noise, param_groups  # noqa: E402

# operator kinds, by the first name fragment an aten op's name contains
KINDS = (
    ("matrix multiply", ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm")),
    ("attention kernel", ("scaled_dot_product",)),
    ("convolution", ("convolution",)),
    ("GELU", ("gelu",)),
    ("layer norm", ("layer_norm",)),
    ("copies and layout", ("aten::copy_", "aten::clone", "aten::contiguous", "aten::cat", "aten::gather",
                           "aten::index", "aten::scatter")),
)


def kind_of(name: str) -> str:
    for kind, fragments in KINDS:
        if any(fragment in name for fragment in fragments):
            return kind
    return "other element-wise and bookkeeping"


def jpeg_faces(count: int, size: int) -> list[bytes]:
    faces = []
    for index in range(count):
        buffer = io.BytesIO()
        synthetic_sample(index, image_size=size)["image"].save(buffer, format="JPEG", quality=90)
        faces.append(buffer.getvalue())
    return faces


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="tiny", choices=list(ENCODER_PRESETS))
    parser.add_argument("--decoder-preset", default=None, help="default: the recipe's for this preset")
    parser.add_argument("--image-size", type=int, default=112)
    parser.add_argument("--patch-size", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--source-size", type=int, default=128, help="side of the JPEG faces decoded per batch")
    parser.add_argument("--steps", type=int, default=5, help="timed steps (after 2 untimed ones)")
    parser.add_argument("--bf16", action="store_true", help="CPU bf16 autocast, as --mixed_precision bf16")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model, as --torch_compile")
    parser.add_argument("--bf16-attention-core", action="store_true",
                        help="keep SDPA's core in bf16 under --bf16 (the recipe runs it in float32 on a CPU)")
    parser.add_argument("--eager-attention", action="store_true",
                        help="transformers' eager attention (matmul, float32 softmax, matmul) instead of SDPA")
    parser.add_argument("--unfused-adamw", action="store_true", help="torch's default AdamW instead of fused=True")
    args = parser.parse_args()

    torch.manual_seed(0)
    config = mae_config(args.preset, image_size=args.image_size, patch_size=args.patch_size,
                        decoder=args.decoder_preset)
    config._attn_implementation = "sdpa"
    model = build_mae_for_pretraining(config).train()
    if args.eager_attention:
        model.set_attn_implementation("eager")
        for module in model.modules():  # ViTMAE's decoder keeps a deep copy of the config
            if getattr(getattr(module, "config", None), "_attn_implementation", None) is not None:
                module.config._attn_implementation = "eager"
    elif args.bf16 and not args.bf16_attention_core:
        use_fp32_attention_core(model)
    forward = torch.compile(model) if args.compile else model
    optimizer = torch.optim.AdamW(param_groups(model, 0.05), lr=1e-4, betas=(0.9, 0.95),
                                  fused=not args.unfused_adamw)
    transform = MAETrainTransform(args.image_size)
    mean, std = normalization("imagenet")
    faces = jpeg_faces(args.batch_size, args.source_size)
    num_patches = (args.image_size // args.patch_size) ** 2

    phases = defaultdict(list)

    def timed(name, function):
        start = time.perf_counter()
        result = function()
        phases[name].append(time.perf_counter() - start)
        return result

    def step(index: int) -> None:
        batch = timed("decode + augment (loader workers)", lambda: torch.stack(
            [transform(face, key=str(i), epoch=index)[0] for i, face in enumerate(faces)]))
        pixels, noise = timed("normalise + mask noise", lambda: (
            normalize_pixels(batch, mean, std), mask_noise(args.batch_size, num_patches, seed=0, step=index, rank=0)))
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
            loss = timed("forward", lambda: forward(pixel_values=pixels, noise=noise).loss)
        timed("backward", loss.backward)
        timed("AdamW step + zero_grad", lambda: (optimizer.step(), optimizer.zero_grad(set_to_none=True)))
        timed("non-finite check (host sync)", lambda: torch.isfinite(loss.detach()).logical_not().float().item())

    for index in range(2):
        step(index)
    phases.clear()
    for index in range(args.steps):
        step(2 + index)
    medians = {name: statistics.median(times) for name, times in phases.items()}
    total = sum(medians.values())
    threads = torch.get_num_threads()
    precision = ("bf16 (attention core bf16)" if args.bf16_attention_core else "bf16") if args.bf16 else "fp32"
    precision += ", eager attention" if args.eager_attention else ""
    print(f"{args.preset} {args.image_size} px, patch {args.patch_size}, decoder {config.decoder_hidden_size} x "
          f"{config.decoder_num_hidden_layers}, batch {args.batch_size}, {precision}"
          f"{', compiled' if args.compile else ''}{', unfused AdamW' if args.unfused_adamw else ''}, "
          f"{threads} threads: {total * 1000:.0f} ms per step if the "
          f"loader ran inline, {args.batch_size / (total - medians['decode + augment (loader workers)']):.1f} "
          "images/s without it")
    for name, seconds in medians.items():
        print(f"  {name:38s} {seconds * 1000:8.1f} ms  {100 * seconds / total:5.1f} %")

    # forward + backward by operator kind (self time, so nested ops are not counted twice)
    with profile(activities=[ProfilerActivity.CPU], with_flops=True) as profiler:
        for index in range(2):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
                loss = forward(pixel_values=normalize_pixels(batch_of(transform, faces), mean, std),
                               noise=mask_noise(args.batch_size, num_patches, seed=0, step=index, rank=0)).loss
            loss.backward()
            optimizer.zero_grad(set_to_none=True)
    by_kind, matmul_flops = defaultdict(float), 0.0
    for event in profiler.key_averages():
        by_kind[kind_of(event.key)] += event.self_cpu_time_total
        if kind_of(event.key) == "matrix multiply":
            matmul_flops += event.flops
    everything = sum(by_kind.values())
    print("forward + backward by operator kind (profiler self time):")
    for kind, microseconds in sorted(by_kind.items(), key=lambda item: -item[1]):
        print(f"  {kind:38s} {100 * microseconds / everything:5.1f} %")
    seconds = by_kind["matrix multiply"] / 1e6
    if seconds:
        print(f"matrix multiplies: {matmul_flops / seconds / 1e9:.0f} GFLOP/s over {threads} threads "
              f"({matmul_flops / seconds / 1e9 / threads:.0f} per thread)")


def batch_of(transform, faces) -> torch.Tensor:
    return torch.stack([transform(face, key=str(i))[0] for i, face in enumerate(faces)])


if __name__ == "__main__":
    main()
