"""Every kind of bad input gives one clear error naming the file and the line/video."""

from __future__ import annotations

import os
import pickle
import time
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from core.errors import DataError
from core.io.formats import (check_ground_truth, read_features, read_ground_truth,
                          read_submission)

DIM = 512


def _frame(j: int = 0, *, feat=None, quality: float = 60.0, det: float = 0.99) -> list:
    if feat is None:
        feat = np.full(DIM, 0.5, np.float16)
    return [str(j).encode(), [1.0, 2.0, 3.0, 4.0], det, quality, feat]


def _good() -> dict:
    return {b"GOOD_A": [_frame(0), _frame(1)], b"GOOD_B": [_frame(0)]}


def _with(video: bytes, frames: list) -> dict:
    d = _good()
    d[video] = frames
    return d


def _pickle(tmp: Path, obj: object, name: str = "bad.pickle") -> Path:
    path = tmp / name
    path.write_bytes(pickle.dumps(obj, protocol=2))
    return path


def _text(tmp: Path, text: str, name: str) -> Path:
    path = tmp / name
    path.write_text(text)
    return path


def _features(obj) -> Callable[[Path], Callable[[], object]]:
    def build(tmp: Path):
        path = _pickle(tmp, obj)
        return lambda: read_features(path, cache_dir=tmp / "cache")
    return build


def _gt(text: str) -> Callable[[Path], Callable[[], object]]:
    def build(tmp: Path):
        path = _text(tmp, text, "gt.txt")
        return lambda: read_ground_truth(path)
    return build


def _gt_bytes(data: bytes) -> Callable[[Path], Callable[[], object]]:
    def build(tmp: Path):
        path = tmp / "gt.txt"
        path.write_bytes(data)
        return lambda: read_ground_truth(path)
    return build


def _sub(text: str) -> Callable[[Path], Callable[[], object]]:
    def build(tmp: Path):
        path = _text(tmp, text, "sub.txt")
        return lambda: read_submission(path)
    return build


def _raw_file(data: bytes) -> Callable[[Path], Callable[[], object]]:
    def build(tmp: Path):
        path = tmp / "bad.pickle"
        path.write_bytes(data)
        return lambda: read_features(path, cache_dir=tmp / "cache")
    return build


def _absent_from_features(tmp: Path):
    feats = _pickle(tmp, _good(), "feats.pickle")
    gt = _text(tmp, "GOOD_A.mp4 1\nMISSING_1.mp4 2\nGOOD_B.mp4 2\n", "gt.txt")
    return lambda: check_ground_truth(read_ground_truth(gt), read_features(feats).names,
                                      features_path=str(feats))


def _missing(tmp: Path):
    return lambda: read_features(tmp / "nope.pickle")


def _directory(tmp: Path):
    (tmp / "adir.pickle").mkdir()
    return lambda: read_features(tmp / "adir.pickle")


def _exponential_pickle() -> bytes:
    # 40 levels of lists that each hold the level below twice: 2**40 frames to walk
    level: list = [_frame(0)]
    for _ in range(40):
        level = [level, level]
    return pickle.dumps({b"V": level}, protocol=2)


def _fan_out_pickle() -> bytes:
    # one frame (and its 1 KB feature) referenced 500,000 times: ~1 MB of file
    return pickle.dumps({b"V": [_frame(0)] * 500_000}, protocol=2)


def _deep_pickle(depth: int = 1_000_000) -> bytes:
    # EMPTY_LIST x depth, then APPEND x (depth - 1): lists nested 1M deep in 2 MB
    return b"\x80\x02" + b"]" * depth + b"a" * (depth - 1) + b"."


def _special(kind: str, reader: str) -> Callable[[Path], Callable[[], object]]:
    def build(tmp: Path):
        if kind == "fifo":
            path = tmp / "fifo.pickle"
            os.mkfifo(path)
        else:
            path = Path(kind)
        read = {"features": lambda: read_features(path, cache_dir=tmp / "cache"),
                "gt": lambda: read_ground_truth(path),
                "submission": lambda: read_submission(path)}[reader]
        return read
    return build


GOOD_BYTES = pickle.dumps(_good(), protocol=2)
NAN16 = np.full(DIM, 0.5, np.float16)
NAN16[7] = np.nan
INF16 = np.full(DIM, 0.5, np.float16)
INF16[3] = np.inf

