"""Recipe arguments: dataclasses whose defaults come from a YAML file and whose values the command line overrides.

    model_args, train_args = parse_args((ModelArguments, TrainingArguments))
    # python recipe.py --config recipes/configs/tiny.yaml --learning_rate 3e-4
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import yaml
from transformers import HfArgumentParser


def parse_args(dataclass_types, argv: list[str] | None = None) -> tuple:
    """Parse `--config FILE.yaml` (optional) as defaults, then the remaining command line over it.

    Unknown YAML keys raise an error naming the key and the file, so a typo never goes unnoticed.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
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
