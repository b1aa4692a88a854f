"""Curriculum schedule, planning, and the compound share the model actually sees (workers, resume)."""

import numpy as np
import pytest
import torch
from transformers import TrainingArguments

from cer_hf.curriculum.augment import TrainAugment
from cer_hf.curriculum.dataset import BASIC, CurriculumDataset, CurriculumSchedule, NATURAL, SYNTHESIZED
from cer_hf.curriculum.collate import CurriculumCollator
from cer_hf.data.synthetic import synthetic_dataset
from cer_hf.curriculum.build import CurriculumTrainer
from cer_hf.curriculum.trainer import layerwise_lr_groups
from cer_hf.curriculum.mixing import CompoundMixer, compound_pairs
from cer_hf.modeling.modeling_cer import ViTForCompoundExpression
from cer_hf.taxonomy import EMOTION_BASICS


@pytest.fixture(scope="module")
def basic_rows():
    return synthetic_dataset(120, kind="basic", image_size=32, seed=3)


@pytest.fixture(scope="module")
def natural_rows():
    return synthetic_dataset(28, kind="compound", image_size=32, seed=4)


# ----------------------------------------------------------------------------- schedule


@pytest.mark.parametrize(
    "epochs, shares, mode, option",
    [
        ([5, 5, 3], [0, 0.2, 0.4, 1], "batch", "--stage_epochs has 3 stages"),
        ([5, 5], [0, 1.5], "batch", "--compound_shares must lie in [0, 1]"),
        ([5, -1], [0, 1], "batch", "--stage_epochs must be positive"),
        ([5, 0], [0, 1], "batch", "--stage_epochs must be positive"),
        ([], [], "batch", "--stage_epochs is empty"),
        ([5, 5], [0, 1], "mixed", "--curriculum_mode"),
    ],
)
def test_invalid_schedules_fail_naming_the_option(epochs, shares, mode, option):
    with pytest.raises(ValueError, match=option.replace("[", r"\[").replace("]", r"\]")):
        CurriculumSchedule(epochs, shares, mode)


def test_schedule_maps_epochs_to_stages():
    schedule = CurriculumSchedule()  # paper default [5, 5, 3, 3] / [0, .2, .4, 1]
    assert schedule.num_epochs == 16
    assert [schedule.stage_of_epoch(e) for e in (0, 4, 5, 9, 10, 12, 13, 15, 99)] == [0, 0, 1, 1, 2, 2, 3, 3, 3]
    assert schedule.share_of_epoch(11) == 0.4
    assert [e for e in range(16) if schedule.is_last_epoch_of_stage(e)] == [4, 9, 12, 15]
    assert schedule.scaled(0.2).stage_epochs == [1, 1, 1, 1]


# ----------------------------------------------------------------------------- planning


def test_batch_mode_puts_the_share_in_every_batch(basic_rows):
    schedule = CurriculumSchedule([1, 1, 1, 1], [0.0, 0.2, 0.4, 1.0])
    dataset = CurriculumDataset(basic_rows, schedule, batch_size=10, image_size=32, seed=1)
    n = len(dataset)
    for epoch, share in enumerate(schedule.compound_shares):
        kinds = np.array([dataset.plan(epoch * n + p).kind for p in range(n)]).reshape(-1, 10)
        per_batch = (kinds != BASIC).sum(axis=1)
        assert (per_batch == round(share * 10)).all(), (epoch, per_batch)
        assert {dataset.plan(epoch * n).stage} == {epoch}


def test_plans_are_pure_functions_of_seed_and_token(basic_rows):
    schedule = CurriculumSchedule([1, 2], [0.0, 0.5])
    first = CurriculumDataset(basic_rows, schedule, batch_size=8, image_size=32, seed=7)
    again = CurriculumDataset(basic_rows, schedule, batch_size=8, image_size=32, seed=7)
    other = CurriculumDataset(basic_rows, schedule, batch_size=8, image_size=32, seed=8)
    tokens = list(range(len(first), 3 * len(first)))
    assert [first.plan(t) for t in tokens] == [again.plan(t) for t in reversed(tokens)][::-1]
    assert [first.plan(t) for t in tokens] != [other.plan(t) for t in tokens]


