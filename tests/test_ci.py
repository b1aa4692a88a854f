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


def test_the_demo_and_one_process_examples_launch_with_the_repos_accelerate_config():
    """Without a config, `accelerate launch` warns 'The following values were not passed to `accelerate launch`'."""
    demo = (ROOT / "recipes" / "demo.sh").read_text()
    assert "LAUNCH=(accelerate launch --config_file accelerate_configs/cpu.yaml)" in demo
    launched = [line for line in demo.splitlines() if re.search(r"recipes/\w+\.py", line) and "LAUNCH" in line]
    assert len(launched) == 2 and all(line.startswith('"${LAUNCH[@]}" recipes/') for line in launched)
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *sorted((ROOT / "recipes").rglob("*.py")),
                 *sorted((ROOT / "recipes" / "configs").glob("*.yaml"))]:
        assert "accelerate launch --num_processes 1 --cpu" not in path.read_text(), path


def test_the_demo_needs_no_tracker_package():
    """The default install (.[video,plots]) has no tensorboard: the demo's recipes must not ask for it."""
    for config in ("pretrain_micro_cpu.yaml", "curriculum_micro_cpu.yaml"):
        text = (ROOT / "recipes" / "configs" / config).read_text()
        assert "report_to: tensorboard" not in text
    assert "--report_to tensorboard" not in (ROOT / "recipes" / "demo.sh").read_text()
