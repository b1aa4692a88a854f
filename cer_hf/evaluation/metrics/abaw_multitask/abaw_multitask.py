"""ABAW multi-task score P = mean CCC(valence, arousal) + macro F1 over expressions + mean F1 over AUs.

A self-contained `evaluate` module (numpy only), loaded by path so no Hub access is needed:

    metric = evaluate.load("cer_hf/evaluation/metrics/abaw_multitask/abaw_multitask.py")
    metric.compute(au_predictions=..., au_references=..., expr_predictions=..., expr_references=...,
                   valence_predictions=..., valence_references=..., arousal_predictions=..., arousal_references=...)

Missing annotations are left out per task (Aff-Wild2 convention): AU reference -1, expression
reference -1, valence/arousal reference -5. Every task's inputs must be passed (the Arrow table
has one row per frame); a frame without a label for a task just carries the missing marker there.
"""

import datasets
import evaluate
import numpy as np

_DESCRIPTION = """
P of the ABAW multi-task learning challenge (Kollias et al.; Liu et al. ABAW7 eq. 8):
P = (CCC_valence + CCC_arousal) / 2 + F1_expr (macro over the expression classes) + F1_AU
(mean over AUs of the binary F1 of the "active" class). CCC is Lin's concordance correlation
coefficient with population moments. Missing references (-1 for AU and expression, -5 for
valence/arousal) are excluded per task.
"""

_KWARGS_DESCRIPTION = """
Args:
    au_predictions: per frame, a list of 0/1 predictions, one per AU.
    au_references: per frame, a list of 0/1/-1 (missing) references, one per AU.
    expr_predictions: per frame, the predicted expression class index.
    expr_references: per frame, the reference class index or -1 (missing).
    valence_predictions, arousal_predictions: per frame, floats in [-1, 1].
    valence_references, arousal_references: per frame, floats in [-1, 1] or -5 (missing).
    num_expression_classes: classes averaged in the expression F1 (default 8: Neutral, six basics, Other).
Returns:
    P, ccc_valence, ccc_arousal, ccc_mean, f1_expr, f1_au, f1_per_au (list), f1_per_expression (list).
    A task with no annotated frame gets NaN (and so does P).
Example:
    >>> metric = evaluate.load("cer_hf/evaluation/metrics/abaw_multitask/abaw_multitask.py")
    >>> metric.compute(au_predictions=[[1, 0]], au_references=[[1, 0]], expr_predictions=[0], expr_references=[0],
    ...                valence_predictions=[0.1], valence_references=[0.1], arousal_predictions=[0.0],
    ...                arousal_references=[-5], num_expression_classes=1)["f1_expr"]
    1.0
"""

MISSING_CLASS = -1
MISSING_VA = -5.0


def binary_f1(predictions: np.ndarray, references: np.ndarray) -> float:
    """F1 of the positive class; 0 when there are no true positives."""
    tp = float(np.sum((predictions == 1) & (references == 1)))
    fp = float(np.sum((predictions == 1) & (references == 0)))
    fn = float(np.sum((predictions == 0) & (references == 1)))
    return 0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn)


def ccc(predictions: np.ndarray, references: np.ndarray) -> float:
    """Lin's concordance correlation coefficient (population moments); NaN for fewer than 2 frames."""
    if len(references) < 2:
        return float("nan")
    mean_p, mean_r = predictions.mean(), references.mean()
    covariance = np.mean((predictions - mean_p) * (references - mean_r))
    denominator = predictions.var() + references.var() + (mean_p - mean_r) ** 2
    return float(2 * covariance / denominator) if denominator > 0 else 0.0


def abaw_multitask_scores(
    au_predictions,
    au_references,
    expr_predictions,
    expr_references,
    valence_predictions,
    valence_references,
    arousal_predictions,
    arousal_references,
    num_expression_classes: int = 8,
) -> dict:
    """The metric on plain arrays (what `_compute` calls)."""
    au_p, au_r = np.asarray(au_predictions, dtype=np.int64), np.asarray(au_references, dtype=np.int64)
    per_au = []
    for j in range(au_r.shape[1] if au_r.ndim == 2 else 0):
        valid = au_r[:, j] != MISSING_CLASS
        per_au.append(binary_f1(au_p[valid, j], au_r[valid, j]) if valid.any() else float("nan"))
    expr_p, expr_r = np.asarray(expr_predictions, dtype=np.int64), np.asarray(expr_references, dtype=np.int64)
    valid = expr_r != MISSING_CLASS
    per_expr = [
        binary_f1((expr_p[valid] == c).astype(int), (expr_r[valid] == c).astype(int)) if valid.any() else float("nan")
        for c in range(num_expression_classes)
    ]
    out = {}
    for name, preds, refs in (
        ("valence", valence_predictions, valence_references),
        ("arousal", arousal_predictions, arousal_references),
    ):
        preds, refs = np.asarray(preds, dtype=np.float64), np.asarray(refs, dtype=np.float64)
        keep = refs > MISSING_VA + 1
        out[f"ccc_{name}"] = ccc(preds[keep], refs[keep])
    out["ccc_mean"] = (out["ccc_valence"] + out["ccc_arousal"]) / 2
    out["f1_expr"] = float(np.mean(per_expr)) if per_expr else float("nan")
    out["f1_au"] = float(np.mean(per_au)) if per_au else float("nan")
    out["P"] = out["ccc_mean"] + out["f1_expr"] + out["f1_au"]
    out["f1_per_au"] = per_au
    out["f1_per_expression"] = per_expr
    return out


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class AbawMultitask(evaluate.Metric):
    """The ABAW multi-task score P (mean CCC + expression macro F1 + AU mean F1), missing labels excluded."""

    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="Kollias et al., ABAW multi-task learning challenge; Liu et al., ABAW7 (eq. 8)",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "au_predictions": datasets.Sequence(datasets.Value("int32")),
                    "au_references": datasets.Sequence(datasets.Value("int32")),
                    "expr_predictions": datasets.Value("int32"),
                    "expr_references": datasets.Value("int32"),
                    "valence_predictions": datasets.Value("float32"),
                    "valence_references": datasets.Value("float32"),
                    "arousal_predictions": datasets.Value("float32"),
                    "arousal_references": datasets.Value("float32"),
                }
            ),
        )

    def _compute(
        self,
        au_predictions,
        au_references,
        expr_predictions,
        expr_references,
        valence_predictions,
        valence_references,
        arousal_predictions,
        arousal_references,
        num_expression_classes=8,
    ):
        return abaw_multitask_scores(
            au_predictions,
            au_references,
            expr_predictions,
            expr_references,
            valence_predictions,
            valence_references,
            arousal_predictions,
            arousal_references,
            num_expression_classes=num_expression_classes,
        )
