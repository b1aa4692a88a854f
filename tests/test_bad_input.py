"""Hostile and empty inputs: each becomes an error naming the file, and the other inputs still go through."""

from __future__ import annotations

import csv
import json
import warnings

import pytest
from PIL import Image

from cer_hf.cli import main
from cer_hf.image_io import BadImageError, load_rgb_image
from tests.bad_corpus import (
    CONVERTIBLE_IMAGES,
    UNREADABLE_IMAGES,
    write_corpus,
    write_png_bomb,
)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """The whole bad-input corpus (tests/bad_corpus.py), written once for this module."""
    return write_corpus(tmp_path_factory.mktemp("corpus"))


def test_the_corpus_is_small_and_each_image_is_what_its_name_says(corpus):
    sizes = {path.name: path.stat().st_size for path in corpus.root.rglob("*") if path.is_file()}
    assert max(size for name, size in sizes.items() if name != "bomb.png") < 4_000
    assert sizes["bomb.png"] < 60_000 and sizes["zero_byte.png"] == sizes["zero_byte.mp4"] == 0
    for kind in UNREADABLE_IMAGES:
        with pytest.raises(BadImageError, match=corpus.images[kind].name):
            load_rgb_image(corpus.images[kind])
    modes = {kind: Image.open(corpus.images[kind]).mode for kind in CONVERTIBLE_IMAGES}
    assert modes == {"cmyk": "CMYK", "rgba": "RGBA", "deep16": "I;16", "one_pixel": "RGB"}
    assert all(load_rgb_image(corpus.images[kind]).mode == "RGB" for kind in CONVERTIBLE_IMAGES)


@pytest.fixture(scope="module")
def bomb(tmp_path_factory):
    """A ~48 KB PNG of 20000 x 20000 pixels (over twice PIL's MAX_IMAGE_PIXELS: PIL raises)."""
    return write_png_bomb(tmp_path_factory.mktemp("bomb") / "bomb.png")


def test_the_bomb_is_small_on_disk_and_escapes_pil_as_a_non_oserror(bomb):
    """What `load_rgb_image` has to catch: PIL's bomb error is a bare Exception, raised at open()."""
    assert bomb.stat().st_size < 60_000
    with pytest.raises(Image.DecompressionBombError) as caught:
        Image.open(bomb)
    assert not isinstance(caught.value, (OSError, ValueError))


def test_decompression_bomb_is_a_bad_image_error_naming_the_file(bomb):
    with pytest.raises(BadImageError, match="bomb.png: cannot read image .*decompression bomb") as caught:
        load_rgb_image(bomb)
    assert caught.value.source == str(bomb)
    with pytest.raises(BadImageError, match="<bytes>: .*decompression bomb"):
        load_rgb_image(bomb.read_bytes())


