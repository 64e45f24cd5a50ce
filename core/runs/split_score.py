"""Score one split (e.g. test) with a complete run: the submission, and its official mAP.

The results live inside the run directory, one folder per split::

    RUN_DIR/scored/<split>/submission.txt       official format (ID VIDEO.mp4 ...)
    RUN_DIR/scored/<split>/per_identity_ap.json {identity: AP}  (when the split has ground truth)
    RUN_DIR/scored/<split>/status.json          state, progress, mAP, files scored

:func:`score_split` does the work in this process (the CLI, tests);
:func:`launch_scoring` runs it in a detached ``python -m core.runs.split_score`` process
(the dashboard: a large split takes minutes and must survive a page reload), as
:mod:`core.runs.launch` does for training. :func:`scoring_status` reads where it stands.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Callable

from core.atomic import atomic_write_text
from core.errors import DataError
from core.runs.files import dumps_json, now_iso, read_json_dict

SCORED = "scored"
SUBMISSION = "submission.txt"
PER_IDENTITY = "per_identity_ap.json"
STATUS = "status.json"
LOG = "score.log"
_START_TIMEOUT_S = 120.0  # a launched process that never wrote its pid by then is gone

ProgressFn = Callable[[float, str], None]


def scored_dir(run_dir: str | os.PathLike, split: str) -> Path:
    """``RUN_DIR/scored/<split>`` (not created).

    >>> scored_dir("/runs/r1", "test").as_posix()
    '/runs/r1/scored/test'
    """
    split = str(split)
    if not split or "/" in split or split.startswith("."):
        raise DataError(f"bad split name {split!r}")
    return Path(run_dir) / SCORED / split


def score_split(run_dir: str | os.PathLike, split: str, feats: str | os.PathLike,
                gt: str | os.PathLike | None = None, *,
                progress: ProgressFn | None = None) -> dict:
    """Rank the videos of ``feats`` with the run's models; score them when ``gt`` is given.

    Parameters
    ----------
    run_dir : a complete run
    split : name of the split (the folder under ``RUN_DIR/scored``)
    feats : the split's features pickle
    gt : the split's ground truth, optional (without it: the submission only)
    progress : callable(fraction, message), optional

    Returns
    -------
    dict: ``split``, ``state`` ("complete"), ``mAP`` (None without ground truth),
    ``n_identities``, ``submission`` (path), ``feats``, ``gt``, ``finished``.

    Examples
    --------
    >>> score_split(run_dir, "test", "face_test.pickle", "test_gt.txt")["mAP"]  # doctest: +SKIP
    0.91
    """
    from core.learn.metrics import per_identity_ap
    from core.runs.predict import predict_submission

    out = scored_dir(run_dir, split)
    out.mkdir(parents=True, exist_ok=True)
    base = {"split": str(split), "feats": os.fspath(feats), "gt": os.fspath(gt) if gt else None}
    _write_status(out, {**base, "state": "running", "progress": 0.0, "message": "starting",
                        "pid": os.getpid(), "started": now_iso()})
    report = progress or (lambda f, m="": None)

    def step(fraction: float, message: str = "") -> None:
        _write_status(out, {**base, "state": "running", "progress": 0.9 * fraction,
                            "message": message, "pid": os.getpid()})
        report(0.9 * fraction, message)

    try:
        ranking = predict_submission(run_dir, feats, out / SUBMISSION, progress=step)
        result = {**base, "state": "complete", "progress": 1.0, "message": "",
                  "mAP": None, "n_identities": None, "submission": str(out / SUBMISSION)}
        if gt:
            from core.io.formats import read_ground_truth

            truth = read_ground_truth(gt)
            aps = per_identity_ap(truth, ranking)
            if not aps:
                raise DataError(f"{gt}: ground truth holds no identities")
            atomic_write_text(out / PER_IDENTITY, dumps_json({str(k): v for k, v in aps.items()}))
            result.update(mAP=float(sum(aps.values()) / len(aps)), n_identities=len(aps))
        else:
            (out / PER_IDENTITY).unlink(missing_ok=True)
    except BaseException as exc:
        _write_status(out, {**base, "state": "failed", "progress": 0.0,
                            "message": " ".join(f"{type(exc).__name__}: {exc}".split())})
        raise
    result["finished"] = now_iso()
    _write_status(out, result)
    report(1.0, "done")
    return result


def launch_scoring(run_dir: str | os.PathLike, split: str, feats: str | os.PathLike,
                   gt: str | os.PathLike | None = None, *, python: str | None = None) -> Path:
    """Start :func:`score_split` in a detached process; return the split's result folder.

    Refuses a run that is not complete, and a split already being scored.

    Examples
    --------
    >>> launch_scoring(run_dir, "test", "face_test.pickle", "test_gt.txt")  # doctest: +SKIP
    """
    import subprocess

    from core.runs.launch import reap_children, register_child
    from core.runs.run import Run

    run = Run.open(run_dir)
    if run.state != "complete":
        raise DataError(f"{run.path}: run is {run.state}, not complete; cannot score with it")
    if not os.path.isfile(feats):
        raise FileNotFoundError(2, "No such file or directory", os.fspath(feats))
    if scoring_status(run.path, split).get("state") == "running":
        raise DataError(f"{run.path.name}: split {split!r} is already being scored")
    out = scored_dir(run.path, split)
    out.mkdir(parents=True, exist_ok=True)
    reap_children()
    cmd = [python or sys.executable, "-m", "core.runs.split_score", str(run.path), str(split),
           os.path.abspath(feats)] + (["--gt", os.path.abspath(gt)] if gt else [])
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    _write_status(out, {"split": str(split), "feats": os.fspath(feats), "gt": os.fspath(gt) if gt else None,
                        "state": "running", "progress": 0.0, "message": "starting process",
                        "started": now_iso()})
    with open(out / LOG, "ab") as log:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                cwd=root, env=env, start_new_session=True, close_fds=True)
    register_child(proc)  # the child writes its own pid into status.json as it starts
    return out


def scoring_status(run_dir: str | os.PathLike, split: str) -> dict:
    """Where the scoring of ``split`` stands: ``{}`` if never scored, else its status.

    A ``running`` status whose process is gone reads ``failed`` (the process died).

    >>> scoring_status("/nonexistent", "test")
    {}
    """
    from core.runs.files import age_seconds
    from core.runs.liveness import pid_alive

    p = scored_dir(run_dir, split) / STATUS
    if not p.exists():
        return {}
    try:
        status = read_json_dict(p)
    except (DataError, OSError) as exc:
        return {"state": "failed", "message": str(exc)}
    if status.get("state") == "running":
        pid = status.get("pid")
        dead = (not pid_alive(pid)) if pid else (age_seconds(status.get("updated")) or 0) > _START_TIMEOUT_S
        if dead:
            status = {**status, "state": "failed", "message": "the scoring process ended unexpectedly"}
    return status


def scored_splits(run_dir: str | os.PathLike) -> list[str]:
    """Splits with a scoring status under ``RUN_DIR/scored`` (sorted).

    >>> scored_splits("/nonexistent")
    []
    """
    root = Path(run_dir) / SCORED
    if not root.is_dir():
        return []
    return sorted(d.name for d in root.iterdir() if (d / STATUS).exists())


def split_identity_ap(run_dir: str | os.PathLike, split: str) -> dict[int, float] | None:
    """``{identity: AP}`` of a scored split with ground truth, else None."""
    p = scored_dir(run_dir, split) / PER_IDENTITY
    if not p.exists():
        return None
    return {int(k): float(v) for k, v in read_json_dict(p).items()}


def _write_status(out: Path, status: dict) -> None:
    atomic_write_text(out / STATUS, dumps_json({**status, "updated": now_iso()}))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core.runs.split_score",
                                     description="Score one split with a complete run.")
    parser.add_argument("run_dir")
    parser.add_argument("split")
    parser.add_argument("feats")
    parser.add_argument("--gt", default=None)
    args = parser.parse_args(argv)
    try:
        result = score_split(args.run_dir, args.split, args.feats, args.gt)
    except (DataError, OSError, ValueError) as exc:
        print(f"scoring {args.split}: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result, default=str))
    return 0


__all__ = ["launch_scoring", "score_split", "scored_dir", "scored_splits", "scoring_status",
           "split_identity_ap"]

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
