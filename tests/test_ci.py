"""`.ci/run` runs exactly the commands README.md documents: the fast suite, then the slow tests only."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _bash_blocks_after(text: str, heading: str) -> list[str]:
    start = text.index(heading)
    return re.findall(r"```bash\n(.*?)\n```", text[start:start + 1500], flags=re.S)


def test_ci_runs_the_readme_test_command_then_the_slow_tests():
    readme = (ROOT / "README.md").read_text()
    fast, = _bash_blocks_after(readme, "Run the tests")[:1]
    slow, = _bash_blocks_after(readme, "CI also runs the slow tests")[:1]
    assert fast.endswith("python -m pytest -q") and "--run-slow" not in fast  # the README command stays fast
    assert slow == "python -m pytest -q -m slow --run-slow"
    assert "python -m pytest -q --run-slow" in readme  # the whole suite in one command, documented too
    commands = [line for line in (ROOT / ".ci" / "run").read_text().splitlines()
                if line and not line.startswith(("#", "set ", "cd ", "export "))]
    assert commands == [fast, slow]
