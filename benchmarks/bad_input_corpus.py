"""Run the bad-input corpus (tests/bad_corpus.py) over every entry point as the real commands, and count outcomes.

    python benchmarks/bad_input_corpus.py [--work DIR] [--jobs 2] [--only predict]

Each case is one subprocess: `python -m cer_hf CMD ...` (what the `cer-hf` console script runs) or
`python recipes/RECIPE.py ...` (the recipes' command-line entry, `run_main`). Entry points: MAE pretraining,
curriculum, `cer-hf evaluate`, `cer-hf predict` (images, and videos / frame folders), `cer-hf evaluate-video`,
`cer-hf data`, `cer-hf push` (offline: every case fails before anything is sent). A tiny random 32-px model
is saved first. Before a run, the case's output folder holds an earlier run's files; afterwards each of
them must still hold every line it held (merged files such as abaw_predictions.txt may gain lines).

Outcomes, checked in this order:
  traceback      "Traceback (most recent call last)" in stdout or stderr
  lost output    a file that was in the output folder before the run lost lines (or vanished)
  unclear        the output does not name the case's file, field or option, or bad input was accepted
                 silently (exit 0 where an error is due)
  skipped+named  the run went on without the bad input, named it and said what it skipped (exit 0, or 1
                 where the command reports failed inputs)
  clean error    a non-zero exit with a one-line error naming the file, field or option
  handled        an odd but valid input (CMYK, 16-bit, 1x1, ...) processed (exit 0)
The target is zero tracebacks, zero unclear, zero lost. Runs take ~20 s each on a busy 2-core CPU.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.bad_corpus import CONVERTIBLE_IMAGES, UNREADABLE_IMAGES, write_corpus  # noqa: E402

OUTCOMES = ("traceback", "lost output", "unclear", "skipped+named", "clean error", "handled")
ABAW7 = ("Fearfully_Surprised,Happily_Surprised,Sadly_Surprised,Disgustedly_Surprised,Angrily_Surprised,"
         "Sadly_Fearful,Sadly_Angry")
EARLIER_ABAW = f"image_location,{ABAW7}\nearlier/00001.jpg,3\nearlier/00002.jpg,3\n"
EARLIER_RUN = {"earlier.txt": "an earlier run's notes\n", "resolved_args.json": '{"earlier": "run"}\n',
               "metrics.jsonl": '{"step": 1, "loss": 0.5}\n'}


@dataclass
class Case:
    """One entry point on one bad input: the command, the text it must print, what is due."""

    entry: str
    name: str
    argv: list[str]
    expect: str                  # names the file, field or option
    due: str = "error"           # error | skip | handled
    seed: dict[str, str] = field(default_factory=lambda: {"earlier.txt": "an earlier run's notes\n"})
    out: Path | None = None      # the output folder (seeded before the run)


def tiny_model(folder: Path) -> Path:
    """A saved random tiny model (benchmarks/tiny_model.py)."""
    from tiny_model import save_tiny_model

    return save_tiny_model(folder)


def bad_checkpoints(model: Path, root: Path) -> dict[str, Path]:
    """Copies of the model with something wrong, for `cer-hf push` (case → folder)."""
    changes = {"broken_config": {"config.json": "{not json"}, "no_config": {"config.json": None},
               "no_weights": {"model.safetensors": None}, "pickled_weights": {"pytorch_model.bin": "pickle"},
               "broken_metrics": {"metrics.json": "{oops"}, "metrics_not_an_object": {"metrics.json": "[1, 2]"}}
    folders = {}
    for case, files in changes.items():
        folder = shutil.copytree(model, root / case)
        for name, text in files.items():
            (folder / name).unlink() if text is None else (folder / name).write_text(text)
        folders[case] = folder
    return folders


def cases(work: Path) -> list[Case]:
    """Every (entry point, bad input) pair."""
    corpus = write_corpus(work / "corpus")
    model = tiny_model(work / "model")
    cer = [sys.executable, "-m", "cer_hf"]
    found = []

    def add(entry, name, argv, expect, due="error", seed=None, out_option=None):
        out = work / "out" / entry.replace(" ", "_") / name
        argv = [str(a).replace("{out}", str(out)) for a in argv]
        found.append(Case(entry, name, argv, expect.replace("{out}", str(out)), due,
                          dict(seed) if seed is not None else {"earlier.txt": "an earlier run's notes\n"}, out))

    # cer-hf predict: images
    for kind in UNREADABLE_IMAGES:
        path = corpus.images[kind]
        add("cer-hf predict", kind, [*cer, "predict", model, corpus.good[0], path, "--output", "{out}"],
            f"{path}: cannot read image", due="skip")
    for kind in CONVERTIBLE_IMAGES:
        path = corpus.images[kind]
        add("cer-hf predict", kind, [*cer, "predict", model, path], str(path), due="handled")
    add("cer-hf predict", "image_without_face", [*cer, "predict", model, corpus.good[0]], "none – whole image used",
        due="handled")
    add("cer-hf predict", "missing_model", [*cer, "predict", work / "no_model", corpus.good[0]],
        f"{work / 'no_model'}: no such checkpoint folder")
    add("cer-hf predict", "model_is_a_file", [*cer, "predict", corpus.good[1], corpus.good[0]],
        "not a checkpoint folder")
    add("cer-hf predict", "batch_size_0", [*cer, "predict", model, corpus.good[0], "--batch-size", "0"],
        "--batch-size must be >= 1")
    add("cer-hf predict", "output_is_a_file", [*cer, "predict", model, corpus.good[0], "--output", corpus.good[1]],
        f"--output {corpus.good[1]}: a file, not a folder")
    # cer-hf predict: videos and frame folders (the output folder holds another sequence's ABAW rows)
    seed = {"earlier.txt": "notes\n", "abaw_predictions.txt": EARLIER_ABAW}
    for kind, path in corpus.videos.items():  # each next to a good video, which must still complete
        corrupt_frame = kind == "frames_with_corrupt"
        expect = f"{path / '00002.png'}: cannot read image" if corrupt_frame else f"{path}: cannot read video"
        add("cer-hf predict (video)", kind, [*cer, "predict", model, path, corpus.good_video, "--output", "{out}",
                                             "--faces-cropped", "--no-progress"], expect, due="skip", seed=seed)
    add("cer-hf predict (video)", "abaw_file_of_other_compounds",
        [*cer, "predict", model, corpus.good_video, "--output", "{out}", "--no-progress"],
        "abaw_predictions.txt: its header names other compounds",
        seed={"abaw_predictions.txt": "image_location,Happily_Disgusted\nclip/00001.jpg,0\n"})

    # cer-hf evaluate-video
    labels = corpus.frame_labels
    (work / "labels3.txt").write_text("0\n1\n2\n")  # for the 3-frame folder
    for kind, path in corpus.videos.items():
        label_file = work / "labels3.txt" if kind == "frames_with_corrupt" else labels["good"]
        due = "skip" if kind == "frames_with_corrupt" else "error"
        expect = f"{path / '00002.png'}: cannot read image" if due == "skip" else f"{path}: cannot read video"
        add("cer-hf evaluate-video", kind, [*cer, "evaluate-video", model, "--videos", path, "--labels", label_file,
                                            "--faces-cropped", "--deltas", "1", "--output", "{out}/report.json"],
            expect, due=due)
    for kind in ("empty_labels", "malformed_labels", "wrong_count_labels", "missing_labels"):
        add("cer-hf evaluate-video", kind, [*cer, "evaluate-video", model, "--videos", corpus.good_video, "--labels",
                                            labels[kind], "--faces-cropped", "--output", "{out}/report.json"],
            str(labels[kind]))
    add("cer-hf evaluate-video", "negative_delta", [*cer, "evaluate-video", model, "--videos", corpus.good_video,
                                                    "--labels", labels["good"], "--deltas", "-3"], "--deltas")

    # cer-hf evaluate and cer-hf data: labelled sources
    for case, spec in corpus.sources.items():
        due = "skip" if case in ("bad_images_in_folder", "csv_bad_image_rows") else "error"
        where = spec.partition(":")[2]
        expect = {"bad_images_in_folder": "bomb.png", "csv_bad_image_rows": "bomb.png",
                  "unknown_class_folder": "banana", "csv_header_only": where, "unknown_scheme": "nosuch",
                  "only_unreadable_images": where}.get(case, where)
        add("cer-hf evaluate", case, [*cer, "evaluate", model, spec, "--output-json", "{out}/metrics.json"], expect,
            due=due)
        add("cer-hf data", case, [*cer, "data", spec, "--decode", "100"], expect, due=due)
    add("cer-hf evaluate", "output_json_is_a_folder", [*cer, "evaluate", model, "synthetic:all:7", "--output-json",
                                                       "{out}"], "--output-json")
    add("cer-hf data", "unknown_reader_option", [*cer, "data", corpus.sources["csv_unknown_label"], "-o", "colour=red"],
        "--option colour")

    # cer-hf push (offline: nothing can be sent; every case must fail before that, naming the file)
    checkpoints = bad_checkpoints(model, work / "checkpoints")
    for case, folder in checkpoints.items():
        expect = {"no_weights": str(folder), "pickled_weights": "pytorch_model.bin",
                  "broken_metrics": "metrics.json", "metrics_not_an_object": "metrics.json"}.get(case, str(folder))
        add("cer-hf push", case, [*cer, "push", folder, "me/model"], expect)
    add("cer-hf push", "missing_folder", [*cer, "push", work / "no_checkpoint", "me/model"], "no_checkpoint")
    add("cer-hf push", "broken_metrics_option", [*cer, "push", model, "me/model", "--metrics",
                                                 corpus.images["text_named_jpg"]], "--metrics")
    add("cer-hf push", "missing_metrics_option", [*cer, "push", model, "me/model", "--metrics", work / "none.json"],
        "--metrics")

    # recipes: curriculum (small: 1 epoch, no eval) and MAE pretraining (a few steps)
    curriculum = [sys.executable, ROOT / "recipes" / "curriculum.py", "--config",
                  ROOT / "recipes" / "configs" / "curriculum_micro_cpu.yaml", "--output_dir", "{out}",
                  "--compound_source", "synthetic:compound:6", "--eval_source", "", "--stage_epochs", "1",
                  "--compound_shares", "0", "--per_device_train_batch_size", "4"]
    pretrain = [sys.executable, ROOT / "recipes" / "pretrain_mae.py", "--config",
                ROOT / "recipes" / "configs" / "pretrain_micro_cpu.yaml", "--output_dir", "{out}", "--max_steps", "3",
                "--num_workers", "0", "--per_device_batch_size", "4", "--save_steps", "100", "--shuffle_buffer", "0"]
    for case in ("bad_images_in_folder", "only_unreadable_images", "unknown_class_folder", "missing_folder",
                 "csv_empty", "csv_header_only", "csv_malformed", "csv_missing_image", "csv_unknown_label",
                 "csv_missing_file", "unknown_scheme"):
        spec = corpus.sources[case]
        due = "skip" if case == "bad_images_in_folder" else "error"
        expect = {"bad_images_in_folder": "bomb.png", "unknown_class_folder": "banana",
                  "unknown_scheme": "nosuch"}.get(case, spec.partition(":")[2])
        add("curriculum", case, [*curriculum, "--basic_source", spec], expect, due=due,
            seed=None if due == "skip" else EARLIER_RUN)
    for case in ("bad_images_in_folder", "only_unreadable_images", "missing_folder", "unknown_scheme"):
        spec = corpus.sources[case]
        due = "skip" if case == "bad_images_in_folder" else "error"
        expect = {"bad_images_in_folder": "bomb.png", "unknown_scheme": "nosuch",
                  "only_unreadable_images": "bomb.png"}.get(case, spec.partition(":")[2])
        add("pretrain_mae", case, [*pretrain, "--sources", spec], expect, due=due,
            seed=None if due == "skip" else EARLIER_RUN)
    options = {
        "curriculum": [("stage_lengths_vs_shares", ["--stage_epochs", "5", "5", "--compound_shares", "0", "0.5", "1"],
                        "--compound_shares"), ("negative_lr", ["--learning_rate=-0.1"], "--learning_rate"),
                       ("shares_outside_0_1", ["--compound_shares", "1.5"], "--compound_shares"),
                       ("unknown_option", ["--lerning_rate", "0.1"], "lerning_rate")],
        "pretrain_mae": [("mask_ratio_1.5", ["--mask_ratio", "1.5"], "--mask_ratio"),
                         ("mask_ratio_0", ["--mask_ratio", "0"], "--mask_ratio"),
                         ("negative_lr", ["--base_learning_rate=-1e-3"], "--base_learning_rate"),
                         ("unknown_tracker", ["--report_to", "wandbx"], "--report_to"),
                         ("probabilities_vs_sources", ["--source_probabilities", "0.5", "0.5"],
                          "--source_probabilities")],
    }
    for recipe, command in (("curriculum", curriculum), ("pretrain_mae", pretrain)):
        for name, extra, expect in options[recipe]:
            add(recipe, name, [*command, *extra], expect, seed=EARLIER_RUN)
        for name, path in corpus.configs.items():
            expect = {"missing_config": "no such file"}.get(name, path.name)
            add(recipe, name, [*command[:2], "--config", path, "--output_dir", "{out}"], expect, seed=EARLIER_RUN)
    return found


def lines_kept(before: bytes, after: bytes) -> bool:
    """Whether every line of the earlier file is still in the new one (in any order)."""
    return set(before.splitlines()) <= set(after.splitlines())


def run_case(case: Case, env: dict) -> dict:
    """Seed the output folder, run the command, classify the outcome."""
    if case.out is not None:
        shutil.rmtree(case.out, ignore_errors=True)
        case.out.mkdir(parents=True)
        for name, text in case.seed.items():
            (case.out / name).write_text(text)
    before = {path: path.read_bytes() for path in case.out.rglob("*") if path.is_file()} if case.out else {}
    started = time.perf_counter()
    try:
        result = subprocess.run(case.argv, env=env, capture_output=True, text=True, timeout=600, cwd=ROOT,
                                check=False)
        code, text = result.returncode, result.stdout + "\n" + result.stderr
    except subprocess.TimeoutExpired as error:
        code, text = "timeout", f"{error.stdout or ''}\n{error.stderr or ''}"
    seconds = time.perf_counter() - started
    lost = [path.name for path, data in before.items() if not path.is_file() or not lines_kept(data, path.read_bytes())]
    named = case.expect in text
    if "Traceback (most recent call last)" in text:
        outcome = "traceback"
    elif lost:
        outcome = "lost output"
    elif not named or code == "timeout" or (code == 0 and case.due == "error"):
        outcome = "unclear"
    elif code == 0:
        outcome = "handled" if case.due == "handled" else "skipped+named"
    elif code == 1 and case.due == "skip":
        outcome = "skipped+named"
    else:
        outcome = "clean error"
    naming = [line.strip() for line in text.splitlines() if case.expect in line]
    message = next((line for line in naming if "error" in line), naming[0] if naming else "")  # the error first
    return {"case": case, "code": code, "outcome": outcome, "seconds": seconds, "lost": lost, "message": message,
            "text": text}


def main(argv: list[str] | None = None) -> int:
    """Write the corpus, run every case, print the table and the totals; exit 1 on any traceback, unclear or lost."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default=None, help="folder for the corpus and outputs (default: a temporary one)")
    parser.add_argument("--jobs", type=int, default=2, help="commands run at once (default 2)")
    parser.add_argument("--only", default=None, help="run the entry points whose name contains this text")
    args = parser.parse_args(argv)
    import tempfile

    work = Path(args.work or tempfile.mkdtemp(prefix="bad-input-corpus-"))
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    todo = [case for case in cases(work) if not args.only or args.only in case.entry]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
           "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    print(f"{len(todo)} cases; work folder {work}", file=sys.stderr, flush=True)

    def one(case):
        row = run_case(case, env)
        print(f"  {case.entry} / {case.name}: {row['outcome']} ({row['seconds']:.0f} s)", file=sys.stderr, flush=True)
        return row

    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        rows = list(pool.map(one, todo))

    print("| entry point | case | outcome | exit | what it printed (the line naming the input) |")
    print("| --- | --- | --- | --- | --- |")
    for row in rows:
        message = row["message"].replace("|", "/").replace(str(work), "WORK")
        message = message if len(message) <= 110 else message[:107] + "..."
        print(f"| {row['case'].entry} | {row['case'].name} | {row['outcome']} | {row['code']} | {message} |")
    counts = Counter(row["outcome"] for row in rows)
    print()
    print(f"tried {len(rows)}; tracebacks {counts['traceback']}; unclear {counts['unclear']}; "
          f"lost {counts['lost output']}; " + "; ".join(f"{name} {counts[name]}" for name in OUTCOMES[3:]))
    for row in rows:
        if row["outcome"] in ("traceback", "unclear", "lost output"):
            print(f"\n--- {row['case'].entry} / {row['case'].name} ({row['outcome']}; lost: {row['lost']}):\n"
                  f"{' '.join(map(str, row['case'].argv))}\n{row['text'][-2500:]}", file=sys.stderr)
    return 0 if not (counts["traceback"] or counts["unclear"] or counts["lost output"]) else 1


if __name__ == "__main__":
    sys.exit(main())
