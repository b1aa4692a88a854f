"""Why a ViT does or does not learn the small-data benchmark: one variant, a plain loop, loss per epoch.

Trains one model variant on OUT/basic/train (Neutral as the all-zero target) with the reference loop of
benchmarks/small_data_reference.py (flip + 4 px shift, CutMix/Mixup of two basics that form an ABAW7
compound, AdamW, one-cycle lr) and prints, per epoch, the training BCE and the compound macro F1 on
OUT/compound/test. The label prior's BCE is about 0.46 here: a model whose loss stays there has
learned nothing. Variants:

    vgg        the reference VGG-style CNN (7 conv layers)
    vit        a ViTForCompoundExpression built from --preset / --stem / --stem-style (or --mae)
    vgg-stem   the ViT with the VGG's conv layers as its stem (a 1x1 projection to the width)

    OMP_NUM_THREADS=1 python benchmarks/small_data_diagnosis.py vit --stem 32,64,128 --layers 0
    OMP_NUM_THREADS=1 python benchmarks/small_data_diagnosis.py vit --stem 16,64,96,192 --convs 2 --stem-style pooled
    OMP_NUM_THREADS=1 python benchmarks/small_data_diagnosis.py vit --mae runs/mae --reset-stem

Figures: docs/curriculum.md, "Small data".
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
import small_data_reference as reference  # noqa: E402

from cer_hf.image_io import FACE_MEAN, FACE_STD  # noqa: E402
from cer_hf.modeling.build import ModelArguments, build_model  # noqa: E402


class Logits(nn.Module):
    """A compound-expression model seen as a plain logits module."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, pixels):
        return self.model(pixels.contiguous()).logits


def build_variant(args) -> nn.Module:
    """The model of `args.variant`, seeded by `args.seed`."""
    torch.manual_seed(args.seed)
    if args.variant == "vgg":
        return reference.vgg_small()
    stem = [int(width) for width in args.stem.split(",")] if args.stem else []
    fresh = ModelArguments(model_preset=args.preset, image_size=64, patch_size=args.patch, conv_stem_channels=stem,
                           conv_stem_convs_per_stage=args.convs, conv_stem_style=args.stem_style, drop_path_rate=0.0)
    if args.mae:
        model, _ = build_model(ModelArguments(mae_checkpoint=args.mae, image_size=64, drop_path_rate=0.0,
                                              reinit_conv_stem=args.reset_stem))
    else:
        model, _ = build_model(fresh)
    if args.variant == "vgg-stem":
        embeddings = model.vit.embeddings.patch_embeddings
        embeddings.stem = reference.vgg_small()[:-4]  # the conv layers, without pooling and head
        embeddings.projection = nn.Conv2d(192, model.config.hidden_size, 1)
    if args.layers >= 0:
        model.vit.layers = model.vit.layers[: args.layers]
    with torch.no_grad():
        model.vit.embeddings.position_embeddings.mul_(args.position_scale)
    return Logits(model)


def main() -> None:
    """Train the variant and print the training BCE and compound macro F1 after every epoch."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variant", choices=["vgg", "vit", "vgg-stem"])
    parser.add_argument("--data", required=True, help="folder with basic/train and compound/test")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--weight-decay", type=float, default=0.05)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--preset", default="mini")
    parser.add_argument("--patch", type=int, default=8)
    parser.add_argument("--stem", default="32,64,128", help="conv stem widths, comma-separated ('' for none)")
    parser.add_argument("--convs", type=int, default=1, help="convolutions per stem stage")
    parser.add_argument("--stem-style", default="strided", choices=["strided", "pooled"])
    parser.add_argument("--layers", type=int, default=-1, help="keep only this many transformer blocks")
    parser.add_argument("--position-scale", type=float, default=1.0, help="scale the fixed position embeddings")
    parser.add_argument("--mae", default=None, help="start from this MAE checkpoint instead of a fresh model")
    parser.add_argument("--reset-stem", action="store_true", help="with --mae: start the conv stem afresh")
    args = parser.parse_args()
    torch.set_num_threads(1)

    root = Path(args.data)
    train_images, train_targets, _ = reference.load_folder(root / "basic/train", 64)
    test_images, _, test_names = reference.load_folder(root / "compound/test", 64)
    parts = [reference.folder_basics(name) for name in test_names]
    truth = np.array([reference.ABAW7.index(p if p in reference.ABAW7 else p[::-1]) for p in parts])
    mean, std = np.array(FACE_MEAN).reshape(1, 3, 1, 1), np.array(FACE_STD).reshape(1, 3, 1, 1)

    def tensor(images):
        return torch.from_numpy(((images / 255.0 - mean) / std).astype(np.float32))

    x, test = tensor(train_images), tensor(test_images)
    y = torch.from_numpy(train_targets)
    pools = {"images": x}
    for k, name in enumerate(reference.BASICS):
        pools[name] = torch.nonzero((y[:, k] == 1) & (y.sum(1) == 1)).flatten().tolist()

    model = build_variant(args)
    print(f"{args}\n{sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters", flush=True)
    generator = torch.Generator().manual_seed(args.seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    steps = args.epochs * ((len(x) + args.batch - 1) // args.batch)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=args.lr, total_steps=steps, pct_start=0.15)
    start = time.time()
    for epoch in range(args.epochs):
        model.train()
        order, total = torch.randperm(len(x), generator=generator), 0.0
        for first in range(0, len(x), args.batch):
            index = order[first:first + args.batch]
            images, targets = reference._compound_mix(reference._augment(x[index], generator), y[index], pools,
                                                      generator)
            loss = F.binary_cross_entropy_with_logits(model(images), targets)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            total += loss.item() * len(index)
        with torch.no_grad():
            model.eval()
            probabilities = torch.cat([torch.sigmoid(model(test[i:i + 256])) for i in range(0, len(test), 256)])
        f1 = reference.macro_f1(truth, reference.compound_predictions(probabilities.numpy()), len(reference.ABAW7))
        print(f"epoch {epoch} training BCE {total / len(x):.4f} compound macro F1 {f1:.3f} "
              f"({time.time() - start:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
