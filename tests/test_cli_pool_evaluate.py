"""`vidid pool` and `vidid evaluate` end to end on the tiny demo files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from core.cli import main
from core.io.formats import read_features, read_ground_truth, write_submission
from core.learn.metrics import mean_average_precision, rank_videos
from core.features import load_pooled, pool_videos


def test_pool_writes_parquet_and_reports_empty_videos(tiny_demo, tmp_path, capsys):
    out = tmp_path / "val.parquet"
    rc = main(["pool", str(tiny_demo / "face_val.pickle"), "--out", str(out),
               "--weighting", "quality2", "--min-quality", "20", "--quiet"])
    assert rc == 0
    fs = read_features(tiny_demo / "face_val.pickle")
    ref = pool_videos(fs, weighting="quality2", min_quality=20.0)
    pv = load_pooled(out)
    assert pv.names.tolist() == ref.names.tolist()
    np.testing.assert_array_equal(pv.X, ref.X)
    assert pv.options == {"weighting": "quality2", "min_quality": 20.0, "min_det": None}
    line = capsys.readouterr().out.strip()
    assert "\n" not in line and f"pooled {len(ref)} videos" in line
    assert f"skipped {len(ref.empty)} empty" in line
    if ref.empty:
        assert ref.empty[0] in line


def test_pool_errors_are_one_line(tiny_demo, tmp_path, capsys):
    assert main(["pool", str(tmp_path / "nope.pickle"), "--out", str(tmp_path / "x.parquet")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("vidid pool: error:") and "nope.pickle" in err and "\n" not in err
    # argparse rejects an unknown weighting: one line naming the choices, exit 2
    assert main(["pool", str(tiny_demo / "face_val.pickle"), "--out", "x",
                 "--weighting", "max"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("vidid pool: error:") and "'max'" in err and "quality2" in err
    assert "\n" not in err


def test_evaluate_text_and_json(tiny_demo, tmp_path, capsys):
    gt_path = tiny_demo / "val_gt.txt"
    gt = read_ground_truth(gt_path)
    pv = pool_videos(read_features(tiny_demo / "face_val.pickle"))
    # a real (imperfect) ranking: similarity to the first video of each identity
    ids = gt.identities
    seeds = np.array([pv.X[pv.index_of(gt.by_identity()[i][0])] if gt.by_identity()[i][0] in set(pv.names)
                      else np.zeros(pv.X.shape[1], np.float32) for i in ids])
    ranking = rank_videos(pv.X @ seeds.T, pv.names, ids)
    ranking[999] = ["whatever"]  # an identity not in the ground truth
    del ranking[ids[-1]]  # and one identity without a line
    sub = tmp_path / "sub.txt"
    write_submission(sub, ranking)
    expected = mean_average_precision(gt, {i: r for i, r in ranking.items()})
    assert 0 < expected < 1

    assert main(["evaluate", str(gt_path), str(sub), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["mAP"] == pytest.approx(expected)
    assert res["per_identity"][str(ids[-1])] == 0.0
    assert (res["n_identities"], res["n_missing"], res["n_unknown_identities"]) == (len(ids), 1, 1)

    assert main(["evaluate", str(gt_path), str(sub)]) == 0
    text = capsys.readouterr().out.strip()
    assert text.startswith(f"mAP {expected:.4f} over {len(ids)} identities") and "1 lines" in text

    # an 'ID V1.mp4 ...' ground truth is itself a perfect submission
    assert main(["evaluate", str(gt_path), str(gt_path)]) == 0
    assert capsys.readouterr().out.startswith("mAP 1.0000")


def test_evaluate_bad_submission_exits_2(tiny_demo, tmp_path, capsys):
    sub = tmp_path / "bad.txt"
    sub.write_text("1 " + " ".join(f"v{i}.mp4" for i in range(101)) + "\n")
    assert main(["evaluate", str(tiny_demo / "val_gt.txt"), str(sub)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("vidid evaluate: error:") and "bad.txt" in err and "101" in err
    sub.write_text("one v1.mp4\n")
    assert main(["evaluate", str(tiny_demo / "val_gt.txt"), str(sub), "--json"]) == 2
    assert "not an integer" in capsys.readouterr().err
