"""The one way to get a `ViTForCompoundExpression` to fine-tune: a converted checkpoint, an MAE checkpoint, or a preset.

    model_args = ModelArguments(mae_checkpoint="runs/mae", image_size=112)
    model, image_processor = build_model(model_args)

Every recipe and command that builds a model goes through `build_model`, so the three sources
check the same things and a fresh model always normalises with the statistics it records in its
image processor (the ABAW7 authors' face statistics; an MAE checkpoint keeps its own).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from transformers.models.vit.image_processing_pil_vit import ViTImageProcessorPil

from cer_hf.image_io import FACE_MEAN, FACE_STD
from cer_hf.modeling.cnn import CNN_PRESETS, CNNForCompoundExpression, cnn_compound_config
from cer_hf.modeling.convert import compound_config, convert_mae_model, image_processor_for, load_mae_encoder
from cer_hf.modeling.modeling_cer import ViTForCompoundExpression
from cer_hf.presets import encoder_preset
from cer_hf.safe_weights import check_safe_folder


@dataclass
class ModelArguments:
    """Which model to fine-tune: a converted checkpoint, an MAE checkpoint, or a fresh preset."""

    model_name_or_path: str | None = field(default=None, metadata={"help": "converted ViTForCompoundExpression dir"})
    mae_checkpoint: str | None = field(default=None, metadata={"help": "MAE checkpoint dir, converted on the fly"})
    model_preset: str = field(default="micro", metadata={
        "help": "a fresh model: a ViT size of cer_hf.presets, or a CNN baseline (resnet-tiny, resnet-small, resnet-18)"})
    image_size: int | None = field(default=None, metadata={"help": "input size (default: the checkpoint's, else 224)"})
    patch_size: int = field(default=16, metadata={"help": "patch size of a fresh model"})
    conv_stem_channels: list[int] = field(default_factory=list, metadata={
        "help": "a fresh ViT's convolutional stem widths (stride-2 3x3 convs before the patch projection)"})
    conv_stem_convs_per_stage: int = field(default=1, metadata={"help": "3x3 convs per stem stage"})
    conv_stem_style: str = field(default="strided", metadata={
        "help": "strided (stride-2 conv opens each stage) or pooled (full-resolution first stage, max-pool between)"})
    compound_set: str = field(default="abaw7", metadata={"help": "compound classes: abaw7 or rafdb"})
    pooling: str = field(default="mean", metadata={"help": "mean (MAE fine-tuning) or cls"})
    head_hidden_sizes: list[int] = field(default_factory=list, metadata={"help": "MLP head widths"})
    head_dropout: float = field(default=0.0)
    drop_path_rate: float = field(default=0.1, metadata={"help": "stochastic depth (MAE fine-tuning: 0.1)"})
    reinit_conv_stem: bool = field(default=False, metadata={
        "help": "start the conv stem and patch projection of an --mae_checkpoint afresh, keeping its transformer "
                "blocks (an MAE-trained pooled stem stalls fine-tuning on small face data; docs/curriculum.md)"})



def model_class_for(path: str | Path):
    """The model class of a saved checkpoint, from its config.json's `model_type` (ViT or the CNN baseline)."""
    config = json.loads((Path(path) / "config.json").read_text())
    return CNNForCompoundExpression if config.get("model_type") == CNNForCompoundExpression.config_class.model_type \
        else ViTForCompoundExpression


def build_model(model_args: ModelArguments) -> tuple[ViTForCompoundExpression, ViTImageProcessorPil]:
    """The model and its image processor from a converted checkpoint, an MAE checkpoint or a preset."""
    head = dict(pooling=model_args.pooling, head_hidden_sizes=list(model_args.head_hidden_sizes),
                head_dropout=model_args.head_dropout, drop_path_rate=model_args.drop_path_rate)
    if model_args.model_name_or_path and model_args.mae_checkpoint:
        raise ValueError("give either --model_name_or_path or --mae_checkpoint, not both")
    if model_args.model_name_or_path:
        path = Path(model_args.model_name_or_path)
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"--model_name_or_path {path}: no config.json (expected a converted checkpoint)")
        check_safe_folder(path, f"--model_name_or_path {path}")  # safetensors only: never unpickle
        model_class = model_class_for(path)
        extra = {} if model_class is CNNForCompoundExpression else {"drop_path_rate": model_args.drop_path_rate}
        model = model_class.from_pretrained(path, use_safetensors=True, **extra)
        if model_args.image_size and model_args.image_size != model.config.image_size:
            raise ValueError(f"--image_size {model_args.image_size} differs from the checkpoint's "
                             f"{model.config.image_size}; re-convert with `cer-hf convert --image-size`")
        try:
            processor = ViTImageProcessorPil.from_pretrained(path)
        except OSError:
            size = model.config.image_size
            processor = ViTImageProcessorPil(size={"height": size, "width": size}, image_mean=list(FACE_MEAN),
                                             image_std=list(FACE_STD))
        return model, processor
    if model_args.mae_checkpoint:
        mae = load_mae_encoder(model_args.mae_checkpoint)
        model = convert_mae_model(mae, compound_set_name=model_args.compound_set, image_size=model_args.image_size,
                                  **head)
        if model_args.reinit_conv_stem:
            if not model.config.conv_stem_channels:
                raise ValueError(f"--reinit_conv_stem: the MAE checkpoint {model_args.mae_checkpoint} has no conv stem")
            fresh = ViTForCompoundExpression(model.config).vit.embeddings.patch_embeddings
            model.vit.embeddings.patch_embeddings.load_state_dict(fresh.state_dict())
        return model, image_processor_for(model_args.mae_checkpoint, model.config.image_size)
    size = model_args.image_size or 224
    if model_args.model_preset in CNN_PRESETS:  # the convolutional baseline
        labels = compound_config(model_args.compound_set).to_dict()
        fields = {key: labels[key] for key in ("basic_labels", "compound_set", "compound_names", "compound_constituents")}
        model = CNNForCompoundExpression(cnn_compound_config(model_args.model_preset, fields, image_size=size,
                                                             head_dropout=model_args.head_dropout))
        processor = ViTImageProcessorPil(size={"height": size, "width": size}, image_mean=list(FACE_MEAN),
                                         image_std=list(FACE_STD))
        return model, processor
    config = compound_config(model_args.compound_set, image_size=size, patch_size=model_args.patch_size,
                             conv_stem_channels=list(model_args.conv_stem_channels),
                             conv_stem_convs_per_stage=model_args.conv_stem_convs_per_stage,
                             conv_stem_style=model_args.conv_stem_style,
                             **encoder_preset(model_args.model_preset), **head)
    model = ViTForCompoundExpression(config)
    processor = ViTImageProcessorPil(size={"height": size, "width": size}, image_mean=list(FACE_MEAN), image_std=list(FACE_STD))
    return model, processor

