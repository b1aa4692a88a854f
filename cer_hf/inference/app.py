"""A browser demo of a compound-expression model, built with Gradio (the `app` extra).

    from cer_hf.inference.app import build_app
    from cer_hf.inference.faces import make_detector
    from cer_hf.inference.predictor import CompoundExpressionPredictor

    demo = build_app(CompoundExpressionPredictor.from_pretrained("path/or/repo-id"), make_detector("haar"))
    demo.launch()                     # or: cer-hf app path/or/repo-id

Two tabs. *Image / webcam*: an uploaded image or a webcam snapshot → the face crop that was scored,
a bar chart of the compound scores and the basic-expression probabilities (API name `/predict_image`). *Video*: an
uploaded or recorded clip → the compound-score timeline, the share of frames per compound, the
summary and the per-frame CSV (API name `/predict_video`).

Nothing here scores or plots on its own: a still goes through `faces.face_or_whole_image` and
`CompoundExpressionPredictor.predict`, exactly as `cer-hf predict IMAGE` does, and a clip through
`video.predict_video`, `video.plot_timeline` and `video.write_frames_csv`, as `cer-hf predict VIDEO
--plot` does. gradio is imported only when an app is built, so the package works without it.
"""

from __future__ import annotations

import tempfile
import uuid
from pathlib import Path

import numpy as np
from PIL import Image

from cer_hf.image_io import load_rgb_image
from cer_hf.inference import video
from cer_hf.inference.faces import FaceDetector, face_or_whole_image
from cer_hf.inference.predictor import CompoundExpressionPredictor

GRADIO_MISSING = "the app needs gradio: pip install 'cer_hf[app]'"


def import_gradio():
    """The gradio module, or an ImportError that names the extra to install."""
    try:
        import gradio
    except ImportError as error:
        raise ImportError(GRADIO_MISSING) from error
    return gradio


def predict_image(
    predictor: CompoundExpressionPredictor, detector: FaceDetector, image: np.ndarray, *,
    face_selection: str = "largest", margin: float = 0.2,
) -> tuple[dict[str, float], dict[str, float], np.ndarray, str]:
    """Compound scores, basic probabilities, the crop that was scored and a line about the face, for one
    RGB image `(H, W, 3)`; the whole image is scored when no face is found (as `cer-hf predict` does)."""
    crop, face = face_or_whole_image(image, detector, face_selection, margin)
    prediction = predictor.predict([Image.fromarray(crop)])[0]
    if face is None:
        note = "no face found: the whole image was scored"
    elif (face.x, face.y, face.width, face.height) == (0, 0, image.shape[1], image.shape[0]):
        note = "the whole image is the face (faces cropped)"
    else:
        note = f"face at x={face.x}, y={face.y}, {face.width}×{face.height} px (of {image.shape[1]}×{image.shape[0]})"
    return prediction.compound_scores, prediction.basic_probabilities, crop, f"{prediction.compound}; {note}"


def predict_clip(
    predictor: CompoundExpressionPredictor, detector: FaceDetector, path: str | Path, folder: str | Path,
    **options,
) -> tuple[str, dict[str, float], dict, str]:
    """Run `video.predict_video` on a clip and write its timeline PNG and per-frame CSV into `folder`.

    Returns the PNG path, the share of frames per compound (smoothed labels), the summary and the CSV
    path. `options` are `predict_video`'s (face_selection, margin, detect_every, smoothing, delta, sigma).
    """
    result = video.predict_video(predictor, path, detector=detector, name=Path(path).stem, **options)
    stem = Path(folder) / f"{Path(path).stem}-{uuid.uuid4().hex[:8]}"
    try:
        timeline = video.plot_timeline(result, stem.with_suffix(".timeline.png"))
    except ImportError as error:
        raise ImportError("the video timeline needs matplotlib: pip install 'cer_hf[plots]'") from error
    frames_csv = video.write_frames_csv(result, stem.with_suffix(".csv"))
    summary = result.summary()
    shares = {name: count / max(result.num_frames, 1) for name, count in summary["label_distribution"].items()}
    return str(timeline), shares, summary, str(frames_csv)


