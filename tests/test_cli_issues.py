"""``vidid issues`` (cleanlab label issues), ``vidid cluster`` without ``--eps`` (the
automatic eps) and ``vidid train``'s per-epoch lines on a terminal."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from app_helpers import make_knn_run

from core.cli import main


def test_issues_prints_and_writes_csv(tiny_demo, tmp_path, capsys):
    run, _ = make_knn_run(tiny_demo, tmp_path / "runs")
    out = tmp_path / "issues.csv"
    assert main(["issues", str(run), "--top", "3", "--csv", str(out)]) == 0
    text = capsys.readouterr().out
    assert "probably mislabelled" in text.splitlines()[0]
    table = pd.read_csv(out)
    assert list(table.columns) == ["video", "given", "suggested", "given_prob", "suggested_prob", "quality"]
    assert len(text.splitlines()) == 1 + min(3, len(table))
    assert main(["issues", str(tmp_path / "nope")]) == 2
    assert "no such run directory" in capsys.readouterr().err
    assert main(["issues", str(run), "--top", "-1"]) == 2


def test_cluster_without_eps_uses_the_automatic_eps(tiny_demo, tmp_path, capsys):
    from core.cluster.eps_choice import auto_dbscan
    from core.features.dataset import open_split

    out = tmp_path / "labels.tsv"
    assert main(["cluster", str(tiny_demo / "face_val.pickle"), "--gt", str(tiny_demo / "val_gt.txt"),
                 "--min-samples", "2", "--out", str(out), "--quiet"]) == 0
    assert "eps chosen automatically" in capsys.readouterr().out
    lv = open_split(tiny_demo / "face_val.pickle", tiny_demo / "val_gt.txt")
    eps, labels = auto_dbscan(lv.X[lv.distractor_mask], 2)
    got = pd.read_csv(out, sep="\t", header=None, names=["video", "cluster"], dtype={"video": str})
    np.testing.assert_array_equal(got["cluster"].to_numpy(), labels)


def test_train_prints_one_line_per_epoch(tiny_demo: Path, tmp_path, capsys):
    d = tiny_demo
    args = ["train", "--data", str(d / "face_train.pickle"), str(d / "train_gt.txt"),
            "--out", str(tmp_path / "nn"), "--method", "nn", "--folds", "2", "--epochs", "2"]
    assert main(args) == 0
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if " epoch " in ln and "loss" in ln and "\r" not in ln]
    assert any(ln.startswith("fold 1/2 epoch 1/2 loss") for ln in lines), err[-2000:]
    assert any(ln.startswith("fold 2/2 epoch 2/2") and "val mAP" in ln for ln in lines)
