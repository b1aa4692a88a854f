"""Render the Hub model card (README.md) of a checkpoint from the templates in `model_cards/`.

Templates are Jinja2 (the engine `huggingface_hub.ModelCard.from_template` uses, and a hard dependency
of torch, so nothing new to install): a card needs loops (the compound table, the metrics) and
conditionals ("not evaluated" when there is no metrics file), which `string.Template` would push into
Python string building. Rendering is strict: a misspelt variable fails instead of printing nothing.

Everything on the card comes from the checkpoint directory: the config (labels, compounds, sizes),
the weights (parameter count), the image processor, the run's `resolved_args.json` /
`trainer_state.json`, and the metrics file written by the evaluation (`metrics.json`,
`eval_results.json` or `all_results.json`). No figure is typed in; without a metrics file the card
says "not evaluated".
"""

from __future__ import annotations

import json
import math
import re
import sys
from pathlib import Path

import jinja2
import yaml
from huggingface_hub import EvalResult, ModelCard, ModelCardData

METRICS_FILES = ("metrics.json", "eval_results.json", "all_results.json")
TRAINING_FILES = ("resolved_args.json", "training_args.json")
CARD_KINDS = {
    "cer": dict(
        model_type="vit_compound_expression",
        pipeline_tag="image-classification",
        tags=["cer_hf", "facial-expression-recognition", "compound-expression", "emotion-recognition",
              "multi-label-classification", "vit", "custom_code"],
    ),
    "mae": dict(
        model_type="vit_mae",
        pipeline_tag="image-feature-extraction",
        tags=["cer_hf", "vit-mae", "masked-autoencoder", "faces", "facial-expression-recognition"],
    ),
}
# Run settings shown in the card's table (the full set goes in a collapsed block).
HIGHLIGHT_PATTERN = re.compile(
    r"curriculum|stage|mix|cutmix|dataset|data_dir|train_file|max_steps|num_train_epochs|epochs|"
    r"learning_rate|batch_size|mask_ratio|image_size|seed|model_name|mae|pretrain|compound|neutral|loss",
    re.IGNORECASE,
)
# Measurements about speed, not quality: shown in the table, kept out of the model-index.
NON_QUALITY_METRICS = re.compile(r"runtime|per_second|epoch$|^step|num_samples|samples$", re.IGNORECASE)
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def template_path(card: str) -> Path:
    """The template file of a card kind ("cer" or "mae")."""
    if card not in CARD_KINDS:
        raise ValueError(f"unknown card {card!r}; choose one of {', '.join(CARD_KINDS)}")
    return template_file(f"{card}.md")


def template_file(name: str) -> Path:
    """A file of the `model_cards/` templates folder by relative name (`cer.md`, `space/app.py.jinja`)."""
    package = Path(__file__).resolve().parents[1]
    # A source checkout or editable install has them beside the package; a wheel puts them
    # under <prefix>/share/cer_hf/model_cards (setup.cfg data_files).
    folders = (package.parent / "model_cards", Path(sys.prefix) / "share" / "cer_hf" / "model_cards")
    for folder in folders:
        if (folder / name).is_file():
            return folder / name
    raise FileNotFoundError(f"template {name} not found in {' or '.join(map(str, folders))}")


def read_json_object(path: str | Path, what: str | None = None) -> dict:
    """A JSON file that holds one object, as a dict; every error names the file (after `what`, e.g. "--metrics")."""
    label = f"{what} {path}" if what else str(path)
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{label}: no such file")
    try:
        value = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as error:
        raise ValueError(f"{label}: not valid JSON ({error})") from None
    if not isinstance(value, dict):
        raise ValueError(f"{label}: expected a JSON object of names to values, not a {type(value).__name__}")
    return value


def read_config(checkpoint_dir: str | Path) -> dict:
    """The checkpoint's config.json as a dict (clear errors when missing or broken)."""
    path = Path(checkpoint_dir) / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path.parent}: no config.json here; expected a saved model checkpoint directory")
    return read_json_object(path)


