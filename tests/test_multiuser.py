"""Many users at once (issue 6, promise 4), with two AppTest sessions of the dashboard:

* two sessions launching training at the same moment get two separate runs, both finish;
* the objects cached for every session (the loaded dataset, a run's scores) are
  read-only and unchanged after both sessions used every page;
* a long training started in one session does not freeze another: the second session
  renders whole pages while the first session's run is still training.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import time
from pathlib import Path

import numpy as np
import pytest

from core.runs import Run

APP = str(Path(__file__).resolve().parent.parent / "dashboard" / "streamlit_app.py")
TRAINING = "app_pages/training.py"
PAGES = ("app_pages/training.py", "app_pages/errors.py", "app_pages/video_review.py")


def _stop_all(runs: Path) -> None:
    """Never leave a training process behind, even when a test failed half-way."""
    live = [Run.open(d) for d in runs.iterdir() if (d / "config.json").exists()]
    live = [r for r in live if r.state == "running"]
    for r in live:
        r.request_cancel()
    t0 = time.monotonic()
    while any(r.state == "running" for r in live) and time.monotonic() - t0 < 15:
        time.sleep(0.2)
    for r in live:
        if r.state == "running":
            with contextlib.suppress(OSError, TypeError):
                os.kill(r.status["pid"], signal.SIGKILL)


@pytest.fixture(scope="module")
def env(tiny_demo, tmp_path_factory):
    runs = tmp_path_factory.mktemp("multiuser_runs")
    demo = Path(os.environ["VIDID_CACHE"]) / "demo-tiny-seed0"
    if not demo.exists():
        shutil.copytree(tiny_demo, demo)
    mp = pytest.MonkeyPatch()
    mp.setenv("VIDID_DEMO_PRESET", "tiny")
    mp.setenv("VIDID_RUNS", str(runs))
    yield runs
    mp.undo()
    _stop_all(runs)


def _session(page: str = TRAINING):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(APP, default_timeout=120)
    at.switch_page(page)
    return at.run()


def _wait_all(paths, until, timeout: float = 120.0) -> None:
    t0 = time.monotonic()
    while not all(until(Run.open(p)) for p in paths):
        if time.monotonic() - t0 > timeout:
            raise AssertionError({p.name: Run.open(p).status for p in paths})
        time.sleep(0.2)


def _digest(*arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes() if a.dtype != object else "\0".join(map(str, a)).encode())
    return h.hexdigest()


def test_two_sessions_launch_at_once_and_share_caches_safely(env):
    from dashboard import data, run_data

    a, b = _session(), _session()
    for at in (a, b):
        at.radio(key="training_method").set_value("knn")
        at.slider(key="training_folds").set_value(2)
    # Both launches within the same second (same timestamp in the run name). AppTest
    # sessions share one mocked Streamlit runtime per process, so the clicks go one
    # after the other; concurrent run-directory creation from several processes is
    # covered in tests/test_runs.py.
    t0 = time.monotonic()
    for at in (a, b):
        next(x for x in at.button if x.label == "Launch training").click().run()
    assert time.monotonic() - t0 < 60
    assert not a.exception and not b.exception
    ra, rb = Path(a.session_state["training_followed"]), Path(b.session_state["training_followed"])
    assert ra != rb and ra.parent == rb.parent == env
    assert sorted(p.name for p in env.iterdir()) == sorted([ra.name, rb.name])
    _wait_all([ra, rb], lambda r: r.state != "running")
    assert Run.open(ra).state == Run.open(rb).state == "complete"
    # each session follows its own run
    a.run(), b.run()
    assert a.session_state["training_followed"] != b.session_state["training_followed"]

    # The shared cached objects: read-only, and unchanged after both sessions used every page.
    spec = data.demo_spec("tiny")
    lv = data.load_dataset(spec)
    rs = run_data.run_scores(ra)
    before = _digest(lv.X, lv.ids, lv.names, rs.classes, rs.scores)
    for page in PAGES:
        for at in (a, b):
            at.switch_page(page).run()
            assert not at.exception, (page, [e.value for e in at.exception])
    for arr in (lv.X, lv.ids, rs.classes, rs.scores, rs.names):
        assert not arr.flags.writeable
        with pytest.raises(ValueError):
            arr[0] = arr[1]
    assert data.load_dataset(spec) is lv  # one shared object, not a per-session copy
    assert run_data.run_scores(ra) is rs
    assert _digest(lv.X, lv.ids, lv.names, rs.classes, rs.scores) == before


def test_long_training_in_one_session_does_not_freeze_another(env):
    a = _session()
    a.radio(key="training_method").set_value("noise")
    a.slider(key="training_folds").set_value(2)
    a.number_input(key="training_epochs").set_value(5000)
    t0 = time.monotonic()
    next(x for x in a.button if x.label == "Launch training").click().run()
    launch_s = time.monotonic() - t0
    long_run = Path(a.session_state["training_followed"])
    try:
        # launching returns at once: the training lives in its own process
        assert Run.open(long_run).state == "running" and launch_s < 30
        _wait_all([long_run], lambda r: len(r.metrics()) >= 1)
        # meanwhile another session renders every page in full
        b = _session("app_pages/errors.py")
        for page in PAGES:
            b.switch_page(page).run()
            assert not b.exception, (page, [e.value for e in b.exception])
        table = b.switch_page(TRAINING).run().dataframe[0].value
        assert table.loc[table["name"] == long_run.name, "state"].item() == "running"
        assert Run.open(long_run).state == "running"  # still training while b worked
    finally:
        Run.open(long_run).request_cancel()
        _wait_all([long_run], lambda r: r.state != "running", timeout=60)
    assert Run.open(long_run).state == "cancelled"
