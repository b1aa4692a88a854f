"""Publishing and downstream use, for real, against the local Hub-API server in tests/hubserver.py.

Pushing, downloading and loading run in subprocesses, because huggingface_hub reads HF_ENDPOINT
at import time (and this test process runs with HF_HUB_OFFLINE=1). The downstream child runs from
a temporary directory without PYTHONPATH, so cer_hf is not importable there: it loads the model
through the repo's remote code, as a user without cer_hf would.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import numpy as np
import pytest
import torch
from huggingface_hub import ModelCard
from PIL import Image

from hubserver import HubServer

REPO_ROOT = Path(__file__).resolve().parents[1]
TOKEN = "hf_fakeTokenForTheLocalTestHub0123456789"
REPO = "tester/cer-big"
BRANCH = "v1"
METRICS = {"eval_compound_macro_f1": 0.4321, "eval_loss": 0.5876, "eval_runtime": 3.2, "dataset": "synthetic faces",
           "split": "test"}


def dir_digest(path: Path) -> str:
    """A hash of every file's name, content and mode under `path` (to prove a push leaves it untouched)."""
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(str(file.relative_to(path)).encode())
        digest.update(file.read_bytes())
        digest.update(str(file.stat().st_mode).encode())
    return digest.hexdigest()


def hub_env(server: HubServer, home: Path, *, with_cer_hf: bool = True, offline: bool = False) -> dict:
    """The environment of a child that talks to the test server (or, offline, only to its cache)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_", "PYTHONPATH"))}
    env.update(
        HF_ENDPOINT=server.url, HF_HUB_DISABLE_XET="1", HF_TOKEN=TOKEN, HF_HOME=str(home),
        HF_HUB_OFFLINE="1" if offline else "0", HF_HUB_DISABLE_TELEMETRY="1", OMP_NUM_THREADS="1",
        TOKENIZERS_PARALLELISM="false",
    )
    if with_cer_hf:
        env["PYTHONPATH"] = str(REPO_ROOT)
    return env


def run(args: list[str], env: dict, cwd: Path | None = None, timeout: int = 180) -> subprocess.CompletedProcess:
    return subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def push(checkpoint: Path, repo: str, env: dict, *extra: str) -> subprocess.CompletedProcess:
    return run([sys.executable, "-m", "cer_hf", "push", str(checkpoint), repo, *extra], env)


@pytest.fixture(scope="module")
def big_checkpoint(tmp_path_factory):
    """A converted-model-shaped checkpoint whose safetensors file exceeds 10 MB (so the LFS path runs),
    with the run's metrics and arguments, a fixed input and the model's outputs on it."""
    from transformers.models.vit.image_processing_pil_vit import ViTImageProcessorPil

    from cer_hf.modeling.convert import compound_config
    from cer_hf.modeling.modeling_cer import ViTForCompoundExpression

    folder = tmp_path_factory.mktemp("big") / "checkpoint"
    torch.manual_seed(0)
    config = compound_config("abaw7", image_size=32, patch_size=8, hidden_size=512, num_hidden_layers=1,
                             num_attention_heads=8, intermediate_size=2048, head_hidden_sizes=[64])
    model = ViTForCompoundExpression(config).eval()
    model.save_pretrained(folder)
    ViTImageProcessorPil(size={"height": 32, "width": 32}).save_pretrained(folder)
    (folder / "metrics.json").write_text(json.dumps(METRICS))
    run_args = {"ModelArguments": {"model_name_or_path": "runs/mae-micro", "compound_set": "abaw7"},
                "CurriculumArguments": {"curriculum_stages": [0.0, 0.3, 0.6], "cutmix_prob": 0.5, "mixup_prob": 0.5},
                "TrainingArguments": {"learning_rate": 1e-5, "max_steps": 120, "seed": 0, "output_dir": "runs/cer"}}
    (folder / "resolved_args.json").write_text(json.dumps(run_args))
    assert (folder / "model.safetensors").stat().st_size > 10 * 1024 * 1024

    inputs = folder.parent / "inputs"
    inputs.mkdir()
    pixels = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    np.save(inputs / "pixels.npy", pixels.numpy())
    with torch.no_grad():
        output = model(pixels)
    np.save(inputs / "logits.npy", output.logits.numpy())
    np.save(inputs / "compound_scores.npy", output.compound_scores.numpy())
    face = Image.fromarray(np.random.default_rng(2).integers(0, 256, (48, 40, 3), dtype=np.uint8))
    face.save(inputs / "face.png")
    processor = ViTImageProcessorPil.from_pretrained(folder)
    with torch.no_grad():
        face_output = model(processor(face, return_tensors="pt")["pixel_values"])
    np.save(inputs / "face_probabilities.npy", face_output.probabilities.numpy())
    np.save(inputs / "face_compound_scores.npy", face_output.compound_scores.numpy())
    return folder


@pytest.fixture(scope="module")
def pushed(big_checkpoint, tmp_path_factory):
    """The test server after `cer-hf push CHECKPOINT tester/cer-big --revision v1` (a new branch)."""
    server = HubServer(token=TOKEN).start()
    home = tmp_path_factory.mktemp("pusher-home")
    before = dir_digest(big_checkpoint)
    result = push(big_checkpoint, REPO, hub_env(server, home), "--revision", BRANCH)
    assert result.returncode == 0, result.stderr
    yield {"server": server, "result": result, "digest_before": before}
    server.stop()


def test_push_uploads_weights_by_lfs_and_commits_the_repo(pushed, big_checkpoint):
    server, result = pushed["server"], pushed["result"]
    assert dir_digest(big_checkpoint) == pushed["digest_before"], "the push modified the local checkpoint"
    assert server.unknown_routes == []
    assert TOKEN not in result.stdout + result.stderr

    weights = (big_checkpoint / "model.safetensors").read_bytes()
    assert (hashlib.sha256(weights).hexdigest(), len(weights)) in server.lfs_uploads
    (commit,) = server.commit_payloads
    assert commit["revision"] == BRANCH and commit["oid"] in result.stdout
    kinds = {line["value"]["path"]: line["key"] for line in commit["lines"] if line["key"] != "header"}
    assert kinds == {
        "model.safetensors": "lfsFile", "config.json": "file", "configuration_cer.py": "file",
        "modeling_cer.py": "file", "preprocessor_config.json": "file", "README.md": "file",
        "metrics.json": "file", "resolved_args.json": "file",
    }
    # The new branch holds the files; main still only has the repo's initial commit.
    assert server.files(REPO, "main") == [".gitattributes"]
    assert server.file_content(REPO, "model.safetensors", BRANCH) == weights

    config = json.loads(server.file_content(REPO, "config.json", BRANCH))
    assert config["auto_map"] == {
        "AutoConfig": "configuration_cer.ViTForCompoundExpressionConfig",
        "AutoModel": "modeling_cer.ViTForCompoundExpression",
        "AutoModelForImageClassification": "modeling_cer.ViTForCompoundExpression",
    }
    for name in ("configuration_cer.py", "modeling_cer.py"):
        assert server.file_content(REPO, name, BRANCH) == (REPO_ROOT / "cer_hf" / "modeling" / name).read_bytes()
    assert json.loads(server.file_content(REPO, "preprocessor_config.json", BRANCH))["size"] == {"height": 32, "width": 32}
    assert json.loads(server.file_content(REPO, "metrics.json", BRANCH)) == METRICS

    card = ModelCard(server.file_content(REPO, "README.md", BRANCH).decode())
    assert card.data.library_name == "transformers" and card.data.pipeline_tag == "image-classification"
    assert "custom_code" in card.data.tags
    results = {r.metric_name: r for r in card.data.eval_results}
    assert set(results) == {"eval_compound_macro_f1", "eval_loss"}  # runtime is not a quality metric
    assert results["eval_compound_macro_f1"].metric_value == METRICS["eval_compound_macro_f1"]
    assert results["eval_compound_macro_f1"].dataset_name == "synthetic faces"
    assert "| eval_compound_macro_f1 | 0.4321 |" in card.text
    assert "| `CurriculumArguments.cutmix_prob` | `0.5` |" in card.text
    assert f'revision="{BRANCH}"' in card.text and "Not evaluated" not in card.text
    assert "Happily Surprised | Happiness + Surprise" in card.text


CHILD = r"""
import json, sys
import numpy as np
import torch
from PIL import Image
# A downstream user without cer_hf: block the package even where it is pip-installed (CI installs it),
# so the model can only come from the repo's own remote code.
sys.modules["cer_hf"] = None
try:
    import cer_hf
