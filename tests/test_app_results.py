"""Results and Compare runs pages (AppTest on the tiny demo): score a complete run on
test in a detached process, its official mAP and the submission download; labels,
notes and deletion; two runs compared identity by identity and video by video."""

from __future__ import annotations

import time

import pytest
from app_helpers import make_knn_run, open_page, tiny_app_env

from core.learn.metrics import evaluate_files
from core.runs import Run
from core.runs.split_score import scored_dir, scoring_status

RESULTS = "app_pages/results.py"
COMPARE = "app_pages/compare.py"


@pytest.fixture(scope="module")
def env(tiny_demo, tmp_path_factory):
    with tiny_app_env(tiny_demo, tmp_path_factory.mktemp("results_runs")) as e:
        e.run_a, _ = make_knn_run(e.demo, e.runs, folds=3)
        time.sleep(1.1)  # a distinct start stamp: newest first in the table
        e.run_b, _ = make_knn_run(e.demo, e.runs, folds=2)
        yield e


def _ok(at):
    assert not at.exception, [e.value for e in at.exception]
    return at


def _downloads(at) -> list[str]:
    return [d.proto.label for d in at.get("download_button")]


def test_results_page_scores_test_and_offers_the_submission(env):
    at = _ok(open_page(RESULTS, query={"run": env.run_a.name}))
    assert at.selectbox(key="results_run").value == env.run_a.name
    assert at.selectbox(key="results_split").value == "test"
    assert any("has not been scored" in c.value for c in at.caption)
    next(b for b in at.button if b.label == "Score test").click().run()
    _ok(at)
    t0 = time.monotonic()
    while scoring_status(env.run_a, "test").get("state") == "running" and time.monotonic() - t0 < 120:
        time.sleep(0.2)
    status = scoring_status(env.run_a, "test")
    assert status["state"] == "complete", status
    _ok(at.run())
    official = evaluate_files(env.demo / "test_gt.txt", scored_dir(env.run_a, "test") / "submission.txt")
    shown = next(m for m in at.metric if m.label == "mAP on test (official)")
    assert shown.value == f"{official['mAP']:.4f}"
    assert "Download submission" in _downloads(at) and "Per-identity AP (CSV)" in _downloads(at)
    table = at.dataframe[0].value  # the per-identity AP table
    assert len(table) == official["n_identities"]
    assert table["AP"].is_monotonic_increasing


def test_label_note_and_delete_with_confirmation(env, tmp_path):
    doomed, _ = make_knn_run(env.demo, env.runs, folds=2)
    at = _ok(open_page(RESULTS, query={"run": doomed.name}))
    at.text_input(key=f"results_label_{doomed.name}").input("to delete")
    at.text_area(key=f"results_note_{doomed.name}").input("a spare run")
    next(b for b in at.button if b.label == "Save label and note").click().run()
    _ok(at)
    assert at.selectbox(key="results_run").format_func(doomed.name).startswith("to delete · ")
    delete = at.button(key="results_delete")
    assert delete.disabled  # needs the confirmation first
    at.checkbox(key=f"results_confirm_{doomed.name}").check().run()
    _ok(at)
    at.button(key="results_delete").click().run()
    _ok(at)
    assert not doomed.exists()
    assert doomed.name not in at.selectbox(key="results_run").options


def test_running_run_cannot_be_deleted(env, tmp_path):
    from core.runs import new_run_dir

    live = Run.create(new_run_dir(env.runs, "nn"), {"method": "nn", "folds": 2})
    try:
        at = _ok(open_page(RESULTS, query={"run": live.path.name}))
        assert not any(b.label == "Delete run" for b in at.button)
        assert any("cannot be deleted" in c.value for c in at.caption)
        assert any("only a complete run can score" in i.value for i in at.info)
    finally:
        live.interrupt()


def test_compare_two_runs(env):
    at = _ok(open_page(COMPARE))
    assert len(at.multiselect(key="compare_runs").value) == 2
    scores = at.dataframe[0].value  # mAP side by side
    assert len(scores) == 2 and "mAP out-of-fold" in scores
    assert len(at.get("plotly_chart")) >= 2  # curves and the A vs B scatter
    labels = [m.label for m in at.metric]
    assert "identities gained by B" in labels and "identities lost by B" in labels
    assert "Per-identity AP, A vs B (CSV)" in _downloads(at)
    assert at.radio(key="compare_source").options[0].startswith("out-of-fold")


def test_compare_needs_two_runs(tiny_demo, tmp_path):
    with tiny_app_env(tiny_demo, tmp_path / "runs"):
        at = _ok(open_page(COMPARE))
        assert any("at least two complete runs" in i.value for i in at.info)
