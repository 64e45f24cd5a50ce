"""Helpers shared by the dashboard's AppTest files (a plain module, not a test file).

pytest puts ``tests/`` on ``sys.path`` (rootdir-relative "prepend" import mode, no
``__init__.py`` there), so test modules import these with ``from app_helpers import ...``.

* :data:`APP` and :func:`open_page`: an AppTest of the dashboard opened on one page;
* :func:`use_tiny_demo`: point the app at the session's tiny demo and a run store;
* :func:`tiny_app_env`: the same as a context manager that also stops training at exit;
* :func:`stop_training`: never leave a detached training process behind;
* :func:`wait_for_run`: poll a run directory until a condition holds;
* :func:`make_knn_run`: a real, complete KNN run trained in-process.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import pytest

from core.runs import Run

if TYPE_CHECKING:
    from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[1] / "dashboard" / "streamlit_app.py")
TINY_DEMO_NAME = "demo-tiny-seed0"  # dashboard.cache.datasets.demo_dir("tiny") under $VIDID_CACHE


def open_page(page: str, session: Mapping[str, Any] | None = None, timeout: float = 120, *,
              query: Mapping[str, str] | None = None, home_first: bool = False) -> AppTest:
    """Open the dashboard in an AppTest, switch to ``page`` and run it.

    Parameters
    ----------
    page : str
        Page script relative to ``dashboard/`` (``"app_pages/errors.py"``).
    session : mapping, optional
        Session-state entries set before the first run.
    timeout : float
        AppTest's ``default_timeout`` in seconds.
    query : mapping, optional
        Query parameters of the URL (``?video=...&run=...``), set before the first run.
    home_first : bool
        Run the default (home) page once before switching to ``page``.

    Returns
    -------
    AppTest
        The app after running ``page``; the caller checks ``at.exception``.

    Examples
    --------
    >>> at = open_page("app_pages/errors.py", query={"run": "no-such-run"})  # doctest: +SKIP
    >>> at.selectbox(key="errors_run").value  # doctest: +SKIP
    """
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(APP, default_timeout=timeout)
    for k, v in (query or {}).items():
        at.query_params[k] = v
    for k, v in (session or {}).items():
        at.session_state[k] = v
    if home_first:
        at.run()
    at.switch_page(page)
    return at.run()


def tiny_demo_in_cache() -> Path:
    """Where the app looks for the tiny demo: ``$VIDID_CACHE/demo-tiny-seed0``.

    Examples
    --------
    >>> tiny_demo_in_cache().name
    'demo-tiny-seed0'
    """
    return Path(os.environ["VIDID_CACHE"]) / TINY_DEMO_NAME


def use_tiny_demo(tiny_demo: Path, runs: Path) -> pytest.MonkeyPatch:
    """Point the app at the tiny demo (no regeneration) and at the run store ``runs``.

    Copies the session's ``tiny_demo`` fixture into :func:`tiny_demo_in_cache` unless it
    is there already, then sets ``VIDID_DEMO_PRESET=tiny`` and ``VIDID_RUNS=runs``.

    Parameters
    ----------
    tiny_demo : Path
        The ``tiny_demo`` fixture's folder (read-only, shared by the session).
    runs : Path
        The run store the app should use (need not exist yet).

    Returns
    -------
    pytest.MonkeyPatch
        Holds the environment changes; call ``undo()`` at teardown.

    Examples
    --------
    >>> mp = use_tiny_demo(tiny_demo, tmp_path / "runs")  # doctest: +SKIP
    >>> mp.undo()  # doctest: +SKIP
    """
    demo = tiny_demo_in_cache()
    if not demo.exists():
        shutil.copytree(tiny_demo, demo)
    mp = pytest.MonkeyPatch()
    mp.setenv("VIDID_DEMO_PRESET", "tiny")
    mp.setenv("VIDID_RUNS", str(runs))
    return mp


@contextlib.contextmanager
def tiny_app_env(tiny_demo: Path, runs: Path) -> Iterator[SimpleNamespace]:
    """:func:`use_tiny_demo` for the duration of a ``with`` block (a fixture's lifetime).

    On exit the environment is restored and :func:`stop_training` ends whatever training
    is still running in ``runs``.

    Yields
    ------
    SimpleNamespace
        ``demo`` (the tiny demo's folder in the cache) and ``runs``.

    Examples
    --------
    >>> @pytest.fixture(scope="module")  # doctest: +SKIP
    ... def env(tiny_demo, tmp_path_factory):
    ...     with tiny_app_env(tiny_demo, tmp_path_factory.mktemp("runs")) as e:
    ...         yield e
    """
    mp = use_tiny_demo(tiny_demo, runs)
    try:
        yield SimpleNamespace(demo=tiny_demo_in_cache(), runs=runs)
    finally:
        mp.undo()
        stop_training(runs)


def stop_training(runs: Path) -> None:
    """Never leave a training process behind, even when a test failed half-way.

    Asks every running run under ``runs`` to cancel, waits up to 15 s, then kills the
    processes of those still running. A missing ``runs`` folder holds nothing to stop.

    Examples
    --------
    >>> stop_training(tmp_path)  # doctest: +SKIP
    """
    if not runs.is_dir():
        return
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


def wait_for_run(path: Path, until: Callable[[Run], bool], timeout: float = 120.0) -> Run:
    """Poll the run at ``path`` every 0.2 s until ``until(run)`` holds.

    Raises
    ------
    AssertionError
        After ``timeout`` seconds, with the run's state, status and the tail of its log.

    Examples
    --------
    >>> run = wait_for_run(run_dir, lambda r: r.state != "running")  # doctest: +SKIP
    """
    run = Run.open(path)
    t0 = time.monotonic()
    while not until(run):
        if time.monotonic() - t0 > timeout:
            log = (path / "train.log").read_text(errors="replace")[-2000:] if (path / "train.log").exists() else ""
            raise AssertionError(f"run {path.name} stuck in state {run.state}: {run.status}\n{log}")
        time.sleep(0.2)
    return run


def make_knn_run(demo: Path, runs: Path, *, folds: int = 3) -> tuple[Path, dict]:
    """A real, complete KNN run trained in-process with core.learn (a couple of seconds).

    Trains on the train and val splits of ``demo`` into a new run directory of ``runs``.

    Returns
    -------
    (Path, dict)
        The run directory and the summary ``fit`` returned.

    Examples
    --------
    >>> path, summary = make_knn_run(tiny_demo_in_cache(), tmp_path)  # doctest: +SKIP
    >>> 0 <= summary["mAP"] <= 1  # doctest: +SKIP
    True
    """
    from core.features.dataset import concat, open_split
    from core.runs import new_run_dir
    from core.learn import TrainConfig, fit

    cfg = TrainConfig(method="knn", folds=folds, views=False)
    pairs = [("train", demo / "face_train.pickle", demo / "train_gt.txt"),
             ("val", demo / "face_val.pickle", demo / "val_gt.txt")]
    data = concat([open_split(f, g, split=s) for s, f, g in pairs])
    run = Run.create(new_run_dir(runs, "knn"),
                     {**cfg.to_dict(), "data": [{"split": s, "feats": str(f), "gt": str(g)}
                                                for s, f, g in pairs]})
    return run.path, fit(cfg, data, run)
