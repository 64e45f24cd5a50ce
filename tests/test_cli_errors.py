"""Every user mistake on the ``vidid`` command line: exit 2, one line, no traceback.

One table drives the commands in-process (``core.cli.main(argv)``, stderr captured);
a few rows also run as real subprocesses (``python -m core.cli``). Every row checks:

* the exit code is 2;
* stderr holds exactly one non-blank line, starting ``vidid CMD: error:``;
* the line names the file (or the value) and says what is wrong (fragments below);
* no ``Traceback``.

Separate tests check that a failing command never touches an existing output file,
that a malicious pickle never runs its command, and that lines of a submission for
identities absent from the ground truth are reported (not an error).
"""

from __future__ import annotations

import hashlib
import os
import pickle
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from core.cli import main

DIM = 512
REPO = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- fixtures
def _frame(j: int, feat: np.ndarray | None = None) -> list:
    if feat is None:
        feat = np.random.default_rng(j).standard_normal(DIM).astype(np.float16)
    return [str(j).encode(), [1.0, 2.0, 30.0, 40.0], 0.99, 60.0, feat]


def _videos(**extra: list) -> dict:
    """A valid tiny feature dict (bytes keys, like the real files) plus ``extra``."""
    videos = {b"GOOD_A": [_frame(0), _frame(1)], b"GOOD_B": [_frame(2)]}
    videos.update({k.encode(): v for k, v in extra.items()})
    return videos


def _write_pickle(path: Path, obj: object) -> Path:
    path.write_bytes(pickle.dumps(obj, protocol=2))
    return path


