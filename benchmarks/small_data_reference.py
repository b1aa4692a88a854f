"""Reference scores on a small compound-expression folder (as written by make_small_data.py).

Standalone (torch + numpy + PIL; no torchvision, no cer_hf). Rows:

    lr          logistic regression on raw pixels, 6 sigmoid outputs, basics only
    lr+nat      ... basics + the natural compound train images
    cnn+mix     small VGG-style CNN (7 conv layers, BatchNorm, ~0.66 M params), basics
                with CutMix/Mixup of two basics that form an ABAW7 compound (target: union)
    cnn+mix+nat ... plus the natural compound train images
    cnn         (only with --rows) the CNN on basics without mixing

Every model has 6 sigmoid outputs for Anger, Disgust, Fear, Happiness, Sadness, Surprise
(Neutral is the all-zero target) trained with BCE; a test image is assigned the compound
whose two constituents have the largest summed probability. Metric: macro F1 over the 7
compound classes of OUT/compound/test.

Usage:
    OMP_NUM_THREADS=1 python benchmarks/small_data_reference.py data/smalldata_s0
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

BASICS = ("Anger", "Disgust", "Fear", "Happiness", "Sadness", "Surprise")
_WORDS = {
    "neutral": "Neutral", "anger": "Anger", "angry": "Anger", "angrily": "Anger",
    "disgust": "Disgust", "disgusted": "Disgust", "disgustedly": "Disgust",
    "fear": "Fear", "fearful": "Fear", "fearfully": "Fear",
    "happiness": "Happiness", "happy": "Happiness", "happily": "Happiness",
    "sadness": "Sadness", "sad": "Sadness", "sadly": "Sadness",
    "surprise": "Surprise", "surprised": "Surprise",
}
# The ABAW7 compounds as (first, second) basics.
ABAW7 = (("Fear", "Surprise"), ("Happiness", "Surprise"), ("Sadness", "Surprise"),
         ("Disgust", "Surprise"), ("Anger", "Surprise"), ("Sadness", "Fear"), ("Sadness", "Anger"))


def folder_basics(name: str) -> tuple[str, ...]:
    """The basics a folder name stands for: "Happily_Surprised" -> (Happiness, Surprise)."""
    parts = tuple(_WORDS[w] for w in name.lower().replace("-", "_").split("_") if w)
    return tuple(p for p in parts if p != "Neutral")


def load_folder(root: Path, size: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """All images under root/<class>/ as uint8 [N, 3, size, size], 6-d targets and class names."""
    images, targets, names = [], [], []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        basics = folder_basics(folder.name)
        target = np.array([1.0 if b in basics else 0.0 for b in BASICS], dtype=np.float32)
        for path in sorted(folder.glob("*.png")):
            img = Image.open(path).convert("RGB")
            if img.size != (size, size):
                img = img.resize((size, size), Image.BILINEAR)
            images.append(np.asarray(img).transpose(2, 0, 1))
            targets.append(target)
            names.append(folder.name)
    return np.stack(images), np.stack(targets), names


def compound_predictions(probs: np.ndarray) -> np.ndarray:
    """Index into ABAW7 of the compound with the largest summed constituent probability."""
    scores = np.stack([probs[:, BASICS.index(a)] + probs[:, BASICS.index(b)] for a, b in ABAW7], 1)
    return scores.argmax(1)


def macro_f1(true: np.ndarray, pred: np.ndarray, n: int) -> float:
    """Macro F1 over n classes (a class without predictions or examples scores 0)."""
    scores = []
    for c in range(n):
        tp = np.sum((pred == c) & (true == c))
        fp, fn = np.sum((pred == c) & (true != c)), np.sum((pred != c) & (true == c))
        scores.append(2 * tp / max(1, 2 * tp + fp + fn))
    return float(np.mean(scores))


# ----------------------------------------------------------------------------- models


def vgg_small() -> nn.Module:
    """7 conv layers with BatchNorm: 16 | 32 64 | 96 96 | 192 192, global pool, 6 outputs."""
    def conv(i, o):
        return [nn.Conv2d(i, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU(inplace=True)]
    return nn.Sequential(
        *conv(3, 16), nn.MaxPool2d(2),
        *conv(16, 32), *conv(32, 64), nn.MaxPool2d(2),
        *conv(64, 96), *conv(96, 96), nn.MaxPool2d(2),
        *conv(96, 192), *conv(192, 192),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.3), nn.Linear(192, len(BASICS)),
    )


def linear_model(size: int) -> nn.Module:
    """Logistic regression on the flattened pixels."""
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * size * size, len(BASICS)))


def _augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Random horizontal flip and a random shift of up to 4 px (reflect padding)."""
    flip = torch.rand(len(x), generator=g) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(3), x)
    pad = F.pad(x, (4, 4, 4, 4), mode="reflect")
    dx, dy = torch.randint(0, 9, (2,), generator=g).tolist()
    return pad[:, :, dy:dy + x.shape[2], dx:dx + x.shape[3]]


