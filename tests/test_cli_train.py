"""``vidid train`` / ``vidid predict`` end to end on the tiny demo dataset."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from core.cli import main
from core.runs import Run, list_runs

ROOT = Path(__file__).resolve().parent.parent


def _train_args(d: Path, out: Path, *extra: str) -> list[str]:
    return ["train", "--data", str(d / "face_train.pickle"), str(d / "train_gt.txt"),
            "--data", str(d / "face_val.pickle"), str(d / "val_gt.txt"),
            "--out", str(out), "--quiet", *extra]


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.fixture(scope="module")
def knn_run(tiny_demo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "knn"
    # the face-only method: the demo also ships head, body and audio files (tests/test_fusion.py)
    assert main(_train_args(tiny_demo, out, "--method", "knn", "--folds", "3",
                            "--modalities", "face")) == 0
    return out


def test_knn_train_predict_evaluate(tiny_demo: Path, knn_run: Path, tmp_path: Path, capsys):
    from core.io.formats import read_ground_truth, read_submission

    run = Run.open(knn_run)
    assert run.state == "complete"
    cfg = run.config()
    assert cfg["method"] == "knn" and cfg["folds"] == 3
    assert [e["split"] for e in cfg["data"]] == ["face_train", "face_val"]
    assert run.completed_folds() == [0, 1, 2]
    assert run.summary()["mAP"] > 0.8
    row = list_runs(knn_run.parent).iloc[0]
    assert row["state"] == "complete" and row["method"] == "knn" and row["folds"] == 3

    sub = tmp_path / "submission.txt"
    assert main(["predict", str(knn_run), str(tiny_demo / "face_test.pickle"), "--out", str(sub),
                 "--quiet"]) == 0
    ranking = read_submission(sub)
    gt = read_ground_truth(tiny_demo / "test_gt.txt")
    train_ids = set(read_ground_truth(tiny_demo / "train_gt.txt").identities)
    assert set(ranking) == train_ids  # a line for every identity of the training data
    assert all(0 < len(v) <= 100 for v in ranking.values())

    capsys.readouterr()
    assert main(["evaluate", str(tiny_demo / "test_gt.txt"), str(sub), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    # Chance: a random ranking of ~113 videos scores about |gt_i| / 113 per identity.
    n_test = len({v for vids in ranking.values() for v in vids})
    chance = np.mean([len(v) / n_test for v in gt.by_identity().values()])
    assert chance < 0.1
    assert result["mAP"] > 0.85 > 8 * chance
    assert result["n_missing"] == 0


def test_predict_equals_direct_knn(tiny_demo: Path, knn_run: Path, tmp_path: Path):
    """The knn run's submission is what core.learn.knn + rank_videos give on the pooled data."""
    from core.features.dataset import concat, open_split
    from core.io.formats import read_submission
    from core.learn.knn import knn_scores
    from core.learn.metrics import rank_videos

    sub = tmp_path / "sub.txt"
    assert main(["predict", str(knn_run), str(tiny_demo / "face_test.pickle"), "--out", str(sub),
                 "--no-views", "--quiet"]) == 0
    ref = concat([open_split(tiny_demo / "face_train.pickle", tiny_demo / "train_gt.txt"),
                  open_split(tiny_demo / "face_val.pickle", tiny_demo / "val_gt.txt")])
    test = open_split(tiny_demo / "face_test.pickle")
    lab = ref.ids > 0
    identity_ids = np.unique(ref.ids[lab])
    S = knn_scores(test.X, ref.X[lab], ref.ids[lab], identity_ids, k=5, agg="mean")
    assert read_submission(sub) == rank_videos(S, test.names, identity_ids)


