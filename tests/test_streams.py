"""Face streams and MAE transforms: sources, sharding over ranks and workers, epochs, bad images."""

import io
import logging
import tarfile
from collections import Counter

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image

from cer_hf.data.streams import (
    FaceStream, SourceSpec, check_shards, collate_faces, expand_braces, load_source, pretraining_stream, take,
)
from cer_hf.image_io import FACE_MEAN, normalization
from cer_hf.data.transforms import MAETrainTransform, SkipImage, decode_image, normalize_pixels, random_resized_crop_box


def png_bytes(size=(20, 16), mode="RGB", color=(200, 100, 50), fmt="PNG"):
    buffer = io.BytesIO()
    Image.new(mode, size, color).save(buffer, format=fmt)
    return buffer.getvalue()


def write_bad_folder(root):
    """One image of each awkward kind; returns the expected per-reason counts."""
    root.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (24, 24), (10, 200, 30)).save(root / "good.png")
    Image.new("L", (24, 24), 128).save(root / "gray.png")
    Image.new("RGBA", (24, 24), (10, 20, 30, 128)).save(root / "rgba.png")
    Image.new("CMYK", (24, 24), (0, 50, 100, 0)).save(root / "cmyk.jpg")
    Image.new("RGB", (24, 24), (90, 20, 30)).convert("P").save(root / "palette.png")
    Image.fromarray(np.full((24, 24), 40000, dtype=np.uint16)).save(root / "deep16.png")
    Image.new("RGB", (1, 1)).save(root / "tiny.png")
    (root / "corrupt.jpg").write_bytes(b"definitely not an image")
    rng = np.random.default_rng(0)
    noisy = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
    full = io.BytesIO()
    Image.fromarray(noisy).save(full, format="JPEG", quality=95)
    (root / "truncated.jpg").write_bytes(full.getvalue()[: len(full.getvalue()) // 2])
    return {
        "skipped:undecodable": 1, "skipped:truncated": 1, "skipped:too_small": 1,
        "converted:L": 1, "converted:RGBA": 1, "converted:CMYK": 1, "converted:P": 1, "converted:I;16": 1,
    }


# ----------------------------------------------------------------------------- specs and sources


def test_source_spec_parsing_and_errors(tmp_path):
    assert SourceSpec.parse("synthetic") == SourceSpec("synthetic", "")
    assert SourceSpec.parse("parquet:/a/*.parquet") == SourceSpec("parquet", "/a/*.parquet")
    assert SourceSpec.parse(str(tmp_path)) == SourceSpec("imagefolder", str(tmp_path))
    with pytest.raises(ValueError, match="needs a location"):
        SourceSpec.parse("parquet:")
    with pytest.raises(ValueError, match="expected one of"):
        SourceSpec.parse("ftp:/nowhere")
    with pytest.raises(FileNotFoundError, match="no files match"):
        load_source(f"webdataset:{tmp_path}/missing-{{000..003}}.tar")


def test_expand_braces():
    assert expand_braces("s-{000..002}.tar") == ["s-000.tar", "s-001.tar", "s-002.tar"]
    assert expand_braces("{a,b}/x-{8..10}") == ["a/x-8", "a/x-9", "a/x-10", "b/x-8", "b/x-9", "b/x-10"]
    assert expand_braces("plain.tar") == ["plain.tar"]


def test_local_sources_yield_every_image_once(tmp_path):
    folder = tmp_path / "faces"
    (folder / "sub").mkdir(parents=True)
    for i in range(3):
        Image.new("RGB", (10, 10)).save(folder / "sub" / f"{i}.png")
    (folder / "notes.txt").write_text("not an image")
    images = load_source(f"imagefolder:{folder}")
    assert images.num_shards == 3
    assert sorted(row["key"] for row in images) == ["sub/0.png", "sub/1.png", "sub/2.png"]

    for shard in range(2):  # two files, 2 row groups each (HF Image structs and raw bytes)
        structs = [{"bytes": png_bytes(), "path": f"{shard}-{i}.png"} for i in range(3)]
        column = pa.array(structs) if shard == 0 else pa.array([s["bytes"] for s in structs])
        pq.write_table(pa.table({"image": column, "label": ["x"] * 3}), tmp_path / f"p{shard}.parquet", row_group_size=2)
    table = load_source(f"parquet:{tmp_path}/p*.parquet")
    assert table.num_shards == 4
    rows = list(table)
    assert len(rows) == 6 and all(decode_image(row["image"])[0].size == (20, 16) for row in rows)
    with pytest.raises(ValueError, match="no column 'pixels'"):
        load_source(SourceSpec("parquet", str(tmp_path / "p0.parquet")), image_column="pixels")

    for shard in range(3):
        with tarfile.open(tmp_path / f"shard-{shard:03d}.tar", "w") as archive:
            for i in range(2):
                for name, data in ((f"s{shard}_{i}.jpg", png_bytes(fmt="JPEG")), (f"s{shard}_{i}.json", b"{}")):
                    info = tarfile.TarInfo(name)
                    info.size = len(data)
                    archive.addfile(info, io.BytesIO(data))
    shards = load_source(f"webdataset:{tmp_path}/shard-{{000..002}}.tar")
    assert shards.num_shards == 3
    assert sorted(row["key"] for row in shards) == sorted(f"shard-{s:03d}.tar/s{s}_{i}" for s in range(3) for i in range(2))


def test_synthetic_source_is_sharded_and_finite():
    stream = load_source("synthetic:20", synthetic_image_size=16, synthetic_shards=4)
    assert stream.num_shards == 4
    keys = [row["key"] for row in stream]
    assert sorted(keys) == sorted(f"synthetic/{i}" for i in range(20))


# ----------------------------------------------------------------------------- ranks, workers, epochs


def test_check_shards_divisibility(caplog):
    assert check_shards(16, 8) == "shards"
    with pytest.raises(ValueError, match="10 shards, not divisible by the world size 4"):
        check_shards(10, 4)
    with caplog.at_level(logging.WARNING):
        assert check_shards(10, 4, allow_uneven=True) == "examples"
        assert check_shards(8, 4, num_workers=4) == "shards"  # 2 shards per rank, 4 workers: 2 idle
    assert "falling back" in caplog.text and "workers will idle" in caplog.text


def test_pretraining_stream_rejects_uneven_shards():
    with pytest.raises(ValueError, match="source 'synthetic:12': the stream has 6 shards, not divisible by the world size 4"):
        pretraining_stream(["synthetic:12"], synthetic_shards=6, world_size=4, synthetic_image_size=16)


def test_ranks_and_workers_see_disjoint_samples_covering_the_epoch():
    """Two ranks × two DataLoader workers each: every sample exactly once per epoch; epochs reshuffle."""
    per_epoch = {}
    for epoch in range(2):
        seen = []
        for rank in range(2):
            stream = FaceStream(
                pretraining_stream(["synthetic:32"], seed=3, shuffle_buffer=8, rank=rank, world_size=2,
                                   num_workers=2, synthetic_image_size=16, synthetic_shards=8),
                MAETrainTransform(16, seed=3),
            )
            stream.set_epoch(epoch)
            loader = torch.utils.data.DataLoader(stream, batch_size=4, num_workers=2, collate_fn=collate_faces)
            seen.append([key for batch in loader for key in batch["keys"]])
        assert not set(seen[0]) & set(seen[1])
        assert sorted(seen[0] + seen[1], key=lambda k: int(k.split("/")[1])) == [f"synthetic/{i}" for i in range(32)]
        per_epoch[epoch] = seen[0]
    assert per_epoch[0] != per_epoch[1]  # reshuffled by set_epoch


def test_interleave_follows_probabilities(tmp_path):
    for name, n in (("a", 400), ("b", 400)):
        pq.write_table(pa.table({"image": pa.array([png_bytes((4, 4))] * n)}), tmp_path / f"{name}.parquet")
    stream = pretraining_stream(
        [f"parquet:{tmp_path}/a.parquet", f"parquet:{tmp_path}/b.parquet"], probabilities=[0.8, 0.2], seed=0,
        shuffle_buffer=0,
    )
    first = Counter(row["key"].split(".")[0] for row in take(iter(stream), 300))
    assert 0.72 < first["a"] / 300 < 0.88
    # Without replacement: an epoch holds each sample of each source exactly once.
    keys = [row["key"] for row in stream]
    assert len(keys) == 800 and len(set(keys)) == 800
    with pytest.raises(ValueError, match="sum to 1"):
        pretraining_stream([f"parquet:{tmp_path}/a.parquet"] * 2, probabilities=[0.5, 0.6])


# ----------------------------------------------------------------------------- transforms and bad images


def test_random_resized_crop_box_respects_scale_and_ratio():
    rng = np.random.default_rng(0)
    for _ in range(200):
        left, top, right, bottom = random_resized_crop_box(120, 90, rng)
        w, h = right - left, bottom - top
        assert 0 <= left < right <= 120 and 0 <= top < bottom <= 90
        assert 0.19 <= w * h / (120 * 90) <= 1.0
    assert random_resized_crop_box(1000, 10, rng, scale=(0.9, 1.0)) == (493, 0, 506, 10)  # fallback: centred, 4:3


def test_transform_is_seeded_by_key_and_epoch():
    transform = MAETrainTransform(16, seed=1)
    image = {"bytes": png_bytes((40, 30), color=(255, 0, 0)), "path": None}
    rng = np.random.default_rng(0)
    noisy = {"bytes": None, "path": None}
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (30, 40, 3), dtype=np.uint8)).save(buffer, format="PNG")
    noisy["bytes"] = buffer.getvalue()
    a, mode = transform(noisy, key="k", epoch=0)
    assert a.shape == (3, 16, 16) and a.dtype == torch.uint8 and mode is None
    assert torch.equal(a, transform(noisy, key="k", epoch=0)[0])
    assert not torch.equal(a, transform(noisy, key="k", epoch=1)[0])
    assert not torch.equal(a, transform(noisy, key="other", epoch=0)[0])
    red = normalize_pixels(transform(image, key="k")[0][None], *normalization("face"))
    assert torch.allclose(red[0, 0], torch.full((16, 16), (1 - FACE_MEAN[0]) / 0.297), atol=1e-4)
    with pytest.raises(ValueError, match="unknown normalization"):
        normalization("cifar")


