"""The `cer-hf` command line: one subcommand per module of `cer_hf.commands`."""

from __future__ import annotations

import argparse
import sys

from cer_hf.arguments import log_to_stdout
from cer_hf.commands import (
    app,
    convert,
    data,
    evaluate,
    evaluate_video,
    export_onnx,
    predict,
    push,
)

COMMANDS = (convert, predict, app, data, push, evaluate_video, evaluate, export_onnx)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand registered."""
    parser = argparse.ArgumentParser(prog="cer-hf", description="compound facial expression recognition toolkit")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.register_cli(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `cer-hf` console script."""
    args = build_parser().parse_args(argv)
    log_to_stdout()
    try:
        result = args.func(args)
    # ImportError: a missing optional extra; OSError: a file or folder that cannot be read or written, a model
    # that cannot be fetched (the messages name the path or the repo).
    except (ValueError, OSError, ImportError) as error:
        print(f"cer-hf {args.command}: error: {error}", file=sys.stderr)
        return 2
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
