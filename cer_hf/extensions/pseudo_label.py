"""Semi-supervised teacher/student pseudo-labelling (Yu et al., ABAW6, CVPR 2024 workshop, sec. 3.2-3.3).

Applied to expression classification with `ViTForCompoundExpression` (its multi-label BCE over the
basic expressions stays the training objective, so a pseudo-labelled model is an ordinary
checkpoint of the toolkit):

* "basic" task: classes = `config.basic_labels`; class scores = the sigmoid probabilities.
* "compound" task: classes = `config.compound_names`; class scores = half the compound scores
  (mean probability of the two constituents); a (pseudo-)label is the multi-hot of its constituents.

The loop (`pseudo_label_rounds`):

1. The teacher is trained on class-balanced labelled batches (equal samples per class, sec.
   3.2.1; `balanced_batches`) plus a consistency loss between its predictions on weakly and
   strongly augmented unlabelled faces (eq. 4).
2. A fresh student trains on labelled batches plus the unlabelled faces whose teacher prediction
   (weak view) is confident: the teacher's hard label is the target for the student's strong view
   (eq. 1). The threshold is fixed, or per class as in FlexMatch's curriculum pseudo-labelling
   (`FlexMatchThresholds`).
3. The student becomes the teacher of the next round.

Optional feedback (meta pseudo labels, eq. 5-6): during the student's training the teacher is
also updated with L_s + L_c + f·CE(ŷ, T(x_u)), where f = η_S · ∇θ'L_l(S')ᵀ ∇θ L_u(S) is the dot
product of the updated student's gradient on a labelled batch and its pre-update gradient on
the pseudo-labelled batch. Cost per step: one extra forward + backward of the student on a
labelled batch (its gradient after the update), a gradient copy, and a teacher forward/backward
(≈ 2× a plain pseudo-label step).

Augmentations are tensor ops on normalised pixels (no torchvision): `weak_augment` (flip,
brightness/contrast jitter) and `strong_augment` (RandAugment-like: two random ops out of
twelve at a random magnitude, then cutout).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F

from cer_hf.evaluation.metrics import macro_f1
from cer_hf.image_io import FACE_MEAN, FACE_STD


# ----------------------------------------------------------------------------- augmentations


def _uniform(n: int, low: float, high: float, generator: torch.Generator, device) -> torch.Tensor:
    return (torch.rand(n, generator=generator) * (high - low) + low).to(device)


def _per_sample(values: torch.Tensor) -> torch.Tensor:
    return values.view(-1, 1, 1, 1)


def _affine(images: torch.Tensor, matrices: torch.Tensor) -> torch.Tensor:
    grid = F.affine_grid(matrices, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _unnormalise(pixels, mean, std):
    return pixels * torch.tensor(std, device=pixels.device).view(1, 3, 1, 1) + torch.tensor(
        mean, device=pixels.device
    ).view(1, 3, 1, 1)


def _normalise(images, mean, std):
    return (images - torch.tensor(mean, device=images.device).view(1, 3, 1, 1)) / torch.tensor(
        std, device=images.device
    ).view(1, 3, 1, 1)


def weak_augment(
    pixels: torch.Tensor, generator: torch.Generator, *, flip_prob: float = 0.5, jitter: float = 0.1,
    mean=FACE_MEAN, std=FACE_STD,
) -> torch.Tensor:
    """Horizontal flip (p=`flip_prob`) and brightness/contrast jitter (±`jitter`), per sample."""
    n, device = pixels.shape[0], pixels.device
    images = _unnormalise(pixels, mean, std)
    flip = _per_sample(torch.rand(n, generator=generator).to(device) < flip_prob)
    images = torch.where(flip, images.flip(-1), images)
    brightness = _per_sample(_uniform(n, 1 - jitter, 1 + jitter, generator, device))
    contrast = _per_sample(_uniform(n, 1 - jitter, 1 + jitter, generator, device))
    gray_mean = images.mean(dim=(1, 2, 3), keepdim=True)
    images = ((images * brightness - gray_mean) * contrast + gray_mean).clamp(0, 1)
    return _normalise(images, mean, std)


NUM_OPS = 12


def _apply_op(op: int, images: torch.Tensor, m: torch.Tensor, sign: torch.Tensor) -> torch.Tensor:
    """RandAugment-like op number `op` (of `NUM_OPS`) at per-sample magnitudes `m` in [0, 1] and directions `sign`."""
    ms, signed = _per_sample(m), _per_sample(sign * m)
    if op == 0:  # identity
        return images
    if op == 1:  # brightness
        return (images * (1 + signed * 0.9)).clamp(0, 1)
    if op == 2:  # contrast
        mean = images.mean(dim=(1, 2, 3), keepdim=True)
        return ((images - mean) * (1 + signed * 0.9) + mean).clamp(0, 1)
    if op == 3:  # colour (saturation)
        gray = images.mean(dim=1, keepdim=True)
        return (gray + (images - gray) * (1 + signed * 0.9)).clamp(0, 1)
    if op == 4:  # sharpness
        blurred = F.avg_pool2d(F.pad(images, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
        return (images + (images - blurred) * signed * 0.9).clamp(0, 1)
    if op == 5:  # posterize: 8 down to 4 bits
        levels = _per_sample(2 ** (4 * m).round())
        return torch.floor(images * 255 / levels) * levels / 255
    if op == 6:  # solarize: invert above a falling threshold
        return torch.where(images >= 1 - ms, 1 - images, images)
    if op == 7:  # autocontrast
        low, high = images.amin(dim=(2, 3), keepdim=True), images.amax(dim=(2, 3), keepdim=True)
        return ((images - low) / (high - low).clamp(min=1e-3)).clamp(0, 1)
    zero, one = torch.zeros_like(m), torch.ones_like(m)
    if op == 8:  # rotate up to 30 degrees
        angle = sign * m * math.radians(30)
        rows = [torch.stack([angle.cos(), -angle.sin(), zero], 1), torch.stack([angle.sin(), angle.cos(), zero], 1)]
    elif op == 9:  # shear x
        rows = [torch.stack([one, sign * m * 0.3, zero], 1), torch.stack([zero, one, zero], 1)]
    elif op == 10:  # translate x up to 30%
        rows = [torch.stack([one, zero, sign * m * 0.3], 1), torch.stack([zero, one, zero], 1)]
    else:  # translate y
        rows = [torch.stack([one, zero, zero], 1), torch.stack([zero, one, sign * m * 0.3], 1)]
    return _affine(images, torch.stack(rows, 1))


def strong_augment(
    pixels: torch.Tensor, generator: torch.Generator, *, num_ops: int = 2, cutout: float = 0.5,
    mean=FACE_MEAN, std=FACE_STD,
) -> torch.Tensor:
    """RandAugment-like strong view: weak flip, `num_ops` random ops at random magnitudes, then a cutout square.

    `cutout` is the side of the zeroed square as a fraction of the image (FixMatch's RandAugment uses 0.5).
    """
    pixels = weak_augment(pixels, generator, jitter=0.0, mean=mean, std=std)  # the flip
    images = _unnormalise(pixels, mean, std)
    n, device = images.shape[0], images.device
    for _ in range(num_ops):
        magnitude = torch.rand(n, generator=generator).to(device)
        sign = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0).to(device)
        choice = torch.randint(0, NUM_OPS, (n,), generator=generator).to(device)
        augmented = images.clone()
        for op in choice.unique().tolist():  # each op runs once, on the samples that drew it
            chosen = choice == op
            augmented[chosen] = _apply_op(op, images[chosen], magnitude[chosen], sign[chosen])
        images = augmented
    if cutout > 0:
        height, width = images.shape[-2:]
        size = max(1, int(round(cutout * min(height, width))))
        cy = torch.randint(0, height, (n,), generator=generator).to(device).view(-1, 1, 1)
        cx = torch.randint(0, width, (n,), generator=generator).to(device).view(-1, 1, 1)
        ys = torch.arange(height, device=device).view(1, -1, 1)
        xs = torch.arange(width, device=device).view(1, 1, -1)
        hole = ((ys - cy).abs() <= size // 2) & ((xs - cx).abs() <= size // 2)
        images = images.masked_fill(hole.unsqueeze(1), 0.5)  # mid-grey, as RandAugment's cutout
    return _normalise(images, mean, std)


# ----------------------------------------------------------------------------- classes and sampling


def class_scores(model, pixel_values: torch.Tensor, task: str = "basic") -> tuple[torch.Tensor, torch.Tensor]:
    """`(logits, scores)`: the model's basic logits and per-class scores in [0, 1] of the task's classes."""
    out = model(pixel_values)
    if task == "basic":
        return out.logits, out.probabilities
    if task == "compound":
        return out.logits, out.compound_scores / 2
    raise ValueError(f"task must be 'basic' or 'compound', got {task!r}")


def class_targets(model, classes: torch.Tensor, task: str = "basic") -> torch.Tensor:
    """Multi-hot basic targets `(n, num_basics)` for class indices of the task."""
    num_basics = len(model.config.basic_labels)
    if task == "basic":
        return F.one_hot(classes.long(), num_basics).float()
    return model.compound_matrix(classes.device, torch.float32)[classes.long()]


def balanced_batches(labels: torch.Tensor, per_class: int, generator: torch.Generator):
    """Endless index batches with exactly `per_class` samples of every class (Yu et al.'s (ABAW6) balanced sampling).

    Each class is drawn without replacement until exhausted, then reshuffled.
    """
    classes = labels.unique().tolist()
    pools = {c: torch.nonzero(labels == c).flatten() for c in classes}
    queues = {c: torch.empty(0, dtype=torch.long) for c in classes}
    while True:
        batch = []
        for c in classes:
            while len(queues[c]) < per_class:
                queues[c] = torch.cat([queues[c], pools[c][torch.randperm(len(pools[c]), generator=generator)]])
            batch.append(queues[c][:per_class])
            queues[c] = queues[c][per_class:]
        yield torch.cat(batch)


class FlexMatchThresholds:
    """Per-class thresholds of FlexMatch's curriculum pseudo-labelling (Zhang et al. 2021).

    σ_c counts the unlabelled samples whose latest prediction is class c above the base threshold
    τ; β_c = σ_c / max(max_k σ_k, #unused) (warmup: unused samples count as a class); threshold
    T_c = β_c / (2 - β_c) · τ (the convex mapping), so classes the model has learnt less get a
    lower bar.
    """

    def __init__(self, num_classes: int, num_unlabelled: int, threshold: float):
        self.num_classes, self.threshold = num_classes, threshold
        self.predictions = torch.full((num_unlabelled,), -1, dtype=torch.long)

    def update(self, indices: torch.Tensor, classes: torch.Tensor, confidences: torch.Tensor) -> None:
        """Record the latest confident predictions of the unlabelled samples `indices`."""
        confident = confidences.cpu() > self.threshold
        self.predictions[indices.cpu()[confident]] = classes.cpu()[confident]

    def thresholds(self) -> torch.Tensor:
        """The current per-class thresholds `(num_classes,)`."""
        sigma = torch.bincount(self.predictions[self.predictions >= 0], minlength=self.num_classes).float()
        unused = (self.predictions < 0).sum().float()
        beta = sigma / torch.maximum(sigma.max(), unused).clamp(min=1)
        return beta / (2 - beta) * self.threshold


# ----------------------------------------------------------------------------- training


@dataclass
class PseudoLabelConfig:
    """Settings of the pseudo-labelling loop (see the module docstring).

    Attributes:
        task: "basic" or "compound".
        rounds: teacher/student rounds (the student of round r is the teacher of round r + 1).
        teacher_steps, student_steps: optimiser steps of the first teacher and of each student.
        per_class: labelled samples per class in each (class-balanced) labelled batch.
        unlabelled_batch: unlabelled faces per step.
        threshold: confidence above which a pseudo-label is used (the base τ with FlexMatch).
        flexmatch: per-class FlexMatch thresholds instead of one fixed threshold.
        unlabelled_weight: weight of the pseudo-label loss (eq. 1) in the student's loss.
        consistency_weight: weight of the teacher's weak/strong consistency loss (eq. 4).
        feedback: also update the teacher with the feedback (meta pseudo-label) term (eq. 5-6).
        student_init: "teacher" (the student starts as a copy of its teacher, then trains on
            labelled + pseudo-labelled data) or "fresh" (a new model from `make_model`, noisy-student style).
        strong_ops, strong_cutout: RandAugment-like ops per strong view and the cutout side (fraction of the image).
        learning_rate, weight_decay: AdamW settings (cosine decay, 5% warmup).
        seed: seeds every random step (augmentations, sampling, initialisation through `make_model`).
        image_mean, image_std: the statistics the pixels were normalised with (the model's image processor's:
            an MAE checkpoint's own, else the ABAW7 face statistics); augmentations undo and redo them.
    """

    task: str = "basic"
    rounds: int = 2
    teacher_steps: int = 300
    student_steps: int = 300
    per_class: int = 4
    unlabelled_batch: int = 64
    threshold: float = 0.7
    flexmatch: bool = False
    unlabelled_weight: float = 1.0
    consistency_weight: float = 1.0
    feedback: bool = False
    student_init: str = "teacher"
    strong_ops: int = 2
    strong_cutout: float = 0.25
    learning_rate: float = 1e-3
    weight_decay: float = 0.05
    seed: int = 0
    image_mean: list[float] = field(default_factory=lambda: list(FACE_MEAN))
    image_std: list[float] = field(default_factory=lambda: list(FACE_STD))


def _stats(config: PseudoLabelConfig) -> dict:
    return {"mean": tuple(config.image_mean), "std": tuple(config.image_std)}


@dataclass
class RoundReport:
    """What one round did: who was trained, the share of confident pseudo-labels, their accuracy if known."""

    round: int
    mask_rate: float
    pseudo_label_accuracy: float | None
    score: float | None = None
    losses: list = field(default_factory=list)
    feedbacks: list = field(default_factory=list)  # the feedback coefficient f (eq. 6) of each step, with feedback on


def _optimizer(model, config: PseudoLabelConfig, steps: int):
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        [
            {"params": [p for p in params if p.ndim >= 2], "weight_decay": config.weight_decay},
            {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},
        ],
        lr=config.learning_rate,
        betas=(0.9, 0.95),
    )
    warmup = max(1, steps // 20)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda s: (s + 1) / warmup if s < warmup else 0.5 * (1 + math.cos(math.pi * (s - warmup) / max(1, steps - warmup))),
    )
    return optimizer, scheduler


def _masked_bce(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    per_sample = F.binary_cross_entropy_with_logits(logits, targets, reduction="none").mean(-1)
    return (per_sample * mask).sum() / mask.numel()  # FixMatch normalisation: over the whole unlabelled batch


def _consistency(model, weak_pixels, strong_pixels, task) -> torch.Tensor:
    """Eq. 4: the strong view's BCE against the (detached) weak-view probabilities."""
    with torch.no_grad():
        target = torch.sigmoid(model(weak_pixels).logits)
    return F.binary_cross_entropy_with_logits(model(strong_pixels).logits, target)


def train_supervised(
    model, pixels: torch.Tensor, labels: torch.Tensor, config: PseudoLabelConfig, *, steps: int,
    unlabelled: torch.Tensor | None = None, device="cpu",
) -> list[float]:
    """Train on class-balanced labelled batches (+ the consistency loss on `unlabelled` if given): the teacher's stage."""
    generator = torch.Generator().manual_seed(config.seed)
    model.to(device).train()
    optimizer, scheduler = _optimizer(model, config, steps)
    batches = balanced_batches(labels, config.per_class, generator)
    losses = []
    for _ in range(steps):
        index = next(batches)
        x = weak_augment(pixels[index].to(device), generator, **_stats(config))
        logits, _ = class_scores(model, x, config.task)
        loss = F.binary_cross_entropy_with_logits(logits, class_targets(model, labels[index].to(device), config.task))
        if unlabelled is not None and config.consistency_weight > 0:
            u = unlabelled[torch.randint(0, len(unlabelled), (config.unlabelled_batch,), generator=generator)].to(device)
            loss = loss + config.consistency_weight * _consistency(
                model, weak_augment(u, generator, **_stats(config)),
                strong_augment(u, generator, num_ops=config.strong_ops, cutout=config.strong_cutout, **_stats(config)),
                config.task
            )
        _check(loss)
        loss.backward()
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    model.eval()
    return losses


def _check(loss):
    if not torch.isfinite(loss):
        raise FloatingPointError(f"non-finite loss {loss.item()}")


def train_student(
    student, teacher, pixels: torch.Tensor, labels: torch.Tensor, unlabelled: torch.Tensor, config: PseudoLabelConfig,
    *, unlabelled_labels: torch.Tensor | None = None, device="cpu", seed_offset: int = 0,
) -> RoundReport:
    """One round: the student learns from labelled batches and the teacher's confident pseudo-labels.

    With `config.feedback`, the teacher is updated at every step too (eq. 2 with the feedback term).
    `unlabelled_labels` (never used for training) only measure the pseudo-labels' accuracy.
    """
    generator = torch.Generator().manual_seed(config.seed + 1000 * (seed_offset + 1))
    student.to(device).train()
    teacher.to(device)
    teacher.train() if config.feedback else teacher.eval()
    optimizer, scheduler = _optimizer(student, config, config.student_steps)
    if config.feedback:
        teacher_optimizer, teacher_scheduler = _optimizer(teacher, config, config.student_steps)
    num_classes = len(student.config.basic_labels if config.task == "basic" else student.config.compound_names)
    flex = FlexMatchThresholds(num_classes, len(unlabelled), config.threshold) if config.flexmatch else None
    batches = balanced_batches(labels, config.per_class, generator)
    params = [p for p in student.parameters() if p.requires_grad]
    losses, feedbacks, kept, seen, correct = [], [], 0, 0, 0
    for _ in range(config.student_steps):
        index = next(batches)
        x_l = weak_augment(pixels[index].to(device), generator, **_stats(config))
        y_l = class_targets(student, labels[index].to(device), config.task)
        u_index = torch.randint(0, len(unlabelled), (config.unlabelled_batch,), generator=generator)
        u = unlabelled[u_index].to(device)
        u_weak = weak_augment(u, generator, **_stats(config))
        u_strong = strong_augment(u, generator, num_ops=config.strong_ops, cutout=config.strong_cutout,
                                  **_stats(config))

        # Teacher's pseudo-labels on the weak view.
        with torch.set_grad_enabled(config.feedback):
            teacher_logits, teacher_scores = class_scores(teacher, u_weak, config.task)
        confidence, pseudo = teacher_scores.detach().max(-1)
        if flex is not None:
            flex.update(u_index, pseudo, confidence)
            mask = (confidence >= flex.thresholds().to(device)[pseudo]).float()
        else:
            mask = (confidence >= config.threshold).float()
        kept += int(mask.sum())
        seen += len(mask)
        if unlabelled_labels is not None:
            correct += int(((pseudo.cpu() == unlabelled_labels[u_index]) & (mask.cpu() > 0)).sum())
        pseudo_targets = class_targets(student, pseudo, config.task)

        # Student step: labelled loss + pseudo-label loss on the strong view (eq. 1).
        labelled_loss = F.binary_cross_entropy_with_logits(class_scores(student, x_l, config.task)[0], y_l)
        student_logits, _ = class_scores(student, u_strong, config.task)
        unlabelled_loss = _masked_bce(student_logits, pseudo_targets, mask)
        loss = labelled_loss + config.unlabelled_weight * unlabelled_loss
        _check(loss)
        if config.feedback:
            grad_u = torch.autograd.grad(unlabelled_loss, params, retain_graph=True, allow_unused=True)
        optimizer.zero_grad()
        loss.backward()
        learning_rate = optimizer.param_groups[0]["lr"]
        optimizer.step()
        scheduler.step()
        losses.append(loss.item())

        if config.feedback:
            # Eq. 6: f = η_S · ∇θ' L_l(S(θ'))ᵀ ∇θ L_u(S(θ)) - the extra student forward/backward on labelled data.
            new_loss = F.binary_cross_entropy_with_logits(class_scores(student, x_l, config.task)[0], y_l)
            grad_new = torch.autograd.grad(new_loss, params, allow_unused=True)
            dot = sum((a * b).sum() for a, b in zip(grad_new, grad_u) if a is not None and b is not None)
            feedback = learning_rate * config.unlabelled_weight * float(dot)
            feedbacks.append(feedback)
            # Eq. 2: L_T = L_s + L_c + f · CE(ŷ, T(x_u)) on the confident pseudo-labels.
            t_loss = F.binary_cross_entropy_with_logits(class_scores(teacher, x_l, config.task)[0], y_l)
            if config.consistency_weight > 0:
                t_loss = t_loss + config.consistency_weight * _consistency(teacher, u_weak, u_strong, config.task)
            t_loss = t_loss + feedback * _masked_bce(teacher_logits, pseudo_targets, mask)
            _check(t_loss)
            teacher_optimizer.zero_grad()
            t_loss.backward()
            teacher_optimizer.step()
            teacher_scheduler.step()
    student.eval()
    teacher.eval()
    return RoundReport(
        round=seed_offset,
        mask_rate=kept / max(1, seen),
        pseudo_label_accuracy=(correct / kept if kept else None) if unlabelled_labels is not None else None,
        losses=losses,
        feedbacks=feedbacks,
    )


@torch.no_grad()
def predict_classes(model, pixels: torch.Tensor, task: str = "basic", batch_size: int = 256, device="cpu") -> torch.Tensor:
    """Argmax class of each image for the task (basic, or compound by summed constituent probabilities)."""
    model.to(device).eval()
    return torch.cat(
        [class_scores(model, chunk.to(device), task)[1].argmax(-1).cpu() for chunk in pixels.split(batch_size)]
    )


def pseudo_label_rounds(
    make_model: Callable[[int], torch.nn.Module],
    pixels: torch.Tensor,
    labels: torch.Tensor,
    unlabelled: torch.Tensor,
    config: PseudoLabelConfig,
    *,
    evaluation: tuple[torch.Tensor, torch.Tensor] | None = None,
    unlabelled_labels: torch.Tensor | None = None,
    device="cpu",
    log: Callable[[str], None] | None = None,
):
    """Teacher on balanced labelled data, then `config.rounds` student rounds; returns `(final model, reports)`.

    `make_model(seed)` builds a fresh model (e.g. converted from an MAE checkpoint). `evaluation`
    `(pixels, labels)` is scored (macro F1) after the teacher and after each round.
    """

    def evaluate(model):
        if evaluation is None:
            return None
        num_classes = len(model.config.basic_labels if config.task == "basic" else model.config.compound_names)
        return macro_f1(predict_classes(model, evaluation[0], config.task, device=device), evaluation[1], num_classes)

    teacher = make_model(config.seed)
    losses = train_supervised(teacher, pixels, labels, config, steps=config.teacher_steps, unlabelled=unlabelled, device=device)
    reports = [RoundReport(round=0, mask_rate=0.0, pseudo_label_accuracy=None, score=evaluate(teacher), losses=losses)]
    if log:
        log(f"teacher: macro F1 {reports[0].score}")
    if config.student_init not in ("teacher", "fresh"):
        raise ValueError(f"student_init must be 'teacher' or 'fresh', got {config.student_init!r}")
    for round_index in range(1, config.rounds + 1):
        student = make_model(config.seed + round_index)
        if config.student_init == "teacher":
            student.load_state_dict(teacher.state_dict())
        report = train_student(
            student, teacher, pixels, labels, unlabelled, config,
            unlabelled_labels=unlabelled_labels, device=device, seed_offset=round_index,
        )
        report.score = evaluate(student)
        reports.append(report)
        if log:
            accuracy = "n/a" if report.pseudo_label_accuracy is None else f"{report.pseudo_label_accuracy:.3f}"
            log(f"round {round_index}: pseudo-labels kept {report.mask_rate:.3f}, their accuracy {accuracy}, "
                f"student macro F1 {report.score}")
        teacher = student
    return teacher, reports
