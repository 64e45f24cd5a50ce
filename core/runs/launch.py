"""Start training as a separate process that writes to the run store.

The dashboard never trains inside its own process: :func:`launch_training` creates
the run directory (so the run shows in every session's runs table at once), writes
what the child needs to ``launch.json`` and starts ``python -m core.runs.launch RUN_DIR``
in a new session (``start_new_session=True``) with its output in ``RUN_DIR/train.log``.
The child outlives page reloads, closed tabs and even a restarted Streamlit server;
any browser tab follows it by reading ``status.json`` / ``metrics.json``.
:func:`resume_training` starts the same child on an interrupted run.

Run as a module, this file is the child's entry point::

    python -m core.runs.launch RUN_DIR [--resume]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from core import runs
from core.errors import DataError

LAUNCH_FILE = "launch.json"
LOG_FILE = "train.log"
NOISE_LABELS = "noise_labels"  # run array NAME.npz: names, labels (the chosen clustering)

# Children started by this process, reaped on later calls so none stays a zombie.
_CHILDREN: list[subprocess.Popen] = []
_CHILDREN_LOCK = threading.Lock()


def launch_training(spec_pairs: Sequence[Sequence[str | None]], config: Any,
                    runs_root: str | os.PathLike | None = None, *,
                    noise_labels: dict | None = None,
                    backend: str = "local", ray_address: str | None = None,
                    python: str | None = None) -> Path:
    """Create a run and start training it in a separate, detached process.

    Parameters
    ----------
    spec_pairs : sequence of ``(feats, gt)`` or ``(split, feats, gt)``
        Feature pickles and their ground-truth files (``gt`` may be None: all
        distractors); all of them are concatenated into the training data.
    config : dict or ``core.learn.TrainConfig``
        Training options; ``config["method"]`` (``knn``, ``nn``, ``noise``) is required.
    runs_root : path, optional
        Where runs live (default :func:`core.runs.default_runs_root`).
    noise_labels : dict, optional
        A clustering of the distractors chosen by the user, ``{"names", "labels",
        "eps", "min_samples"}``; it replaces the clustering ``fit`` would compute.
    backend, ray_address : where the child trains the networks
        (:mod:`core.learn.backends`: ``"local"`` or ``"ray"``, on the cluster at
        ``ray_address`` or a local Ray instance); the child writes the run either way
    python : str, optional
        Interpreter for the child (default ``sys.executable``).

    Returns
    -------
    Path
        The new run directory; its ``status.json`` names the child's pid.

    Examples
    --------
    >>> run_dir = launch_training([("face_train.pickle", "train_gt.txt")],  # doctest: +SKIP
    ...                           {"method": "knn", "folds": 3}, "/tmp/runs")
    """
    from core.learn.backends import check_backend
    from core.learn.config import TrainConfig  # no torch: cheap to import here
    from core.learn.methods import get_method

    ray_address = ray_address or None
    check_backend(backend, ray_address)  # before a run directory exists
    cfg = _config_dict(config)
    pairs = _check_pairs(spec_pairs)
    method = get_method(cfg.get("method")).name
    cfg = {**cfg, **TrainConfig.from_dict(cfg).to_dict()}  # every option checked (and filled) now
    if noise_labels is not None:
        names, labels = _check_noise_labels(noise_labels)
        for key in ("eps", "min_samples"):
            if noise_labels.get(key) is not None:
                cfg[key] = noise_labels[key]
        cfg["noise_labels"] = "given"
    cfg["data"] = [{"split": s, "feats": f, "gt": g} for s, f, g in pairs]
    cfg["backend"] = backend
    if ray_address:
        cfg["ray_address"] = ray_address

    path = runs.new_run_dir(runs_root, method)
    run = runs.Run.create(path, cfg)
    if noise_labels is not None:
        run.save_array(NOISE_LABELS, names=names, labels=labels)
    run.save_json("launch", {"pairs": [list(p) for p in pairs], "config": cfg})
    run.set_status(phase="starting process", message="")
    try:
        proc = _spawn(path, resume=False, python=python)
    except OSError as exc:
        run.fail(f"could not start the training process: {exc}")
        raise
    run.set_status(pid=proc.pid, pid_start=None)
    return path


def resume_training(run_dir: str | os.PathLike, *, python: str | None = None) -> Path:
    """Start a process that finishes an interrupted (or failed / cancelled) run.

    The child claims the run with :meth:`core.runs.Run.resume` (which refuses a
    complete or live run and cleans partial files) and continues from its
    completed folds. A run started by ``vidid train`` (no ``launch.json``) is
    finished by ``vidid train --resume RUN_DIR`` in the same detached way.

    Examples
    --------
    >>> resume_training("/tmp/runs/20261124-221501-noise-ab12")  # doctest: +SKIP
    """
    run = runs.Run.open(run_dir)
    state = run.state
    if state in ("complete", "running"):
        raise DataError(f"{run.path}: run is {state}; nothing to resume")
    run.path.joinpath(runs.CANCEL).unlink(missing_ok=True)
    if (run.path / LAUNCH_FILE).exists():
        _spawn(run.path, resume=True, python=python)
    else:  # started by 'vidid train': its own command knows how to finish it
        _spawn(run.path, resume=True, python=python,
               module_args=["core.cli", "train", "--resume", str(run.path), "--quiet"])
    return run.path


def reap_children() -> int:
    """Collect exited children of this process; return how many still run."""
    with _CHILDREN_LOCK:
        _CHILDREN[:] = [p for p in _CHILDREN if p.poll() is None]
        return len(_CHILDREN)


def register_child(proc: subprocess.Popen) -> None:
    """Keep ``proc`` (a detached child of this process) to reap it once it exits."""
    with _CHILDREN_LOCK:
        _CHILDREN.append(proc)


def _spawn(path: Path, *, resume: bool, python: str | None,
           module_args: list[str] | None = None) -> subprocess.Popen:
    reap_children()
    args = module_args or ["core.runs.launch", str(path)] + (["--resume"] if resume else [])
    cmd = [python or sys.executable, "-m", *args]
    env = dict(os.environ)
    # The child must import this checkout's core even when started from elsewhere.
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.setdefault("PYTHONUNBUFFERED", "1")
    with open(path / LOG_FILE, "ab") as log:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                cwd=root, env=env, start_new_session=True, close_fds=True)
    register_child(proc)
    return proc


def _config_dict(config: Any) -> dict:
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        return dataclasses.asdict(config)
    if isinstance(config, dict):
        return json.loads(json.dumps(config, default=_plain))
    raise TypeError(f"config must be a dict or a TrainConfig, got {type(config).__name__}")


def _plain(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"config value {obj!r:.60} ({type(obj).__name__}) is not JSON-able")


def _check_pairs(spec_pairs: Sequence[Sequence[str | None]]) -> list[tuple[str, str, str | None]]:
    out: list[tuple[str, str, str | None]] = []
    for i, pair in enumerate(spec_pairs):
        pair = tuple(pair)
        if len(pair) == 2:
            split, (feats, gt) = f"part{i}", pair
        elif len(pair) == 3:
            split, feats, gt = pair
        else:
            raise ValueError(f"training data item {i}: expected (feats, gt) or (split, feats, gt), "
                             f"got {pair!r}")
        if not feats:
            raise ValueError(f"training data item {i}: no features file")
        feats = os.path.abspath(os.fspath(feats))
        gt = os.path.abspath(os.fspath(gt)) if gt else None
        for p in (feats, gt):
            if p is not None and not os.path.isfile(p):
                raise FileNotFoundError(2, "No such file or directory", p)
        out.append((str(split), feats, gt))
    if not out:
        raise ValueError("no training data: give at least one (features, ground truth) pair")
    return out


def _check_noise_labels(noise_labels: dict) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(noise_labels, dict) or "names" not in noise_labels or "labels" not in noise_labels:
        raise TypeError("noise_labels must be a dict with 'names' and 'labels'")
    names = np.asarray([str(n) for n in noise_labels["names"]])
    labels = np.asarray(noise_labels["labels"])
    if labels.dtype.kind not in "iu" or labels.shape != names.shape:
        raise ValueError(f"noise_labels: expected {len(names)} integer labels (one per name), "
                         f"got dtype {labels.dtype} shape {labels.shape}")
    if labels.size and labels.min() < -1:
        raise ValueError(f"noise_labels: cluster labels must be -1 or >= 0, got {int(labels.min())}")
    return names, labels.astype(np.int64)


# ----------------------------------------------------------------------------- child side

def _load_data(pairs: list, cfg: dict):
    from core.features import dataset

    pool_opts = {k: cfg[k] for k in ("weighting", "min_quality", "min_det") if k in cfg}
    mods = tuple(cfg.get("modalities") or ("face",))
    if mods != ("face",):  # the face files' siblings (core.features.modalities)
        from core.features.modalities import open_multimodal

        parts = [open_multimodal(feats, gt, modalities=mods, split=split, **pool_opts)
                 for split, feats, gt in pairs]
        return parts[0] if len(parts) == 1 else dataset.concat(parts)
    parts = [dataset.open_split(feats, gt, split=split, **pool_opts) for split, feats, gt in pairs]
    return parts[0] if len(parts) == 1 else dataset.concat(parts)


def _aligned_noise_labels(run: runs.Run, data) -> np.ndarray | None:
    """The user's clustering, aligned to the distractor rows of ``data`` (-1 if unknown)."""
    if not run.has(NOISE_LABELS + ".npz"):
        return None
    stored = run.load_array(NOISE_LABELS)
    lookup = dict(zip(stored["names"].tolist(), stored["labels"].tolist()))
    noise_names = np.asarray(data.names)[np.asarray(data.ids) == 0]
    return np.fromiter((lookup.get(str(n), -1) for n in noise_names), dtype=np.int64,
                       count=len(noise_names))


