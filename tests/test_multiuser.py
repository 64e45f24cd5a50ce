"""Many users at once (issue 6, promise 4), with two AppTest sessions of the dashboard:

* two sessions launching training at the same moment get two separate runs, both finish;
* the objects cached for every session (the loaded dataset, a run's scores) are
  read-only and unchanged after both sessions used every page;
* a long training started in one session does not freeze another: the second session
  renders whole pages while the first session's run is still training.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import numpy as np
import pytest
from app_helpers import open_page, tiny_app_env, wait_for_run

from core.runs import Run

TRAINING = "app_pages/training.py"
PAGES = ("app_pages/training.py", "app_pages/errors.py", "app_pages/video_review.py")


@pytest.fixture(scope="module")
def env(tiny_demo, tmp_path_factory):
    with tiny_app_env(tiny_demo, tmp_path_factory.mktemp("multiuser_runs")) as e:
        yield e.runs


def _digest(*arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes() if a.dtype != object else "\0".join(map(str, a)).encode())
    return h.hexdigest()


def test_two_sessions_launch_at_once_and_share_caches_safely(env):
    from dashboard.cache import datasets as data
    from dashboard.cache import sources
    from dashboard.cache import runs as run_data

    a, b = open_page(TRAINING), open_page(TRAINING)
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
    for p in (ra, rb):
        wait_for_run(p, lambda r: r.state != "running")
    assert Run.open(ra).state == Run.open(rb).state == "complete"
    # each session follows its own run
    a.run(), b.run()
    assert a.session_state["training_followed"] != b.session_state["training_followed"]

    # The shared cached objects: read-only, and unchanged after both sessions used every page.
    spec = sources.demo_spec("tiny")
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
    a = open_page(TRAINING)
    a.radio(key="training_method").set_value("noise")
    a.slider(key="training_folds").set_value(2)
    # long enough on any machine: the form's most epochs, smallest batch
    a.number_input(key="training_epochs").set_value(500)
    a.number_input(key="training_batch").set_value(8)
    t0 = time.monotonic()
    next(x for x in a.button if x.label == "Launch training").click().run()
    launch_s = time.monotonic() - t0
    long_run = Path(a.session_state["training_followed"])
    assert Run.open(long_run).config()["epochs"] == 500
    try:
        # launching returns at once: the training lives in its own process
        assert Run.open(long_run).state == "running" and launch_s < 30
        wait_for_run(long_run, lambda r: len(r.metrics()) >= 1)
        # meanwhile another session renders every page in full
        b = open_page("app_pages/errors.py")
        for page in PAGES:
            b.switch_page(page).run()
            assert not b.exception, (page, [e.value for e in b.exception])
        table = b.switch_page(TRAINING).run().dataframe[0].value
        assert table.loc[table["name"] == long_run.name, "state"].item() == "running"
        assert Run.open(long_run).state == "running"  # still training while b worked
    finally:
        Run.open(long_run).request_cancel()
        wait_for_run(long_run, lambda r: r.state != "running", timeout=60)
    assert Run.open(long_run).state == "cancelled"
