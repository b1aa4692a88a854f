"""Tests for the procedural synthetic face generator (tiny images, fast)."""

from __future__ import annotations

import collections
import itertools

import numpy as np
import pytest
from datasets.distributed import split_dataset_by_node
from PIL import Image

from cer_hf.data.synthetic import (
    AU_NAMES,
    contact_sheet,
    expression_aus,
    expression_classes,
    render_face,
    synthetic_dataset,
    synthetic_sample,
    synthetic_stream,
    synthetic_video,
    valence_arousal,
)
from cer_hf.taxonomy import BASIC_EXPRESSIONS, COMPOUND_SETS, EMOTION_BASICS, constituents

SIZE = 32
ALL_COMPOUNDS = sorted({c.name for cs in COMPOUND_SETS.values() for c in cs})


def _pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.float32)


def test_au_names_order():
    assert AU_NAMES == ("AU1", "AU2", "AU4", "AU6", "AU7", "AU10", "AU12", "AU15",
                        "AU23", "AU24", "AU25", "AU26")


def test_basic_prototypes_follow_emfacs():
    assert {"AU6", "AU12"} <= set(expression_aus("happy"))
    assert {"AU1", "AU4", "AU15"} <= set(expression_aus("Sadness"))
    assert {"AU1", "AU2", "AU5", "AU26"} <= set(expression_aus("surprised"))
    assert {"AU4", "AU5", "AU7", "AU23"} <= set(expression_aus("Anger"))
    assert {"AU9", "AU15", "AU16"} <= set(expression_aus("Disgust"))
    assert {"AU1", "AU2", "AU4", "AU5", "AU7", "AU20", "AU26"} <= set(expression_aus("Fear"))
    assert expression_aus("Neutral") == {}
    with pytest.raises(ValueError):
        expression_aus("Other")


@pytest.mark.parametrize("name", ALL_COMPOUNDS)
def test_compounds_carry_cues_of_both_constituents(name):
    aus = expression_aus(name)
    assert all(0.0 < v <= 1.0 for v in aus.values())
    for basic in constituents(name):
        shared = (set(aus) & set(expression_aus(basic))) - {"AU25"}
        assert shared, f"{name} has no cue of {basic}"


def test_du_et_al_prototypes_included():
    assert {"AU1", "AU2", "AU12", "AU25"} <= set(expression_aus("Happily Surprised"))
    assert {"AU4", "AU10", "AU17"} <= set(expression_aus("Angrily Disgusted"))
    assert {"AU1", "AU4", "AU20", "AU25"} <= set(expression_aus("Sadly Fearful"))


def test_sample_is_deterministic_and_seed_dependent():
    a = synthetic_sample(5, seed=3, image_size=SIZE)
    b = synthetic_sample(5, seed=3, image_size=SIZE)
    c = synthetic_sample(5, seed=4, image_size=SIZE)
    d = synthetic_sample(6, seed=3, image_size=SIZE)
    assert a["image"].tobytes() == b["image"].tobytes()
    assert a["aus"] == b["aus"] and a["label"] == b["label"]
    assert a["image"].tobytes() != c["image"].tobytes()
    assert a["image"].tobytes() != d["image"].tobytes()


def test_row_schema_and_ranges():
    for i in range(14):
        row = synthetic_sample(i, image_size=SIZE, labels=[*BASIC_EXPRESSIONS, "Sadly Angry"])
        assert set(row) == {"image", "label", "aus", "valence", "arousal", "sample_id"}
        assert isinstance(row["image"], Image.Image) and row["image"].mode == "RGB"
        assert row["image"].size == (SIZE, SIZE)
        assert row["sample_id"] == i
        assert len(row["aus"]) == 12 and all(0.0 <= v <= 1.0 for v in row["aus"])
        assert -1.0 <= row["valence"] <= 1.0 and -1.0 <= row["arousal"] <= 1.0
        if row["label"] == "Neutral":
            assert row["valence"] == 0.0 and row["arousal"] == 0.0
    happy = next(synthetic_sample(i, image_size=SIZE) for i in range(12)
                 if synthetic_sample(i, image_size=SIZE)["label"] == "Happiness")
    assert happy["valence"] > 0.3 and happy["aus"][AU_NAMES.index("AU12")] > 0.4


def test_valence_arousal_mapping():
    assert valence_arousal("Happiness")[0] > 0.5
    assert valence_arousal("Sadness")[1] < 0
    v, a = valence_arousal("Sadly Angry", 0.5)
    assert v == pytest.approx(0.5 * np.mean([valence_arousal("Sadness")[0], valence_arousal("Anger")[0]]))


@pytest.mark.parametrize("kind,neutral,expected", [
    ("basic", False, set(EMOTION_BASICS)),
    ("basic", True, set(BASIC_EXPRESSIONS)),
    ("compound", False, {c.name for c in COMPOUND_SETS["abaw7"]}),
    ("all", False, set(EMOTION_BASICS) | {c.name for c in COMPOUND_SETS["abaw7"]}),
])
def test_dataset_label_balance_by_kind(kind, neutral, expected):
    n = 2 * len(expected)
    ds = synthetic_dataset(n, kind=kind, include_neutral=neutral, image_size=SIZE, seed=1)
    assert len(ds) == n
    assert ds.column_names == ["image", "label", "aus", "valence", "arousal", "sample_id"]
    counts = collections.Counter(ds["label"])
    assert set(counts) == expected and set(counts.values()) == {2}
    if not neutral:
        assert "Neutral" not in counts
    row = ds[3]
    assert isinstance(row["image"], Image.Image) and row["image"].mode == "RGB"
    assert row["sample_id"] == 3
    direct = synthetic_sample(3, seed=1, image_size=SIZE, labels=_classes(kind, neutral))
    assert row["label"] == direct["label"]
    assert np.array_equal(_pixels(row["image"]), _pixels(direct["image"]))


