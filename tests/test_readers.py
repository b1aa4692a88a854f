"""Labelled dataset readers, each on a tiny fixture written in the real dataset's exact layout."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import datasets
import numpy as np
import pytest
from PIL import Image

from cer_hf.data.readers import affwild2
from cer_hf.taxonomy import compound_set
from cer_hf.taxonomy import FER2013_LABELS
from cer_hf.image_io import IMAGE_EXTENSIONS
from cer_hf.data.readers.base import LabelFileError, filter_targets
from cer_hf.data.labelled import load_labelled_source
from cer_hf.data.readers.files import normalise_dataset, read_image_folder, read_parquet, read_table
from cer_hf.data.readers.affectnet import read_affectnet
from cer_hf.data.readers.fer2013 import read_fer2013
from cer_hf.data.readers.rafdb import read_rafdb_basic, read_rafdb_compound


def write_image(path: Path, color=(200, 50, 50), size=(8, 8), mode="RGB") -> Path:
    """A tiny image file (format from the suffix); parent folders are created."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, color if mode == "RGB" else color[0]).save(path)
    return path


def labels_by_file(dataset) -> dict[str, str]:
    paths = [item["path"] for item in dataset.cast_column("image", datasets.Image(decode=False))["image"]]
    return {Path(p).name: label for p, label in zip(paths, dataset["label"])}


# ----------------------------------------------------------------------------- image folder


def test_image_folder_maps_folder_names_by_name(tmp_path):
    write_image(tmp_path / "happy" / "a.jpg")
    write_image(tmp_path / "happy" / "nested" / "b.png")
    write_image(tmp_path / "SURPRISE" / "c.jpg")
    write_image(tmp_path / "Sadly_Fearful" / "d.jpg", mode="L")
    write_image(tmp_path / "anger" / "e.jpeg")
    (tmp_path / "anger" / "notes.txt").write_text("not an image")
    dataset, report = read_image_folder(tmp_path, return_report=True)
    assert report.skipped == {f"not an image extension ({', '.join(IMAGE_EXTENSIONS)})": 1}
    assert labels_by_file(dataset) == {
        "a.jpg": "Happiness", "b.png": "Happiness", "c.jpg": "Surprise",
        "d.jpg": "Sadly Fearful", "e.jpeg": "Anger",
    }
    assert dataset.column_names == ["image", "label", "sample_id"]
    assert isinstance(dataset.features["image"], datasets.Image)
    row = dataset[0]
    assert isinstance(row["image"], Image.Image) and row["image"].size == (8, 8)


def test_image_folder_unknown_folder_names_folder_and_accepted_labels(tmp_path):
    write_image(tmp_path / "happy" / "a.jpg")
    write_image(tmp_path / "smirk" / "b.jpg")
    with pytest.raises(ValueError) as error:
        read_image_folder(tmp_path)
    message = str(error.value)
    assert "smirk" in message and "Happiness" in message and "Sadly Fearful" in message


def test_image_folder_split_folder_hint(tmp_path):
    write_image(tmp_path / "train" / "happy" / "a.jpg")
    with pytest.raises(ValueError, match="looks like a split"):
        read_image_folder(tmp_path)


def test_image_folder_counts_stray_images(tmp_path, caplog):
    write_image(tmp_path / "sad" / "a.jpg")
    write_image(tmp_path / "stray.jpg")
    with caplog.at_level(logging.WARNING):
        dataset, report = read_image_folder(tmp_path, return_report=True)
    assert len(dataset) == 1 and report.skipped == {"image outside a label folder": 1}
    assert "stray.jpg" in caplog.text


# ----------------------------------------------------------------------------- CSV / JSON / JSONL


def test_csv_relative_paths_compound_cells_and_multiple_columns(tmp_path):
    write_image(tmp_path / "imgs" / "1.jpg")
    write_image(tmp_path / "imgs" / "2.jpg")
    write_image(tmp_path / "imgs" / "3.jpg")
    (tmp_path / "labels.csv").write_text(
        "file,label\nimgs/1.jpg,happy\nimgs/2.jpg,Sadness|Fear\nimgs/3.jpg,HAPPILY_SURPRISED\n"
    )
    dataset = read_table(tmp_path / "labels.csv")
    assert labels_by_file(dataset) == {"1.jpg": "Happiness", "2.jpg": "Sadly Fearful", "3.jpg": "Happily Surprised"}
    # Two label columns (second one optional) form a compound.
    (tmp_path / "two.csv").write_text("path,first,second\nimgs/1.jpg,Sadness,Anger\nimgs/2.jpg,Fear,\n")
    dataset = read_table(tmp_path / "two.csv", image_column="path", label_columns=["first", "second"])
    assert dataset["label"] == ["Sadly Angry", "Fear"]
    # 0/1 indicator columns headed by expression names.
    (tmp_path / "onehot.csv").write_text("image,Happiness,Surprise,Fear\nimgs/1.jpg,1,1,0\nimgs/2.jpg,0,0,1\n")
    dataset = read_table(tmp_path / "onehot.csv", label_columns=["Happiness", "Surprise", "Fear"])
    assert dataset["label"] == ["Happily Surprised", "Fear"]


