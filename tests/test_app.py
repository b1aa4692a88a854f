"""`cer-hf app`: the Gradio demo served on localhost and driven over HTTP with gradio_client, the Hub
Space folder that `--write-space` writes, and the package without gradio.

The served app gets a stub face detector (a fixed box in 64-px-wide images, none otherwise), so the
expected scores are computed here independently: the predictor on a crop cut by hand.
"""

from __future__ import annotations

import ast
import configparser
import csv
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from cer_hf.inference.faces import Face, crop_box
from cer_hf.inference.predictor import CompoundExpressionPredictor

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # read when gradio is imported
REPO_ROOT = Path(__file__).resolve().parents[1]
BOX = Face(8, 4, 24, 24)
CROP = (3, 0, 37, 33)  # BOX with a 0.2 margin: side 24 * 1.4 = 33.6 around (20, 16), clipped at the top


class StubDetector:
    """One face at BOX in 64-px-wide frames, no face in any other."""

    def detect(self, frame):
        return [BOX] if frame.shape[1] == 64 else []


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def write_image(path: Path, shape: tuple[int, int], seed: int) -> Path:
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (*shape, 3), dtype=np.uint8)).save(path)
    return path


def confidences(label: dict) -> dict[str, float]:
    return {entry["label"]: entry["confidence"] for entry in label["confidences"]}


@pytest.fixture(scope="module")
def predictor(tiny_model_dir):
    return CompoundExpressionPredictor.from_pretrained(str(tiny_model_dir), device="cpu")


@pytest.fixture(scope="module")
def client(predictor, tmp_path_factory):
    """The app for the tiny model on a free localhost port, and a gradio_client connected to it."""
    pytest.importorskip("gradio")
    gradio_client = pytest.importorskip("gradio_client")
    from cer_hf.inference.app import build_app

    demo = build_app(predictor, StubDetector(), smoothing="gaussian", delta=2)
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=free_port(), quiet=True)
    try:
        yield gradio_client.Client(demo.local_url, verbose=False,
                                   download_files=str(tmp_path_factory.mktemp("downloads")))
    finally:
        demo.close()


def test_image_scores_over_http_equal_the_predictor_on_the_face_crop(client, predictor, tmp_path):
    from gradio_client import handle_file

    assert crop_box(BOX, (48, 64), margin=0.2) == CROP
    path = write_image(tmp_path / "face.png", (48, 64), seed=1)
    expected = predictor.predict([Image.open(path).crop(CROP)])[0]
    whole = predictor.predict([Image.open(path)])[0]
    assert expected.compound_scores != pytest.approx(whole.compound_scores)  # the crop matters

    table, basics, crop, note = client.predict(handle_file(path), api_name="/predict_image")
    scores = {row[0]: row[1] for row in table["data"]}
    assert table["columns"] == ["compound", "score"] and list(scores) == list(expected.compound_scores)
    assert scores == pytest.approx(expected.compound_scores, rel=1e-6)
    assert confidences(basics) == pytest.approx(expected.basic_probabilities, rel=1e-6)
    assert basics["label"] == max(expected.basic_probabilities, key=expected.basic_probabilities.get)
    assert Image.open(crop).size == (CROP[2] - CROP[0], CROP[3] - CROP[1])
    assert note == f"{expected.compound}; face at x=8, y=4, 24×24 px (of 64×48)"


def test_an_image_without_a_face_is_scored_whole(client, predictor, tmp_path):
    from gradio_client import handle_file

    path = write_image(tmp_path / "noface.png", (40, 40), seed=2)
    expected = predictor.predict([Image.open(path)])[0]
    table, basics, _crop, note = client.predict(handle_file(path), api_name="/predict_image")
    assert {row[0]: row[1] for row in table["data"]} == pytest.approx(expected.compound_scores, rel=1e-6)
    assert confidences(basics) == pytest.approx(expected.basic_probabilities, rel=1e-6)
    assert note == f"{expected.compound}; no face found: the whole image was scored"


