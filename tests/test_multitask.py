"""Multi-task model: masked losses, CCC, the ABAW metric P, fusion, conversion and the recipe."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from cer_hf.evaluation.metrics import load_abaw_metric
from cer_hf.extensions.multitask.modeling import (
    MISSING_VA,
    ViTForMultiTaskExpression,
    ViTMultiTaskExpressionConfig,
    class_weights,
    concordance_correlation,
    masked_au_loss,
    masked_ccc_loss,
    masked_expression_loss,
)

TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64, image_size=32, patch_size=8)
ROOT = Path(__file__).resolve().parents[1]


def tiny_model(seed=0, **fields):
    torch.manual_seed(seed)
    return ViTForMultiTaskExpression(ViTMultiTaskExpressionConfig(**TINY, **fields))


def random_labels(batch, generator):
    au = torch.randint(0, 2, (batch, 12), generator=generator).float()
    expr = torch.randint(0, 8, (batch,), generator=generator)
    va = torch.rand(batch, 2, generator=generator) * 2 - 1
    return au, expr, va


def head_grads(model, task):
    return [p.grad for p in model.heads[task].parameters()]


def test_shapes_save_load_and_auto_class(tmp_path):
    from transformers import AutoModel

    model = tiny_model().eval()
    pixels = torch.randn(3, 3, 32, 32)
    out = model(pixels)
    assert out.au_logits.shape == (3, 12) and out.expr_logits.shape == (3, 8) and out.va.shape == (3, 2)
    assert out.loss is None and out.va.abs().max() <= 1
    sequence_out = model(torch.randn(2, 4, 3, 32, 32))
    assert sequence_out.expr_logits.shape == (2, 4, 8) and sequence_out.features.shape == (2, 4, 32)
    model.save_pretrained(tmp_path)
    loaded = AutoModel.from_pretrained(tmp_path).eval()
    assert type(loaded) is ViTForMultiTaskExpression
    torch.testing.assert_close(loaded(pixels).va, out.va)


def test_missing_labels_are_masked_per_task():
    generator = torch.Generator().manual_seed(0)
    model = tiny_model()
    pixels = torch.randn(6, 3, 32, 32, generator=generator)
    au, expr, va = random_labels(6, generator)
    # Marking half the rows missing must give the loss of the other half alone.
    au_m, expr_m, va_m = au.clone(), expr.clone(), va.clone()
    au_m[3:] = -1
    expr_m[3:] = -1
    va_m[3:] = MISSING_VA
    model.eval()
    full = model(pixels, au_labels=au_m, expr_labels=expr_m, va_labels=va_m)
    half = model(pixels[:3], au_labels=au[:3], expr_labels=expr[:3], va_labels=va[:3])
    for name in ("au_loss", "expr_loss", "va_loss"):
        torch.testing.assert_close(getattr(full, name), getattr(half, name))


def test_all_missing_head_gets_exactly_zero_gradient():
    generator = torch.Generator().manual_seed(1)
    model = tiny_model()
    pixels = torch.randn(4, 3, 32, 32, generator=generator)
    au, expr, va = random_labels(4, generator)
    out = model(pixels, au_labels=torch.full_like(au, -1), expr_labels=expr, va_labels=torch.full_like(va, MISSING_VA))
    out.loss.backward()
    assert out.au_loss.item() == 0 and out.va_loss.item() == 0
    for task in ("au", "va"):
        assert all(g is not None and torch.count_nonzero(g) == 0 for g in head_grads(model, task))
    assert all(torch.count_nonzero(g) > 0 for g in head_grads(model, "expr"))


def test_task_with_weight_zero_is_not_trained():
    generator = torch.Generator().manual_seed(2)
    model = tiny_model(task_weights={"au": 1.0, "expr": 0.0, "va": 1.0}, fusion={"expr": ["au"]})
    pixels = torch.randn(4, 3, 32, 32, generator=generator)
    au, expr, va = random_labels(4, generator)
    out = model(pixels, au_labels=au, expr_labels=expr, va_labels=va)
    assert out.expr_loss is None
    torch.testing.assert_close(out.loss, out.au_loss + out.va_loss)
    out.loss.backward()
    assert all(g is None for g in head_grads(model, "expr"))
    assert all(p.grad is None for p in model.fusion["expr"].parameters())
    assert all(p.grad is None for p in model.fusion_sources.parameters())
    assert all(g is not None for g in head_grads(model, "au"))


def test_ccc_loss_matches_numpy_reference():
    rng = np.random.default_rng(0)
    pred, target = rng.uniform(-1, 1, (50, 2)), rng.uniform(-1, 1, (50, 2))
    target[::7, 1] = MISSING_VA

    def ccc(x, y):  # Lin (1989), population moments
        cov = np.mean((x - x.mean()) * (y - y.mean()))
        return 2 * cov / (x.var() + y.var() + (x.mean() - y.mean()) ** 2)

    keep = target[:, 1] != MISSING_VA
    expected = (1 - ccc(pred[:, 0], target[:, 0])) + (1 - ccc(pred[keep, 1], target[keep, 1]))
    got = masked_ccc_loss(torch.tensor(pred), torch.tensor(target))
    assert abs(got.item() - expected) < 1e-5
    same = torch.tensor(pred[:, 0])
    assert abs(concordance_correlation(same, same).item() - 1) < 1e-6


def test_class_weighted_losses_and_weights_from_labels():
    logits = torch.tensor([[2.0, -1.0], [0.5, 0.3], [-1.0, 1.0]])
    labels = torch.tensor([[1.0, 0.0], [-1.0, 1.0], [0.0, -1.0]])
    pos_weight = torch.tensor([3.0, 0.5])
    per = torch.nn.functional.binary_cross_entropy_with_logits(
        logits, labels.clamp(min=0), pos_weight=pos_weight, reduction="none"
    )
    mask = labels >= 0
    torch.testing.assert_close(masked_au_loss(logits, labels, pos_weight), per[mask].mean())
    expr_logits = torch.randn(5, 8, generator=torch.Generator().manual_seed(0))
    expr = torch.tensor([0, 7, -1, 3, 3])
    weights = torch.arange(1.0, 9.0)
    reference = torch.nn.functional.cross_entropy(expr_logits[expr >= 0], expr[expr >= 0], weight=weights)
    torch.testing.assert_close(masked_expression_loss(expr_logits, expr, weights, form="weight_sum"), reference)
    au_pos, expr_w = class_weights(torch.tensor([[1, 0], [0, 0], [0, -1], [1, 0]]), torch.tensor([0, 0, 1, -1]), 2)
    assert au_pos == [1.0, 3.0]  # AU2 has no positive: counted as one, not infinite
    assert expr_w == pytest.approx([0.75, 1.5])


def test_metric_p_matches_hand_computation():
    metric = load_abaw_metric()
    result = metric.compute(
        # AU1: TP 1, FP 1, FN 0 -> F1 2/3; AU2: one missing frame, TP 1, FN 1 -> 2/3
        au_predictions=[[1, 1], [1, 0], [0, 0], [0, 1]],
        au_references=[[1, 1], [0, 1], [0, -1], [0, -1]],
        # 3 classes; frame 3 missing. class0: TP1 FP0 FN1 -> 2/3; class1: TP1 FP1 -> 2/3; class2: 0
        expr_predictions=[0, 1, 1, 2],
        expr_references=[0, 1, 0, -1],
        valence_predictions=[0.0, 0.5, 1.0, 0.2],
        valence_references=[0.0, 0.5, 1.0, -5.0],  # CCC 1 over the 3 annotated frames
        arousal_predictions=[0.0, 0.0, 1.0, 1.0],
        arousal_references=[1.0, 1.0, 0.0, 0.0],  # perfectly anti-concordant: CCC -1
        num_expression_classes=3,
    )
    assert result["f1_au"] == pytest.approx(2 / 3)
    assert result["f1_expr"] == pytest.approx((2 / 3 + 2 / 3 + 0) / 3)
    assert result["ccc_valence"] == pytest.approx(1.0, abs=1e-6)
    assert result["ccc_arousal"] == pytest.approx(-1.0, abs=1e-6)
    assert result["P"] == pytest.approx(0.0 + 4 / 9 + 2 / 3, abs=1e-6)


def test_from_mae_and_from_compound_model_share_the_encoder(tiny_mae_dir, tiny_cer_config):
    from cer_hf.modeling.convert import convert_mae_model, load_mae_encoder
    from cer_hf.modeling.modeling_cer import ViTForCompoundExpression

    mae = load_mae_encoder(tiny_mae_dir)
    multitask = ViTForMultiTaskExpression.from_mae(tiny_mae_dir).eval()
    compound = convert_mae_model(mae).eval()
    pixels = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(multitask(pixels).features, compound(pixels).pooled_output)
    torch.manual_seed(0)
    other = ViTForCompoundExpression(tiny_cer_config).eval()
    from_compound = ViTForMultiTaskExpression.from_compound_model(other, temporal_module="lstm").eval()
    torch.testing.assert_close(from_compound(pixels).features, other(pixels).pooled_output)


def test_fusion_uses_frozen_single_task_features(tmp_path):
    source = tiny_model(seed=3, task_weights={"au": 1.0})
    source.save_pretrained(tmp_path / "au")
    model = tiny_model(seed=4, fusion={"va": ["au"]})
    model.load_fusion_source("au", tmp_path / "au")
    pixels = torch.randn(3, 3, 32, 32)
    source.eval()
    model.train()  # the frozen source stays in eval mode anyway
    assert not model.fusion_sources["au"].training
    torch.testing.assert_close(model.fusion_sources["au"](pixels), source.eval()(pixels).features)
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        model.load_fusion_source("au", tmp_path / "nothing")
    with pytest.raises(ValueError, match="not used"):
        model.load_fusion_source("expr", tmp_path / "au")


def test_bad_config_names_the_field():
    with pytest.raises(ValueError, match="task_weights"):
        ViTMultiTaskExpressionConfig(task_weights={"aus": 1.0})
    with pytest.raises(ValueError, match="temporal_module"):
        ViTMultiTaskExpressionConfig(temporal_module="gru")
    with pytest.raises(ValueError, match="au_pos_weight"):
        ViTMultiTaskExpressionConfig(au_pos_weight=[1.0] * 3)
    with pytest.raises(ValueError, match="expression_loss_form"):
        ViTMultiTaskExpressionConfig(expression_loss_form="sum")


def test_rows_to_targets():
    from cer_hf.extensions.multitask.data import au_targets, expression_index, va_targets

    assert expression_index("Happily Surprised") == 7 and expression_index("happy") == 4
    assert expression_index(None) == -1 and expression_index("") == -1
    assert au_targets([0.5, 0.1, -1] + [0.0] * 9)[:3] == [1.0, 0.0, -1.0]
    assert va_targets({"valence": 0.3, "arousal": -5}) == [0.3, -5.0]
    with pytest.raises(ValueError, match="'aus'"):
        au_targets([0.0] * 3)
    with pytest.raises(ValueError, match="valence"):
        va_targets({"valence": 3.0, "arousal": 0.0})


def run_recipe(args, tmp_path, launcher):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [*launcher, str(ROOT / "recipes" / "multitask.py"), *args], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_recipe_joint_runs_under_accelerate_launch(tmp_path):
    out = tmp_path / "joint"
    stdout = run_recipe(
        ["--config", str(ROOT / "recipes/configs/multitask_tiny.yaml"), "--num_train", "96", "--num_eval", "48",
         "--epochs", "1", "--output_dir", str(out)],
        tmp_path, [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "1", "--cpu"],
    )
    assert "eval on 48 frames" in stdout
    import json

    metrics = json.loads((out / "metrics.json").read_text())
    assert np.isfinite(metrics["P"]) and (out / "resolved_args.json").is_file()
    model = ViTForMultiTaskExpression.from_pretrained(out)
    assert model.config.trained_tasks == ["au", "expr", "va"]


def test_recipe_single_task_then_fusion_with_temporal_module(tmp_path):
    source = tmp_path / "au"
    run_recipe(["--config", str(ROOT / "recipes/configs/multitask_tiny.yaml"), "--num_train", "64", "--num_eval",
                "32", "--epochs", "1", "--lambda_expr", "0", "--lambda_va", "0", "--output_dir", str(source)],
               tmp_path, [sys.executable])
    out = tmp_path / "fused"
    stdout = run_recipe(
        ["--config", str(ROOT / "recipes/configs/multitask_temporal_tiny.yaml"), "--num_train", "60", "--num_eval",
         "45", "--frames_per_video", "15", "--sequence_length", "4", "--temporal_stride", "3", "--epochs", "1",
         "--fusion", "va=au", "--fusion_checkpoints", f"au={source}", "--output_dir", str(out)],
        tmp_path, [sys.executable],
    )
    assert "temporal lstm" in stdout and "eval on 45 frames" in stdout  # 3 videos x 15 frames, all aligned
    model = ViTForMultiTaskExpression.from_pretrained(out)
    assert model.config.fusion == {"va": ["au"]} and model.config.temporal_module == "lstm"


def test_a_datasets_source_is_grouped_into_lazy_videos_and_scored():
    import datasets

    from cer_hf.extensions.multitask.data import WindowDataset, group_videos, synthetic_videos
    from cer_hf.extensions.multitask.train import predict_videos, rows_class_weights, score

    rows = synthetic_videos(2, 7, seed=3, image_size=32, missing_rate=0.3)
    rows = [{**row, "label": row["label"] if row["label"] else ""} for row in rows[::-1]]  # unsorted, as files may be
    dataset = datasets.Dataset.from_list(rows).cast_column("image", datasets.Image())
    videos = group_videos(dataset)
    assert sorted(videos) == ["synthetic-3-0", "synthetic-3-1"]
    assert [row["frame"] for row in videos["synthetic-3-0"]] == list(range(7))
    windows = WindowDataset(videos, 32, sequence_length=4, stride=3)
    assert len(windows) == 4 and windows[0]["pixel_values"].shape == (4, 3, 32, 32)
    weights = rows_class_weights(dataset)
    assert len(weights["au_weights"]) == 12 and "au_pos_weight" not in weights  # eq. 2: whole BCE term
    assert rows_class_weights(dataset, "pos_weight")["au_pos_weight"] == weights["au_weights"]
    model = tiny_model(temporal_module="lstm", sequence_length=4, temporal_stride=3).eval()
    ordered = [row for frames in videos.values() for row in frames]
    result = score(predict_videos(model, videos, 32), ordered)
    assert set(result) >= {"P", "f1_au", "f1_expr", "ccc_mean"}


def make_affwild2_mtl(root: Path, videos: int = 2, frames: int = 9) -> Path:
    """A tiny Aff-Wild2 multi-task tree (combined annotation files, synthetic face crops), some labels missing."""
    from cer_hf.data.readers.affwild2 import image_name
    from cer_hf.data.synthetic import synthetic_video

    (root / "annotations").mkdir(parents=True)
    for split, offset in (("training", 0), ("validation", 10)):
        lines = ["image,valence,arousal,expression,aus"]
        for k in range(videos):
            vid = f"video{offset + k}"
            (root / "cropped_aligned" / vid).mkdir(parents=True)
            for row in synthetic_video(frames, seed=offset + k, image_size=32):
                row["image"].save(root / "cropped_aligned" / vid / image_name(row["frame"]))
                expr = -1 if row["frame"] % 4 == 3 else ["Neutral", "Anger", "Disgust", "Fear", "Happiness",
                                                         "Sadness", "Surprise"].index(row["label"]) \
                    if row["label"] in ("Neutral", "Anger", "Disgust", "Fear", "Happiness", "Sadness", "Surprise") else 7
                va = "-5,-5" if row["frame"] % 5 == 4 else f"{row['valence']:.3f},{row['arousal']:.3f}"
                aus = ",".join(["-1"] * 12 if row["frame"] % 3 == 2 else [str(int(v >= 0.2)) for v in row["aus"]])
                lines.append(f"{vid}/{image_name(row['frame'])},{va},{expr},{aus}")
        (root / "annotations" / f"{split}_set_annotations.txt").write_text("\n".join(lines) + "\n")
    return root


def test_recipe_on_an_affwild2_tree_through_the_readers(tmp_path):
    root = make_affwild2_mtl(tmp_path / "affwild2")
    out = tmp_path / "run"
    stdout = run_recipe(
        ["--config", str(ROOT / "recipes/configs/multitask_temporal_tiny.yaml"), "--train_source", f"affwild2-mtl:{root}:train",
         "--eval_source", f"affwild2-mtl:{root}:validation", "--num_train", "0", "--num_eval", "0",
         "--sequence_length", "4", "--temporal_stride", "2", "--epochs", "1", "--output_dir", str(out)],
        tmp_path, [sys.executable],
    )
    assert "eval on 18 frames" in stdout, stdout  # 2 validation videos x 9 frames, all annotated in some task
    import json

    assert np.isfinite(json.loads((out / "metrics.json").read_text())["f1_au"])