def _train_config(cfg: dict):
    from core.learn import TrainConfig

    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    return TrainConfig(**{k: v for k, v in cfg.items() if k in fields})


def child_main(run_dir: str, *, resume: bool = False) -> int:
    """Entry point of the training process (``python -m core.runs.launch RUN_DIR``)."""
    path = Path(run_dir)
    if resume:
        run = runs.Run.resume(path)
    else:
        run = runs.Run.open(path)
        run.set_status(state="running", pid=os.getpid(), pid_start=None)
    try:
        launch = run.load_json("launch")
        cfg = launch["config"]
        run.set_status(phase="loading data")
        from core import learn as train

        from core.learn.backends import open_backend

        data = _load_data([tuple(p) for p in launch["pairs"]], cfg)
        with open_backend(cfg.get("backend", "local"), cfg.get("ray_address")) as backend:
            summary = train.fit(_train_config(cfg), data, run, progress=_status_progress(run),
                                resume=resume, backend=backend,
                                noise_labels=_aligned_noise_labels(run, data))
    except KeyboardInterrupt:
        run.interrupt("interrupted")
        return 130
    except Exception as exc:  # the run records why it failed; the log keeps the traceback
        import traceback

        traceback.print_exc()
        if run.state == "running":
            run.fail(f"{type(exc).__name__}: {exc}")
        return 1
    print(json.dumps(summary, default=str))
    return 0


def _status_progress(run: runs.Run):
    def progress(fraction: float, message: str = "") -> None:
        run.heartbeat(fraction, message or None)

    return progress


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core.runs.launch",
                                     description="Train one run directory prepared by launch_training.")
    parser.add_argument("run_dir")
    parser.add_argument("--resume", action="store_true", help="finish an interrupted run")
    args = parser.parse_args(argv)
    try:
        return child_main(args.run_dir, resume=args.resume)
    except (DataError, OSError) as exc:
        print(f"vidid train: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
