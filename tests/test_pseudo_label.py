"""Pseudo-labelling: augmentations, balanced sampling, FlexMatch thresholds, feedback, and the gain over labelled-only."""

import math

import pytest
import torch

from cer_hf.modeling.convert import compound_config
from cer_hf.modeling.modeling_cer import ViTForCompoundExpression
from cer_hf.extensions.pseudo_label import (
    FlexMatchThresholds,
    PseudoLabelConfig,
    balanced_batches,
    class_targets,
    macro_f1,
    predict_classes,
    pseudo_label_rounds,
    strong_augment,
    train_student,
    train_supervised,
    weak_augment,
)

MICRO = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64, image_size=32, patch_size=8)


def make_model(seed):
    torch.manual_seed(seed)
    return ViTForCompoundExpression(compound_config("abaw7", **MICRO))


def test_augmentations_are_seeded_and_keep_shape():
    pixels = torch.randn(8, 3, 32, 32)
    for augment in (weak_augment, strong_augment):
        first = augment(pixels, torch.Generator().manual_seed(0))
        again = augment(pixels, torch.Generator().manual_seed(0))
        other = augment(pixels, torch.Generator().manual_seed(1))
        assert first.shape == pixels.shape and torch.isfinite(first).all()
        torch.testing.assert_close(first, again)
        assert not torch.allclose(first, other)
    # Strong views differ from the input far more than weak ones.
    weak = (weak_augment(pixels, torch.Generator().manual_seed(2)) - pixels).abs().mean()
    strong = (strong_augment(pixels, torch.Generator().manual_seed(2)) - pixels).abs().mean()
    assert strong > weak


def test_balanced_batches_have_equal_counts_per_class():
    labels = torch.tensor([0] * 20 + [1] * 3 + [2] * 7)
    batches = balanced_batches(labels, per_class=4, generator=torch.Generator().manual_seed(0))
    for _ in range(5):
        batch = next(batches)
        assert torch.bincount(labels[batch], minlength=3).tolist() == [4, 4, 4]


def test_flexmatch_lowers_thresholds_of_classes_learnt_less():
    flex = FlexMatchThresholds(num_classes=3, num_unlabelled=10, threshold=0.9)
    assert torch.all(flex.thresholds() == 0)  # warmup: nothing learnt yet, every class is open
    flex.update(torch.arange(8), torch.tensor([0, 0, 0, 0, 0, 0, 1, 1]), torch.full((8,), 0.95))
    thresholds = flex.thresholds()
    assert thresholds[0] == pytest.approx(0.9)  # β = 1 -> T = τ
    assert thresholds[1] == pytest.approx((2 / 6) / (2 - 2 / 6) * 0.9)
    assert thresholds[2] == 0


def test_compound_targets_are_constituent_multi_hot():
    model = make_model(0)
    targets = class_targets(model, torch.tensor([1]), "compound")  # Happily Surprised
    names = [model.config.basic_labels[i] for i in torch.nonzero(targets[0]).flatten()]
    assert sorted(names) == ["Happiness", "Surprise"]


def test_feedback_updates_the_teacher_and_plain_rounds_do_not():
    pixels, labels = torch.randn(12, 3, 32, 32), torch.arange(6).repeat(2)
    unlabelled = torch.randn(20, 3, 32, 32)
    for feedback in (False, True):
        config = PseudoLabelConfig(student_steps=2, per_class=1, unlabelled_batch=4, threshold=0.0, feedback=feedback)
        teacher, student = make_model(0), make_model(1)
        before = [p.detach().clone() for p in teacher.parameters()]
        report = train_student(student, teacher, pixels, labels, unlabelled, config)
        changed = any(not torch.equal(a, b) for a, b in zip(before, teacher.parameters()))
        assert changed == feedback
        assert report.mask_rate == 1.0 and len(report.losses) == 2


def synthetic_split(count, seed):
    from cer_hf.data.synthetic import synthetic_sample
    from cer_hf.extensions.multitask.data import pixels_from_images
    from cer_hf.taxonomy import EMOTION_BASICS

    rows = [synthetic_sample(i, seed=seed, image_size=32) for i in range(count)]
    return pixels_from_images([r["image"] for r in rows], 32), torch.tensor([EMOTION_BASICS.index(r["label"]) for r in rows])