def _compound_mix(x, y, pools, g, fraction=0.25):
    """Mix a fraction of the batch with a partner basic that forms an ABAW7 compound.

    Half of the mixed items use Mixup (lambda in [0.35, 0.65]), half CutMix (a random
    box of 30-60 % of the area); the target is the union of both basics.
    """
    x, y = x.clone(), y.clone()
    for i in torch.nonzero(torch.rand(len(x), generator=g) < fraction).flatten().tolist():
        own = [BASICS[k] for k in torch.nonzero(y[i]).flatten().tolist()]
        if len(own) != 1:
            continue  # Neutral or an already compound target
        partners = [b if a == own[0] else a for a, b in ABAW7 if own[0] in (a, b)]
        partner = partners[int(torch.randint(len(partners), (1,), generator=g))]
        pool = pools[partner]
        j = pool[int(torch.randint(len(pool), (1,), generator=g))]
        other = _augment(pools["images"][j:j + 1], g)[0]
        if torch.rand(1, generator=g) < 0.5:
            lam = 0.35 + 0.3 * float(torch.rand(1, generator=g))
            x[i] = lam * x[i] + (1 - lam) * other
        else:
            h, w = x.shape[2:]
            area = 0.3 + 0.3 * float(torch.rand(1, generator=g))
            bh = int(h * area ** 0.5)
            bw = int(w * area ** 0.5)
            top = int(torch.randint(h - bh + 1, (1,), generator=g))
            left = int(torch.randint(w - bw + 1, (1,), generator=g))
            x[i, :, top:top + bh, left:left + bw] = other[:, top:top + bh, left:left + bw]
        y[i, BASICS.index(partner)] = 1.0
    return x, y


def train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, epochs: int, lr: float,
          weight_decay: float, batch: int, seed: int, augment: bool, mix_pools: dict | None) -> float:
    """AdamW + cosine schedule on BCE; returns the last epoch's mean loss."""
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    steps = epochs * ((len(x) + batch - 1) // batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.15)
    model.train()
    for epoch in range(epochs):
        order = torch.randperm(len(x), generator=g)
        total, count = 0.0, 0
        for start in range(0, len(x), batch):
            idx = order[start:start + batch]
            xb, yb = x[idx], y[idx]
            if augment:
                xb = _augment(xb, g)
            if mix_pools is not None:
                xb, yb = _compound_mix(xb, yb, mix_pools, g)
            loss = F.binary_cross_entropy_with_logits(model(xb.contiguous(memory_format=torch.channels_last)), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            loss = loss.detach()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
            count += len(idx)
    return total / count


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch: int = 256) -> np.ndarray:
    """Sigmoid probabilities [N, 6]."""
    model.eval()
    return torch.cat([torch.sigmoid(model(x[i:i + batch].contiguous(memory_format=torch.channels_last)))
                      for i in range(0, len(x), batch)]).numpy()


def main() -> None:
    """Load the three folders, train each requested row and print its compound macro F1."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", help="folder with basic/train, compound/train, compound/test")
    parser.add_argument("--rows", default="lr,lr+nat,cnn+mix,cnn+mix+nat")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--lr-epochs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0, help="seed of the model initialisation and batches")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    root = Path(args.data)

    t0 = time.time()
    xb, yb, _ = load_folder(root / "basic/train", args.image_size)
    xc, yc, _ = load_folder(root / "compound/train", args.image_size)
    xt, _, test_names = load_folder(root / "compound/test", args.image_size)
    test_true = np.array([ABAW7.index(folder_basics(n)) if folder_basics(n) in ABAW7
                          else ABAW7.index(folder_basics(n)[::-1]) for n in test_names])
    mean = xb.reshape(len(xb), 3, -1).mean((0, 2)).reshape(1, 3, 1, 1) / 255
    std = xb.reshape(len(xb), 3, -1).std((0, 2)).reshape(1, 3, 1, 1) / 255

    def tensor(a):
        return torch.from_numpy(((a / 255.0 - mean) / std).astype(np.float32))

    xb_t, xc_t, xt_t = tensor(xb), tensor(xc), tensor(xt)
    yb_t, yc_t = torch.from_numpy(yb), torch.from_numpy(yc)
    print(f"loaded {len(xb)} basic, {len(xc)} compound train, {len(xt)} compound test images "
          f"in {time.time() - t0:.1f} s")
    prior = yb.mean(0)
    prior_loss = float(-np.mean(prior * np.log(prior) + (1 - prior) * np.log(1 - prior)))
    print(f"BCE of the label prior (basics): {prior_loss:.4f}")

    pools = {"images": xb_t}
    for k, name in enumerate(BASICS):
        pools[name] = torch.nonzero((yb_t[:, k] == 1) & (yb_t.sum(1) == 1)).flatten().tolist()

    results = {}
    for row in args.rows.split(","):
        torch.manual_seed(args.seed)
        start = time.time()
        natural = row.endswith("+nat")
        x = torch.cat([xb_t, xc_t]) if natural else xb_t
        y = torch.cat([yb_t, yc_t]) if natural else yb_t
        if row.startswith("lr"):
            model = linear_model(args.image_size)
            loss = train(model, x, y, epochs=args.lr_epochs, lr=1e-3, weight_decay=1e-2, batch=128,
                         seed=args.seed, augment=False, mix_pools=None)
        elif row.startswith("cnn"):
            model = vgg_small().to(memory_format=torch.channels_last)
            loss = train(model, x, y, epochs=args.epochs, lr=2e-3, weight_decay=5e-4, batch=32,
                         seed=args.seed, augment=True, mix_pools=pools if "+mix" in row else None)
        else:
            raise SystemExit(f"unknown row {row!r}")
        f1 = macro_f1(test_true, compound_predictions(predict(model, xt_t)), len(ABAW7))
        results[row] = f1
        params = sum(p.numel() for p in model.parameters())
        print(f"{row:12s} compound macro F1 {f1:.3f}   (final train BCE {loss:.4f}, "
              f"{params / 1e6:.2f} M params, {time.time() - start:.0f} s)", flush=True)
    print("summary " + " ".join(f"{k}={v:.3f}" for k, v in results.items())
          + f"  total {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
