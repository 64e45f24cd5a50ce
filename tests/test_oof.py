"""core.runs.oof: one predicted()/"wrong" rule for every reader, and ``vidid errors``."""

from __future__ import annotations

import numpy as np
from app_helpers import make_knn_run

from core.cli import main
from core.runs.oof import load_out_of_fold, scores_from_arrays


def test_noise_wins_and_only_labelled_videos_can_be_wrong():
    rs = scores_from_arrays({
        "names": np.array(["right", "lost_to_noise", "other_id", "distractor", "unscored"]),
        "identity_ids": np.array([4, 9]), "ids": np.array([9, 9, 4, 0, 4]),
        "top_class": np.array([[1, 0], [1, 0], [1, 0], [0, 1], [-1, -1]]),
        "top_score": np.array([[.6, .1], [.4, .1], [.5, .2], [.5, .1], [0, 0]]),
        "noise_prob": np.array([.3, .5, 0, .1, 0])})
    pred, _ = rs.predicted()
    assert pred.tolist() == [9, 0, 9, 4, -1]
    assert rs.outcomes().tolist() == ["correct", "wrong", "wrong", "distractor", "not scored"]
    assert rs.wrong().tolist() == [False, True, True, False, False]
    table = rs.outcome_table()
    assert table.loc["lost_to_noise", "predicted"] == 0 and table.loc["unscored", "predicted"] == 0


def test_errors_command_reports_the_run(tiny_demo, tmp_path, capsys):
    path, summary = make_knn_run(tiny_demo, tmp_path, folds=2)
    rs = load_out_of_fold(path)
    n_wrong = int(rs.wrong().sum())
    assert main(["errors", str(path), "--worst", "3"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert f"{n_wrong} wrong" in out[0]
    assert len(out) == 4 and all(line.startswith("identity ") for line in out[1:])


def test_errors_command_refuses_a_run_without_scores(tmp_path, capsys):
    from core.runs import Run

    run = Run.create(tmp_path / "r", {"method": "knn"})
    assert main(["errors", str(run.path)]) == 2
    assert "no out-of-fold scores" in capsys.readouterr().err
    assert main(["errors"]) == 2
