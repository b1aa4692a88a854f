"""`cer-hf evaluate MODEL DATA`: compound macro F1, per-class F1 and basic macro F1 of a model on a labelled source.

    cer-hf evaluate outputs/curriculum synthetic:all:700 --confusion-png cm.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from cer_hf.commands.checks import check_batch_size, check_output_file
from cer_hf.evaluation.images import evaluate_model, format_table, save_confusion_png


def run_cli(args) -> int:
    """Evaluate, print the table, write the JSON and the confusion PNG; options are checked first."""
    check_batch_size(args.batch_size)
    check_output_file(args.output_json, "--output-json")
    check_output_file(args.confusion_png, "--confusion-png")
    results = evaluate_model(args.model, args.data, batch_size=args.batch_size, seed=args.seed)
    print(format_table(results))
    if args.output_json:
        Path(args.output_json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output_json).write_text(json.dumps(results, indent=2))
        print(f"metrics written to {args.output_json}")
    if args.confusion_png and "compound_confusion_matrix" in results:
        path = save_confusion_png(results["compound_confusion_matrix"], results["compound_names"], args.confusion_png)
        print(f"confusion matrix saved to {path}")
    return 0


def register_cli(subparsers: argparse._SubParsersAction) -> None:
    """Add `cer-hf evaluate MODEL DATA`."""
    parser = subparsers.add_parser("evaluate", help="compound macro F1 of a model on a labelled source")
    parser.add_argument("model", help="saved ViTForCompoundExpression directory")
    parser.add_argument("data", help="source spec, e.g. synthetic:all:700, imagefolder:/path, csv:/file.csv")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=12345, help="seed of synthetic sources (held out from training)")
    parser.add_argument("--confusion-png", default=None, help="save the compound confusion matrix here")
    parser.add_argument("--output-json", default=None, help="write the metrics here")
    parser.set_defaults(func=run_cli)

