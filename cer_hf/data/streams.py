"""Streamed face sources for pretraining: image folders, parquet, webdataset tars, Hub datasets, synthetic.

Every source becomes a `datasets.IterableDataset` with two columns, `image` (`datasets.Image(decode=False)`:
encoded bytes or a path, decoded later in a DataLoader worker so a bad file is counted, not fatal) and
`key` (a string naming the sample, unique within its source). Sources are written as spec strings:

    synthetic                       the embedded face generator, endless
    synthetic:5000                  ... 5000 samples per epoch
    synthetic:5000:realistic        ... in the realistic style (subtle expressions, wide variation)
    synthetic:realistic             ... endless, realistic
    imagefolder:/data/faces         every image file below the folder (one shard per file)
    parquet:/data/faces/*.parquet   an `image` column (HF Image struct or raw bytes); one shard per row group
    webdataset:/data/shards-{000..009}.tar   tar shards with jpg/png/... members (brace ranges and globs)
    hub:org/name                    `datasets.load_dataset(..., streaming=True)`; needs the network

    stream = pretraining_stream(["imagefolder:/a", "hub:org/b"], probabilities=[0.3, 0.7], seed=0,
                                rank=rank, world_size=world_size)

`pretraining_stream` interleaves the sources (without replacement: no sample twice per epoch),
shuffles (shard order + a buffer, fixed seed; call `set_epoch` to reshuffle) and splits the shards
across ranks with `split_dataset_by_node`; DataLoader workers then split a rank's shards again.
`FaceStream` wraps it for a `torch.utils.data.DataLoader`: it decodes and augments in the workers,
skips bad images and carries the per-reason counts with the batches (see `collate_faces`).
"""

from __future__ import annotations

import glob
import itertools
import logging
import os
import re
import tarfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import datasets
import torch
from datasets.distributed import split_dataset_by_node

from cer_hf.image_io import IMAGE_EXTENSIONS
from cer_hf.data.synthetic import STYLES, synthetic_stream
from cer_hf.data.transforms import SkipImage

logger = logging.getLogger(__name__)

SOURCE_KINDS = ("synthetic", "imagefolder", "parquet", "webdataset", "hub")
FEATURES = datasets.Features({"image": datasets.Image(decode=False), "key": datasets.Value("string")})


@dataclass(frozen=True)
class SourceSpec:
    """A parsed source spec: `kind` (one of SOURCE_KINDS) and its `location` (path, pattern, id or count)."""

    kind: str
    location: str = ""

    @classmethod
    def parse(cls, spec: str) -> "SourceSpec":
        """Parse "kind:location" (or bare "synthetic"); a bare existing folder means imagefolder."""
        kind, sep, location = spec.partition(":")
        if kind in SOURCE_KINDS:
            if kind != "synthetic" and not location:
                raise ValueError(f"source {spec!r}: {kind} needs a location, e.g. {kind}:/path")
            return cls(kind, location)
        if os.path.isdir(spec):
            return cls("imagefolder", spec)
        raise ValueError(f"source {spec!r}: expected one of {', '.join(k + ':...' for k in SOURCE_KINDS)}")


def expand_braces(pattern: str) -> list[str]:
    """Expand webdataset-style braces: "a-{000..002}.tar" → a-000.tar, a-001.tar, a-002.tar; "{x,y}" too."""
    match = re.search(r"\{([^{}]*)\}", pattern)
    if not match:
        return [pattern]
    body = match.group(1)
    head, tail = pattern[: match.start()], pattern[match.end() :]
    numeric = re.fullmatch(r"(\d+)\.\.(\d+)", body)
    if numeric:
        first, last = numeric.groups()
        width = len(first) if first.startswith("0") else 0
        options = [str(i).zfill(width) for i in range(int(first), int(last) + 1)]
    else:
        options = body.split(",")
    return [expanded for option in options for expanded in expand_braces(head + option + tail)]


def resolve_files(pattern: str, *, what: str) -> list[str]:
    """Sorted files matching a path, glob or brace pattern; a clear error when nothing matches."""
    files = []
    for expanded in expand_braces(pattern):
        matches = sorted(glob.glob(expanded)) if glob.has_magic(expanded) else [expanded]
        files.extend(path for path in matches if os.path.isfile(path))
    if not files:
        raise FileNotFoundError(f"{what} source {pattern!r}: no files match")
    return files


# ----------------------------------------------------------------------------- generators (one shard per list item)