def test_csv_integer_codes_need_label_names(tmp_path):
    write_image(tmp_path / "a.jpg")
    (tmp_path / "codes.tsv").write_text("image\tclass\na.jpg\t2\n")
    with pytest.raises(LabelFileError, match="label_names"):
        read_table(tmp_path / "codes.tsv", label_column="class")
    dataset = read_table(tmp_path / "codes.tsv", label_column="class", label_names=["sad", "happy", "angry"])
    assert dataset["label"] == ["Anger"]


def test_csv_errors_name_file_and_line(tmp_path):
    write_image(tmp_path / "a.jpg")
    table = tmp_path / "bad.csv"
    table.write_text("file,label\na.jpg,happy\nmissing.jpg,sad\n")
    with pytest.raises(LabelFileError) as error:
        read_table(table)
    assert str(table) in str(error.value) and "line 3" in str(error.value) and "missing.jpg" in str(error.value)
    dataset, report = read_table(table, on_missing="skip", return_report=True)
    assert len(dataset) == 1 and report.skipped == {"image file missing": 1}
    table.write_text("file,label\na.jpg,happy\na.jpg,Happiness|Neutral\n")
    with pytest.raises(LabelFileError, match=r"bad.csv, line 3: .*Happiness \+ Neutral"):
        read_table(table)
    table.write_text("file,label\na.jpg,happy,extra\n")
    with pytest.raises(LabelFileError, match="line 2: 3 columns"):
        read_table(table)
    table.write_text("file,label\na.jpg,happy\n")
    with pytest.raises(LabelFileError, match="no label column 'emotion'"):
        read_table(table, label_column="emotion")


def test_json_and_jsonl(tmp_path):
    write_image(tmp_path / "faces" / "x.png")
    write_image(tmp_path / "faces" / "y.png")
    (tmp_path / "labels.json").write_text(json.dumps(
        [{"image": "faces/x.png", "label": "disgusted"}, {"image": "faces/y.png", "label": ["Disgust", "Surprise"]}]
    ))
    assert read_table(tmp_path / "labels.json")["label"] == ["Disgust", "Disgustedly Surprised"]
    (tmp_path / "labels.jsonl").write_text(
        '{"image": "faces/x.png", "emotion": "fear"}\n\n{"image": "faces/y.png", "emotion": "joy"}\n'
    )
    assert read_table(tmp_path / "labels.jsonl")["label"] == ["Fear", "Happiness"]
    (tmp_path / "bad.jsonl").write_text('{"image": "faces/x.png", "emotion": "fear"}\n{"image": "faces/y.png", "emotion": "meh"}\n')
    with pytest.raises(LabelFileError, match=r"bad.jsonl, line 2: .*'meh'"):
        read_table(tmp_path / "bad.jsonl")


# ----------------------------------------------------------------------------- parquet and existing datasets


def _png_bytes(color) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), color).save(buffer, format="PNG")
    return buffer.getvalue()


def test_parquet_with_image_struct_and_classlabel_names(tmp_path):
    # A ClassLabel whose order differs from ours: codes map through ITS names.
    features = datasets.Features({
        "img": datasets.Image(),
        "emotion": datasets.ClassLabel(names=["surprise", "happy", "sad"]),
        "valence": datasets.Value("float32"),
    })
    source = datasets.Dataset.from_dict(
        {"img": [_png_bytes((1, 2, 3)), _png_bytes((4, 5, 6))], "emotion": [0, 2], "valence": [0.5, -0.5]},
        features=features,
    )
    source.to_parquet(str(tmp_path / "part-0.parquet"))
    dataset = read_parquet(str(tmp_path / "*.parquet"), image_column="img", label_column="emotion",
                           cache_dir=str(tmp_path / "cache"))
    assert dataset["label"] == ["Surprise", "Sadness"]
    assert dataset.column_names == ["image", "label", "valence", "sample_id"]
    assert dataset[1]["image"].getpixel((0, 0)) == (4, 5, 6)


