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


def bounded_int(limit: int):
    """argparse type: an integer of magnitude at most ``limit`` (lower bounds and their
    messages stay with the option's own checks). ``10**30`` folds, seeds beyond what
    the random generators take, ... are refused here with the value named.

    >>> bounded_int(10)("7"), bounded_int(10)("-3")
    (7, -3)
    """
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            shown = text if len(text) <= 40 else text[:30] + f"...({len(text)} chars)"
            raise argparse.ArgumentTypeError(f"{shown!r} is not an integer") from None
        if abs(value) > limit:
            shown = text if len(text) <= 40 else f"a {len(text)}-digit number"
            raise argparse.ArgumentTypeError(f"{shown} is out of range (at most {limit})")
        return value

    parse.__name__ = "integer"
    return parse


def bounded_float(limit: float):
    """argparse type: a finite float of magnitude at most ``limit``."""
    def parse(text: str) -> float:
        value = finite_float(text)
        if abs(value) > limit:
            raise argparse.ArgumentTypeError(f"{text[:40]!r} is out of range (at most {limit:g})")
        return value

    parse.__name__ = "number"
    return parse


#: Largest magnitude of numeric options: values beyond them overflow somewhere below.
MAX_COUNT = 2**31 - 1
MAX_SEED = 2**32 - 1
MAX_RADIUS = 1e6
MAX_LR = 1e3


def refuse_overwriting_inputs(out: str, inputs, *, option: str = "--out") -> None:
    """Refuse an output path that is one of the inputs (same path, link or hard link).

    Called before anything is read or written, so ``vidid pool F --out F`` leaves
    ``F`` as it was.

    >>> refuse_overwriting_inputs("a.txt", ["a.txt"])
    Traceback (most recent call last):
    ValueError: a.txt: --out is the input file a.txt; choose another output
    """
    import os

    target = os.path.realpath(out)
    for src in inputs:
        if src is None or src == "-":
            continue
        try:
            same = os.path.samefile(out, src)
        except (OSError, ValueError):
            same = os.path.realpath(src) == target
        if same:
            raise ValueError(f"{out}: {option} is the input file {src}; choose another output")


def refuse_output_inside(out: str, folder: str, what: str, *, option: str = "--out") -> None:
    """Refuse an output path inside ``folder`` (e.g. a run directory it would damage)."""
    import os

    parent = os.path.realpath(os.path.dirname(os.path.abspath(out)))
    if parent == os.path.realpath(folder):
        raise ValueError(f"{out}: {option} is inside the {what} {folder}; choose another output")
