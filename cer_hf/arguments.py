"""Recipe arguments: dataclasses whose defaults come from a YAML file and whose values the command line overrides.

    model_args, train_args = parse_args((ModelArguments, TrainingArguments))
    # python recipe.py --config recipes/configs/tiny.yaml --learning_rate 3e-4

One vocabulary across recipes and commands: `--model_preset`, `--mae_checkpoint`,
`--model_name_or_path`, `--*_source` for data specs. Names used by earlier versions
(`RENAMED_OPTIONS`) are refused with an error that names the new one.

A recipe's entry (`run_main`) also ends the recipe with the `accelerate launch` or torchrun
process that started it (`stop_with_launcher`): a one-process `accelerate launch` forwards no signal.
"""

from __future__ import annotations

import ctypes
import dataclasses
import json
import logging
import multiprocessing
import os
import signal
import sys
import time
from pathlib import Path

import yaml
from transformers import HfArgumentParser


# Option names of earlier versions → today's name (the same thing in every recipe).
RENAMED_OPTIONS: dict[str, str] = {
    "preset": "model_preset",
    "mae_dir": "mae_checkpoint",
    "data": "train_source",
    "eval_data": "eval_source",
    "unlabelled_data": "unlabelled_source",
}


def check_renamed(names, where: str = "") -> None:
    """Raise `SystemExit` naming the new option when one of `names` (without dashes) is a retired option name."""
    for name in names:
        if name in RENAMED_OPTIONS:
            raise SystemExit(f"{where}--{name} was renamed --{RENAMED_OPTIONS[name]}; use --{RENAMED_OPTIONS[name]}")


class _CurrentStdout(logging.StreamHandler):
    """A handler that writes to whatever `sys.stdout` is at the time of each message."""

    @property
    def stream(self):
        return sys.stdout

    @stream.setter
    def stream(self, value):  # StreamHandler.__init__ assigns it; the live sys.stdout is used instead
        pass


def log_to_stdout(level: int = logging.INFO) -> None:
    """Show the toolkit's progress messages (logger `cer_hf`) as plain lines on standard output.

    Library modules log and never print; recipes and the `cer-hf` command call this once.
    """
    logger = logging.getLogger("cer_hf")
    logger.setLevel(level)
    if not any(isinstance(handler, _CurrentStdout) for handler in logger.handlers):
        handler = _CurrentStdout()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)


