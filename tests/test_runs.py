"""core.runs: a run never reads complete before finish(), dead runs read interrupted,
corrupt files raise DataError naming them, concurrent creation never collides."""

from __future__ import annotations

import json
import multiprocessing
import os
import pickle
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from core import runs
from core.runs import run as run_module
from core.runs import store as store_module
from core.errors import DataError
from core.runs.liveness import process_start_ticks
from core.runs.store import LIST_COLUMNS
from core.runs import Run, clean_run, list_runs, new_run_dir


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.fixture
def run(tmp_path: Path) -> Run:
    return Run.create(new_run_dir(tmp_path, "nn"), {"method": "nn", "folds": 3, "epochs": 4,
                                                    "eps": 1.2, "min_samples": 2})


def test_lifecycle_and_complete_only_after_finish(run: Run):
    assert run.state == "running"
    run.heartbeat(0.3, "fold 0")
    run.append_metric({"fold": 0, "epoch": 1, "loss": np.float32(2.5), "val_map": 0.4, "time": 1.0})
    run.save_fold(0, {"state_dict": {"w": torch.ones(3)}, "fold": 0, "meta": {"ids": np.arange(4)}},
                  {"val_map": 0.4, "best_epoch": 1})
    run.save_array("oof", names=np.array(["a", "b"], dtype=object), scores=np.eye(2, dtype=np.float32))
    run.save_json("per_identity_ap", {"1": 0.5})
    assert run.state == "running"
    # Status says complete but summary.json is missing (a crash inside finish()): not complete.
    run.set_status(state="complete")
    assert run.state == "running"  # our own pid is alive
    run.set_status(pid=_dead_pid(), pid_start=None)
    assert run.state == "interrupted"
    run.set_status(state="running", pid=os.getpid())
    # summary.json present but status running: not complete either.
    (run.path / "summary.json").write_text('{"mAP": 1}')
    assert Run.open(run.path).state == "running"
    (run.path / "summary.json").unlink()

    run.finish({"mAP": 0.75, "seconds": 12.5})
    again = Run.open(run.path)
    assert again.state == "complete"
    assert again.summary() == {"mAP": 0.75, "seconds": 12.5}
    assert again.completed_folds() == [0]
    fold = again.load_fold(0)
    assert torch.equal(fold["state_dict"]["w"], torch.ones(3))
    np.testing.assert_array_equal(fold["meta"]["ids"], np.arange(4))
    assert again.fold_info(0)["val_map"] == 0.4
    arrays = again.load_array("oof")
    assert arrays["names"].tolist() == ["a", "b"]
    np.testing.assert_array_equal(arrays["scores"], np.eye(2))
    assert again.load_json("per_identity_ap") == {"1": 0.5}
    df = again.metrics()
    assert df.loc[0, "loss"] == 2.5 and list(df["fold"]) == [0]
    assert again.config()["vidid_version"]


def test_finish_crash_between_writes_never_reads_complete(run: Run, monkeypatch):
    def boom(*a, **k):
        raise OSError("disk full")

    real = run_module.atomic_write_text

    def failing_summary(path, text):
        if Path(path).name == "summary.json":
            boom()
        real(path, text)

    monkeypatch.setattr(run_module, "atomic_write_text", failing_summary)
    with pytest.raises(OSError, match="disk full"):
        run.finish({"mAP": 1.0})
    assert not (run.path / "summary.json").exists()
    status = json.loads((run.path / "status.json").read_text())
    assert status["state"] == "complete"
    assert run.state != "complete"
    run.set_status(pid=_dead_pid())
    assert run.state == "interrupted"


@pytest.fixture
def _sleeper():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield proc
    proc.kill()
    proc.wait()


def test_interrupted_detection(run: Run, _sleeper):
    sleeper_pid = _sleeper.pid
    run.set_status(pid=_dead_pid(), pid_start=None)
    assert run.state == "interrupted"
    assert list_runs(run.path.parent).loc[0, "state"] == "interrupted"
    # A live pid that is another process (pid reuse) is not ours either.
    run.set_status(pid=os.getpid(), pid_start=-12345)
    assert run.state == "interrupted"
    run.set_status(pid=os.getpid(), pid_start=process_start_ticks(os.getpid()))
    assert run.state == "running"
    # Stale heartbeat: reads interrupted, but a live writer on this host is never joined.
    stale = Run.open(run.path, stale_after=0.0)
    assert stale.state == "interrupted"
    run.set_status(pid=sleeper_pid, pid_start=None)
    with pytest.raises(DataError, match=rf"pid {sleeper_pid}\) is still alive"):
        Run.resume(run.path, stale_after=0.0)
    with pytest.raises(DataError, match="stop it before you clean"):
        clean_run(run.path, stale_after=0.0)
    # Another host: the pid cannot be checked, the heartbeat decides.
    run.set_status(host="elsewhere.invalid", pid=_dead_pid())
    assert run.state == "running"
    status = json.loads((run.path / "status.json").read_text())
    status["updated"] = "2000-01-01T00:00:00+00:00"
    (run.path / "status.json").write_text(json.dumps(status))
    assert Run.open(run.path).state == "interrupted"


