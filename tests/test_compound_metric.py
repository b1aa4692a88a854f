"""The compound_f1 evaluate module: decision rule, agreement with scikit-learn, whole-set computation."""

import numpy as np
import pytest
from sklearn.metrics import f1_score
from transformers import EvalPrediction

from cer_hf.evaluation.images import load_compound_metric
from cer_hf.curriculum.build import compound_metrics_fn
from cer_hf.taxonomy import EMOTION_BASICS, compound_set

COMPOUNDS = compound_set("abaw7")
MATRIX = np.array([[1.0 if b in c.constituents else 0.0 for b in EMOTION_BASICS] for c in COMPOUNDS])


@pytest.fixture(scope="module")
def metric():
    return load_compound_metric()


def _compound_references(classes):
    return MATRIX[classes]


def test_decision_rule_is_argmax_of_summed_constituent_probabilities(metric):
    # Happiness is the single most likely basic, but Sadness + Fear sums highest: "Sadly Fearful".
    probabilities = np.array([[0.0, 0.0, 0.8, 0.9, 0.8, 0.0]])
    sadly_fearful = [c.name for c in COMPOUNDS].index("Sadly Fearful")
    result = metric.compute(predictions=probabilities, references=_compound_references([sadly_fearful]))
    assert result["compound_accuracy"] == 1.0
    assert result["compound_f1"]["Sadly Fearful"] == 1.0
    assert result["compound_confusion_matrix"][sadly_fearful][sadly_fearful] == 1


def test_macro_f1_equals_scikit_learn_on_random_data(metric):
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 7, size=500)
    y_true[y_true == 3] = 2  # one class never occurs: it must still count (F1 0) in the macro mean
    probabilities = rng.random((500, 6))
    y_pred = (probabilities @ MATRIX.T).argmax(1)
    result = metric.compute(predictions=probabilities, references=_compound_references(y_true))
    expected = f1_score(y_true, y_pred, labels=list(range(7)), average="macro", zero_division=0)
    assert result["compound_macro_f1"] == pytest.approx(expected, abs=1e-9)
    per_class = f1_score(y_true, y_pred, labels=list(range(7)), average=None, zero_division=0)
    assert list(result["compound_f1"].values()) == pytest.approx(list(per_class))
    assert np.array(result["compound_confusion_matrix"]).sum() == 500


def test_basic_macro_f1_and_mixed_sets(metric):
    rng = np.random.default_rng(1)
    basic_true = rng.integers(0, 6, size=200)
    basic_refs = np.eye(6)[basic_true]
    compound_true = rng.integers(0, 7, size=100)
    probabilities = rng.random((300, 6))
    result = metric.compute(predictions=probabilities,
                            references=np.concatenate([basic_refs, _compound_references(compound_true)]))
    assert result["num_basic"] == 200 and result["num_compound"] == 100
    expected = f1_score(basic_true, probabilities[:200].argmax(1), labels=list(range(6)), average="macro",
                        zero_division=0)
    assert result["basic_macro_f1"] == pytest.approx(expected)


def test_batches_are_not_averaged(metric):
    rng = np.random.default_rng(2)
    y_true = rng.integers(0, 7, size=90)
    probabilities = rng.random((90, 6))
    for start in range(0, 90, 30):
        metric.add_batch(predictions=probabilities[start:start + 30],
                         references=_compound_references(y_true[start:start + 30]))
    batched = metric.compute()["compound_macro_f1"]
    whole = f1_score(y_true, (probabilities @ MATRIX.T).argmax(1), labels=list(range(7)), average="macro",
                     zero_division=0)
    assert batched == pytest.approx(whole)


def test_unknown_compound_reference_is_an_error(metric):
    happily_disgusted = np.zeros((1, 6))
    happily_disgusted[0, [EMOTION_BASICS.index("Happiness"), EMOTION_BASICS.index("Disgust")]] = 1
    with pytest.raises(ValueError, match="not one of the compounds"):
        metric.compute(predictions=np.full((1, 6), 0.5), references=happily_disgusted)


def test_trainer_compute_metrics_flattens_per_class_scores(tiny_cer_config):
    rng = np.random.default_rng(3)
    y_true = rng.integers(0, 7, size=50)
    logits = rng.normal(size=(50, 6))
    metrics = compound_metrics_fn(tiny_cer_config)(EvalPrediction(predictions=logits,
                                                                   label_ids=_compound_references(y_true)))
    y_pred = ((1 / (1 + np.exp(-logits))) @ MATRIX.T).argmax(1)
    assert metrics["compound_macro_f1"] == pytest.approx(
        f1_score(y_true, y_pred, labels=list(range(7)), average="macro", zero_division=0))
    assert "f1_Sadly_Angry" in metrics and "compound_confusion_matrix" not in metrics
