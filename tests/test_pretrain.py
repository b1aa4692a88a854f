"""MAE pretraining: optimiser/schedule units, checkpoints, and the recipe run for real (1 process, 2 nodes, kill+resume)."""

import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from accelerate import Accelerator
from safetensors.torch import load_file
from transformers import ViTMAEForPreTraining

from cer_hf.presets import mae_config
from cer_hf.pretraining import (
    CheckpointManager, RankState, flops_per_image, lr_at_step, mask_noise, param_groups, scaled_lr,
)

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "pretrain_mae.py"
MICRO = ROOT / "recipes" / "configs" / "pretrain_micro_cpu.yaml"


def recipe_env(**extra):
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    env.update(extra)
    return env


def recipe_command(output_dir, *args):
    return [sys.executable, str(RECIPE), "--config", str(MICRO), "--output_dir", str(output_dir), "--report_to", "none",
            *map(str, args)]


def run_recipe(output_dir, *args, check=True, timeout=240):
    result = subprocess.run(recipe_command(output_dir, *args), env=recipe_env(), capture_output=True, text=True,
                            timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"recipe failed ({result.returncode}):\n{result.stderr[-4000:]}")
    return result


def recipe_module():
    """The recipe loaded as a module (once per test session)."""
    import importlib.util

    module = sys.modules.get("pretrain_mae_recipe")
    if module is None:
        spec = importlib.util.spec_from_file_location("pretrain_mae_recipe", RECIPE)
        module = sys.modules["pretrain_mae_recipe"] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    return module


def recipe_main(output_dir, *args):
    """Run the recipe's main() in this process (saves the ~10 s interpreter start of a subprocess)."""
    recipe_module().main(["--config", str(MICRO), "--output_dir", str(output_dir), "--report_to", "none", *map(str, args)])


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ----------------------------------------------------------------------------- units


@pytest.mark.parametrize("stem", [[], [4, 8]])
def test_a_fresh_mae_has_the_papers_sincos_positions_and_tokens(stem):
    """transformers 5.24's `ViTMAEForPreTraining(config)` leaves both position tables at zero (checked here,
    so this test notices when that changes); `build_mae_for_pretraining` gives the MAE paper's init."""
    from cer_hf.modeling.mae import build_mae_for_pretraining, mae_position_embedding

    config = mae_config("micro", image_size=32, patch_size=8, conv_stem_channels=stem)
    plain = ViTMAEForPreTraining(mae_config("micro", image_size=32, patch_size=8))
    assert plain.vit.embeddings.position_embeddings.abs().max() == 0  # the upstream gap this works around
    torch.manual_seed(0)
    model = build_mae_for_pretraining(config)
    table = mae_position_embedding(4, config.hidden_size)
    assert torch.equal(model.vit.embeddings.position_embeddings, table)
    assert torch.equal(model.decoder.decoder_pos_embed, mae_position_embedding(4, config.decoder_hidden_size))
    assert not model.vit.embeddings.position_embeddings.requires_grad  # fixed, as in the paper
    # row 1 is grid cell (0, 0): sin(0) = 0 and cos(0) = 1 in each quarter; rows differ from cell to cell
    quarter = config.hidden_size // 4
    assert torch.equal(table[0, 1], torch.tensor(([0.0] * quarter + [1.0] * quarter) * 2))
    assert len({tuple(row.tolist()) for row in table[0, 1:]}) == 16
    assert 0.01 < model.vit.embeddings.cls_token.std() < 0.04 and 0.01 < model.decoder.mask_token.std() < 0.04


def test_lr_scaling_rule():
    assert scaled_lr(1.5e-4, 4096) == pytest.approx(2.4e-3)
    assert scaled_lr(1.5e-4, 256) == pytest.approx(1.5e-4)
    with pytest.raises(ValueError, match="positive"):
        scaled_lr(1.5e-4, 0)


