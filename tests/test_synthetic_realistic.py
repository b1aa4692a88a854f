"""Tests for the realistic style, the identity pools and benchmarks/make_small_data.py (tiny, fast)."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from cer_hf.data import synthetic
from cer_hf.data.synthetic import (
    identity_params,
    render_face,
    synthetic_dataset,
    synthetic_sample,
    synthetic_video,
)
from cer_hf.taxonomy import BASIC_EXPRESSIONS, compound_set, parse_label

SIZE = 24
ROOT = Path(__file__).resolve().parents[1]


def _sha(image) -> str:
    return hashlib.sha256(image.tobytes()).hexdigest()


# Computed with the code before the realistic style existed: the default must not move.
@pytest.mark.parametrize("index, seed, label, digest", [
    (3, 0, "Fear", "1716ccb0a32277330c56472779e21204551f93ac01ab8ae4f7d86d44ca6c76cd"),
    (11, 5, "Disgust", "ad1683456d0d6386fa189b4a908b9120a1882bce38b0b0d49f2ec8b19062378e"),
])
def test_cartoon_default_is_unchanged(index, seed, label, digest):
    row = synthetic_sample(index, seed=seed, image_size=SIZE)
    assert row["label"] == label
    assert _sha(row["image"]) == digest
    assert "identity" not in row
    assert _sha(synthetic_sample(index, seed=seed, image_size=SIZE, style="cartoon")["image"]) == digest


def test_realistic_is_deterministic_and_differs():
    a = synthetic_sample(4, seed=2, image_size=SIZE, style="realistic")
    b = synthetic_sample(4, seed=2, image_size=SIZE, style="realistic")
    assert _sha(a["image"]) == _sha(b["image"]) and a["aus"] == b["aus"] and a["label"] == b["label"]
    assert _sha(a["image"]) != _sha(synthetic_sample(5, seed=2, image_size=SIZE, style="realistic")["image"])
    assert _sha(a["image"]) != _sha(synthetic_sample(4, seed=3, image_size=SIZE, style="realistic")["image"])
    assert _sha(a["image"]) != _sha(synthetic_sample(4, seed=2, image_size=SIZE)["image"])
    assert a["image"].size == (SIZE, SIZE) and a["image"].mode == "RGB"


def test_realistic_is_subtler_than_cartoon():
    def strength(style):
        rows = [synthetic_sample(i, image_size=SIZE, labels=["Happiness"], style=style) for i in range(20)]
        return np.mean([r["aus"][synthetic.AU_NAMES.index("AU12")] for r in rows])
    assert strength("realistic") < strength("cartoon")


def test_unknown_style_and_bad_identities_raise():
    with pytest.raises(ValueError, match="style"):
        synthetic_sample(0, image_size=SIZE, style="anime")
    with pytest.raises(ValueError, match="identities"):
        synthetic_sample(0, image_size=SIZE, identities=(5, 5))


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(repr(a[k]) == repr(b[k]) for k in a)


@pytest.mark.parametrize("style", ["cartoon", "realistic"])
def test_identity_params_are_fixed_per_id(style):
    assert _same(identity_params(7, seed=1, style=style), identity_params(7, seed=1, style=style))
    assert not _same(identity_params(7, seed=1, style=style), identity_params(8, seed=1, style=style))
    assert not _same(identity_params(7, seed=1, style=style), identity_params(7, seed=2, style=style))


@pytest.mark.parametrize("style", ["cartoon", "realistic"])
def test_identity_pools_set_the_face(style, monkeypatch):
    """Every sample of a one-person pool is drawn with that person's face (fails if pools are ignored)."""
    seen = []
    render = synthetic._render

    def spy(aus, identity, pose, *args, **kwargs):
        seen.append(identity)
        return render(aus, identity, pose, *args, **kwargs)

    monkeypatch.setattr(synthetic, "_render", spy)
    person = identity_params(7, seed=0, style=style)
    rows = [synthetic_sample(i, image_size=SIZE, style=style, identities=(7, 8),
                             labels=BASIC_EXPRESSIONS) for i in range(7)]
    assert [r["identity"] for r in rows] == [7] * 7
    assert len({r["label"] for r in rows}) == 7  # several expressions of one person
    assert all(_same({k: idt[k] for k in person}, person) for idt in seen)
    assert len({repr(idt.get("bg_a", idt.get("bg_array"))) for idt in seen}) > 1  # scenes still vary

    seen.clear()
    for i in range(7):
        synthetic_sample(i, image_size=SIZE, style=style)
    assert sum(_same({k: idt[k] for k in person}, person) for idt in seen) == 0


