"""Losses against hand computations from their formulas (python floats, small cases), not the same torch call."""

from __future__ import annotations

import math

import pytest
import torch

from cer_hf.curriculum.trainer import bmc_loss
from cer_hf.modeling.modeling_cer import ViTForCompoundExpression


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def _bce(z: float, y: float) -> float:
    """-(y log σ(z) + (1 - y) log(1 - σ(z)))."""
    return -(y * math.log(_sigmoid(z)) + (1 - y) * math.log(1 - _sigmoid(z)))


def _fixed_logit_model(config, logits: list[float]) -> ViTForCompoundExpression:
    """A model whose logits are `logits` for every image: the last head layer's weight 0, its bias the logits."""
    torch.manual_seed(0)
    model = ViTForCompoundExpression(config).eval()
    last = model.head[-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.copy_(torch.tensor(logits))
    return model


LOGITS = [2.0, -1.0, 0.5, 0.0, -3.0, 1.5]


def test_multi_label_bce_of_the_model_by_hand(tiny_cer_config):
    """loss = mean over images and the 6 basics of BCE(z_c, y_c); soft (mixed) targets included."""
    model = _fixed_logit_model(tiny_cer_config, LOGITS)
    targets = [[1, 0, 0, 0, 0, 0], [1, 0, 0, 0, 0, 1], [0.9, 0, 0, 0.1, 0, 0]]  # basic, compound, Mixup 0.1
    loss = model(torch.randn(3, 3, 32, 32), labels=torch.tensor(targets)).loss
    expected = sum(_bce(z, y) for row in targets for z, y in zip(LOGITS, row)) / (3 * 6)
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    # Spot check of one term, fully by hand: BCE(2, 1) = log(1 + e^-2) = 0.126928
    assert _bce(2.0, 1.0) == pytest.approx(0.126928, abs=1e-6)


def test_integer_labels_give_the_one_hot_bce_by_hand(tiny_cer_config):
    model = _fixed_logit_model(tiny_cer_config, LOGITS)
    loss = model(torch.randn(2, 3, 32, 32), labels=torch.tensor([4, 1])).loss
    rows = [[1.0 if c == k else 0.0 for c in range(6)] for k in (4, 1)]
    expected = sum(_bce(z, y) for row in rows for z, y in zip(LOGITS, row)) / 12
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def _hand_bmc(predictions: list[list[float]], targets: list[list[float]], noise_var: float) -> float:
    """Balanced MSE (batch Monte-Carlo): logits_ij = -||p_i - y_j||² / (2 σ²); loss = 2σ² · mean_i CE(row i, i)."""
    total = 0.0
    for i, p in enumerate(predictions):
        logits = [-sum((a - b) ** 2 for a, b in zip(p, y)) / (2 * noise_var) for y in targets]
        log_normaliser = math.log(sum(math.exp(v) for v in logits))
        total += log_normaliser - logits[i]
    return 2 * noise_var * total / len(predictions)


@pytest.mark.parametrize("noise_var", [1.0, 0.25])
def test_bmc_loss_by_hand(noise_var):
    predictions = [[0.9, 0.1, 0.2], [0.2, 0.8, 0.1], [0.5, 0.5, 0.6]]
    targets = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [1.0, 0.0, 1.0]]
    loss = bmc_loss(torch.tensor(predictions), torch.tensor(targets), noise_var)
    assert loss.item() == pytest.approx(_hand_bmc(predictions, targets, noise_var), rel=1e-6)


def test_bmc_loss_two_samples_fully_by_hand():
    """p = (1, 0), (0, 1); y = (1, 0), (0, 0); σ² = 1.
    Row 1: distances² to y1, y2 = 0, 1 -> logits 0, -0.5 -> CE = log(1 + e^-0.5) = 0.474077
    Row 2: distances² = 2, 1 -> logits -1, -0.5 -> CE = log(e^-1 + e^-0.5) + 0.5 = 0.474077
    loss = 2 · mean = 0.948154
    """
    loss = bmc_loss(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([[1.0, 0.0], [0.0, 0.0]]), 1.0)
    assert loss.item() == pytest.approx(2 * math.log(1 + math.exp(-0.5)), rel=1e-6)
    assert loss.item() == pytest.approx(0.948154, abs=1e-6)


