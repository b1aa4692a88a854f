"""Compound synthesis: which pairs are mixed, the mixed targets, the image operations, determinism."""

import numpy as np
import pytest
import torch

from cer_hf.curriculum.mixing import CompoundMixer, compound_pairs
from cer_hf.taxonomy import EMOTION_BASICS, compound_from_basics, compound_set

HAPPY, SURPRISE = EMOTION_BASICS.index("Happiness"), EMOTION_BASICS.index("Surprise")


def _images():
    return torch.zeros(3, 8, 8), torch.ones(3, 8, 8)


def test_pairs_are_different_basics_forming_a_compound_of_the_set():
    pairs = compound_pairs(EMOTION_BASICS, "abaw7")
    assert len(pairs) == len(compound_set("abaw7")) == 7
    names = {compound_from_basics(EMOTION_BASICS[i], EMOTION_BASICS[j]) for i, j in pairs}
    assert names == {c.name for c in compound_set("abaw7")}
    assert all(i != j for i, j in pairs)
    assert len(compound_pairs(EMOTION_BASICS, "rafdb")) == 11
    assert len(compound_pairs(EMOTION_BASICS, "abaw7", any_pair=True)) == 15  # 6 choose 2
    with pytest.raises(ValueError, match="no compound"):
        compound_pairs(("Happiness", "Anger"), "abaw7")


def test_union_target_is_multi_hot_of_both_constituents():
    mixer = CompoundMixer(mixup_prob=0.5, cutmix_prob=0.5)
    a, b = _images()
    for seed in range(20):
        _, target = mixer(a, b, HAPPY, SURPRISE, 6, np.random.default_rng(seed))
        expected = torch.zeros(6)
        expected[[HAPPY, SURPRISE]] = 1.0
        assert torch.equal(target, expected)


def test_same_basic_twice_is_refused():
    a, b = _images()
    with pytest.raises(ValueError, match="two different basics"):
        CompoundMixer()(a, b, HAPPY, HAPPY, 6, np.random.default_rng(0))


def test_mixup_uses_the_fixed_blend_weight_of_the_second_image():
    mixer = CompoundMixer(mixup_prob=1.0, cutmix_prob=0.0, mixup_weight=0.1, target="proportional")
    a, b = _images()
    image, target = mixer(a, b, HAPPY, SURPRISE, 6, np.random.default_rng(0))
    assert torch.allclose(image, torch.full_like(a, 0.1))
    assert target[HAPPY] == pytest.approx(0.9) and target[SURPRISE] == pytest.approx(0.1)
    assert target.sum() == pytest.approx(1.0)


def test_beta_mixup_weight_varies_and_target_follows_it():
    mixer = CompoundMixer(mixup_prob=1.0, cutmix_prob=0.0, mixup_weight=None, mixup_alpha=1.0, target="proportional")
    a, b = _images()
    weights = set()
    for seed in range(5):
        image, target = mixer(a, b, HAPPY, SURPRISE, 6, np.random.default_rng(seed))
        weight = image.mean().item()
        assert target[SURPRISE].item() == pytest.approx(weight, abs=1e-6)
        weights.add(round(weight, 4))
    assert len(weights) == 5


@pytest.mark.parametrize("mode, region", [("left_right", (slice(None), slice(4, None))),
                                          ("upper_lower", (slice(4, None), slice(None)))])
def test_fixed_cutmix_splits(mode, region):
    mixer = CompoundMixer(mixup_prob=0.0, cutmix_prob=1.0, cutmix_mode=mode, target="proportional")
    a, b = _images()
    image, target = mixer(a, b, HAPPY, SURPRISE, 6, np.random.default_rng(0))
    expected = torch.zeros(3, 8, 8)
    expected[(slice(None), *region)] = 1.0
    assert torch.equal(image, expected)
    assert target[HAPPY] == pytest.approx(0.5) and target[SURPRISE] == pytest.approx(0.5)


def test_random_cutmix_target_equals_pasted_area():
    mixer = CompoundMixer(mixup_prob=0.0, cutmix_prob=1.0, cutmix_mode="random", target="proportional")
    a, b = torch.zeros(3, 32, 32), torch.ones(3, 32, 32)
    for seed in range(10):
        image, target = mixer(a, b, HAPPY, SURPRISE, 6, np.random.default_rng(seed))
        assert target[SURPRISE].item() == pytest.approx(image.mean().item(), abs=1e-6)
        assert target[HAPPY].item() + target[SURPRISE].item() == pytest.approx(1.0)


