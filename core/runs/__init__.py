"""The run store: one directory per training run, written atomically, read by the dashboard.

:mod:`core.runs.run` is one run (:class:`Run`, :func:`clean_run`), the face of
:mod:`core.runs.checkpoint` (fold checkpoints, their ``.done`` markers, safe loading) and
:mod:`core.runs.partial` (a fold's mid-fold state, what lets it resume);
:mod:`core.runs.store` all runs under a root; :mod:`core.runs.files` the file names,
JSON helpers and the state rule; :mod:`core.runs.liveness` whether a writer's
process still lives; :mod:`core.runs.launch` starts training in a detached process; :mod:`core.runs.predict`
scores new videos with the fold models of a complete run; :mod:`core.runs.oof` reads
its out-of-fold predictions (the one "wrong" rule) and analyses the errors.
"""

from core.runs.files import CANCEL, CONFIG, FOLD_RE, METRICS, STALE_AFTER_S, STATES, STATUS, SUMMARY
from core.runs.liveness import pid_alive, process_start_ticks
from core.runs.predict import predict_scores, predict_submission
from core.runs.run import HEARTBEAT_MIN_INTERVAL_S, Run, clean_run
from core.runs.store import LIST_COLUMNS, default_runs_root, list_runs, new_run_dir

__all__ = ["CANCEL", "CONFIG", "FOLD_RE", "HEARTBEAT_MIN_INTERVAL_S", "LIST_COLUMNS", "METRICS",
           "STALE_AFTER_S", "STATES", "STATUS", "SUMMARY", "Run", "clean_run", "default_runs_root",
           "list_runs", "new_run_dir", "pid_alive", "predict_scores", "predict_submission",
           "process_start_ticks"]