def test_parquet_with_path_column(tmp_path):
    write_image(tmp_path / "img" / "a.jpg")
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"file": ["img/a.jpg"], "label": ["Angrily_Surprised"]}), tmp_path / "data.parquet")
    dataset = load_labelled_source(f"parquet:{tmp_path / 'data.parquet'}", cache_dir=str(tmp_path / "cache"))
    assert dataset["label"] == ["Angrily Surprised"]
    assert dataset[0]["image"].size == (8, 8)
    pq.write_table(pa.table({"file": ["img/a.jpg", "img/gone.jpg"], "label": ["sad", "sad"]}), tmp_path / "data.parquet")
    with pytest.raises(LabelFileError, match=r"row 1: image 'img/gone.jpg' not found"):
        read_parquet(str(tmp_path / "data.parquet"), cache_dir=str(tmp_path / "cache"))


def test_normalise_dataset_errors_name_row():
    source = datasets.Dataset.from_dict({"image": [_png_bytes((0, 0, 0))] * 2, "label": ["happy", "bored"]})
    with pytest.raises(LabelFileError, match="row 1: .*'bored'"):
        normalise_dataset(source, source="mine")


# ----------------------------------------------------------------------------- RAF-DB


def make_rafdb(root: Path, entries: list[tuple[str, int]], aligned=True, original=False) -> Path:
    (root / "EmoLabel").mkdir(parents=True)
    (root / "EmoLabel" / "list_patition_label.txt").write_text("".join(f"{name} {code}\n" for name, code in entries))
    for name, _ in entries:
        stem = name[:-4]
        if aligned:
            write_image(root / "Image" / "aligned" / f"{stem}_aligned.jpg")
        if original:
            write_image(root / "Image" / "original" / name)
    return root


def test_rafdb_basic_codes_and_splits(tmp_path):
    entries = [("train_00001.jpg", 1), ("train_00002.jpg", 4), ("train_00003.jpg", 7), ("test_0001.jpg", 6)]
    root = make_rafdb(tmp_path / "basic", entries, original=True)
    dataset = read_rafdb_basic(root)
    assert labels_by_file(dataset) == {
        "train_00001_aligned.jpg": "Surprise", "train_00002_aligned.jpg": "Happiness",
        "train_00003_aligned.jpg": "Neutral", "test_0001_aligned.jpg": "Anger",
    }
    assert len(read_rafdb_basic(root, split="train")) == 3
    test = read_rafdb_basic(tmp_path, split="test", images="original")  # parent folder holding basic/
    assert labels_by_file(test) == {"test_0001.jpg": "Anger"}
    assert len(load_labelled_source(f"rafdb-basic:{root}:test")) == 1


def test_rafdb_basic_bad_lines_name_file_and_line(tmp_path):
    root = make_rafdb(tmp_path, [("train_00001.jpg", 1), ("train_00002.jpg", 8)])
    with pytest.raises(LabelFileError, match=r"list_patition_label.txt, line 2: label 8 is outside 1..7"):
        read_rafdb_basic(root)
    (root / "EmoLabel" / "list_patition_label.txt").write_text("train_00001.jpg 1\ntrain_00002.jpg\n")
    with pytest.raises(LabelFileError, match="line 2: expected"):
        read_rafdb_basic(root)
    (root / "EmoLabel" / "list_patition_label.txt").write_text("train_00001.jpg 1\ntrain_00009.jpg 2\n")
    with pytest.raises(LabelFileError, match="line 2: image for 'train_00009.jpg' not found"):
        read_rafdb_basic(root)


def test_rafdb_compound_order(tmp_path):
    entries = [("train_0001.jpg", 1), ("train_0002.jpg", 3), ("train_0003.jpg", 7), ("test_0001.jpg", 11)]
    root = make_rafdb(tmp_path / "compound", entries)
    dataset = load_labelled_source(f"rafdb-compound:{tmp_path}")
    assert labels_by_file(dataset) == {
        "train_0001_aligned.jpg": "Happily Surprised", "train_0002_aligned.jpg": "Sadly Fearful",
        "train_0003_aligned.jpg": "Fearfully Angry", "test_0001_aligned.jpg": "Disgustedly Surprised",
    }
    (root / "EmoLabel" / "list_patition_label.txt").write_text("train_0001.jpg 12\n")
    with pytest.raises(LabelFileError, match="label 12 is outside 1..11"):
        read_rafdb_compound(root)


# ----------------------------------------------------------------------------- AffectNet

AFFECTNET_HEADER = "subDirectory_filePath,face_x,face_y,face_width,face_height,facial_landmarks,expression,valence,arousal\n"
LANDMARKS = ";".join(["10.5"] * 136)


def affectnet_line(path: str, expression: int, valence=0.5, arousal=-0.25, box=(2, 2, 12, 12)) -> str:
    return f"{path},{box[0]},{box[1]},{box[2]},{box[3]},{LANDMARKS},{expression},{valence},{arousal}\n"