def test_an_example_opens_already_scored(predictor, tmp_path):
    gradio = pytest.importorskip("gradio")
    from cer_hf.inference.app import build_app

    path = write_image(tmp_path / "example.png", (48, 64), seed=5)
    expected = predictor.predict([Image.open(path).crop(CROP)])[0]
    demo = build_app(predictor, StubDetector(), example=path)
    values = {block.label: block.value for block in demo.blocks.values() if isinstance(block, gradio.components.Component)}
    assert values["prediction"] == f"{expected.compound}; face at x=8, y=4, 24×24 px (of 64×48)"
    assert confidences(values["basic expression probabilities"]) == pytest.approx(expected.basic_probabilities)
    scores = {row[0]: row[1] for row in values["compound scores"]["data"]}
    assert scores == pytest.approx(expected.compound_scores, rel=1e-6)


CHROMIUM = next((path for name in ("chromium", "chromium-browser", "google-chrome") if (path := shutil.which(name))), None)


@pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (apt-get install chromium)")
def test_a_browser_draws_the_example_bars(predictor, tmp_path):
    """Headless Chromium loads the page and vega draws one bar per compound, at the predictor's score."""
    pytest.importorskip("gradio")
    from cer_hf.inference.app import build_app

    path = write_image(tmp_path / "example.png", (48, 64), seed=6)
    expected = predictor.predict([Image.open(path).crop(CROP)])[0]
    demo = build_app(predictor, StubDetector(), example=path)
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=free_port(), quiet=True)
    try:
        command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={tmp_path / 'profile'}",
                   "--virtual-time-budget=10000", "--dump-dom", demo.local_url]
        dom = subprocess.run(command, capture_output=True, text=True, timeout=180, check=True).stdout
    finally:
        demo.close()
    bars = re.findall(r'aria-label="compound: ([^;"]+); sum of its two basic probabilities: ([0-9.]+)" '
                      r'role="graphics-symbol"', dom)  # the SVG marks, drawn in the browser
    assert {name: float(value) for name, value in bars} == pytest.approx(expected.compound_scores, rel=1e-6)
    assert len(bars) == 7


def test_with_faces_cropped_the_whole_image_is_the_face(predictor, tmp_path):
    from cer_hf.inference.app import predict_image
    from cer_hf.inference.faces import make_detector

    image = np.asarray(Image.open(write_image(tmp_path / "crop.png", (40, 40), seed=4)))
    scores, probabilities, crop, note = predict_image(predictor, make_detector("none"), image)
    expected = predictor.predict([Image.fromarray(image)])[0]
    assert scores == pytest.approx(expected.compound_scores, rel=1e-6) and np.array_equal(crop, image)
    assert probabilities == pytest.approx(expected.basic_probabilities, rel=1e-6)
    assert note == f"{expected.compound}; the whole image is the face (faces cropped)"


def test_video_over_http_gives_the_pipeline_csv_summary_and_timeline(client, predictor, tmp_path):
    av = pytest.importorskip("av")
    pytest.importorskip("matplotlib")
    from gradio_client import handle_file

    from cer_hf.inference import video

    path = tmp_path / "clip.mp4"
    frames = np.random.default_rng(3).integers(0, 256, (9, 48, 64, 3), dtype=np.uint8)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    expected = video.predict_video(predictor, path, detector=StubDetector(), smoothing="gaussian", delta=2)
    expected_csv = video.write_frames_csv(expected, tmp_path / "expected.csv").read_text()

    timeline, shares, summary, frames_csv = client.predict(handle_file(path), api_name="/predict_video")
    assert Path(frames_csv).read_text() == expected_csv
    with open(frames_csv) as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 9 and {row["face_found"] for row in rows} == {"1"}
    assert summary["label_distribution"] == expected.summary()["label_distribution"]
    assert summary["smoothing"] == {"method": "gaussian", "delta": 2, "sigma": 1.0}
    counts = expected.summary()["label_distribution"]
    assert confidences(shares) == pytest.approx({name: n / 9 for name, n in counts.items()})
    assert Image.open(timeline).size == (1200, 400)  # video.plot_timeline's 12 x 4 inches at 100 dpi


