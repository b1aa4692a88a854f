"""The one-call GPU check runs end to end on a CPU with tiny sizes (`--smoke`).

Slow: about 2 minutes on a busy 2-core machine (five Python processes, each importing transformers and
datasets), so it runs with `--run-slow`.
"""

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_check_smoke_runs_every_section_on_cpu():
    result = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--smoke"], capture_output=True,
                            text=True, timeout=480)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    out = result.stdout
    assert "gpu_check: all sections ran" in out
    for expected in ("MFU (model only / end to end)", "channels_last", "curriculum fine-tune step",
                     "video pipeline (faces cropped, gaussian smoothing)", "3 skipped"):
        assert expected in out, expected