def make_affectnet(root: Path) -> Path:
    images = root / "Manually_Annotated_Images"
    for index in range(6):
        write_image(images / "101" / f"img{index}.jpg", color=(index * 40, 0, 0), size=(20, 20))
    lists = root / "Manually_Annotated_file_lists"
    lists.mkdir(parents=True)
    (lists / "training.csv").write_text(
        AFFECTNET_HEADER
        + affectnet_line("101/img0.jpg", 1, 0.8, 0.2)
        + affectnet_line("101/img1.jpg", 0)
        + affectnet_line("101/img2.jpg", 7)
        + affectnet_line("101/img3.jpg", 8, -2, -2)
        + affectnet_line("101/img4.jpg", 10, -2, -2)
        + affectnet_line("101/img5.jpg", 6, -0.9, 0.7)
    )
    # Some validation.csv copies come without the header line.
    (lists / "validation.csv").write_text(affectnet_line("101/img0.jpg", 4) + affectnet_line("101/img1.jpg", 9, -2, -2))
    return lists


def test_affectnet_codes_drops_and_valence(tmp_path):
    lists = make_affectnet(tmp_path)
    dataset, report = read_affectnet(lists / "training.csv", return_report=True)
    assert dataset["label"] == ["Happiness", "Neutral", "Contempt", "Anger"]
    assert dataset["sample_id"] == [0, 1, 2, 5]
    assert dataset["valence"] == pytest.approx([0.8, 0.5, 0.5, -0.9])
    assert dataset["arousal"][0] == pytest.approx(0.2)
    assert report.skipped == {"expression 8 = None": 1, "expression 10 = Non-Face": 1}
    assert dataset[0]["face_box"] == [2, 2, 12, 12]
    validation = load_labelled_source(f"affectnet:{lists / 'validation.csv'}")
    assert validation["label"] == ["Fear"]


def test_affectnet_crop_and_errors(tmp_path):
    lists = make_affectnet(tmp_path)
    cropped = read_affectnet(lists / "training.csv", crop_faces=True)
    assert cropped[0]["image"].size == (12, 12)
    (lists / "bad.csv").write_text(AFFECTNET_HEADER + affectnet_line("101/img0.jpg", 11))
    with pytest.raises(LabelFileError, match=r"bad.csv, line 2: expression 11"):
        read_affectnet(lists / "bad.csv")
    (lists / "bad.csv").write_text(AFFECTNET_HEADER + affectnet_line("101/img0.jpg", 1) + affectnet_line("101/nope.jpg", 1))
    with pytest.raises(LabelFileError, match=r"line 3: image '101/nope.jpg' not found"):
        read_affectnet(lists / "bad.csv")


# ----------------------------------------------------------------------------- FER2013


def fer_row(code: int, usage: str, value: int = 128, count: int = 48 * 48) -> str:
    return f"{code},{' '.join([str(value)] * count)},{usage}\n"


def test_fer2013_pixels_codes_and_usage(tmp_path):
    path = tmp_path / "fer2013.csv"
    path.write_text("emotion,pixels,Usage\n" + fer_row(0, "Training", 10) + fer_row(3, "PublicTest", 200)
                    + fer_row(6, "PrivateTest") + fer_row(5, "Training"))
    dataset = read_fer2013(path)
    assert dataset["label"] == ["Anger", "Happiness", "Neutral", "Surprise"]
    image = dataset[1]["image"]
    assert image.mode == "RGB" and image.size == (48, 48) and image.getpixel((5, 5)) == (200, 200, 200)
    public = load_labelled_source(f"fer2013:{path}:PublicTest")
    assert public["label"] == ["Happiness"] and public["sample_id"] == [1]
    assert FER2013_LABELS[0] == "Anger"


def test_fer2013_bad_pixels_name_line(tmp_path):
    path = tmp_path / "fer2013.csv"
    path.write_text("emotion,pixels,Usage\n" + fer_row(0, "Training") + fer_row(2, "Training", count=100))
    with pytest.raises(LabelFileError, match=r"fer2013.csv, line 3: 100 pixel values"):
        read_fer2013(path)
    path.write_text("emotion,pixels,Usage\n" + fer_row(7, "Training"))
    with pytest.raises(LabelFileError, match="line 2: emotion '7'"):
        read_fer2013(path)


# ----------------------------------------------------------------------------- C-EXPR-DB and Aff-Wild2


def write_frames(root: Path, video: str, frames: range | list[int]) -> None:
    for frame in frames:
        write_image(root / "cropped_aligned" / video / affwild2.image_name(frame))