def test_refuses_overwrite_and_bad_dirs(tiny_demo: Path, knn_run: Path, tmp_path: Path, capsys):
    capsys.readouterr()
    assert main(_train_args(tiny_demo, knn_run, "--method", "knn")) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"vidid train: error: {knn_run}: already holds a complete run"
    other = tmp_path / "busy"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    assert main(_train_args(tiny_demo, other, "--method", "knn")) == 2
    assert "exists and is not empty" in capsys.readouterr().err
    assert (other / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize("argv, message", [
    (["train", "--method", "knn", "--out", "{tmp}/r", "--quiet"], "no training data"),
    (["train", "--data", "{tmp}/missing.pickle", "-", "--method", "knn", "--out", "{tmp}/r"],
     "missing.pickle: no such file or directory"),
    (["train", "--data", "{demo}/face_train.pickle", "{demo}/train_gt.txt", "--folds", "1",
      "--out", "{tmp}/r"], "folds must be >= 2, got 1"),
    (["train", "--resume", "{tmp}/nowhere"], "nowhere: no such run directory"),
    (["train", "--resume"], "--resume needs a run directory"),
    (["predict", "{tmp}/nowhere", "{demo}/face_test.pickle", "--out", "{tmp}/s.txt"],
     "no such run directory"),
])
def test_user_mistakes_exit_2_with_one_line(argv, message, tiny_demo: Path, tmp_path: Path, capsys):
    argv = [a.format(tmp=tmp_path, demo=tiny_demo) for a in argv]
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err and err.startswith(f"vidid {argv[0]}: error: ")
    assert not (tmp_path / "r" / "summary.json").exists()


def test_predict_refuses_incomplete_run(tiny_demo: Path, tmp_path: Path, capsys):
    run = Run.create(tmp_path / "r", {"method": "knn"})
    run.set_status(pid=_dead_pid())
    capsys.readouterr()
    assert main(["predict", str(run.path), str(tiny_demo / "face_test.pickle"),
                 "--out", str(tmp_path / "s.txt")]) == 2
    err = capsys.readouterr().err
    assert "run is interrupted, not complete" in err and "--resume" in err
    assert not (tmp_path / "s.txt").exists()


def test_resume_knn_checks_data_and_options(tiny_demo: Path, tmp_path: Path, capsys):
    """An interrupted knn run resumes to the same result; changed data or options are refused."""
    d = tmp_path / "data"
    d.mkdir()
    for name in ("face_train.pickle", "train_gt.txt", "face_val.pickle", "val_gt.txt"):
        shutil.copy2(tiny_demo / name, d / name)
    out = tmp_path / "run"
    assert main(_train_args(d, out, "--method", "knn", "--folds", "3", "--seed", "4")) == 0
    want = Run.open(out).load_array("oof")
    want_summary = Run.open(out).summary()
    # Make it an interrupted run that finished fold 0 only.
    run = Run.open(out)
    run.set_status(state="running", pid=_dead_pid())
    for name in ("summary.json", "oof.npz", "fold_1.done.json", "fold_2.pt"):
        (out / name).unlink()
    assert run.state == "interrupted"

    capsys.readouterr()
    assert main(["train", "--resume", str(out), "--seed", "5"]) == 2
    assert "started with seed=4, not 5" in capsys.readouterr().err
    st = os.stat(d / "val_gt.txt")
    os.utime(d / "val_gt.txt", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert main(["train", "--resume", str(out), "--quiet"]) == 2
    assert "val_gt.txt: changed since run" in capsys.readouterr().err
    os.utime(d / "val_gt.txt", ns=(st.st_atime_ns, st.st_mtime_ns))
    assert Run.open(out).state == "interrupted"  # refusals left it as it was

    assert main(["train", "--resume", str(out), "--seed", "4", "--quiet"]) == 0
    again = Run.open(out)
    assert again.state == "complete" and again.summary()["resumed_folds"] == [0]
    got = again.load_array("oof")
    for key in ("top_class", "top_score", "fold"):
        np.testing.assert_array_equal(got[key], want[key])
    assert again.summary()["mAP"] == want_summary["mAP"]


def test_all_distractor_pair(tiny_demo: Path, tmp_path: Path):
    """GT '-' adds every video of that file as a distractor."""
    out = tmp_path / "run"
    assert main(["train", "--data", str(tiny_demo / "face_train.pickle"), str(tiny_demo / "train_gt.txt"),
                 "--data", str(tiny_demo / "face_test.pickle"), "-", "--method", "knn",
                 "--folds", "2", "--out", str(out), "--quiet"]) == 0
    summary = Run.open(out).summary()
    assert summary["n_distractors"] == summary["n_videos"] - summary["n_labelled"] > 100


def test_sigint_marks_run_interrupted(tiny_demo: Path, tmp_path: Path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "core.cli", *_train_args(tiny_demo, out, "--method", "nn",
           "--folds", "3", "--epochs", "50", "--device", "cpu", "--no-views")]
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not (out / "metrics.json").exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    status = json.loads((out / "status.json").read_text())
    assert status["state"] == "interrupted" and "resume" in status["message"]
    assert Run.open(out).state == "interrupted"
    assert not (out / "summary.json").exists()
    assert b"vidid train --resume" in err


def test_resume_keeps_a_clustering_chosen_in_the_dashboard(tmp_path: Path):
    """noise_labels.npz (names, labels) of a dashboard-launched run is aligned to the
    distractors of the reloaded data and handed to fit again."""
    from types import SimpleNamespace

    from core.commands.train import _stored_noise_labels

    run = Run.create(tmp_path / "r", {"method": "noise"})
    data = SimpleNamespace(names=np.array(["a", "b", "c", "d", "e"], dtype=object),
                           ids=np.array([0, 3, 0, 0, 1]))
    assert _stored_noise_labels(run, data) is None
    run.save_array("noise_labels", names=np.array(["d", "a", "zz"]), labels=np.array([4, 2, 7]))
    assert _stored_noise_labels(run, data).tolist() == [2, -1, 4]  # a, c (unknown), d


def test_resume_noise_run_equals_uninterrupted(tiny_demo: Path, tmp_path: Path):
    """The full method (DBSCAN classes, relabelling, augmentation) resumes bit for bit."""
    import torch

    a = tmp_path / "a"
    assert main(_train_args(tiny_demo, a, "--method", "noise", "--folds", "2", "--epochs", "2",
                            "--seed", "9", "--device", "cpu")) == 0
    b = tmp_path / "b"
    shutil.copytree(a, b)
    Run.open(b).set_status(state="running", pid=_dead_pid())
    # an interruption in fold 1 precedes the refits (checkpoints 2 and 3): drop them too
    for name in ("summary.json", "oof.npz", "per_identity_ap.json", "fold_1.done.json",
                 "fold_2.done.json", "fold_3.done.json"):
        (b / name).unlink()
    assert Run.open(b).state == "interrupted"
    assert main(["train", "--resume", str(b), "--quiet"]) == 0
    ra, rb = Run.open(a), Run.open(b)
    assert rb.summary()["resumed_folds"] == [0]
    assert rb.summary()["mAP"] == ra.summary()["mAP"]
    for k in (0, 1, 2, 3):
        fa, fb = ra.load_fold(k), rb.load_fold(k)
        assert all(torch.equal(fa["state_dict"][n], fb["state_dict"][n]) for n in fa["state_dict"])
    oa, ob = ra.load_array("oof"), rb.load_array("oof")
    for key in oa:
        np.testing.assert_array_equal(oa[key], ob[key])


def test_too_many_folds_is_refused_before_a_run_exists(tiny_demo: Path, tmp_path: Path, capsys):
    """A --folds that leaves a fold without a labelled video is a user mistake: one line,
    exit 2, and no failed run left at --out, so the same command with fewer folds works."""
    out = tmp_path / "r"
    n_labelled = sum(len(line.split()) - 1 for s in ("train", "val")
                     for line in (tiny_demo / f"{s}_gt.txt").read_text().splitlines())
    assert main(_train_args(tiny_demo, out, "--method", "knn", "--folds", str(n_labelled + 1))) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--folds" in err[0] and "no labelled video" in err[0]
    assert not out.exists()
    # the face-only method: the demo also ships head, body and audio files (tests/test_fusion.py)
    assert main(_train_args(tiny_demo, out, "--method", "knn", "--folds", "3",
                            "--modalities", "face")) == 0
    assert Run.open(out).state == "complete"
