"""The `cer-hf` subcommands, one module each: argument parsing and printing live here and nowhere else in cer_hf."""