def _classes(kind, neutral):
    return expression_classes(kind, "abaw7", neutral)


def test_rafdb_compound_set():
    ds = synthetic_dataset(11, kind="compound", compound_set="rafdb", image_size=SIZE)
    assert set(ds["label"]) == {c.name for c in COMPOUND_SETS["rafdb"]}


def test_stream_shards_are_disjoint_and_cover_indices():
    n, shards = 23, 4
    stream = synthetic_stream(num_samples=n, num_shards=shards, image_size=SIZE)
    assert stream.n_shards == shards
    seen = []
    for rank in range(shards):
        part = split_dataset_by_node(stream, rank=rank, world_size=shards)
        ids = [row["sample_id"] for row in part]
        assert all(i % shards == rank for i in ids)
        seen.extend(ids)
    assert sorted(seen) == list(range(n))
    row = next(iter(stream))
    assert isinstance(row["image"], Image.Image) and row["image"].mode == "RGB"
    assert np.array_equal(_pixels(row["image"]), _pixels(synthetic_sample(row["sample_id"], image_size=SIZE)["image"]))


def test_stream_default_shards_shuffle_and_epochs():
    stream = synthetic_stream(num_samples=40, image_size=SIZE)
    assert stream.n_shards == 16
    shuffled = stream.shuffle(seed=0, buffer_size=8)
    shuffled.set_epoch(0)
    first = [row["sample_id"] for row in shuffled]
    shuffled.set_epoch(1)
    second = [row["sample_id"] for row in shuffled]
    assert sorted(first) == sorted(second) == list(range(40))
    assert first != second


def test_infinite_stream_keeps_yielding():
    stream = synthetic_stream(num_shards=2, image_size=SIZE)
    ids = [row["sample_id"] for row in itertools.islice(stream, 30)]
    assert len(ids) == 30 and len(set(ids)) == 30


def _region_changes(label: str, seed: int, size: int = 64) -> tuple[float, float, float]:
    """Mean |expression - neutral| in the mouth, brow and background-corner regions."""
    neutral = _pixels(render_face({}, image_size=size, rng=np.random.default_rng(seed)))
    img = _pixels(render_face(expression_aus(label), image_size=size, rng=np.random.default_rng(seed)))
    diff = np.abs(img - neutral).mean(axis=2)
    mouth = diff[int(0.6 * size):int(0.85 * size), int(0.3 * size):int(0.7 * size)].mean()
    brows = diff[int(0.2 * size):int(0.45 * size), int(0.25 * size):int(0.75 * size)].mean()
    return float(mouth), float(brows), float(diff[:6, :6].mean())


@pytest.mark.parametrize("label,moves_mouth,moves_brows", [
    ("Happiness", True, False),
    ("Surprise", True, True),
    ("Fear", True, True),
    ("Disgust", True, False),
    ("Anger", False, True),
    ("Sadness", False, True),
])
def test_expressions_move_mouth_and_brows(label, moves_mouth, moves_brows):
    """Same identity, pose and noise: only the face parts that the AUs drive change."""
    for seed in (7, 8):
        mouth, brows, corner = _region_changes(label, seed)
        assert corner < 1.0, label
        if moves_mouth:
            assert mouth > 4.0, (label, mouth)
        if moves_brows:
            assert brows > 2.0, (label, brows)


def test_expression_changes_are_consistent_and_distinct_across_identities():
    """Per-class mean (expression - neutral) maps agree between two halves of the
    identities, and agree with their own class more than with any other class."""
    maps = {}
    for label in EMOTION_BASICS:
        diffs = []
        for j in range(24):
            rng_seed = [9, j]
            neutral = _pixels(render_face({}, image_size=SIZE, rng=np.random.default_rng(rng_seed)))
            img = _pixels(render_face(expression_aus(label), image_size=SIZE, rng=np.random.default_rng(rng_seed)))
            diffs.append((img - neutral).mean(axis=2).ravel())
        diffs = np.array(diffs)
        maps[label] = (diffs[::2].mean(axis=0), diffs[1::2].mean(axis=0))
    for label, (a, b) in maps.items():
        own = np.corrcoef(a, b)[0, 1]
        assert own > 0.5, (label, own)
        for other, (c, _) in maps.items():
            if other != label:
                assert np.corrcoef(c, b)[0, 1] < own, (label, other)


def test_video_is_smooth_with_fixed_identity():
    frames = synthetic_video(40, seed=1, image_size=SIZE, segment_frames=(8, 12))
    assert len(frames) == 40
    assert [f["frame"] for f in frames] == list(range(40))
    assert len({f["label"] for f in frames}) >= 2
    for f in frames:
        assert set(f) >= {"image", "label", "aus", "valence", "arousal", "sample_id", "frame"}
        assert len(f["aus"]) == 12 and all(0.0 <= v <= 1.0 for v in f["aus"])
    aus = np.array([f["aus"] for f in frames])
    assert np.abs(np.diff(aus, axis=0)).max() < 0.5
    again = synthetic_video(40, seed=1, image_size=SIZE, segment_frames=(8, 12))
    assert frames[17]["image"].tobytes() == again[17]["image"].tobytes()


def test_contact_sheet_grid():
    sheet = contact_sheet(["Happiness", "Sadness", "Sadly Angry"], columns=2, image_size=SIZE)
    assert sheet.mode == "RGB"
    assert sheet.size[0] == 2 * SIZE and sheet.size[1] > 2 * SIZE
    rows = [synthetic_sample(i, image_size=SIZE) for i in range(3)]
    assert contact_sheet(rows).size[0] == 3 * SIZE
