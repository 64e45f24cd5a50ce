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