def test_decode_image_reasons(tmp_path):
    expected = write_bad_folder(tmp_path)
    with pytest.raises(SkipImage, match="tiny.png: skipped \\(too_small: 1x1 < 8 px\\)"):
        decode_image(str(tmp_path / "tiny.png"), name=str(tmp_path / "tiny.png"))
    with pytest.raises(SkipImage) as caught:
        decode_image({"bytes": (tmp_path / "truncated.jpg").read_bytes(), "path": None})
    assert caught.value.reason == "truncated"
    with pytest.raises(SkipImage) as caught:
        decode_image({"bytes": None, "path": None})
    assert caught.value.reason == "missing"
    assert decode_image(str(tmp_path / "cmyk.jpg"))[1] == "CMYK" and expected


def test_stream_with_bad_images_completes_and_counts_by_reason(tmp_path):
    expected = write_bad_folder(tmp_path / "faces")
    stream = FaceStream(pretraining_stream([f"imagefolder:{tmp_path / 'faces'}"], shuffle_buffer=0), MAETrainTransform(16))
    loader = torch.utils.data.DataLoader(stream, batch_size=3, num_workers=2, collate_fn=collate_faces)
    batches = list(loader)
    counts = Counter()
    for batch in batches:
        counts.update(batch["counts"])
        assert batch["pixel_values"].dtype == torch.uint8
    assert sum(len(batch["keys"]) for batch in batches) == 6  # 9 files − 3 skipped
    assert dict(counts) == expected


