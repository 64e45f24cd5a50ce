"""SIGKILL a training process at seeded random points: the run store is never corrupt,
the run reads interrupted, and ``vidid train --resume`` finishes it with exactly the
result of an uninterrupted run with the same seed (continuing a fold cut short from its
mid-fold state)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from core.runs import Run

ROOT = Path(__file__).resolve().parent.parent
FOLDS, EPOCHS = 3, 4
# The same thread count for every process: float reductions then agree bit for bit.
ENV = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1")


def _cmd(tiny: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "core.cli", "train",
            "--data", str(tiny / "face_train.pickle"), str(tiny / "train_gt.txt"),
            "--data", str(tiny / "face_val.pickle"), str(tiny / "val_gt.txt"),
            "--method", "nn", "--folds", str(FOLDS), "--epochs", str(EPOCHS), "--seed", "3",
            "--batch-size", "64", "--device", "cpu", "--out", str(out), "--quiet"]


def _resume_cmd(out: Path) -> list[str]:
    return [sys.executable, "-m", "core.cli", "train", "--resume", str(out), "--quiet"]


def _metric_rows(out: Path) -> int:
    try:
        return len(json.loads((out / "metrics.json").read_text()))
    except (FileNotFoundError, json.JSONDecodeError):  # atomic writes: never partial, but be safe
        return 0


def _kill_when(cmd: list[str], out: Path, rows: int, delay: float) -> str:
    """Start ``cmd``; SIGKILL it ``delay`` s after the run exists and metrics.json holds ``rows`` rows."""
    proc = subprocess.Popen(cmd, cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while (_metric_rows(out) < rows or not (out / "status.json").exists()) and proc.poll() is None:
        assert time.monotonic() < deadline, "training made no progress"
        time.sleep(0.005)
    time.sleep(delay)
    finished = proc.poll() is not None
    proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate(timeout=30)
    assert not finished or proc.returncode == 0, err.decode()
    return "finished" if finished else "killed"


def _check_store(out: Path) -> Run:
    """Nothing in the run directory is corrupt or claims more than it has."""
    run = Run.open(out)
    for p in out.glob("*.json"):
        json.loads(p.read_text())  # every JSON parses
    for k in run.completed_folds():
        payload = run.load_fold(k)  # verified against its marker
        assert payload["fold"] == k and payload["state_dict"]
    for p in out.glob("*.npz"):
        run.load_array(p.stem)
    for p in out.glob("fold_*.partial.pt"):  # a mid-fold state is whole (atomic) or absent
        k = int(p.name.split("_")[1].split(".")[0])
        assert run.load_partial(k)["epochs_done"] >= 1 and k not in run.completed_folds()
    if run.state == "complete":
        refits = run.summary()["refit_models"]  # the refit checkpoints follow the folds
        assert (out / "summary.json").exists() and run.completed_folds() == list(range(FOLDS + refits))
    return run


def _result(out: Path) -> dict:
    run = Run.open(out)
    assert run.state == "complete"
    return {"summary": run.summary(), "oof": run.load_array("oof"),
            "ap": run.load_json("per_identity_ap"),
            "folds": [run.load_fold(k) for k in run.completed_folds()],  # folds and refits
            "metrics": run.metrics()[["fold", "epoch", "loss", "val_map"]]}


def _in_process(argv: list[str]) -> None:
    """Run ``vidid`` here, with one thread like the subprocesses (saves a torch import)."""
    from threadpoolctl import threadpool_limits

    from core.cli import main

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(1):
            assert main(argv[3:]) == 0  # drop "python -m core.cli"
    finally:
        torch.set_num_threads(threads)


@pytest.mark.slow
def test_sigkill_at_random_points_then_resume(tiny_demo: Path, tmp_path: Path):
    reference = tmp_path / "reference"
    _in_process(_cmd(tiny_demo, reference))
    want = _result(reference)

    out = tmp_path / "killed"
    rng = np.random.default_rng(2026)
    n_rows = FOLDS * EPOCHS
    # Kill points: while loading (0 rows), then at growing numbers of epoch rows, each
    # followed by a random delay so the kill lands anywhere (mid-epoch, mid-save, ...).
    points = [0] + sorted(rng.choice(np.arange(1, n_rows), size=2, replace=False).tolist())
    outcomes = []
    for i, rows in enumerate(points):
        cmd = _cmd(tiny_demo, out) if i == 0 else _resume_cmd(out)
        outcomes.append(_kill_when(cmd, out, rows, float(rng.uniform(0.0, 0.15))))
        run = _check_store(out)
        print(f"kill {i}: after {rows} epoch rows -> {outcomes[-1]}, state {run.state}, "
              f"complete folds {run.completed_folds()}, files {sorted(p.name for p in out.iterdir())}")
        if outcomes[-1] == "killed" and run.state != "complete":
            assert run.state == "interrupted"
            assert not (out / "summary.json").exists()
            assert Run.open(out).status["state"] == "running"  # it had no chance to say so
    assert outcomes.count("killed") >= 2, outcomes

    if Run.open(out).state != "complete":
        _in_process(_resume_cmd(out))
    _check_store(out)
    got = _result(out)
    assert got["summary"]["mAP"] == want["summary"]["mAP"]
    assert got["summary"]["fold_val_map"] == want["summary"]["fold_val_map"]
    assert got["summary"]["best_epochs"] == want["summary"]["best_epochs"]
    assert got["ap"] == want["ap"]
    for key in ("top_class", "top_score", "fold", "names"):
        np.testing.assert_array_equal(got["oof"][key], want["oof"][key])
    for a, b in zip(got["folds"], want["folds"]):
        assert a.keys() == b.keys()
        for name, tensor in b["state_dict"].items():
            assert torch.equal(a["state_dict"][name], tensor), name
    # Metric rows of folds cut short were dropped: the history equals the reference.
    g, w = got["metrics"], want["metrics"]
    refit_rows = want["summary"]["refit_models"] * want["summary"]["refit_epochs"]
    assert len(g) == len(w) == n_rows + refit_rows
    assert len(got["folds"]) == len(want["folds"]) == FOLDS + want["summary"]["refit_models"]
    np.testing.assert_array_equal(g.sort_values(["fold", "epoch"]).to_numpy(),
                                  w.sort_values(["fold", "epoch"]).to_numpy())
