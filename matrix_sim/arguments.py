"""Command-line pieces shared by `python -m matrix_sim` (cli.py) and the game client (client/app.py)."""
from __future__ import annotations

import argparse


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad argument is one line (`error: ...`), as every other bad input is."""

    def error(self, message: str):
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def stream_option(parser: argparse.ArgumentParser, applies_to: str = "") -> None:
    """--stream KEY=VALUE, read by stream.schedule.parse_overrides: the commands that run a trained stream."""
    parser.add_argument("--stream", action="append", default=[], metavar="KEY=VALUE", help=f"{applies_to}run the "
                        "stream with this setting instead of the model's (repeatable), e.g. levels=2 or "
                        "action_guidance=3")
