"""Safetensors only: the one check that a checkpoint offers safe weights, shared by model building and the Hub.

A folder or repo that offers only pickled weights (`pytorch_model.bin`, `*.pt`, ...) is refused with
`UnsafeWeightsError` before anything is loaded: unpickling can run arbitrary code.
"""

from __future__ import annotations

from pathlib import Path

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")


class UnsafeWeightsError(ValueError):
    """The repo or directory offers only pickled weights (`.bin`, `.pt`…), which cer_hf does not unpickle."""


def pickle_files(names) -> list[str]:
    """The names in `names` that are pickles (by suffix), sorted."""
    return sorted(name for name in names if name.endswith(PICKLE_SUFFIXES))


def check_safe_weights(files: list[str], source: str) -> None:
    """Raise `UnsafeWeightsError` unless `files` include safetensors weights; explain the refusal."""
    if any(name.endswith(".safetensors") for name in files):
        return
    pickles = pickle_files(files)
    if pickles:
        raise UnsafeWeightsError(
            f"{source} holds only pickled weights ({', '.join(pickles)}): loading them would unpickle, which can "
            "run arbitrary code, so cer_hf refuses. Ask the publisher for safetensors weights, or, if you trust "
            "the file, convert it yourself (torch.load(..., weights_only=True) then save_pretrained(..., "
            "safe_serialization=True))."
        )
    raise FileNotFoundError(f"{source} has no model weights (no *.safetensors file)")


def check_safe_folder(folder: str | Path, source: str | None = None) -> None:
    """`check_safe_weights` on the files of a local checkpoint folder (`source` names it in the error)."""
    path = Path(folder)
    check_safe_weights(sorted(p.name for p in path.iterdir() if p.is_file()), source or str(path))
