"""Temporal modules and frame alignment of windowed outputs."""

import pytest
import torch

from cer_hf.extensions.temporal import (
    LSTMTemporalModule,
    TransformerTemporalEncoder,
    apply_temporal,
    frame_windows,
    window_starts,
    windows_to_frames,
)


@pytest.mark.parametrize("num_frames,length,stride", [(23, 5, 5), (23, 8, 3), (10, 4, 4), (3, 8, 4), (16, 16, 16)])
def test_windows_cover_every_frame_and_stay_in_range(num_frames, length, stride):
    index, valid = frame_windows(num_frames, length, stride)
    assert index.shape[1] == length and index.max() == num_frames - 1
    assert set(index[valid].tolist()) == set(range(num_frames))
    starts = window_starts(num_frames, length, stride)
    assert starts[0] == 0 and starts[-1] == max(0, num_frames - length)


@pytest.mark.parametrize("num_frames,length,stride", [(23, 5, 5), (23, 8, 3), (3, 8, 4), (31, 10, 7)])
def test_overlap_average_returns_each_frame_to_its_index(num_frames, length, stride):
    # An identity "module" over frame ids must give every frame back its own id after averaging.
    frame_ids = torch.arange(num_frames, dtype=torch.float32).unsqueeze(1)
    index, valid = frame_windows(num_frames, length, stride)
    back = windows_to_frames(frame_ids[index], index, valid, num_frames)
    torch.testing.assert_close(back, frame_ids)
    torch.testing.assert_close(apply_temporal(torch.nn.Identity(), frame_ids, length, stride), frame_ids)


def test_overlapping_window_outputs_are_averaged():
    index, valid = frame_windows(5, 3, 2)  # windows 0-2 and 2-4: frame 2 is in both
    outputs = torch.tensor([[1.0, 1.0, 1.0], [3.0, 3.0, 3.0]]).unsqueeze(-1)
    assert windows_to_frames(outputs, index, valid, 5).flatten().tolist() == [1.0, 1.0, 2.0, 3.0, 3.0]


@pytest.mark.parametrize("module_class", [LSTMTemporalModule, TransformerTemporalEncoder])
def test_modules_keep_alignment_on_lengths_that_do_not_divide(module_class):
    torch.manual_seed(0)
    module = module_class(16).eval()
    features = torch.randn(37, 16)
    out = apply_temporal(module, features, sequence_length=10, stride=10)
    assert out.shape == (37, 16) and torch.isfinite(out).all()
    # The last frames (37 is not a multiple of 10) come from the window 27..36, shifted back to the end.
    torch.testing.assert_close(out[30:], module(features[27:].unsqueeze(0))[0, 3:])
    # Frames 0..9 come from the first window only.
    torch.testing.assert_close(out[:10], module(features[:10].unsqueeze(0))[0])


def test_temporal_mixes_information_across_frames():
    torch.manual_seed(0)
    module = TransformerTemporalEncoder(16, num_layers=1).eval()
    features = torch.randn(1, 6, 16)
    changed = features.clone()
    changed[0, 5] += torch.randn(16)  # not a constant shift: LayerNorm would remove that
    assert not torch.allclose(module(features)[0, 0], module(changed)[0, 0])
    lstm = LSTMTemporalModule(16).eval()  # causal: the past does not see the future
    torch.testing.assert_close(lstm(features)[0, :5], lstm(changed)[0, :5])


def test_bad_window_settings_are_rejected():
    with pytest.raises(ValueError, match="stride"):
        window_starts(10, 4, 5)
    with pytest.raises(ValueError, match="at least one frame"):
        window_starts(0, 4, 2)


def test_model_video_prediction_is_frame_aligned():
    from cer_hf.extensions.multitask.modeling import ViTForMultiTaskExpression, ViTMultiTaskExpressionConfig

    torch.manual_seed(0)
    config = ViTMultiTaskExpressionConfig(
        hidden_size=32, num_hidden_layers=1, num_attention_heads=4, intermediate_size=64, image_size=32, patch_size=8,
        temporal_module="transformer", temporal_tasks=["va"], sequence_length=6, temporal_stride=4,
    )
    model = ViTForMultiTaskExpression(config).eval()
    frames = torch.randn(13, 3, 32, 32)
    video = model.predict_video(frames, batch_size=5)
    assert video["va"].shape == (13, 2) and video["expr_probabilities"].shape == (13, 8)
    # The non-temporal AU head equals per-frame prediction; the last window (7..12) gives the tail.
    torch.testing.assert_close(video["au_probabilities"], torch.sigmoid(model(frames).au_logits))
    tail = model(frames[7:].unsqueeze(0)).va[0]
    torch.testing.assert_close(video["va"][12], tail[5])
