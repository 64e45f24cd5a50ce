"""The run store: one directory per training run, written so a crash never lies.

A run directory holds (every file written atomically through :mod:`core.atomic`)::

    config.json          the TrainConfig as a flat dict + "data" paths + "vidid_version"
    status.json          {"state", "pid", "host", "started", "updated", "finished",
                          "message", "progress", "phase", ...}
    metrics.json         list of per-epoch rows {"fold", "epoch", "loss", "val_map", "time"}
    fold_K.pt            a fold checkpoint (torch.save of a dict)
    fold_K.done.json     written after fold_K.pt; a fold is complete only if both exist
    fold_K.partial.pt    the state of fold K after its last finished epoch (model, optimiser,
                         best so far, labels, RNGs); resume continues the fold from it;
                         removed once fold_K.pt is complete
    NAME.npz             arrays (out-of-fold scores, ...), ``save_array``
    NAME.json            other JSON documents (per-identity AP, ...), ``save_json``
    summary.json         written LAST by ``finish``
    cancel               a flag file: somebody asked the run to stop

A run reads ``"complete"`` only when ``summary.json`` exists **and** the status says
complete. A run whose status says ``"running"`` but whose process is gone (dead pid on
this host) or whose heartbeat is older than ``STALE_AFTER_S`` reads ``"interrupted"``;
:func:`clean_run` removes its partial files so that training can resume (a readable
mid-fold state is kept: it is what lets a fold resume from its next epoch).

This module is one run (:class:`Run`, :func:`clean_run`). The file names, JSON
encoding and state rule are :mod:`core.runs.files`; the fold checkpoints and their
markers :mod:`core.runs.checkpoint`; the mid-fold states :mod:`core.runs.partial`; the
store-wide functions
(``default_runs_root``, ``new_run_dir``, ``list_runs``) are :mod:`core.runs.store` and
``pid_alive`` is :mod:`core.runs.liveness`; the package :mod:`core.runs` exports them all.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import time
from pathlib import Path
from typing import Any

import numpy as np

from core.atomic import atomic_open, atomic_write_text, create_exclusive
from core.errors import DataError
from core.io.safe_pickle import require_file
from core.runs.checkpoint import (check_fold, completed_folds, load_fold_checkpoint, read_fold_marker,
                                  save_fold_checkpoint)
from core.learn.methods import fold_progress
from core.runs.files import (CANCEL, CONFIG, FOLD_RE, METRICS, PARTIAL_RE, STALE_AFTER_S, STATES, STATUS,
                            SUMMARY, age_seconds, dumps_json, effective_state, json_default,
                            now_iso, partial_fold_info, read_json, read_json_dict)
from core.runs.liveness import pid_alive, process_start_ticks
from core.runs.partial import last_partial, read_partial, remove_partial, sort_partials, write_partial

#: ``heartbeat`` writes status.json at most this often (seconds), unless the phase changes.
HEARTBEAT_MIN_INTERVAL_S = 1.0

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_METRIC_COLUMNS = ("fold", "epoch", "loss", "val_map", "time")


# ----------------------------------------------------------------------------- helpers

def _safe_name(name: str, suffix: str) -> str:
    base = name[: -len(suffix)] if name.endswith(suffix) else name
    if not _NAME_RE.match(base) or base in ("config", "status", "metrics", "summary"):
        raise ValueError(f"bad run file name {name!r}: use letters, digits, '_', '-', '.' "
                         "(and not config/status/metrics/summary)")
    return base + suffix


class Run:
    """One run directory. Create with :meth:`create` (writer) or :meth:`open` (reader).

    Examples
    --------
    >>> import tempfile; from core.runs.store import new_run_dir
    >>> run = Run.create(new_run_dir(tempfile.mkdtemp(), "knn"), {"method": "knn"})
    >>> run.state
    'running'
    >>> run.finish({"mAP": 0.9}); run.state
    'complete'
    """

    def __init__(self, path: str | os.PathLike, *, stale_after: float = STALE_AFTER_S) -> None:
        self.path = Path(path)
        self.stale_after = float(stale_after)
        self._status: dict | None = None  # the writer's own copy
        self._metrics: list[dict] | None = None
        self._last_beat = 0.0

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r})"

    @property
    def name(self) -> str:
        return self.path.name

    # -- creation / opening ------------------------------------------------------------
    @classmethod
    def create(cls, path: str | os.PathLike, config: dict, *, stale_after: float = STALE_AFTER_S) -> "Run":
        """Start a new run in ``path`` (made if missing; must not already hold a run).

        ``config`` is a flat JSON-able dict (the TrainConfig fields such as ``method``,
        ``folds``, ``epochs``, ``eps``, ``min_samples``, plus ``data``); the vidid
        version and creation time are added. Raises ``DataError`` if ``path`` already
        holds a run (two writers can never share a run directory).
        """
        from core import __version__

        if not isinstance(config, dict):
            raise TypeError(f"config must be a dict, got {type(config).__name__}")
        path = Path(path)
        if path.exists() and not path.is_dir():
            raise DataError(f"{path}: exists and is not a directory")
        path.mkdir(parents=True, exist_ok=True)
        doc = dict(config)
        doc.setdefault("vidid_version", __version__)
        doc.setdefault("created", now_iso())
        try:
            create_exclusive(path / CONFIG, dumps_json(doc))
        except FileExistsError:
            state = Run(path).state if (path / STATUS).exists() else "unknown"
            raise DataError(f"{path}: already holds a run (state {state}); "
                            "choose another directory or resume it") from None
        run = cls(path, stale_after=stale_after)
        run._metrics = []
        run._status = {}
        run._claim(started=now_iso(), progress=0.0, phase="starting", message="", finished=None)
        return run

    @classmethod
    def open(cls, path: str | os.PathLike, *, stale_after: float = STALE_AFTER_S) -> "Run":
        """Open an existing run for reading (or resuming)."""
        path = Path(path)
        if not path.is_dir():
            raise DataError(f"{path}: no such run directory")
        if not (path / CONFIG).exists():
            raise DataError(f"{path}: not a vidid run (no {CONFIG})")
        return cls(path, stale_after=stale_after)

    @classmethod
    def resume(cls, path: str | os.PathLike, *, stale_after: float = STALE_AFTER_S) -> "Run":
        """Take over an interrupted / failed / cancelled run to finish it.

        Cleans its partial files (:func:`clean_run`), keeps its completed folds and a
        readable mid-fold state (its status ``message`` names one that was not, whose fold
        restarts), and marks it running under this process. Refuses a complete or live run.
        """
        run = cls.open(path, stale_after=stale_after)
        state = run.state
        if state == "complete":
            raise DataError(f"{run.path}: run is already complete; nothing to resume")
        if state == "running":
            pid = run.status.get("pid")
            raise DataError(f"{run.path}: run is still running (pid {pid} on "
                            f"{run.status.get('host')}); cannot resume it")
        _refuse_live_writer(run, "resume")
        removed = clean_run(run.path, stale_after=stale_after)
        run._status = run.status
        run._metrics = None
        # a mid-fold state that could not be read was removed: say so, the fold restarts
        complete = set(run.completed_folds())  # (one of a complete fold was merely stale)
        lost = [m.string for m in map(PARTIAL_RE.match, removed) if m and int(m.group(1)) not in complete]
        message = f"{', '.join(lost)} unreadable: that fold restarts from epoch 1" if lost else ""
        kept = last_partial(run.path)  # from the file itself: the status may be behind
        run._claim(resumed=now_iso(), message=message, finished=None, phase="resuming", partial=kept,
                   progress=fold_progress(run.config(), run.completed_folds(), kept))
        return run

    def _claim(self, **fields: Any) -> None:
        pid = os.getpid()
        self.set_status(state="running", pid=pid, pid_start=process_start_ticks(pid),
                        host=socket.gethostname(), **fields)

    # -- configuration -----------------------------------------------------------------
    def config(self) -> dict:
        """The run's ``config.json``."""
        return read_json_dict(self.path / CONFIG)

    # -- status ------------------------------------------------------------------------
    @property
    def status(self) -> dict:
        """``status.json`` as stored (``{}`` if missing); see :attr:`state` for the truth."""
        p = self.path / STATUS
        return read_json_dict(p) if p.exists() else {}

    @property
    def state(self) -> str:
        """``running``, ``complete``, ``interrupted``, ``failed`` or ``cancelled``.

        ``complete`` needs both the status and ``summary.json``; a ``running`` status
        whose process is dead on this host, or whose heartbeat is stale, reads
        ``interrupted``.
        """
        return effective_state(self.path, self.status, self.stale_after)

    def set_status(self, **fields: Any) -> None:
        """Update fields of ``status.json`` (atomically) and stamp ``updated``."""
        if "state" in fields and fields["state"] not in STATES:
            raise ValueError(f"bad run state {fields['state']!r}; expected one of {STATES}")
        if self._status is None:
            self._status = self.status
        self._status.update(fields)
        self._status["updated"] = now_iso()
        atomic_write_text(self.path / STATUS, dumps_json(self._status))
        self._last_beat = time.monotonic()

    def heartbeat(self, progress: float | None = None, phase: str | None = None) -> None:
        """Record liveness (and progress 0..1 / phase); throttled to about once a second."""
        fields: dict[str, Any] = {}
        if progress is not None:
            fields["progress"] = float(min(max(progress, 0.0), 1.0))
        if phase is not None:
            fields["phase"] = str(phase)
        cur = self._status or {}
        phase_changed = phase is not None and cur.get("phase") != phase
        due = time.monotonic() - self._last_beat >= HEARTBEAT_MIN_INTERVAL_S
        if due or phase_changed or fields.get("progress") == 1.0:
            self.set_status(**fields)
        elif self._status is not None:
            self._status.update(fields)

    def finish(self, summary: dict) -> None:
        """Mark the run complete: status first, ``summary.json`` last."""
        if not isinstance(summary, dict):
            raise TypeError(f"summary must be a dict, got {type(summary).__name__}")
        self.set_status(state="complete", finished=now_iso(), progress=1.0, message="")
        atomic_write_text(self.path / SUMMARY, dumps_json(summary))

    def fail(self, message: str) -> None:
        """Mark the run failed with a one-line message."""
        self.set_status(state="failed", finished=now_iso(), message=" ".join(str(message).split()))

    def interrupt(self, message: str = "interrupted") -> None:
        """Mark the run interrupted (e.g. on Ctrl-C); it can be resumed."""
        self.set_status(state="interrupted", message=" ".join(str(message).split()))

    def mark_cancelled(self, message: str = "cancelled on request") -> None:
        """Mark the run cancelled (after :meth:`cancel_requested` said so)."""
        self.set_status(state="cancelled", finished=now_iso(), message=message)

    def cancel_requested(self) -> bool:
        """Whether somebody (the dashboard) asked this run to stop."""
        return (self.path / CANCEL).exists()

    def request_cancel(self) -> None:
        """Ask the training process of this run to stop (it checks between epochs)."""
        atomic_write_text(self.path / CANCEL, now_iso() + "\n")

    def summary(self) -> dict | None:
        """``summary.json``, or None if the run has not finished."""
        p = self.path / SUMMARY
        return read_json_dict(p) if p.exists() else None

    # -- metrics -----------------------------------------------------------------------
    def _load_metrics(self) -> list[dict]:
        p = self.path / METRICS
        if not p.exists():
            return []
        rows = read_json(p)
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise DataError(f"{p}: expected a JSON list of objects")
        return rows

    def append_metric(self, row: dict) -> None:
        """Add a per-epoch row (``fold``, ``epoch``, ``loss``, ``val_map``, ``time``, ...)."""
        if not isinstance(row, dict):
            raise TypeError(f"metric row must be a dict, got {type(row).__name__}")
        if self._metrics is None:
            self._metrics = self._load_metrics()
        self._metrics.append(json.loads(json.dumps(row, default=json_default)))
        atomic_write_text(self.path / METRICS, dumps_json(self._metrics))

    def metrics(self) -> "pandas.DataFrame":  # noqa: F821
        """Per-epoch rows as a DataFrame (columns at least fold, epoch, loss, val_map, time)."""
        import pandas as pd

        df = pd.DataFrame(self._load_metrics())
        for col in _METRIC_COLUMNS:
            if col not in df.columns:
                df[col] = pd.Series(dtype="float64")
        return df

    # -- folds -------------------------------------------------------------------------
    def save_fold(self, k: int, payload: dict, info: dict | None = None) -> None:
        """Save fold ``k``'s checkpoint, then its ``.done`` marker (with ``info``).

        ``payload`` is a dict (``config``, ``state_dict``, ``fold``, ``best_epoch``,
        ``val_map``, ``meta``) of tensors, numpy arrays and plain values. The fold is
        then complete: its mid-fold state is removed.
        """
        save_fold_checkpoint(self.path, k, payload, info)
        remove_partial(self.path, k)
        shown = (self._status or {}).get("partial")
        if isinstance(shown, dict) and shown.get("fold") == k:
            self.set_status(partial=None)

    def completed_folds(self) -> list[int]:
        """Folds whose checkpoint and ``.done`` marker both exist, sorted."""
        return completed_folds(self.path)

    def fold_info(self, k: int) -> dict:
        """The ``.done`` marker of fold ``k`` (the ``info`` given to :meth:`save_fold`)."""
        return read_fold_marker(self.path, k)

    def load_fold(self, k: int, *, map_location: Any = "cpu", verify: bool = True) -> dict:
        """Load fold ``k``'s checkpoint (safe: tensors, numpy arrays and plain values only).

        ``verify`` checks its size and SHA-256 against the ``.done`` marker first.
        """
        return load_fold_checkpoint(self.path, k, map_location=map_location, verify=verify)

    # -- mid-fold state ----------------------------------------------------------------
    def save_partial(self, k: int, state: dict) -> None:
        """Save fold ``k``'s state after a finished epoch to ``fold_K.partial.pt`` (atomically).

        ``state`` holds at least ``epochs_done`` and ``epochs`` (ints); see
        :func:`core.runs.partial.write_partial`. The status records ``partial`` =
        ``{"fold", "epochs_done", "epochs"}`` for the runs table with its next write (a
        heartbeat, cancel or end: at most a second behind). :meth:`save_fold` removes
        the file once the fold is complete.
        """
        info = write_partial(self.path, k, state)
        if self._status is None:
            self._status = self.status
        self._status["partial"] = info

    def load_partial(self, k: int, *, map_location: Any = "cpu") -> dict | None:
        """Fold ``k``'s mid-fold state, or None if it has none.

        Loaded safely (``weights_only``: tensors, numpy arrays and plain values only);
        a damaged file, or one that is not fold ``k``'s state, raises DataError naming it.
        """
        return read_partial(self.path, k, map_location=map_location)

    def discard_partial(self, k: int) -> None:
        """Drop fold ``k``'s mid-fold state and its metric rows: the fold restarts from epoch 1."""
        k = check_fold(k)
        remove_partial(self.path, k)
        if self._metrics is None:
            self._metrics = self._load_metrics()
        keep = [r for r in self._metrics if r.get("fold") != k]
        if len(keep) != len(self._metrics):
            self._metrics = keep
            atomic_write_text(self.path / METRICS, dumps_json(keep))
        if (self._status or {}).get("partial"):
            self.set_status(partial=None)

    def partial_info(self) -> dict | None:
        """``{"fold", "epochs_done", "epochs"}`` of the mid-fold state on disk, from the status.

        None when there is none (or the status names a fold without its file, or a
        fold already complete). For display; :meth:`load_partial` reads the state itself.
        """
        return partial_fold_info(self.path, self.status, set(self.completed_folds()))

    # -- arrays and JSON documents -----------------------------------------------------
    def save_array(self, name: str, **arrays: Any) -> None:
        """Save named arrays to ``NAME.npz`` atomically (string arrays stored as unicode)."""
        fname = _safe_name(name, ".npz")
        clean = {}
        for key, arr in arrays.items():
            a = np.asarray(arr)
            if a.dtype == object:
                try:
                    a = a.astype(str)
                except (TypeError, ValueError):
                    raise TypeError(f"array {key!r} of {fname}: object arrays must hold strings") from None
            clean[key] = a
        with atomic_open(self.path / fname, "wb") as fh:
            np.savez(fh, **clean)

    def load_array(self, name: str) -> dict[str, np.ndarray]:
        """Load ``NAME.npz`` as a dict of arrays; a corrupt file raises DataError."""
        p = self.path / _safe_name(name, ".npz")
        require_file(p, "array (.npz)")
        try:
            with np.load(p, allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        except FileNotFoundError:
            raise
        except Exception as exc:
            raise DataError(f"{p}: cannot load arrays: {' '.join(str(exc).split())[:200]}") from None

    def save_json(self, name: str, obj: Any) -> None:
        """Save a JSON document ``NAME.json`` atomically (numpy values converted)."""
        atomic_write_text(self.path / _safe_name(name, ".json"), dumps_json(obj))

    def load_json(self, name: str) -> Any:
        """Load ``NAME.json``; a corrupt file raises DataError naming it."""
        base = name[:-5] if name.endswith(".json") else name
        p = self.path / (base + ".json")
        if not p.exists():
            raise FileNotFoundError(2, "No such file or directory", str(p))
        return read_json(p)

    def has(self, name: str) -> bool:
        """Whether the run holds file ``name`` (e.g. ``"oof.npz"``)."""
        return (self.path / name).exists()


def _refuse_live_writer(run: "Run", what: str) -> None:
    """A stale heartbeat reads "interrupted", but a live process on this host must
    never get a second writer: refuse until it is gone."""
    status = run.status
    if (status.get("state") in ("running", "complete") and status.get("host") == socket.gethostname()
            and status.get("pid") != os.getpid() and pid_alive(status.get("pid"), status.get("pid_start"))):
        age = age_seconds(status.get("updated"))
        raise DataError(f"{run.path}: its process (pid {status.get('pid')}) is still alive on this "
                        f"host, silent for {age or 0:.0f} s; stop it before you {what} the run")


# ----------------------------------------------------------------------------- store-wide

def clean_run(path: str | os.PathLike, *, stale_after: float = STALE_AFTER_S) -> list[str]:
    """Remove the partial files of a run that is not running; return their names.

    Removes temporary files of interrupted atomic writes, fold checkpoints without
    their ``.done`` marker (and markers without a checkpoint), metric rows of those
    incomplete folds, and the ``cancel`` flag. Completed folds are kept, and so is a
    readable mid-fold state (``fold_K.partial.pt``) with the metric rows of its finished
    epochs; an unreadable one, or one of a fold already complete, is removed.

    Examples
    --------
    >>> import tempfile; from core.runs.store import new_run_dir
    >>> run = Run.create(new_run_dir(tempfile.mkdtemp(), "nn"), {"method": "nn"})
    >>> run.interrupt(); (run.path / "fold_1.pt").write_bytes(b"half")
    4
    >>> clean_run(run.path)
    ['fold_1.pt']
    """
    run = Run.open(path, stale_after=stale_after)
    if run.state == "running":
        raise DataError(f"{run.path}: run is still running (pid {run.status.get('pid')}); "
                        "refusing to clean it")
    _refuse_live_writer(run, "clean")
    removed: list[str] = []
    complete = set(run.completed_folds())
    # fold -> epochs its kept mid-fold state holds; unreadable or stale states dropped
    epochs_done, drop = sort_partials(run.path, complete)
    for n in sorted(p.name for p in run.path.iterdir()):
        m = FOLD_RE.match(n)
        if ((n.startswith(".") and n.endswith(".tmp")) or n == CANCEL or n in drop
                or (m and int(m.group(1)) not in complete)):
            with contextlib.suppress(FileNotFoundError):
                (run.path / n).unlink()
            removed.append(n)
    mp = run.path / METRICS
    if mp.exists():
        rows = run._load_metrics()
        # a kill between a row and its epoch's state leaves a row ahead: dropped, redone
        keep = [r for r in rows if not isinstance(r.get("fold"), int) or r["fold"] in complete
                or (r["fold"] in epochs_done and isinstance(r.get("epoch"), int)
                    and r["epoch"] < epochs_done[r["fold"]])]
        if len(keep) != len(rows):
            atomic_write_text(mp, dumps_json(keep))
    return removed


__all__ = ["CANCEL", "CONFIG", "HEARTBEAT_MIN_INTERVAL_S", "METRICS", "STALE_AFTER_S", "STATES",
           "STATUS", "SUMMARY", "Run", "clean_run"]
