"""The one entry for labelled images: a source spec → rows → filtered rows → tensors.

    rows = load_labelled("imagefolder:/data/faces")          # or synthetic:basic:2000, rafdb-basic:/root:train, ...
    rows, dropped = keep_targets(rows)                       # Neutral / Contempt / Other counted and dropped
    basic, natural = split_by_kind(rows)                     # single basics vs two-basic compounds
    dataset = LabelledImageDataset(rows, image_size=112)     # multi-hot targets over the six basics

`load_labelled_source(spec)` dispatches a spec string to a reader of `cer_hf.data.readers`;
`load_labelled` adds the one thing every training and evaluation entry needs on top: rows
whose image cannot be decoded are dropped and reported by file, so a corrupt file never
stops a run. The curriculum, `cer-hf evaluate`, the multi-task and pseudo-label recipes all
read labelled data through this module, with the one `synthetic:` grammar of `parse_synthetic_spec`.
"""

from __future__ import annotations

import inspect
from collections import Counter
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from torch.utils.data import Dataset

from cer_hf.data.readers import (
    FER2013_USAGES,
    ReadReport,
    affwild2,
    drop_unreadable_images,
    filter_targets,
    normalise_dataset,
    read_affectnet,
    read_fer2013,
    read_hub,
    read_image_folder,
    read_parquet,
    read_rafdb_basic,
    read_rafdb_compound,
    read_table,
)
from cer_hf.data.synthetic import STYLES, synthetic_dataset
from cer_hf.image_io import image_to_tensor, image_to_uint8
from cer_hf.taxonomy import EMOTION_BASICS, NON_TARGET_LABELS, compound_set, constituents, multi_hot, parse_label

# What a training sample is: one basic image, a natural compound image, or a compound synthesized from two basics.
BASIC, NATURAL, SYNTHESIZED = 0, 1, 2
SYNTHETIC_KINDS = ("basic", "compound", "all")


# ----------------------------------------------------------------------------- source specs


@dataclass(frozen=True)
class SyntheticSpec:
    """A parsed `synthetic:KIND:COUNT[:STYLE]` spec: which classes (basic, compound or all), how many rows,
    and the face style (cartoon, the default, or realistic: subtle expressions under wide variation)."""

    kind: str
    count: int
    style: str = "cartoon"


SYNTHETIC_GRAMMAR = f"synthetic:{'|'.join(SYNTHETIC_KINDS)}:<count>[:{'|'.join(STYLES)}]"


def parse_synthetic_spec(spec: str) -> SyntheticSpec:
    """Parse `synthetic:basic|compound|all:<count>[:cartoon|realistic]`; any other form is an error showing the grammar."""
    scheme, _, rest = spec.partition(":")
    parts = rest.split(":")
    style = parts.pop() if len(parts) == 3 and parts[-1] in STYLES else "cartoon"
    if scheme != "synthetic" or len(parts) != 2 or parts[0] not in SYNTHETIC_KINDS or not parts[1].isdigit():
        raise ValueError(f"synthetic spec must be '{SYNTHETIC_GRAMMAR}', not {spec!r}")
    return SyntheticSpec(parts[0], int(parts[1]), style)


def _synthetic(rest: str, **options):
    parsed = parse_synthetic_spec(f"synthetic:{rest}")
    return_report = options.pop("return_report", False)
    dataset = synthetic_dataset(parsed.count, kind=parsed.kind, style=parsed.style, **options)
    report = ReadReport(f"synthetic:{rest}", rows=len(dataset))
    return (dataset, report) if return_report else dataset


def _split_suffix(rest: str, splits: Sequence[str]) -> tuple[str, str | None]:
    """Split '/path:train' into ('/path', 'train') when the suffix is a known split name."""
    head, sep, tail = rest.rpartition(":")
    if sep and tail in splits:
        return head, tail
    return rest, None


def _with_split(reader: Callable, splits: Sequence[str], option: str) -> Callable:
    def load(rest: str, **options):
        target, split = _split_suffix(rest, splits)
        if split is not None:
            options[option] = split
        return reader(target, **options)

    return load


def _hub(rest: str, **options):
    name, sep, split = rest.partition(":")
    if sep:
        options["split"] = split
    return read_hub(name, **options)


def _affwild2(kind: str) -> Callable:
    def load(rest: str, **options):
        reader = {
            "cexprdb": affwild2.read_cexprdb,
            "affwild2-expr": affwild2.read_affwild2_expr,
            "affwild2-mtl": affwild2.read_affwild2_mtl,
        }[kind]
        if kind == "cexprdb":
            return reader(rest, **options)
        target, split = _split_suffix(rest, affwild2.SPLITS)
        if split is not None:
            options["split"] = split
        return reader(target, **options)

    return load


