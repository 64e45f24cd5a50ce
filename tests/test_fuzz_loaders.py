"""Fuzzing the loaders: junk and mutated files only ever raise DataError/TypeError.

Each test counts the examples it ran and the outcomes, stores them with
``record_property`` (visible in ``--junitxml`` reports) and prints them (``-s``).
"""

from __future__ import annotations

import pickle
from collections import Counter
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from core.errors import DataError
from core.io.formats import read_features, read_ground_truth, read_submission
from core.io.frames import FrameSet, frameset_from_videos, load_frameset, save_frameset

MAX_EXAMPLES = 200
FUZZ = settings(max_examples=MAX_EXAMPLES, deadline=timedelta(seconds=5), database=None,
                derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])


def _valid_pickle(protocol: int) -> bytes:
    rng = np.random.default_rng(0)
    videos = {b"VA": [[b"1", [0.0, 1.0, 2.0, 3.0], 0.99, np.float32(55.0),
                       rng.standard_normal(8).astype(np.float16)],
                      [b"2", [0.0, 1.0, 2.0, 3.0], 0.98, 61.5,
                       rng.standard_normal(8).astype(np.float16)]],
              "VB.mp4": [],
              b"VC": [[b"9", [4.0, 5.0, 6.0, 7.0], 0.91, -3.0,
                       rng.standard_normal(8).astype(np.float16)]]}
    return pickle.dumps(videos, protocol=protocol)


VALID_PICKLES = [_valid_pickle(2), _valid_pickle(4)]
VALID_GT = [b"A.mp4 1\nB.mp4 2\r\nC.mp4 1\n", b"1 A.mp4 C.mp4\n\n2 B.mp4 D.mp4 \n"]
VALID_SUB = b"1 A.mp4 B.mp4\n2 C.mp4\n3\n"

_EDIT = st.tuples(st.floats(0, 1, exclude_max=True),
                  st.sampled_from(["flip", "set", "delete", "insert", "truncate"]),
                  st.integers(0, 255))


def _mutate(data: bytes, edits: list[tuple[float, str, int]]) -> bytes:
    buf = bytearray(data)
    for where, op, value in edits:
        if not buf:
            break
        i = int(where * len(buf))
        if op == "flip":
            buf[i] ^= 1 << (value % 8)
        elif op == "set":
            buf[i] = value
        elif op == "delete":
            del buf[i]
        elif op == "insert":
            buf.insert(i, value)
        else:
            del buf[i:]
    return bytes(buf)


def _run(loader, path: Path, data: bytes, counts: Counter) -> None:
    path.write_bytes(data)
    try:
        result = loader(path)
    except (DataError, TypeError) as exc:
        assert str(path.name) in str(exc), f"error does not name the file: {exc}"
        outcome = type(exc).__name__
    else:
        outcome = "loaded"
        if isinstance(result, FrameSet):  # whatever loads is internally consistent
            assert result.n_frames == len(result.feats) and np.isfinite(
                np.asarray(result.feats, np.float32)).all()
    counts[outcome] += 1
    event(outcome)


def _report(name: str, counts: Counter, record_property) -> None:
    total = sum(counts.values())
    record_property(f"{name}_examples", total)
    record_property(f"{name}_outcomes", dict(counts))
    print(f"\n{name}: {total} examples, outcomes {dict(counts)}")
    assert total >= MAX_EXAMPLES // 2


def _features(path: Path) -> FrameSet:
    return read_features(path, cache=False)


@pytest.mark.timeout(120)
def test_random_bytes_as_features(tmp_path, record_property):
    counts: Counter = Counter()

    @FUZZ
    @given(data=st.one_of(st.binary(max_size=400),
                          st.binary(max_size=200).map(lambda b: b"\x80\x02" + b)))
    def check(data):
        _run(_features, tmp_path / "random.pickle", data, counts)

    check()
    _report("random_pickle", counts, record_property)


@pytest.mark.timeout(120)
def test_mutated_pickles(tmp_path, record_property):
    counts: Counter = Counter()

    @FUZZ
    @given(base=st.sampled_from(VALID_PICKLES), edits=st.lists(_EDIT, min_size=1, max_size=4))
    def check(base, edits):
        _run(_features, tmp_path / "mutated.pickle", _mutate(base, edits), counts)

    check()
    _report("mutated_pickle", counts, record_property)
    assert counts["loaded"] + counts["DataError"] + counts["TypeError"] == sum(counts.values())


@pytest.mark.timeout(120)
def test_mutated_ground_truth_and_submissions(tmp_path, record_property):
    counts: Counter = Counter()

    @FUZZ
    @given(which=st.integers(0, 2), edits=st.lists(_EDIT, min_size=1, max_size=4))
    def check(which, edits):
        base = (VALID_GT + [VALID_SUB])[which]
        loader = read_submission if which == 2 else read_ground_truth
        _run(loader, tmp_path / f"text{which}.txt", _mutate(base, edits), counts)

    check()
    _report("mutated_text", counts, record_property)


