"""A run's fold checkpoints: ``fold_K.pt``, its ``fold_K.done.json`` marker, safe loading.

A fold is complete only when both files exist: the checkpoint is written first, then
the marker with its size and SHA-256, which :func:`load_fold_checkpoint` verifies.
Every checkpoint (a fold's, or a mid-fold state of :mod:`core.runs.partial`) is read
by :func:`load_checkpoint`: tensors, numpy arrays and plain values only.
:class:`core.runs.Run` is the face of these functions (``save_fold``, ``load_fold``, ...).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np

from core.atomic import atomic_open, atomic_write_text
from core.errors import DataError
from core.io.safe_pickle import PickleTooBig, open_regular, plain_arrays, require_file, torch_safe_globals
from core.runs.files import FOLD_RE, dumps_json, now_iso, read_json_dict


def check_fold(k: Any) -> int:
    """Fold index ``k`` as an int; ValueError unless it is a non-negative integer.

    >>> check_fold(2), check_fold(np.int64(0))
    (2, 0)
    """
    if isinstance(k, (bool, np.bool_)) or not isinstance(k, (int, np.integer)) or k < 0:
        raise ValueError(f"fold must be a non-negative int, got {k!r}")
    return int(k)


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of the regular file ``path`` (a pipe or device is refused, not read)."""
    h = hashlib.sha256()
    with open_regular(path, "checkpoint") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_checkpoint(pt: str | os.PathLike, map_location: Any = "cpu", what: str = "checkpoint") -> dict:
    """Load the dict saved by ``torch.save`` in ``pt`` safely (``weights_only``).

    Tensors, numpy arrays and plain values only; a damaged file, one that is not a dict,
    or one whose arrays would outgrow the file raises DataError naming it and ``what``.
    """
    import torch

    pt = Path(pt)
    require_file(pt, what)  # a pipe or device in its place: refused, not read
    try:
        with torch.serialization.safe_globals(torch_safe_globals()):
            obj = torch.load(pt, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises many types for a bad file
        raise DataError(f"{pt}: cannot load {what}: {' '.join(str(exc).split())[:200]}") from None
    if not isinstance(obj, dict):
        raise DataError(f"{pt}: expected a dict {what}, got {type(obj).__name__}")
    try:
        return plain_arrays(obj, pt.stat().st_size)  # guarded stand-in arrays -> plain ndarrays
    except PickleTooBig as exc:
        raise DataError(f"{pt}: refused: {exc}") from None


def save_fold_checkpoint(run_dir: str | os.PathLike, k: int, payload: dict, info: dict | None = None) -> None:
    """Save fold ``k``'s checkpoint in ``run_dir``, then its ``.done`` marker (``info`` + size, SHA-256).

    A marker of an earlier save is removed first, so that it never vouches for a newer file.
    """
    import torch

    k = check_fold(k)
    pt = Path(run_dir) / f"fold_{k}.pt"
    done = Path(run_dir) / f"fold_{k}.done.json"
    with contextlib.suppress(FileNotFoundError):
        done.unlink()
    with atomic_open(pt, "wb") as fh:
        torch.save(payload, fh)
    marker = dict(info or {})
    marker.update(fold=k, bytes=pt.stat().st_size, sha256=file_sha256(pt), saved=now_iso())
    atomic_write_text(done, dumps_json(marker))


def completed_folds(run_dir: str | os.PathLike) -> list[int]:
    """Folds of ``run_dir`` whose checkpoint and ``.done`` marker both exist, sorted."""
    names = {p.name for p in Path(run_dir).iterdir()}
    return sorted(int(m.group(1)) for m in map(FOLD_RE.match, names)
                  if m and m.group(2) == "pt" and f"fold_{m.group(1)}.done.json" in names)


def read_fold_marker(run_dir: str | os.PathLike, k: int) -> dict:
    """Fold ``k``'s ``.done`` marker; DataError if the fold is not complete."""
    p = Path(run_dir) / f"fold_{check_fold(k)}.done.json"
    if not p.exists():
        raise DataError(f"{run_dir}: fold {k} is not complete (no {p.name})")
    return read_json_dict(p)


def load_fold_checkpoint(run_dir: str | os.PathLike, k: int, *, map_location: Any = "cpu",
                         verify: bool = True) -> dict:
    """Load fold ``k``'s checkpoint, first checking size and SHA-256 against its marker.

    ``verify=False`` skips the checks (the load stays safe). A missing, damaged or
    replaced checkpoint raises DataError naming it.
    """
    info = read_fold_marker(run_dir, k)
    pt = Path(run_dir) / f"fold_{check_fold(k)}.pt"
    if not pt.exists():
        raise DataError(f"{pt}: missing although its .done marker exists")
    if verify and info.get("bytes") is not None and pt.stat().st_size != info["bytes"]:
        raise DataError(f"{pt}: {pt.stat().st_size} bytes, its .done marker says {info['bytes']}")
    if verify and info.get("sha256") is not None and file_sha256(pt) != info["sha256"]:
        raise DataError(f"{pt}: contents differ from the checksum in its .done marker "
                        f"(damaged or replaced)")
    return load_checkpoint(pt, map_location)


__all__ = ["check_fold", "completed_folds", "file_sha256", "load_checkpoint", "load_fold_checkpoint",
           "read_fold_marker", "save_fold_checkpoint"]