def _faces_folder(root, count=22):
    root.mkdir()
    for index in range(count):
        Image.fromarray(np.full((20 + index % 5, 18, 3), index * 11 % 256, dtype=np.uint8)).save(root / f"{index:03d}.png")
    return root


@pytest.mark.parametrize("source", ["imagefolder", "synthetic"])
def test_persistent_and_primed_workers_give_the_batches_fresh_workers_give(tmp_path, source):
    """Workers kept alive across passes (`persistent_workers=True`) and a second loader priming the next pass
    (`next_stream`) see every new epoch (shuffle and augmentation) and yield, pass after pass and when resuming
    mid-epoch, exactly the batches a new DataLoader per pass yields."""
    from cer_hf.pretraining import epoch_batches

    spec = f"imagefolder:{_faces_folder(tmp_path / 'faces')}" if source == "imagefolder" else "synthetic:22"

    def make_stream():
        return FaceStream(pretraining_stream([spec], seed=1, shuffle_buffer=6, num_workers=2, synthetic_image_size=20,
                                             synthetic_shards=4), MAETrainTransform(16, seed=1))

    def run(persistent, primed=False, epoch=0, skip=0, count=15):
        def make_loader(dataset):
            return torch.utils.data.DataLoader(dataset, batch_size=4, num_workers=2, collate_fn=collate_faces,
                                               persistent_workers=persistent)

        batches = epoch_batches(make_stream(), make_loader, epoch=epoch, skip_batches=skip,
                                next_stream=make_stream() if primed else None)
        result = [(e, i, b["keys"], b["pixel_values"]) for e, i, b in take(batches, count)]
        batches.close()
        return result

    def same(a, b):
        return [r[:3] for r in a] == [r[:3] for r in b] and all(torch.equal(x[3], y[3]) for x, y in zip(a, b))

    fresh = run(False)
    assert {r[0] for r in fresh} == {0, 1, 2}  # three passes (6 batches of 22 images with 2 workers)
    assert [r[2] for r in fresh if r[0] == 0] != [r[2] for r in fresh if r[0] == 1]  # reshuffled
    for persistent, primed in ((True, False), (False, True), (True, True)):
        assert same(run(persistent, primed), fresh), (persistent, primed)
        resumed = run(persistent, primed, epoch=1, skip=2, count=5)
        start = next(n for n, r in enumerate(fresh) if r[:2] == (1, 2))
        assert same(resumed, fresh[start:start + 5]), ("resumed", persistent, primed)