def test_image_over_the_warning_size_is_refused_without_a_warning(tmp_path):
    """10000 x 10000 is over MAX_IMAGE_PIXELS (PIL only warns, then decodes 300 MB of RGB): refused too."""
    path = write_png_bomb(tmp_path / "big.png", 10_000, 10_000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(BadImageError, match="big.png: .*decompression bomb"):
            load_rgb_image(path)
    ok = write_png_bomb(tmp_path / "ok.png", 300, 200)  # the same writer below the limit decodes fine
    assert load_rgb_image(ok).size == (300, 200)


def test_curriculum_data_drops_the_bomb_and_names_it(bomb, tmp_path):
    from cer_hf.data.readers.base import drop_unreadable_images
    from cer_hf.data.readers.files import read_image_folder

    (tmp_path / "happy").mkdir()
    for i in range(2):
        Image.new("RGB", (12, 12), (40 * i, 90, 30)).save(tmp_path / "happy" / f"{i}.png")
    (tmp_path / "happy" / "bomb.png").write_bytes(bomb.read_bytes())
    kept, report = drop_unreadable_images(read_image_folder(tmp_path), source="fixture")
    assert len(kept) == 2 and report.skipped["unreadable image"] == 1
    assert "bomb.png" in report.examples["unreadable image"][0]
    assert "decompression bomb" in report.examples["unreadable image"][0]


def test_predict_reports_the_bomb_and_predicts_every_other_image(bomb, tiny_model_dir, tmp_path, capsys):
    faces = []
    for i in range(2):
        faces.append(tmp_path / f"face{i}.png")
        Image.new("RGB", (40, 48), (120 + 40 * i, 80, 60)).save(faces[-1])
    code = main(["predict", str(tiny_model_dir), str(faces[0]), str(bomb), str(faces[1]),
                 "--faces-cropped", "--no-progress"])
    captured = capsys.readouterr()
    assert code == 1
    assert f"{bomb}: cannot read image" in captured.err and "1 of 3 inputs failed" in captured.err
    rows = [line.split("\t")[0] for line in captured.out.splitlines() if line.endswith(tuple("0123456789"))]
    assert rows == [str(faces[0]), str(faces[1])]


# ----------------------------------------------------------------------------- cer-hf data


def test_data_decode_lists_every_unreadable_image_and_keeps_going(bomb, tmp_path, capsys):
    folder = tmp_path / "faces"
    for label in ("happy", "sad"):
        (folder / label).mkdir(parents=True)
        for i in range(2):
            Image.new("RGB", (12, 10), (40 * i, 90, 30)).save(folder / label / f"{i}.png")
    (folder / "happy" / "bomb.png").write_bytes(bomb.read_bytes())
    (folder / "sad" / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")
    code = main(["data", f"imagefolder:{folder}", "--decode", "10"])
    captured = capsys.readouterr()
    assert code == 1
    assert "decoded 4 of 6 images; sizes: {(12, 10): 4}" in captured.out
    assert "unreadable: 2 of 6 images" in captured.out
    lines = captured.out.splitlines()
    assert any("bomb.png: too large, possible decompression bomb" in line for line in lines)
    assert any("corrupt.png: OSError" in line for line in lines)
    assert "2 of 6 decoded images are unreadable" in captured.err


def test_data_decode_of_readable_images_exits_zero(tmp_path, capsys):
    (tmp_path / "happy").mkdir()
    Image.new("RGB", (7, 9)).save(tmp_path / "happy" / "a.png")
    assert main(["data", f"imagefolder:{tmp_path}", "--decode", "5"]) == 0
    assert "decoded 1 of 1 images; sizes: {(7, 9): 1}" in capsys.readouterr().out


def test_data_on_a_header_only_csv_says_0_rows_and_fails(tmp_path, capsys):
    table = tmp_path / "labels.csv"
    table.write_text("image,label\n")
    code = main(["data", f"csv:{table}"])
    captured = capsys.readouterr()
    assert code == 2
    assert "0 rows" in captured.out
    assert f"csv:{table}: the source has no rows (0 rows)" in captured.err


# ----------------------------------------------------------------------------- model locations


def _bad_model(where: str, tmp_path, tiny_model_dir):
    """A MODEL argument that is not a checkpoint: missing, a file, a folder without or with a broken config.json."""
    import shutil

    if where == "missing":
        return tmp_path / "no_such_model"
    if where == "file":
        path = tmp_path / "model.txt"
        path.write_text("not a model")
        return path
    path = tmp_path / where
    path.mkdir()
    shutil.copy(tiny_model_dir / "model.safetensors", path)
    if where == "broken_config":
        (path / "config.json").write_text("{not json")
    return path


@pytest.mark.parametrize("where, message", [
    ("missing", "no such checkpoint folder"), ("file", "not a checkpoint folder"),
    ("no_config", "no config.json"), ("broken_config", "config.json: not valid JSON"),
])
@pytest.mark.parametrize("command", ["predict", "evaluate-video", "evaluate"])
def test_a_model_argument_that_is_no_checkpoint_is_an_error_naming_it(command, where, message, corpus, tiny_model_dir,
                                                                      tmp_path, capsys):
    model = _bad_model(where, tmp_path, tiny_model_dir)
    rest = {"predict": [str(corpus.good[0])], "evaluate": ["synthetic:all:5"],
            "evaluate-video": ["--videos", str(corpus.good_video), "--labels", str(corpus.frame_labels["good"])]}
    assert main([command, str(model), *rest[command]]) == 2
    err = capsys.readouterr().err
    assert f"cer-hf {command}: error: {model}" in err and message in err


@pytest.mark.parametrize("command", ["predict", "evaluate-video"])
def test_a_hub_repo_that_cannot_be_fetched_is_an_error_naming_it(command, corpus, capsys, monkeypatch):
    """Offline (the tests' setting) and not cached: transformers raises an OSError; no traceback, the repo is named."""
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    rest = {"predict": [str(corpus.good[0])],
            "evaluate-video": ["--videos", str(corpus.good_video), "--labels", str(corpus.frame_labels["good"])]}
    assert main([command, "cer-hf-tests/no-such-repo", *rest[command]]) == 2
    assert f"cer-hf {command}: error: " in (err := capsys.readouterr().err) and "cer-hf-tests/no-such-repo" in err


# ----------------------------------------------------------------------------- options of the commands


@pytest.mark.parametrize("command, options, message", [
    ("predict", ["--batch-size", "0"], "--batch-size must be >= 1, got 0"),
    ("predict", ["--device", "tpu"], "--device tpu:"),
    ("predict", ["--output", "{file}"], "--output {file}: a file, not a folder"),
    ("evaluate", ["--batch-size", "0"], "--batch-size must be >= 1, got 0"),
    ("evaluate", ["--output-json", "{folder}"], "--output-json {folder}: a folder, not a file"),
    ("evaluate-video", ["--batch-size", "0"], "--batch-size must be >= 1, got 0"),
    ("evaluate-video", ["--deltas", "5", "-3"], "--deltas must be >= 0 frames, got -3"),
    ("evaluate-video", ["--sigma", "0"], "--sigma must be positive, got 0"),
    ("evaluate-video", ["--output", "{folder}"], "--output {folder}: a folder, not a file"),
])
def test_bad_option_values_are_refused_before_any_work_naming_the_option(command, options, message, corpus,
                                                                         tiny_model_dir, tmp_path, capsys):
    paths = {"file": str(corpus.good[1]), "folder": str(tmp_path)}
    options = [option.format(**paths) for option in options]
    rest = {"predict": [str(corpus.good[0])], "evaluate": ["synthetic:all:5"],
            "evaluate-video": ["--videos", str(corpus.good_video), "--labels", str(corpus.frame_labels["good"])]}
    before = {path: path.read_bytes() for path in corpus.good}
    assert main([command, str(tiny_model_dir), *rest[command], *options]) == 2
    captured = capsys.readouterr()
    assert f"cer-hf {command}: error: {message.format(**paths)}" in captured.err
    assert "Loading weights" not in captured.err and "frame/s" not in captured.err  # refused before the work
    assert {path: path.read_bytes() for path in corpus.good} == before


def test_evaluate_video_reads_every_label_file_before_the_first_video(corpus, tiny_model_dir, capsys, monkeypatch):
    import cer_hf.evaluation.videos as videos_module

    def predict_video(*args, **kwargs):
        raise AssertionError("a video was run before the label files were checked")

    monkeypatch.setattr(videos_module, "predict_video", predict_video)
    good, bad = corpus.frame_labels["good"], corpus.frame_labels["malformed_labels"]
    assert main(["evaluate-video", str(tiny_model_dir), "--videos", str(corpus.good_video), str(corpus.good_video),
                 "--labels", str(good), str(bad)]) == 2
    assert f"{bad}:3: unknown expression label 'banana'" in capsys.readouterr().err


# ----------------------------------------------------------------------------- cer-hf data: labels and options


def test_data_prints_its_report_once(corpus, capsys):
    """The reader logs its report and the command printed it too: every line showed twice (issue 14)."""
    spec = corpus.sources["csv_bad_image_rows"]
    assert main(["data", spec, "--filter-targets"]) == 0
    out = capsys.readouterr().out
    table = spec.removeprefix("csv:")
    assert out.count(f"table {table}: 7 rows") == 1
    assert out.count("kept 7 rows, dropped 0") == 1


def test_data_with_an_option_its_reader_does_not_take_names_it(corpus, capsys):
    assert main(["data", corpus.sources["csv_unknown_label"], "-o", "colour=red"]) == 2
    err = capsys.readouterr().err
    assert "cer-hf data: error: --option colour: not an option of the csv reader" in err
    assert "label_column" in err  # the options it does take are listed


@pytest.mark.parametrize("case, message", [
    ("csv_empty", "empty.csv, line 1: empty file (expected a header line)"),
    ("csv_header_only", "header_only.csv: the source has no rows (0 rows)"),
    ("csv_malformed", "malformed.csv, line 3: 4 columns, but the header has 2"),
    ("csv_missing_image", "missing_image.csv, line 3: image 'gone.png' not found"),
    ("csv_unknown_label", "unknown_label.csv, line 3: unknown expression label 'banana'"),
    ("csv_no_label_column", "no_label_column.csv: cannot tell the label column"),
    ("csv_missing_file", "label table not found: "),
    ("unknown_class_folder", "unknown_class/banana' is not an expression label"),
    ("missing_folder", "image folder not found: "),
    ("unknown_scheme", "has unknown scheme 'nosuch'"),
])
def test_data_on_a_bad_label_source_is_an_error_naming_the_file_and_line(case, message, corpus, capsys):
    assert main(["data", corpus.sources[case]]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cer-hf data: error: ") and message in err and "Traceback" not in err


# ----------------------------------------------------------------------------- cer-hf push


def _checkpoint_copy(tiny_model_dir, folder, **files):
    """A copy of the tiny checkpoint with some files replaced (text) or removed (None)."""
    import shutil

    shutil.copytree(tiny_model_dir, folder)
    for name, text in files.items():
        name = name.replace("__", ".")
        if text is None:
            (folder / name).unlink()
        else:
            (folder / name).write_text(text)
    return folder


@pytest.mark.parametrize("case, files, options, message", [
    ("missing", None, [], "{checkpoint}: no such checkpoint directory"),
    ("broken_config", {"config__json": "{not json"}, [], "{checkpoint}/config.json: not valid JSON"),
    ("no_config", {"config__json": None}, [], "{checkpoint}: no config.json"),
    ("no_weights", {"model__safetensors": None}, [], "has no model weights"),
    ("pickled", {"pytorch_model__bin": "pickle"}, [], "contains pickled weights (pytorch_model.bin)"),
    ("broken_metrics", {"metrics__json": "{oops"}, [], "{checkpoint}/metrics.json: not valid JSON"),
    ("metrics_list", {"metrics__json": "[1, 2]"}, [], "{checkpoint}/metrics.json: expected a JSON object"),
    ("bad_metrics_option", {}, ["--metrics", "{bad_json}"], "--metrics {bad_json}: not valid JSON"),
    ("missing_metrics_option", {}, ["--metrics", "{missing}"], "--metrics {missing}: no such file"),
])
def test_push_of_a_bad_checkpoint_is_an_error_naming_the_file_and_changes_nothing(
        case, files, options, message, tiny_model_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    checkpoint = tmp_path / "checkpoint"
    if files is not None:
        _checkpoint_copy(tiny_model_dir, checkpoint, **files)
    paths = {"checkpoint": checkpoint, "bad_json": tmp_path / "bad.json", "missing": tmp_path / "missing.json"}
    paths["bad_json"].write_text("{oops")
    before = {p.name: p.read_bytes() for p in checkpoint.iterdir()} if checkpoint.exists() else None
    assert main(["push", str(checkpoint), "cer-hf-tests/model", *(o.format(**paths) for o in options)]) == 2
    assert "cer-hf push: error: " in (err := capsys.readouterr().err) and message.format(**paths) in err
    assert ({p.name: p.read_bytes() for p in checkpoint.iterdir()} if checkpoint.exists() else None) == before


# ----------------------------------------------------------------------------- videos and frame folders


def test_an_unreadable_frame_in_a_folder_is_named_counted_and_scored_as_a_frame_without_face(
        corpus, tiny_model_dir, tmp_path, capsys):
    folder = corpus.videos["frames_with_corrupt"]
    out = tmp_path / "out"
    assert main(["predict", str(tiny_model_dir), str(folder), "--faces-cropped", "--output", str(out),
                 "--no-progress", "--smoothing", "none"]) == 0
    captured = capsys.readouterr()
    printed = captured.out + captured.err
    assert f"{folder / '00002.png'}: cannot read image" in printed  # the warning names the file
    assert "3 frames" in printed and "1 unreadable frame skipped" in printed
    rows = list(csv.DictReader((out / "frames_with_corrupt.csv").open()))
    assert [row["frame_name"] for row in rows] == ["00001.png", "00002.png", "00003.png"]
    assert [row["face_found"] for row in rows] == ["1", "0", "1"]
    summary = json.loads((out / "frames_with_corrupt.summary.json").read_text())
    assert summary["unreadable_frames"] == ["00002.png"] and summary["frames"] == 3


def test_evaluate_video_keeps_an_unreadable_frame_so_the_labels_still_line_up(corpus, tiny_model_dir, tmp_path,
                                                                              capsys):
    labels = tmp_path / "labels.txt"
    labels.write_text("0\n1\n2\n")
    assert main(["evaluate-video", str(tiny_model_dir), "--videos", str(corpus.videos["frames_with_corrupt"]),
                 "--labels", str(labels), "--faces-cropped", "--deltas", "1"]) == 0
    captured = capsys.readouterr()
    assert "3 labelled frames of 3" in captured.out and "00002.png: cannot read image" in captured.out + captured.err


def test_a_frame_folder_of_only_unreadable_images_is_an_error_naming_it(corpus, tiny_model_dir, tmp_path, capsys):
    folder = tmp_path / "all_bad"
    folder.mkdir()
    for kind in UNREADABLE_IMAGES:
        (folder / corpus.images[kind].name).write_bytes(corpus.images[kind].read_bytes())
    assert main(["predict", str(tiny_model_dir), str(folder), "--faces-cropped", "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert f"{folder}: cannot read video (none of its 5 frame images could be read" in err
    assert "1 of 1 inputs failed" in err


@pytest.mark.parametrize("case", ["zero_byte_video", "fake_video", "truncated_video", "empty_frame_folder"])
def test_predict_names_a_video_it_cannot_read_and_writes_nothing_for_it(case, corpus, tiny_model_dir, tmp_path,
                                                                        capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "earlier.csv").write_text("kept\n")
    video = corpus.videos[case]
    assert main(["predict", str(tiny_model_dir), str(video), str(corpus.good_video), "--output", str(out),
                 "--faces-cropped", "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert f"cer-hf predict: error: {video}: cannot read video" in err and "1 of 2 inputs failed" in err
    assert sorted(path.name for path in out.iterdir()) == [
        "abaw_predictions.txt", "earlier.csv", "good.csv", "good.summary.json"]
    assert (out / "earlier.csv").read_text() == "kept\n"


# ----------------------------------------------------------------------------- predict --output: nothing lost


def _abaw_rows(out):
    return (out / "abaw_predictions.txt").read_text().splitlines()


def test_predict_output_keeps_the_abaw_rows_of_earlier_calls_and_replaces_a_rerun_sequence(corpus, tiny_model_dir,
                                                                                         tmp_path):
    """Issue 14 item a: a second call's abaw_predictions.txt held only its own sequences."""
    import shutil

    other = shutil.copy(corpus.good_video, tmp_path / "other.mp4")
    out = tmp_path / "out"
    common = ["--output", str(out), "--faces-cropped", "--no-progress"]
    assert main(["predict", str(tiny_model_dir), str(corpus.good_video), *common]) == 0
    first = _abaw_rows(out)
    assert len(first) == 9 and first[1].startswith("good/00001.jpg,")
    assert main(["predict", str(tiny_model_dir), str(other), *common]) == 0
    assert _abaw_rows(out) == first + [row.replace("good/", "other/") for row in first[1:]]
    assert main(["predict", str(tiny_model_dir), str(corpus.good_video), *common, "--smoothing", "none"]) == 0
    rows = _abaw_rows(out)
    assert len(rows) == 17 and [row.split("/")[0] for row in rows[1:]] == ["good"] * 8 + ["other"] * 8


def test_predict_output_refuses_an_abaw_file_of_another_compound_set_and_leaves_it(corpus, tiny_model_dir, tmp_path,
                                                                                    capsys):
    out = tmp_path / "out"
    out.mkdir()
    foreign = "image_location,Happily_Disgusted,Sadly_Disgusted\nclip/00001.jpg,1\n"
    (out / "abaw_predictions.txt").write_text(foreign)
    assert main(["predict", str(tiny_model_dir), str(corpus.good_video), "--output", str(out), "--faces-cropped",
                 "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"{out / 'abaw_predictions.txt'}: its header names other compounds" in err
    assert (out / "abaw_predictions.txt").read_text() == foreign


def test_predict_output_merges_images_csv_by_image(corpus, tiny_model_dir, tmp_path):
    out = tmp_path / "out"
    common = ["--output", str(out), "--faces-cropped", "--no-progress"]
    assert main(["predict", str(tiny_model_dir), str(corpus.good[0]), *common]) == 0
    assert main(["predict", str(tiny_model_dir), str(corpus.good[1]), str(corpus.good[0]), *common]) == 0
    rows = list(csv.DictReader((out / "images.csv").open()))
    assert [row["frame_name"] for row in rows] == [str(corpus.good[0]), str(corpus.good[1])]
    assert [row["frame"] for row in rows] == ["0", "1"]


def test_predict_output_says_nothing_was_written_when_every_input_failed(corpus, tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["predict", str(tiny_model_dir), str(corpus.images["corrupt"]), str(corpus.videos["fake_video"]),
                 "--output", str(out), "--no-progress"]) == 1
    captured = capsys.readouterr()
    assert "wrote results" not in captured.out and f"nothing written to {out}" in captured.out
    assert "2 of 2 inputs failed" in captured.err


# ----------------------------------------------------------------------------- predict: images without a face


def test_predict_table_marks_an_image_where_no_face_was_found(corpus, tiny_model_dir, capsys):
    """Issue 14 item b: a confident label for an image without a face, and no hint."""
    assert main(["predict", str(tiny_model_dir), str(corpus.good[0]), str(corpus.images["one_pixel"])]) == 0
    captured = capsys.readouterr()
    header, *rows = captured.out.strip().splitlines()
    assert header.split("\t")[:3] == ["image", "compound", "face"]
    assert [row.split("\t")[2] for row in rows] == ["none – whole image used"] * 2
    assert "no face found in 2 of 2 images" in captured.err


def test_predict_table_says_the_faces_were_given_with_faces_cropped(corpus, tiny_model_dir, capsys):
    assert main(["predict", str(tiny_model_dir), str(corpus.good[0]), "--faces-cropped"]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip().splitlines()[1].split("\t")[2] == "given (--faces-cropped)"
    assert "no face found" not in captured.err


# ----------------------------------------------------------------------------- every image of the corpus


@pytest.mark.parametrize("kind", UNREADABLE_IMAGES)
def test_predict_names_each_unreadable_image_and_predicts_the_others(kind, corpus, tiny_model_dir, capsys):
    bad = corpus.images[kind]
    assert main(["predict", str(tiny_model_dir), str(corpus.good[0]), str(bad), "--faces-cropped"]) == 1
    captured = capsys.readouterr()
    assert f"{bad}: cannot read image" in captured.err and "1 of 2 inputs failed" in captured.err
    assert [line.split("\t")[0] for line in captured.out.splitlines()[1:]] == [str(corpus.good[0])]


@pytest.mark.parametrize("kind", CONVERTIBLE_IMAGES)
def test_predict_converts_odd_modes_and_tiny_images(kind, corpus, tiny_model_dir, capsys):
    assert main(["predict", str(tiny_model_dir), str(corpus.images[kind]), "--faces-cropped"]) == 0
    assert capsys.readouterr().out.splitlines()[1].startswith(f"{corpus.images[kind]}\t")


def test_evaluate_drops_and_names_the_unreadable_images_and_scores_the_rest(corpus, tiny_model_dir, tmp_path, capsys):
    report = tmp_path / "metrics.json"
    assert main(["evaluate", str(tiny_model_dir), corpus.sources["bad_images_in_folder"],
                 "--output-json", str(report)]) == 0
    out = capsys.readouterr().out
    assert "10 rows" in out and "skipped 5 (unreadable image)" in out
    for kind in UNREADABLE_IMAGES:
        assert corpus.images[kind].name in out, kind
    assert json.loads(report.read_text())["num_basic"] == 10


def test_evaluate_on_only_unreadable_images_says_so(corpus, tiny_model_dir, capsys):
    assert main(["evaluate", str(tiny_model_dir), corpus.sources["only_unreadable_images"]]) == 2
    err = capsys.readouterr().err
    assert "no rows with a basic or compound label to evaluate on (unreadable images" in err


def test_data_decode_lists_every_unreadable_image_of_the_corpus(corpus, capsys):
    assert main(["data", corpus.sources["bad_images_in_folder"], "--decode", "100"]) == 1
    captured = capsys.readouterr()
    assert "decoded 10 of 15 images" in captured.out and "unreadable: 5 of 15 images" in captured.out
    for kind in UNREADABLE_IMAGES:
        assert f"{corpus.images[kind].name}: " in captured.out, kind
