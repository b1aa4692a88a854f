"""`cer-hf convert MAE_DIR OUT_DIR`: turn an MAE checkpoint into a `ViTForCompoundExpression` (exact copy)."""

from __future__ import annotations

import argparse

from cer_hf.modeling.convert import convert_mae_checkpoint


def register_cli(subparsers: argparse._SubParsersAction) -> None:
    """Add `cer-hf convert MAE_DIR OUT_DIR`."""
    parser = subparsers.add_parser("convert", help="turn an MAE checkpoint into a ViTForCompoundExpression")
    parser.add_argument("mae_dir", help="saved ViTMAEForPreTraining or ViTMAEModel checkpoint")
    parser.add_argument("out_dir", help="where to save the converted model")
    parser.add_argument("--compound-set", default="abaw7", help="named compound set (abaw7, rafdb)")
    parser.add_argument("--image-size", type=int, default=None, help="new input size; interpolates positions")
    parser.add_argument("--pooling", choices=("mean", "cls"), default="mean")
    parser.add_argument("--head-hidden-sizes", type=int, nargs="*", default=[], help="MLP head widths")
    parser.add_argument("--head-dropout", type=float, default=0.0)
    parser.add_argument("--drop-path-rate", type=float, default=0.1, help="stochastic depth for fine-tuning")
    parser.add_argument("--seed", type=int, default=0, help="seed of the head's initialisation")
    parser.set_defaults(func=_run_cli)


def _run_cli(args: argparse.Namespace) -> None:
    model = convert_mae_checkpoint(
        args.mae_dir,
        args.out_dir,
        compound_set_name=args.compound_set,
        image_size=args.image_size,
        seed=args.seed,
        pooling=args.pooling,
        head_hidden_sizes=args.head_hidden_sizes,
        head_dropout=args.head_dropout,
        drop_path_rate=args.drop_path_rate,
    )
    config = model.config
    print(
        f"converted {args.mae_dir} -> {args.out_dir}: {config.num_hidden_layers} layers, hidden {config.hidden_size}, "
        f"{config.image_size}px, basics {config.basic_labels}, compound set {config.compound_set}"
    )