@pytest.mark.slow  # ~2 min of training: measured 115 s (--durations, 2 shared cores)
def test_pseudo_labels_beat_labelled_only_on_synthetic_faces():
    # ~2 min on a shared CPU: the smallest setting where the gain was clear (smaller ones were within noise).
    torch.set_num_threads(1)
    labelled = synthetic_split(6 * 30, seed=0)
    unlabelled, _ = synthetic_split(3000, seed=1)
    test = synthetic_split(600, seed=2)
    config = PseudoLabelConfig(
        rounds=1, teacher_steps=800, student_steps=400, per_class=8, unlabelled_batch=64, learning_rate=3e-3,
        threshold=0.85, student_init="teacher", seed=0,
    )
    baseline = make_model(0)  # same number of steps as teacher + student together
    train_supervised(baseline, *labelled, config, steps=config.teacher_steps + config.student_steps)
    labelled_only = macro_f1(predict_classes(baseline, test[0]), test[1], 6)
    _, reports = pseudo_label_rounds(make_model, *labelled, unlabelled, config, evaluation=test)
    # Measured (seed 0, torch 2.13 CPU): labelled only 0.578, teacher 0.606, pseudo-labelled student 0.641.
    assert reports[-1].score > labelled_only + 0.03, (labelled_only, [r.score for r in reports])


