"""Scoring a split with a complete run (core/runs/split_score.py) and managing runs
(core/runs/manage.py): the submission is official, its mAP is what ``vidid evaluate``
says, the detached process reports its status; labels, notes, deletion."""

from __future__ import annotations

import json

import pytest
from app_helpers import make_knn_run

from core.errors import DataError
from core.learn.metrics import evaluate_files
from core.runs import Run, list_runs
from core.runs.manage import delete_run, read_label, set_label
from core.runs.split_score import (launch_scoring, score_split, scored_dir, scored_splits,
                                   scoring_status, split_identity_ap)


@pytest.fixture(scope="module")
def knn_run(tiny_demo, tmp_path_factory):
    path, _ = make_knn_run(tiny_demo, tmp_path_factory.mktemp("runs"))
    return path


def test_score_split_writes_an_official_submission(knn_run, tiny_demo):
    res = score_split(knn_run, "test", tiny_demo / "face_test.pickle", tiny_demo / "test_gt.txt")
    assert res["state"] == "complete" and 0 <= res["mAP"] <= 1
    official = evaluate_files(tiny_demo / "test_gt.txt", res["submission"])
    assert res["mAP"] == pytest.approx(official["mAP"])
    assert split_identity_ap(knn_run, "test") == pytest.approx(official["per_identity"])
    assert scored_splits(knn_run) == ["test"]
    assert scoring_status(knn_run, "test")["state"] == "complete"
    assert ".mp4" in (scored_dir(knn_run, "test") / "submission.txt").read_text()


def test_score_without_ground_truth_gives_the_submission_only(knn_run, tiny_demo):
    res = score_split(knn_run, "nogt", tiny_demo / "face_test.pickle")
    assert res["mAP"] is None and split_identity_ap(knn_run, "nogt") is None
    assert (scored_dir(knn_run, "nogt") / "submission.txt").stat().st_size > 0


def test_launch_scoring_in_a_detached_process(knn_run, tiny_demo):
    out = launch_scoring(knn_run, "val", tiny_demo / "face_val.pickle", tiny_demo / "val_gt.txt")
    import time

    t0 = time.monotonic()
    while scoring_status(knn_run, "val").get("state") == "running" and time.monotonic() - t0 < 120:
        time.sleep(0.2)
    status = scoring_status(knn_run, "val")
    assert status["state"] == "complete", (status, (out / "score.log").read_text())
    assert 0 <= status["mAP"] <= 1


def test_scoring_refuses_bad_requests(knn_run, tiny_demo, tmp_path):
    with pytest.raises(FileNotFoundError):
        launch_scoring(knn_run, "test", tmp_path / "missing.pickle")
    with pytest.raises(DataError, match="bad split name"):
        scored_dir(knn_run, "../x")
    run = Run.create(tmp_path / "r", {"method": "knn"})
    run.interrupt()
    with pytest.raises(DataError, match="not complete"):
        launch_scoring(run.path, "test", tiny_demo / "face_test.pickle")


def test_label_note_and_delete(knn_run, tmp_path):
    assert read_label(knn_run) == {"label": "", "note": ""}
    set_label(knn_run, "  knn   baseline ", "first try")
    row = list_runs(knn_run.parent).iloc[0]
    assert row["label"] == "knn baseline" and row["note"] == "first try"
    with pytest.raises(DataError, match="at most 80"):
        set_label(knn_run, "x" * 81)
    live = Run.create(tmp_path / "live", {"method": "knn"})  # running, this process
    with pytest.raises(DataError, match="running; cancel it"):
        delete_run(live.path)
    live.interrupt()
    assert not delete_run(live.path).exists()
    with pytest.raises(DataError, match="not a run directory"):
        delete_run(tmp_path / "nothing")


def test_cancelled_run_shows_the_folds_it_did(tmp_path):
    run = Run.create(tmp_path / "c", {"method": "nn", "folds": 4, "refit": 0})
    run.set_status(progress=1.0)
    run.mark_cancelled()
    assert list_runs(tmp_path).iloc[0]["progress"] == 0.0
    json.dumps(read_label(run.path))
