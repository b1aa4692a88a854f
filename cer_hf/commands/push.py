"""`cer-hf push CHECKPOINT_DIR REPO_ID`: publish a checkpoint (safetensors, remote code, model card, metrics)."""

from __future__ import annotations

import argparse
import sys

from cer_hf.hub.publish import PublishError, publish


def register_cli(subparsers: argparse._SubParsersAction) -> None:
    """Add `cer-hf push CHECKPOINT_DIR REPO_ID`."""
    parser = subparsers.add_parser(
        "push",
        help="publish a checkpoint to the Hugging Face Hub (weights, code, card, metrics)",
        description="Publish a checkpoint. The token comes from HF_TOKEN or `hf auth login` (never the command line).",
    )
    parser.add_argument("checkpoint_dir", help="saved ViTForCompoundExpression or ViTMAE checkpoint directory")
    parser.add_argument("repo_id", help="target repo, e.g. me/cer-vit-small")
    parser.add_argument("--private", action="store_true", help="create the repo private")
    parser.add_argument("--revision", default=None, help="branch to commit to (created if new); default main")
    parser.add_argument("--commit-message", default=None)
    parser.add_argument("--card", choices=("cer", "mae"), default=None, help="model card; default from config.json")
    parser.add_argument("--metrics", default=None, help="JSON file of measured metrics (default: the checkpoint's)")
    parser.add_argument("--eval-dataset", default=None, help="name of the evaluation data, for the card")
    parser.add_argument("--base-model", default=None, help="Hub id of the model this one was fine-tuned from")
    parser.add_argument("--dataset", dest="datasets", action="append", default=None, help="Hub dataset id (repeatable)")
    parser.add_argument("--license", default="apache-2.0")
    parser.set_defaults(func=_run_cli)


def _run_cli(args: argparse.Namespace) -> int:
    try:
        commit = publish(
            args.checkpoint_dir,
            args.repo_id,
            private=args.private,
            revision=args.revision,
            commit_message=args.commit_message,
            card=args.card,
            metrics=args.metrics,
            eval_dataset=args.eval_dataset,
            base_model=args.base_model,
            datasets=args.datasets,
            license=args.license,
        )
    except PublishError as error:
        print(f"cer-hf push: error: {error}", file=sys.stderr)
        return 1
    print(f"pushed {args.checkpoint_dir} to {args.repo_id} (revision {args.revision or 'main'})")
    print(f"commit {commit.oid}")
    print(commit.commit_url)
    return 0