def test_cexprdb_frames_unlabelled_and_missing_images(tmp_path):
    header = "Fearfully_Surprised,Happily_Surprised,Sadly_Surprised,Disgustedly_Surprised,Angrily_Surprised,Sadly_Fearful,Sadly_Angry\n"
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "vid1.txt").write_text(header + "1\n-1\n3\n6\n")
    (tmp_path / "annotations" / "vid2.txt").write_text(header + "0\n")
    write_frames(tmp_path, "vid1", [0, 1, 2])  # frame 3 (image 00004.jpg) has no face crop
    write_frames(tmp_path, "vid2", [0])
    dataset, report = load_labelled_source(f"cexprdb:{tmp_path}", return_report=True)
    assert dataset["label"] == ["Happily Surprised", "Disgustedly Surprised", "Fearfully Surprised"]
    assert dataset["video_id"] == ["vid1", "vid1", "vid2"]
    assert dataset["frame"] == [0, 2, 0]
    assert labels_by_file(dataset.select([1])) == {"00003.jpg": "Disgustedly Surprised"}
    assert report.skipped == {"unlabelled (-1)": 1, "frame image missing": 1}
    (tmp_path / "annotations" / "vid2.txt").write_text(header + "0\n7\n")
    with pytest.raises(LabelFileError, match=r"vid2.txt, line 3: class index 7 is outside 0..6"):
        affwild2.read_cexprdb(tmp_path)


def test_expression_header_maps_by_name(tmp_path):
    path = tmp_path / "v.txt"
    path.write_text("Sadly_Angry,Happily_Surprised\n0\n1\n")
    assert affwild2.read_expression_file(path, affwild2.CEXPRDB_LABELS) == [(2, "Sadly Angry"), (3, "Happily Surprised")]
    path.write_text("0\n1\n")
    with pytest.raises(LabelFileError, match="line 1: expected a header"):
        affwild2.read_expression_file(path, affwild2.CEXPRDB_LABELS)


EXPR_HEADER = "Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise,Other\n"
AU_HEADER = "AU1,AU2,AU4,AU6,AU7,AU10,AU12,AU15,AU23,AU24,AU25,AU26\n"


def make_affwild2(root: Path) -> Path:
    expr = root / "EXPR_Recognition_Challenge"
    au = root / "AU_Detection_Challenge"
    va = root / "VA_Estimation_Challenge"
    for folder in (expr, au, va):
        (folder / "Train_Set").mkdir(parents=True)
        (folder / "Validation_Set").mkdir(parents=True)
    (expr / "Train_Set" / "10-60-1280x720_left.txt").write_text(EXPR_HEADER + "0\n4\n-1\n7\n1\n")
    (expr / "Validation_Set" / "val1.txt").write_text(EXPR_HEADER + "6\n")
    (au / "Train_Set" / "10-60-1280x720_left.txt").write_text(
        AU_HEADER + "1,0,0,0,0,0,1,0,0,0,1,0\n" + "-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1\n" * 2
        + "0,0,0,0,0,0,0,0,0,0,0,1\n" + "-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1\n" + "0,1,0,0,0,0,0,0,0,0,0,0\n"
    )
    (va / "Train_Set" / "10-60-1280x720_left.txt").write_text("valence,arousal\n0.5,0.25\n-5,-5\n-5,-5\n-0.1,0.9\n")
    (va / "Train_Set" / "only_va.txt").write_text("valence,arousal\n0.3,0.4\n")
    write_frames(root, "10-60-1280x720_left", range(5))  # frame 5 (00006.jpg) missing
    write_frames(root, "val1", [0])
    write_frames(root, "only_va", [0])
    return root


def test_affwild2_expr_one_based_images(tmp_path):
    root = make_affwild2(tmp_path)
    dataset, report = affwild2.read_affwild2_expr(root, split="train", return_report=True)
    assert dataset["label"] == ["Neutral", "Happiness", "Other", "Anger"]
    assert dataset["frame"] == [0, 1, 3, 4]
    assert labels_by_file(dataset.select([1])) == {"00002.jpg": "Happiness"}
    assert report.skipped == {"unlabelled (-1)": 1}
    both = load_labelled_source(f"affwild2-expr:{root}")
    assert len(both) == 5 and both["video_id"][-1] == "val1"
    assert load_labelled_source(f"affwild2-expr:{root}:validation")["label"] == ["Surprise"]