def test_recipe_runs_end_to_end(tmp_path):
    import importlib.util
    import json
    import math
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    out = tmp_path / "pl"
    env = {**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "1", "--cpu",
         str(root / "recipes/pseudo_label.py"), "--config", str(root / "recipes/configs/pseudo_label_tiny.yaml"),
         "--labelled_per_class", "2", "--num_unlabelled", "24", "--num_eval", "12", "--rounds", "1",
         "--teacher_steps", "2", "--student_steps", "2", "--per_class", "1", "--unlabelled_batch", "8",
         "--feedback", "true", "--flexmatch", "true", "--output_dir", str(out)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "labelled only: macro F1" in result.stdout and "round 1:" in result.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(metrics["rounds"]) == 2
    # The feedback term ran at every student step (round 1), and only there; each value is finite and non-zero.
    assert metrics["rounds"][0]["feedbacks"] == [] and len(metrics["rounds"][1]["feedbacks"]) == 2
    assert all(math.isfinite(f) and f != 0 for f in metrics["rounds"][1]["feedbacks"])
    # The reported F1 is the saved student's macro F1 on the recipe's evaluation faces, recomputed here.
    spec = importlib.util.spec_from_file_location("pseudo_label_recipe", root / "recipes" / "pseudo_label.py")
    recipe = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = recipe
    spec.loader.exec_module(recipe)
    classes = recipe.class_names("basic", "abaw7")
    eval_pixels, eval_labels = recipe.labelled_tensors(
        recipe.rows_from("synthetic", 0 + 2, "basic", "abaw7", 12, 32), classes, None, 32)
    saved = ViTForCompoundExpression.from_pretrained(out)
    expected = macro_f1(predict_classes(saved, eval_pixels, "basic"), eval_labels, len(classes))
    assert metrics["pseudo_labelled_macro_f1"] == pytest.approx(expected, abs=1e-9)
    assert ViTForCompoundExpression.from_pretrained(out).config.basic_labels == list(
        ViTForCompoundExpression(compound_config("abaw7", **MICRO)).config.basic_labels
    )


# ----------------------------------------------------------------------------- the feedback term, by hand


class BiasOnly(torch.nn.Module):
    """A 2-class "model" whose logits are one parameter vector, whatever the image: gradients by hand."""

    def __init__(self, logits):
        super().__init__()
        self.bias = torch.nn.Parameter(torch.tensor(logits, dtype=torch.float32))
        self.config = type("Config", (), {"basic_labels": ["A", "B"]})()

    def forward(self, pixel_values):
        logits = self.bias.expand(pixel_values.shape[0], -1)
        return type("Out", (), {"logits": logits, "probabilities": torch.sigmoid(logits)})()


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def _hand_feedback(student: list[float], pseudo: int, lr: float, weight: float) -> float:
    """Eq. 6 for BiasOnly with one labelled face per class (targets [1,0] and [0,1]) and every pseudo-label kept.

    L_l = mean over 2 faces x 2 classes of BCE  ->  dL_l/ds_c = (sigmoid(s_c) - 0.5) / 2
    L_u = mean over the classes of BCE(s, e_pseudo)  ->  dL_u/ds_c = (sigmoid(s_c) - e_c) / 2
    AdamW's first step moves each s_c by -lr * sign(dL/ds_c)  (m/sqrt(v) = g/|g|; no decay on a 1-d parameter)
    f = lr * (grad L_l at s')^T (weight * grad L_u at s)
    """
    onehot = [1.0 if c == pseudo else 0.0 for c in range(2)]
    grad_u = [(_sigmoid(s) - e) / 2 for s, e in zip(student, onehot)]
    grad = [(_sigmoid(s) - 0.5) / 2 + weight * g for s, g in zip(student, grad_u)]
    new = [s - lr * g / (abs(g) + 1e-8) for s, g in zip(student, grad)]
    grad_new = [(_sigmoid(s) - 0.5) / 2 for s in new]
    return lr * sum(a * weight * b for a, b in zip(grad_new, grad_u))


@pytest.mark.parametrize("student_logits, sign", [
    ([-1.0, 1.0], +1),  # the pseudo-label (class A) pulls the student where the balanced labels do: reward
    ([0.5, -0.5], -1),  # the pseudo-label pushes class A further up, against the balanced labels: punish
])
def test_feedback_coefficient_sign_and_value_by_hand(student_logits, sign):
    lr, weight = 0.1, 1.0
    config = PseudoLabelConfig(student_steps=1, per_class=1, unlabelled_batch=4, threshold=0.0, feedback=True,
                               consistency_weight=0.0, unlabelled_weight=weight, learning_rate=lr)
    teacher = BiasOnly([2.0, 0.0])  # pseudo-label: class A for every face; class B's logit sits at 0
    student = BiasOnly(student_logits)
    pixels, labels = torch.rand(2, 3, 32, 32), torch.tensor([0, 1])
    report = train_student(student, teacher, pixels, labels, torch.rand(6, 3, 32, 32), config)

    expected = _hand_feedback(student_logits, pseudo=0, lr=lr, weight=weight)
    assert math.copysign(1, expected) == sign and abs(expected) > 1e-3
    assert report.feedbacks == [pytest.approx(expected, rel=1e-4)]
    # The teacher's class-B logit gets no gradient from its supervised loss (sigmoid(0) = 0.5 = the mean
    # balanced target), so it moves only through the feedback loss f * BCE(t, pseudo-label A):
    # d/dt_B = f * (sigmoid(0) - 0) / 2 = f / 4, and AdamW's first step moves it by -lr * g / (|g| + eps).
    grad_b = expected / 4
    assert teacher.bias[1].item() == pytest.approx(-lr * grad_b / (abs(grad_b) + 1e-8), rel=1e-5)
    assert math.copysign(1, teacher.bias[1].item()) == -sign
    assert student.bias.tolist() != student_logits


def test_augmentations_use_the_checkpoint_statistics_not_the_face_defaults():
    """A model whose processor normalises with ImageNet statistics must be augmented in that space: a flip-only
    weak view of ImageNet-normalised pixels is the exact mirror image (with face statistics it would not be)."""
    import torch

    from cer_hf.extensions.pseudo_label import PseudoLabelConfig, _stats, weak_augment
    from cer_hf.image_io import IMAGENET_MEAN, IMAGENET_STD
    from cer_hf.modeling.convert import checkpoint_normalization

    config = PseudoLabelConfig(image_mean=list(IMAGENET_MEAN), image_std=list(IMAGENET_STD))
    images = torch.rand(4, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    pixels = (images - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    out = weak_augment(pixels, torch.Generator().manual_seed(1), flip_prob=1.0, jitter=0.0, **_stats(config))
    assert torch.allclose(out, pixels.flip(-1), atol=1e-5)
    assert checkpoint_normalization(None, 32) == (tuple(PseudoLabelConfig().image_mean), tuple(PseudoLabelConfig().image_std))
