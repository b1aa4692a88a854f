"""Recipe arguments: dataclasses whose defaults come from a YAML file and whose values the command line overrides.

    model_args, train_args = parse_args((ModelArguments, TrainingArguments))
    # python recipe.py --config recipes/configs/tiny.yaml --learning_rate 3e-4

One vocabulary across recipes and commands: `--model_preset`, `--mae_checkpoint`,
`--model_name_or_path`, `--*_source` for data specs. Names used by earlier versions
(`RENAMED_OPTIONS`) are refused with an error that names the new one.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
from pathlib import Path

import yaml
from transformers import HfArgumentParser


# Option names of earlier versions → today's name (the same thing in every recipe).
RENAMED_OPTIONS: dict[str, str] = {
    "preset": "model_preset",
    "mae_dir": "mae_checkpoint",
    "data": "train_source",
    "eval_data": "eval_source",
    "unlabelled_data": "unlabelled_source",
}


def check_renamed(names, where: str = "") -> None:
    """Raise `SystemExit` naming the new option when one of `names` (without dashes) is a retired option name."""
    for name in names:
        if name in RENAMED_OPTIONS:
            raise SystemExit(f"{where}--{name} was renamed --{RENAMED_OPTIONS[name]}; use --{RENAMED_OPTIONS[name]}")


class _CurrentStdout(logging.StreamHandler):
    """A handler that writes to whatever `sys.stdout` is at the time of each message."""

    @property
    def stream(self):
        return sys.stdout

    @stream.setter
    def stream(self, value):  # StreamHandler.__init__ assigns it; the live sys.stdout is used instead
        pass


def log_to_stdout(level: int = logging.INFO) -> None:
    """Show the toolkit's progress messages (logger `cer_hf`) as plain lines on standard output.

    Library modules log and never print; recipes and the `cer-hf` command call this once.
    """
    logger = logging.getLogger("cer_hf")
    logger.setLevel(level)
    if not any(isinstance(handler, _CurrentStdout) for handler in logger.handlers):
        handler = _CurrentStdout()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)


def parse_args(dataclass_types, argv: list[str] | None = None) -> tuple:
    """Parse `--config FILE.yaml` (optional) as defaults, then the remaining command line over it.

    Unknown YAML keys raise an error naming the key and the file, so a typo never goes unnoticed.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    check_renamed(arg[2:].split("=")[0] for arg in argv if arg.startswith("--"))
    config_path = None
    if "--config" in argv:
        at = argv.index("--config")
        if at + 1 >= len(argv):
            raise SystemExit("--config needs a YAML file path")
        config_path = argv[at + 1]
        del argv[at : at + 2]
    parser = HfArgumentParser(dataclass_types)
    if config_path:
        path = Path(config_path)
        if not path.is_file():
            raise SystemExit(f"--config {path}: no such file")
        values = yaml.safe_load(path.read_text()) or {}
        if not isinstance(values, dict):
            raise SystemExit(f"--config {path}: expected a mapping of argument names to values")
        check_renamed(values, where=f"--config {path}: ")
        known = {field.name for cls in dataclass_types for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise SystemExit(f"--config {path}: unknown argument(s) {', '.join(unknown)}")
        parser.set_defaults(**values)
        # A YAML value satisfies a required argument.
        for action in parser._actions:
            if action.dest in values:
                action.required = False
    return parser.parse_args_into_dataclasses(args=argv)


def save_args(args: tuple, output_dir: str | Path, filename: str = "resolved_args.json") -> Path:
    """Write the resolved arguments of a run next to its outputs."""
    path = Path(output_dir) / filename
    path.parent.mkdir(parents=True, exist_ok=True)
    resolved = {}
    for group in args:
        as_dict = group.to_dict() if hasattr(group, "to_dict") else dataclasses.asdict(group)
        resolved[type(group).__name__] = as_dict
    path.write_text(json.dumps(resolved, indent=2, default=str))
    return path