def test_affwild2_mtl_merges_tasks_per_frame(tmp_path):
    root = make_affwild2(tmp_path)
    dataset, report = load_labelled_source(f"affwild2-mtl:{root}:train", return_report=True)
    rows = {(row["video_id"], row["frame"]): row for row in dataset.remove_columns("image")}
    first = rows[("10-60-1280x720_left", 0)]
    assert first["label"] == "Neutral"
    assert first["aus"] == [1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0]
    assert (first["valence"], first["arousal"]) == (0.5, 0.25)
    second = rows[("10-60-1280x720_left", 1)]
    assert second["label"] == "Happiness" and second["aus"] == [-1] * 12 and second["valence"] == -5
    # frame 2: EXPR -1, AU -1, VA -5 → no annotation at all → skipped and counted
    assert ("10-60-1280x720_left", 2) not in rows
    third = rows[("10-60-1280x720_left", 3)]
    assert third["label"] == "Other" and third["aus"][-1] == 1 and third["valence"] == pytest.approx(-0.1)
    fourth = rows[("10-60-1280x720_left", 4)]
    assert fourth["label"] == "Anger" and fourth["valence"] == -5  # VA file shorter than the video
    only_va = rows[("only_va", 0)]
    assert only_va["label"] is None and only_va["aus"] == [-1] * 12 and only_va["valence"] == pytest.approx(0.3)
    assert report.skipped == {"no annotation in any task": 1, "frame image missing": 1}
    assert dataset.features["aus"].length == len(affwild2.AU_NAMES) == 12


def test_affwild2_mtl_bad_lines(tmp_path):
    root = make_affwild2(tmp_path)
    au_file = root / "AU_Detection_Challenge" / "Train_Set" / "10-60-1280x720_left.txt"
    au_file.write_text(AU_HEADER + "1,0,0\n")
    with pytest.raises(LabelFileError, match=r"10-60-1280x720_left.txt, line 2: 3 values, expected 12"):
        affwild2.read_affwild2_mtl(root, split="train")
    au_file.write_text(AU_HEADER + "1,0,0,0,0,0,2,0,0,0,1,0\n")
    with pytest.raises(LabelFileError, match="line 2: AU values must be 0, 1 or -1"):
        affwild2.read_affwild2_mtl(root, split="train")
    au_file.write_text("AU1,AU2\n1,0\n")
    with pytest.raises(LabelFileError, match="line 1: header"):
        affwild2.read_affwild2_mtl(root, split="train")
    au_file.write_text(AU_HEADER)
    va_file = root / "VA_Estimation_Challenge" / "Train_Set" / "only_va.txt"
    va_file.write_text("valence,arousal\n0.3,1.7\n")
    with pytest.raises(LabelFileError, match=r"only_va.txt, line 2: arousal 1.7 is outside"):
        affwild2.read_affwild2_mtl(root, split="train")


def test_au_names_are_the_abaw_order():
    assert tuple(affwild2.AU_NAMES) == (
        "AU1", "AU2", "AU4", "AU6", "AU7", "AU10", "AU12", "AU15", "AU23", "AU24", "AU25", "AU26",
    )


# ----------------------------------------------------------------------------- filtering and dispatch


def test_filter_targets_drops_and_counts(tmp_path):
    source = datasets.Dataset.from_dict({
        "label": ["Happiness", "Neutral", "Sadly Fearful", "Contempt", "Other", "Neutral", None, "Happily Disgusted"],
        "sample_id": list(range(8)),
    })
    dataset, report = filter_targets(source)
    assert dataset["sample_id"] == [0, 2, 7]
    assert report.dropped == {"Neutral": 2, "Contempt": 1, "Other": 1, "<missing>": 1}
    assert report.kept == {"Happiness": 1, "Sadly Fearful": 1, "Happily Disgusted": 1}
    assert "dropped Neutral: 2" in str(report)
    # Restricting to the ABAW7 compounds: RAF-DB-only compounds are dropped too (and counted).
    dataset, report = filter_targets(source, keep=["happy", "sadly_fearful"])
    assert dataset["sample_id"] == [0, 2] and report.dropped["Happily Disgusted"] == 1


def test_dispatcher_unknown_scheme_lists_schemes(tmp_path):
    with pytest.raises(ValueError) as error:
        load_labelled_source(f"rafdb:{tmp_path}")
    message = str(error.value)
    assert "'rafdb'" in message and "rafdb-basic:/root[:train|test]" in message and "affwild2-mtl" in message
    with pytest.raises(ValueError, match="synthetic:basic|compound|all:<count>"):
        load_labelled_source("synthetic:weird:10")


def test_dispatcher_imagefolder_and_csv(tmp_path):
    write_image(tmp_path / "faces" / "Sad" / "a.jpg")
    assert load_labelled_source(f"imagefolder:{tmp_path / 'faces'}")["label"] == ["Sadness"]
    (tmp_path / "l.csv").write_text("file,expr\nfaces/Sad/a.jpg,fearful\n")
    assert load_labelled_source(f"csv:{tmp_path / 'l.csv'}", label_column="expr")["label"] == ["Fear"]


