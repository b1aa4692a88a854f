"""Load published or local checkpoints safely: safetensors only, a pickle-only repo is refused before download.

    model = load_model("me/cer-vit-small", revision="<commit>")
"""

from __future__ import annotations

import json
from pathlib import Path

from huggingface_hub import HfApi, constants
from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

from cer_hf.modeling.build import model_class_for
from cer_hf.modeling.modeling_cer import ViTForCompoundExpression
# The check lives on the bottom floor so that model building (below the Hub) uses it too; re-exported here.
from cer_hf.safe_weights import PICKLE_SUFFIXES, UnsafeWeightsError, check_safe_weights

__all__ = ["PICKLE_SUFFIXES", "UnsafeWeightsError", "check_model_location", "check_safe_weights", "list_model_files",
           "load_model"]


def check_model_location(repo_or_dir: str | Path) -> None:
    """Raise `FileNotFoundError` (or `ValueError` for a broken config.json) naming `repo_or_dir` when it is
    not a checkpoint folder and cannot be a Hub repo id.

    A folder must hold a readable `config.json`. A path that does not exist is a Hub repo id only when it
    looks like one (`org/name` or `name`): anything starting with `/`, `.` or `~`, or with more than one
    `/`, is a local path that is missing. Otherwise transformers would try the Hub and fail with an
    error about repo id syntax (or, offline, about the cache).
    """
    text = str(repo_or_dir)
    path = Path(repo_or_dir).expanduser()
    if path.is_dir():
        config = path / "config.json"
        if not config.is_file():
            raise FileNotFoundError(f"{text}: no config.json; expected a saved checkpoint folder "
                                    "(config.json and model.safetensors)")
        try:
            json.loads(config.read_text())
        except (ValueError, UnicodeDecodeError) as error:
            raise ValueError(f"{text}: {config.name}: not valid JSON ({error})") from None
        return
    if path.exists():
        raise FileNotFoundError(f"{text}: a file, not a checkpoint folder (config.json and model.safetensors)")
    if text.startswith(("/", ".", "~")) or text.count("/") > 1 or "\\" in text:
        raise FileNotFoundError(f"{text}: no such checkpoint folder (and not a Hub repo id such as org/name)")


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
    A missing folder or a broken config.json is an error naming it (`check_model_location`); an `OSError` of
    transformers (offline and not cached, say) is re-raised with `repo_or_dir` in its message.
    """
    check_model_location(repo_or_dir)
    if model_class is None:  # a local checkpoint says which of our models it is; a Hub repo is a ViT
        model_class = model_class_for(repo_or_dir) if (Path(repo_or_dir) / "config.json").is_file() else ViTForCompoundExpression
    files = list_model_files(repo_or_dir, revision, token)
    if files is not None:
        check_safe_weights(files, f"{repo_or_dir}" + (f" at revision {revision}" if revision else ""))
    try:
        return model_class.from_pretrained(str(repo_or_dir), revision=revision, token=token, use_safetensors=True,
                                           **kwargs)
    except OSError as error:  # transformers' "couldn't connect ... nor find them in the cached files" names no repo
        if str(repo_or_dir) in str(error):
            raise
        raise OSError(f"{repo_or_dir}: cannot load the model ({error})") from None