def test_natural_fraction_splits_the_compound_samples(basic_rows, natural_rows):
    schedule = CurriculumSchedule([1], [1.0])
    dataset = CurriculumDataset(basic_rows, schedule, batch_size=8, natural=natural_rows, natural_fraction=0.25,
                                image_size=32, samples_per_epoch=800)
    kinds = np.array([dataset.plan(p).kind for p in range(len(dataset))])
    assert (kinds != BASIC).all()
    assert abs((kinds == NATURAL).mean() - 0.25) < 0.05
    with pytest.raises(ValueError, match="--natural_fraction"):
        CurriculumDataset(basic_rows, schedule, batch_size=8, natural_fraction=0.5, image_size=32)


def test_pool_mode_adds_a_nested_fraction_of_the_compound_pool(basic_rows):
    schedule = CurriculumSchedule([1, 1, 1], [0.0, 0.5, 1.0], mode="pool")
    dataset = CurriculumDataset(basic_rows, schedule, batch_size=8, image_size=32, compound_pool_size=60, seed=2)
    n = len(dataset)
    seen = []
    for epoch in range(3):
        plans = [dataset.plan(epoch * n + p) for p in range(n)]
        compounds = {(p.index, p.partner) for p in plans if p.kind == SYNTHESIZED}
        share = np.mean([p.kind != BASIC for p in plans])
        expected = schedule.compound_shares[epoch] * 60 / (120 + schedule.compound_shares[epoch] * 60)
        assert abs(share - expected) < 0.05, (epoch, share, expected)
        seen.append(compounds)
    assert not seen[0] and seen[1] and seen[1] <= seen[2]  # nested across stages


def test_synthesized_pairs_are_different_basics_forming_a_target_compound(basic_rows):
    dataset = CurriculumDataset(basic_rows, CurriculumSchedule([1], [1.0]), batch_size=8, image_size=32)
    valid = set(compound_pairs(EMOTION_BASICS, "abaw7"))
    for position in range(len(dataset)):
        plan = dataset.plan(position)
        pair = tuple(sorted((dataset.basic_targets[plan.index].argmax().item(),
                             dataset.basic_targets[plan.partner].argmax().item())))
        assert pair in valid


def test_negative_labels_train_as_all_zero_targets_and_never_mix():
    from cer_hf.curriculum.build import negative_label_set, split_labels

    rows = synthetic_dataset(70, kind="basic", include_neutral=True, image_size=16, seed=5)
    with pytest.raises(ValueError, match="Neutral"):  # without the option Neutral has no target
        CurriculumDataset(rows, CurriculumSchedule([1], [0.5]), batch_size=8, image_size=16)
    dataset = CurriculumDataset(rows, CurriculumSchedule([1], [0.5]), batch_size=8, image_size=16,
                                negative_labels=("neutral",))
    neutral = [i for i, label in enumerate(rows["label"]) if label == "Neutral"]
    assert neutral and all(dataset.basic_targets[i].sum() == 0 for i in neutral)
    assert all(dataset.basic_targets[i].sum() == 1 for i in range(len(rows)) if i not in neutral)
    plans = [dataset.plan(t) for t in range(len(dataset))]
    assert {p.index for p in plans if p.kind == BASIC} & set(neutral)  # Neutral is trained on ...
    assert not {i for p in plans if p.kind == SYNTHESIZED for i in (p.index, p.partner)} & set(neutral)  # ... never mixed
    rest, negative = split_labels(rows, negative_label_set(["neutral"], EMOTION_BASICS))
    assert set(negative["label"]) == {"Neutral"} and "Neutral" not in set(rest["label"])
    assert len(rest) + len(negative) == len(rows)
    with pytest.raises(ValueError, match="--negative_labels \\['Happiness'\\]"):
        negative_label_set(["happy"], EMOTION_BASICS)


def test_collator_output_is_deterministic_and_normalized(basic_rows):
    dataset = CurriculumDataset(basic_rows, CurriculumSchedule([1], [0.5]), batch_size=8, image_size=32)
    collator = CurriculumCollator(mixer=CompoundMixer(), augment=TrainAugment(), image_mean=(0.5,) * 3,
                                  image_std=(0.25,) * 3)
    items = [dataset[t] for t in range(8)]
    first, second = collator(items), collator([dataset[t] for t in range(8)])
    assert torch.equal(first["pixel_values"], second["pixel_values"])
    assert first["pixel_values"].shape == (8, 3, 32, 32) and first["labels"].shape == (8, 6)
    assert ((first["labels"].sum(1) == 2) == (first["sample_kind"] == SYNTHESIZED)).all()
    assert first["pixel_values"].abs().max() <= 2.0 + 1e-5


