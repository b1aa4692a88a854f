"""Temporal modules over sequences of per-frame features, and the windowing that maps them back to frames.

Two modules, both `(batch, seq, dim) -> (batch, seq, dim)`:

* `LSTMTemporalModule`: two stacked LSTM layers followed by a Leaky ReLU, the "temporal
  convergence module" of Liu et al. (ABAW7 MTL, ECCV 2024 workshop, sec. 3.2).
* `TransformerTemporalEncoder`: self-attention over the time axis with sine-cosine time
  positions, the temporal encoder of Yu et al. (ABAW6, CVPR 2024 workshop, sec. 3.4).

A video of `T` frames is cut into windows of `sequence_length` frames every `stride` frames
(`frame_windows`). The last window is shifted back so it ends on the last frame (no frame is
left out when `T - sequence_length` is not a multiple of `stride`); a video shorter than one
window is padded by repeating its last frame, and the padding is marked invalid. Per-frame
outputs of overlapping windows are averaged back onto frames (`windows_to_frames`), so every
frame gets exactly one output, aligned with its index. `apply_temporal` does both around a module.
"""

from __future__ import annotations

import math

import torch
from torch import nn

TEMPORAL_MODULES = ("none", "lstm", "transformer")


class LSTMTemporalModule(nn.Module):
    """Two-layer LSTM + Leaky ReLU over a sequence of frame features (Liu et al.'s (ABAW7 MTL) temporal convergence module).

    Args:
        dim: feature size in and out.
        num_layers: stacked LSTM layers (2 in the paper).
        dropout: dropout between the LSTM layers.
        negative_slope: slope of the Leaky ReLU.
    """

    def __init__(self, dim: int, num_layers: int = 2, dropout: float = 0.0, negative_slope: float = 0.01):
        super().__init__()
        self.lstm = nn.LSTM(dim, dim, num_layers=num_layers, batch_first=True, dropout=dropout if num_layers > 1 else 0.0)
        self.activation = nn.LeakyReLU(negative_slope)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """`(batch, seq, dim)` frame features -> `(batch, seq, dim)` temporally aggregated features."""
        output, _ = self.lstm(features)
        return self.activation(output)


def time_position_embedding(length: int, dim: int, device=None, dtype=None) -> torch.Tensor:
    """Fixed 1-D sine-cosine embedding of the positions `0..length-1`, `(length, dim)`."""
    position = torch.arange(length, device=device, dtype=torch.float32).unsqueeze(1)
    frequency = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / dim))
    embedding = torch.zeros(length, dim, device=device)
    embedding[:, 0::2] = torch.sin(position * frequency)
    embedding[:, 1::2] = torch.cos(position * frequency[: dim // 2])
    return embedding.to(dtype or torch.float32)


class TransformerTemporalEncoder(nn.Module):
    """Transformer encoder over the time axis (Yu et al.'s (ABAW6) temporal encoder), pre-norm, residual.

    Args:
        dim: feature size in and out.
        num_layers: transformer blocks.
        num_heads: attention heads (must divide `dim`).
        mlp_ratio: feed-forward width as a multiple of `dim`.
        dropout: dropout inside the blocks.
    """

    def __init__(self, dim: int, num_layers: int = 2, num_heads: int = 4, mlp_ratio: float = 2.0, dropout: float = 0.1):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"temporal_heads={num_heads} must divide the feature size {dim}")
        layer = nn.TransformerEncoderLayer(
            dim, num_heads, int(dim * mlp_ratio), dropout=dropout, batch_first=True, norm_first=True, activation="gelu"
        )
        self.encoder = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """`(batch, seq, dim)` frame features -> `(batch, seq, dim)` features attending over the sequence."""
        positions = time_position_embedding(features.shape[1], features.shape[2], features.device, features.dtype)
        return self.norm(self.encoder(features + positions))


def build_temporal_module(kind: str, dim: int, *, num_layers: int = 2, num_heads: int = 4, dropout: float = 0.1):
    """The temporal module named `kind` ("lstm", "transformer"), or None for "none"."""
    if kind == "none":
        return None
    if kind == "lstm":
        return LSTMTemporalModule(dim, num_layers=num_layers, dropout=dropout)
    if kind == "transformer":
        return TransformerTemporalEncoder(dim, num_layers=num_layers, num_heads=num_heads, dropout=dropout)
    raise ValueError(f"temporal_module must be one of {', '.join(TEMPORAL_MODULES)}; got {kind!r}")


def window_starts(num_frames: int, sequence_length: int, stride: int) -> list[int]:
    """First frame of each window: 0, stride, 2·stride, … and a last one ending on the last frame."""
    if num_frames < 1:
        raise ValueError(f"a video needs at least one frame, got {num_frames}")
    if sequence_length < 1 or stride < 1:
        raise ValueError(f"sequence_length ({sequence_length}) and stride ({stride}) must be >= 1")
    if stride > sequence_length:
        raise ValueError(f"stride {stride} > sequence_length {sequence_length} would skip frames")
    last = max(0, num_frames - sequence_length)
    starts = list(range(0, last + 1, stride))
    if starts[-1] != last:  # the partial tail: shift the last window back to end on the last frame
        starts.append(last)
    return starts


def frame_windows(num_frames: int, sequence_length: int, stride: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Frame indices `(windows, sequence_length)` and a validity mask of the same shape.

    Short videos are padded by repeating the last frame; padded positions are marked False.
    """
    starts = torch.tensor(window_starts(num_frames, sequence_length, stride))
    index = starts.unsqueeze(1) + torch.arange(sequence_length).unsqueeze(0)
    valid = index < num_frames
    return index.clamp(max=num_frames - 1), valid


def windows_to_frames(
    window_outputs: torch.Tensor, index: torch.Tensor, valid: torch.Tensor, num_frames: int
) -> torch.Tensor:
    """Average per-frame outputs of overlapping windows back onto frames.

    Args:
        window_outputs: `(windows, sequence_length, ...)` outputs of each window position.
        index, valid: from `frame_windows`.
        num_frames: video length.
    Returns:
        `(num_frames, ...)`: row t is the mean over every valid window position that covers frame t.
    """
    flat = window_outputs.reshape(-1, *window_outputs.shape[2:])
    keep = valid.reshape(-1)
    frames = index.reshape(-1)[keep]
    total = flat.new_zeros(num_frames, *flat.shape[1:]).index_add_(0, frames, flat[keep])
    count = torch.bincount(frames, minlength=num_frames).to(flat.dtype)
    if (count == 0).any():  # cannot happen with frame_windows; guards hand-made indices
        raise ValueError(f"frames {torch.nonzero(count == 0).flatten().tolist()} are covered by no window")
    return total / count.reshape(-1, *([1] * (flat.ndim - 1)))


def apply_temporal(
    module: nn.Module, frame_features: torch.Tensor, sequence_length: int, stride: int, batch_size: int = 64
) -> torch.Tensor:
    """Run a temporal module over a whole video's frame features `(T, dim)` and return `(T, dim)`, frame-aligned."""
    num_frames = frame_features.shape[0]
    if num_frames <= sequence_length:  # one window, no padding needed
        return module(frame_features.unsqueeze(0)).squeeze(0)
    index, valid = frame_windows(num_frames, sequence_length, stride)
    outputs = [module(frame_features[chunk]) for chunk in index.split(batch_size)]
    return windows_to_frames(torch.cat(outputs), index, valid, num_frames)