def test_mixing_is_deterministic_for_a_seed():
    mixer = CompoundMixer()
    a, b = torch.rand(3, 16, 16, generator=torch.Generator().manual_seed(0)), torch.rand(3, 16, 16)
    first = [mixer(a, b, HAPPY, SURPRISE, 6, np.random.default_rng(s))[0] for s in range(6)]
    again = [mixer(a, b, HAPPY, SURPRISE, 6, np.random.default_rng(s))[0] for s in range(6)]
    assert all(torch.equal(x, y) for x, y in zip(first, again))
    assert not all(torch.equal(first[0], x) for x in first[1:])


@pytest.mark.parametrize("kwargs, message", [
    (dict(mixup_prob=0.5, cutmix_prob=0.2), "must be 1"),
    (dict(mixup_prob=1.5, cutmix_prob=-0.5), r"mixup_prob must be in \[0, 1\]"),
    (dict(mixup_weight=1.0), "mixup_weight"),
    (dict(cutmix_mode="diagonal"), "cutmix_mode"),
    (dict(target="soft"), "target"),
])
def test_invalid_mixer_options(kwargs, message):
    with pytest.raises(ValueError, match=message):
        CompoundMixer(**kwargs)


def test_yun_cutmix_box_covers_one_minus_lambda_on_average_and_is_never_empty():
    """Yun et al.: λ ~ Beta(1, 1) → the pasted share 1 − λ is uniform before clipping; clipping at the
    border only shrinks the box, so the mean share over many draws sits a little under 1/2 (≈ 0.39
    for a square 32×32 image, computed analytically below) and no box is empty."""
    from cer_hf.curriculum.mixing import cutmix_box

    rng = np.random.default_rng(0)
    shares, sizes = [], []
    for _ in range(4000):
        top, left, h, w = cutmix_box(rng, 32, 32, alpha=1.0)
        assert h >= 1 and w >= 1 and 0 <= top and top + h <= 32 and 0 <= left and left + w <= 32
        shares.append(h * w / 1024)
        sizes.append(h)
    # E[share] = E_c[(E_u[clipped 1-D length fraction])^2] with side fraction c = sqrt(1 - λ); a centre
    # uniform on [0, 1] keeps on average c - c²/4 of the side, so E[share] = E[(c - c²/4)²] for λ ~ U(0, 1).
    c = np.sqrt(1 - np.random.default_rng(1).uniform(size=200_000))
    expected = float(np.mean((c - c**2 / 4) ** 2))
    assert abs(np.mean(shares) - expected) < 0.02
    assert 0.3 < expected < 0.45
    assert len(set(sizes)) > 20  # box sizes vary with λ (not one fixed box)


def test_each_face_is_augmented_before_it_is_mixed():
    """A CutMix compound must hold the partner's own (augmented) face in the box: the collator crops each
    source face first and then pastes, so the box equals the augmented partner there."""
    from cer_hf.curriculum.augment import TrainAugment
    from cer_hf.curriculum.collate import CurriculumCollator
    from cer_hf.data.labelled import SYNTHESIZED

    augment = TrainAugment(crop_prob=1.0, crop_scale=(0.3, 0.5), flip_prob=0.0, jitter_prob=0.0, erase_prob=0.0)
    mixer = CompoundMixer(mixup_prob=0.0, cutmix_prob=1.0, cutmix_mode="upper_lower")
    collator = CurriculumCollator(mixer=mixer, augment=augment, image_mean=(0.0,) * 3, image_std=(1.0,) * 3)
    generator = torch.Generator().manual_seed(0)
    first, partner = torch.rand(3, 16, 16, generator=generator), torch.rand(3, 16, 16, generator=generator)
    item = {"image": first, "partner": partner, "pair": (3, 5), "kind": SYNTHESIZED, "stage": 0, "seed": 11}
    pixels = collator([item])["pixel_values"][0]
    rng = np.random.default_rng(11)
    params_first, params_partner = augment.sample_params(rng), augment.sample_params(rng)
    cropped = augment.apply(torch.stack([first, partner]), [params_first, params_partner])
    assert torch.allclose(pixels[:, :8], cropped[0][:, :8]) and torch.allclose(pixels[:, 8:], cropped[1][:, 8:])
    # mixing first and cropping after would have resampled the pasted half from the whole mixed image
    mixed_then_cropped = augment.apply(CompoundMixer.apply(first, partner, (1.0, 8, 0, 8, 16)).unsqueeze(0),
                                       [params_first])[0]
    assert not torch.allclose(pixels, mixed_then_cropped)