def test_explicit_states(run: Run):
    run.fail("boom\nsecond line")
    assert run.state == "failed" and run.status["message"] == "boom second line"
    run.set_status(state="running", pid=os.getpid())
    assert not run.cancel_requested()
    Run.open(run.path).request_cancel()
    assert run.cancel_requested()
    run.mark_cancelled()
    assert run.state == "cancelled"
    run.interrupt("Ctrl-C")
    assert run.state == "interrupted"
    with pytest.raises(ValueError, match="bad run state 'done'"):
        run.set_status(state="done")


def test_heartbeat_throttled(run: Run):
    run.heartbeat(0.1, "fold 0")
    run.heartbeat(0.2, "fold 0")  # within a second, same phase: not written yet
    assert run.status["progress"] == 0.1
    run.heartbeat(0.3, "fold 1")  # phase changed: written
    assert run.status["progress"] == 0.3 and run.status["phase"] == "fold 1"


@pytest.mark.parametrize("name, call", [
    ("status.json", lambda r: r.state),
    ("config.json", lambda r: r.config()),
    ("metrics.json", lambda r: r.metrics()),
    ("summary.json", lambda r: r.summary()),
    ("fold_0.done.json", lambda r: r.load_fold(0)),
    ("per_identity_ap.json", lambda r: r.load_json("per_identity_ap")),
])
def test_corrupt_json_raises_data_error_naming_file(run: Run, name, call):
    run.append_metric({"fold": 0, "epoch": 0})
    run.save_fold(0, {"state_dict": {}}, {})
    run.save_json("per_identity_ap", {})
    (run.path / name).write_text('{"state": "runn')
    with pytest.raises(DataError, match=rf"{name}: corrupt JSON at line 1"):
        call(Run.open(run.path) if name != "config.json" else run)
    df = list_runs(run.path.parent)  # the listing never crashes
    assert len(df) == 1
    if name in ("status.json", "config.json", "summary.json"):
        assert df.loc[0, "state"] == "corrupt" and name in df.loc[0, "message"]