except ImportError:
    pass
else:
    sys.exit("cer_hf is importable in the downstream child; the test would not prove anything")
from huggingface_hub import snapshot_download
from transformers import AutoModelForImageClassification, pipeline

repo, revision, inputs, offline = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "offline"
folder = snapshot_download(repo, revision=revision)
model = AutoModelForImageClassification.from_pretrained(repo, trust_remote_code=True, revision=revision).eval()
assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
with torch.no_grad():
    output = model(torch.from_numpy(np.load(inputs + "/pixels.npy")))
np.save(inputs + f"/child_logits_{sys.argv[4]}.npy", output.logits.numpy())
np.save(inputs + f"/child_compound_scores_{sys.argv[4]}.npy", output.compound_scores.numpy())
classifier = pipeline("image-classification", model=repo, revision=revision, trust_remote_code=True)
scores = classifier(Image.open(inputs + "/face.png"), top_k=10)
json.dump({"folder": folder, "pipeline": scores, "class": type(model).__name__}, open(inputs + f"/child_{sys.argv[4]}.json", "w"))
"""


@pytest.fixture(scope="module")
def downloaded(pushed, big_checkpoint, tmp_path_factory):
    """Run the downstream child online against the test server; its HF_HOME is reused offline later."""
    home, cwd = tmp_path_factory.mktemp("user-home"), tmp_path_factory.mktemp("user-cwd")
    inputs = big_checkpoint.parent / "inputs"
    env = hub_env(pushed["server"], home, with_cer_hf=False)
    result = run([sys.executable, "-c", CHILD, REPO, BRANCH, str(inputs), "online"], env, cwd=cwd)
    assert result.returncode == 0, result.stderr[-4000:]
    return {"home": home, "cwd": cwd, "inputs": inputs}


def check_child_outputs(inputs: Path, mode: str) -> None:
    np.testing.assert_allclose(np.load(inputs / f"child_logits_{mode}.npy"), np.load(inputs / "logits.npy"), atol=1e-5)
    np.testing.assert_allclose(
        np.load(inputs / f"child_compound_scores_{mode}.npy"), np.load(inputs / "compound_scores.npy"), atol=1e-5
    )
    report = json.loads((inputs / f"child_{mode}.json").read_text())
    assert report["class"] == "ViTForCompoundExpression"
    # The pipeline reports the six basics' sigmoid probabilities (multi-label), not compounds.
    basics = ["Anger", "Disgust", "Fear", "Happiness", "Sadness", "Surprise"]
    expected = dict(zip(basics, np.load(inputs / "face_probabilities.npy")[0].tolist()))
    assert sorted(item["label"] for item in report["pipeline"]) == sorted(basics)
    for item in report["pipeline"]:
        assert item["score"] == pytest.approx(expected[item["label"]], abs=1e-5)


def test_downstream_loads_with_remote_code_without_cer_hf(downloaded, pushed):
    check_child_outputs(downloaded["inputs"], "online")
    snapshot = json.loads((downloaded["inputs"] / "child_online.json").read_text())["folder"]
    assert str(downloaded["home"]) in snapshot
    assert {"modeling_cer.py", "configuration_cer.py", "model.safetensors"} <= set(os.listdir(snapshot))
    assert pushed["server"].unknown_routes == []


CER_HF_CHILD = r"""
import contextlib, io, json, sys
from cer_hf.cli import main
from cer_hf.hub.loading import UnsafeWeightsError, load_model