SOURCE_SCHEMES: dict[str, tuple[Callable, str]] = {
    "synthetic": (_synthetic, SYNTHETIC_GRAMMAR),
    "imagefolder": (lambda rest, **o: read_image_folder(rest, **o), "imagefolder:/root (root/<label>/*.jpg)"),
    "csv": (lambda rest, **o: read_table(rest, **o), "csv:/file.csv"),
    "json": (lambda rest, **o: read_table(rest, **o), "json:/file.json or .jsonl"),
    "jsonl": (lambda rest, **o: read_table(rest, **o), "jsonl:/file.jsonl"),
    "parquet": (lambda rest, **o: read_parquet(rest, **o), "parquet:/glob/*.parquet"),
    "hub": (_hub, "hub:org/name[:split]"),
    "rafdb-basic": (_with_split(read_rafdb_basic, ("train", "test"), "split"), "rafdb-basic:/root[:train|test]"),
    "rafdb-compound": (_with_split(read_rafdb_compound, ("train", "test"), "split"), "rafdb-compound:/root[:train|test]"),
    "affectnet": (lambda rest, **o: read_affectnet(rest, **o), "affectnet:/training.csv"),
    "fer2013": (_with_split(read_fer2013, FER2013_USAGES, "usage"), "fer2013:/fer2013.csv[:Training|PublicTest|PrivateTest]"),
    "cexprdb": (_affwild2("cexprdb"), "cexprdb:/root"),
    "affwild2-expr": (_affwild2("affwild2-expr"), "affwild2-expr:/root[:train|validation]"),
    "affwild2-mtl": (_affwild2("affwild2-mtl"), "affwild2-mtl:/root[:train|validation]"),
}


# The functions whose keyword options each scheme's loader passes on (for `reader_options`).
SCHEME_READERS: dict[str, tuple[Callable, ...]] = {
    "synthetic": (synthetic_dataset,), "imagefolder": (read_image_folder,), "csv": (read_table,),
    "json": (read_table,), "jsonl": (read_table,), "parquet": (read_parquet, normalise_dataset),
    "hub": (read_hub, normalise_dataset), "rafdb-basic": (read_rafdb_basic,), "rafdb-compound": (read_rafdb_compound,),
    "affectnet": (read_affectnet,), "fer2013": (read_fer2013,), "cexprdb": (affwild2.read_cexprdb,),
    "affwild2-expr": (affwild2.read_affwild2_expr,), "affwild2-mtl": (affwild2.read_affwild2_mtl,),
}
# Options the spec itself sets (the synthetic kind, count and style; a split suffix) or the loader handles.
_SPEC_OPTIONS = {"num_samples", "kind", "style", "source", "return_report"}


def reader_options(spec: str) -> list[str]:
    """The keyword options `load_labelled_source(spec, **options)` passes to the reader of `spec`'s scheme."""
    scheme = spec.partition(":")[0]
    names = set()
    for reader in SCHEME_READERS.get(scheme, ()):
        for parameter in inspect.signature(reader).parameters.values():
            if parameter.default is not parameter.empty:
                names.add(parameter.name)
    return sorted(names - _SPEC_OPTIONS)


def load_labelled_source(spec: str, **options):
    """Load a labelled source from a spec string `scheme:argument` (see `SOURCE_SCHEMES`).

    Examples: "synthetic:compound:500", "imagefolder:/data/faces", "csv:/data/labels.csv",
    "rafdb-basic:/data/RAF-DB:train", "fer2013:/data/fer2013.csv:PublicTest",
    "affwild2-mtl:/data/Aff-Wild2:validation". `options` go to the reader (for example
    `label_column=` for csv, `crop_faces=True` for affectnet, `return_report=True`).
    """
    scheme, sep, rest = spec.partition(":")
    if not sep or scheme not in SOURCE_SCHEMES or not rest:
        known = "\n  ".join(usage for _, usage in SOURCE_SCHEMES.values())
        problem = "has no argument" if scheme in SOURCE_SCHEMES else f"has unknown scheme {scheme!r}"
        raise ValueError(f"source spec {spec!r} {problem}; known schemes:\n  {known}")
    loader, _ = SOURCE_SCHEMES[scheme]
    return loader(rest, **options)




# ----------------------------------------------------------------------------- rows