def test_bad_fold_and_array_files(run: Run, tmp_path: Path):
    run.save_fold(0, {"state_dict": {"w": torch.zeros(100)}}, {})
    pt = run.path / "fold_0.pt"
    pt.write_bytes(pt.read_bytes()[:50])
    with pytest.raises(DataError, match=r"fold_0.pt: 50 bytes, its .done marker says"):
        run.load_fold(0)
    with pytest.raises(DataError, match="fold_0.pt: cannot load checkpoint"):
        run.load_fold(0, verify=False)
    with pytest.raises(DataError, match="fold 3 is not complete"):
        run.load_fold(3)
    (run.path / "oof.npz").write_bytes(b"PK\x03\x04 not a zip")
    with pytest.raises(DataError, match="oof.npz: cannot load arrays"):
        run.load_array("oof")
    np.savez(run.path / "obj.npz", a=np.array([{"x": 1}], dtype=object))
    with pytest.raises(DataError, match="obj.npz"):
        run.load_array("obj")
    with pytest.raises(ValueError, match="bad run file name"):
        run.save_json("../escape", {})
    with pytest.raises(ValueError, match="bad run file name"):
        run.save_array("status", a=np.zeros(1))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_checkpoint_loading_runs_no_foreign_code(run: Run, tmp_path: Path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    run.save_fold(0, {"state_dict": {}}, {})
    (run.path / "fold_0.pt").write_bytes(pickle.dumps({"state_dict": Evil()}))
    with pytest.raises(DataError, match="fold_0.pt: cannot load checkpoint"):
        run.load_fold(0, verify=False)
    assert not marker.exists()


class _Call:
    """Pickles as ``func(*args)``."""

    def __init__(self, func, args):
        self.func, self.args = func, args

    def __reduce__(self):
        return (self.func, self.args)


def test_checkpoint_cannot_call_ndarray_on_raw_bytes(run: Run):
    # regression: numpy.ndarray was an allowed global, so a checkpoint could call
    # ndarray((2,), dtype('O'), raw bytes): an object array over file bytes (a segfault
    # when used or freed). Probed with 'i8' here so a regression cannot crash pytest.
    raw = _Call(np.ndarray, ((2,), _Call(np.dtype, ("i8",)), b"A" * 16))
    run.save_fold(0, {"state_dict": {}, "meta": {"x": raw}}, {})
    with pytest.raises(DataError, match="fold_0.pt: cannot load checkpoint"):
        run.load_fold(0)
    # numpy arrays and scalars pickled the normal way still load, as plain ndarrays
    run.save_fold(1, {"state_dict": {}, "meta": {"a": np.arange(3, dtype=np.int16),
                                                "s": np.float32(2.5)}}, {})
    meta = run.load_fold(1)["meta"]
    assert type(meta["a"]) is np.ndarray and meta["a"].dtype == np.int16
    assert meta["a"].tolist() == [0, 1, 2] and meta["s"] == np.float32(2.5)


def test_create_refuses_existing_run(run: Run):
    with pytest.raises(DataError, match="already holds a run"):
        Run.create(run.path, {"method": "nn"})
    with pytest.raises(DataError, match="not a vidid run"):
        Run.open(run.path.parent)


def _make_runs(args):
    root, n = args
    return [str(Run.create(new_run_dir(root, "knn"), {"method": "knn"}).path) for _ in range(n)]


def test_concurrent_creation_gets_distinct_dirs(tmp_path: Path):
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(4) as pool:
        made = sum(pool.map(_make_runs, [(str(tmp_path), 10)] * 4), [])
    assert len(made) == 40 and len(set(made)) == 40
    assert len(list_runs(tmp_path)) == 40


def test_new_run_dir_retries_on_collision(tmp_path: Path, monkeypatch):
    tokens = iter(["aaaa", "aaaa", "bbbb"])
    monkeypatch.setattr(store_module.secrets, "token_hex", lambda n: next(tokens))
    a = new_run_dir(tmp_path, "nn")
    b = new_run_dir(tmp_path, "nn")
    assert a != b and a.name.endswith("-nn-aaaa") and b.name.endswith("-nn-bbbb")
    with pytest.raises(ValueError, match="bad method name"):
        new_run_dir(tmp_path, "../x")


def test_two_writers_same_dir_one_wins(tmp_path: Path):
    ctx = multiprocessing.get_context("fork")
    target = str(tmp_path / "shared-run")
    with ctx.Pool(4) as pool:
        results = pool.map(_try_create, [target] * 8)
    assert results.count("ok") == 1 and results.count("refused") == 7


def _try_create(path: str) -> str:
    try:
        Run.create(path, {"method": "nn"})
        return "ok"
    except DataError:
        return "refused"


def test_clean_and_resume(run: Run):
    run.save_fold(0, {"state_dict": {}}, {"val_map": 0.5})
    run.append_metric({"fold": 0, "epoch": 0, "val_map": 0.5})
    run.append_metric({"fold": 1, "epoch": 0, "val_map": 0.1})
    run.append_metric({"note": "no fold"})
    (run.path / "fold_1.pt").write_bytes(b"half written")
    (run.path / "fold_2.done.json").write_text("{}")  # marker without checkpoint
    (run.path / ".metrics.json.x1y2.tmp").write_text("partial")
    with pytest.raises(DataError, match="still running"):
        clean_run(run.path)
    with pytest.raises(DataError, match="still running"):
        Run.resume(run.path)
    run.set_status(pid=_dead_pid())
    run.request_cancel()
    removed = clean_run(run.path)
    assert sorted(removed) == sorted([".metrics.json.x1y2.tmp", "cancel", "fold_1.pt", "fold_2.done.json"])
    assert sorted(p.name for p in run.path.glob("fold_*")) == ["fold_0.done.json", "fold_0.pt"]
    assert Run.open(run.path).metrics()["fold"].dropna().tolist() == [0]
    assert len(Run.open(run.path).metrics()) == 2

    resumed = Run.resume(run.path)
    assert resumed.state == "running" and resumed.status["pid"] == os.getpid()
    assert resumed.status["resumed"] and resumed.completed_folds() == [0]
    resumed.append_metric({"fold": 1, "epoch": 0})
    assert Run.open(run.path).metrics()["fold"].dropna().tolist() == [0, 1]
    resumed.finish({"mAP": 0.5})
    with pytest.raises(DataError, match="already complete"):
        Run.resume(run.path)


def _partial(run: Run, k: int, epochs_done: int, epochs: int = 4) -> None:
    run.save_partial(k, {"epochs_done": epochs_done, "epochs": epochs, "model": {"w": torch.ones(2)}})


def test_mid_fold_state_is_kept_by_clean_and_resume(run: Run):
    """fold_K.partial.pt survives clean_run with the rows of its finished epochs; a row
    written after the state (a kill between the two) is dropped; the fold's checkpoint
    removes it; the runs table counts its epochs."""
    run.save_fold(0, {"state_dict": {}}, {"val_map": 0.5})
    for e in range(3):  # epoch 2's row is written, its state is not (killed in between)
        run.append_metric({"fold": 1, "epoch": e, "val_map": 0.1})
    _partial(run, 1, epochs_done=2)
    run.heartbeat(0.4, "fold 2/3")  # the status carries it from its next write
    assert run.status["partial"] == {"fold": 1, "epochs_done": 2, "epochs": 4}
    assert run.load_partial(1)["model"]["w"].tolist() == [1.0, 1.0] and run.load_partial(2) is None
    run.set_status(pid=_dead_pid())
    # 1 of 3 folds done and half of the next (no refit in this config)
    row = list_runs(run.path.parent).iloc[0]
    assert row["state"] == "interrupted" and row["progress"] == pytest.approx(0.95 * 1.5 / 3)

    resumed = Run.resume(run.path)
    assert (run.path / "fold_1.partial.pt").exists() and resumed.status["message"] == ""
    assert resumed.metrics()[["fold", "epoch"]].values.tolist() == [[1, 0], [1, 1]]
    assert resumed.status["progress"] == pytest.approx(0.95 * 1.5 / 3)
    resumed.save_fold(1, {"state_dict": {}}, {})
    assert not (run.path / "fold_1.partial.pt").exists() and resumed.status["partial"] is None
    assert resumed.partial_info() is None


def test_unreadable_or_stale_mid_fold_state_is_removed(run: Run):
    run.save_fold(0, {"state_dict": {}}, {})
    _partial(run, 0, epochs_done=3)  # stale: its fold completed since
    run.append_metric({"fold": 1, "epoch": 0})
    _partial(run, 1, epochs_done=1)
    (run.path / "fold_1.partial.pt").write_bytes(b"PK\x03\x04 torn")
    with pytest.raises(DataError, match=r"fold_1\.partial\.pt: cannot load mid-fold state"):
        run.load_partial(1)
    run.interrupt()
    resumed = Run.resume(run.path)
    assert not list(run.path.glob("*.partial.pt"))
    # the stale one of fold 0 goes quietly; the torn one is named
    assert resumed.status["message"] == "fold_1.partial.pt unreadable: that fold restarts from epoch 1"
    assert resumed.metrics()["fold"].tolist() == []  # its rows went with it
    # a readable file that is not this fold's state is refused by name
    torch.save({"fold": 3, "epochs_done": 1, "epochs": 2}, run.path / "fold_2.partial.pt")
    with pytest.raises(DataError, match=r"fold_2\.partial\.pt: not a mid-fold state of fold 2"):
        run.load_partial(2)
    resumed.discard_partial(2)
    assert not (run.path / "fold_2.partial.pt").exists()


def test_list_runs_columns_and_order(tmp_path: Path):
    a = Run.create(tmp_path / "20260101-000000-knn-aaaa", {"method": "knn", "folds": 2, "epochs": 0})
    a.save_fold(0, {"state_dict": {}}, {})
    a.finish({"mAP": 0.61, "seconds": 3.0})
    b = Run.create(tmp_path / "20260102-000000-noise-bbbb",
                   {"method": "noise", "epochs": 8, "eps": 1.1, "min_samples": 3})
    b.heartbeat(0.5, "fold 1")
    (tmp_path / "not-a-run").mkdir()
    df = list_runs(tmp_path)
    assert list(df.columns) == list(LIST_COLUMNS)
    assert df["name"].tolist() == [b.name, a.name]  # newest first
    row = df.set_index("name").loc[a.name]
    assert row["state"] == "complete" and row["mAP"] == 0.61 and row["folds"] == 1 and row["seconds"] == 3.0
    row = df.set_index("name").loc[b.name]
    assert row["state"] == "running" and row["eps"] == 1.1 and row["phase"] == "fold 1"
    assert list_runs(tmp_path / "missing").empty


def test_default_root_from_env(monkeypatch, tmp_path: Path):
    monkeypatch.setenv("VIDID_RUNS", str(tmp_path))
    assert runs.default_runs_root() == tmp_path
    monkeypatch.delenv("VIDID_RUNS")
    monkeypatch.setenv("VIDID_CACHE", str(tmp_path / "cache"))  # one rule with the dashboard's
    assert runs.default_runs_root() == tmp_path / "cache" / "runs"
    monkeypatch.delenv("VIDID_CACHE")
    assert runs.default_runs_root() == Path.home() / ".cache" / "vidid" / "runs"


def test_host_recorded(run: Run):
    assert run.status["host"] == socket.gethostname()