class _Evil:
    """Unpickling this runs ``touch MARKER`` (if the loader lets it)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _nan_feature() -> np.ndarray:
    feat = np.full(DIM, 0.25, np.float16)
    feat[11] = np.nan
    return feat


# A case builds, in ``tmp`` from the tiny demo ``demo``, the argv of one command, and
# returns it with the fragments the error line must contain. ``{tmp}`` in a fragment is
# replaced by the temp dir.
Case = Callable[[Path, Path], tuple[list[str], list[str]]]


def _feats_case(obj_or_bytes, fragments: list[str]) -> Case:
    def build(tmp: Path, demo: Path):
        feats = tmp / "bad.pickle"
        if isinstance(obj_or_bytes, bytes):
            feats.write_bytes(obj_or_bytes)
        else:
            _write_pickle(feats, obj_or_bytes)
        return (["pool", str(feats), "--out", str(tmp / "out.parquet"), "--quiet"],
                ["bad.pickle", *fragments])
    return build


def _missing(cmd: str) -> Case:
    def build(tmp: Path, demo: Path):
        nope = str(tmp / "nope.pickle")
        argv = {
            "pool": ["pool", nope, "--out", str(tmp / "o.parquet"), "--quiet"],
            "cluster": ["cluster", nope, "--eps", "1.0", "--min-samples", "2",
                        "--out", str(tmp / "l.tsv"), "--quiet"],
            "train": ["train", "--data", nope, "-", "--method", "knn", "--folds", "2",
                      "--out", str(tmp / "run"), "--quiet"],
            "evaluate": ["evaluate", nope, str(demo / "val_gt.txt")],
        }[cmd]
        return argv, ["nope.pickle", "no such file"]
    return build


def _directory(cmd: str) -> Case:
    def build(tmp: Path, demo: Path):
        d = tmp / "adir.pickle"
        d.mkdir()
        argv = {
            "pool": ["pool", str(d), "--out", str(tmp / "o.parquet"), "--quiet"],
            "evaluate": ["evaluate", str(demo / "val_gt.txt"), str(d)],
            "train": ["train", "--data", str(d), "-", "--method", "knn", "--folds", "2",
                      "--out", str(tmp / "run"), "--quiet"],
        }[cmd]
        return argv, ["adir.pickle", "directory"]
    return build


def _text(tmp: Path, name: str, text: str) -> Path:
    path = tmp / name
    path.write_text(text)
    return path


def _evaluate_gt(text: str, fragments: list[str]) -> Case:
    def build(tmp: Path, demo: Path):
        gt = _text(tmp, "gt.txt", text)
        sub = _text(tmp, "sub.txt", "1 a.mp4\n")
        return ["evaluate", str(gt), str(sub)], ["gt.txt", *fragments]
    return build


def _evaluate_sub(text: str, fragments: list[str]) -> Case:
    def build(tmp: Path, demo: Path):
        return (["evaluate", str(demo / "val_gt.txt"), str(_text(tmp, "sub.txt", text))],
                ["sub.txt", *fragments])
    return build


def _gt_absent(cmd: str) -> Case:
    """A ground truth naming a video that the features do not hold."""
    def build(tmp: Path, demo: Path):
        feats = _write_pickle(tmp / "feats.pickle", _videos())
        gt = _text(tmp, "gt.txt", "GOOD_A.mp4 1\nGHOST_9.mp4 2\n")
        argv = {
            "cluster": ["cluster", str(feats), "--gt", str(gt), "--eps", "1.0",
                        "--min-samples", "2", "--out", str(tmp / "l.tsv"), "--quiet"],
            "train": ["train", "--data", str(feats), str(gt), "--method", "knn", "--folds", "2",
                      "--out", str(tmp / "run"), "--quiet"],
        }[cmd]
        return argv, ["gt.txt", "'GHOST_9'", "feats.pickle", "not in"]
    return build


def _cluster(*opts: str, fragments: list[str]) -> Case:
    def build(tmp: Path, demo: Path):
        return (["cluster", str(demo / "face_val.pickle"), "--gt", str(demo / "val_gt.txt"),
                 "--out", str(tmp / "labels.tsv"), "--quiet", *opts], fragments)
    return build


def _train(*opts: str, fragments: list[str]) -> Case:
    def build(tmp: Path, demo: Path):
        return (["train", "--data", str(demo / "face_train.pickle"), str(demo / "train_gt.txt"),
                 "--out", str(tmp / "run"), "--quiet", *opts], fragments)
    return build


def _demo_foreign(tmp: Path, demo: Path):
    out = tmp / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("precious")
    return ["demo", str(out), "--preset", "tiny"], ["mine", "not empty", "not a vidid demo"]


def _run_dir(tmp: Path, state: str) -> Path:
    from core.runs import Run

    run = Run.create(tmp / "run", {"method": "knn", "folds": 2})
    if state == "interrupted":
        run.interrupt("killed")
    elif state == "failed":
        run.fail("boom")
    return run.path


def _predict_incomplete(state: str) -> Case:
    def build(tmp: Path, demo: Path):
        run = _run_dir(tmp, state)
        return (["predict", str(run), str(demo / "face_test.pickle"), "--out",
                 str(tmp / "sub.txt"), "--quiet"], ["run", f"run is {state}", "not complete"])
    return build


def _predict_not_a_run(tmp: Path, demo: Path):
    d = tmp / "notarun"
    d.mkdir()
    return (["predict", str(d), str(demo / "face_test.pickle"), "--out", str(tmp / "s.txt"),
             "--quiet"], ["notarun", "not a vidid run"])


def _evil_pool(tmp: Path, demo: Path):
    feats = _write_pickle(tmp / "evil.pickle", {b"V": [_frame(0)], b"X": _Evil(tmp / "PWNED")})
    return (["pool", str(feats), "--out", str(tmp / "o.parquet"), "--quiet"],
            ["evil.pickle", "refused", "system"])


def _evil_train(tmp: Path, demo: Path):
    feats = _write_pickle(tmp / "evil.pickle", _Evil(tmp / "PWNED"))
    return (["train", "--data", str(feats), "-", "--method", "knn", "--folds", "2",
             "--out", str(tmp / "run"), "--quiet"], ["evil.pickle", "refused", "system"])


def _empty_only(cmd: str) -> Case:
    """A feature file whose every video has no frame."""
    def build(tmp: Path, demo: Path):
        feats = _write_pickle(tmp / "empty_only.pickle", {b"E1": [], b"E2": []})
        argv = {
            "cluster": ["cluster", str(feats), "--eps", "1.0", "--min-samples", "2",
                        "--out", str(tmp / "l.tsv"), "--quiet"],
            "train": ["train", "--data", str(feats), "-", "--method", "knn", "--folds", "2",
                      "--out", str(tmp / "run"), "--quiet"],
        }[cmd]
        return argv, (["empty_only.pickle", "no distractor videos"] if cmd == "cluster"
                      else ["empty_only.pickle", "identities", "0"])
    return build


def _train_all_distractors(tmp: Path, demo: Path):
    feats = _write_pickle(tmp / "feats.pickle", _videos())
    return (["train", "--data", str(feats), "-", "--method", "knn", "--folds", "2",
             "--out", str(tmp / "run"), "--quiet"], ["feats.pickle", "identities", "got 0"])


def _pool_opt(*opts: str, fragments: list[str]) -> Case:
    def build(tmp: Path, demo: Path):
        feats = _write_pickle(tmp / "feats.pickle", _videos())
        return ["pool", str(feats), "--out", str(tmp / "o.parquet"), "--quiet", *opts], fragments
    return build


def _bad_truth(tmp: Path, demo: Path):
    truth = _text(tmp, "truth.tsv", "foo\tbar\n1\t2\n")
    return (["cluster", str(demo / "face_val.pickle"), "--gt", str(demo / "val_gt.txt"),
             "--eps", "1.0", "--min-samples", "2", "--out", str(tmp / "l.tsv"), "--quiet",
             "--truth", str(truth)], ["truth.tsv", "'video'", "'person'"])


def _gt_not_utf8(tmp: Path, demo: Path):
    gt = tmp / "gt.txt"
    gt.write_bytes(b"a.mp4 1\n\xff\xfe.mp4 2\n")
    return ["evaluate", str(gt), str(demo / "val_gt.txt")], ["gt.txt", "line 2", "UTF-8"]


def _resume_not_a_run(tmp: Path, demo: Path):
    (tmp / "somewhere").mkdir()
    return ["train", "--resume", str(tmp / "somewhere")], ["somewhere", "not a vidid run"]



# --------------------------------------------------------------------------- hostile input
# Issue 12: what a careful attacker tries. Pickles are small but shaped to explode.
def _exponential_pickle() -> bytes:
    level: list = [_frame(0)]
    for _ in range(40):  # 2**40 frames to walk, 2 KB of file
        level = [level, level]
    return pickle.dumps({b"V": level}, protocol=2)


def _fan_out_pickle() -> bytes:
    return pickle.dumps({b"V": [_frame(0)] * 500_000}, protocol=2)  # one frame, 500k times


def _deep_pickle(depth: int = 1_000_000) -> bytes:
    return b"\x80\x02" + b"]" * depth + b"a" * (depth - 1) + b"."


def _frame_with(j: int, **fields) -> list:
    frame = _frame(j)
    for key, value in fields.items():
        frame[{"bbox": 1, "det": 2, "quality": 3, "feat": 4}[key]] = value
    return frame


def _special_input(cmd: str, kind: str) -> Case:
    """A named pipe or a device where a file is expected (reading would hang or never end)."""
    def build(tmp: Path, demo: Path):
        if kind == "fifo":
            path = tmp / "fifo.in"
            os.mkfifo(path)
        else:
            path = Path(kind)
        argv = {
            "pool": ["pool", str(path), "--out", str(tmp / "o.parquet"), "--quiet"],
            "evaluate-gt": ["evaluate", str(path), str(demo / "val_gt.txt")],
            "evaluate-sub": ["evaluate", str(demo / "val_gt.txt"), str(path)],
            "train": ["train", "--data", str(path), "-", "--method", "knn", "--folds", "2",
                      "--out", str(tmp / "run"), "--quiet"],
            "truth": ["cluster", str(demo / "face_val.pickle"), "--gt", str(demo / "val_gt.txt"),
                      "--eps", "1.0", "--min-samples", "2", "--out", str(tmp / "l.tsv"),
                      "--quiet", "--truth", str(path)],
        }[cmd]
        name = "fifo.in" if kind == "fifo" else kind
        what = "named pipe" if kind == "fifo" else "device"
        return argv, [name, what]
    return build


def _out_is_input(cmd: str) -> Case:
    def build(tmp: Path, demo: Path):
        feats = _write_pickle(tmp / "feats.pickle", _videos())
        gt = _text(tmp, "gt.txt", "GOOD_A.mp4 1\n")
        argv = {
            "pool": ["pool", str(feats), "--out", str(feats), "--quiet"],
            "pool via a link": ["pool", str(feats), "--out", str(_link(tmp, feats)), "--quiet"],
            "cluster": ["cluster", str(feats), "--gt", str(gt), "--eps", "1.0",
                        "--min-samples", "2", "--out", str(gt), "--quiet"],
            "predict": ["predict", str(_trained(demo, "knn")), str(demo / "face_val.pickle"),
                        "--gt", str(gt), "--out", str(gt), "--quiet"],
        }[cmd]
        return argv, ["--out is the input file"]
    return build


def _link(tmp: Path, target: Path) -> Path:
    link = tmp / "alias.pickle"
    os.link(target, link)  # a hard link: another name for the same file
    return link


_TRAINED: dict[tuple[str, str], Path] = {}


def _trained(demo: Path, method: str) -> Path:
    """A complete run on the tiny demo (trained once per session, read-only)."""
    key = (str(demo), method)
    if key not in _TRAINED:
        import tempfile

        out = Path(tempfile.mkdtemp(prefix=f"vidid-{method}-run-")) / "run"
        extra = ["--epochs", "1"] if method != "knn" else []
        rc = main(["train", "--data", str(demo / "face_train.pickle"), str(demo / "train_gt.txt"),
                   "--method", method, "--folds", "2", "--out", str(out), "--quiet", *extra])
        assert rc == 0
        _TRAINED[key] = out
    return _TRAINED[key]


def _damaged_run(method: str, damage: Callable[[Path], None], fragments: list[str]) -> Case:
    def build(tmp: Path, demo: Path):
        import shutil

        run = tmp / "run"
        shutil.copytree(_trained(demo, method), run)
        damage(run)
        return (["predict", str(run), str(demo / "face_val.pickle"), "--out",
                 str(tmp / "sub.txt"), "--quiet"], ["run", *fragments])
    return build


def _resave(run: Path, k: int, change: Callable[[dict], None]) -> None:
    """Rewrite fold ``k`` with a changed payload and a matching marker (checksums pass)."""
    from core.runs import Run

    r = Run.open(run)
    payload = r.load_fold(k)
    change(payload)
    r.save_fold(k, payload, {"val_map": 0.5, "best_epoch": 0})


def _nan_weights(payload: dict) -> None:
    name = next(iter(payload["state_dict"]))
    payload["state_dict"][name] = payload["state_dict"][name].clone().fill_(float("nan"))


def _short_identity_list(payload: dict) -> None:
    payload["meta"]["identity_ids"] = payload["meta"]["identity_ids"][:-3]


def _wrong_shape(payload: dict) -> None:
    name = next(k for k, t in payload["state_dict"].items() if t.ndim == 2)
    payload["state_dict"][name] = payload["state_dict"][name][:-1].clone()


def _flip_bytes(path: Path) -> None:
    data = bytearray(path.read_bytes())
    for i in range(len(data) // 2, len(data) // 2 + 64):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))  # same size: only the checksum can tell


LONG_NAME = "N" * 5_000_000


GOOD = pickle.dumps(_videos(), protocol=2)
HUNDRED_AND_ONE = " ".join(f"IQIYI_VID_VAL_{i:07d}.mp4" for i in range(101))

# (id, builder, xfail reason naming the bug, or None)
CASES: list[tuple[str, Case, str | None]] = [
    # --- feature files -------------------------------------------------------------
    ("pool missing file", _missing("pool"), None),
    ("cluster missing file", _missing("cluster"), None),
    ("train missing file", _missing("train"), None),
    ("evaluate missing GT", _missing("evaluate"), None),
    ("pool directory", _directory("pool"), None),
    ("evaluate directory as submission", _directory("evaluate"), None),
    ("train directory as features", _directory("train"), None),
    ("pool empty file", _feats_case(b"", ["empty file"]), None),
    ("pool truncated pickle", _feats_case(GOOD[: len(GOOD) // 2], ["not a valid pickle"]), None),
    ("pool not a pickle", _feats_case(b"%PDF-1.4 not a pickle", ["not a valid pickle"]), None),
    ("pool not-a-dict pickle", _feats_case([_frame(0)], ["expected a dict", "list"]), None),
    ("pool malicious pickle", _evil_pool, None),
    ("train malicious pickle", _evil_train, None),
    ("pool wrong feature dimension",
     _feats_case(_videos(V=[_frame(0), _frame(1, np.zeros(256, np.float16))]),
                 ["video 'V' frame 1", "256 values, expected 512"]), None),
    ("pool feature of wrong dtype",
     _feats_case(_videos(V=[_frame(0, np.array(["x"] * DIM))]), ["video 'V' frame 0", "dtype"]),
     None),
    ("pool NaN feature", _feats_case(_videos(V=[_frame(0, _nan_feature())]),
                                     ["video 'V' frame 0", "non-finite", "nan"]), None),
    ("pool inf feature",
     _feats_case(_videos(V=[_frame(0), _frame(1, np.full(DIM, np.inf, np.float16))]),
                 ["video 'V' frame 1", "non-finite", "inf"]), None),
    ("pool NaN quality", _feats_case(_videos(V=[_frame(0)[:3] + [float("nan")] + _frame(0)[4:]]),
                                     ["video 'V' frame 0", "quality score is nan"]), None),
    ("cluster only empty videos", _empty_only("cluster"), None),
    ("train only empty videos", _empty_only("train"), None),
    ("train only distractors", _train_all_distractors, None),
    ("pool wrong frame arity", _feats_case(_videos(V=[_frame(0)[:4]]),
                                           ["video 'V' frame 0", "5 fields", "got 4"]), None),
    ("pool absurd quality",
     _feats_case(_videos(V=[_frame(0)[:3] + [1e7] + _frame(0)[4:]]),
                 ["video 'V' frame 0", "quality", "out of range"]), None),
    ("pool duplicate names bytes/str",
     _feats_case({b"DUP": [_frame(0)], "DUP.mp4": [_frame(1)]}, ["'DUP.mp4'", "same video"]),
     None),
    # --- ground truth ----------------------------------------------------------------
    ("GT malformed line", _evaluate_gt("a.mp4 1\nb.mp4\n", ["line 2", "'b.mp4'"]), None),
    ("GT non-integer ID", _evaluate_gt("a.mp4 1\nb.mp4 seven\n",
                                       ["line 2", "'seven'", "not an integer"]), None),
    ("GT ID < 1", _evaluate_gt("1 a.mp4\n0 b.mp4 c.mp4\n", ["line 2", "0", ">= 1"]), None),
    ("GT video under two identities",
     _evaluate_gt("1 a.mp4 b.mp4\n2 c.mp4 b.mp4\n", ["line 2", "'b'", "identity 2", "under 1"]),
     None),
    ("GT empty", _evaluate_gt("\n", ["empty"]), None),
    ("cluster GT video absent from features", _gt_absent("cluster"), None),
    ("train GT video absent from features", _gt_absent("train"), None),
    ("GT mixed layouts", _evaluate_gt("1 a.mp4 b.mp4\nc.mp4 2\n",
                                      ["line 2", "video_id", "id_videos"]), None),
    ("GT not UTF-8", _gt_not_utf8, None),
    ("cluster truth file without its columns", _bad_truth, None),
    # --- submissions -----------------------------------------------------------------
    ("submission > 100 videos", _evaluate_sub(f"1 a.mp4\n2 {HUNDRED_AND_ONE}\n",
                                              ["line 2", "101 videos", "100"]), None),
    ("submission duplicate identity line",
     _evaluate_sub("3 a.mp4\n4 b.mp4\n3 c.mp4\n", ["line 3", "identity 3", "line 1"]), None),
    ("submission non-integer ID", _evaluate_sub("x1 a.mp4\n", ["line 1", "'x1'"]), None),
    # --- values ----------------------------------------------------------------------
    ("cluster eps 0", _cluster("--eps", "0", "--min-samples", "2", fragments=["--eps", "0"]),
     None),
    ("cluster eps negative", _cluster("--eps", "-0.5", "--min-samples", "2",
                                      fragments=["--eps", "-0.5"]), None),
    ("cluster eps nan", _cluster("--eps", "nan", "--min-samples", "2",
                                 fragments=["--eps", "nan"]), None),
    ("cluster eps not a number", _cluster("--eps", "wide", "--min-samples", "2",
                                          fragments=["--eps", "wide"]), None),
    ("cluster eps > max-eps", _cluster("--eps", "1.3", "--max-eps", "1.0", "--min-samples", "2",
                                       fragments=["--max-eps", "1", "below", "1.3"]), None),
    ("cluster min-samples 0", _cluster("--eps", "1.0", "--min-samples", "0",
                                       fragments=["--min-samples", ">= 1", "0"]), None),
    ("cluster --gt count mismatch",
     _cluster("--eps", "1.0", "--min-samples", "2", "--gt", "a.txt", "b.txt",
              fragments=["--gt", "2", "1"]), None),
    ("train folds 1", _train("--method", "knn", "--folds", "1", fragments=["folds", ">= 2", "1"]),
     None),
    ("train epochs 0", _train("--method", "nn", "--epochs", "0",
                              fragments=["epochs", ">= 1", "0"]), None),
    ("train lr negative", _train("--method", "nn", "--lr", "-1", fragments=["lr", "-1"]), None),
    ("train knn-k 0", _train("--method", "knn", "--knn-k", "0", fragments=["knn_k", ">= 1", "0"]),
     None),
    ("train min-samples 0", _train("--method", "noise", "--min-samples", "0",
                                   fragments=["min_samples", ">= 1", "0"]), None),
    ("train unknown device", _train("--method", "knn", "--device", "tpu",
                                    fragments=["device", "'tpu'"]), None),
    ("train --resume on a folder that is not a run", _resume_not_a_run, None),
    ("pool --min-quality nan", _pool_opt("--min-quality", "nan",
                                         fragments=["--min-quality", "nan"]), None),
    ("pool unknown weighting", _pool_opt("--weighting", "max", fragments=["--weighting", "'max'"]),
     None),
    ("demo negative seed", lambda tmp, demo: (["demo", str(tmp / "d"), "--preset", "tiny",
                                               "--seed", "-1"], ["--seed", "-1"]), None),
    ("train no data", lambda tmp, demo: (["train", "--method", "knn", "--out", str(tmp / "r")],
                                         ["no training data", "--data"]), None),
    ("demo into a non-empty foreign folder", _demo_foreign, None),
    ("predict on an interrupted run", _predict_incomplete("interrupted"), None),
    ("predict on a running run", _predict_incomplete("running"), None),
    ("predict on a failed run", _predict_incomplete("failed"), None),
    ("predict on a folder that is not a run", _predict_not_a_run, None),    # --- hostile input (issue 12) ----------------------------------------------------
    ("pool pickle: shared lists, exponential walk", _feats_case(_exponential_pickle(), ["refused"]),
     None),
    ("pool pickle: one frame referenced 500,000 times", _feats_case(_fan_out_pickle(),
                                                                    ["refused", "referenced"]), None),
    ("pool pickle: lists nested 1,000,000 deep", _feats_case(_deep_pickle(),
                                                             ["refused", "deeper than 64"]), None),
    ("pool a named pipe", _special_input("pool", "fifo"), None),
    ("pool /dev/zero", _special_input("pool", "/dev/zero"), None),
    ("evaluate GT from a named pipe", _special_input("evaluate-gt", "fifo"), None),
    ("evaluate submission from /dev/urandom", _special_input("evaluate-sub", "/dev/urandom"), None),
    ("train features from /dev/zero", _special_input("train", "/dev/zero"), None),
    ("cluster --truth a named pipe", _special_input("truth", "fifo"), None),
    ("pool quality beyond the float range",
     _feats_case(_videos(V=[_frame_with(0, quality=10**400)]), ["video 'V' frame 0", "quality",
                                                                 "out of range"]), None),
    ("pool detection score beyond float32",
     _feats_case(_videos(V=[_frame_with(0, det=1e300)]), ["detection score", "out of range"]), None),
    ("pool bbox beyond the float range",
     _feats_case(_videos(V=[_frame_with(0, bbox=[1, 2, 10**400, 4])]), ["video 'V' frame 0", "bbox"]),
     None),
    ("pool bbox beyond float32",
     _feats_case(_videos(V=[_frame_with(0, bbox=[1.0, 2.0, 1e300, 4.0])]), ["bbox", "out of range"]),
     None),
    ("pool float32 features that overflow pooling",
     _feats_case(_videos(V=[_frame_with(0, feat=np.full(DIM, 3e38, np.float32))]),
                 ["video 'V' frame 0", "feature value", "out of range"]), None),
    ("evaluate GT identity beyond int64", _evaluate_gt("a.mp4 1\nb.mp4 99999999999999999999\n",
                                                       ["line 2", "out of range"]), None),
    ("train --folds 10**30", _train("--method", "knn", "--folds", str(10**30),
                                    fragments=["--folds", "out of range"]), None),
    ("train --seed 10**30", _train("--method", "knn", "--seed", str(10**30),
                                   fragments=["--seed", "out of range"]), None),
    ("train --lr 1e300", _train("--method", "nn", "--lr", "1e300", fragments=["--lr", "out of range"]),
     None),
    ("cluster --min-samples 10**30", _cluster("--eps", "1.0", "--min-samples", str(10**30),
                                              fragments=["--min-samples", "out of range"]), None),
    ("cluster --eps 1e308", _cluster("--eps", "1e308", "--min-samples", "2",
                                     fragments=["--eps", "out of range"]), None),
    ("pool --out is the features file", _out_is_input("pool"), None),
    ("pool --out is a hard link to the features file", _out_is_input("pool via a link"), None),
    ("cluster --out is the ground truth", _out_is_input("cluster"), None),
    ("predict --out is the ground truth", _out_is_input("predict"), None),
    ("predict with a deleted fold checkpoint",
     _damaged_run("knn", lambda r: (r / "fold_1.pt").unlink(), ["damaged", "fold(s) [1]"]), None),
    ("predict with a deleted .done marker",
     _damaged_run("knn", lambda r: (r / "fold_0.done.json").unlink(), ["damaged", "fold(s) [0]"]),
     None),
    ("predict with a corrupt .done marker",
     _damaged_run("knn", lambda r: (r / "fold_1.done.json").write_text("{not json"),
                  ["fold_1.done.json", "corrupt JSON"]), None),
    ("predict with a corrupt checkpoint",
     _damaged_run("nn", lambda r: _flip_bytes(r / "fold_1.pt"), ["fold_1.pt", "checksum"]), None),
    ("predict with NaN weights",
     _damaged_run("nn", lambda r: _resave(r, 0, _nan_weights), ["fold_0.pt", "NaN"]), None),
    ("predict with a shortened identity list",
     _damaged_run("nn", lambda r: _resave(r, 1, _short_identity_list),
                  ["fold_1.pt", "identity list"]), None),
    ("predict with a wrong-shaped weight",
     _damaged_run("nn", lambda r: _resave(r, 0, _wrong_shape), ["fold_0.pt", "do not fit"]), None),
    ("predict with a checkpoint lacking its config",
     _damaged_run("knn", lambda r: _resave(r, 0, lambda p: p.pop("config")),
                  ["fold_0.pt", "'config'"]), None),
    ("predict on a run whose status.json is nested 100,000 deep",
     _damaged_run("knn", lambda r: (r / "status.json").write_text("[" * 100_000 + "]" * 100_000),
                  ["status.json", "nested too deeply"]), None),
    ("train --device cuda:99", _train("--method", "knn", "--device", "cuda:99",
                                      fragments=["cuda:99"]), None),
    ("evaluate GT with a 5-million-character line",
     _evaluate_gt(f"a.mp4 1\n{LONG_NAME}\n", ["line 2", "5000000 chars"]), None),
    ("pool a video with a 5-million-character name and a bad feature",
     _feats_case(_videos(**{LONG_NAME: [_frame(0, np.zeros(256, np.float16))]}),
                 ["bad.pickle", "frame 0", "256 values"]), None),
]


def _check_one_line(cmd: str, rc: int, err: str, fragments: list[str], tmp: Path) -> str:
    assert rc == 2, f"exit code {rc}, stderr: {err!r}"
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    if cmd == "train":  # the run it announced before the failure, if any
        lines = [line for line in lines if not line.startswith("run ")]
    assert len(lines) == 1, f"stderr is not one line: {err[:2000]!r}"
    line = lines[0]
    assert line.startswith(f"vidid {cmd}: error: "), line
    assert len(line) <= 500, f"error line of {len(line)} characters"
    assert "config" != line.split("error: ", 1)[1].strip()
    assert ".tmp" not in line, "an internal temporary path in the message"
    for fragment in fragments:
        assert fragment.replace("{tmp}", str(tmp)) in line, f"{fragment!r} not in {line!r}"
    return line


def _params():
    out = []
    for name, build, xfail in CASES:
        marks = [pytest.mark.xfail(strict=True, reason=xfail)] if xfail else []
        out.append(pytest.param(build, id=name, marks=marks))
    return out


@pytest.mark.timeout(120)  # a pipe or an exploding pickle must not hang the suite
@pytest.mark.parametrize("build", _params())
def test_user_mistake_is_one_clear_line(build: Case, tiny_demo: Path, tmp_path: Path, capsys):
    argv, fragments = build(tmp_path, tiny_demo)
    capsys.readouterr()
    try:
        rc = main(argv)
    except SystemExit as exc:  # argparse refuses a value itself: exit code in the exception
        rc = exc.code
    captured = capsys.readouterr()
    _check_one_line(argv[0], rc, captured.err, fragments, tmp_path)
    assert not (tmp_path / "PWNED").exists(), "the malicious pickle ran its command"


# --------------------------------------------------------------------------- subprocesses
SUBPROCESS_CASES = ["pool malicious pickle", "GT video under two identities",
                    "cluster eps 0", "predict on an interrupted run"]


@pytest.mark.parametrize("name", SUBPROCESS_CASES)
def test_user_mistake_in_a_real_process(name: str, tiny_demo: Path, tmp_path: Path):
    build = next(b for n, b, _ in CASES if n == name)
    argv, fragments = build(tmp_path, tiny_demo)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-m", "core.cli", *argv], check=False, capture_output=True,
                          text=True, cwd=str(tmp_path), env=env, timeout=120)
    _check_one_line(argv[0], proc.returncode, proc.stderr, fragments, tmp_path)
    assert proc.stdout == ""
    assert not (tmp_path / "PWNED").exists(), "the malicious pickle ran its command"


# --------------------------------------------------------------------------- outputs
def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _leftovers(folder: Path, keep: set[str]) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name not in keep)


OLD = b"previous output: must survive a failed command\n"


@pytest.mark.parametrize("what", ["pool", "cluster", "predict"])
def test_failed_command_leaves_existing_output_untouched(what: str, tiny_demo: Path,
                                                         tmp_path: Path, capsys):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = out_dir / {"pool": "val.parquet", "cluster": "labels.tsv", "predict": "sub.txt"}[what]
    out.write_bytes(OLD)
    before = _digest(out)
    if what == "pool":
        bad = _write_pickle(tmp_path / "bad.pickle", _videos(V=[_frame(0, _nan_feature())]))
        argv = ["pool", str(bad), "--out", str(out), "--quiet"]
    elif what == "cluster":
        feats = _write_pickle(tmp_path / "feats.pickle", _videos())
        gt = _text(tmp_path, "gt.txt", "GOOD_A.mp4 1\nGHOST_9.mp4 2\n")
        argv = ["cluster", str(feats), "--gt", str(gt), "--eps", "1.0", "--min-samples", "2",
                "--out", str(out), "--quiet"]
    else:
        run = _run_dir(tmp_path, "interrupted")
        argv = ["predict", str(run), str(tiny_demo / "face_test.pickle"), "--out", str(out),
                "--quiet"]
    assert main(argv) == 2
    assert capsys.readouterr().err.startswith(f"vidid {what}: error:")
    assert _digest(out) == before
    assert _leftovers(out_dir, {out.name}) == [], "a temporary file was left behind"


def test_unknown_command_is_one_line(capsys):
    assert main(["cluser", "x"]) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("vidid: error:") and "'cluser'" in lines[0]
    assert "Traceback" not in err


def test_pool_into_a_directory_fails_cleanly_and_keeps_it(tiny_demo: Path, tmp_path: Path,
                                                          capsys):
    target = tmp_path / "val.parquet"
    target.mkdir()
    (target / "keep.txt").write_bytes(OLD)
    rc = main(["pool", str(tiny_demo / "face_val.pickle"), "--out", str(target), "--quiet"])
    err = capsys.readouterr().err
    _check_one_line("pool", rc, err, ["val.parquet", "directory"], tmp_path)
    assert (target / "keep.txt").read_bytes() == OLD
    assert _leftovers(tmp_path, {"val.parquet"}) == []


def test_demo_refusal_leaves_the_foreign_folder_alone(tiny_demo: Path, tmp_path: Path, capsys):
    argv, _ = _demo_foreign(tmp_path, tiny_demo)
    assert main(argv) == 2
    capsys.readouterr()
    assert sorted(p.name for p in (tmp_path / "mine").iterdir()) == ["thesis.tex"]
    assert (tmp_path / "mine" / "thesis.tex").read_text() == "precious"


def test_train_refuses_a_non_empty_out_folder_and_leaves_it(tiny_demo: Path, tmp_path: Path,
                                                            capsys):
    out = tmp_path / "results"
    out.mkdir()
    (out / "notes.txt").write_bytes(OLD)
    argv = ["train", "--data", str(tiny_demo / "face_train.pickle"),
            str(tiny_demo / "train_gt.txt"), "--method", "knn", "--folds", "2",
            "--out", str(out), "--quiet"]
    rc = main(argv)
    _check_one_line("train", rc, capsys.readouterr().err, ["results", "not empty"], tmp_path)
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    assert (out / "notes.txt").read_bytes() == OLD


@pytest.mark.parametrize("case", ["train GT video absent from features", "train only distractors",
                                  "train malicious pickle", "train --device cuda:99",
                                  "train features from /dev/zero"])
def test_train_data_error_leaves_no_run_behind(case: str, tiny_demo: Path, tmp_path: Path,
                                               capsys):
    """A --data mistake found while loading must not leave a run directory behind."""
    build = next(b for n, b, _ in CASES if n == case)
    argv, _ = build(tmp_path, tiny_demo)
    assert main(argv) == 2
    capsys.readouterr()
    assert not (tmp_path / "run" / "config.json").exists()


# --------------------------------------------------------------------------- not errors
def test_unknown_identities_in_a_submission_are_reported_not_fatal(tiny_demo: Path,
                                                                   tmp_path: Path, capsys):
    from core.io.formats import read_ground_truth

    gt = read_ground_truth(tiny_demo / "val_gt.txt")
    by_id = gt.by_identity()
    known = gt.identities[0]
    unknown = [max(gt.identities) + 7, max(gt.identities) + 9]
    lines = [f"{known} " + " ".join(f"{v}.mp4" for v in by_id[known])]
    lines += [f"{u} {by_id[known][0]}.mp4" for u in unknown]
    sub = _text(tmp_path, "sub.txt", "\n".join(lines) + "\n")
    rc = main(["evaluate", str(tiny_demo / "val_gt.txt"), str(sub)])
    captured = capsys.readouterr()
    assert rc == 0 and captured.err == ""
    # one perfect identity out of all: mAP = 1 / n_identities
    expected = 1.0 / len(gt.identities)
    assert captured.out.startswith(f"mAP {expected:.4f} over {len(gt.identities)} identities")
    assert "2 lines for identities not in the ground truth ignored" in captured.out

    rc = main(["evaluate", str(tiny_demo / "val_gt.txt"), str(sub), "--json"])
    import json

    res = json.loads(capsys.readouterr().out)
    assert rc == 0 and res["n_unknown_identities"] == 2
    assert res["mAP"] == pytest.approx(expected)
    assert set(res["per_identity"]) == {str(i) for i in gt.identities}


def test_pool_of_only_empty_videos_reports_them(tmp_path: Path, capsys):
    """Empty videos are legal (the real files hold some): pool skips and names them."""
    feats = _write_pickle(tmp_path / "empty_only.pickle", {b"E1": [], "E2.mp4": []})
    out = tmp_path / "o.parquet"
    assert main(["pool", str(feats), "--out", str(out), "--quiet"]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    assert "pooled 0 videos" in captured.out and "skipped 2 empty videos (E1, E2)" in captured.out
    from core.features import load_pooled

    assert len(load_pooled(out)) == 0


def test_malicious_pickle_never_runs_even_via_cluster_and_predict_paths(tiny_demo: Path,
                                                                       tmp_path: Path, capsys):
    evil = _write_pickle(tmp_path / "evil.pickle", _Evil(tmp_path / "PWNED"))
    rc = main(["cluster", str(evil), "--eps", "1.0", "--min-samples", "2",
               "--out", str(tmp_path / "l.tsv"), "--quiet"])
    _check_one_line("cluster", rc, capsys.readouterr().err, ["evil.pickle", "refused"], tmp_path)
    assert not (tmp_path / "PWNED").exists()
    assert not (tmp_path / "l.tsv").exists()


def test_case_table_is_broad():
    """The table covers every command and at least the issue's list of mistakes."""
    names = " ".join(n for n, _, _ in CASES)
    for cmd in ("pool", "cluster", "train", "evaluate", "demo", "predict"):
        assert cmd in names, cmd
    assert len(CASES) >= 40


