"""Compound-expression F1: the ABAW7 compound expression (CE) track metric, as an `evaluate` module.

Self-contained (numpy, datasets, evaluate only) so it loads by path without the Hub:

    import evaluate
    metric = evaluate.load("cer_hf/evaluation/metrics/compound_f1")   # or cer_hf.evaluation.images.load_compound_metric()
    metric.compute(predictions=probabilities, references=multi_hot)

Inputs are per-sample vectors over the basic labels: `predictions` the basic probabilities (or
scores), `references` the multi-hot targets. Rows whose reference has two positives are compound
samples: the predicted compound is the argmax over compounds of the SUM of their two
constituents' predicted probabilities (the ABAW7 winning recipe), and the metric is the macro F1
over all compound classes (classes with neither true nor predicted samples count as F1 0, as
scikit-learn's `f1_score(..., labels=all, average="macro")` does). Rows with one positive are
basic samples, scored by argmax over the basics (basic macro F1 over all basic labels).
Everything is computed over the whole set at once (never averaged per batch).
"""

import datasets
import evaluate
import numpy as np

_DESCRIPTION = __doc__
_CITATION = """\
@inproceedings{liu2024compound,
  title={7ABAW-Compound Expression Recognition via Curriculum Learning},
  author={Liu, Chen and Zhang, Feng and Qiu, Xin and others},
  booktitle={ECCV Workshops},
  year={2024}
}
"""
_KWARGS_DESCRIPTION = """
Args:
    predictions: `(n, num_basics)` basic-expression probabilities (scores).
    references: `(n, num_basics)` multi-hot targets: two ones for a compound, one for a basic.
    basic_labels: names of the basic labels, in column order (default: the six basics).
    compound_names: names of the compound classes (default: the seven ABAW7 compounds).
    compound_constituents: for each compound, its two basic names (default: ABAW7's).
Returns:
    compound_macro_f1, compound_accuracy, compound_f1 (dict name -> F1), compound_confusion_matrix
    (rows true, columns predicted, in compound_names order), num_compound; basic_macro_f1,
    basic_accuracy, basic_f1 (dict), num_basic. Keys of a kind without rows are omitted.
Example:
    >>> metric = evaluate.load("cer_hf/evaluation/metrics/compound_f1")
    >>> metric.compute(predictions=[[.1, .1, .1, .9, .1, .8]], references=[[0, 0, 0, 1, 0, 1]])["compound_macro_f1"]
"""

BASIC_LABELS = ["Anger", "Disgust", "Fear", "Happiness", "Sadness", "Surprise"]
ABAW7_COMPOUNDS = [
    ("Fearfully Surprised", ("Fear", "Surprise")),
    ("Happily Surprised", ("Happiness", "Surprise")),
    ("Sadly Surprised", ("Sadness", "Surprise")),
    ("Disgustedly Surprised", ("Disgust", "Surprise")),
    ("Angrily Surprised", ("Anger", "Surprise")),
    ("Sadly Fearful", ("Sadness", "Fear")),
    ("Sadly Angry", ("Sadness", "Anger")),
]


def f1_per_class(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-class F1 (0 where undefined) and the confusion matrix (rows true, columns predicted)."""
    confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(confusion, (y_true, y_pred), 1)
    true_positive = np.diag(confusion).astype(np.float64)
    denominator = confusion.sum(axis=0) + confusion.sum(axis=1)  # predicted + actual = 2TP + FP + FN
    f1 = np.divide(2 * true_positive, denominator, out=np.zeros(num_classes), where=denominator > 0)
    return f1, confusion


def compound_matrix(basic_labels, compound_constituents) -> np.ndarray:
    """`(num_compounds, num_basics)` 0/1 matrix marking each compound's constituents."""
    matrix = np.zeros((len(compound_constituents), len(basic_labels)))
    for row, parts in enumerate(compound_constituents):
        for part in parts:
            if part not in basic_labels:
                raise ValueError(f"compound constituent {part!r} is not among basic_labels {list(basic_labels)}")
            matrix[row, list(basic_labels).index(part)] = 1.0
    return matrix


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class CompoundF1(evaluate.Metric):
    """Macro F1 over compound classes (ABAW7 CE metric), per-class F1, basic macro F1, confusion matrix."""

    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": datasets.Sequence(datasets.Value("float32")),
                    "references": datasets.Sequence(datasets.Value("float32")),
                }
            ),
        )

    def _compute(self, predictions, references, basic_labels=None, compound_names=None, compound_constituents=None):
        basic_labels = list(basic_labels or BASIC_LABELS)
        if compound_names is None:
            compound_names = [name for name, _ in ABAW7_COMPOUNDS]
            compound_constituents = [parts for _, parts in ABAW7_COMPOUNDS]
        if compound_constituents is None or len(compound_constituents) != len(compound_names):
            raise ValueError("compound_constituents must give two basics for each of compound_names")
        probs = np.asarray(predictions, dtype=np.float64)
        targets = np.asarray(references, dtype=np.float64)
        if probs.ndim != 2 or probs.shape != targets.shape or probs.shape[1] != len(basic_labels):
            raise ValueError(
                f"predictions {probs.shape} and references {targets.shape} must both be (n, {len(basic_labels)}) "
                f"over basic_labels {basic_labels}"
            )
        matrix = compound_matrix(basic_labels, compound_constituents)
        positives = (targets > 0).sum(axis=1)
        results = {}

        compound_rows = positives == 2
        if compound_rows.any():
            true_sets = (targets[compound_rows] > 0).astype(np.float64)
            # A reference's compound class is the row of the matrix equal to its positives.
            match = (true_sets @ matrix.T) == 2
            unknown = ~match.any(axis=1)
            if unknown.any():
                bad = np.flatnonzero(compound_rows)[np.flatnonzero(unknown)[0]]
                parts = [basic_labels[i] for i in np.flatnonzero(targets[bad] > 0)]
                raise ValueError(f"reference row {bad} ({' + '.join(parts)}) is not one of the compounds {compound_names}")
            y_true = match.argmax(axis=1)
            y_pred = (probs[compound_rows] @ matrix.T).argmax(axis=1)
            f1, confusion = f1_per_class(y_true, y_pred, len(compound_names))
            results.update(
                compound_macro_f1=float(f1.mean()),
                compound_accuracy=float((y_true == y_pred).mean()),
                compound_f1={name: float(v) for name, v in zip(compound_names, f1)},
                compound_confusion_matrix=confusion.tolist(),
                num_compound=int(compound_rows.sum()),
            )

        basic_rows = positives == 1
        if basic_rows.any():
            y_true = targets[basic_rows].argmax(axis=1)
            y_pred = probs[basic_rows].argmax(axis=1)
            f1, _ = f1_per_class(y_true, y_pred, len(basic_labels))
            results.update(
                basic_macro_f1=float(f1.mean()),
                basic_accuracy=float((y_true == y_pred).mean()),
                basic_f1={name: float(v) for name, v in zip(basic_labels, f1)},
                num_basic=int(basic_rows.sum()),
            )
        bad_rows = ~(compound_rows | basic_rows)
        if bad_rows.any():
            raise ValueError(f"reference row {int(np.flatnonzero(bad_rows)[0])} has no or more than two positive labels")
        return results