def parse_args(dataclass_types, argv: list[str] | None = None) -> tuple:
    """Parse `--config FILE.yaml` (optional) as defaults, then the remaining command line over it.

    Unknown YAML keys raise an error naming the key and the file, so a typo never goes unnoticed.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    check_renamed(arg[2:].split("=")[0] for arg in argv if arg.startswith("--"))
    config_path = None
    if "--config" in argv:
        at = argv.index("--config")
        if at + 1 >= len(argv):
            raise SystemExit("--config needs a YAML file path")
        config_path = argv[at + 1]
        del argv[at : at + 2]
    parser = HfArgumentParser(dataclass_types)
    if config_path:
        path = Path(config_path)
        if not path.is_file():
            raise SystemExit(f"--config {path}: no such file")
        try:
            values = yaml.safe_load(path.read_text()) or {}
        except (yaml.YAMLError, UnicodeDecodeError) as error:
            raise SystemExit(f"--config {path}: not valid YAML ({_yaml_problem(error)})") from None
        if not isinstance(values, dict):
            raise SystemExit(f"--config {path}: expected a mapping of argument names to values")
        check_renamed(values, where=f"--config {path}: ")
        known = {field.name for cls in dataclass_types for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise SystemExit(f"--config {path}: unknown argument(s) {', '.join(unknown)}")
        parser.set_defaults(**values)
        # A YAML value satisfies a required argument.
        for action in parser._actions:
            if action.dest in values:
                action.required = False
                _check_yaml_value(action, values[action.dest], path)
    return parser.parse_args_into_dataclasses(args=argv)


def _yaml_problem(error: Exception) -> str:
    """Where and what: "line 2, column 1: expected ',' or ']', but got '<stream end>'"."""
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or str(error)
    return f"line {mark.line + 1}, column {mark.column + 1}: {problem}" if mark is not None else problem


def _check_yaml_value(action, value, path: Path) -> None:
    """A YAML number option must hold a number (or a list of numbers where it takes several).

    argparse converts and checks string defaults, but a YAML list or mapping would reach the run as is
    and fail far from the config file (e.g. `image_size: [32, 32]` in the model's shapes).
    """
    if action.type not in (int, float) or value is None or isinstance(value, str):
        return
    takes_several = action.nargs in ("+", "*") or isinstance(action.nargs, int)
    items = value if takes_several and isinstance(value, list) else [value]
    for item in items:
        if isinstance(item, bool) or not isinstance(item, (int, float)) or (
                action.type is int and not float(item).is_integer()):
            wanted = "a list of numbers" if takes_several else "a number"
            raise SystemExit(f"--config {path}: {action.dest}: expected {wanted}, got {value!r}")


@dataclasses.dataclass
class OutputArguments:
    """What a recipe may do to an `--output_dir` that already holds a run."""

    overwrite_output_dir: bool = dataclasses.field(default=False, metadata={
        "help": "allow a run whose seed, batch size, learning rate, ... differ from the resolved_args.json and "
                "checkpoints already in --output_dir (their checkpoints would be mixed with this run's)"})


def resolved_args(args: tuple) -> dict:
    """The arguments as `save_args` writes them: {group class name: {field: JSON value}}."""
    resolved = {}
    for group in args:
        as_dict = group.to_dict() if hasattr(group, "to_dict") else dataclasses.asdict(group)
        resolved[type(group).__name__] = as_dict
    return json.loads(json.dumps(resolved, default=str))


def save_args(args: tuple, output_dir: str | Path, filename: str = "resolved_args.json") -> Path:
    """Write the resolved arguments of a run next to its outputs."""
    path = Path(output_dir) / filename
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(resolved_args(args), indent=2, default=str))
    return path


def check_resume_compatible(saved_json_path: str | Path, current_args: tuple, fields) -> None:
    """Raise ValueError listing each of `fields` whose value differs from the run saved in `saved_json_path`.

    `saved_json_path` is a `resolved_args.json` written by `save_args`; `current_args` the groups of
    this run (as passed to `save_args`). A field is looked up by name in any group; one missing from
    the saved file (an older version) is not compared. Nothing happens when the file does not exist.
    """
    path = Path(saved_json_path)
    if not path.is_file():
        return
    try:
        saved = json.loads(path.read_text())
    except ValueError as error:
        raise ValueError(f"{path}: unreadable ({error}); move it away or pass --overwrite_output_dir") from None
    now = resolved_args(current_args)

    def lookup(groups: dict, name: str):
        for values in groups.values():
            if isinstance(values, dict) and name in values:
                return True, values[name]
        return False, None

    differences = []
    for name in fields:
        found_saved, before = lookup(saved, name)
        found_now, after = lookup(now, name)
        if found_saved and found_now and before != after:
            differences.append(f"{name}: {before!r} in {path.name}, {after!r} now")
    if differences:
        raise ValueError(
            f"{path.parent} already holds a run with different settings ({'; '.join(differences)}); resuming or "
            "adding checkpoints to it would mix two runs. Use another --output_dir, the saved settings, or "
            "--overwrite_output_dir true")


# ----------------------------------------------------------------------------- the launcher's lifetime

# What a launcher's command line holds (its program's file name, or the module given to `python -m`) → its name.
LAUNCHERS = {
    "accelerate": "accelerate launch", "accelerate-launch": "accelerate launch",
    "accelerate.commands.launch": "accelerate launch", "accelerate.commands.accelerate_cli": "accelerate launch",
    "torchrun": "torchrun", "torch.distributed.run": "torchrun", "torch.distributed.launch": "torchrun",
}
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
STOPPED_STATUS = 128 + signal.SIGTERM  # what a shell reports for a process ended by SIGTERM


def launcher_name(pid: int) -> str | None:
    """"accelerate launch" or "torchrun" when process `pid` runs one (read from /proc/<pid>/cmdline), else None."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    for arg in argv[:3]:  # [python, -m, module], [python, /bin/accelerate, launch] or [/bin/torchrun, ...]
        name = LAUNCHERS.get(Path(arg.decode(errors="replace")).name)
        if name:
            return name
    return None


def stop_with_launcher() -> str | None:
    """End this process as soon as the `accelerate launch` or torchrun process that started it ends (Linux).

    `accelerate launch` with one process runs the recipe as a plain child and forwards it no signal:
    SIGTERM or SIGINT sent to the launcher (a scheduler, `kill`, Ctrl-C outside a terminal) ended the
    launcher only, and the recipe went on training and writing checkpoints, adopted by init. Here the
    kernel is asked (`prctl(PR_SET_PDEATHSIG)`) to send this process SIGTERM when its launcher ends,
    and SIGTERM's handler writes one line naming why to stderr, terminates this process's DataLoader
    workers and ends it at once (status 143), like a kill: nothing is written after, and a checkpoint
    being written is left incomplete, which resuming skips. A SIGTERM sent to this process itself
    ends it the same way, naming it (after at most half a second spent telling it from the launcher's end). (torchrun passes SIGTERM and SIGINT on to its workers itself;
    this covers a launcher that dies without doing so, SIGKILLed for one.)

    Returns the launcher's name, or None (and changes nothing) when the parent is no launcher (a
    shell: `nohup python recipe.py &` outlives it as before) or on another system than Linux.
    A launcher that ends before this is called (while the recipe still imports) is not noticed.
    """
    if not sys.platform.startswith("linux"):
        return None
    launcher_pid = os.getppid()
    name = launcher_name(launcher_pid)
    if name is None:
        return None
    own_pid, program = os.getpid(), Path(sys.argv[0]).name

    def stop(signum, frame):
        if os.getpid() != own_pid:  # a forked DataLoader worker inherited this handler: die as by default
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)
            return
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # no "DataLoader worker killed" error from torch's handler
        # The death signal comes when the launcher's thread that started this process ends; the launcher's
        # other threads may still be ending then (this process is handed over to init once they have).
        deadline = time.monotonic() + 0.5
        while os.getppid() == launcher_pid and time.monotonic() < deadline:
            time.sleep(0.01)
        why = (f"the launcher ({name}, pid {launcher_pid}) has ended" if os.getppid() != launcher_pid
               else "received SIGTERM")
        try:
            os.write(2, f"{program}: {why}; stopping this training process (pid {own_pid}) now, without writing "
                        "anything more. Resume with --resume_from_checkpoint: the last complete checkpoint "
                        "is used\n".encode())
        except OSError:  # stderr went away with the launcher
            pass
        for worker in multiprocessing.active_children():
            worker.terminate()
        os._exit(STOPPED_STATUS)

    signal.signal(signal.SIGTERM, stop)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        return None
    if os.getppid() != launcher_pid:  # it ended between the two lines above
        stop(signal.SIGTERM, None)
    return name


def run_main(main, argv: list[str] | None = None) -> None:
    """A recipe's `if __name__ == "__main__":` entry: run `main(argv)`; a usage error exits 2 without a traceback.

    A `ValueError` or `FileNotFoundError` (what the option checks raise: a bad schedule, a missing
    source, pickle-only weights, ...) ends the process with `<recipe>: error: <message>` on stderr
    and exit status 2, like argparse. Any other exception keeps its traceback (a bug, not a usage
    error). `main()` itself still raises, so tests and callers in Python see the exception. This
    is the recipes' command-line edge, the one place outside `commands/` that writes to stderr.
    Under `accelerate launch` or torchrun the process ends with its launcher (`stop_with_launcher`).
    """
    stop_with_launcher()
    try:
        main(argv)
    except (ValueError, FileNotFoundError) as error:
        sys.stderr.write(f"{Path(sys.argv[0]).name}: error: {error}\n")
        sys.stderr.flush()
        raise SystemExit(2) from None