def test_dispatcher_synthetic():
    dataset = load_labelled_source("synthetic:compound:14", image_size=32)
    assert len(dataset) == 14
    assert set(dataset["label"]) == {c.name for c in compound_set("abaw7")}
    row = dataset[0]
    assert isinstance(row["image"], Image.Image) and row["image"].size == (32, 32)
    assert np.asarray(row["image"]).std() > 0


def test_affwild2_mtl_combined_challenge_files(tmp_path):
    """The ABAW MTL challenge's one-file-per-split layout, with a duplicate entry as the real files have."""
    annotations = tmp_path / "annotations"
    annotations.mkdir()
    au_on = ",".join(["0"] * 11 + ["1"])
    au_missing = ",".join(["-1"] * 12)
    (annotations / "training_set_annotations.txt").write_text(
        "image,valence,arousal,expression,aus\n"
        f"vidA/00001.jpg,0.2,0.3,5,{au_on}\n"
        f"vidA/00002.jpg,-5,-5,-1,{au_missing}\n"
        f"vidA/00003.jpg,-5,-5,3,{au_missing}\n"
        f"vidA/00001.jpg,0.2,0.3,5,{au_on}\n"
        f"vidA/00009.jpg,0.1,0.1,0,{au_on}\n"
    )
    (annotations / "validation_set_annotations.txt").write_text(
        "image,valence,arousal,expression,aus\n" f"vidB/00001.jpg,0.5,0.5,7,{au_on}\n"
    )
    write_frames(tmp_path, "vidA", range(3))
    write_frames(tmp_path, "vidB", [0])
    dataset, report = affwild2.read_affwild2_mtl(tmp_path, split="train", return_report=True)
    assert dataset["label"] == ["Sadness", "Fear"]
    assert dataset["frame"] == [0, 2]
    assert dataset["aus"][0][-1] == 1 and dataset["aus"][1] == [-1] * 12
    assert dataset["valence"] == pytest.approx([0.2, -5])
    assert labels_by_file(dataset.select([1])) == {"00003.jpg": "Fear"}
    assert report.skipped == {"duplicate entry": 1, "no annotation in any task": 1, "frame image missing": 1}
    assert load_labelled_source(f"affwild2-mtl:{tmp_path}:validation")["label"] == ["Other"]
    # AU-only view: frames without AU annotation drop out, the label column is all None.
    au_only = affwild2.read_affwild2_mtl(tmp_path, split="train", tasks=("AU",))
    assert au_only["frame"] == [0] and au_only["label"] == [None]
    (annotations / "training_set_annotations.txt").write_text(
        "image,valence,arousal,expression,aus\n" f"vidA/00001.jpg,0.2,0.3,8,{au_on}\n"
    )
    with pytest.raises(LabelFileError, match=r"training_set_annotations.txt, line 2: expression 8"):
        affwild2.read_affwild2_mtl(tmp_path, split="train")


def test_cli_data_prints_counts_report_and_errors(tmp_path, capsys):
    from cer_hf.cli import main

    path = tmp_path / "fer2013.csv"
    path.write_text("emotion,pixels,Usage\n" + fer_row(0, "Training") + fer_row(6, "Training") + fer_row(0, "PublicTest"))
    assert main(["data", f"fer2013:{path}:Training", "--filter-targets", "--decode", "2"]) == 0
    out = capsys.readouterr().out
    assert "Anger\t1" in out and "Neutral\t1" in out and "dropped Neutral: 1" in out
    assert "decoded 2 of 2 images; sizes: {(48, 48): 2}" in out
    assert main(["data", f"fer2013:{path}", "-o", "usage=[PublicTest]"]) == 0
    assert "Anger\t1" in capsys.readouterr().out
    assert main(["data", f"nosuch:{path}"]) == 2
    assert "unknown scheme 'nosuch'" in capsys.readouterr().err


def test_fer2013_non_numeric_pixels(tmp_path):
    path = tmp_path / "fer2013.csv"
    pixels = " ".join(["7"] * 1000 + ["x"] + ["7"] * 1303)
    path.write_text(f"emotion,pixels,Usage\n3,{pixels},Training\n")
    with pytest.raises(LabelFileError, match="line 2: pixels must be space-separated integers"):
        read_fer2013(path)
    path.write_text("emotion,pixels,Usage\n" + fer_row(3, "Training", value=256))
    with pytest.raises(LabelFileError, match="line 2: pixel values must be integers in 0..255"):
        read_fer2013(path)