@pytest.mark.timeout(120)
def test_mutated_frameset_npz(tmp_path, record_property):
    rng = np.random.default_rng(1)
    fs = frameset_from_videos({f"V{i}": [[str(j), [0, 0, 1, 1], 0.9, 50.0,
                                          rng.standard_normal(64).astype(np.float16)]
                                         for j in range(3)] for i in range(4)}, source="s")
    save_frameset(fs, tmp_path / "base.npz")
    base = (tmp_path / "base.npz").read_bytes()
    counts: Counter = Counter()

    @FUZZ
    @given(edits=st.lists(_EDIT, min_size=1, max_size=3))
    def check(edits):
        # a corrupt cache entry: load_frameset must fail cleanly (or load something valid)
        def loader(path):
            out = load_frameset(path)  # values are not re-validated: the cache is ours
            return out.select(np.arange(out.n_videos)).n_frames
        try:
            _run(loader, tmp_path / "mutated.npz", _mutate(base, edits), counts)
        except AssertionError:
            raise
        except ValueError as exc:  # FrameSet.__post_init__ is a ValueError too: must be DataError
            raise AssertionError(f"non-DataError ValueError: {exc!r}") from None

    check()
    _report("mutated_npz", counts, record_property)


# --------------------------------------------------------------------------- hostile shapes
def _hostile_pickle(kind: str, size: int, field: int) -> bytes:
    """Small pickles shaped to explode once loaded or walked (issue 12)."""
    feat = np.full(8, 0.5, np.float16)
    frame = [b"1", [0.0, 1.0, 2.0, 3.0], 0.9, 50.0, feat]
    if kind == "shared":  # 2**size frames to walk
        level: list = [frame]
        for _ in range(size):
            level = [level, level]
        return pickle.dumps({b"V": level}, protocol=2)
    if kind == "fan-out":  # one frame (its 1 KB feature) referenced 20k-60k times
        big = frame[:4] + [np.full(512, 0.5, np.float16)]
        return pickle.dumps({b"V": [big] * (1000 * size)}, protocol=2)
    if kind == "deep":  # EMPTY_LIST x n, APPEND x (n - 1)
        n = 10_000 * size
        return b"\x80\x02" + b"]" * n + b"a" * (n - 1) + b"."
    if kind == "deep dict":  # nesting through dicts inside a frame
        n = 1000 * size
        return b"\x80\x02}q\x00U\x01V]" + b"}U\x01k" * n + b"N" + b"s" * n + b"as."
    if kind == "big number":  # an int far beyond float/int64 in one numeric field
        bad = list(frame)
        bad[field] = 10 ** (300 + 20 * size) if field != 1 else [0, 1, 10 ** (300 + size), 3]
        return pickle.dumps({b"V": [frame, bad]}, protocol=2)
    if kind == "huge float32":
        bad = list(frame)
        bad[4] = np.full(8, 10.0 ** (16 + size % 22), np.float32)
        return pickle.dumps({b"V": [bad]}, protocol=2)
    raise AssertionError(kind)


@pytest.mark.timeout(300)
def test_hostile_pickles_are_refused_quickly(tmp_path, record_property):
    import resource
    import time

    counts: Counter = Counter()
    peak0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    @settings(max_examples=40, deadline=timedelta(seconds=10), database=None, derandomize=True,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(kind=st.sampled_from(["shared", "fan-out", "deep", "deep dict", "big number",
                                 "huge float32"]),
           size=st.integers(20, 60), field=st.sampled_from([1, 2, 3]))
    def check(kind, size, field):
        path = tmp_path / "hostile.pickle"
        path.write_bytes(_hostile_pickle(kind, size, field))
        t0 = time.perf_counter()
        with pytest.raises(DataError) as info:
            read_features(path, cache=False)
        assert time.perf_counter() - t0 < 5, f"{kind} {size}: refused, but slowly"
        msg = str(info.value)
        assert "hostile.pickle" in msg and "\n" not in msg and len(msg) <= 300, msg
        counts[kind] += 1
        event(kind)

    check()
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak0) / 1024
    record_property("hostile_outcomes", dict(counts))
    print(f"\nhostile pickles: {dict(counts)}, peak memory grew {grown_mib:.0f} MiB")
    assert sum(counts.values()) >= 20 and len(counts) == 6
    assert grown_mib < 1024, f"peak memory grew {grown_mib:.0f} MiB"


def _read_json_of_a_run(path: Path):
    from core.runs.files import read_json

    return read_json(path)


LOADERS = {"features": _features, "ground truth": read_ground_truth,
           "submission": read_submission, "columnar cache": load_frameset,
           "run JSON": _read_json_of_a_run}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("kind", ["named pipe", "/dev/zero", "/dev/urandom", "/dev/null",
                                  "directory"])
@pytest.mark.parametrize("loader", sorted(LOADERS))
def test_every_loader_refuses_special_files(kind: str, loader: str, tmp_path):
    import os
    import time

    if kind == "named pipe":
        path = tmp_path / "in.fifo"
        os.mkfifo(path)
    elif kind == "directory":
        path = tmp_path / "in.dir"
        path.mkdir()
    else:
        path = Path(kind)
    t0 = time.perf_counter()
    with pytest.raises(DataError) as info:
        LOADERS[loader](path)
    assert time.perf_counter() - t0 < 5
    assert path.name in str(info.value) and ("regular" in str(info.value)
                                             or "directory" in str(info.value))