# --------------------------------------------------------------------------- outputs vs inputs
def test_pool_into_its_own_input_leaves_it_intact(tmp_path: Path, capsys):
    feats = _write_pickle(tmp_path / "feats.pickle", _videos())
    before = _digest(feats)
    assert main(["pool", str(feats), "--out", str(feats), "--quiet"]) == 2
    assert "--out is the input file" in capsys.readouterr().err
    assert _digest(feats) == before
    assert _leftovers(tmp_path, {"feats.pickle"}) == []


def test_predict_with_a_missing_gt_leaves_the_existing_out_untouched(tiny_demo: Path,
                                                                     tmp_path: Path, capsys):
    out = tmp_path / "sub.txt"
    out.write_bytes(OLD)
    argv = ["predict", str(_trained(tiny_demo, "knn")), str(tiny_demo / "face_val.pickle"),
            "--gt", str(tmp_path / "missing_gt.txt"), "--out", str(out), "--quiet"]
    capsys.readouterr()
    rc = main(argv)
    _check_one_line("predict", rc, capsys.readouterr().err, ["missing_gt.txt", "no such file"],
                    tmp_path)
    assert out.read_bytes() == OLD
    assert _leftovers(tmp_path, {"sub.txt"}) == []


def test_a_failed_start_leaves_no_run_and_the_retry_works(tiny_demo: Path, tmp_path: Path,
                                                          capsys):
    base = ["train", "--data", str(tiny_demo / "face_train.pickle"),
            str(tiny_demo / "train_gt.txt"), "--method", "knn", "--folds", "2",
            "--out", str(tmp_path / "run"), "--quiet"]
    assert main([*base, "--device", "cuda:99"]) == 2
    capsys.readouterr()
    assert not (tmp_path / "run").exists()
    assert main([*base, "--device", "cpu"]) == 0