def test_curriculum_trainer_bmc_uses_the_probabilities(tiny_cer_config, tmp_path):
    """`loss="bmc"` applies BMC to sigmoid(logits) (the model's probabilities), not to the logits."""
    from transformers import TrainingArguments

    from cer_hf.curriculum.trainer import CurriculumTrainer

    model = _fixed_logit_model(tiny_cer_config, LOGITS)
    args = TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to="none")
    trainer = CurriculumTrainer(model=model, args=args, loss="bmc", bmc_noise_var=0.5)
    targets = [[1, 0, 0, 0, 0, 0], [0, 0, 1, 0, 0, 1]]
    loss = trainer.compute_loss(model, {"pixel_values": torch.randn(2, 3, 32, 32), "labels": torch.tensor(
        targets, dtype=torch.float32)})
    probabilities = [[_sigmoid(z) for z in LOGITS]] * 2
    assert loss.item() == pytest.approx(_hand_bmc(probabilities, targets, 0.5), rel=1e-6)
    bce = CurriculumTrainer(model=model, args=args, loss="bce")
    loss = bce.compute_loss(model, {"pixel_values": torch.randn(2, 3, 32, 32), "labels": torch.tensor(
        targets, dtype=torch.float32)})
    assert loss.item() == pytest.approx(sum(_bce(z, y) for row in targets for z, y in zip(LOGITS, row)) / 12, rel=1e-6)


def test_distillation_mixes_label_and_teacher_bce_by_hand(tiny_cer_config, tmp_path):
    """With a teacher: training loss = (1 - w) BCE(z, labels) + w BCE(z, sigmoid(teacher logits)); in evaluation
    (model.eval()) the plain label BCE, and the teacher gets no gradient."""
    from transformers import TrainingArguments

    from cer_hf.curriculum.trainer import CurriculumTrainer

    student = _fixed_logit_model(tiny_cer_config, LOGITS).train()
    teacher_logits = [-1.0, 2.0, 0.0, 1.0, 0.5, -2.0]
    teacher = _fixed_logit_model(tiny_cer_config, teacher_logits).requires_grad_(False)
    args = TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to="none")
    trainer = CurriculumTrainer(model=student, args=args, teacher=teacher, distill_weight=0.25)
    targets = [[1, 0, 0, 0, 0, 0], [0, 0, 1, 0, 0, 1]]
    inputs = {"pixel_values": torch.randn(2, 3, 32, 32), "labels": torch.tensor(targets, dtype=torch.float32)}
    loss = trainer.compute_loss(student, dict(inputs))
    hard = sum(_bce(z, y) for row in targets for z, y in zip(LOGITS, row)) / 12
    soft = sum(_bce(z, _sigmoid(t)) for z, t in zip(LOGITS, teacher_logits)) / 6
    assert loss.item() == pytest.approx(0.75 * hard + 0.25 * soft, rel=1e-6)
    loss.backward()
    assert student.head[-1].bias.grad is not None and teacher.head[-1].bias.grad is None
    student.eval()
    assert trainer.compute_loss(student, dict(inputs)).item() == pytest.approx(hard, rel=1e-6)
    with pytest.raises(ValueError, match="--teacher_model distils into the BCE loss"):
        CurriculumTrainer(model=student, args=args, teacher=teacher, loss="bmc")


# ----------------------------------------------------------------------------- multi-task (Liu et al., ABAW7 MTL)


AU_LOGITS = [[2.0, -1.0], [0.5, 0.3], [-1.0, 1.0]]
AU_LABELS = [[1, 0], [-1, 1], [0, -1]]  # -1: not annotated
AU_W = [3.0, 0.5]


def test_au_loss_eq2_weight_scales_the_whole_term_by_hand():
    """Eq. 2: -1/n Σ W_j [y log σ(z) + (1 - y) log(1 - σ(z))] over the n annotated entries.
    Annotated: (z=2, y=1, W=3), (z=-1, y=0, W=.5), (z=.3, y=1, W=.5), (z=-1, y=0, W=3).
    """
    from cer_hf.extensions.multitask.modeling import masked_au_loss

    entries = [(2.0, 1, 3.0), (-1.0, 0, 0.5), (0.3, 1, 0.5), (-1.0, 0, 3.0)]
    expected = sum(w * _bce(z, y) for z, y, w in entries) / 4
    loss = masked_au_loss(torch.tensor(AU_LOGITS), torch.tensor(AU_LABELS, dtype=torch.float32),
                          au_weights=torch.tensor(AU_W))
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    # The negative entries are weighted too: W=3 on (z=-1, y=0) contributes 3·log(1 + e^-1) = 0.939785
    assert 3.0 * _bce(-1.0, 0) == pytest.approx(3 * math.log(1 + math.exp(-1.0)), rel=1e-12)


