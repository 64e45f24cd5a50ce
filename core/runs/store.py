"""All runs under a root: where they live, a fresh run directory, the listing table.

One run is :class:`core.runs.Run`; this module only reads the small JSON files of
each run directory (:mod:`core.runs.files`), so listing stays cheap.
"""

from __future__ import annotations

import datetime as _dt
import os
import re
import secrets
from pathlib import Path
from typing import Any

from core.errors import DataError
from core.runs.manage import read_label
from core.learn.methods import fold_progress
from core.runs.files import (CONFIG, FOLD_RE, STALE_AFTER_S, STATUS, SUMMARY, effective_state,
                            partial_fold_info, read_json_dict, seconds_between)

#: Columns of :func:`list_runs`, in order.
LIST_COLUMNS = ("name", "path", "method", "state", "mAP", "folds", "epochs", "eps",
                "min_samples", "started", "seconds", "progress", "phase", "message", "label", "note")


def default_runs_root() -> Path:
    """Where runs live by default: :func:`core.paths.runs_root` (``$VIDID_RUNS``, else
    ``$VIDID_CACHE/runs``, else ``~/.cache/vidid/runs``).

    Examples
    --------
    >>> isinstance(default_runs_root(), Path)
    True
    """
    from core.paths import runs_root

    return runs_root()


def new_run_dir(root: str | os.PathLike | None, method: str) -> Path:
    """Create and return a fresh, uniquely named run directory under ``root``.

    The name is ``YYYYMMDD-HHMMSS-METHOD-xxxx`` (UTC, random hex suffix); the directory
    is made with ``os.mkdir`` so two processes can never get the same one.

    Examples
    --------
    >>> import tempfile
    >>> d = new_run_dir(tempfile.mkdtemp(), "knn")
    >>> d.is_dir() and "-knn-" in d.name
    True
    """
    root = Path(root) if root is not None else default_runs_root()
    if not re.match(r"^[A-Za-z0-9_]+$", str(method)):
        raise ValueError(f"bad method name {method!r} for a run directory")
    root.mkdir(parents=True, exist_ok=True)
    for _ in range(100):
        stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
        path = root / f"{stamp}-{method}-{secrets.token_hex(2)}"
        try:
            os.mkdir(path)
        except FileExistsError:
            continue
        return path
    raise OSError(f"{root}: could not create a unique run directory")


def list_runs(root: str | os.PathLike | None = None, *, stale_after: float = STALE_AFTER_S) -> "pandas.DataFrame":  # noqa: F821
    """One row per run under ``root`` (newest first), reading only small JSON files.

    Columns: name, path, method, state, mAP, folds (completed), epochs, eps,
    min_samples, started, seconds, progress, phase, message, label and note
    (:mod:`core.runs.manage`). A run with a corrupt file
    is listed with state ``"corrupt"`` and the error as its message.

    Examples
    --------
    >>> import tempfile
    >>> list_runs(tempfile.mkdtemp()).empty
    True
    """
    import pandas as pd

    root = Path(root) if root is not None else default_runs_root()
    rows = []
    if root.is_dir():
        for d in root.iterdir():
            if d.is_dir() and (d / CONFIG).exists():
                rows.append(_run_row(d, stale_after))
    df = pd.DataFrame(rows, columns=list(LIST_COLUMNS))
    if not df.empty:
        df = df.sort_values(["started", "name"], ascending=False, na_position="last",
                            key=lambda s: s.fillna("").astype(str)).reset_index(drop=True)
    return df


def _run_row(d: Path, stale_after: float) -> dict:
    row: dict[str, Any] = {c: None for c in LIST_COLUMNS}
    row.update(name=d.name, path=str(d))
    try:
        cfg = read_json_dict(d / CONFIG)
        status = read_json_dict(d / STATUS) if (d / STATUS).exists() else {}
        summary = read_json_dict(d / SUMMARY) if (d / SUMMARY).exists() else {}
    except (DataError, OSError) as exc:
        row.update(state="corrupt", message=str(exc))
        return row
    names = {p.name for p in d.iterdir()}
    complete = [int(FOLD_RE.match(n).group(1)) for n in names
                if n.endswith(".done.json") and FOLD_RE.match(n) and n.replace(".done.json", ".pt") in names]
    folds = len(complete)
    state = effective_state(d, status, stale_after)
    progress = status.get("progress")
    if state not in ("running", "complete"):  # what the completed folds did, not the last report
        progress = fold_progress(cfg, complete, partial_fold_info(d, status, set(complete)))
    seconds = summary.get("seconds")
    if seconds is None:
        end = status.get("finished") or status.get("updated")
        seconds = seconds_between(status.get("started"), end)
    row.update(method=cfg.get("method"), state=state, mAP=summary.get("mAP"), folds=folds,
               epochs=cfg.get("epochs"),
               # eps=None in the config means "automatic": show the eps the run chose
               eps=cfg.get("eps") if cfg.get("eps") is not None else summary.get("noise_eps"),
               min_samples=cfg.get("min_samples"),
               started=status.get("started") or cfg.get("created"), seconds=seconds,
               progress=progress, phase=status.get("phase"),
               message=status.get("message"), **read_label(d))
    return row


__all__ = ["LIST_COLUMNS", "default_runs_root", "list_runs", "new_run_dir"]
