"""The on-disk layout of a run directory: file names, JSON encoding, the state a status reads as.

Shared by :mod:`core.runs` (one run) and :mod:`core.runs.store` (all runs under a root);
see :mod:`core.runs` for the full layout.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
import socket
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import DataError
from core.runs.liveness import pid_alive

STATES = ("running", "complete", "interrupted", "failed", "cancelled")
#: A "running" run whose heartbeat is older than this (seconds) reads "interrupted"
#: ($VIDID_STALE_AFTER overrides). On this host a dead pid is noticed at once; the
#: heartbeat matters for runs started on another host (shared folders) and hung ones.
STALE_AFTER_S = float(os.environ.get("VIDID_STALE_AFTER", 1800.0))

CONFIG = "config.json"
STATUS = "status.json"
METRICS = "metrics.json"
SUMMARY = "summary.json"
CANCEL = "cancel"
FOLD_RE = re.compile(r"^fold_(\d+)\.(pt|done\.json)$")
#: A fold's mid-fold state (``fold_K.partial.pt``): resume continues the fold from it.
PARTIAL_RE = re.compile(r"^fold_(\d+)\.partial\.pt$")


def now_iso() -> str:
    """The current UTC time as an ISO-8601 string (milliseconds), as stamped in run files."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds")


def age_seconds(stamp: Any) -> float | None:
    """Seconds since the ISO time ``stamp`` (naive = UTC); None if it is not one."""
    if not isinstance(stamp, str):
        return None
    try:
        then = _dt.datetime.fromisoformat(stamp)
    except ValueError:
        return None
    if then.tzinfo is None:
        then = then.replace(tzinfo=_dt.timezone.utc)
    return (_dt.datetime.now(_dt.timezone.utc) - then).total_seconds()


def seconds_between(a: Any, b: Any) -> float | None:
    """Seconds from ISO time ``a`` to ``b``; None if either is not one.

    Examples
    --------
    >>> seconds_between("2026-01-01T00:00:00", "2026-01-01T00:01:30")
    90.0
    """
    try:
        t0 = _dt.datetime.fromisoformat(a)
        t1 = _dt.datetime.fromisoformat(b)
    except (TypeError, ValueError):
        return None
    return (t1 - t0).total_seconds()


def json_default(obj: Any) -> Any:
    """``json.dumps(default=...)`` hook: numpy scalars/arrays and paths as plain values."""
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot store {type(obj).__name__} in JSON: {obj!r:.80}")


def dumps_json(obj: Any) -> str:
    """``obj`` as the indented JSON text of a run file (numpy values converted).

    Examples
    --------
    >>> dumps_json({"mAP": np.float32(0.5)})
    '{\\n "mAP": 0.5\\n}\\n'
    """
    return json.dumps(obj, indent=1, default=json_default) + "\n"


def read_json(path: Path) -> Any:
    """Parse a JSON file of a run; a corrupt one raises DataError naming it."""
    from core.io.safe_pickle import open_regular

    try:
        with open_regular(path, "JSON") as fh:  # a pipe or device would never end
            text = fh.read().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc.reason})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: corrupt JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    except RecursionError:  # "[[[[..." 100,000 deep
        raise DataError(f"{path}: not a run file: JSON nested too deeply") from None


def read_json_dict(path: Path) -> dict:
    """:func:`read_json` of a file that must hold a JSON object."""
    obj = read_json(path)
    if not isinstance(obj, dict):
        raise DataError(f"{path}: expected a JSON object, got {type(obj).__name__}")
    return obj


def effective_state(path: Path, status: dict, stale_after: float) -> str:
    """The state run directory ``path`` reads as, given its ``status.json`` dict.

    ``complete`` needs the status and ``summary.json``; a ``running`` status whose
    process is dead on this host, or whose heartbeat is older than ``stale_after``
    seconds, reads ``interrupted``; an unknown state reads ``failed``.

    Examples
    --------
    >>> effective_state(Path("/nonexistent"), {"state": "cancelled"}, 60.0)
    'cancelled'
    """
    state = status.get("state")
    if state not in STATES:
        return "interrupted" if not status else "failed"
    if state not in ("running", "complete"):
        return state
    if state == "complete" and (path / SUMMARY).exists():
        return "complete"
    # "running", or "complete" without summary (finish() between its two writes)
    alive = True
    if status.get("host") == socket.gethostname():
        alive = pid_alive(status.get("pid"), status.get("pid_start"))
    age = age_seconds(status.get("updated"))
    if age is not None and age > stale_after:
        alive = False
    return "running" if alive else "interrupted"


__all__ = ["CANCEL", "CONFIG", "FOLD_RE", "METRICS", "PARTIAL_RE", "STALE_AFTER_S", "STATES", "STATUS",
           "SUMMARY", "age_seconds", "dumps_json", "effective_state", "json_default",
           "now_iso", "partial_fold_info", "read_json", "read_json_dict", "seconds_between"]


def partial_fold_info(path: Path, status: dict, complete: set[int]) -> dict | None:
    """The status's ``partial`` (``{"fold", "epochs_done", "epochs"}``) of run ``path``, if it holds.

    None unless ``fold_K.partial.pt`` of that fold exists and the fold is not in
    ``complete``: a kept mid-fold state, for progress shown without loading it.

    >>> partial_fold_info(Path("/nonexistent"), {"partial": {"fold": 1}}, set()) is None
    True
    """
    info = status.get("partial")
    if not isinstance(info, dict) or not isinstance(info.get("fold"), int) or info["fold"] in complete:
        return None
    return info if (path / f"fold_{info['fold']}.partial.pt").exists() else None
