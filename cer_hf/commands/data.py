"""`cer-hf data SPEC`: load a labelled source and print its rows per label and what was skipped."""

from __future__ import annotations

import logging
import sys
from collections import Counter
from contextlib import contextmanager
from typing import Any

import datasets
import yaml

from cer_hf.data.labelled import load_labelled_source, reader_options
from cer_hf.data.readers import FilterReport, ReadReport, filter_targets
from cer_hf.image_io import BadImageError, load_rgb_image


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
                        help="decode the first N images to check they open; every unreadable one is listed "
                             "by file with the reason and the exit status is 1 (default 0)")
    parser.set_defaults(func=_run_cli)


@contextmanager
def _reports_printed_here():
    """Hide the library's log lines of the reports this command prints itself (else each shows twice)."""

    class NotAReport(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            args = record.args if isinstance(record.args, tuple) else ()
            return not any(isinstance(arg, (ReadReport, FilterReport)) for arg in args)

    handlers, hide = logging.getLogger("cer_hf").handlers, NotAReport()
    for handler in handlers:
        handler.addFilter(hide)
    try:
        yield
    finally:
        for handler in handlers:
            handler.removeFilter(hide)


def _run_cli(args) -> int:
    if args.decode < 0:
        raise ValueError(f"--decode takes a number of images >= 0, got {args.decode}")
    options = dict(_parse_option(text) for text in args.option)
    known = reader_options(args.spec)
    for key in options:
        if known and key not in known:
            raise ValueError(f"--option {key}: not an option of the {args.spec.partition(':')[0]} reader; it takes "
                             f"{', '.join(known)}")
    options["return_report"] = True
    with _reports_printed_here():
        dataset, report = load_labelled_source(args.spec, **options)
    print(report)
    if len(dataset) == 0:
        raise ValueError(f"{args.spec}: the source has no rows (0 rows); check the path, the split and the "
                         "reader options (skipped rows, if any, are listed above)")
    print(f"columns: {', '.join(dataset.column_names)}")
    counts = Counter(dataset["label"])
    for label, count in sorted(counts.items(), key=lambda item: (-item[1], str(item[0]))):
        print(f"  {label if label is not None else '<missing>'}\t{count}")
    if args.filter_targets:
        with _reports_printed_here():
            _, filtered = filter_targets(dataset)
        print(filtered)
    if args.decode:
        return _check_decoding(dataset, args.decode)
    return 0


def _check_decoding(dataset, count: int) -> int:
    """Decode the first `count` images; print their sizes and every unreadable file with its reason."""
    count = min(count, len(dataset))
    raw = dataset.select(range(count)).select_columns(["image"]).cast_column("image", datasets.Image(decode=False))
    sizes, unreadable = Counter(), []
    for index, image in enumerate(raw["image"]):
        name = (image or {}).get("path") or f"row {index}"
        try:
            if not image or not (image.get("bytes") or image.get("path")):
                raise BadImageError(name, "no image in the row")
            sizes[load_rgb_image(image.get("bytes") or image["path"], name=name).size] += 1
        except BadImageError as error:
            unreadable.append((name, error.reason))
    print(f"decoded {sum(sizes.values())} of {count} images; sizes: {dict(sizes)}")
    if not unreadable:
        return 0
    print(f"unreadable: {len(unreadable)} of {count} images")
    for name, reason in unreadable:
        print(f"  {name}: {reason}")
    print(f"cer-hf data: {len(unreadable)} of {count} decoded images are unreadable (listed above; "
          "training drops them)", file=sys.stderr)
    return 1
