"""MAE pretraining of a ViT on streamed face crops (the ABAW7 recipe's first stage).

Launch (see docs/pretraining.md for multi-node and the config presets):

    # CPU demo, ~1-2 minutes
    accelerate launch --config_file accelerate_configs/cpu.yaml recipes/pretrain_mae.py \
        --config recipes/configs/pretrain_micro_cpu.yaml --output_dir runs/mae-micro
    # 8 GPUs, ViT-B/16 at 224 px, the paper's scale
    accelerate launch --config_file accelerate_configs/multi_gpu.yaml recipes/pretrain_mae.py \
        --config recipes/configs/pretrain_vit_base_224.yaml --sources parquet:/data/faces/*.parquet \
        --output_dir runs/mae-vitb
    # resume after a crash or preemption (same launch command plus)
        --resume_from_checkpoint latest

Data loading: every rank reads its own shards (`split_dataset_by_node`) through its own DataLoader;
the loader is deliberately not passed to `accelerator.prepare`. Accelerate's default for iterable
datasets (`dispatch_batches=True`) makes rank 0 read and decode every batch and broadcast it, and
without it a non-`datasets` iterable is wrapped in `IterableDatasetShard`, where every rank reads
everything and keeps a slice. Both waste I/O and decode work at 4.5 M faces × 8 GPUs.
The loader's workers persist across passes (`--persistent_workers`, on by default): each pass's epoch
reaches them through shared memory, so there is no worker restart at a pass boundary.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import accelerate.tracking
import torch
from accelerate import Accelerator
from accelerate.utils import DataLoaderConfiguration, LoggerType, gather_object, set_seed
from tqdm.auto import tqdm
from transformers.models.vit.image_processing_pil_vit import ViTImageProcessorPil

from cer_hf.arguments import log_to_stdout, parse_args, run_main, save_args
from cer_hf.data.streams import FaceStream, collate_faces, pretraining_stream, single_threaded_worker
from cer_hf.data.transforms import MAETrainTransform, normalize_pixels
from cer_hf.hub.loading import UnsafeWeightsError, check_safe_weights, list_model_files
from cer_hf.image_io import normalization
from cer_hf.modeling.attention import use_fp32_attention_core
from cer_hf.modeling.mae import build_mae_for_pretraining, load_mae_for_pretraining
from cer_hf.presets import DECODER_FIELDS, mae_config
from cer_hf.pretraining import (
    CheckpointManager, NonFiniteLossError, RankState, drop_log_lines_after, epoch_batches, format_counts, lr_at_step,
    mask_noise, merge_counts, param_groups, parameter_digest, scaled_lr, set_lr,
)


@dataclass
class ModelArguments:
    """The model: a named size built from scratch, or a saved ViTMAEForPreTraining."""

    model_preset: str = field(default="base", metadata={"help": "micro|tiny|small|base|large|huge"})
    model_name_or_path: str | None = field(default=None, metadata={"help": "start from a saved MAE instead"})
    image_size: int = 224
    patch_size: int = 16
    conv_stem_channels: list[int] = field(
        default_factory=list, metadata={"help": "widths of a convolutional stem (stride-2 3x3 convs); empty: patchify"})
    conv_stem_convs_per_stage: int = field(default=1, metadata={"help": "3x3 convs per stem stage"})
    conv_stem_style: str = field(default="strided", metadata={
        "help": "strided (stride-2 conv opens each stage) or pooled (full-resolution first stage, max-pool between)"})
    conv_stem_masking: str = field(default="blank", metadata={
        "help": "how the conv stem is kept from masked patches: blank (zero their pixels) or sparse (SparK: zero "
                "them after every stem layer, BatchNorm statistics from visible positions only)"})
    mask_ratio: float = field(default=0.75, metadata={"help": "share of patches masked, in (0, 1)"})
    norm_pix_loss: bool = True
    decoder_preset: str | None = field(default=None, metadata={
        "help": "micro|tiny|small|mae|scaled (default: micro for the micro encoder, else mae = the paper's 512x8)"})
    decoder_hidden_size: int | None = field(default=None, metadata={"help": "overrides the decoder preset"})
    decoder_num_hidden_layers: int | None = field(default=None, metadata={"help": "overrides the decoder preset"})
    decoder_num_attention_heads: int | None = field(default=None, metadata={"help": "overrides the decoder preset"})
    decoder_intermediate_size: int | None = field(default=None, metadata={"help": "overrides the decoder preset"})
    gradient_checkpointing: bool = False
    torch_compile: bool = field(default=False, metadata={
        "help": "compile the model (inductor); on a CPU in bf16, 1.12x at the base size after 15-45 s of compiling "
                "(docs/pretraining.md)"})


@dataclass
class DataArguments:
    """The face stream and its augmentation."""

    sources: list[str] = field(default_factory=lambda: ["synthetic"], metadata={"help": "source specs, see docs"})
    source_probabilities: list[float] | None = field(default=None, metadata={"help": "one per source"})
    shuffle_buffer: int = 1000
    num_workers: int = 4
    prefetch_factor: int = 4
    persistent_workers: bool = field(default=True, metadata={
        "help": "keep DataLoader workers alive across passes (no restart stall at each pass boundary)"})
    prime_next_pass: bool = field(default=False, metadata={
        "help": "a second loader starts the next pass before this one ends (no refill stall; 2x workers)"})
    allow_uneven_shards: bool = False
    normalization: str = field(default="imagenet", metadata={"help": "imagenet|face"})
    crop_scale_min: float = 0.2
    min_image_size: int = field(default=8, metadata={"help": "smaller images are skipped"})
    synthetic_image_size: int | None = field(default=None, metadata={"help": "default: image_size"})
    synthetic_shards: int = 16
    log_sample_keys: bool = field(default=False, metadata={"help": "write every consumed sample key per rank"})


@dataclass
class PretrainingArguments:
    """Optimisation, precision, checkpoints and logging."""

    output_dir: str = field(default=None, metadata={"help": "required"})
    per_device_batch_size: int = 64
    gradient_accumulation_steps: int = 1
    max_steps: int = 1000
    warmup_steps: int = 100
    base_learning_rate: float = 1.5e-4
    min_learning_rate: float = 0.0
    weight_decay: float = 0.05
    adam_beta1: float = 0.9
    adam_beta2: float = 0.95
    max_grad_norm: float | None = field(default=None, metadata={"help": "clip gradients (off by default)"})
    mixed_precision: str = field(default="no", metadata={"help": "no|bf16|fp16"})
    seed: int = 0
    save_steps: int = 500
    save_total_limit: int = 3
    resume_from_checkpoint: str | None = field(default=None, metadata={"help": "a checkpoint folder or 'latest'"})
    logging_steps: int = 10
    report_to: str = field(default="none", metadata={
        "help": "none (metrics.jsonl only) or an accelerate tracker such as tensorboard (pip install tensorboard)"})
    push_to_hub: bool = False
    hub_model_id: str | None = None
    hub_private: bool = False


def decoder_overrides(model_args: ModelArguments) -> dict:
    """The explicit `--decoder_*` sizes that were given."""
    return {name: getattr(model_args, name) for name in DECODER_FIELDS if getattr(model_args, name) is not None}


def check_args(model_args: ModelArguments, train_args: PretrainingArguments, data_args: DataArguments | None = None,
               ) -> None:
    """Refuse options that would train something else than asked, before any data or model is loaded."""
    if not train_args.output_dir:
        raise SystemExit("--output_dir is required")
    check_tracking(train_args)
    if data_args is not None and data_args.source_probabilities is not None and (
            len(data_args.source_probabilities) != len(data_args.sources)):
        raise SystemExit(f"--source_probabilities has {len(data_args.source_probabilities)} values but --sources has "
                         f"{len(data_args.sources)} ({' '.join(data_args.sources)}): give one per source")
    if not 0.0 < model_args.mask_ratio < 1.0:
        raise SystemExit(f"--mask_ratio {model_args.mask_ratio:g}: must be between 0 and 1 (exclusive); "
                         "the MAE paper masks 0.75 of the patches")
    if not train_args.base_learning_rate > 0:  # also catches NaN
        raise SystemExit(f"--base_learning_rate {train_args.base_learning_rate:g}: must be positive")
    if not train_args.min_learning_rate >= 0:
        raise SystemExit(f"--min_learning_rate {train_args.min_learning_rate:g}: must be 0 or positive")
    for name in ("per_device_batch_size", "gradient_accumulation_steps", "max_steps"):
        if getattr(train_args, name) < 1:
            raise SystemExit(f"--{name} {getattr(train_args, name)}: must be at least 1")
    for name, value in decoder_overrides(model_args).items():
        if value < 1:
            raise SystemExit(f"--{name} {value}: must be at least 1")
    if model_args.model_name_or_path:
        if model_args.decoder_preset or decoder_overrides(model_args):
            raise SystemExit("--decoder_preset / --decoder_* build a new model; --model_name_or_path "
                             f"{model_args.model_name_or_path} keeps the decoder it was saved with")
        path = str(model_args.model_name_or_path)
        if not Path(path).is_dir() and (path.startswith(("/", ".", "~")) or path.count("/") != 1):
            raise SystemExit(f"--model_name_or_path {path}: no such folder (and not a Hub repo id, org/name)")
        try:
            files = list_model_files(model_args.model_name_or_path)
            if files is not None:
                check_safe_weights(files, f"--model_name_or_path {model_args.model_name_or_path}")
        except (UnsafeWeightsError, FileNotFoundError) as error:
            raise SystemExit(str(error)) from None
        except ValueError as error:  # huggingface_hub's HFValidationError: not a valid repo id
            raise SystemExit(f"--model_name_or_path {path}: no such folder, and not a Hub repo id ({error})") from None


def check_tracking(train_args: PretrainingArguments) -> None:
    """`--report_to` must name an installed accelerate tracker (or none); `--mixed_precision` one accelerate knows.

    Accelerate only warns about a tracker whose package is missing and logs nothing to it: tensorboard
    is not part of the default install, so asking for it without it is an error saying how to get it.
    """
    precisions = ("no", "fp16", "bf16", "fp8")
    if train_args.mixed_precision not in precisions:
        raise SystemExit(f"--mixed_precision {train_args.mixed_precision}: one of {', '.join(precisions)}")
    tracker = train_args.report_to
    if tracker == "none":
        return
    known = [kind.value for kind in LoggerType]
    if tracker not in known:
        raise SystemExit(f"--report_to {tracker}: one of none, {', '.join(known)}")
    if tracker != "all" and LoggerType(tracker) not in accelerate.tracking.get_available_trackers():
        raise SystemExit(f"--report_to {tracker}: {tracker} is not installed (pip install {tracker}); or pass "
                         "--report_to none (metrics.jsonl is written either way)")


def main(argv=None):
    log_to_stdout()  # the toolkit's warnings (each skipped image, by file) and progress lines
    model_args, data_args, train_args = parse_args((ModelArguments, DataArguments, PretrainingArguments), argv)
    check_args(model_args, train_args, data_args)
    Path(train_args.output_dir).mkdir(parents=True, exist_ok=True)  # files in it are written from the first batch on

    # Accelerator: precision and trackers. Batches are never dispatched from rank 0 (see module docstring).
    accelerator = Accelerator(
        mixed_precision=train_args.mixed_precision,
        gradient_accumulation_steps=train_args.gradient_accumulation_steps,
        log_with=None if train_args.report_to == "none" else train_args.report_to,
        project_dir=train_args.output_dir,
        dataloader_config=DataLoaderConfiguration(dispatch_batches=False, split_batches=False),
        dynamo_backend="inductor" if model_args.torch_compile else "no",
    )
    rank, world_size = accelerator.process_index, accelerator.num_processes
    effective_batch = train_args.per_device_batch_size * world_size * train_args.gradient_accumulation_steps
    peak_lr = scaled_lr(train_args.base_learning_rate, effective_batch)
    if train_args.min_learning_rate > peak_lr:
        raise SystemExit(f"--min_learning_rate {train_args.min_learning_rate:g} is above the peak lr {peak_lr:g} "
                         f"(--base_learning_rate {train_args.base_learning_rate:g} × effective batch "
                         f"{effective_batch} / 256)")
    config = None
    if not model_args.model_name_or_path:
        try:
            config = mae_config(
                model_args.model_preset, image_size=model_args.image_size, patch_size=model_args.patch_size,
                mask_ratio=model_args.mask_ratio, norm_pix_loss=model_args.norm_pix_loss,
                decoder=model_args.decoder_preset, conv_stem_channels=list(model_args.conv_stem_channels),
                conv_stem_convs_per_stage=model_args.conv_stem_convs_per_stage,
                conv_stem_style=model_args.conv_stem_style, conv_stem_masking=model_args.conv_stem_masking,
                **decoder_overrides(model_args),
            )
        except ValueError as error:
            raise SystemExit(str(error)) from None
    set_seed(train_args.seed)

    # Model: ViTMAEForPreTraining from a preset (75% masking, norm-pix loss) or a checkpoint (safetensors only).
    if model_args.model_name_or_path:
        model = load_mae_for_pretraining(model_args.model_name_or_path, attn_implementation="sdpa")
    else:
        config._attn_implementation = "sdpa"
        model = build_mae_for_pretraining(config)
    if model_args.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    if accelerator.device.type == "cpu" and train_args.mixed_precision == "bf16":
        use_fp32_attention_core(model)  # CPU flash attention is 3-4x slower in bf16 (cer_hf/modeling/attention.py)
    image_size = model.config.image_size
    num_patches = (image_size // model.config.patch_size) ** 2

    # Data: this rank's shards of the interleaved, shuffled stream; decoding and augmentation in workers.
    mean, std = normalization(data_args.normalization)

    def make_stream():
        return FaceStream(
            pretraining_stream(
                data_args.sources, probabilities=data_args.source_probabilities, seed=train_args.seed,
                shuffle_buffer=data_args.shuffle_buffer, rank=rank, world_size=world_size,
                num_workers=data_args.num_workers, allow_uneven_shards=data_args.allow_uneven_shards,
                synthetic_image_size=data_args.synthetic_image_size or image_size,
                synthetic_shards=data_args.synthetic_shards,
            ),
            MAETrainTransform(
                image_size, scale=(data_args.crop_scale_min, 1.0), min_size=data_args.min_image_size,
                seed=train_args.seed,
            ),
        )

    stream = make_stream()
    # --prime_next_pass: an identical second stream, whose loader runs the next pass ahead (see epoch_batches)
    next_stream = make_stream() if data_args.prime_next_pass and data_args.num_workers > 0 else None

    def make_loader(dataset):
        return torch.utils.data.DataLoader(
            dataset, batch_size=train_args.per_device_batch_size, collate_fn=collate_faces,
            num_workers=data_args.num_workers, pin_memory=accelerator.device.type == "cuda",
            worker_init_fn=single_threaded_worker,
            prefetch_factor=data_args.prefetch_factor if data_args.num_workers else None,
            persistent_workers=data_args.persistent_workers and data_args.num_workers > 0,
        )

    # Optimiser: AdamW (0.9, 0.95), weight decay 0.05 except biases/norms; lr = base_lr × effective batch / 256.
    accelerator.print(
        f"effective batch {effective_batch} = {train_args.per_device_batch_size} per device × {world_size} "
        f"processes × {train_args.gradient_accumulation_steps} accumulation; base lr {train_args.base_learning_rate:g} "
        f"→ lr {peak_lr:g}"
    )
    optimizer = torch.optim.AdamW(  # fused: one kernel for all tensors, 3x faster than the default on a CPU
        param_groups(model, train_args.weight_decay), lr=peak_lr,
        betas=(train_args.adam_beta1, train_args.adam_beta2), fused=accelerator.device.type in ("cpu", "cuda"),
    )
    model, optimizer = accelerator.prepare(model, optimizer)

    # Resume: weights, optimiser, RNG and this rank's exact data position.
    checkpoints = CheckpointManager(train_args.output_dir, keep_last=train_args.save_total_limit)
    state = RankState()
    if train_args.resume_from_checkpoint:
        path = checkpoints.resolve(train_args.resume_from_checkpoint)
        state = checkpoints.load(accelerator, path)
        accelerator.print(f"resumed from {path} at step {state.step} (epoch {state.epoch}, batch {state.batches_in_epoch})")
        # The logs of steps done after that checkpoint (by the run that was stopped) are written again below.
        if accelerator.is_main_process:
            drop_log_lines_after(Path(train_args.output_dir) / "metrics.jsonl", state.step,
                                 lambda line: json.loads(line)["step"])
        drop_log_lines_after(Path(train_args.output_dir) / f"sample_keys_rank{rank}.tsv", state.step - 1,
                             lambda line: int(line.split("\t")[0]))  # the 0-based step a key was consumed in
    batches = epoch_batches(stream, make_loader, epoch=state.epoch, skip_batches=state.batches_in_epoch,
                            next_stream=next_stream)

    if accelerator.log_with:
        tracker_config = {**asdict(model_args), **asdict(data_args), **asdict(train_args), "peak_lr": peak_lr}
        tracker_config = {k: v if isinstance(v, (int, float, str, bool)) else str(v) for k, v in tracker_config.items()}
        accelerator.init_trackers("mae_pretraining", config=tracker_config)
    keys_log = None
    if data_args.log_sample_keys:
        keys_log = open(f"{train_args.output_dir}/sample_keys_rank{rank}.tsv", "a")

    # Train: accumulate micro-batches, guard against non-finite loss,
    # step the per-step schedule, log, checkpoint.
    model.train()
    progress = tqdm(
        total=train_args.max_steps, initial=state.step, disable=not accelerator.is_main_process, desc="pretrain"
    )
    window_loss, window_images, window_start = torch.zeros((), device=accelerator.device), 0, time.perf_counter()
    window_first_step = state.step
    if state.window_start is not None:  # resumed: the logging window the checkpoint was saved in goes on
        window_loss.fill_(state.window_loss)
        window_first_step = state.window_start
    run_start, run_images, last_loss = time.perf_counter(), 0, float("nan")
    dtype = torch.float32
    args_saved = False
    while state.step < train_args.max_steps:
        lr = lr_at_step(
            state.step, peak_lr=peak_lr, total_steps=train_args.max_steps,
            warmup_steps=train_args.warmup_steps, min_lr=train_args.min_learning_rate,
        )
        set_lr(optimizer, lr)
        step_loss = torch.zeros((), device=accelerator.device)
        for micro in range(train_args.gradient_accumulation_steps):
            epoch, index, batch = next(batches)
            if not args_saved:  # once the data flows: a run that fails on its sources or options leaves the
                if accelerator.is_main_process:  # output_dir of an earlier run as it was
                    save_args((model_args, data_args, train_args), train_args.output_dir)
                args_saved = True
            state.consumed(epoch, index, batch)
            if keys_log:
                keys_log.writelines(f"{state.step}\t{key}\n" for key in batch["keys"])
            pixels = normalize_pixels(batch["pixel_values"].to(accelerator.device, non_blocking=True), mean, std, dtype)
            noise = mask_noise(
                len(pixels), num_patches, seed=train_args.seed, step=state.step, rank=rank, micro_step=micro,
                device=accelerator.device,
            )
            with accelerator.accumulate(model):  # no gradient all-reduce before the last micro-batch
                loss = model(pixel_values=pixels, noise=noise).loss
                accelerator.backward(loss)  # divides by gradient_accumulation_steps
            step_loss += loss.detach() / train_args.gradient_accumulation_steps
            window_images += len(pixels)
        if accelerator.reduce(torch.isfinite(step_loss).logical_not().float(), "max").item() > 0:
            good = checkpoints.latest()
            raise NonFiniteLossError(
                f"non-finite loss at step {state.step} (lr {lr:.3g}); the update was not applied. "
                f"Last good checkpoint: {good or 'none'}. Lower the learning rate, enable --max_grad_norm "
                "or use bf16 instead of fp16, then --resume_from_checkpoint latest."
            )
        if train_args.max_grad_norm:
            accelerator.clip_grad_norm_(model.parameters(), train_args.max_grad_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        state.step += 1
        window_loss += step_loss
        progress.update(1)

        if state.step % train_args.logging_steps == 0 or state.step == train_args.max_steps:
            steps_in_window = state.step - window_first_step
            mean_loss = accelerator.reduce(window_loss, "mean").item() / steps_in_window
            seconds = time.perf_counter() - window_start
            window_images = int(accelerator.reduce(torch.tensor(window_images, device=accelerator.device), "sum"))
            images_per_s = window_images / seconds
            last_loss = mean_loss
            metrics = {"loss": mean_loss, "lr": lr, "images_per_s": images_per_s, "epoch": state.epoch}
            accelerator.log(metrics, step=state.step)
            progress.set_postfix(loss=f"{mean_loss:.4f}", lr=f"{lr:.2e}", img_s=f"{images_per_s:.0f}")
            if accelerator.is_main_process:
                with open(f"{train_args.output_dir}/metrics.jsonl", "a") as log:
                    log.write(json.dumps({"step": state.step, **metrics}) + "\n")
            run_images += window_images
            window_loss.zero_()
            window_images, window_start, window_first_step = 0, time.perf_counter(), state.step
        if state.step % train_args.save_steps == 0 or state.step == train_args.max_steps:
            state.window_start, state.window_loss = window_first_step, window_loss.item()
            checkpoints.save(accelerator, state)
    progress.close()
    batches.close()  # stop this rank's DataLoader workers now, not at interpreter exit
    if keys_log:
        keys_log.close()
    elapsed = time.perf_counter() - run_start

    # Save: safetensors weights + an image-processor config with the run's size and mean/std (for `cer-hf convert`).
    counts = merge_counts(gather_object([state.counts]))
    images_total = sum(gather_object([state.images]))
    digests = gather_object([parameter_digest(accelerator.unwrap_model(model, keep_torch_compile=False))])
    if len(set(digests)) > 1:
        accelerator.print(f"WARNING: the model replicas differ across ranks: {digests}")
    summary = {
        "steps": state.step, "images": images_total, "seconds": round(elapsed, 2),
        "images_per_s": round(run_images / elapsed, 2) if elapsed > 0 else math.nan, "final_loss": last_loss,
        "effective_batch_size": effective_batch, "peak_lr": peak_lr, "image_counts": counts,
        "world_size": world_size, "replica_digests": digests,
    }
    state_dict = accelerator.get_state_dict(model)  # collective: gathers FSDP/ZeRO shards
    # Under --torch_compile, accelerate 1.16 unwraps to the compiled module, whose names all start "_orig_mod."
    state_dict = {name.removeprefix("_orig_mod."): tensor for name, tensor in state_dict.items()}
    if accelerator.is_main_process:
        plain_model = accelerator.unwrap_model(model, keep_torch_compile=False)
        plain_model.save_pretrained(train_args.output_dir, state_dict=state_dict)
        ViTImageProcessorPil(
            size={"height": image_size, "width": image_size}, image_mean=list(mean), image_std=list(std),
            resample=3,  # bicubic, as in training
        ).save_pretrained(train_args.output_dir)
        with open(f"{train_args.output_dir}/summary.json", "w") as handle:
            json.dump(summary, handle, indent=2)
        accelerator.print(
            f"done: {summary['steps']} steps, {images_total} images in {elapsed:.1f}s "
            f"({summary['images_per_s']:.1f} images/s this session), final loss {last_loss:.4f}\n"
            f"images {format_counts(counts)}\nmodel and image processor saved to {train_args.output_dir}"
        )
    # Let the collectives' worker thread drop its last tensor references (it needs the GIL) before the process
    # group is torn down: otherwise a rank can deadlock at exit (seen with gloo: ~ProcessGroupGloo joins that
    # thread while holding the GIL). The barrier waits for the main process's save, the sleep releases the GIL.
    accelerator.wait_for_everyone()
    if world_size > 1:
        time.sleep(1.0)
    accelerator.end_training()

    # Publish (optional): model card with the run's summary.
    if train_args.push_to_hub and accelerator.is_main_process:
        if not train_args.hub_model_id:
            raise SystemExit("--push_to_hub needs --hub_model_id")
        from cer_hf.hub.publish import publish

        url = publish(
            train_args.output_dir, train_args.hub_model_id, private=train_args.hub_private, card="mae",
            metrics=summary,
        )
        accelerator.print(f"pushed to {url}")


if __name__ == "__main__":
    run_main(main)  # data and option errors: "error: ..." and exit 2, no traceback; ends with its launcher