def test_warmup_then_half_cycle_cosine():
    kwargs = dict(peak_lr=1.0, total_steps=110, warmup_steps=10, min_lr=0.1)
    assert lr_at_step(0, **kwargs) == 0.0
    assert lr_at_step(5, **kwargs) == pytest.approx(0.5)
    assert lr_at_step(10, **kwargs) == pytest.approx(1.0)
    assert lr_at_step(60, **kwargs) == pytest.approx(0.55)  # half way down the cosine: (peak + min) / 2
    assert lr_at_step(35, **kwargs) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi / 4)))
    assert lr_at_step(110, **kwargs) == pytest.approx(0.1)
    assert lr_at_step(500, **kwargs) == pytest.approx(0.1)
    values = [lr_at_step(step, **kwargs) for step in range(10, 111)]
    assert all(a >= b for a, b in zip(values, values[1:]))


def test_param_groups_exclude_biases_norms_and_tokens_from_decay():
    model = ViTMAEForPreTraining(mae_config("micro", image_size=32, patch_size=8))
    decay, no_decay = param_groups(model, weight_decay=0.05)
    assert (decay["weight_decay"], no_decay["weight_decay"]) == (0.05, 0.0)
    names = {id(p): n for n, p in model.named_parameters()}
    decay_names = {names[id(p)] for p in decay["params"]}
    no_decay_names = {names[id(p)] for p in no_decay["params"]}
    assert all(not n.endswith(".bias") and "norm" not in n for n in decay_names)
    assert all(model.get_parameter(n).ndim >= 2 for n in decay_names)
    assert {"decoder.mask_token", "vit.embeddings.cls_token"} <= no_decay_names
    assert any("layernorm" in n and n.endswith(".weight") for n in no_decay_names)
    assert any(n.endswith("q_proj.weight") for n in decay_names)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert decay_names | no_decay_names == trainable and not decay_names & no_decay_names
    assert not any("position_embeddings" in n for n in trainable)  # fixed sin-cos, never optimised


def test_mask_noise_is_a_function_of_seed_step_rank():
    a = mask_noise(2, 16, seed=0, step=3, rank=1)
    assert torch.equal(a, mask_noise(2, 16, seed=0, step=3, rank=1))
    assert not torch.equal(a, mask_noise(2, 16, seed=0, step=4, rank=1))
    assert not torch.equal(a, mask_noise(2, 16, seed=0, step=3, rank=0))


def test_flops_formula_matches_torch_flop_counter():
    """Within 10% of torch's counter (eager attention: its CPU SDPA kernel is not counted; the counter also
    skips the patch embedding's input gradient, which the 3 × forward convention includes)."""
    from torch.utils.flop_counter import FlopCounterMode

    config = mae_config("micro", image_size=64, patch_size=8)
    config._attn_implementation = "eager"
    model = ViTMAEForPreTraining(config)
    with FlopCounterMode(display=False) as counter:
        model(pixel_values=torch.randn(2, 3, 64, 64)).loss.backward()
    assert flops_per_image(config) == pytest.approx(counter.get_total_flops() / 2, rel=0.1)


def test_checkpoints_rotate_and_latest_survives_an_interrupted_save(tmp_path):
    accelerator = Accelerator(cpu=True)
    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.AdamW(model.parameters())
    model, optimizer = accelerator.prepare(model, optimizer)
    manager = CheckpointManager(tmp_path, keep_last=2)
    for step in (1, 2, 3):
        manager.save(accelerator, RankState(step=step, epoch=1, batches_in_epoch=step, images=4 * step))
    assert [p.name for p in manager.checkpoints()] == ["checkpoint-2", "checkpoint-3"]
    assert manager.resolve("latest").name == "checkpoint-3"
    (tmp_path / ".tmp-checkpoint-4").mkdir()  # what a kill during a save leaves behind
    (tmp_path / ".tmp-checkpoint-4" / "model.safetensors").write_bytes(b"half")
    assert manager.resolve("latest").name == "checkpoint-3"
    state = manager.load(accelerator, manager.resolve("latest"))
    assert (state.step, state.epoch, state.batches_in_epoch, state.images) == (3, 1, 3, 12)
    meta = json.loads((tmp_path / "checkpoint-3" / "meta.json").read_text())
    (tmp_path / "checkpoint-3" / "meta.json").write_text(json.dumps({**meta, "world_size": 8}))
    with pytest.raises(ValueError, match="saved by 8 processes"):
        manager.load(accelerator, tmp_path / "checkpoint-3")
    with pytest.raises(FileNotFoundError, match="not a checkpoint folder"):
        manager.resolve(str(tmp_path))
    with pytest.raises(FileNotFoundError, match="no complete checkpoint"):
        CheckpointManager(tmp_path / "empty").resolve("latest")