repo, revision, image, out = sys.argv[1:5]
table = io.StringIO()
with contextlib.redirect_stdout(table):
    code = main(["predict", repo, image, "--revision", revision])
model = load_model(repo, revision=revision)
import cer_hf  # registers the Auto classes: the Auto API then uses cer_hf's code, not the repo's
from transformers import AutoModelForImageClassification
auto = AutoModelForImageClassification.from_pretrained(repo, revision=revision)
try:
    load_model("tester/pickled")
    refusal = None
except UnsafeWeightsError as error:
    refusal = str(error)
json.dump({"code": code, "table": table.getvalue(), "module": type(model).__module__,
           "auto_module": type(auto).__module__,
           "hidden": model.config.hidden_size, "refusal": refusal}, open(out, "w"))
"""


def test_predict_cli_safe_loader_and_pickle_refusal_with_hub_repo_ids(pushed, big_checkpoint, tmp_path):
    server = pushed["server"]
    server.put_file("tester/pickled", "config.json", json.dumps({"model_type": "vit_compound_expression"}).encode())
    server.put_file("tester/pickled", "pytorch_model.bin", b"\x80\x04 not really a pickle")
    inputs = big_checkpoint.parent / "inputs"
    out = tmp_path / "report.json"
    env = hub_env(server, tmp_path / "home")
    result = run([sys.executable, "-c", CER_HF_CHILD, REPO, BRANCH, str(inputs / "face.png"), str(out)], env)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(out.read_text())

    # `cer-hf predict REPO_ID IMAGE --revision v1` gives the original model's compound scores.
    assert report["code"] == 0
    header, row = report["table"].strip().splitlines()[-2:]
    names, values = header.split("\t")[3:], row.split("\t")  # image, compound, face, then the scores
    expected = np.load(inputs / "face_compound_scores.npy")[0]
    assert values[1] == names[int(np.argmax(expected))]
    np.testing.assert_allclose([float(v) for v in values[3:]], expected, atol=1e-3)

    # The safe loader gives cer_hf's own class (no remote code) ...
    assert (report["module"], report["hidden"]) == ("cer_hf.modeling.modeling_cer", 512)
    assert report["auto_module"] == "cer_hf.modeling.modeling_cer"
    # ... and refuses a pickle-only repo from its file list, before downloading anything.
    assert report["refusal"].startswith("tester/pickled holds only pickled weights (pytorch_model.bin)")
    assert "arbitrary code" in report["refusal"]
    assert not any("pickled/resolve" in path for _, path, _ in server.requests)


def test_offline_load_from_the_cache_after_the_server_stops(downloaded, pushed):
    pushed["server"].stop()
    with pytest.raises(OSError):  # the server is really gone
        socket.create_connection(("127.0.0.1", int(pushed["server"].url.rsplit(":", 1)[1])), timeout=2)
    for name in ("child_logits_offline.npy", "child_compound_scores_offline.npy", "child_offline.json"):
        (downloaded["inputs"] / name).unlink(missing_ok=True)
    env = hub_env(pushed["server"], downloaded["home"], with_cer_hf=False, offline=True)
    result = run([sys.executable, "-c", CHILD, REPO, BRANCH, str(downloaded["inputs"]), "offline"], env,
                 cwd=downloaded["cwd"])
    assert result.returncode == 0, result.stderr[-4000:]
    check_child_outputs(downloaded["inputs"], "offline")
    # cer_hf's safe loader cannot list the repo offline; it loads from the cache with use_safetensors=True.
    code = f"from cer_hf.hub.loading import load_model; print(load_model({REPO!r}, revision={BRANCH!r}).config.hidden_size)"
    env = hub_env(pushed["server"], downloaded["home"], offline=True)
    loaded = run([sys.executable, "-c", code], env)
    assert loaded.returncode == 0 and loaded.stdout.split()[-1] == "512", loaded.stderr[-3000:]


# ----- failures -----

FAILURES = {  # repo → (route, answer, what the message must say)
    "tester/fail-commit-500": ("commit", 500, [
        "failed while committing: HTTP 500", "Done: repo", "LFS upload of model.safetensors",
        "On the Hub: nothing from this push is visible at main (its head is still"]),
    "tester/fail-401": ("*", 401, [
        "failed while creating the repo: HTTP 401, the Hub rejected the token", "Done: nothing.",
        "Not done: upload of the weights (model.safetensors); commit of", "On the Hub: nothing was uploaded"]),
    "tester/fail-dropped": ("commit", "drop", [
        "failed while committing: the connection failed or was dropped", "LFS upload of model.safetensors",
        "nothing from this push is visible at main"]),
    "tester/fail-preupload-403": ("preupload", 403, [
        "failed while uploading the large files (LFS): HTTP 403", "Not done: upload of the weights (model.safetensors)",
        "nothing from this push is visible at main"]),
}
RETRIED = "tester/fail-commit-500"  # its commit fails once; the same push run again then succeeds
PUSH_CHILD = r"""
import contextlib, io, json, sys
from cer_hf.cli import main

