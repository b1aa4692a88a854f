"""A Hugging Face Space (Gradio SDK) that serves the `cer-hf app` demo of a model on the Hub.

    from cer_hf.hub.space import write_space
    write_space("me/cer-vit-small", "space")         # or: cer-hf app me/cer-vit-small --write-space space
    # then: hf upload me/cer-demo space . --repo-type space

The folder holds README.md (front matter `sdk: gradio`, `sdk_version`, `models: [the model]`), app.py
(loads the model and builds the app as `cer-hf app` does), requirements.txt (cer_hf's dependencies
and its `video` and `plots` extras; gradio comes from `sdk_version`) and a copy of the `cer_hf`
package beside app.py. The copy is there because cer_hf is installed from source, not from PyPI:
the Space runs exactly the code that wrote it. Templates: `model_cards/space/*.jinja`.
"""

from __future__ import annotations

import importlib.metadata
import json
import shutil
from pathlib import Path

import jinja2
import yaml
from packaging.requirements import Requirement

import cer_hf
from cer_hf.hub.model_card import HUB_ID, template_file

# The gradio version the app is tested with (the `app` extra's lower bound in setup.cfg).
SPACE_GRADIO_VERSION = "6.31.0"
SPACE_EXTRAS = ("video", "plots")


def space_requirements() -> list[str]:
    """cer_hf's install requirements plus those of the `video` and `plots` extras, markers dropped.

    Read from the installed cer_hf's metadata (setup.cfg), so they cannot drift from the package's own.
    """
    try:
        declared = importlib.metadata.requires("cer_hf") or []
    except importlib.metadata.PackageNotFoundError:
        raise ValueError("writing a Space needs cer_hf installed (pip install -e .): its requirements come "
                         "from the package metadata") from None
    requirements = []
    for text in declared:
        requirement = Requirement(text)
        if requirement.marker is not None:
            if not any(requirement.marker.evaluate({"extra": extra}) for extra in SPACE_EXTRAS):
                continue
            requirement.marker = None
        if str(requirement) not in requirements:
            requirements.append(str(requirement))
    return requirements


def write_space(
    model_id: str,
    folder: str | Path,
    *,
    revision: str | None = None,
    faces_cropped: bool = False,
    detect_width: int = 160,
    options: dict | None = None,
    title: str = "Compound expression recognition",
    license: str = "apache-2.0",
) -> list[str]:
    """Write the Space for the Hub model `model_id` into `folder` (created; must be empty if it exists).

    `options` are `build_app`'s face and smoothing keywords (face_selection, margin, detect_every,
    smoothing, delta, sigma). Returns the top-level names written.
    """
    if not HUB_ID.match(model_id) or Path(model_id).exists():
        raise ValueError(f"{model_id}: a Space loads its model from the Hub; push the checkpoint with "
                         "`cer-hf push CHECKPOINT REPO_ID` and give REPO_ID")
    folder = Path(folder)
    if folder.exists() and any(folder.iterdir()):
        raise ValueError(f"{folder}: the Space folder must be new or empty")
    folder.mkdir(parents=True, exist_ok=True)
    values = {
        "model_id": model_id, "revision": revision, "faces_cropped": faces_cropped, "detect_width": detect_width,
        "options": dict(options or {}), "title": title, "license": license, "gradio_version": SPACE_GRADIO_VERSION,
        "cer_hf_version": cer_hf.__version__,
    }
    environment = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    environment.filters["pyrepr"] = repr
    environment.filters["tojson"] = json.dumps  # a JSON string is a YAML string: safe for any title
    for name in ("README.md", "app.py"):
        text = environment.from_string(template_file(f"space/{name}.jinja").read_text()).render(**values)
        (folder / name).write_text(text)
    front_matter = (folder / "README.md").read_text().split("---\n")[1]
    yaml.safe_load(front_matter)  # the Space's metadata block must parse
    (folder / "requirements.txt").write_text(
        "# cer_hf's dependencies (setup.cfg install_requires + the video and plots extras); gradio comes from\n"
        "# the README's sdk_version.\n" + "\n".join(space_requirements()) + "\n"
    )
    package = Path(cer_hf.__file__).resolve().parent
    shutil.copytree(package, folder / "cer_hf", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return sorted(p.name for p in folder.iterdir())
