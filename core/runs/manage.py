"""Manage finished runs: a label and a note (``label.json``), and deletion.

The label is what the user calls a run ("baseline", "eps 0.9"); the run directory's
name never changes, so paths in links and logs stay valid. Deleting refuses a run that
is running (its process would write into a removed folder).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from core.atomic import atomic_write_text
from core.errors import DataError
from core.runs.files import CONFIG, dumps_json, now_iso, read_json_dict

LABEL = "label.json"
MAX_LABEL = 80
MAX_NOTE = 2000


def read_label(run_dir: str | os.PathLike) -> dict:
    """``{"label": str, "note": str}`` of a run (empty strings when never set).

    >>> read_label("/nonexistent")
    {'label': '', 'note': ''}
    """
    p = Path(run_dir) / LABEL
    out = {"label": "", "note": ""}
    if p.exists():
        try:
            stored = read_json_dict(p)
        except (DataError, OSError):
            return out
        out.update({k: str(stored.get(k) or "") for k in ("label", "note")})
    return out


def set_label(run_dir: str | os.PathLike, label: str | None = None, note: str | None = None) -> dict:
    """Set the label and/or the note of a run (None keeps the current value).

    Examples
    --------
    >>> import tempfile, json
    >>> d = Path(tempfile.mkdtemp()); _ = (d / "config.json").write_text("{}")
    >>> set_label(d, "baseline", "knn, 3 folds")
    {'label': 'baseline', 'note': 'knn, 3 folds'}
    >>> set_label(d, note="")["label"]
    'baseline'
    """
    path = _run_path(run_dir)
    current = read_label(path)
    if label is not None:
        label = " ".join(str(label).split())
        if len(label) > MAX_LABEL:
            raise DataError(f"label has {len(label)} characters, at most {MAX_LABEL} allowed")
        current["label"] = label
    if note is not None:
        note = str(note).strip()
        if len(note) > MAX_NOTE:
            raise DataError(f"note has {len(note)} characters, at most {MAX_NOTE} allowed")
        current["note"] = note
    atomic_write_text(path / LABEL, dumps_json({**current, "updated": now_iso()}))
    return current


def delete_run(run_dir: str | os.PathLike) -> Path:
    """Remove a run directory and everything in it; refuse while it is running.

    Examples
    --------
    >>> import tempfile; from core.runs import Run, new_run_dir
    >>> run = Run.create(new_run_dir(tempfile.mkdtemp(), "knn"), {"method": "knn"})
    >>> run.interrupt(); delete_run(run.path).exists()
    False
    """
    from core.runs.run import Run

    path = _run_path(run_dir)
    run = Run.open(path)
    if run.state == "running":
        raise DataError(f"{path.name}: run is running; cancel it before deleting it")
    if any(_scoring_running(d) for d in (path / "scored").glob("*")):
        raise DataError(f"{path.name}: a split is being scored with this run; wait for it to finish")
    shutil.rmtree(path)
    return path


def _scoring_running(split_dir: Path) -> bool:
    from core.runs.split_score import scoring_status

    return scoring_status(split_dir.parent.parent, split_dir.name).get("state") == "running"


def _run_path(run_dir: str | os.PathLike) -> Path:
    path = Path(run_dir)
    if not (path / CONFIG).is_file():
        raise DataError(f"{path}: not a run directory (no {CONFIG})")
    return path


__all__ = ["LABEL", "delete_run", "read_label", "set_label"]
