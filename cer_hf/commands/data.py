"""`cer-hf data SPEC`: load a labelled source and print its rows per label and what was skipped."""

from __future__ import annotations

from collections import Counter
from typing import Any

import yaml

from cer_hf.data.labelled import load_labelled_source
from cer_hf.data.readers import filter_targets


def _parse_option(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise ValueError(f"--option takes key=value (a YAML value), not {text!r}")
    return key.replace("-", "_"), yaml.safe_load(value)


def register_cli(subparsers) -> None:
    """Add `cer-hf data SPEC`: load a labelled source and print its label counts and skip report."""
    parser = subparsers.add_parser(
        "data", help="check a labelled dataset: rows per label and what was skipped",
        description="Load a labelled source spec (e.g. rafdb-basic:/data/RAF-DB/basic:train) and "
                    "print the rows per label, the columns and every skipped-row count.",
    )
    parser.add_argument("spec", help="source spec, e.g. imagefolder:/faces, csv:/labels.csv, affectnet:/training.csv")
    parser.add_argument("--option", "-o", action="append", default=[], metavar="KEY=VALUE",
                        help="reader option (YAML value), e.g. -o label_column=emotion -o on_missing=skip")
    parser.add_argument("--filter-targets", action="store_true",
                        help="also apply filter_targets (drop Neutral, Contempt, Other) and print its report")
    parser.add_argument("--decode", type=int, default=0, metavar="N",
                        help="decode the first N images to check they open (default 0)")
    parser.set_defaults(func=_run_cli)


def _run_cli(args) -> None:
    options = dict(_parse_option(text) for text in args.option)
    options["return_report"] = True
    dataset, report = load_labelled_source(args.spec, **options)
    print(report)
    print(f"columns: {', '.join(dataset.column_names)}")
    counts = Counter(dataset["label"])
    for label, count in sorted(counts.items(), key=lambda item: (-item[1], str(item[0]))):
        print(f"  {label if label is not None else '<missing>'}\t{count}")
    if args.filter_targets:
        _, filtered = filter_targets(dataset)
        print(filtered)
    if args.decode:
        sizes = Counter(dataset[index]["image"].size for index in range(min(args.decode, len(dataset))))
        print(f"decoded {sum(sizes.values())} images; sizes: {dict(sizes)}")