def test_augment_is_seeded_and_keeps_shape():
    image = torch.rand(3, 32, 32)
    augment = TrainAugment(erase_prob=1.0)
    a = augment(image, np.random.default_rng(5))
    b = augment(image, np.random.default_rng(5))
    c = augment(image, np.random.default_rng(6))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.shape == image.shape and 0.0 <= a.min() and a.max() <= 1.0
    identity = TrainAugment(crop_prob=0, flip_prob=0, jitter_prob=0, erase_prob=0)
    assert torch.allclose(identity(image, np.random.default_rng(0)), image, atol=1e-5)
    assert torch.allclose(TrainAugment(crop_prob=0, flip_prob=1, jitter_prob=0, erase_prob=0)(
        image, np.random.default_rng(0)), image.flip(-1), atol=1e-5)


def test_layerwise_lr_decay_groups(tiny_cer_config):
    model = ViTForCompoundExpression(tiny_cer_config)
    groups = layerwise_lr_groups(model, lr=1.0, weight_decay=0.05, layer_decay=0.5)
    by_param = {id(p): g for g in groups for p in g["params"]}
    named = dict(model.named_parameters())
    assert by_param[id(named[f"head.{len(model.head) - 1}.weight"])]["lr"] == 1.0  # the head: full lr
    assert by_param[id(named["vit.layers.1.mlp.fc1.weight"])]["lr"] == 0.5
    assert by_param[id(named["vit.layers.0.mlp.fc1.weight"])]["lr"] == 0.25
    assert by_param[id(named["vit.embeddings.patch_embeddings.projection.weight"])]["lr"] == 0.125
    assert by_param[id(named["vit.layers.0.mlp.fc1.bias"])]["weight_decay"] == 0.0
    assert by_param[id(named["vit.layers.0.mlp.fc1.weight"])]["weight_decay"] == 0.05
    assert sum(len(g["params"]) for g in groups) == sum(1 for p in model.parameters() if p.requires_grad)


# ----------------------------------------------------------------------------- what the model sees


class LabelRecorder:
    """Forward pre-hook keeping the labels of every training batch the model is called with."""

    def __init__(self, model):
        self.batches = []
        model.register_forward_pre_hook(self, with_kwargs=True)

    def __call__(self, module, args, kwargs):
        if module.training and "labels" in kwargs:
            self.batches.append(kwargs["labels"].detach().clone())


def _trainer(tmp_path, rows, config, schedule, **extra):
    torch.manual_seed(0)
    model = ViTForCompoundExpression(config)
    dataset = CurriculumDataset(rows, schedule, batch_size=8, image_size=32, seed=11)
    args = TrainingArguments(
        output_dir=str(tmp_path), per_device_train_batch_size=8, num_train_epochs=schedule.num_epochs,
        learning_rate=1e-3, use_cpu=True, report_to="none", remove_unused_columns=False, disable_tqdm=True,
        logging_steps=5, seed=0, **extra,
    )
    collator = CurriculumCollator(mixer=CompoundMixer(), augment=TrainAugment())
    trainer = CurriculumTrainer(model=model, args=args, train_dataset=dataset, data_collator=collator)
    from cer_hf.curriculum.trainer import CurriculumCallback

    trainer.add_callback(CurriculumCallback(schedule, evaluate_each_stage=False))
    return trainer, LabelRecorder(model), len(dataset) // 8


def _shares(batches, steps_per_epoch):
    compound = torch.stack([(b.sum(1) > 1.5).float().mean() for b in batches])
    return compound.view(-1, steps_per_epoch).mean(1).tolist()


def test_compound_share_seen_by_the_model_with_two_workers(tmp_path, basic_rows, tiny_cer_config):
    schedule = CurriculumSchedule([1, 1, 1, 1], [0.0, 0.2, 0.4, 1.0])
    trainer, recorder, steps = _trainer(tmp_path, basic_rows, tiny_cer_config, schedule,
                                        dataloader_num_workers=2, save_strategy="no")
    trainer.train()
    shares = _shares(recorder.batches, steps)
    assert len(shares) == 4
    for seen, scheduled in zip(shares, schedule.compound_shares):
        assert abs(seen - scheduled) <= 0.03, (shares, schedule.compound_shares)
    logged = [log for log in trainer.state.log_history if "compound_share_seen" in log]
    assert logged and logged[-1]["curriculum_stage"] == 4


