"""Pooling against a plain per-video NumPy reference, plus views, augmentation, storage."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import core.features.pooling as pooling
import core.features.segment_means as segment_means
from core.errors import DataError
from core.io.frames import FrameSet
from core.features.half_float import half_to_scaled_float32
from core.features import (
    VIEWS,
    augment_noise,
    frame_weights,
    load_pooled,
    pool_segments,
    pool_videos,
    pool_views,
    save_pooled,
)


def make_frameset(lengths, *, dim=16, seed=0, dtype=np.float16, quality=None) -> FrameSet:
    rng = np.random.default_rng(seed)
    lengths = np.asarray(lengths, dtype=np.int64)
    offsets = np.concatenate(([0], np.cumsum(lengths)))
    n = int(offsets[-1])
    q = rng.uniform(-30, 200, n).astype(np.float32) if quality is None else np.asarray(quality, np.float32)
    return FrameSet(
        names=np.array([f"v{i:04d}" for i in range(len(lengths))], dtype=object),
        offsets=offsets,
        feats=(rng.standard_normal((n, dim)) + 0.5).astype(dtype),
        quality=q,
        det=rng.uniform(0.5, 1.0, n).astype(np.float32),
        frame_no=np.arange(n, dtype=np.int32),
        bbox=np.zeros((n, 4), np.float32),
        source="mem",
    )


def reference_pool(fs, weighting="quality", min_quality=None, min_det=None):
    """The obvious per-video loop in float64: name -> unit vector."""
    out = {}
    for i, name in enumerate(fs.names):
        a, b = fs.offsets[i], fs.offsets[i + 1]
        if a == b:
            continue
        f = fs.feats[a:b].astype(np.float64)
        q = fs.quality[a:b].astype(np.float64)
        w = {"quality": np.maximum(q, 0), "quality2": np.maximum(q, 0) ** 2,
             "uniform": np.ones(b - a)}[weighting]
        ok = np.ones(b - a, bool)
        if min_quality is not None:
            ok &= q >= min_quality
        if min_det is not None:
            ok &= fs.det[a:b] >= min_det
        if ok.any():
            w = w * ok
        if w.sum() <= 0:
            w = np.ones(b - a)
        m = (w[:, None] * f).sum(0) / w.sum()
        out[name] = m / np.linalg.norm(m)
    return out


def ragged_lengths(n=400, seed=1):
    rng = np.random.default_rng(seed)
    lengths = rng.poisson(20, n)
    lengths[rng.random(n) < 0.08] = 0
    lengths[:3] = 0  # empty videos at the start ...
    lengths[-2:] = 0  # ... and at the end
    lengths[10] = 700  # one longer than a chunk
    return lengths


@pytest.mark.parametrize(
    "opts",
    [
        {},
        {"weighting": "quality2"},
        {"weighting": "uniform"},
        {"min_quality": 150.0},
        {"weighting": "quality2", "min_quality": 190.0, "min_det": 0.9},
        {"weighting": "uniform", "min_det": 0.97},
    ],
)
def test_pool_videos_matches_reference(opts, monkeypatch):
    monkeypatch.setattr(segment_means, "_CHUNK_FRAMES", 256)  # many chunks on small data
    fs = make_frameset(ragged_lengths())
    pv = pool_videos(fs, **opts)
    ref = reference_pool(fs, **opts)
    assert list(pv.names) == list(ref)
    np.testing.assert_allclose(pv.X, np.array([ref[n] for n in pv.names]), atol=2e-6)
    assert pv.empty == [n for i, n in enumerate(fs.names) if fs.lengths[i] == 0]
    assert np.isfinite(pv.X).all()
    np.testing.assert_allclose(np.linalg.norm(pv.X, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(pv.n_frames, fs.lengths[fs.lengths > 0])
    mean_q = [fs.quality[fs.offsets[i]:fs.offsets[i + 1]].mean() for i in np.flatnonzero(fs.lengths)]
    np.testing.assert_allclose(pv.mean_quality, mean_q, rtol=1e-5)
    assert pv.options["weighting"] == opts.get("weighting", "quality")


def test_zero_total_weight_falls_back_to_uniform():
    # video 0: all qualities negative (weight 0 everywhere) -> uniform mean
    fs = make_frameset([3, 2], quality=[-5, -1, -20, 50, 0])
    pv = pool_videos(fs)
    m = fs.feats[:3].astype(np.float64).mean(0)
    np.testing.assert_allclose(pv.X[0], m / np.linalg.norm(m), atol=1e-6)
    # video 1: only the first frame has weight
    f1 = fs.feats[3].astype(np.float64)
    np.testing.assert_allclose(pv.X[1], f1 / np.linalg.norm(f1), atol=1e-6)


def test_threshold_fallback_when_no_frame_passes():
    fs = make_frameset([2, 2], quality=[10, 20, 10, 100])
    w = frame_weights(fs.quality, fs.det, fs.offsets, min_quality=50)
    # video 0: nobody passes -> both keep their weight; video 1: only frame 3
    np.testing.assert_array_equal(w, [10, 20, 0, 100])


def test_float16_and_float32_agree_and_chunking_is_invisible(monkeypatch):
    fs16 = make_frameset(ragged_lengths(seed=3), seed=3)
    fs32 = make_frameset(ragged_lengths(seed=3), seed=3, dtype=np.float32)
    a = pool_videos(fs16).X
    monkeypatch.setattr(segment_means, "_CHUNK_FRAMES", 7)
    b = pool_videos(fs16).X
    np.testing.assert_allclose(a, b, atol=1e-6)
    c = pool_videos(fs32).X  # fs32 holds the un-rounded values: close, not equal
    np.testing.assert_allclose(a, c, atol=5e-3)


def test_fast_half_cast_is_exact_for_every_float16():
    h = np.arange(65536, dtype=np.uint16).view(np.float16).reshape(-1, 16)
    finite_rows = np.isfinite(h).all(axis=1)
    block, scale = half_to_scaled_float32(h[finite_rows])
    np.testing.assert_array_equal(block.astype(np.float64) * scale, h[finite_rows].astype(np.float64))
    assert np.array_equal(np.signbit(block), np.signbit(h[finite_rows]))  # -0.0 stays -0.0
    # a block holding inf / NaN takes NumPy's cast
    block, scale = half_to_scaled_float32(h[~finite_rows])
    assert scale == 1.0
    np.testing.assert_array_equal(block, h[~finite_rows].astype(np.float32))


def test_invalid_weighting_lists_options():
    fs = make_frameset([2])
    with pytest.raises(ValueError, match="quality, quality2, uniform"):
        pool_videos(fs, weighting="max")


def test_no_videos_and_all_empty():
    fs = make_frameset([])
    pv = pool_videos(fs)
    assert pv.X.shape == (0, 16) and pv.empty == []
    fs = make_frameset([0, 0])
    pv = pool_videos(fs)
    assert pv.X.shape == (0, 16) and pv.empty == ["v0000", "v0001"]


def test_progress_reaches_one(monkeypatch):
    monkeypatch.setattr(segment_means, "_CHUNK_FRAMES", 64)
    seen = []
    pool_videos(make_frameset(ragged_lengths()), progress=lambda f, m="": seen.append(f))
    assert seen and seen[-1] == 1.0 and seen == sorted(seen)


@settings(max_examples=40, deadline=None)
@given(
    lengths=st.lists(st.integers(0, 12), min_size=1, max_size=12),
    seed=st.integers(0, 10_000),
    weighting=st.sampled_from(pooling.WEIGHTINGS),
    min_quality=st.one_of(st.none(), st.floats(0, 150)),
)
def test_pooling_ignores_frame_order(lengths, seed, weighting, min_quality):
    fs = make_frameset(lengths, seed=seed)
    rng = np.random.default_rng(seed)
    # shuffle frames within each video
    perm = np.concatenate([a + rng.permutation(b - a) for a, b in zip(fs.offsets[:-1], fs.offsets[1:])]
                          + [np.zeros(0, np.int64)]).astype(np.int64)
    shuffled = FrameSet(names=fs.names, offsets=fs.offsets, feats=fs.feats[perm],
                        quality=fs.quality[perm], det=fs.det[perm], frame_no=fs.frame_no[perm],
                        bbox=fs.bbox[perm])
    a = pool_videos(fs, weighting=weighting, min_quality=min_quality)
    b = pool_videos(shuffled, weighting=weighting, min_quality=min_quality)
    assert list(a.names) == list(b.names)
    np.testing.assert_allclose(a.X, b.X, atol=1e-5)


# --------------------------------------------------------------------------- segments


def test_pool_segments_overlapping_unordered_equals_one_by_one():
    fs = make_frameset([40], seed=5)
    w = frame_weights(fs.quality, fs.det, fs.offsets)
    starts = np.array([10, 0, 5, 30, 7])
    ends = np.array([20, 40, 5, 31, 8])
    X, valid = pool_segments(fs.feats, w, starts, ends)
    assert valid.tolist() == [True, True, False, True, True]
    for j, (s, e) in enumerate(zip(starts, ends)):
        if s == e:
            assert not X[j].any()
            continue
        ww = w[s:e].astype(np.float64)
        ww = ww if ww.sum() > 0 else np.ones(e - s)
        m = (ww[:, None] * fs.feats[s:e].astype(np.float64)).sum(0)
        np.testing.assert_allclose(X[j], m / np.linalg.norm(m), atol=2e-6)


@pytest.mark.parametrize(
    "starts, ends, weights, match",
    [
        ([0], [11], None, "0 <= start <= end <= 10"),
        ([5], [4], None, "0 <= start <= end"),
        ([0], [2], -np.ones(10), "non-negative"),
        ([0, 1], [2], None, "equal 1-D shapes"),
    ],
)
def test_pool_segments_rejects_bad_input(starts, ends, weights, match):
    feats = np.ones((10, 4), np.float32)
    with pytest.raises(ValueError, match=match):
        pool_segments(feats, np.ones(10) if weights is None else weights, np.array(starts), np.array(ends))


# --------------------------------------------------------------------------- views


@pytest.mark.parametrize("n_folds", [2, 4])
def test_views_follow_their_definition(n_folds):
    lengths = [0, 1, 2, 3, 5, 8, 40]
    fs = make_frameset(lengths, seed=7)
    V = pool_views(fs, n_folds=n_folds, weighting="uniform")
    assert V.shape == (len(VIEWS), len(lengths), 16)
    for i, n in enumerate(lengths):
        if n == 0:
            assert not V[:, i].any()
            continue
        frames = fs.feats[fs.offsets[i]:fs.offsets[i + 1]].astype(np.float64)
        fold = n // n_folds
        pieces = {"full": frames, "drop_head": frames[fold:], "drop_tail": frames[:n - fold],
                  "middle": frames[fold:n - fold]}
        for v, view in enumerate(VIEWS):
            piece = pieces[view] if len(pieces[view]) else frames  # empty view -> full video
            m = piece.mean(0)
            np.testing.assert_allclose(V[v, i], m / np.linalg.norm(m), atol=2e-6, err_msg=f"{view} n={n}")
    # the full view is pool_videos; rows select videos
    pv = pool_videos(fs, weighting="uniform")
    np.testing.assert_allclose(V[0, 1:], pv.X, atol=1e-6)
    sub = pool_views(fs, rows=np.array([6, 4]), n_folds=n_folds, weighting="uniform")
    np.testing.assert_allclose(sub, V[:, [6, 4]], atol=1e-7)


def test_views_differ_on_long_videos():
    fs = make_frameset([40], seed=8)
    V = pool_views(fs)
    assert np.abs(V[1:] - V[0]).max() > 1e-3


# --------------------------------------------------------------------------- augmentation


def test_augment_noise_joins_and_cuts_as_documented():
    lengths = [5, 10, 49, 50, 120, 0, 80, 3]
    fs = make_frameset(lengths, seed=9)
    rows = np.arange(len(lengths))
    rng = np.random.default_rng(0)
    X, sources = augment_noise(fs, rows, rng=rng, n_join=20, n_cut=30, weighting="uniform")
    assert X.shape == (50, 16) and len(sources) == 50
    np.testing.assert_allclose(np.linalg.norm(X, axis=1), 1.0, atol=1e-5)
    short = {"v0000", "v0001", "v0002", "v0007"}
    long_ = {"v0003", "v0004", "v0006"}
    for x, src in zip(X, sources):
        if src.startswith("join:"):
            a, b = src[5:].split("+")
            assert a in short and b in short and a != b
            ia, ib = fs.index_of(a), fs.index_of(b)
            frames = np.concatenate([fs.feats[fs.offsets[i]:fs.offsets[i + 1]] for i in (ia, ib)])
        else:
            m = re.fullmatch(r"cut:(\w+)\[(\d+):(\d+)\]", src)
            assert m, src
            name, s, e = m.group(1), int(m.group(2)), int(m.group(3))
            assert name in long_
            n = fs.lengths[fs.index_of(name)]
            assert 0 <= s < e <= n and 0.3 * n - 1 <= e - s <= 0.7 * n + 1
            a = fs.offsets[fs.index_of(name)]
            frames = fs.feats[a + s:a + e]
        mean = frames.astype(np.float64).mean(0)
        np.testing.assert_allclose(x, mean / np.linalg.norm(mean), atol=2e-6, err_msg=src)
    assert sum(s.startswith("join:") for s in sources) == 20


def test_augment_noise_is_seeded_and_degrades_gracefully():
    fs = make_frameset([60, 70, 5], seed=10)
    a = augment_noise(fs, np.arange(3), rng=np.random.default_rng(1), n_join=4, n_cut=4)
    b = augment_noise(fs, np.arange(3), rng=np.random.default_rng(1), n_join=4, n_cut=4)
    assert a[1] == b[1] and np.array_equal(a[0], b[0])
    # only one short video: no joins possible
    assert not any(s.startswith("join:") for s in a[1]) and len(a[1]) == 4
    X, src = augment_noise(fs, np.array([2]), rng=np.random.default_rng(1), n_join=3, n_cut=3)
    assert X.shape == (0, 16) and src == []


# --------------------------------------------------------------------------- storage


def test_save_load_round_trip(tmp_path):
    fs = make_frameset(ragged_lengths(n=50), seed=11)
    pv = pool_videos(fs, weighting="quality2", min_quality=10.0)
    path = tmp_path / "p.parquet"
    save_pooled(pv, path)
    back = load_pooled(path)
    assert list(back.names) == list(pv.names)
    np.testing.assert_array_equal(back.X, pv.X)
    np.testing.assert_array_equal(back.n_frames, pv.n_frames)
    np.testing.assert_array_equal(back.mean_quality, pv.mean_quality)
    assert back.empty == pv.empty and back.options == pv.options
    assert back.index_of("v0020.mp4") == list(pv.names).index("v0020")
    assert [p.name for p in tmp_path.iterdir()] == ["p.parquet"]  # no temp file left


def test_load_pooled_rejects_other_files(tmp_path):
    bad = tmp_path / "x.parquet"
    bad.write_text("not parquet")
    with pytest.raises(DataError, match="x.parquet"):
        load_pooled(bad)


@pytest.mark.parametrize("field", ["min_quality", "min_det"])
@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_threshold_is_refused(field, value):
    with pytest.raises(ValueError, match=field):
        frame_weights(np.ones(3, np.float32), np.ones(3, np.float32), np.array([0, 3]),
                      **{field: value})