checkpoint, out, repos = sys.argv[1], sys.argv[2], sys.argv[3:]
results = {}
for repo in repos:
    errors, output = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(errors), contextlib.redirect_stdout(output):
        code = main(["push", checkpoint, repo])
    key = repo if repo not in results else repo + " (again)"
    results[key] = {"code": code, "stderr": errors.getvalue(), "stdout": output.getvalue()}
json.dump(results, open(out, "w"))
"""


@pytest.fixture(scope="module")
def failed_pushes(tmp_path_factory):
    """`cer-hf push` of a small checkpoint to four repos of one server, each failing a different way
    (one child process runs the four pushes, to keep the test fast)."""
    from cer_hf.modeling.convert import compound_config
    from cer_hf.modeling.modeling_cer import ViTForCompoundExpression

    folder = tmp_path_factory.mktemp("failing") / "checkpoint"
    torch.manual_seed(0)
    ViTForCompoundExpression(compound_config(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=1,
                                             num_attention_heads=4, intermediate_size=64)).save_pretrained(folder)
    server = HubServer(token=TOKEN).start()
    for repo, (route, answer, _) in FAILURES.items():
        server.fail(route, answer, repo=repo, times=1 if repo == RETRIED else None)
    before = dir_digest(folder)
    out = folder.parent / "results.json"
    env = hub_env(server, folder.parent / "home")
    try:
        result = run([sys.executable, "-c", PUSH_CHILD, str(folder), str(out), *FAILURES, RETRIED], env)
    finally:
        server.stop()
    assert result.returncode == 0, result.stderr[-3000:]
    weights = hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()
    return {"server": server, "results": json.loads(out.read_text()), "unchanged": dir_digest(folder) == before,
            "weights": weights}


@pytest.mark.parametrize("repo", list(FAILURES))
def test_failed_push_explains_what_was_uploaded(failed_pushes, repo):
    outcome, server = failed_pushes["results"][repo], failed_pushes["server"]
    message = outcome["stderr"]
    assert outcome["code"] == 1, message
    assert "Traceback" not in message and TOKEN not in message + outcome["stdout"]
    assert "cer-hf push: error: pushing" in message and "The local checkpoint was not modified" in message
    for text in FAILURES[repo][2]:
        assert text in message
    assert failed_pushes["unchanged"], "a failed push modified the local checkpoint"
    if repo == RETRIED:
        return  # see test_push_again_after_a_failed_commit
    assert not [c for c in server.commit_payloads if c["repo"] == repo]
    if repo in server.repos:  # created, but its main branch still has only the initial commit
        assert server.files(repo) == [".gitattributes"]
    else:
        assert FAILURES[repo][1] == 401


def test_push_again_after_a_failed_commit(failed_pushes):
    server, again = failed_pushes["server"], failed_pushes["results"][RETRIED + " (again)"]
    assert again["code"] == 0, again["stderr"]
    (commit,) = [c for c in server.commit_payloads if c["repo"] == RETRIED]
    assert f"commit {commit['oid']}" in again["stdout"]
    assert "model.safetensors" in server.files(RETRIED)
    # The weights went up once, in the failed push; the retry found them stored and did not send them again.
    assert [oid for oid, _ in server.lfs_uploads].count(failed_pushes["weights"]) == 1


@pytest.fixture
def small_checkpoint(tmp_path, tiny_cer_config):
    from cer_hf.modeling.modeling_cer import ViTForCompoundExpression

    torch.manual_seed(0)
    folder = tmp_path / "small"
    ViTForCompoundExpression(tiny_cer_config).save_pretrained(folder)
    return folder


def test_pickles_are_refused_when_publishing_and_loading_locally(small_checkpoint, tmp_path):
    from cer_hf.hub.loading import UnsafeWeightsError, load_model
    from cer_hf.hub.publish import stage_checkpoint

    (small_checkpoint / "pytorch_model.bin").write_bytes(b"pickle")
    with pytest.raises(UnsafeWeightsError, match="pytorch_model.bin.*safetensors only"):
        stage_checkpoint(small_checkpoint, tmp_path / "staging")
    (small_checkpoint / "model.safetensors").unlink()
    with pytest.raises(UnsafeWeightsError, match="only pickled weights"):
        load_model(small_checkpoint)


def test_stage_checkpoint_is_read_only_and_mae_card(small_checkpoint, tiny_mae_dir, tmp_path):
    from cer_hf.hub.publish import stage_checkpoint

    for name in ("training_args.bin", "optimizer.pt", "rng_state.pth"):  # Trainer state: skipped, not refused
        (small_checkpoint / name).write_bytes(b"pickle")
    before = dir_digest(small_checkpoint)
    staged = stage_checkpoint(small_checkpoint, tmp_path / "staged", repo_id="me/cer", base_model="me/face-mae",
                              datasets=["me/faces"])
    assert dir_digest(small_checkpoint) == before
    assert "AutoModel" not in json.loads((small_checkpoint / "config.json").read_text()).get("auto_map", {})
    assert "AutoModel" in json.loads((tmp_path / "staged" / "config.json").read_text())["auto_map"]
    assert staged == ["README.md", "config.json", "configuration_cer.py", "model.safetensors", "modeling_cer.py"]
    card = ModelCard((tmp_path / "staged" / "README.md").read_text())
    assert card.data.eval_results is None and "**Not evaluated**" in card.text
    assert (card.data.base_model, card.data.datasets) == ("me/face-mae", ["me/faces"])
    assert "No training record" in card.text

    staged = stage_checkpoint(tiny_mae_dir, tmp_path / "mae-staged", repo_id="me/face-mae")
    assert "modeling_cer.py" not in staged
    assert "auto_map" not in json.loads((tmp_path / "mae-staged" / "config.json").read_text())
    card = ModelCard((tmp_path / "mae-staged" / "README.md").read_text())
    assert card.data.pipeline_tag == "image-feature-extraction" and "ViTMAEModel.from_pretrained" in card.text


# ----- the real Hub (skipped here: no network) -----

def _real_hub_reachable() -> bool:
    try:
        socket.create_connection(("huggingface.co", 443), timeout=3).close()
        return True
    except OSError:
        return False


@pytest.mark.network
@pytest.mark.skipif(not os.environ.get("HF_TOKEN"), reason="network: needs HF_TOKEN with write access")
def test_round_trip_on_the_real_hub(small_checkpoint, tmp_path):
    if not _real_hub_reachable():
        pytest.skip("network: huggingface.co is not reachable")
    env = {k: v for k, v in os.environ.items() if k not in ("HF_ENDPOINT", "HF_HUB_DISABLE_XET", "HF_HOME")}
    env.update(HF_HUB_OFFLINE="0", HF_HOME=str(tmp_path / "home"), PYTHONPATH=str(REPO_ROOT))
    script = textwrap.dedent(f"""
        import numpy as np, torch
        from huggingface_hub import HfApi
        from cer_hf.hub.publish import publish, load_model
        api = HfApi()
        repo = api.whoami()["name"] + "/cer-hf-test-{uuid.uuid4().hex[:8]}"
        try:
            commit = publish({str(small_checkpoint)!r}, repo, private=True)
            from transformers import AutoModelForImageClassification
            remote = AutoModelForImageClassification.from_pretrained(repo, trust_remote_code=True, revision=commit.oid)
            local = load_model({str(small_checkpoint)!r})
            x = torch.randn(1, 3, 32, 32)
            with torch.no_grad():
                assert torch.allclose(remote(x).logits, local(x).logits, atol=1e-5)
        finally:
            api.delete_repo(repo, missing_ok=True)
        print("ok")
    """)
    result = run([sys.executable, "-c", script], env, timeout=600)
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr[-4000:]