def _imagefolder_rows(files: list[str], root: str):
    for path in files:
        yield {"image": {"bytes": None, "path": path}, "key": os.path.relpath(path, root)}


def _parquet_rows(pieces: list[str], image_column: str):
    import pyarrow.parquet as pq

    for piece in pieces:
        path, _, group = piece.rpartition("::")
        table = pq.ParquetFile(path).read_row_group(int(group), columns=[image_column])
        for row, value in enumerate(table.column(image_column).to_pylist()):
            if isinstance(value, dict):
                image = {"bytes": value.get("bytes"), "path": value.get("path")}
            else:
                image = {"bytes": value, "path": None}
            yield {"image": image, "key": f"{os.path.basename(path)}/{group}/{row}"}


def _tar_rows(shards: list[str]):
    for shard in shards:
        name = os.path.basename(shard)
        try:
            with tarfile.open(shard, mode="r|*") as archive:
                for member in archive:
                    if not member.isfile() or not member.name.lower().endswith(IMAGE_EXTENSIONS):
                        continue
                    data = archive.extractfile(member).read()
                    key = os.path.splitext(member.name)[0]
                    yield {"image": {"bytes": data, "path": None}, "key": f"{name}/{key}"}
        except (tarfile.TarError, OSError, EOFError) as error:
            # A damaged shard ends early: its remaining members are lost, the run goes on.
            logger.warning("webdataset shard %s: stopped reading (%s: %s)", shard, type(error).__name__, error)


# ----------------------------------------------------------------------------- sources


def imagefolder_source(root: str) -> datasets.IterableDataset:
    """Every image file below `root` (sorted; one shard per file)."""
    if not os.path.isdir(root):
        raise FileNotFoundError(f"imagefolder source {root!r}: not a folder")
    files = sorted(
        str(path) for path in Path(root).rglob("*") if path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS
    )
    if not files:
        raise FileNotFoundError(f"imagefolder source {root!r}: no image files ({', '.join(IMAGE_EXTENSIONS)})")
    return datasets.IterableDataset.from_generator(
        _imagefolder_rows, features=FEATURES, gen_kwargs={"files": files, "root": root}
    )


def parquet_source(pattern: str, image_column: str = "image") -> datasets.IterableDataset:
    """Parquet file(s) with an image column (HF Image struct or raw bytes); one shard per row group."""
    import pyarrow.parquet as pq

    pieces = []
    for path in resolve_files(pattern, what="parquet"):
        meta = pq.ParquetFile(path)
        if image_column not in meta.schema_arrow.names:
            raise ValueError(f"parquet source {path}: no column {image_column!r} (has {meta.schema_arrow.names})")
        pieces.extend(f"{path}::{group}" for group in range(meta.num_row_groups))
    return datasets.IterableDataset.from_generator(
        _parquet_rows, features=FEATURES, gen_kwargs={"pieces": pieces, "image_column": image_column}
    )


def webdataset_source(pattern: str) -> datasets.IterableDataset:
    """Webdataset-style tar shards (image members; brace ranges and globs); one shard per tar."""
    return datasets.IterableDataset.from_generator(
        _tar_rows, features=FEATURES, gen_kwargs={"shards": resolve_files(pattern, what="webdataset")}
    )


def hub_source(repo_id: str, split: str = "train", image_column: str | None = None) -> datasets.IterableDataset:
    """A Hub dataset, streamed; its (first) Image column becomes `image`. Needs network access."""
    dataset = datasets.load_dataset(repo_id, split=split, streaming=True)
    features = dataset.features or {}
    if image_column is None:
        image_columns = [name for name, feature in features.items() if isinstance(feature, datasets.Image)]
        if not image_columns:
            raise ValueError(f"hub source {repo_id!r}: no Image column in {list(features)}")
        image_column = image_columns[0]
    dataset = dataset.select_columns([image_column]).cast_column(image_column, datasets.Image(decode=False))
    if image_column != "image":
        dataset = dataset.rename_column(image_column, "image")
    return dataset.map(
        lambda row, index: {"key": f"{repo_id}/{row['image'].get('path') or index}"},
        with_indices=True,
        features=FEATURES,
    )


def _synthetic_key(row):
    return {"key": f"synthetic/{row['sample_id']}"}


