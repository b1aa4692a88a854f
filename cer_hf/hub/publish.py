"""Publish a checkpoint to the Hugging Face Hub (loading it back safely: `cer_hf.hub.loading`).

    from cer_hf.hub.publish import publish
    url = publish("runs/cer/best", "me/cer-vit-small", revision="v1")   # a CommitInfo: the URL, with .oid

    cer-hf push runs/cer/best me/cer-vit-small --revision v1

What a pushed CER repo holds: the safetensors weights, `config.json` with an `auto_map` (AutoConfig,
AutoModel, AutoModelForImageClassification → the bundled code), `configuration_cer.py` +
`modeling_cer.py` (copied from this package, so `trust_remote_code=True` works without cer_hf),
the image-processor config, the rendered model card (README.md), the metrics file and the run's
resolved arguments. Files are staged in a temporary directory: the local checkpoint is never
modified. Pickled weights are refused, both when pushing and when loading.

The push is create_repo → (create_branch) → preupload (LFS upload) → commit, the steps
`upload_folder` runs, called one by one so that a failure can say what was and was not uploaded.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from pathlib import Path

from huggingface_hub import CommitOperationAdd, HfApi
from huggingface_hub.errors import HfHubHTTPError

from cer_hf.hub.loading import UnsafeWeightsError, check_safe_weights
from cer_hf.hub.model_card import (
    METRICS_FILES, TRAINING_FILES, card_kind, read_config, read_json_object, render_model_card,
)
from cer_hf.safe_weights import pickle_files

# Pickles the HF Trainer writes next to the weights: run state, not weights; never uploaded, not refused.
TRAINER_STATE_PICKLES = re.compile(r"^(training_args\.bin|optimizer\.pt|scheduler\.pt|scaler\.pt|rng_state.*\.pth)$")
CODE_FILES = ("configuration_cer.py", "modeling_cer.py")
AUTO_MAP = {
    "AutoConfig": "configuration_cer.ViTForCompoundExpressionConfig",
    "AutoModel": "modeling_cer.ViTForCompoundExpression",
    "AutoModelForImageClassification": "modeling_cer.ViTForCompoundExpression",
}
PROCESSOR_FILES = ("preprocessor_config.json", "processor_config.json")
WEIGHT_INDEX = "model.safetensors.index.json"


class PublishError(RuntimeError):
    """A push that failed part-way: the message says which steps finished and what the Hub shows.

    Attributes:
        done: the steps that succeeded (e.g. "LFS upload of model.safetensors (12.6 MB)").
        not_done: what was not uploaded or committed.
    """

    def __init__(self, message: str, done: list[str], not_done: list[str]):
        super().__init__(message)
        self.done, self.not_done = done, not_done


def stage_checkpoint(
    checkpoint_dir: str | Path,
    staging_dir: str | Path,
    *,
    card: str | None = None,
    repo_id: str | None = None,
    revision: str | None = None,
    metrics: dict | str | Path | None = None,
    **card_options,
) -> list[str]:
    """Copy what a Hub repo needs from `checkpoint_dir` into `staging_dir`; returns the staged file names.

    The checkpoint is only read. Raises `UnsafeWeightsError` when it holds pickled weights, and
    `FileNotFoundError`/`ValueError` when it is not a publishable checkpoint. `metrics` (a dict or a
    JSON file) replaces the checkpoint's own metrics file; `card_options` go to `render_model_card`.
    """

    source, staging = Path(checkpoint_dir), Path(staging_dir)
    if not source.is_dir():
        raise FileNotFoundError(f"{source}: no such checkpoint directory")
    if staging.resolve() == source.resolve():
        raise ValueError(f"{staging}: the staging directory must not be the checkpoint directory")
    names = sorted(p.name for p in source.iterdir() if p.is_file())
    pickles = [name for name in pickle_files(names) if not TRAINER_STATE_PICKLES.match(name)]
    if pickles:
        raise UnsafeWeightsError(
            f"{source} contains pickled weights ({', '.join(pickles)}); cer_hf publishes safetensors only, because "
            "unpickling a downloaded file can run arbitrary code. Re-save the model with "
            "save_pretrained(..., safe_serialization=True) and remove the pickles."
        )
    check_safe_weights(names, str(source))
    config = read_config(source)
    card = card or card_kind(config)

    staging.mkdir(parents=True, exist_ok=True)
    copied = [n for n in names if n.endswith(".safetensors") or n in (WEIGHT_INDEX, *PROCESSOR_FILES, *TRAINING_FILES)]
    copied += [n for n in ("trainer_state.json",) if n in names]
    for name in copied:
        shutil.copy2(source / name, staging / name)
    if card == "cer":
        # Fresh copies of this package's code: the files next to the weights may be stale.
        package = Path(__file__).resolve().parents[1] / "modeling"  # the self-contained remote-code pair
        for name in CODE_FILES:
            shutil.copy2(package / name, staging / name)
        config["auto_map"] = dict(AUTO_MAP)
    (staging / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")

    metrics_name = None
    if metrics is not None:
        if not isinstance(metrics, dict):
            metrics = read_json_object(metrics, "--metrics")
        metrics_name = "metrics.json"
        (staging / metrics_name).write_text(json.dumps(metrics, indent=2) + "\n")
    else:
        metrics_name = next((n for n in METRICS_FILES if n in names), None)
        if metrics_name:
            shutil.copy2(source / metrics_name, staging / metrics_name)
            metrics = read_json_object(source / metrics_name)
    readme = render_model_card(
        staging, card=card, repo_id=repo_id, revision=revision, metrics=metrics, metrics_source=metrics_name, **card_options
    )
    (staging / "README.md").write_text(readme)
    return sorted(p.name for p in staging.iterdir())


def _size(num_bytes: int) -> str:
    return f"{num_bytes / 1e6:.1f} MB" if num_bytes >= 1e5 else f"{num_bytes / 1e3:.1f} kB"


def _reason(error: BaseException, token: str | None) -> str:
    """A one-line explanation of an HTTP or connection failure (never containing the token)."""

    if isinstance(error, HfHubHTTPError) and error.response is not None:
        status = error.response.status_code
        server = (error.server_message or "").strip() or error.response.reason_phrase
        if status == 401:
            text = (f"HTTP 401, the Hub rejected the token ({server}); set HF_TOKEN or run `hf auth login` "
                    "with a token that has write access")
        elif status == 403:
            text = f"HTTP 403, the token may not write to this repo ({server})"
        elif status >= 500:
            text = f"HTTP {status}, a server error on the Hub ({server}); try again later"
        else:
            text = f"HTTP {status} ({server})"
    elif type(error).__module__.split(".")[0] in ("httpx", "httpx2", "httpcore") or isinstance(error, OSError):
        text = f"the connection failed or was dropped ({type(error).__name__}: {error})"
    else:
        text = f"{type(error).__name__}: {error}"
    if token:
        text = text.replace(token, "***")
    return text


def publish(
    checkpoint_dir: str | Path,
    repo_id: str,
    *,
    private: bool = False,
    revision: str | None = None,
    commit_message: str | None = None,
    token: str | None = None,
    card: str | None = None,
    metrics: dict | str | Path | None = None,
    **card_options,
):
    """Upload a checkpoint to `repo_id` (created if needed) and return the commit (`CommitInfo`: a str
    holding the commit URL, with `.oid` the commit hash).

    Args:
        revision: the branch to commit to (created from main when it does not exist); default main.
        token: a Hub token; default the HF_TOKEN variable or the saved login. Never printed.
        card: "cer" or "mae" model card; detected from config.json when None.
        metrics: a dict or JSON file of measured metrics replacing the checkpoint's metrics file.
        card_options: eval_dataset, base_model, datasets, license (see `render_model_card`).

    Raises `PublishError` (what was and was not uploaded, what the Hub shows) when the Hub or the
    connection fails; `UnsafeWeightsError`, `FileNotFoundError` or `ValueError` for a bad checkpoint,
    before anything is sent.
    """


    branch = revision or "main"
    if re.fullmatch(r"[0-9a-f]{40}", branch):
        raise ValueError(f"--revision {branch} looks like a commit hash; publishing commits to a branch name")
    with tempfile.TemporaryDirectory(prefix="cer-hf-push-") as staging:
        files = stage_checkpoint(
            checkpoint_dir, staging, card=card, repo_id=repo_id, revision=branch, metrics=metrics, **card_options
        )
        api = HfApi(token=token)
        done: list[str] = []
        step = "creating the repo"
        operations: list = []
        head_before = None
        try:
            url = api.create_repo(repo_id, private=private, exist_ok=True)
            done.append(f"repo {url} created (or it existed)")
            if branch != "main":
                step = f"creating the branch {branch}"
                refs = api.list_repo_refs(repo_id)
                if branch not in [ref.name for ref in refs.branches]:
                    api.create_branch(repo_id, branch=branch, exist_ok=True)
                    done.append(f"branch {branch} created from main")
            step = "reading the repo state"
            head_before = api.repo_info(repo_id, revision=branch).sha
            step = "uploading the large files (LFS)"
            operations = [CommitOperationAdd(path_in_repo=name, path_or_fileobj=str(Path(staging) / name)) for name in files]
            api.preupload_lfs_files(repo_id, additions=operations, revision=branch)
            for op in operations:
                if getattr(op, "_upload_mode", None) == "lfs":
                    done.append(f"LFS upload of {op.path_in_repo} ({_size(op.upload_info.size)}) succeeded")
            step = "committing"
            message = commit_message or f"Upload {card or card_kind(read_config(staging))} model with cer_hf"
            return api.create_commit(repo_id, operations, commit_message=message, revision=branch)
        except Exception as error:
            if isinstance(error, (KeyboardInterrupt, SystemExit)):
                raise
            raise _publish_error(api, error, step, done, files, repo_id, branch, head_before, checkpoint_dir, token) from None


def _publish_error(api, error, step, done, files, repo_id, branch, head_before, checkpoint_dir, token) -> PublishError:
    """Describe a failed push: the failing step, what finished, and whether the Hub shows anything new."""
    not_done = []
    if not step.startswith("committing"):
        weights = [name for name in files if name.endswith(".safetensors")]
        not_done.append(f"upload of the weights ({', '.join(weights)})")
    not_done.append(f"commit of {len(files)} files ({', '.join(files)})")
    if step == "committing" and head_before is not None:
        try:
            head_now = api.repo_info(repo_id, revision=branch).sha
            hub_state = (
                f"nothing from this push is visible at {branch} (its head is still {head_now[:12]})"
                if head_now == head_before
                else f"the head of {branch} moved to {head_now[:12]}: check whether the commit went through"
            )
        except Exception as check_error:  # the Hub is still unreachable
            hub_state = f"could not check the Hub state ({_reason(check_error, token)})"
    elif step == "committing" or step.startswith("uploading"):
        hub_state = f"nothing from this push is visible at {branch}"
    else:
        hub_state = "nothing was uploaded"
    retry = "re-running the same command retries"
    if any(item.startswith("LFS upload") for item in done):
        retry += " (the LFS files already uploaded are not sent again)"
    lines = [
        f"pushing {checkpoint_dir} to {repo_id} (revision {branch}) failed while {step}: {_reason(error, token)}.",
        "Done: " + ("; ".join(done) if done else "nothing") + ".",
        "Not done: " + "; ".join(not_done) + ".",
        f"On the Hub: {hub_state}. The local checkpoint was not modified; {retry}.",
    ]
    return PublishError("\n".join(lines), done, not_done)


