"""Option checks the commands share, run before any model is loaded or input read; errors name the option."""

from __future__ import annotations

from pathlib import Path

import torch


def check_batch_size(value: int, option: str = "--batch-size") -> None:
    """A batch of at least one image."""
    if value < 1:
        raise ValueError(f"{option} must be >= 1, got {value}")


def check_device(value: str | None, option: str = "--device") -> None:
    """A device torch knows, and CUDA only where there is one."""
    if value is None:
        return
    try:
        device = torch.device(value)
    except RuntimeError as error:
        raise ValueError(f"{option} {value}: {error}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"{option} {value}: no CUDA device here (torch.cuda.is_available() is False); use cpu")


def check_output_folder(value: str | None, option: str = "--output") -> None:
    """An output folder that is not an existing file (it is created when missing)."""
    if value is not None and Path(value).exists() and not Path(value).is_dir():
        raise ValueError(f"{option} {value}: a file, not a folder")


def check_output_file(value: str | None, option: str) -> None:
    """An output file that is not an existing folder (its folder is created when missing)."""
    if value is not None and Path(value).is_dir():
        raise ValueError(f"{option} {value}: a folder, not a file")
