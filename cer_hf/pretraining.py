"""MAE pretraining building blocks: the paper's optimiser and schedule, deterministic masking, the data loop
and crash-safe checkpoints. `recipes/pretrain_mae.py` strings them together; use them in your own loop.

    groups = param_groups(model, weight_decay=0.05)             # no decay on biases, norms, pos-embed, tokens
    peak = scaled_lr(1.5e-4, effective_batch_size=4096)          # base lr × batch / 256
    optimizer = torch.optim.AdamW(groups, lr=peak, betas=(0.9, 0.95))
    set_lr(optimizer, lr_at_step(step, peak_lr=peak, total_steps=T, warmup_steps=W))
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

CHECKPOINT_PREFIX = "checkpoint-"
LATEST_FILE = "latest"
# Parameters that never get weight decay besides 1-d tensors (biases, LayerNorm weights).
NO_DECAY_NAMES = ("position_embeddings", "cls_token", "mask_token", "pos_embed")


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite; training stopped before the bad update was applied."""


class EmptyStreamError(ValueError):
    """A pass over the data yielded no usable image (every file skipped, or no file at all): a data error."""


# ----------------------------------------------------------------------------- optimisation


def scaled_lr(base_lr: float, effective_batch_size: int) -> float:
    """The MAE linear scaling rule: lr = base_lr × effective_batch_size / 256."""
    if effective_batch_size <= 0:
        raise ValueError(f"effective batch size must be positive, got {effective_batch_size}")
    return base_lr * effective_batch_size / 256


