"""The small-data benchmark: the README's two "Train on your own faces" commands, timed, beside the CNN baseline.

For each data folder (imagefolder layout: basic/train, compound/train, compound/test; make one with
benchmarks/make_small_data.py, held-out identities in compound/test) it runs

1. `accelerate launch ... recipes/pretrain_mae.py --config recipes/configs/pretrain_small_data_cpu.yaml ...`
2. `accelerate launch ... recipes/curriculum.py --config recipes/configs/curriculum_small_data_cpu.yaml --mae_checkpoint ...`
   (the preset trains its resnet-small CNN teacher first: that teacher, the CNN baseline on the same
   curriculum, seed and data, is the second row, from the run's `[teacher]` line)
3. with `--without-teacher`, the same curriculum with `--teacher_preset none` (the ViT on the labels alone)

exactly as a user would, and prints one row per model: wall time of each stage and the compound macro F1
that the curriculum prints in its `[result]` (or `[teacher]`) line.

    python benchmarks/small_data.py data/smalldata_s0 data/smalldata_s1 --seeds 0 1 2 --out runs/small_data

With several seeds it ends with mean ± sd per data folder and model (the 3-seed evidence rule).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAUNCH = ["accelerate", "launch", "--config_file", str(ROOT / "accelerate_configs" / "cpu.yaml")]
RESULT = re.compile(r"\[(result|teacher)\] compound macro F1 ([0-9.]+)")


def run(command: list[str], log: Path) -> tuple[float, str]:
    """Run a command, keep its output in `log`, return (wall seconds, output); a failure stops the benchmark."""
    start = time.perf_counter()
    completed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    log.write_text(completed.stdout + completed.stderr)
    if completed.returncode:
        sys.exit(f"{' '.join(command)} failed (exit {completed.returncode}); see {log}")
    return seconds, completed.stdout + completed.stderr


def f1_of(output: str, tag: str = "result") -> float:
    """The compound macro F1 of the curriculum's `[tag]` line."""
    scores = {match.group(1): float(match.group(2)) for match in RESULT.finditer(output)}
    if tag not in scores:
        raise ValueError(f"the curriculum printed no [{tag}] line")
    return scores[tag]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="+", help="data folders (basic/train, compound/train, compound/test)")
    parser.add_argument("--out", default="runs/small_data", help="where models and logs go")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="training seeds (each run on every folder)")
    parser.add_argument("--without-teacher", action="store_true",
                        help="also run the curriculum with --teacher_preset none (the ViT on the labels alone)")
    args = parser.parse_args()
    rows = []
    for data, seed in [(Path(d), seed) for d in args.data for seed in args.seeds]:
        out = Path(args.out) / data.name / f"seed{seed}"
        out.mkdir(parents=True, exist_ok=True)
        sources = ["--basic_source", f"imagefolder:{data}/basic/train", "--compound_source",
                   f"imagefolder:{data}/compound/train", "--eval_source", f"imagefolder:{data}/compound/test"]
        pretrain_s, _ = run([*LAUNCH, "recipes/pretrain_mae.py", "--config", "recipes/configs/pretrain_small_data_cpu.yaml",
                             "--sources", f"imagefolder:{data}/basic/train", f"imagefolder:{data}/compound/train",
                             "--report_to", "none", "--seed", str(seed), "--output_dir", str(out / "mae")],
                            out / "pretrain.log")
        curriculum_s, output = run([*LAUNCH, "recipes/curriculum.py", "--config",
                                    "recipes/configs/curriculum_small_data_cpu.yaml", "--mae_checkpoint", str(out / "mae"),
                                    *sources, "--seed", str(seed), "--output_dir", str(out / "cer")],
                                   out / "curriculum.log")
        rows.append({"data": data.name, "seed": seed, "model": "MAE → curriculum ViT, distilled (the preset)",
                     "pretrain_s": round(pretrain_s), "curriculum_s": round(curriculum_s),
                     "total_min": round((pretrain_s + curriculum_s) / 60, 1), "compound_macro_f1": f1_of(output)})
        rows.append({"data": data.name, "seed": seed, "model": "CNN baseline (resnet-small): the run's teacher",
                     "pretrain_s": 0, "curriculum_s": "in the run", "total_min": "in the run",
                     "compound_macro_f1": f1_of(output, "teacher")})
        print(*(json.dumps(row) for row in rows[-2:]), sep="\n", flush=True)
        if args.without_teacher:
            alone_s, output = run([*LAUNCH, "recipes/curriculum.py", "--config",
                                   "recipes/configs/curriculum_small_data_cpu.yaml", "--mae_checkpoint", str(out / "mae"),
                                   "--teacher_preset", "none", *sources, "--seed", str(seed),
                                   "--output_dir", str(out / "cer_labels_only")], out / "labels_only.log")
            rows.append({"data": data.name, "seed": seed, "model": "MAE → curriculum ViT, labels only",
                         "pretrain_s": round(pretrain_s), "curriculum_s": round(alone_s),
                         "total_min": round((pretrain_s + alone_s) / 60, 1), "compound_macro_f1": f1_of(output)})
            print(json.dumps(rows[-1]), flush=True)
    print("\n| data | seed | model | pretrain s | curriculum s | total min | compound macro F1 |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for row in rows:
        print(f"| {row['data']} | {row['seed']} | {row['model']} | {row['pretrain_s']} | {row['curriculum_s']} "
              f"| {row['total_min']} | {row['compound_macro_f1']:.4f} |")
    if len(args.seeds) > 1:
        print("\n| data | model | compound macro F1, mean ± sd over seeds |")
        print("| --- | --- | --- |")
        for key in dict.fromkeys((row["data"], row["model"]) for row in rows):
            scores = [row["compound_macro_f1"] for row in rows if (row["data"], row["model"]) == key]
            print(f"| {key[0]} | {key[1]} | {statistics.mean(scores):.3f} ± {statistics.stdev(scores):.3f} |")


if __name__ == "__main__":
    main()