def build_app(
    predictor: CompoundExpressionPredictor,
    detector: FaceDetector,
    *,
    face_selection: str = "largest",
    margin: float = 0.2,
    detect_every: int = 1,
    smoothing: str = "gaussian",
    delta: int = 10,
    sigma: float | None = None,
    title: str = "Compound expression recognition",
    example: str | Path | None = None,
):
    """The Gradio app (`gr.Blocks`) for `predictor`; `detector` finds the face in images and video frames.

    `example`: an image the page opens with, already scored (once, here: every visitor sees the same
    result, and a screenshot needs no wait). The face and smoothing options are those of `cer-hf predict`.
    """
    gr = import_gradio()
    import pandas  # a gradio dependency

    config = predictor.model.config
    compounds, basics = list(config.compound_names), list(config.basic_labels)
    video_options = {"face_selection": face_selection, "margin": margin, "detect_every": detect_every,
                     "smoothing": smoothing, "delta": delta, "sigma": sigma}
    workdir = tempfile.TemporaryDirectory(prefix="cer-hf-app-")  # timelines and CSVs; removed with the app

    def on_image(image):
        if image is None:
            raise gr.Error("upload an image or take a webcam snapshot first")
        scores, probabilities, crop, note = predict_image(
            predictor, detector, image, face_selection=face_selection, margin=margin
        )
        table = pandas.DataFrame({"compound": list(scores), "score": list(scores.values())})
        return table, probabilities, crop, note

    def on_video(path):
        if not path:
            raise gr.Error("upload or record a video first")
        try:
            return predict_clip(predictor, detector, path, workdir.name, **video_options)
        except (ImportError, ValueError) as error:  # a missing extra, an unreadable clip (BadVideoError)
            raise gr.Error(str(error)) from None

    table, probabilities, face_crop, text = (on_image(np.asarray(load_rgb_image(example))) if example
                                             else (None, None, None, None))
    smoothing_text = "no smoothing" if smoothing == "none" else f"{smoothing} smoothing over ±{delta} frames"
    with gr.Blocks(title=title, delete_cache=(3600, 3600)) as demo:
        gr.Markdown(
            f"# {title}\n{len(compounds)} compound expressions ({', '.join(compounds)}) scored from the "
            f"probabilities of {len(basics)} basic expressions. The largest face in the image is cropped "
            "and scored; without a face the whole image is."
        )
        with gr.Tab("Image / webcam"):
            with gr.Row():
                with gr.Column():
                    image = gr.Image(value=str(example) if example else None, sources=["upload", "webcam", "clipboard"],
                                     type="numpy", image_mode="RGB", label="face image or webcam snapshot")
                    image_button = gr.Button("Predict", variant="primary")
                    crop = gr.Image(value=face_crop, label="face crop that was scored", interactive=False, height=160)
                with gr.Column():
                    note = gr.Textbox(value=text, label="prediction", interactive=False)
                    # a bar chart, not gr.Label: a compound score is a sum of two probabilities (0 to 2)
                    compound_scores = gr.BarPlot(
                        table, x="compound", y="score", y_lim=[0, 2], sort="-y", x_title="", x_label_angle=-30,
                        y_title="sum of its two basic probabilities", label="compound scores", height=300,
                    )
                    basic_probabilities = gr.Label(probabilities, num_top_classes=len(basics), label="basic expression probabilities")
            image_button.click(on_image, image, [compound_scores, basic_probabilities, crop, note],
                               api_name="predict_image")
        with gr.Tab("Video"):
            with gr.Row():
                with gr.Column():
                    clip = gr.Video(sources=["upload", "webcam"], label="video (upload or record)")
                    video_button = gr.Button("Predict", variant="primary")
                with gr.Column():
                    shares = gr.Label(num_top_classes=len(compounds), label=f"share of frames per compound ({smoothing_text})")
                    frames_csv = gr.File(label="per-frame CSV", interactive=False)
            timeline = gr.Image(label="compound scores over time", type="filepath", interactive=False)
            summary = gr.JSON(label="summary")
            video_button.click(on_video, clip, [timeline, shares, summary, frames_csv], api_name="predict_video")
    demo.cer_workdir = workdir  # lives as long as the app
    return demo