def lr_at_step(
    step: int, *, peak_lr: float, total_steps: int, warmup_steps: int, min_lr: float = 0.0
) -> float:
    """Linear warmup from 0 to `peak_lr` over `warmup_steps`, then a half-cycle cosine down to `min_lr` at `total_steps`."""
    if step < warmup_steps:
        return peak_lr * step / warmup_steps
    decay_steps = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / decay_steps)
    return min_lr + (peak_lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set the learning rate of every parameter group (the schedule is a pure function of the step)."""
    for group in optimizer.param_groups:
        group["lr"] = lr


def param_groups(model: torch.nn.Module, weight_decay: float, no_decay_names=NO_DECAY_NAMES) -> list[dict]:
    """Two AdamW groups: decay for weight matrices; none for biases, norm weights, position embeddings and tokens."""
    decay, no_decay = [], []
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        if parameter.ndim <= 1 or name.endswith(".bias") or any(part in name for part in no_decay_names):
            no_decay.append(parameter)
        else:
            decay.append(parameter)
    return [
        {"params": decay, "weight_decay": weight_decay, "group_name": "decay"},
        {"params": no_decay, "weight_decay": 0.0, "group_name": "no_decay"},
    ]


def mask_noise(
    batch_size: int, num_patches: int, *, seed: int, step: int, rank: int, micro_step: int = 0, device=None
) -> torch.Tensor:
    """ViTMAE's masking noise for one micro-batch, drawn from its own generator (seed, step, rank, micro_step).

    Passing it as `model(pixel_values, noise=...)` makes the masks independent of the global RNG, which
    DataLoader iterators and other libraries consume: a resumed run draws exactly the same masks.
    """
    generator = torch.Generator().manual_seed(hash((seed, step, rank, micro_step)) & 0x7FFF_FFFF_FFFF_FFFF)
    return torch.rand(batch_size, num_patches, generator=generator).to(device)


def flops_per_image(config, *, training: bool = True) -> float:
    """Model FLOPs per image of a ViTMAE step (matmuls only, 2 FLOPs per multiply-add).

    Encoder on the visible patches n_e = (1 - mask_ratio) × N + 1 (cls), decoder on all N + 1 tokens.
    Per transformer layer of width d, MLP width m, sequence n: 2·n·(4·d² + 2·d·m) for the
    projections + 2·2·n²·d for attention scores and values. Plus patch embedding 2·N·(3·p²)·d (all patches
    are embedded before masking),
    the decoder embedding 2·(N+1)·d·d_dec and prediction 2·N·d_dec·(3·p²).
    Training (fwd + bwd) ≈ 3 × forward.
    """

    def layer(n, d, m):
        return 2 * n * (4 * d * d + 2 * d * m) + 4 * n * n * d

    patches = (config.image_size // config.patch_size) ** 2
    visible = int(patches * (1 - config.mask_ratio))
    patch_dim = config.num_channels * config.patch_size**2
    d, d_dec = config.hidden_size, config.decoder_hidden_size
    forward = 2 * patches * patch_dim * d  # every patch is embedded, then masked
    forward += config.num_hidden_layers * layer(visible + 1, d, config.intermediate_size)
    forward += 2 * (visible + 1) * d * d_dec
    forward += config.decoder_num_hidden_layers * layer(patches + 1, d_dec, config.decoder_intermediate_size)
    forward += 2 * patches * d_dec * patch_dim
    return float(3 * forward if training else forward)


# ----------------------------------------------------------------------------- data position


@dataclass
class RankState:
    """Where one rank stands: optimiser step, data epoch, batches consumed in that epoch, images and skip counts.

    `window_start` and `window_loss` are the open logging window (the step it began after, and this
    rank's summed step losses since): a resumed run logs the same mean losses as one never stopped.
    `window_start` is None in checkpoints written before it existed.
    """

    step: int = 0
    epoch: int = 0
    batches_in_epoch: int = 0
    images: int = 0
    counts: dict = field(default_factory=dict)
    window_start: int | None = None
    window_loss: float = 0.0

    def consumed(self, epoch: int, index_in_epoch: int, batch: dict) -> None:
        """Record a consumed batch (its epoch, its index within the epoch, its images and counts)."""
        self.epoch, self.batches_in_epoch = epoch, index_in_epoch + 1
        self.images += len(batch["pixel_values"])
        self.counts = dict(Counter(self.counts) + Counter(batch.get("counts", {})))


def epoch_batches(stream, make_loader, *, epoch: int = 0, skip_batches: int = 0, next_stream=None):
    """Endless (epoch, index_in_epoch, batch) over epochs of `stream`, starting at batch `skip_batches` of `epoch`.

    Each epoch calls `stream.set_epoch(epoch)` (new shuffle, new augmentations), then iterates the loader.
    `make_loader(stream)` is called once when it returns a DataLoader with `persistent_workers=True`: its
    workers then live across passes (no restart stall at every pass boundary) and see each new epoch through
    the stream's shared-memory epoch; otherwise it is called every epoch.

    `next_stream`, a second stream built like `stream`, primes the next pass: two loaders take turns, and
    while one serves pass e the other already runs pass e + 1 up to its prefetch depth (shuffle buffers
    filled, first batches decoded), so the boundary does not wait for the refill. The cost: a second set
    of workers (idle once primed) and of shuffle buffers.

    A pass without a single batch raises `EmptyStreamError` (a `ValueError`: the data, not the code).

    All ways give the same batches. Resuming replays the epoch's first `skip_batches` batches and drops
    them: the shuffled order is a pure function of (seed, epoch, rank, workers), so this lands on exactly the
    next unseen batch (the cost: re-reading that part of the epoch, without any model compute).
    """
    streams = [stream] if next_stream is None else [stream, next_stream]
    loaders = [None] * len(streams)

    def start(slot: int, pass_epoch: int):
        # set_epoch before the pass's iterator exists: (persistent) workers read it when the pass starts
        streams[slot].set_epoch(pass_epoch)
        if loaders[slot] is None or not getattr(loaders[slot], "persistent_workers", False):
            loaders[slot] = make_loader(streams[slot])
        return iter(loaders[slot])

    slot = 0
    current = start(slot, epoch)
    upcoming = start(1, epoch + 1) if next_stream is not None else None
    while True:
        index = -1
        for index, batch in enumerate(current):
            if index >= skip_batches:
                yield epoch, index, batch
        if index < 0:
            raise EmptyStreamError(
                f"epoch {epoch} of the stream yielded no usable image on this rank: every image was skipped (each "
                "skipped file is named above) or the sources hold none; check --sources")
        if index < skip_batches - 1:
            raise RuntimeError(
                f"cannot resume: the checkpoint says {skip_batches} batches of epoch {epoch} were consumed, "
                f"but this rank's stream has only {index + 1} (different data, batch size or world size?)"
            )
        epoch, skip_batches = epoch + 1, 0
        if upcoming is None:
            current = start(slot, epoch)
        else:  # switch to the primed loader; the one that just finished (its workers idle) primes the next pass
            current, slot = upcoming, 1 - slot
            upcoming = start(1 - slot, epoch + 1)


# ----------------------------------------------------------------------------- checkpoints


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


class CheckpointManager:
    """`checkpoint-<step>` folders under `output_dir`, the last `keep_last` kept, a `latest` file naming the newest.

    A save goes to a hidden temporary folder, is renamed into place once every rank has written its
    part, and only then is `latest` rewritten (atomically): a run killed mid-save leaves the previous
    checkpoint and `latest` intact. `output_dir` must be one filesystem shared by all ranks.
    """

    def __init__(self, output_dir: str | Path, keep_last: int = 3):
        self.output_dir = Path(output_dir)
        self.keep_last = keep_last

    def checkpoints(self) -> list[Path]:
        """Complete checkpoints, oldest first."""
        found = [
            path for path in self.output_dir.glob(f"{CHECKPOINT_PREFIX}*")
            if path.is_dir() and re.fullmatch(rf"{CHECKPOINT_PREFIX}\d+", path.name)
        ]
        return sorted(found, key=lambda path: int(path.name[len(CHECKPOINT_PREFIX):]))

    def latest(self) -> Path | None:
        """The checkpoint `latest` points to, or None."""
        pointer = self.output_dir / LATEST_FILE
        if not pointer.is_file():
            return None
        path = self.output_dir / pointer.read_text().strip()
        return path if path.is_dir() else None

    def resolve(self, spec: str) -> Path:
        """"latest" → the newest complete checkpoint of this output dir; otherwise a checkpoint folder path."""
        if spec == "latest":
            path = self.latest()
            if path is None:
                raise FileNotFoundError(f"--resume_from_checkpoint latest: no complete checkpoint in {self.output_dir}")
            return path
        path = Path(spec)
        if not (path / "meta.json").is_file():
            raise FileNotFoundError(f"--resume_from_checkpoint {spec}: not a checkpoint folder (no meta.json)")
        return path

    def save(self, accelerator, state: RankState) -> Path:
        """Save model/optimiser/RNG (accelerator.save_state) plus every rank's `RankState`; all ranks call this."""
        final = self.output_dir / f"{CHECKPOINT_PREFIX}{state.step}"
        tmp = self.output_dir / f".tmp-{CHECKPOINT_PREFIX}{state.step}"
        if accelerator.is_main_process:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
        accelerator.wait_for_everyone()
        accelerator.save_state(str(tmp))
        (tmp / f"rank_state_{accelerator.process_index}.json").write_text(json.dumps(asdict(state)))
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            meta = {"step": state.step, "world_size": accelerator.num_processes, "time": time.time()}
            (tmp / "meta.json").write_text(json.dumps(meta))
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
            _write_atomic(self.output_dir / LATEST_FILE, final.name)
            self._prune(keep=final)
        accelerator.wait_for_everyone()
        return final

    def _prune(self, keep: Path) -> None:
        old = [path for path in self.checkpoints() if path != keep]
        for path in old[: max(0, len(old) - (self.keep_last - 1))]:
            shutil.rmtree(path, ignore_errors=True)
        for stale in self.output_dir.glob(f".tmp-{CHECKPOINT_PREFIX}*"):
            shutil.rmtree(stale, ignore_errors=True)

    def load(self, accelerator, path: Path) -> RankState:
        """Restore model/optimiser/RNG and return this rank's `RankState`; the world size must match the save."""
        meta = json.loads((path / "meta.json").read_text())
        if meta["world_size"] != accelerator.num_processes:
            raise ValueError(
                f"{path} was saved by {meta['world_size']} processes, this run has {accelerator.num_processes}: "
                "each rank's data position is only valid for the same world size"
            )
        accelerator.load_state(str(path))
        return RankState(**json.loads((path / f"rank_state_{accelerator.process_index}.json").read_text()))


def drop_log_lines_after(path: str | Path, last_step: int, step_of) -> int:
    """Rewrite the log at `path` without its lines of steps after `last_step`; return how many were dropped.

    A run killed after its last checkpoint has already logged steps that the resumed run does again;
    resuming from the checkpoint of step `last_step` first drops them (and a line torn by the kill,
    which `step_of` cannot read), so that the log reads like that of a run never interrupted.
    `step_of(line)` is the step a line belongs to. The rewrite is atomic; a missing file is left alone.
    """
    path = Path(path)
    if not path.is_file():
        return 0
    lines = path.read_text().splitlines(keepends=True)
    kept = []
    for line in lines:
        try:
            if line.endswith("\n") and step_of(line) <= last_step:
                kept.append(line)
        except (ValueError, KeyError, IndexError):  # torn by the kill
            pass
    if len(kept) < len(lines):
        _write_atomic(path, "".join(kept))
    return len(lines) - len(kept)


# ----------------------------------------------------------------------------- reporting


def parameter_digest(model: torch.nn.Module) -> str:
    """SHA-256 of all parameters (names, shapes and bytes): equal on every rank iff the replicas agree."""
    import hashlib

    digest = hashlib.sha256()
    for name, parameter in sorted(model.named_parameters()):
        tensor = parameter.detach()
        if hasattr(tensor, "full_tensor"):  # FSDP2 DTensor shard: gather (collective, same order on all ranks)
            tensor = tensor.full_tensor()
        digest.update(name.encode())
        digest.update(tensor.float().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def merge_counts(per_rank: list[dict]) -> dict:
    """Sum the per-rank skip/convert counters into one dict, sorted by key."""
    total: Counter = Counter()
    for counts in per_rank:
        total.update(counts)
    return dict(sorted(total.items()))


def format_counts(counts: dict) -> str:
    """"skipped: 3 (truncated 1, undecodable 2); converted: 2 (CMYK 1, L 1)" style summary."""
    parts = []
    for kind in ("skipped", "converted"):
        items = {key.split(":", 1)[1]: n for key, n in counts.items() if key.startswith(kind + ":")}
        detail = ", ".join(f"{reason} {n}" for reason, n in sorted(items.items()))
        parts.append(f"{kind}: {sum(items.values())}" + (f" ({detail})" if detail else ""))
    return "; ".join(parts)