def synthetic_source(
    num_samples: int | None = None, *, image_size: int = 112, seed: int = 0, num_shards: int = 16,
    style: str = "cartoon",
) -> datasets.IterableDataset:
    """The embedded synthetic face generator (`cer_hf.data.synthetic`); endless when num_samples is None."""
    stream = synthetic_stream(
        num_samples=num_samples, kind="all", include_neutral=True, image_size=image_size, seed=seed,
        num_shards=num_shards, style=style,
    )
    return (
        stream.select_columns(["image", "sample_id"])
        .cast_column("image", datasets.Image(decode=False))
        .map(_synthetic_key, remove_columns=["sample_id"], features=FEATURES)
    )


def load_source(
    spec: str | SourceSpec, *, seed: int = 0, synthetic_image_size: int = 112, synthetic_shards: int = 16,
    image_column: str = "image",
) -> datasets.IterableDataset:
    """One source spec → an `IterableDataset` with columns image (undecoded) and key."""
    spec = SourceSpec.parse(spec) if isinstance(spec, str) else spec
    if spec.kind == "synthetic":
        parts = [part for part in (spec.location or "").split(":") if part]
        style = parts.pop() if parts and parts[-1] in STYLES else "cartoon"
        if len(parts) > 1 or (parts and not parts[0].isdigit()):
            raise ValueError(f"synthetic stream spec must be 'synthetic[:<count>][:{'|'.join(STYLES)}]', "
                             f"not 'synthetic:{spec.location}'")
        count = int(parts[0]) if parts else None
        return synthetic_source(count, image_size=synthetic_image_size, seed=seed, num_shards=synthetic_shards,
                                style=style)
    if spec.kind == "imagefolder":
        return imagefolder_source(spec.location)
    if spec.kind == "parquet":
        return parquet_source(spec.location, image_column)
    if spec.kind == "webdataset":
        return webdataset_source(spec.location)
    return hub_source(spec.location)


# ----------------------------------------------------------------------------- combine, shuffle, split


def check_shards(num_shards: int, world_size: int, num_workers: int = 0, *, allow_uneven: bool = False) -> str:
    """Check that a stream's shards split evenly over ranks; returns the split strategy ("shards"/"examples").

    With num_shards % world_size != 0, `split_dataset_by_node` can only keep every world_size-th
    example, so every rank reads (and downloads) every shard: raise unless `allow_uneven`, then warn.
    """
    if num_shards % world_size == 0:
        per_rank = num_shards // world_size
        if num_workers > per_rank:
            logger.warning(
                "%d shards per rank but %d dataloader workers: %d workers will idle; use more shards or fewer workers",
                per_rank, num_workers, num_workers - per_rank,
            )
        return "shards"
    message = (
        f"the stream has {num_shards} shards, not divisible by the world size {world_size}: each rank would read "
        f"every shard and keep 1 example in {world_size}. Reshard the data (e.g. {world_size * max(1, num_shards // world_size)} "
        f"or {world_size * (num_shards // world_size + 1)} shards)"
    )
    if not allow_uneven:
        raise ValueError(message + ", or pass allow_uneven_shards to accept the slower example-wise split")
    logger.warning(message + "; falling back to the example-wise split")
    return "examples"


def pretraining_stream(
    sources: list[str],
    *,
    probabilities: list[float] | None = None,
    seed: int = 0,
    shuffle_buffer: int = 1000,
    rank: int = 0,
    world_size: int = 1,
    num_workers: int = 0,
    allow_uneven_shards: bool = False,
    synthetic_image_size: int = 112,
    synthetic_shards: int = 16,
) -> datasets.IterableDataset:
    """Load, interleave, shuffle and split the sources for one rank. Call `set_epoch(e)` to reshuffle.

    Several sources are interleaved with `probabilities` (default: uniform) without replacement, so
    an epoch visits each sample of each source once. The shard order and shuffle buffer use `seed`
    (the same on every rank, as `split_dataset_by_node` requires) combined with the epoch.
    """
    if not sources:
        raise ValueError("no sources given")
    loaded = [
        load_source(spec, seed=seed, synthetic_image_size=synthetic_image_size, synthetic_shards=synthetic_shards)
        for spec in sources
    ]
    if len(loaded) == 1:
        if probabilities not in (None, [], [1.0]) and len(probabilities) != 1:
            raise ValueError(f"{len(probabilities)} probabilities for 1 source")
        stream = loaded[0]
    else:
        if probabilities is not None:
            if len(probabilities) != len(sources):
                raise ValueError(f"{len(probabilities)} probabilities for {len(sources)} sources")
            if any(p < 0 for p in probabilities) or abs(sum(probabilities) - 1.0) > 1e-6:
                raise ValueError(f"source probabilities must be >= 0 and sum to 1, got {probabilities}")
        stream = datasets.interleave_datasets(
            loaded, probabilities=probabilities, seed=seed, stopping_strategy="all_exhausted_without_replacement"
        )
    if shuffle_buffer > 0:
        stream = stream.shuffle(seed=seed, buffer_size=shuffle_buffer)
    if world_size > 1:
        for spec, source in zip(sources, loaded):  # interleaving splits every source by itself
            try:
                check_shards(source.num_shards, world_size, allow_uneven=allow_uneven_shards)
            except ValueError as error:
                raise ValueError(f"source {spec!r}: {error}") from None
        strategy = check_shards(stream.num_shards, world_size, num_workers, allow_uneven=allow_uneven_shards)
        stream = split_dataset_by_node(stream, rank=rank, world_size=world_size, strategy=strategy)
    elif num_workers > stream.num_shards:
        check_shards(stream.num_shards, 1, num_workers)
    return stream