def load_labelled(spec: str, *, image_size: int | None = None, seed: int = 0):
    """Load a labelled source (`synthetic:basic:2000`, `imagefolder:/path`, `csv:/file.csv`, ...) as a `datasets.Dataset`.

    The one call site for data (`cer_hf.data.readers.base.load_labelled_source`). Rows whose image
    cannot be decoded are dropped and reported by file, so one corrupt file does not stop a run.
    `image_size`/`seed` only apply to `synthetic:` specs.
    """
    options = {"seed": seed, **({"image_size": image_size} if image_size else {})} if spec.startswith("synthetic:") else {}
    dataset = load_labelled_source(spec, **options)
    if not spec.startswith("synthetic:"):  # generated images are always readable
        dataset, _ = drop_unreadable_images(dataset, source=spec)  # logs what it skipped
    return dataset


def keep_targets(dataset, *, drop: Sequence[str] = NON_TARGET_LABELS):
    """Drop rows labelled Neutral/Contempt/Other (or unlabelled); returns `(dataset, dropped Counter)`."""
    dataset, report = filter_targets(dataset, drop=drop)
    return dataset, Counter(report.dropped)


def split_by_kind(dataset, label_space: Sequence[str] = EMOTION_BASICS):
    """Split rows into (basic rows, compound rows) over `label_space`.

    Compound rows are every compound whose two constituents are in the label space, also
    compounds outside the evaluated set (RAF-DB's "Happily Disgusted" still teaches Happiness +
    Disgust). Any other label is an error naming the row (filter with `keep_targets` first).
    """
    space = set(label_space)
    basic_rows, compound_rows = [], []
    for index, label in enumerate(dataset["label"]):
        parts = constituents(label)
        if len(parts) == 1 and parts[0] in space:
            basic_rows.append(index)
        elif len(parts) == 2 and set(parts) <= space:
            compound_rows.append(index)
        else:
            raise ValueError(f"row {index}: label {label!r} is outside the label space {sorted(space)}")
    return dataset.select(basic_rows), dataset.select(compound_rows)


def keep_evaluated(dataset, compound_set_name: str = "abaw7", label_space: Sequence[str] = EMOTION_BASICS):
    """Keep rows the compound metric scores: basics of `label_space` and compounds of the set; returns (rows, dropped)."""
    allowed = set(label_space) | {c.name for c in compound_set(compound_set_name)}
    keep, dropped = [], Counter()
    for index, label in enumerate(dataset["label"]):
        name = parse_label(label)
        if name in allowed:
            keep.append(index)
        else:
            dropped[name] += 1
    return (dataset if not dropped else dataset.select(keep)), dropped



# ----------------------------------------------------------------------------- tensors


class ImageStore:
    """Random access to the resized images of a rows dataset, decoded once into memory when small.

    `cache="auto"` keeps a uint8 copy when it needs less than `max_cache_bytes` (forked
    DataLoader workers share it copy-on-write); otherwise each access decodes the row.
    """

    def __init__(self, rows, image_size: int, cache: str | bool = "auto", max_cache_bytes: int = 1 << 30):
        self.rows, self.image_size = rows, image_size
        if cache == "auto":
            cache = len(rows) * 3 * image_size * image_size <= max_cache_bytes
        self.cache = None
        if cache and len(rows):
            self.cache = torch.stack([image_to_uint8(image, image_size) for image in rows["image"]])

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> torch.Tensor:
        if self.cache is not None:
            return self.cache[index].float().div_(255.0)
        return image_to_tensor(self.rows[index]["image"], self.image_size)


class LabelledImageDataset(Dataset):
    """Evaluation samples: rows with `image` and `label` as collator items (multi-hot targets, no mixing)."""

    def __init__(self, rows, *, image_size: int, label_space: tuple[str, ...] = EMOTION_BASICS,
                 cache_images: str | bool = "auto"):
        self.rows = rows.select_columns(["image", "label"]) if hasattr(rows, "select_columns") else rows
        self.images = ImageStore(self.rows, image_size, cache_images)
        self.labels = [parse_label(label) for label in self.rows["label"]]
        self.targets = _label_index(self.labels, tuple(label_space))

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict:
        image = self.images[index]
        kind = NATURAL if self.targets[index].sum() > 1 else BASIC
        return {"image": image, "target": self.targets[index], "kind": kind, "stage": -1, "seed": index}


def _label_index(labels: list[str], label_space: tuple[str, ...]) -> list[torch.Tensor]:
    return [torch.tensor(multi_hot(label, label_space)) for label in labels]

