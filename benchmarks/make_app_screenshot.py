"""Write docs/app.png: a headless-Chromium screenshot of `cer-hf app` showing a scored example face.

Usage: PYTHONPATH=. python benchmarks/make_app_screenshot.py [--model runs/demo/cer] [--out docs/app.png]

Needs the `app` extra (gradio) and Chromium (Debian: `apt-get install chromium`). The app is built with
an example image (`build_app(..., example=...)`), scored once when the app is built, so the page opens
with the prediction in it and a plain `chromium --headless --screenshot URL` captures it
(`--virtual-time-budget` gives the page's scripts time to render). The example is synthetic compound face number `--index` of
seed 777 (`cer_hf.data.synthetic`, the faces the demo model is trained on), rendered at 224 px; its
true label goes into the page title so the prediction can be checked. The model sees whole images
(`--faces-cropped`: the demo's faces fill the frame). Without --model a random tiny model is used and
the scores mean nothing. `recipes/demo.sh` (steps 1-3) trains runs/demo/cer.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

from PIL import Image

from cer_hf.data.synthetic import synthetic_sample
from cer_hf.inference.app import build_app
from cer_hf.inference.faces import make_detector
from cer_hf.inference.predictor import CompoundExpressionPredictor

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "chrome")


def find_chromium() -> str | None:
    """The first Chromium-like browser on PATH, or None."""
    return next((path for name in CHROMIUM_NAMES if (path := shutil.which(name))), None)


def random_tiny_model(folder: Path) -> Path:
    """A saved random tiny model (benchmarks/tiny_model.py)."""
    from tiny_model import save_tiny_model

    return save_tiny_model(folder)


def screenshot(url: str, out: Path, chromium: str, width: int, height: int, budget_ms: int) -> None:
    """One headless Chromium screenshot of `url` into `out`."""
    with tempfile.TemporaryDirectory(prefix="cer-hf-chromium-") as profile:
        command = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                   f"--user-data-dir={profile}", f"--window-size={width},{height}",
                   f"--virtual-time-budget={budget_ms}", f"--screenshot={out}", url]
        subprocess.run(command, check=True, capture_output=True, timeout=180)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="checkpoint (default: a random tiny model)")
    parser.add_argument("--out", default="docs/app.png")
    parser.add_argument("--index", type=int, default=0, help="which synthetic compound face (seed 777)")
    parser.add_argument("--window", default="1280,1000", help="browser window WIDTH,HEIGHT")
    parser.add_argument("--budget-ms", type=int, default=10000, help="Chromium's --virtual-time-budget")
    args = parser.parse_args()
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # read when build_app imports gradio
    chromium = find_chromium()
    if chromium is None:
        raise SystemExit(f"no Chromium found (looked for {', '.join(CHROMIUM_NAMES)}): apt-get install chromium")

    with tempfile.TemporaryDirectory(prefix="cer-hf-screenshot-") as work:
        work = Path(work)
        model = args.model or str(random_tiny_model(work / "model"))
        predictor = CompoundExpressionPredictor.from_pretrained(model, device="cpu")
        names = list(predictor.model.config.compound_names)
        sample = synthetic_sample(args.index, seed=777, image_size=224, labels=names)
        example = work / "example.png"
        sample["image"].save(example)
        title = f"Compound expression recognition (example: a synthetic '{sample['label']}' face)"
        demo = build_app(predictor, make_detector("none"), title=title, example=example)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True)
        try:
            out = Path(args.out)
            out.parent.mkdir(parents=True, exist_ok=True)
            width, height = (int(v) for v in args.window.split(","))
            screenshot(demo.local_url, out, chromium, width, height, args.budget_ms)
        finally:
            demo.close()
    image = Image.open(out).convert("RGB")
    image.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(out, optimize=True)  # a UI: 256 colours do
    prediction = predictor.predict([sample["image"]])[0]
    print(f"wrote {out} ({out.stat().st_size / 1024:.0f} KB, {image.size[0]}x{image.size[1]}); example label "
          f"{sample['label']!r}, predicted {prediction.compound!r} (model: {args.model or 'random tiny'})")


if __name__ == "__main__":
    main()
