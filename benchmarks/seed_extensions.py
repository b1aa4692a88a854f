"""Seed-extension results on synthetic data: (a) single-task vs joint, (b) temporal modules, (c) pseudo-labelling.

    PYTHONPATH=. OMP_NUM_THREADS=1 python benchmarks/seed_extensions.py            # all three tables
    PYTHONPATH=. python benchmarks/seed_extensions.py --tables a --seeds 0 1 2      # one table, more seeds

Micro ViT (hidden 32, 2 layers) at 32 px from scratch, on the embedded synthetic faces, CPU.
Every number is the mean over --seeds (± the spread when more than one), from held-out synthetic
data that shares no sample index with the training data. These are functional checks of the
methods on a toy problem, not estimates of their effect on Aff-Wild2.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from cer_hf.extensions.multitask.modeling import ViTForMultiTaskExpression, ViTMultiTaskExpressionConfig
from cer_hf.extensions.multitask.data import (
    FrameDataset,
    WindowDataset,
    group_videos,
    pixels_from_images,
    synthetic_multitask_rows,
    synthetic_videos,
)
from cer_hf.extensions.multitask.train import fit, predict_frames, predict_videos, rows_class_weights, score

MICRO = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64, image_size=32, patch_size=8)
KEYS = ("f1_au", "f1_expr", "ccc_valence", "ccc_arousal", "P")


def multitask_model(seed, train_rows, **fields):
    torch.manual_seed(seed)
    return ViTForMultiTaskExpression(ViTMultiTaskExpressionConfig(**MICRO, **rows_class_weights(train_rows), **fields))


def cell(values):
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    return f"{np.mean(values):.3f}" + (f" ± {np.std(values):.3f}" if len(values) > 1 else "")


def print_table(title, header, rows):
    print(f"\n{title}\n")
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


def table_a(seeds, args):
    """Single-task models (each scored on its own task) vs one joint model (all tasks)."""
    train = synthetic_multitask_rows(args.train_frames, seed=100, missing_rate=0.1)
    test = synthetic_multitask_rows(args.test_frames, seed=101)
    settings = {"AU only": {"au": 1}, "EXPR only": {"expr": 1}, "VA only": {"va": 1}, "joint (AU+EXPR+VA)": None}
    results = {name: [] for name in settings}
    for seed in seeds:
        for name, weights in settings.items():
            model = multitask_model(seed, train, task_weights=weights)
            fit(model, FrameDataset(train, 32), epochs=args.epochs, batch_size=32, learning_rate=2e-3, seed=seed)
            results[name].append(score(predict_frames(model, test, 32), test))
    owned = {"AU only": ("f1_au",), "EXPR only": ("f1_expr",), "VA only": ("ccc_valence", "ccc_arousal")}
    rows = []
    for name, runs in results.items():
        keys = owned.get(name, KEYS)
        rows.append([name] + [cell([r[k] for r in runs]) if k in keys else "-" for k in KEYS])
    combined = [runs_au["f1_au"] + runs_ex["f1_expr"] + runs_va["ccc_mean"]
                for runs_au, runs_ex, runs_va in zip(results["AU only"], results["EXPR only"], results["VA only"])]
    rows.insert(3, ["single-task models combined", "", "", "", "", cell(combined)])
    print_table(
        f"(a) single-task vs joint training: {args.train_frames} training frames (10% of each task's labels hidden), "
        f"{args.test_frames} test frames, {args.epochs} epochs, seeds {seeds}",
        ["setting", "F1 AU", "F1 EXPR", "CCC V", "CCC A", "P"], rows)


def table_b(seeds, args):
    """Progressive, as Liu et al. (ABAW7 MTL): a frame-level joint model first, then the same model continued on frames or with a
    temporal module (no module / LSTM / Transformer, all initialised from it) on synthetic videos."""
    train = synthetic_videos(args.train_videos, args.video_frames, seed=200, missing_rate=0.1)
    test = synthetic_videos(args.test_videos, args.video_frames, seed=201)
    train_videos, test_videos = group_videos(train), group_videos(test)
    test_rows = [row for frames in test_videos.values() for row in frames]
    settings = {"frames (no temporal module)": "none", "LSTM (004)": "lstm", "Transformer (003)": "transformer"}
    results = {"frame model (stage 1)": [], **{name: [] for name in settings}}
    stride = args.sequence_length // 2
    for seed in seeds:
        frame_model = multitask_model(seed, train)
        fit(frame_model, FrameDataset(train, 32), epochs=args.video_epochs, batch_size=32, learning_rate=2e-3, seed=seed)
        results["frame model (stage 1)"].append(score(predict_videos(frame_model, test_videos, 32), test_rows))
        for name, module in settings.items():
            model = multitask_model(seed, train, temporal_module=module, temporal_tasks=["au", "expr", "va"],
                                    sequence_length=args.sequence_length, temporal_stride=stride)
            missing, unexpected = model.load_state_dict(frame_model.state_dict(), strict=False)
            assert not unexpected and all(k.startswith("temporal.") for k in missing)
            if module == "none":
                dataset, batch, epochs = FrameDataset(train, 32), 32, args.stage2_epochs
            else:  # windows overlap by half: half the epochs for the same frame visits
                dataset = WindowDataset(train_videos, 32, args.sequence_length, stride)
                batch, epochs = max(1, 64 // args.sequence_length), max(1, args.stage2_epochs // 2)
            fit(model, dataset, epochs=epochs, batch_size=batch, learning_rate=5e-4, seed=seed)
            results[name].append(score(predict_videos(model, test_videos, 32), test_rows))
    rows = [[name] + [cell([r[k] for r in runs]) for k in KEYS] for name, runs in results.items()]
    print_table(
        f"(b) temporal modules on synthetic videos: {args.train_videos} training and {args.test_videos} test videos "
        f"of {args.video_frames} frames (expression segments of 10-30 frames); stage 1: joint frame model, "
        f"{args.video_epochs} epochs; stage 2 from it: {args.stage2_epochs} more epochs over frames, or "
        f"{max(1, args.stage2_epochs // 2)} over half-overlapping windows of {args.sequence_length} frames "
        f"(stride {stride}), lr 5e-4; frame-aligned video predictions; seeds {seeds}",
        ["setting", "F1 AU", "F1 EXPR", "CCC V", "CCC A", "P"], rows)


def table_c(seeds, args):
    """Labelled-only vs teacher/student pseudo-labelling (fixed threshold, FlexMatch, feedback) on basic expressions."""
    from cer_hf.modeling.convert import compound_config
    from cer_hf.data.synthetic import synthetic_sample
    from cer_hf.modeling.modeling_cer import ViTForCompoundExpression
    from cer_hf.extensions.pseudo_label import PseudoLabelConfig, macro_f1, predict_classes, pseudo_label_rounds, train_supervised
    from cer_hf.taxonomy import EMOTION_BASICS

    def encoded(count, seed):
        rows = [synthetic_sample(i, seed=seed, image_size=32) for i in range(count)]
        return pixels_from_images([r["image"] for r in rows], 32), torch.tensor([EMOTION_BASICS.index(r["label"]) for r in rows])

    labelled = encoded(args.labelled_per_class * 6, 300)
    unlabelled, unlabelled_truth = encoded(args.unlabelled, 301)
    test = encoded(args.test_frames, 302)

    def make_model(seed):
        torch.manual_seed(seed)
        return ViTForCompoundExpression(compound_config("abaw7", **MICRO))

    variants = {
        "pseudo-labels, threshold": dict(),
        "pseudo-labels, FlexMatch thresholds": dict(flexmatch=True),
        "pseudo-labels + feedback (MPL)": dict(feedback=True),
    }
    total_steps = args.teacher_steps + args.rounds * args.student_steps
    results = {"labelled only": [], "teacher (labelled + consistency)": [], **{name: [] for name in variants}}
    details = {name: [] for name in variants}
    for seed in seeds:
        base = PseudoLabelConfig(rounds=args.rounds, teacher_steps=args.teacher_steps, student_steps=args.student_steps,
                                 per_class=8, learning_rate=3e-3, threshold=args.threshold, seed=seed)
        baseline = make_model(seed)
        train_supervised(baseline, *labelled, base, steps=total_steps)
        results["labelled only"].append(macro_f1(predict_classes(baseline, test[0]), test[1], 6))
        for name, options in variants.items():
            config = PseudoLabelConfig(**{**base.__dict__, **options})
            start = time.time()
            _, reports = pseudo_label_rounds(make_model, *labelled, unlabelled, config, evaluation=test,
                                             unlabelled_labels=unlabelled_truth)
            if name == "pseudo-labels, threshold":  # the first teacher is the same in every variant
                results["teacher (labelled + consistency)"].append(reports[0].score)
            results[name].append(reports[-1].score)
            details[name].append((reports[-1].mask_rate, reports[-1].pseudo_label_accuracy, time.time() - start))
    rows = [["labelled only", cell(results["labelled only"]), "-", "-", "-"],
            ["teacher (labelled + consistency)", cell(results["teacher (labelled + consistency)"]), "-", "-", "-"]]
    for name in variants:
        kept = cell([d[0] for d in details[name]])
        accuracy = cell([d[1] for d in details[name]])
        seconds = cell([d[2] for d in details[name]])
        rows.append([name, cell(results[name]), kept, accuracy, seconds])
    print_table(
        f"(c) labelled-only vs pseudo-labelled, six basic expressions: {args.labelled_per_class} labelled faces per "
        f"class, {args.unlabelled} unlabelled, {args.test_frames} test faces; teacher {args.teacher_steps} steps, "
        f"{args.rounds} student round(s) of {args.student_steps} steps (students start from their teacher), "
        f"labelled-only baseline {total_steps} steps; threshold {args.threshold}; seeds {seeds}",
        ["setting", "macro F1", "pseudo-labels kept (last round)", "their accuracy", "seconds (teacher + rounds)"],
        rows)
    # Cost of the feedback term: student steps with and without it, back to back in this process.
    from cer_hf.extensions.pseudo_label import train_student

    per_step = {False: [], True: []}
    for repeat in range(2):
        for feedback in (False, True):
            config = PseudoLabelConfig(student_steps=20, per_class=8, threshold=args.threshold, feedback=feedback)
            start = time.time()
            train_student(make_model(1), make_model(0), *labelled, unlabelled, config)
            per_step[feedback].append((time.time() - start) / 20)
    plain, feedback = min(per_step[False]), min(per_step[True])
    print(f"\nstudent step: {1000 * plain:.0f} ms plain, {1000 * feedback:.0f} ms with feedback "
          f"({feedback / plain:.2f}x; best of 2 x 20 steps, batch 48 labelled + 64 unlabelled)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", nargs="*", default=["a", "b", "c"], choices=["a", "b", "c"])
    parser.add_argument("--seeds", type=int, nargs="*", default=[0])
    parser.add_argument("--train-frames", type=int, default=1800)
    parser.add_argument("--test-frames", type=int, default=600)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--train-videos", type=int, default=100)
    parser.add_argument("--test-videos", type=int, default=20)
    parser.add_argument("--video-epochs", type=int, default=6)
    parser.add_argument("--stage2-epochs", type=int, default=4)
    parser.add_argument("--video-frames", type=int, default=100)
    parser.add_argument("--sequence-length", type=int, default=16)
    parser.add_argument("--labelled-per-class", type=int, default=30)
    parser.add_argument("--unlabelled", type=int, default=3000)
    parser.add_argument("--teacher-steps", type=int, default=800)
    parser.add_argument("--student-steps", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--threshold", type=float, default=0.85)
    args = parser.parse_args()
    torch.set_num_threads(1)
    start = time.time()
    for table in args.tables:
        {"a": table_a, "b": table_b, "c": table_c}[table](args.seeds, args)
    print(f"\n(total {time.time() - start:.0f} s on a shared 2-core CPU; timings are under contention)")


if __name__ == "__main__":
    main()
