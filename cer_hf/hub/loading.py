"""Load published or local checkpoints safely: safetensors only, a pickle-only repo is refused before download.

    model = load_model("me/cer-vit-small", revision="<commit>")
"""

from __future__ import annotations

from pathlib import Path

from huggingface_hub import HfApi, constants
from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

from cer_hf.modeling.build import model_class_for
from cer_hf.modeling.modeling_cer import ViTForCompoundExpression
# The check lives on the bottom floor so that model building (below the Hub) uses it too; re-exported here.
from cer_hf.safe_weights import PICKLE_SUFFIXES, UnsafeWeightsError, check_safe_weights
from cer_hf.safe_weights import pickle_files as _pickles

__all__ = ["PICKLE_SUFFIXES", "UnsafeWeightsError", "check_safe_weights", "list_model_files", "load_model"]


def list_model_files(repo_or_dir: str | Path, revision: str | None = None, token: str | None = None) -> list[str] | None:
    """The files of a local directory or of a Hub repo at `revision`.

    None when no listing is possible (offline mode, the Hub unreachable or failing): the caller then relies on
    the cache and `use_safetensors=True`. A missing repo or revision raises as usual.
    """
    path = Path(repo_or_dir)
    if path.is_dir():
        return sorted(p.name for p in path.iterdir() if p.is_file())
    if constants.HF_HUB_OFFLINE:
        return None
    try:
        return HfApi(token=token).list_repo_files(str(repo_or_dir), revision=revision)
    except OfflineModeIsEnabled:
        return None
    except HfHubHTTPError as error:
        if error.response is not None and error.response.status_code >= 500:
            return None
        raise
    except Exception as error:  # connection refused, dropped or timed out (httpx transport errors)
        if type(error).__module__.split(".")[0] in ("httpx", "httpx2", "httpcore"):
            return None
        raise


def load_model(repo_or_dir: str | Path, revision: str | None = None, *, token: str | None = None, model_class=None, **kwargs):
    """Load a `ViTForCompoundExpression` (or `model_class`) from a directory or Hub repo, safetensors only.

    The file list is checked first: a repo holding only pickled weights (`*.bin`, `*.pt`…) is refused with
    `UnsafeWeightsError` before anything is downloaded. Loading then passes `use_safetensors=True`, so
    transformers never falls back to a pickle (also when offline, where the list cannot be fetched).
    """
    if model_class is None:  # a local checkpoint says which of our models it is; a Hub repo is a ViT
        model_class = model_class_for(repo_or_dir) if (Path(repo_or_dir) / "config.json").is_file() else ViTForCompoundExpression
    files = list_model_files(repo_or_dir, revision, token)
    if files is not None:
        check_safe_weights(files, f"{repo_or_dir}" + (f" at revision {revision}" if revision else ""))
    return model_class.from_pretrained(str(repo_or_dir), revision=revision, token=token, use_safetensors=True, **kwargs)