# ----------------------------------------------------------------------------- torch side


class FaceStream(torch.utils.data.IterableDataset):
    """A rank's stream, decoded and augmented in DataLoader workers; bad images are skipped and counted.

    Yields {"pixel_values": uint8 (3, S, S), "key": str, "counts": {"skipped:<reason>" | "converted:<mode>": n}}.
    Each skipped file is logged by key (its path within the source) with the reason, as a warning in
    epoch 0 and at debug level in later epochs.
    The counts of the images dropped or converted since the previous yielded sample travel with the
    next one (the last sample of a worker carries the tail), so `collate_faces` can sum them per batch
    and nothing is lost between worker processes and the training loop.
    """

    def __init__(self, dataset: datasets.IterableDataset, transform):
        super().__init__()
        self.dataset = dataset
        self.transform = transform
        # In shared memory, like `datasets.IterableDataset`'s own epoch: DataLoader workers that persist across
        # passes (`persistent_workers=True`) hold a copy of this object made when they started, and must still
        # see the epoch the training loop sets before each pass.
        self._epoch = torch.zeros((), dtype=torch.int64).share_memory_()

    @property
    def epoch(self) -> int:
        return int(self._epoch)

    def set_epoch(self, epoch: int) -> None:
        """Reshuffle for `epoch` (and re-draw augmentations); call before creating the DataLoader iterator.

        Reaches workers that persist across passes too (both epochs live in shared memory).
        """
        self._epoch.fill_(epoch)
        self.dataset.set_epoch(epoch)

    def __iter__(self):
        pending: Counter = Counter()
        held = None
        epoch = self.epoch  # read once per pass, in the worker
        for row in self.dataset:
            try:
                pixels, converted_from = self.transform(row["image"], key=row["key"], epoch=epoch)
            except SkipImage as skip:
                pending[f"skipped:{skip.reason}"] += 1
                # Named once, in the first pass; later passes only count it (a bad file is met every epoch).
                (logger.warning if epoch == 0 else logger.debug)("%s", skip)
                continue
            if converted_from:
                pending[f"converted:{converted_from}"] += 1
            if held is not None:
                yield held
            held = {"pixel_values": pixels, "key": row["key"], "counts": dict(pending)}
            pending.clear()
        if held is not None:
            held["counts"] = dict(Counter(held["counts"]) + pending)
            yield held
        elif pending:
            logger.warning("a stream part yielded no usable image; dropped counts %s", dict(pending))


def collate_faces(samples: list[dict]) -> dict:
    """Stack a list of `FaceStream` samples: pixel_values (B, 3, S, S) uint8, keys, summed counts."""
    counts: Counter = Counter()
    for sample in samples:
        counts.update(sample["counts"])
    return {
        "pixel_values": torch.stack([sample["pixel_values"] for sample in samples]),
        "keys": [sample["key"] for sample in samples],
        "counts": dict(counts),
    }


def single_threaded_worker(worker_id: int) -> None:
    """DataLoader `worker_init_fn`: one torch thread per worker, so decoding workers do not oversubscribe the CPU."""
    torch.set_num_threads(1)


def take(iterable, n: int) -> list:
    """The first n items of an iterable (a small helper for tests and previews)."""
    return list(itertools.islice(iterable, n))