def test_image_folder_numbered_classes_need_a_code_table(tmp_path):
    write_image(tmp_path / "1" / "a.jpg")
    write_image(tmp_path / "7" / "b.jpg")
    with pytest.raises(ValueError, match=r"numbered class folder .*'rafdb-basic'"):
        read_image_folder(tmp_path)
    dataset = read_image_folder(tmp_path, label_names="rafdb-basic")
    assert labels_by_file(dataset) == {"a.jpg": "Surprise", "b.jpg": "Neutral"}
    with pytest.raises(ValueError, match="code 7 in column 'folder name'"):
        read_image_folder(tmp_path, label_names="fer2013")


def test_single_line_json_object_is_not_json_lines(tmp_path):
    write_image(tmp_path / "x.png")
    (tmp_path / "labels.json").write_text(json.dumps({"samples": [{"file": "x.png", "label": "Sadly_Angry"}]}))
    assert read_table(tmp_path / "labels.json")["label"] == ["Sadly Angry"]
    (tmp_path / "lines.json").write_text('{"file": "x.png", "label": "sad"}\n{"file": "x.png", "label": "fear"}\n')
    assert read_table(tmp_path / "lines.json")["label"] == ["Sadness", "Fear"]


def test_filter_targets_on_a_stream_counts_while_iterating():
    source = datasets.Dataset.from_dict({"label": ["Neutral", "Fear", "Other", "Sadly Angry"], "sample_id": [0, 1, 2, 3]})
    stream, report = filter_targets(source.to_iterable_dataset(num_shards=2))
    assert isinstance(stream, datasets.IterableDataset)
    assert sorted(row["sample_id"] for row in stream) == [1, 3]
    assert report.dropped == {"Neutral": 1, "Other": 1} and sum(report.kept.values()) == 2


def test_two_code_columns_are_codes_not_indicators(tmp_path):
    write_image(tmp_path / "a.jpg")
    (tmp_path / "codes.csv").write_text("file,code_a,code_b\na.jpg,1,0\n")
    dataset = read_table(tmp_path / "codes.csv", label_columns=["code_a", "code_b"], label_names="fer2013")
    assert dataset["label"] == ["Angrily Disgusted"]  # FER codes 1 = Disgust, 0 = Anger


def test_json_error_names_the_record(tmp_path):
    write_image(tmp_path / "x.png")
    (tmp_path / "labels.json").write_text(json.dumps([{"file": "x.png", "label": "sad"}, {"file": "x.png", "label": "calmish"}]))
    with pytest.raises(LabelFileError, match=r"labels.json, record 1: .*'calmish'"):
        read_table(tmp_path / "labels.json")


def test_hub_reader_on_a_local_dataset_folder(tmp_path):
    """`hub:` goes through datasets.load_dataset; a local folder in the Hub layout needs no network."""
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["angry", "fear"])})
    repo = tmp_path / "repo"
    (repo / "data").mkdir(parents=True)
    datasets.Dataset.from_dict({"image": [_png_bytes((9, 9, 9))] * 3, "label": [1, 0, 1]}, features=features).to_parquet(
        str(repo / "data" / "test-00000-of-00001.parquet"))
    dataset = load_labelled_source(f"hub:{repo}:test", load_options={"cache_dir": str(tmp_path / "cache")})
    assert dataset["label"] == ["Fear", "Anger", "Fear"]
    assert dataset[0]["image"].getpixel((1, 1)) == (9, 9, 9)


def test_drop_unreadable_images_reports_each_bad_file_and_keeps_the_rest(tmp_path):
    from cer_hf.data.readers.base import drop_unreadable_images
    from cer_hf.data.readers.files import read_image_folder

    for label in ("happy", "sad"):
        (tmp_path / label).mkdir()
        for i in range(2):
            Image.new("RGB", (12, 12), (40 * i, 90, 30)).save(tmp_path / label / f"{i}.png")
    (tmp_path / "sad" / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")
    truncated = tmp_path / "happy" / "truncated.jpg"
    Image.new("RGB", (64, 64), (200, 10, 10)).save(truncated)
    truncated.write_bytes(truncated.read_bytes()[:200])
    dataset = read_image_folder(tmp_path)
    assert len(dataset) == 6

    kept, report = drop_unreadable_images(dataset, source="fixture")
    assert len(kept) == 4 and report.rows == 4
    assert report.skipped["unreadable image"] == 2
    examples = " ".join(report.examples["unreadable image"])
    assert "corrupt.png" in examples and "truncated.jpg" in examples
    assert sorted(kept["label"]) == ["Happiness", "Happiness", "Sadness", "Sadness"]
    assert all(image.size == (12, 12) for image in kept["image"])
