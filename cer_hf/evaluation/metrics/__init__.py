"""The toolkit's metrics: the shipped `evaluate` modules (loaded by path, no Hub) and the glue around them.

`compound_f1/` (compound macro F1, the ABAW7 CE metric) and `abaw_multitask/` (the ABAW multi-task
score P) are self-contained `evaluate` modules: they also run where cer_hf is not installed, so
they keep their own copies of the label tables, pinned to `cer_hf.taxonomy` by tests/test_layout.py.
`macro_f1` is the same definition for integer class labels (frames of a video, pseudo-labels).
"""

from __future__ import annotations

from pathlib import Path

import evaluate
import numpy as np

COMPOUND_F1_PATH = Path(__file__).parent / "compound_f1"
ABAW_MULTITASK_PATH = Path(__file__).parent / "abaw_multitask" / "abaw_multitask.py"


def load_compound_metric():
    """The `compound_f1` evaluate module shipped with the package, loaded by path (no Hub needed)."""
    return evaluate.load(str(COMPOUND_F1_PATH))


def load_abaw_metric(**kwargs):
    """The shipped `evaluate` module computing the ABAW multi-task score P (loaded by path, no Hub)."""
    return evaluate.load(str(ABAW_MULTITASK_PATH), **kwargs)


def macro_f1(true_labels, predicted_labels, num_classes: int) -> float:
    """Macro F1 over all `num_classes` classes: the sum of per-class F1 divided by `num_classes`.

    The definition of the shipped `compound_f1` module (scikit-learn's `f1_score(average="macro",
    labels=range(num_classes))`): a class absent from both labels and predictions scores 0. Entries
    whose true label is negative (unlabelled) are skipped; a negative prediction counts as a miss.
    Accepts numpy arrays, torch tensors or lists.
    """
    true_labels = np.asarray(true_labels).reshape(-1)
    predicted_labels = np.asarray(predicted_labels).reshape(-1)
    keep = true_labels >= 0
    true_labels, predicted_labels = true_labels[keep], predicted_labels[keep]
    scores = []
    for c in range(num_classes):
        tp = np.sum((true_labels == c) & (predicted_labels == c))
        fp = np.sum((true_labels != c) & (predicted_labels == c))
        fn = np.sum((true_labels == c) & (predicted_labels != c))
        scores.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)
    return float(np.mean(scores))


def keep_logits(logits, labels):
    """`preprocess_logits_for_metrics`: keep only the basic logits (drop hidden states before gathering)."""
    return logits[0] if isinstance(logits, (tuple, list)) else logits


def compound_metrics_fn(config, metric=None):
    """A `compute_metrics` for the Trainer: compound macro F1 and friends over the whole gathered eval set.

    The Trainer gathers every rank's predictions before calling it (no per-batch averaging).
    Returns flat float metrics (per-class F1 as `f1_<Compound_Name>`).
    """
    metric = metric or load_compound_metric()

    def compute_metrics(eval_prediction) -> dict:
        logits = np.asarray(eval_prediction.predictions, dtype=np.float64)
        probabilities = 1.0 / (1.0 + np.exp(-logits))
        results = metric.compute(
            predictions=probabilities,
            references=np.asarray(eval_prediction.label_ids),
            basic_labels=list(config.basic_labels),
            compound_names=list(config.compound_names),
            compound_constituents=[list(p) for p in config.compound_constituents],
        )
        return flatten_metrics(results)

    return compute_metrics


def flatten_metrics(results: dict) -> dict:
    """Scalars from the metric's output: per-class dicts become `f1_<Name>` keys; the confusion matrix is dropped."""
    flat = {}
    for key, value in results.items():
        if key == "compound_confusion_matrix":
            continue
        if isinstance(value, dict):
            prefix = "f1_" if key == "compound_f1" else "basic_f1_"
            flat.update({prefix + name.replace(" ", "_"): v for name, v in value.items()})
        else:
            flat[key] = value
    return flat