def test_resume_in_the_middle_of_stage_three(tmp_path, basic_rows, tiny_cer_config):
    schedule = CurriculumSchedule([1, 1, 2, 1], [0.0, 0.2, 0.4, 1.0])
    full, full_recorder, steps = _trainer(tmp_path / "full", basic_rows, tiny_cer_config, schedule,
                                          save_strategy="no")
    full.train()
    resume_step = 2 * steps + steps // 2 + 2  # inside stage 3 (epochs 2-3), mid-epoch
    first, _, _ = _trainer(tmp_path / "run", basic_rows, tiny_cer_config, schedule, save_strategy="steps",
                           save_steps=resume_step, max_steps=resume_step)
    first.train()
    checkpoint = tmp_path / "run" / f"checkpoint-{resume_step}"
    assert checkpoint.is_dir()
    resumed, recorder, _ = _trainer(tmp_path / "run", basic_rows, tiny_cer_config, schedule, save_strategy="no")
    resumed.train(resume_from_checkpoint=str(checkpoint))
    # The resumed run sees exactly the batches the uninterrupted run saw from that step on ...
    assert len(recorder.batches) == len(full_recorder.batches) - resume_step
    for seen, expected in zip(recorder.batches, full_recorder.batches[resume_step:]):
        assert torch.equal(seen, expected)
    # ... starting in stage 3 with its share.
    rest_of_epoch = recorder.batches[: 3 * steps - resume_step]
    share = torch.cat([(b.sum(1) > 1.5).float() for b in rest_of_epoch]).mean().item()
    assert abs(share - 0.4) <= 0.03 + 1 / (8 * len(rest_of_epoch))


def test_rows_split_into_basics_and_any_compound_and_eval_keeps_the_set():
    from cer_hf.curriculum.build import keep_evaluated, keep_targets, split_by_kind

    rows = synthetic_dataset(44, kind="all", compound_set="rafdb", include_neutral=True, image_size=16, seed=0)
    rows, dropped = keep_targets(rows)
    assert set(dropped) == {"Neutral"}
    basic, compound = split_by_kind(rows)
    assert set(basic["label"]) <= set(EMOTION_BASICS) and "Happily Disgusted" in set(compound["label"])
    evaluated, other = keep_evaluated(rows, "abaw7")
    assert "Happily Disgusted" in other and "Happily Disgusted" not in set(evaluated["label"])
    assert len(evaluated) + sum(other.values()) == len(rows)


@pytest.mark.slow  # two processes; measured 33 s
def test_every_rank_sees_the_share_with_two_processes_and_workers(tmp_path):
    """Two ranks (torchrun + gloo on CPU), two workers each: every rank's batches carry the share."""
    import json
    import os
    import socket
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # --cpu and --multi_gpu are exclusive in accelerate 1.15: ACCELERATE_USE_CPU selects gloo on CPU.
    env = {**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1", "ACCELERATE_USE_CPU": "1"}
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--num_machines", "1", "--main_process_port", str(port), "--mixed_precision", "no",
               "--dynamo_backend", "no", str(root / "tests" / "curriculum_rank_probe.py"), str(tmp_path)]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    for rank in (0, 1):
        record = json.loads((tmp_path / f"rank{rank}.json").read_text())
        assert record["world_size"] == 2
        assert record["batches"] == 3 * 6  # 96 samples / (8 per batch x 2 ranks) per epoch
        for seen, scheduled in zip(record["shares"], [0.0, 0.3, 1.0]):
            assert abs(seen - scheduled) <= 0.03, (rank, record["shares"])
        assert record["eval_num_compound"] == 21  # gathered from both ranks, padding dropped


def test_images_of_any_mode_become_rgb_like_the_rest_of_the_toolkit():
    from PIL import Image

    from cer_hf.image_io import image_to_uint8

    # Transparent pixels composite on black (image_io.to_rgb); a plain convert("RGB") would keep their colour.
    rgba = Image.new("RGBA", (8, 8), (200, 100, 50, 0))
    assert image_to_uint8(rgba, 8).max().item() == 0
    # 16-bit grayscale scales to 8 bits instead of saturating at white.
    gray16 = Image.new("I;16", (8, 8), 256 * 100)
    assert image_to_uint8(gray16, 8).unique().tolist() == [100]
    assert image_to_uint8(Image.new("L", (4, 4), 7), 8).shape == (3, 8, 8)