@pytest.mark.parametrize("name", ["cpu", "single_gpu", "multi_gpu", "multi_node", "fsdp", "deepspeed_zero2"])
def test_accelerate_configs_parse_and_say_when_to_use_them(name):
    from accelerate.commands.config.config_args import load_config_from_file

    path = ROOT / "accelerate_configs" / f"{name}.yaml"
    assert path.read_text().startswith("# ")
    config = load_config_from_file(str(path))
    expected = {"cpu": (1, 1), "single_gpu": (1, 1), "multi_gpu": (8, 1), "multi_node": (64, 8), "fsdp": (8, 1),
                "deepspeed_zero2": (8, 1)}[name]
    assert (config.num_processes, config.num_machines) == expected


# ----------------------------------------------------------------------------- the recipe, for real


@pytest.mark.slow  # measured 33 s (--durations, 2 shared cores)
def test_micro_recipe_end_to_end_loss_falls(tmp_path):
    """200 steps on the synthetic stream: loss falls (measured: 0.99 → 0.85, first/last 20-step means)."""
    out = tmp_path / "run"
    result = run_recipe(out, "--max_steps", 200, "--logging_steps", 1, "--save_steps", 100, "--report_to", "tensorboard")
    assert "effective batch 32" in result.stdout and "lr 0.0001875" in result.stdout
    losses = [json.loads(line)["loss"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(losses) == 200 and all(math.isfinite(x) for x in losses)
    first, last = sum(losses[:20]) / 20, sum(losses[-20:]) / 20
    assert last < first - 0.07, (first, last)

    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 200 and summary["images"] == 6400 and summary["image_counts"] == {}
    assert list((out / "mae_pretraining").glob("events.out.tfevents.*"))  # TensorBoard through accelerate
    assert json.loads((out / "resolved_args.json").read_text())["ModelArguments"]["model_preset"] == "micro"
    assert (out / "latest").read_text() == "checkpoint-200"
    processor = json.loads((out / "preprocessor_config.json").read_text())
    assert processor["size"] == {"height": 32, "width": 32} and processor["image_mean"] == [0.485, 0.456, 0.406]
    model = ViTMAEForPreTraining.from_pretrained(out)
    assert model.config.mask_ratio == 0.75 and model.config.norm_pix_loss
    from cer_hf.modeling.mae import mae_position_embedding

    table = mae_position_embedding(4, model.config.hidden_size)  # frozen: the recipe trains and saves it unchanged
    assert torch.equal(model.vit.embeddings.position_embeddings, table)
    assert torch.equal(model.decoder.decoder_pos_embed, mae_position_embedding(4, model.config.decoder_hidden_size))

    from cer_hf.modeling.convert import convert_mae_checkpoint

    convert_mae_checkpoint(out, tmp_path / "cer", compound_set_name="abaw7")
    assert (tmp_path / "cer" / "model.safetensors").is_file()


@pytest.mark.slow  # two nodes x 2 processes; measured 25 s
def test_two_nodes_on_loopback_split_the_epoch_and_agree(tmp_path):
    """Two `accelerate launch` "machines" (torchrun + gloo): disjoint samples whose union is the epoch, equal weights."""
    out, port = tmp_path / "run", free_port()
    args = ["--sources", "synthetic:64", "--synthetic_shards", 8, "--per_device_batch_size", 4, "--max_steps", 8,
            "--save_steps", 4, "--logging_steps", 2, "--num_workers", 2, "--log_sample_keys", "true"]
    launches = []
    for machine_rank in (0, 1):
        command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_machines", "2",
                   "--num_processes", "2", "--machine_rank", str(machine_rank), "--main_process_ip", "127.0.0.1",
                   "--main_process_port", str(port), "--mixed_precision", "no", "--dynamo_backend", "no",
                   *recipe_command(out, *args)[1:]]
        # --cpu and --multi_gpu are exclusive in accelerate 1.15: ACCELERATE_USE_CPU selects gloo on CPU.
        log = open(tmp_path / f"machine{machine_rank}.log", "w")
        launches.append(subprocess.Popen(command, env=recipe_env(ACCELERATE_USE_CPU="1"), stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True))
    try:
        for launch in launches:
            launch.wait(timeout=240)
    finally:
        for launch in launches:  # never leave a hung launcher (and its workers) behind
            if launch.poll() is None:
                os.killpg(launch.pid, signal.SIGKILL)
                launch.wait()
    outputs = [(tmp_path / f"machine{rank}.log").read_text() for rank in (0, 1)]
    assert [launch.returncode for launch in launches] == [0, 0], outputs[0][-3000:] + outputs[1][-3000:]
    assert "effective batch 8 = 4 per device × 2 processes" in outputs[0]

    seen = [[line.split("\t")[1] for line in (out / f"sample_keys_rank{r}.tsv").read_text().splitlines()] for r in (0, 1)]
    assert len(seen[0]) == len(seen[1]) == 32
    assert not set(seen[0]) & set(seen[1])
    assert set(seen[0]) | set(seen[1]) == {f"synthetic/{i}" for i in range(64)}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["images"] == 64
    assert summary["replica_digests"][0] == summary["replica_digests"][1]
    assert sorted(p.name for p in (out / "checkpoint-8").glob("rank_state_*.json")) == ["rank_state_0.json",
                                                                                       "rank_state_1.json"]


@pytest.mark.slow  # kill and resume, three runs; measured 55 s
def test_kill_and_resume_matches_uninterrupted_run(tmp_path):
    """SIGKILL after a checkpoint, resume from `latest`: same final weights as a run never interrupted."""
    args = ["--sources", "synthetic:96", "--per_device_batch_size", 4, "--gradient_accumulation_steps", 2,
            "--max_steps", 24, "--save_steps", 8, "--logging_steps", 4, "--num_workers", 2, "--shuffle_buffer", 32]
    run_recipe(tmp_path / "full", *args)

    killed = tmp_path / "killed"
    process = subprocess.Popen(recipe_command(killed, *args), env=recipe_env(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 180
    while not (killed / "latest").exists() and time.time() < deadline and process.poll() is None:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    checkpoint = (killed / "latest").read_text()
    assert checkpoint != "checkpoint-24" and not (killed / "model.safetensors").exists()

    result = run_recipe(killed, *args, "--resume_from_checkpoint", "latest")
    assert f"resumed from {killed / checkpoint}" in result.stdout
    full, resumed = load_file(tmp_path / "full" / "model.safetensors"), load_file(killed / "model.safetensors")
    assert full.keys() == resumed.keys()
    assert max((full[k] - resumed[k]).abs().max().item() for k in full) <= 1e-6
    summary = json.loads((killed / "summary.json").read_text())
    assert summary["images"] == 24 * 8  # counted across the kill


def test_recipe_skips_bad_images_and_reports_them(tmp_path, capsys):
    from test_streams import write_bad_folder

    expected = write_bad_folder(tmp_path / "faces")
    out = tmp_path / "run"
    # 6 usable images, batch 2: 6 steps = 2 epochs, so every bad image is met twice.
    recipe_main(out, "--sources", f"imagefolder:{tmp_path / 'faces'}", "--per_device_batch_size", 2,
                "--max_steps", 6, "--num_workers", 0, "--shuffle_buffer", 4, "--logging_steps", 3)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["image_counts"] == {key: 2 * n for key, n in sorted(expected.items())}
    printed = capsys.readouterr().out
    assert "skipped: 6 (too_small 2, truncated 2, undecodable 2)" in printed
    assert "converted: 10 (CMYK 2, I;16 2, L 2, P 2, RGBA 2)" in printed


def test_non_finite_loss_stops_the_run_and_keeps_the_last_checkpoint(tmp_path):
    from cer_hf.pretraining import NonFiniteLossError

    out = tmp_path / "run"
    with pytest.raises(NonFiniteLossError, match="non-finite loss at step .* Last good checkpoint: .*checkpoint-"):
        recipe_main(out, "--base_learning_rate", 1e30, "--warmup_steps", 0, "--max_steps", 20, "--save_steps", 1,
                    "--logging_steps", 1, "--num_workers", 0)
    latest = CheckpointManager(out).latest()
    assert latest is not None and (latest / "meta.json").is_file()
    assert not (out / "model.safetensors").exists()


# ----------------------------------------------------------------------------- decoder sizes, precision, checks


def test_decoder_presets_keep_todays_default_and_scale_on_request():
    from cer_hf.presets import DECODER_PRESETS, MAE_DECODER, MICRO_DECODER

    def decoder(config):
        return {name: getattr(config, name) for name in MAE_DECODER}

    assert decoder(mae_config("micro")) == MICRO_DECODER  # the demo's model is unchanged
    assert all(decoder(mae_config(name)) == MAE_DECODER for name in ("tiny", "small", "base", "large"))
    assert decoder(mae_config("tiny", decoder="scaled")) == DECODER_PRESETS["tiny"]
    assert decoder(mae_config("small", decoder="scaled"))["decoder_hidden_size"] == 256
    assert decoder(mae_config("base", decoder="scaled")) == MAE_DECODER
    config = mae_config("base", decoder="small", decoder_num_hidden_layers=2)
    assert (config.decoder_hidden_size, config.decoder_num_hidden_layers) == (256, 2)
    with pytest.raises(ValueError, match="--decoder_preset 'huge'"):
        mae_config("base", decoder="huge")
    with pytest.raises(ValueError, match="--decoder_hidden_size 100 is not a multiple of --decoder_num_attention_heads 16"):
        mae_config("base", decoder_hidden_size=100)


def test_recipe_builds_the_decoder_asked_for(tmp_path):
    out = tmp_path / "run"
    recipe_main(out, "--decoder_preset", "tiny", "--decoder_num_hidden_layers", 1, "--max_steps", 2,
                "--num_workers", 0, "--save_steps", 100, "--logging_steps", 1)
    config = json.loads((out / "config.json").read_text())
    assert (config["decoder_hidden_size"], config["decoder_num_hidden_layers"], config["hidden_size"]) == (128, 1, 32)


@pytest.mark.parametrize("args, message", [
    (["--mask_ratio", 1.5], "--mask_ratio 1.5: must be between 0 and 1"),
    (["--mask_ratio", 0], "--mask_ratio 0: must be between 0 and 1"),
    (["--base_learning_rate", -1e-3], "--base_learning_rate -0.001: must be positive"),
    (["--base_learning_rate", 0], "--base_learning_rate 0: must be positive"),
    (["--min_learning_rate=-1e-6"], "--min_learning_rate -1e-06: must be 0 or positive"),  # '=': argparse takes
                                                                                      # -1e-6 for an option
    (["--min_learning_rate", 1e-3], r"--min_learning_rate 0.001 is above the peak lr 0.0001875"),
    (["--decoder_preset", "giant"], "--decoder_preset 'giant'"),
    (["--decoder_hidden_size", 30], "--decoder_hidden_size 30 is not a multiple of --decoder_num_attention_heads 4"),
    (["--decoder_num_hidden_layers", 0], "--decoder_num_hidden_layers 0: must be at least 1"),
])
def test_recipe_refuses_bad_options_before_loading_anything(tmp_path, monkeypatch, args, message):
    module = recipe_module()

    def loaded(*_, **__):
        raise AssertionError("data or model loaded before the options were checked")

    monkeypatch.setattr(module, "pretraining_stream", loaded)
    monkeypatch.setattr(module, "build_mae_for_pretraining", loaded)
    monkeypatch.setattr(module, "load_mae_for_pretraining", loaded)
    out = tmp_path / "run"
    with pytest.raises(SystemExit, match=message):
        recipe_main(out, *args)
    assert not (out / "resolved_args.json").exists()


def test_recipe_refuses_a_pickle_only_checkpoint(tmp_path, tiny_mae_dir, monkeypatch):
    from safetensors.torch import load_file as read_safetensors

    pickled = tmp_path / "pickled"
    pickled.mkdir()
    (pickled / "config.json").write_text((tiny_mae_dir / "config.json").read_text())
    torch.save(read_safetensors(tiny_mae_dir / "model.safetensors"), pickled / "pytorch_model.bin")
    module = recipe_module()
    monkeypatch.setattr(module, "load_mae_for_pretraining", None)  # must not be reached
    out = tmp_path / "run"
    with pytest.raises(SystemExit, match=r"--model_name_or_path .*pickled.* holds only pickled weights \(pytorch_model.bin\)"):
        recipe_main(out, "--model_name_or_path", pickled)
    assert not (out / "resolved_args.json").exists()
    with pytest.raises(SystemExit, match="keeps the decoder it was saved with"):
        recipe_main(out, "--model_name_or_path", tiny_mae_dir, "--decoder_preset", "micro")
    with pytest.raises(SystemExit, match="--model_name_or_path .*: no such folder"):
        recipe_main(out, "--model_name_or_path", tmp_path / "missing" / "dir")
    assert not (out / "resolved_args.json").exists()


def test_cpu_bf16_autocast_tracks_the_float32_loss(tmp_path):
    """`--mixed_precision bf16` on CPU: accelerate 1.15 autocasts the forward to bf16 (weights and optimiser stay
    float32). 30 steps: the loss curve stays within a few percent of float32's."""
    args = ["--max_steps", 30, "--logging_steps", 10, "--save_steps", 100, "--num_workers", 0]
    run_recipe(tmp_path / "fp32", *args)
    run_recipe(tmp_path / "bf16", *args, "--mixed_precision", "bf16")
    losses = {name: [json.loads(line)["loss"] for line in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]
              for name in ("fp32", "bf16")}
    assert len(losses["bf16"]) == 3 and losses["bf16"] != losses["fp32"]  # bf16 did run in lower precision
    assert all(abs(a - b) / a < 0.03 for a, b in zip(losses["fp32"], losses["bf16"])), losses
    assert load_file(tmp_path / "bf16" / "model.safetensors")["vit.embeddings.cls_token"].dtype == torch.float32
    assert "sdpa_fp32_core" not in (tmp_path / "bf16" / "config.json").read_text()  # a run-time choice, not saved


@pytest.mark.slow  # four runs; the first compile fills a fresh inductor cache, the second reuses it; measured 59 s
def test_compiled_recipe_trains_like_eager_and_saves_plain_weights(tmp_path):
    """`--torch_compile true` (recommended on a CPU: docs/pretraining.md, "Against a plain Trainer script"):
    inductor really compiles the model, the loss curve is the eager run's, and the saved checkpoint has the plain
    model's parameter names (no `_orig_mod.` prefix), so `from_pretrained` and `cer-hf convert` read it. A compiled
    run's checkpoint resumes without compiling, and an eager one with compiling, and both end where the eager run
    did."""
    args = ["--max_steps", 6, "--logging_steps", 3, "--save_steps", 3, "--num_workers", 0]
    run_recipe(tmp_path / "eager", *args)
    cache = tmp_path / "inductor-cache"
    result = subprocess.run(recipe_command(tmp_path / "compiled", *args, "--torch_compile", "true"),
                            env=recipe_env(TORCHINDUCTOR_CACHE_DIR=str(cache)), capture_output=True, text=True,
                            timeout=400)
    assert result.returncode == 0, result.stderr[-4000:]
    assert any(path.suffix == ".py" for path in cache.rglob("*")), "inductor wrote no generated kernels"
    losses = {name: [json.loads(line)["loss"] for line in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]
              for name in ("eager", "compiled")}
    assert len(losses["compiled"]) == 2
    assert all(abs(a - b) / a < 1e-4 for a, b in zip(losses["eager"], losses["compiled"])), losses
    eager, compiled = (load_file(tmp_path / name / "model.safetensors") for name in ("eager", "compiled"))
    assert sorted(compiled) == sorted(eager)
    assert all(torch.allclose(compiled[key], eager[key], atol=1e-4) for key in eager)

    # a checkpoint resumes in the other mode, both ways (the second compile reuses the cache: a few seconds)
    run_recipe(tmp_path / "resumed-eager", *args, "--resume_from_checkpoint", tmp_path / "compiled" / "checkpoint-3")
    result = subprocess.run(recipe_command(tmp_path / "resumed-compiled", *args, "--torch_compile", "true",
                                           "--resume_from_checkpoint", tmp_path / "eager" / "checkpoint-3"),
                            env=recipe_env(TORCHINDUCTOR_CACHE_DIR=str(cache)), capture_output=True, text=True,
                            timeout=400)
    assert result.returncode == 0, result.stderr[-4000:]
    for name in ("resumed-eager", "resumed-compiled"):
        resumed = [json.loads(line)["loss"] for line in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]
        assert len(resumed) == 1 and abs(resumed[0] - losses["eager"][1]) / resumed[0] < 1e-4, (name, resumed, losses)
        resumed = load_file(tmp_path / name / "model.safetensors")
        assert all(torch.allclose(resumed[key], eager[key], atol=1e-4) for key in eager), name


def test_under_cpu_bf16_the_attention_core_runs_in_float32(monkeypatch):
    """`use_fp32_attention_core`: under CPU bf16 autocast the SDPA kernel gets float32 query/key/value (its bf16
    CPU kernel is 3-4x slower) while the projections stay bf16; without it the kernel gets bf16."""
    from cer_hf.modeling.attention import use_fp32_attention_core
    from cer_hf.modeling.mae import build_mae_for_pretraining

    seen = []
    sdpa = torch.nn.functional.scaled_dot_product_attention
    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention",
                        lambda query, *args, **kwargs: seen.append(query.dtype) or sdpa(query, *args, **kwargs))
    config = mae_config("micro", image_size=32, patch_size=8)
    config._attn_implementation = "sdpa"
    model = build_mae_for_pretraining(config)
    pixels, noise = torch.randn(2, 3, 32, 32), torch.rand(2, 16)
    float32_loss = model(pixel_values=pixels, noise=noise).loss
    seen.clear()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        bf16_loss = model(pixel_values=pixels, noise=noise).loss
    assert set(seen) == {torch.bfloat16}
    seen.clear()
    use_fp32_attention_core(model)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed_loss = model(pixel_values=pixels, noise=noise).loss
        mixed_loss.backward()
    assert set(seen) == {torch.float32} and len(seen) == config.num_hidden_layers + config.decoder_num_hidden_layers
    assert model.vit.layers[0].attention.q_proj.weight.grad is not None
    assert mixed_loss.item() != bf16_loss.item() and abs(mixed_loss.item() - float32_loss.item()) < 0.02
    seen.clear()
    assert torch.equal(model(pixel_values=pixels, noise=noise).loss, float32_loss)  # float32: the plain SDPA path
    assert set(seen) == {torch.float32}


def test_priming_the_next_pass_trains_the_same_model(tmp_path):
    """--prime_next_pass (a second loader runs the next pass ahead) and --persistent_workers false give the
    weights of the default run: the batches are the same, only their timing differs."""
    args = ["--sources", "synthetic:40", "--synthetic_shards", 4, "--per_device_batch_size", 8, "--max_steps", 12,
            "--num_workers", 2, "--shuffle_buffer", 16, "--save_steps", 100, "--logging_steps", 4]
    for name, extra in (("default", []), ("primed", ["--prime_next_pass", "true"]),
                        ("restarted", ["--persistent_workers", "false"])):
        recipe_main(tmp_path / name, *args, *extra)
    weights = {name: load_file(tmp_path / name / "model.safetensors") for name in ("default", "primed", "restarted")}
    for name in ("primed", "restarted"):
        assert all(torch.equal(weights["default"][k], weights[name][k]) for k in weights["default"]), name
    assert json.loads((tmp_path / "primed" / "summary.json").read_text())["images"] == 2 * 40  # 2 passes: 6 batches (8, 8, 4 per worker)


def test_sample_keys_log_opens_in_a_new_output_dir(tmp_path):
    """The output_dir does not exist before the run; the key log is opened before the first batch."""
    out = tmp_path / "new" / "run"
    recipe_main(out, "--max_steps", 1, "--num_workers", 0, "--per_device_batch_size", 2, "--save_steps", 100,
                "--log_sample_keys", "true", "--sources", "synthetic:4")
    assert len((out / "sample_keys_rank0.tsv").read_text().splitlines()) == 2
