"""Rerun the paper's ablations (Liu et al., ABAW7, Tables 1 and 2) at toy scale and print them as Markdown.

Table 1: compound synthesis with Mixup, CutMix, or both (under the [5, 5, 3, 3] / [0, .2, .4, 1] curriculum).
Table 2: no curriculum (basic data only), [5, 15] / [0, 1], [5, 5, 5] / [0, .5, 1],
[5, 5, 3, 3] / [0, .2, .4, 1] and [5, 3, 3, 3, 3] / [0, .2, .4, .6, 1].
Epochs are multiplied by `--epoch_scale` (at least one per stage); every other option comes
from the base config (default: the micro CPU config) and the command line.

    PYTHONPATH=. python recipes/ablate.py --config recipes/configs/curriculum_micro_cpu.yaml \
        --output_dir outputs/ablation --epoch_scale 0.4 --basic_source synthetic:basic:800

The printed P is the compound macro F1 on the evaluation source (mean over `--seeds`).
"""

from __future__ import annotations

import dataclasses
import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from transformers import TrainingArguments

from cer_hf.arguments import parse_args
from cer_hf.curriculum.build import (
    CurriculumArguments,
    DataArguments,
    build_curriculum_trainer,
    build_schedule,
    training_overrides,
)
from cer_hf.curriculum.schedule import CurriculumSchedule
from cer_hf.modeling.build import ModelArguments

PAPER_TABLE_1 = [  # (exp, mixup, cutmix, paper P)
    (1, True, False, 0.6764),
    (2, False, True, 0.6722),
    (3, True, True, 0.6856),
]
PAPER_TABLE_2 = [  # (exp, epochs, compound shares, paper P); None: basic data only
    (1, None, None, 0.6653),
    (2, [5, 15], [0, 1], 0.6759),
    (3, [5, 5, 5], [0, 0.5, 1], 0.6652),
    (4, [5, 5, 3, 3], [0, 0.2, 0.4, 1], 0.6856),
    (5, [5, 3, 3, 3, 3], [0, 0.2, 0.4, 0.6, 1], 0.6325),
]


@dataclass
class AblationArguments:
    """What to rerun and at which scale."""

    epoch_scale: float = field(default=0.4, metadata={"help": "multiply every stage's epochs (min 1 each)"})
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2], metadata={"help": "runs per row (at least 3: mean ± sd)"})
    tables: list[int] = field(default_factory=lambda: [1, 2], metadata={"help": "which tables to rerun"})


def run_one(name, model_args, data_args, options, training_args, seed) -> float:
    """Train one configuration and return its compound macro F1."""
    args = dataclasses.replace(training_args, output_dir=str(Path(training_args.output_dir) / f"{name}-seed{seed}"),
                               seed=seed, save_strategy="no", eval_strategy="no", report_to="none",
                               disable_tqdm=True, logging_steps=10**9)
    options = dataclasses.replace(options, evaluate_each_stage=False)
    schedule = build_schedule(options)
    for key, value in training_overrides(args, options, schedule).items():
        setattr(args, key, value)
    trainer = build_curriculum_trainer(model_args, data_args, options, args, schedule).trainer
    trainer.train()
    metrics = trainer.evaluate()
    return float(metrics["eval_compound_macro_f1"])


def main(argv: list[str] | None = None) -> dict:
    # Arguments: the base recipe's plus the ablation's own.
    model_args, data_args, base, training_args, ablation = parse_args(
        (ModelArguments, DataArguments, CurriculumArguments, TrainingArguments, AblationArguments), argv
    )
    if not data_args.eval_source:
        raise ValueError("--eval_source is needed: the ablation reports the compound macro F1")
    if len(ablation.seeds) < 3:
        raise ValueError(f"--seeds: give at least 3 seeds (got {ablation.seeds}); a row is reported as mean ± sd")
    build_schedule(base)  # validates the base options (and turns --teacher_preset none into None) before any run
    if base.teacher_preset is not None:  # e.g. the small-data preset's: a teacher per row would confound the rows
        print(f"[ablation] --teacher_preset {base.teacher_preset} ignored: every row trains on the labels alone "
              "(--teacher_model DIR distils one trained teacher into every row)", flush=True)
        base = dataclasses.replace(base, teacher_preset=None)
    results: dict[str, dict] = {}

    def measure(name: str, options: CurriculumArguments) -> str:
        if name not in results:
            scores = [run_one(name, model_args, data_args, options, training_args, s) for s in ablation.seeds]
            mean, sd = statistics.mean(scores), statistics.stdev(scores)
            results[name] = {"mean": mean, "sd": sd, "scores": scores, "seeds": list(ablation.seeds)}
            print(f"[ablation] {name}: compound macro F1 {mean:.4f} ± {sd:.4f} "
                  f"(seeds {ablation.seeds}: {', '.join(f'{s:.4f}' for s in scores)})", flush=True)
        row = results[name]
        return f"{row['mean']:.3f} ± {row['sd']:.3f}"

    def schedule(epochs, shares) -> CurriculumSchedule:
        return CurriculumSchedule(epochs, shares, base.curriculum_mode).scaled(ablation.epoch_scale)

    # The runs: every row of each table.
    best = schedule(*PAPER_TABLE_2[3][1:3])
    lines = []
    if 1 in ablation.tables:
        lines += ["Table 1: compound synthesis (schedule " + f"{best.stage_epochs} / {best.compound_shares})",
                  "", "| Exp | Mixup | CutMix | compound macro F1, mean ± sd (ours) | P (paper) |", "| --- | --- | --- | --- | --- |"]
        for exp, mixup, cutmix, paper in PAPER_TABLE_1:
            mixup_prob = 0.5 if (mixup and cutmix) else float(mixup)
            options = dataclasses.replace(base, stage_epochs=best.stage_epochs, compound_shares=best.compound_shares,
                                          mixup_prob=mixup_prob, cutmix_prob=1.0 - mixup_prob)
            key = "curriculum-5-5-3-3" if (mixup and cutmix) else f"mixup{int(mixup)}-cutmix{int(cutmix)}"
            score = measure(key, options)
            lines.append(f"| {exp} | {'✓' if mixup else ''} | {'✓' if cutmix else ''} | {score} | {paper:.4f} |")
        lines.append("")
    if 2 in ablation.tables:
        lines += ["Table 2: curriculum (epochs scaled by " + f"{ablation.epoch_scale:g})", "",
                  "| Exp | Epoch Dis. | Compound Prop. | compound macro F1, mean ± sd (ours) | P (paper) |", "| --- | --- | --- | --- | --- |"]
        total = best.num_epochs
        for exp, epochs, shares, paper in PAPER_TABLE_2:
            if epochs is None:
                plan = CurriculumSchedule([total], [0.0], base.curriculum_mode)
                key, shown_epochs, shown_shares = "no-curriculum", "–", "–"
            else:
                plan = schedule(epochs, shares)
                key = "curriculum-" + "-".join(str(e) for e in epochs)
                shown_epochs = f"{epochs} → {plan.stage_epochs}"
                shown_shares = str([float(f"{s:g}") for s in shares])
            options = dataclasses.replace(base, stage_epochs=plan.stage_epochs, compound_shares=plan.compound_shares)
            score = measure(key, options)
            lines.append(f"| {exp} | {shown_epochs} | {shown_shares} | {score} | {paper:.4f} |")
        lines.append("")
    # Report: Markdown tables on stdout and in the output dir, raw numbers as JSON.
    report = "\n".join(lines)
    print(report)
    out = Path(training_args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "ablation.md").write_text(report + "\n")
    (out / "ablation.json").write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