def test_au_loss_pos_weight_form_weights_only_the_positive_term_by_hand():
    from cer_hf.extensions.multitask.modeling import masked_au_loss

    def bce_pos(z, y, p):
        return -(p * y * math.log(_sigmoid(z)) + (1 - y) * math.log(1 - _sigmoid(z)))

    entries = [(2.0, 1, 3.0), (-1.0, 0, 0.5), (0.3, 1, 0.5), (-1.0, 0, 3.0)]
    expected = sum(bce_pos(z, y, p) for z, y, p in entries) / 4
    loss = masked_au_loss(torch.tensor(AU_LOGITS), torch.tensor(AU_LABELS, dtype=torch.float32),
                          pos_weight=torch.tensor(AU_W))
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    eq2 = sum(w * _bce(z, y) for z, y, w in entries) / 4
    assert abs(expected - eq2) > 0.1  # the two forms really differ here (0.321 vs 0.439)


EXPR_LOGITS = [[1.0, 0.0, -1.0], [0.2, 0.4, 0.6], [0.0, 0.0, 3.0], [2.0, 1.0, 0.0]]
EXPR_LABELS = [0, 2, -1, 1]
EXPR_W = [1.0, 4.0, 0.5]


def _ce(z: list[float], y: int) -> float:
    return math.log(sum(math.exp(v) for v in z)) - z[y]


def test_expression_loss_eq3_and_weight_sum_forms_by_hand():
    """Frames 0, 1, 3 are annotated (labels 0, 2, 1; weights 1, 0.5, 4).
    paper (eq. 3 per frame, mean over the 3 frames): (1·CE_0 + 0.5·CE_1 + 4·CE_3) / 3
    weight_sum (torch's weighted mean):               (1·CE_0 + 0.5·CE_1 + 4·CE_3) / (1 + 0.5 + 4)
    """
    from cer_hf.extensions.multitask.modeling import masked_expression_loss

    weighted = sum(EXPR_W[y] * _ce(z, y) for z, y in zip(EXPR_LOGITS, EXPR_LABELS) if y >= 0)
    logits, labels, weights = torch.tensor(EXPR_LOGITS), torch.tensor(EXPR_LABELS), torch.tensor(EXPR_W)
    paper = masked_expression_loss(logits, labels, weights)
    assert paper.item() == pytest.approx(weighted / 3, rel=1e-6)
    weight_sum = masked_expression_loss(logits, labels, weights, form="weight_sum")
    assert weight_sum.item() == pytest.approx(weighted / 5.5, rel=1e-6)
    unweighted = sum(_ce(z, y) for z, y in zip(EXPR_LOGITS, EXPR_LABELS) if y >= 0) / 3
    for form in ("paper", "weight_sum"):  # without weights the forms agree: the plain CE mean
        assert masked_expression_loss(logits, labels, None, form=form).item() == pytest.approx(unweighted, rel=1e-6)
    with pytest.raises(ValueError, match="form"):
        masked_expression_loss(logits, labels, weights, form="sum")


def test_model_task_losses_follow_the_config_forms_by_hand():
    """`ViTForMultiTaskExpression.task_losses` with rows_class_weights-style fields: eq. 2 and eq. 3 by default."""
    from cer_hf.extensions.multitask.modeling import ViTForMultiTaskExpression, ViTMultiTaskExpressionConfig

    au_w = [3.0, 0.5] + [1.0] * 10
    au_logits = torch.zeros(3, 12)
    au_logits[:, :2] = torch.tensor(AU_LOGITS)
    au_labels = torch.full((3, 12), -1.0)
    au_labels[:, :2] = torch.tensor(AU_LABELS, dtype=torch.float32)
    expr_w = [1.0, 4.0, 0.5] + [1.0] * 5
    expr_logits = torch.full((4, 8), -50.0)
    expr_logits[:, :3] = torch.tensor(EXPR_LOGITS)
    outputs = {"au": au_logits, "expr": expr_logits, "va": torch.zeros(4, 2)}
    entries = [(2.0, 1, 3.0), (-1.0, 0, 0.5), (0.3, 1, 0.5), (-1.0, 0, 3.0)]
    ce = [_ce(list(z) + [-50.0] * 5, y) for z, y in zip(EXPR_LOGITS, EXPR_LABELS) if y >= 0]
    weighted = sum(expr_w[y] * c for c, y in zip(ce, [y for y in EXPR_LABELS if y >= 0]))
    for expression_loss_form, divisor in (("paper", 3), ("weight_sum", 5.5)):
        config = ViTMultiTaskExpressionConfig(au_weights=au_w, expression_class_weights=expr_w,
                                              expression_loss_form=expression_loss_form)
        losses = ViTForMultiTaskExpression.task_losses(type("M", (), {"config": config})(), outputs, au_labels,
                                                       torch.tensor(EXPR_LABELS))
        assert losses["au"].item() == pytest.approx(sum(w * _bce(z, y) for z, y, w in entries) / 4, rel=1e-6)
        assert losses["expr"].item() == pytest.approx(weighted / divisor, rel=1e-6)