def card_kind(config: dict) -> str:
    """"cer" for a `ViTForCompoundExpression` config, "mae" for a `ViTMAE` one."""
    for kind, spec in CARD_KINDS.items():
        if config.get("model_type") == spec["model_type"]:
            return kind
    raise ValueError(
        f"config.json has model_type {config.get('model_type')!r}; publishing handles "
        f"'vit_compound_expression' (card cer) and 'vit_mae' (card mae)"
    )


def find_metrics(checkpoint_dir: str | Path) -> tuple[dict | None, str | None]:
    """The metrics the run wrote next to the weights, and the file name they came from."""
    for name in METRICS_FILES:
        path = Path(checkpoint_dir) / name
        if path.is_file():
            return read_json_object(path), name
    return None, None


def _flatten(values: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _cell(value, digits: int | None = None) -> str:
    """A Markdown table cell: metrics with `digits` significant digits, run arguments as written."""
    text = f"{value:.{digits}g}" if digits and isinstance(value, float) else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def evaluation_section(metrics: dict | None, source: str | None, eval_dataset: str | None) -> dict | None:
    """Table rows and dataset of the evaluation, or None when there are no metrics."""
    if not metrics:
        return None
    flat = _flatten(metrics)
    dataset = eval_dataset or flat.get("dataset") or flat.get("eval_dataset") or "an unnamed evaluation set"
    rows = [(key, _cell(value, 4)) for key, value in flat.items() if _is_number(value)]
    if not rows:
        raise ValueError(f"{source}: no numeric metric in it")
    return {"source": source, "dataset": str(dataset), "split": flat.get("split"), "rows": rows, "flat": flat}


def eval_results(evaluation: dict | None, model_name: str, task_type: str) -> list[EvalResult] | None:
    """The `model-index` entries for the quality metrics (speed figures are left out)."""
    if evaluation is None:
        return None
    dataset = evaluation["dataset"]
    results = []
    for key, value in evaluation["flat"].items():
        if not _is_number(value) or NON_QUALITY_METRICS.search(key):
            continue
        lowered = key.lower()
        metric_type = "f1" if "f1" in lowered else "accuracy" if "acc" in lowered else "loss" if "loss" in lowered else key
        results.append(EvalResult(
            task_type=task_type,
            dataset_type=dataset if HUB_ID.match(dataset) else "custom",
            dataset_name=dataset,
            dataset_split=evaluation["split"],
            metric_type=metric_type,
            metric_name=key,
            metric_value=float(value),
        ))
    return results or None


def training_section(checkpoint_dir: str | Path) -> dict | None:
    """Highlights and the full resolved arguments of the run, plus the trainer state, if recorded."""
    folder = Path(checkpoint_dir)
    source = next((name for name in TRAINING_FILES if (folder / name).is_file()), None)
    state_path = folder / "trainer_state.json"
    if source is None and not state_path.is_file():
        return None
    record = {"source": source or "trainer_state.json", "highlights": [], "all_args": "", "flat": {}, "state": None}
    if source:
        args = read_json_object(folder / source)
        flat = _flatten(args) if isinstance(args, dict) else {}
        record["flat"] = flat
        record["highlights"] = [
            (key, _cell(value)) for key, value in flat.items()
            if value not in (None, "", []) and HIGHLIGHT_PATTERN.search(key.rsplit(".", 1)[-1])
        ]
        record["all_args"] = yaml.safe_dump(args, sort_keys=False, default_flow_style=False).rstrip()
    if state_path.is_file():
        state = read_json_object(state_path)
        parts = [f"{state.get('global_step')} optimizer steps", f"{state.get('epoch')} epochs"]
        if _is_number(state.get("best_metric")):
            parts.append(f"best metric {state['best_metric']:.4f}")
        record["state"] = ", ".join(parts)
        if not source:
            summary = {k: state.get(k) for k in ("global_step", "epoch", "max_steps", "train_batch_size")}
            record["all_args"] = yaml.safe_dump({"trainer_state": summary}, sort_keys=False).rstrip()
    return record


def count_parameters(checkpoint_dir: str | Path) -> int:
    """The number of parameters in the checkpoint's safetensors files (read from their headers)."""
    from safetensors import safe_open

    total = 0
    for path in sorted(Path(checkpoint_dir).glob("*.safetensors")):
        with safe_open(str(path), framework="pt") as handle:
            for name in handle.keys():
                total += math.prod(handle.get_slice(name).get_shape())
    return total


def _human(count: int) -> str:
    for unit, size in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if count >= size:
            return f"{count / size:.1f}{unit}"
    return str(count)


def render_model_card(
    checkpoint_dir: str | Path,
    *,
    card: str | None = None,
    repo_id: str | None = None,
    revision: str | None = None,
    metrics: dict | None = None,
    metrics_source: str | None = None,
    eval_dataset: str | None = None,
    base_model: str | list[str] | None = None,
    datasets: list[str] | None = None,
    license: str = "apache-2.0",
) -> str:
    """The README.md (YAML metadata + Markdown) for the checkpoint in `checkpoint_dir`.

    Args:
        card: "cer" or "mae"; detected from config.json's model_type when None.
        repo_id, revision: used in the copy-paste snippets (defaults: the directory name, "main").
        metrics: metrics to report instead of the checkpoint's metrics file (`metrics_source` names them).
        eval_dataset: the evaluation data's name (default: the metrics file's "dataset" entry).
        base_model, datasets: Hub ids for the metadata. Only given ones are written: a run's arguments
            cannot tell a Hub id ("me/face-mae") from a relative local path ("runs/mae").
    """
    folder = Path(checkpoint_dir)
    config = read_config(folder)
    card = card or card_kind(config)
    expected = CARD_KINDS[card]["model_type"] if card in CARD_KINDS else None
    if expected is None:
        raise ValueError(f"unknown card {card!r}; choose one of {', '.join(CARD_KINDS)}")
    if config.get("model_type") != expected:
        raise ValueError(f"card {card!r} describes model_type {expected!r}, but {folder}/config.json has {config.get('model_type')!r}")
    repo_id = repo_id or folder.resolve().name
    model_name = repo_id.split("/")[-1]
    if metrics is None:
        metrics, metrics_source = find_metrics(folder)
    evaluation = evaluation_section(metrics, metrics_source or "the metrics passed to publish()", eval_dataset)
    training = training_section(folder)

    spec = CARD_KINDS[card]
    results = eval_results(evaluation, model_name, spec["pipeline_tag"])
    card_data = ModelCardData(
        library_name="transformers",
        pipeline_tag=spec["pipeline_tag"],
        license=license,
        tags=list(spec["tags"]),
        datasets=datasets,
        base_model=base_model,
        eval_results=results,
        **({"model_name": model_name} if results else {}),  # model-index needs a name; else leave it out
    )
    processor_path = folder / "preprocessor_config.json"
    processor = read_json_object(processor_path) if processor_path.is_file() else {}
    head = config.get("head_hidden_sizes") or []
    values = dict(
        card_data=card_data.to_yaml(),
        model_name=model_name,
        repo_id=repo_id,
        revision=revision or "main",
        config=config,
        compounds=list(zip(config.get("compound_names", []), config.get("compound_constituents", []))),
        head_description=("MLP " + " → ".join(str(h) for h in head) + " → " if head else "linear → ")
        + f"{len(config.get('basic_labels', []))} logits",
        has_processor=bool(processor),
        image_mean=processor.get("image_mean", "n/a"),
        image_std=processor.get("image_std", "n/a"),
        num_parameters=_human(count_parameters(folder)),
        training=training,
        evaluation=evaluation,
    )
    environment = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    text = environment.from_string(template_path(card).read_text()).render(**values)
    ModelCard(text, ignore_metadata_errors=False)  # the metadata block must parse
    return text
