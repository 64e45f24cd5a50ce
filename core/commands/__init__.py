"""One module per ``vidid`` subcommand; each exposes ``register(subparsers)``."""

import argparse
import math


def finite_float(text: str) -> float:
    """argparse type: a finite float (``nan``/``inf`` are refused)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value
