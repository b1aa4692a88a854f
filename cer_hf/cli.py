"""The `cer-hf` command line: one subcommand per module that owns the feature."""

from __future__ import annotations

import argparse
import importlib
import sys

# Each module defines `register_cli(subparsers)`; imported lazily so `cer-hf --help` stays fast.
COMMAND_MODULES = (
    "cer_hf.convert",
    "cer_hf.predict",
    "cer_hf.data.readers",
    "cer_hf.hub",
    "cer_hf.video",
    "cer_hf.evaluation",
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand registered."""
    parser = argparse.ArgumentParser(prog="cer-hf", description="compound facial expression recognition toolkit")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for module in COMMAND_MODULES:
        importlib.import_module(module).register_cli(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `cer-hf` console script."""
    args = build_parser().parse_args(argv)
    try:
        result = args.func(args)
    except (ValueError, FileNotFoundError) as error:
        print(f"cer-hf {args.command}: error: {error}", file=sys.stderr)
        return 2
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
