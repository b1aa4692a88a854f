"""`cer-hf app MODEL`: serve the Gradio demo (images, webcam, videos) of a model, or write a Hub Space for it."""

from __future__ import annotations

import argparse

from cer_hf.commands.predict import (
    add_pipeline_arguments,
    check_pipeline_options,
    load_pipeline,
)
from cer_hf.hub.space import write_space
from cer_hf.inference.app import build_app, import_gradio


def register_cli(subparsers: argparse._SubParsersAction) -> None:
    """Add `cer-hf app MODEL [--host H] [--port P] [--share] [--write-space DIR]`."""
    parser = subparsers.add_parser(
        "app",
        help="serve a browser demo of a model (image upload, webcam, video timeline); needs cer_hf[app]",
        description="Serves a Gradio app: an image or webcam snapshot gives the compound scores and basic "
        "probabilities of the largest face; a video gives the timeline plot, the share of frames per compound "
        "and the per-frame CSV. The face and smoothing options are those of `cer-hf predict`. With "
        "--write-space DIR it writes a Hugging Face Space for the Hub model MODEL instead of serving.",
    )
    parser.add_argument("model", help="local checkpoint directory or Hub repo id")
    add_pipeline_arguments(parser)
    server = parser.add_argument_group("server")
    server.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1; 0.0.0.0 serves the local network)")
    server.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    server.add_argument("--share", action="store_true", help="also open a temporary public gradio.live link")
    server.add_argument("--example", default=None, help="an image shown and scored when the page opens")
    server.add_argument("--title", default="Compound expression recognition", help="page title")
    space = parser.add_argument_group("Hub Space")
    space.add_argument("--write-space", metavar="DIR", default=None,
                       help="write a Gradio Space for MODEL (a Hub repo id) into DIR and exit; upload it with "
                       "`hf upload SPACE_ID DIR . --repo-type space`")
    parser.set_defaults(func=_run_cli)


def _run_cli(args: argparse.Namespace) -> int:
    check_pipeline_options(args)
    options = {"face_selection": args.face_selection, "margin": args.margin, "detect_every": args.detect_every,
               "smoothing": args.smoothing or "gaussian", "delta": args.delta, "sigma": args.sigma}
    if args.write_space:
        names = write_space(args.model, args.write_space, revision=args.revision, faces_cropped=args.faces_cropped,
                            detect_width=args.detect_width, options=options, title=args.title)
        print(f"wrote a Gradio Space for {args.model} to {args.write_space}: {', '.join(names)}")
        print(f"upload it with: hf upload SPACE_ID {args.write_space} . --repo-type space")
        return 0
    import_gradio()  # the missing extra is reported before the model loads
    predictor, detector = load_pipeline(args)
    demo = build_app(predictor, detector, title=args.title, example=args.example, **options)
    demo.launch(server_name=args.host, server_port=args.port, share=args.share)
    return 0