def test_disk_full_during_train_is_one_line_naming_the_file(tiny_demo: Path, tmp_path: Path,
                                                            capsys, monkeypatch):
    import errno

    import core.atomic

    real_fsync, calls = os.fsync, []

    def full_disk(fd):
        calls.append(fd)
        if len(calls) > 6:  # the run starts, then the disk fills up
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_fsync(fd)

    monkeypatch.setattr(core.atomic.os, "fsync", full_disk)
    run = tmp_path / "run"
    rc = main(["train", "--data", str(tiny_demo / "face_train.pickle"),
               str(tiny_demo / "train_gt.txt"), "--method", "knn", "--folds", "2",
               "--out", str(run), "--quiet"])
    line = _check_one_line("train", rc, capsys.readouterr().err, ["no space left"], tmp_path)
    assert str(run) in line, line  # names the file it could not write
    assert not [p.name for p in run.rglob("*") if p.name.endswith(".tmp")], "temp files left"


def test_out_to_a_device_or_pipe_is_refused_and_left_alone(tmp_path: Path, capsys):
    # as root, a rename onto --out /dev/null would replace the device by a plain file
    import stat

    feats = _write_pickle(tmp_path / "feats.pickle", _videos())
    fifo = tmp_path / "out.fifo"
    os.mkfifo(fifo)
    rc = main(["pool", str(feats), "--out", str(fifo), "--quiet"])
    _check_one_line("pool", rc, capsys.readouterr().err, ["out.fifo", "not a regular file"],
                    tmp_path)
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert _leftovers(tmp_path, {"feats.pickle", "out.fifo"}) == []