def test_space_folder_is_complete(tiny_model_dir, tmp_path, capsys):
    from cer_hf.cli import main
    from cer_hf.hub.space import SPACE_GRADIO_VERSION

    space = tmp_path / "space"
    assert main(["app", "tester/cer-demo", "--write-space", str(space), "--delta", "4", "--margin", "0.3"]) == 0
    assert "hf upload SPACE_ID" in capsys.readouterr().out
    assert sorted(p.name for p in space.iterdir()) == ["README.md", "app.py", "cer_hf", "requirements.txt"]
    front_matter = yaml.safe_load((space / "README.md").read_text().split("---\n")[1])
    assert front_matter["sdk"] == "gradio" and front_matter["app_file"] == "app.py"
    assert front_matter["models"] == ["tester/cer-demo"]
    # the Space's gradio is the version tested, the app extra's lower bound
    setup = configparser.ConfigParser()
    setup.read(REPO_ROOT / "setup.cfg")
    assert f"gradio>={SPACE_GRADIO_VERSION.removesuffix('.0')}" in setup["options.extras_require"]["app"].split()
    assert front_matter["sdk_version"] == SPACE_GRADIO_VERSION
    requirements = (space / "requirements.txt").read_text().splitlines()
    assert {"torch>=2.4", "transformers>=5.0", "av>=12", "opencv-python-headless<5,>=4.8", "matplotlib>=3.8"} <= set(requirements)
    assert not any(line.startswith(("gradio", "pytest", "onnx")) for line in requirements)
    assert (space / "cer_hf" / "inference" / "app.py").read_text() == (REPO_ROOT / "cer_hf/inference/app.py").read_text()
    assert (space / "cer_hf" / "evaluation" / "metrics" / "compound_f1" / "compound_f1.py").is_file()
    assert not list(space.rglob("__pycache__"))


@pytest.mark.slow
def test_space_app_runs_on_its_copy_of_the_package(tiny_model_dir, tmp_path):
    """Import the written app.py as a Space would run it: from its folder, cer_hf not on the path."""
    pytest.importorskip("gradio")
    pytest.importorskip("cv2")
    from cer_hf.cli import main

    space = tmp_path / "space"
    assert main(["app", "tester/cer-demo", "--write-space", str(space), "--delta", "4", "--margin", "0.3"]) == 0
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(CER_MODEL=str(tiny_model_dir), OMP_NUM_THREADS="1", GRADIO_ANALYTICS_ENABLED="False")
    check = ("import app, cer_hf; print(cer_hf.__file__); print(type(app.demo).__name__, app.OPTIONS['delta'], "
             "app.OPTIONS['margin'], type(app.detector).__name__, len(app.predictor.model.config.compound_names))")
    result = subprocess.run([sys.executable, "-c", check], cwd=space, env=env, capture_output=True, text=True,
                            timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    package, line = result.stdout.strip().splitlines()[-2:]
    assert Path(package).resolve() == (space / "cer_hf" / "__init__.py").resolve()  # the copy, not this checkout
    assert line == "Blocks 4 0.3 HaarFaceDetector 7"


def test_space_needs_a_hub_model(tiny_model_dir, tmp_path):
    from cer_hf.hub.space import write_space

    with pytest.raises(ValueError, match="push the checkpoint"):
        write_space(str(tiny_model_dir), tmp_path / "space")


def test_without_gradio_the_package_imports_and_the_command_names_the_extra(tiny_model_dir, monkeypatch, capsys):
    from test_layout import PACKAGE, package_modules

    top_level = []  # gradio may only be imported inside a function (when an app is built)
    for name, path in package_modules(PACKAGE).items():
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [alias.name for alias in node.names] + [getattr(node, "module", None) or ""]
                top_level += [f"{name}: {n}" for n in names if n.split(".")[0] in ("gradio", "gradio_client")]
    assert top_level == []

    from cer_hf.cli import main

    monkeypatch.setitem(sys.modules, "gradio", None)  # `import gradio` now raises ImportError
    assert main(["app", str(tiny_model_dir), "--faces-cropped"]) == 2
    assert "cer-hf app: error: the app needs gradio: pip install 'cer_hf[app]'" in capsys.readouterr().err
