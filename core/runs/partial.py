"""A fold's mid-fold state ``fold_K.partial.pt``: what lets a cut-short fold resume.

Written after every finished epoch (weights, optimiser, labels, best so far, RNGs, at
least ``epochs_done`` and ``epochs``), kept by :func:`core.runs.clean_run` while readable,
continued by ``fit`` and removed once the fold's checkpoint is complete.
:class:`core.runs.Run` is the face of these functions (``save_partial``, ``load_partial``,
``discard_partial``, ``partial_info``); they take the run directory.
"""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path
from typing import Any

from core.atomic import atomic_open
from core.errors import DataError
from core.runs.checkpoint import check_fold, load_checkpoint
from core.runs.files import PARTIAL_RE


def partial_path(run_dir: str | os.PathLike, k: int) -> Path:
    """Where fold ``k``'s mid-fold state lives in ``run_dir``.

    >>> partial_path("/runs/r1", 2).name
    'fold_2.partial.pt'
    """
    return Path(run_dir) / f"fold_{check_fold(k)}.partial.pt"


def write_partial(run_dir: str | os.PathLike, k: int, state: dict) -> dict:
    """Write fold ``k``'s ``state`` to ``fold_K.partial.pt``; return ``{"fold", "epochs_done", "epochs"}``.

    ``state`` is a dict of tensors, numpy arrays and plain values holding at least
    ``epochs_done`` and ``epochs`` (ints); ``fold`` is added. Cheap enough for every
    epoch: serialised in memory and written in one piece, without fsync (a kill leaves
    the old state or the new one; a power loss at worst an unreadable file, and the
    fold restarts).
    """
    import torch

    k = check_fold(k)
    info = {"fold": k, "epochs_done": int(state["epochs_done"]), "epochs": int(state["epochs"])}
    buf = io.BytesIO()
    torch.save({**state, "fold": k}, buf)
    with atomic_open(partial_path(run_dir, k), "wb", durable=False) as fh:
        fh.write(buf.getbuffer())
    return info


def read_partial(run_dir: str | os.PathLike, k: int, *, map_location: Any = "cpu") -> dict | None:
    """Fold ``k``'s mid-fold state, or None if it has none.

    Loaded safely (``weights_only``: tensors, numpy arrays and plain values only);
    a damaged file, or one that is not fold ``k``'s state, raises DataError naming it.
    """
    pt = partial_path(run_dir, k)
    if not pt.exists():
        return None
    obj = load_checkpoint(pt, map_location, what="mid-fold state")
    done, epochs = obj.get("epochs_done"), obj.get("epochs")
    if obj.get("fold") != k or not all(isinstance(v, int) and not isinstance(v, bool)
                                       for v in (done, epochs)) or not 0 < done <= epochs:
        raise DataError(f"{pt}: not a mid-fold state of fold {k} (fold {obj.get('fold')!r}, "
                        f"epochs_done {done!r} of {epochs!r})")
    return obj


def remove_partial(run_dir: str | os.PathLike, k: int) -> None:
    """Remove fold ``k``'s mid-fold state, if any."""
    with contextlib.suppress(FileNotFoundError):
        partial_path(run_dir, k).unlink()


def sort_partials(run_dir: str | os.PathLike, complete: set[int]) -> tuple[dict[int, int], list[str]]:
    """The mid-fold states of ``run_dir`` to keep and those to drop.

    Returns ``(kept, drop)``: ``kept`` maps each fold not in ``complete`` whose state
    reads to its ``epochs_done``; ``drop`` names the files of the others (unreadable,
    or of a fold already complete), sorted.
    """
    kept: dict[int, int] = {}
    drop: list[str] = []
    for n in sorted(os.listdir(run_dir)):
        m = PARTIAL_RE.match(n)
        if not m:
            continue
        k = int(m.group(1))
        if k not in complete:
            try:
                kept[k] = read_partial(run_dir, k)["epochs_done"]
                continue
            except DataError:
                pass  # unreadable: the fold restarts (Run.resume says so)
        drop.append(n)
    return kept, drop


def last_partial(run_dir: str | os.PathLike) -> dict | None:
    """``{"fold", "epochs_done", "epochs"}`` of the highest fold's mid-fold state, read from the file.

    None when ``run_dir`` holds none; for a run just cleaned, whose states all read
    (the status may be a heartbeat behind them).
    """
    folds = sorted(int(m.group(1)) for m in map(PARTIAL_RE.match, os.listdir(run_dir)) if m)
    if not folds:
        return None
    state = read_partial(run_dir, folds[-1])
    return {"fold": folds[-1], "epochs_done": state["epochs_done"], "epochs": state["epochs"]}


__all__ = ["last_partial", "partial_path", "read_partial", "remove_partial", "sort_partials",
           "write_partial"]
