"""Progress reporting shared by the CLI (tqdm) and the dashboard (callbacks).

Library functions that take long accept ``progress: Callable[[float, str], None] | None``
— a fraction in [0, 1] and a short message — and never import tqdm or streamlit.
"""

from __future__ import annotations

import sys
from typing import Callable

ProgressFn = Callable[[float, str], None]


def tqdm_progress(desc: str, *, disable: bool | None = None) -> tuple[ProgressFn, Callable[[], None]]:
    """A ``(progress, close)`` pair drawing a tqdm bar on stderr (percent scale)."""
    from tqdm.auto import tqdm

    bar = tqdm(total=100, desc=desc, unit="%", file=sys.stderr, disable=disable,
               bar_format="{desc}: {percentage:3.0f}%|{bar}| {postfix} [{elapsed}<{remaining}]")

    def progress(fraction: float, message: str = "") -> None:
        target = int(round(100 * min(max(fraction, 0.0), 1.0)))
        if target > bar.n:
            bar.update(target - bar.n)
        if message:
            bar.set_postfix_str(message, refresh=True)

    return progress, bar.close


def null_progress(fraction: float, message: str = "") -> None:
    """A progress callback that does nothing."""