def test_disjoint_pools_give_disjoint_people():
    train = {synthetic_sample(i, image_size=8, style="realistic", identities=(0, 5))["identity"] for i in range(30)}
    test = {synthetic_sample(i, image_size=8, style="realistic", identities=(5, 9))["identity"] for i in range(30)}
    assert train <= set(range(5)) and test <= set(range(5, 9))
    assert len(train) > 1 and len(test) > 1


def test_dataset_video_and_render_face_take_the_keywords():
    ds = synthetic_dataset(4, kind="compound", image_size=16, style="realistic", identities=(3, 5))
    assert set(ds["identity"]) <= {3, 4} and "identity" in ds.features
    assert "identity" not in synthetic_dataset(2, image_size=16).features
    rows = synthetic_video(3, image_size=16, style="realistic", identities=(2, 3), segment_frames=(2, 2))
    assert [r["frame"] for r in rows] == [0, 1, 2] and {r["identity"] for r in rows} == {2}
    image = render_face({"AU12": 0.5}, image_size=16, rng=np.random.default_rng(0), style="realistic",
                        person=identity_params(1, style="realistic"))
    assert image.size == (16, 16)


def test_make_small_data_writes_the_layout(tmp_path, monkeypatch, capsys):
    spec = importlib.util.spec_from_file_location("make_small_data", ROOT / "benchmarks/make_small_data.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(sys, "argv", [
        "make_small_data.py", "--out", str(tmp_path), "--seed", "3", "--image-size", "16",
        "--n-basic", "2", "--n-compound-train", "1", "--n-compound-test", "3",
        "--identities", "4", "2", "3", "--workers", "1",
    ])
    module.main()
    compounds = {c.name for c in compound_set("abaw7")}
    expected = {"basic/train": (set(BASIC_EXPRESSIONS), 2), "compound/train": (compounds, 1),
                "compound/test": (compounds, 3)}
    for split, (labels, count) in expected.items():
        folders = sorted(p for p in (tmp_path / split).iterdir())
        assert {parse_label(p.name) for p in folders} == labels
        assert all(len(list(p.glob("*.png"))) == count for p in folders)
    meta = json.loads((tmp_path / "meta.json").read_text())
    ranges = [tuple(s["identities"]) for s in meta["splits"]]
    assert ranges == [(0, 4), (4, 6), (6, 9)]
    ids = {split: {int(p.stem.split("_id")[1]) for p in (tmp_path / split).rglob("*.png")} for split in expected}
    assert ids["basic/train"] <= set(range(4)) and ids["compound/test"] <= set(range(6, 9))
    assert "identities [6, 9)" in capsys.readouterr().out


def test_the_style_is_selectable_in_every_synthetic_source_spec():
    from cer_hf.data.labelled import load_labelled, parse_synthetic_spec
    from cer_hf.data.streams import load_source

    assert parse_synthetic_spec("synthetic:all:10:realistic").style == "realistic"
    assert parse_synthetic_spec("synthetic:all:10").style == "cartoon"
    with pytest.raises(ValueError, match=r"synthetic:basic\|compound\|all:<count>\[:cartoon\|realistic\]"):
        parse_synthetic_spec("synthetic:all:10:fancy")
    realistic = load_labelled("synthetic:compound:2:realistic", image_size=32)
    cartoon = load_labelled("synthetic:compound:2", image_size=32)
    assert realistic[0]["label"] == cartoon[0]["label"]  # same label schedule, different faces
    assert realistic[0]["image"].tobytes() != cartoon[0]["image"].tobytes()
    streamed = next(iter(load_source("synthetic:4:realistic", synthetic_image_size=32)))
    assert streamed["key"] == "synthetic/0"
    with pytest.raises(ValueError, match="synthetic stream spec"):
        load_source("synthetic:many", synthetic_image_size=32)