# id, builder(tmp) -> thunk, exception, fragments the message must contain
CASES = [
    ("missing file", _missing, FileNotFoundError, ["nope.pickle"]),
    ("directory", _directory, DataError, ["adir.pickle", "directory"]),
    ("empty file", _raw_file(b""), DataError, ["bad.pickle", "empty file"]),
    ("truncated pickle", _raw_file(GOOD_BYTES[: len(GOOD_BYTES) // 2]), DataError,
     ["bad.pickle", "not a valid pickle"]),
    ("not a pickle", _raw_file(b"hello, world\n"), DataError, ["bad.pickle"]),
    ("not a dict", _features([_frame(0)]), DataError, ["bad.pickle", "dict", "list"]),
    ("frames not a list", _features(_with(b"V", 5)), DataError, ["bad.pickle", "'V'", "int"]),
    ("frame not a list", _features(_with(b"V", [_frame(0), "x"])), DataError,
     ["bad.pickle", "video 'V' frame 1", "str"]),
    ("frame of wrong arity", _features(_with(b"V", [_frame(0), _frame(1)[:4]])), DataError,
     ["bad.pickle", "video 'V' frame 1", "5 fields", "got 4"]),
    ("feature wrong dim", _features(_with(b"V", [_frame(0, feat=np.zeros(256, np.float16))])),
     DataError, ["bad.pickle", "video 'V' frame 0", "256 values, expected 512"]),
    ("mixed dims in one video",
     _features({b"M": [_frame(0), _frame(1), _frame(2, feat=np.zeros(128, np.float16))]}),
     DataError, ["bad.pickle", "video 'M' frame 2", "128 values, expected 512"]),
    ("feature 2-d", _features(_with(b"V", [_frame(0, feat=np.zeros((2, 256), np.float16))])),
     DataError, ["bad.pickle", "video 'V' frame 0", "(2, 256)"]),
    ("feature of strings", _features(_with(b"V", [_frame(0, feat=np.array(["a"] * DIM))])),
     DataError, ["bad.pickle", "video 'V' frame 0", "dtype"]),
    ("feature a list", _features(_with(b"V", [_frame(0, feat=[0.5] * DIM)])), DataError,
     ["bad.pickle", "video 'V' frame 0", "list", "numpy array"]),
    ("NaN feature", _features(_with(b"V", [_frame(0), _frame(1, feat=NAN16)])), DataError,
     ["bad.pickle", "video 'V' frame 1", "non-finite", "nan"]),
    ("inf feature", _features(_with(b"V", [_frame(0, feat=INF16)])), DataError,
     ["bad.pickle", "video 'V' frame 0", "non-finite", "inf"]),
    ("NaN quality", _features(_with(b"V", [_frame(0), _frame(1, quality=float("nan"))])),
     DataError, ["bad.pickle", "video 'V' frame 1", "quality score is nan"]),
    ("absurd quality", _features(_with(b"V", [_frame(0, quality=1e6)])), DataError,
     ["bad.pickle", "video 'V' frame 0", "quality score 1e+06", "out of range"]),
    ("quality a string", _features(_with(b"V", [_frame(0, quality="60")])), DataError,
     ["bad.pickle", "video 'V' frame 0", "quality score must be a number", "'60'"]),
    ("inf detection score", _features(_with(b"V", [_frame(0, det=float("inf"))])), DataError,
     ["bad.pickle", "video 'V' frame 0", "detection score is inf"]),
    ("bbox of 3 numbers", _features(_with(b"V", [_frame(0)[:1] + [[1, 2, 3]] + _frame(0)[2:]])),
     DataError, ["bad.pickle", "video 'V' frame 0", "bbox", "[1, 2, 3]"]),
    ("frame number not a number", _features(_with(b"V", [[b"abc"] + _frame(0)[1:]])), DataError,
     ["bad.pickle", "video 'V' frame 0", "frame number", "abc"]),
    ("duplicate names bytes vs str", _features({b"X": [_frame(0)], "X.mp4": []}), DataError,
     ["bad.pickle", "b'X'", "'X.mp4'"]),
    ("video name not a string", _features({7: [_frame(0)]}), DataError, ["bad.pickle", "7"]),
    ("GT malformed line", _gt("a.mp4 1\nb.mp4\n"), DataError, ["gt.txt", "line 2", "'b.mp4'"]),
    ("GT malformed video_id line", _gt("a.mp4 1\nb.mp4 2 3\n"), DataError,
     ["gt.txt", "line 2", "'b.mp4 2 3'"]),
    ("GT non-integer ID", _gt("a.mp4 1\n\nb.mp4 two\n"), DataError,
     ["gt.txt", "line 3", "'two'", "not an integer"]),
    ("GT non-integer ID id_videos", _gt("1 a.mp4\nx2 b.mp4 c.mp4\n"), DataError,
     ["gt.txt", "line 2", "'x2'"]),
    ("GT ID < 1", _gt("a.mp4 1\nb.mp4 0\n"), DataError, ["gt.txt", "line 2", "0", ">= 1"]),
    ("GT ID < 1 id_videos", _gt("-3 a.mp4 b.mp4\n"), DataError, ["gt.txt", "line 1", "-3"]),
    ("GT video under two identities", _gt("1 a.mp4 b.mp4\n2 c.mp4 a.mp4\n"), DataError,
     ["gt.txt", "line 2", "'a'", "identity 2", "line 1", "under 1"]),
    ("GT mixed layouts", _gt("1 a.mp4 b.mp4\nc.mp4 2\n"), DataError,
     ["gt.txt", "line 2", "video_id", "id_videos"]),
    ("GT empty", _gt("\n  \n"), DataError, ["gt.txt", "empty"]),
    ("GT not UTF-8", _gt_bytes(b"a.mp4 1\n\xff\xfe 2\n"), DataError,
     ["gt.txt", "line 2", "UTF-8"]),
    ("GT video absent from features", _absent_from_features, DataError,
     ["gt.txt", "1 of 3", "'MISSING_1'", "feats.pickle"]),
    ("submission > 100 videos", _sub("1 a.mp4\n2 " + " ".join(f"v{i}.mp4" for i in range(101))),
     DataError, ["sub.txt", "line 2", "101 videos", "100"]),
    ("submission duplicate identity", _sub("1 a.mp4\n2 b.mp4\n1 c.mp4\n"), DataError,
     ["sub.txt", "line 3", "identity 1", "line 1"]),
    ("submission non-integer ID", _sub("1 a.mp4\nxx b.mp4\n"), DataError,
     ["sub.txt", "line 2", "'xx'"]),
    # --- hostile input (issue 12) ----------------------------------------------------
    ("pickle: shared lists, exponential walk", _raw_file(_exponential_pickle()), DataError,
     ["bad.pickle", "refused", "reference"]),
    ("pickle: one frame referenced 500,000 times", _raw_file(_fan_out_pickle()), DataError,
     ["bad.pickle", "refused", "referenced"]),
    ("pickle: lists nested 1,000,000 deep", _raw_file(_deep_pickle()), DataError,
     ["bad.pickle", "refused", "deeper than"]),
    ("features: a named pipe", _special("fifo", "features"), DataError,
     ["fifo.pickle", "named pipe", "regular"]),
    ("features: /dev/zero", _special("/dev/zero", "features"), DataError,
     ["/dev/zero", "character device"]),
    ("GT: a named pipe", _special("fifo", "gt"), DataError, ["fifo.pickle", "named pipe"]),
    ("GT: /dev/zero", _special("/dev/zero", "gt"), DataError, ["/dev/zero", "device"]),
    ("submission: a named pipe", _special("fifo", "submission"), DataError,
     ["fifo.pickle", "named pipe"]),
    ("submission: /dev/urandom", _special("/dev/urandom", "submission"), DataError,
     ["/dev/urandom", "device"]),
    ("GT ID beyond int64", _gt("a.mp4 1\nb.mp4 99999999999999999999\n"), DataError,
     ["gt.txt", "line 2", "out of range"]),
    ("GT 5-million-character line", _gt("a.mp4 1\n" + "v" * 5_000_000 + "\n"), DataError,
     ["gt.txt", "line 2", "5000000 chars"]),
    ("submission 5-million-character ID", _sub("x" * 5_000_000 + " a.mp4\n"), DataError,
     ["sub.txt", "line 1", "not an integer", "5000000 chars"]),
]


@pytest.mark.timeout(60)  # a pipe or an exploding pickle must not hang the suite
@pytest.mark.parametrize("build,exc,fragments", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_raises_clear_error(tmp_path, build, exc, fragments):
    thunk = build(tmp_path)
    t0 = time.perf_counter()
    with pytest.raises(exc) as info:
        thunk()
    assert time.perf_counter() - t0 < 20, "refused, but not quickly"
    msg = str(info.value)
    assert "\n" not in msg
    assert len(msg) <= 300, f"message of {len(msg)} characters"
    for fragment in fragments:
        assert fragment in msg, f"{fragment!r} not in {msg!r}"


def test_good_baseline_loads(tmp_path):
    # the fixtures the bad cases are cut from are themselves valid
    fs = read_features(_pickle(tmp_path, _good()), cache=False)
    assert fs.names.tolist() == ["GOOD_A", "GOOD_B"] and fs.n_frames == 3
