"""core.learn.knn against a scikit-learn NearestNeighbors(metric="cosine") brute-force reference."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.neighbors import NearestNeighbors

import core.learn.knn as knn
from core.learn.knn import knn_scores, nearest_labelled


def _data(seed: int = 0, n: int = 240, d: int = 12, n_ids: int = 8, unit: bool = True):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_ids, d))
    ids = rng.integers(0, n_ids + 1, size=n)  # 0 = distractor
    X = rng.normal(size=(n, d)) + 2.0 * np.where(ids[:, None] > 0, centres[np.maximum(ids, 1) - 1], 0)
    if unit:
        X /= np.linalg.norm(X, axis=1, keepdims=True)
    return X.astype(np.float32), ids


def _sklearn_scores(Xq, Xref, ref_ids, identity_ids, k, agg, exclude_self=None):
    """Per identity, sklearn brute-force cosine neighbours; -1 (or -k) when none."""
    fill = -float(k) if agg == "sum" else -1.0
    out = np.full((len(Xq), len(identity_ids)), fill)
    for c, ident in enumerate(identity_ids):
        rows = np.flatnonzero(ref_ids == ident)
        for q in range(len(Xq)):
            use = rows if exclude_self is None else rows[rows != exclude_self[q]]
            if use.size == 0:
                continue
            nn = NearestNeighbors(n_neighbors=min(k, use.size), metric="cosine", algorithm="brute")
            dist, _ = nn.fit(Xref[use]).kneighbors(Xq[q:q + 1])
            sims = 1.0 - dist[0]
            out[q, c] = {"mean": sims.mean(), "max": sims.max(), "sum": sims.sum()}[agg]
    return out


def _sklearn_scores_fast(Xq, Xref, ref_ids, identity_ids, k, agg):
    fill = -float(k) if agg == "sum" else -1.0
    out = np.full((len(Xq), len(identity_ids)), fill)
    for c, ident in enumerate(identity_ids):
        R = Xref[ref_ids == ident]
        if len(R) == 0:
            continue
        dist, _ = NearestNeighbors(n_neighbors=min(k, len(R)), metric="cosine",
                                   algorithm="brute").fit(R).kneighbors(Xq)
        sims = 1.0 - dist
        out[:, c] = {"mean": sims.mean(1), "max": sims.max(1), "sum": sims.sum(1)}[agg]
    return out


@pytest.mark.parametrize("agg", ["mean", "max", "sum"])
@pytest.mark.parametrize("k", [1, 3, 20])
def test_matches_sklearn_per_identity(agg, k):
    X, ids = _data()
    # 99 has no reference at all; identity 8 is dropped to a single reference.
    ids[np.flatnonzero(ids == 8)[1:]] = 0
    identity_ids = np.array([3, 1, 2, 4, 5, 6, 7, 8, 99])
    Xq, Xref, ref_ids = X[:60], X[60:], ids[60:]
    got = knn_scores(Xq, Xref, ref_ids, identity_ids, k=k, agg=agg)
    want = _sklearn_scores_fast(Xq, Xref, ref_ids, identity_ids, k, agg)
    assert got.shape == (60, 9) and got.dtype == np.float32
    np.testing.assert_allclose(got, want, atol=2e-6 * k)
    assert np.all(got[:, -1] == (-k if agg == "sum" else -1))


def test_exclude_self_matches_leave_one_out():
    X, ids = _data(seed=1, n=70)
    identity_ids = np.arange(1, 9)
    got = knn_scores(X, X, ids, identity_ids, k=3, exclude_self=True)
    want = _sklearn_scores(X, X, ids, identity_ids, 3, "mean", exclude_self=np.arange(len(X)))
    np.testing.assert_allclose(got, want, atol=1e-5)
    # Without exclusion a labelled video sees itself: similarity 1 under max.
    lab = ids > 0
    mx = knn_scores(X, X, ids, identity_ids, k=1, agg="max")
    np.testing.assert_allclose(mx[lab, ids[lab] - 1], 1.0, atol=1e-6)
    mx_ex = knn_scores(X, X, ids, identity_ids, k=1, agg="max", exclude_self=True)
    assert np.all(mx_ex[lab, ids[lab] - 1] < 1.0 - 1e-4)


def test_exclude_self_index_array():
    X, ids = _data(seed=2, n=150)
    Xq, Xref, ref_ids = X[:50], X, ids
    self_rows = np.where(np.arange(50) % 3 == 0, np.arange(50), -1)  # some queries are refs
    got = knn_scores(Xq, Xref, ref_ids, np.arange(1, 9), k=4, agg="sum", exclude_self=self_rows)
    want = _sklearn_scores(Xq, Xref, ref_ids, np.arange(1, 9), 4, "sum", exclude_self=self_rows)
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_blocked_equals_unblocked(monkeypatch):
    X, ids = _data(seed=3, n=300)
    full = knn_scores(X[:100], X[100:], ids[100:], np.arange(1, 9), k=5, block=100_000)
    # Equal up to float rounding: BLAS sums a 1-row product in another order.
    for block in (1, 7, 64):
        np.testing.assert_allclose(
            knn_scores(X[:100], X[100:], ids[100:], np.arange(1, 9), k=5, block=block), full,
            rtol=0, atol=1e-6)
    # The memory cap also shrinks blocks when references are many.
    monkeypatch.setattr(knn, "_BLOCK_ELEMS", 500)
    np.testing.assert_allclose(knn_scores(X[:100], X[100:], ids[100:], np.arange(1, 9), k=5), full,
                               rtol=0, atol=1e-6)
    idx_full, sim_full = nearest_labelled(X[:100], X[100:], 6, block=100_000)
    idx_b, sim_b = nearest_labelled(X[:100], X[100:], 6, block=3)
    np.testing.assert_allclose(sim_b, sim_full, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(idx_b, idx_full)


def test_non_unit_rows_are_cosine_like_sklearn():
    X, ids = _data(seed=4, unit=False)
    X = X * np.random.default_rng(0).uniform(0.1, 30, size=(len(X), 1)).astype(np.float32)
    X[5] = 0.0  # a zero row: cosine similarity 0 to everything, as in scikit-learn
    got = knn_scores(X[:40], X[40:], ids[40:], np.arange(1, 9), k=2)
    want = _sklearn_scores_fast(X[:40], X[40:], ids[40:], np.arange(1, 9), 2, "mean")
    np.testing.assert_allclose(got, want, atol=1e-5)
    np.testing.assert_allclose(got[5], 0.0, atol=1e-7)


def test_reference_order_does_not_matter_and_input_untouched():
    X, ids = _data(seed=5)
    Xq, Xref, ref_ids = X[:30], X[30:].copy(), ids[30:].copy()
    before = Xref.copy()
    a = knn_scores(Xq, Xref, ref_ids, np.arange(1, 9), k=3)
    perm = np.random.default_rng(1).permutation(len(Xref))
    b = knn_scores(Xq, Xref[perm], ref_ids[perm], np.arange(1, 9), k=3)
    np.testing.assert_allclose(a, b, atol=1e-6)
    np.testing.assert_array_equal(Xref, before)


def test_planted_identity_wins():
    X, ids = _data(seed=6, n=400, d=32)
    lab = np.flatnonzero(ids > 0)
    S = knn_scores(X[lab], X[lab], ids[lab], np.arange(1, 9), k=3, exclude_self=True)
    accuracy = np.mean(S.argmax(1) + 1 == ids[lab])
    assert accuracy > 0.9


def test_nearest_labelled_matches_sklearn():
    X, _ = _data(seed=7)
    Xq, Xref = X[:50], X[50:]
    idx, sim = nearest_labelled(Xq, Xref, 7)
    dist, ref_idx = NearestNeighbors(n_neighbors=7, metric="cosine", algorithm="brute").fit(Xref).kneighbors(Xq)
    np.testing.assert_allclose(sim, 1 - dist, atol=1e-6)
    assert np.mean(idx == ref_idx) > 0.99  # ties aside, the same neighbours
    assert np.all(np.diff(sim, axis=1) <= 0)
    # k larger than the references: all of them, sorted.
    idx2, sim2 = nearest_labelled(Xq[:3], Xref[:4], 10)
    assert idx2.shape == (3, 4) and sorted(idx2[0]) == [0, 1, 2, 3]


def test_nearest_labelled_exclude_self():
    X, _ = _data(seed=8, n=60)
    idx, sim = nearest_labelled(X, X, 3, exclude_self=True)
    assert not np.any(idx == np.arange(60)[:, None])
    dist, ref_idx = NearestNeighbors(n_neighbors=4, metric="cosine", algorithm="brute").fit(X).kneighbors(X)
    np.testing.assert_allclose(sim, 1 - dist[:, 1:], atol=1e-6)
    # Two references, self excluded: the missing slot is -1 / -inf.
    idx2, sim2 = nearest_labelled(X[:2], X[:2], 2, exclude_self=True)
    assert idx2[:, 1].tolist() == [-1, -1] and np.all(np.isneginf(sim2[:, 1]))


def test_hand_computed():
    Xref = np.array([[1, 0], [0, 1], [0.6, 0.8], [0.8, 0.6]], dtype=np.float32)
    q = np.array([[1.0, 0.0]], dtype=np.float32)
    ids = np.array([1, 2, 2, 2])
    assert knn_scores(q, Xref, ids, [1, 2], k=2, agg="mean")[0].tolist() == pytest.approx([1.0, 0.7])
    assert knn_scores(q, Xref, ids, [1, 2], k=2, agg="sum")[0].tolist() == pytest.approx([1.0, 1.4])
    assert knn_scores(q, Xref, ids, [1, 2], k=5, agg="max")[0].tolist() == pytest.approx([1.0, 0.8])
    assert knn_scores(q, Xref, ids, [2, 1], k=3)[0].tolist() == pytest.approx([(0.6 + 0.8 + 0.0) / 3, 1.0])


def test_empty_inputs():
    X, ids = _data(seed=9, n=20)
    assert knn_scores(X[:0], X, ids, [1, 2]).shape == (0, 2)
    out = knn_scores(X[:3], X, np.zeros(20, int), [1, 2], fill=-5.0)
    assert np.all(out == -5.0)


@pytest.mark.parametrize("kwargs, match", [
    ({"agg": "median"}, "unknown agg 'median'"),
    ({"k": 0}, "k must be an int >= 1"),
    ({"block": 0}, "block must be an int >= 1"),
    ({"exclude_self": True}, "same videos"),
    ({"exclude_self": np.array([1, 2])}, "exclude_self must be"),
])
def test_bad_options(kwargs, match):
    X, ids = _data(n=30)
    with pytest.raises(ValueError, match=match):
        knn_scores(X[:5], X, ids, [1, 2], **kwargs)


def test_bad_arrays():
    X, ids = _data(n=30)
    with pytest.raises(ValueError, match="dimension 12 but Xref has 5"):
        knn_scores(X, X[:, :5], ids, [1])
    Y = X.copy()
    Y[7, 2] = np.nan
    with pytest.raises(ValueError, match="Xref row 7 holds NaN"):
        knn_scores(X, Y, ids, [1])
    with pytest.raises(ValueError, match="duplicates"):
        knn_scores(X, X, ids, [1, 1])
    with pytest.raises(ValueError, match="ref_ids must have shape"):
        knn_scores(X, X, ids[:3], [1])
    with pytest.raises(TypeError, match="must hold floats"):
        knn_scores(X.astype(int), X, ids, [1])


def test_iter_blocks_concatenate_to_knn_scores():
    from core.learn.knn import iter_knn_scores

    X, ids = _data(seed=10, n=200)
    full = knn_scores(X, X, ids, np.arange(1, 9), k=3, exclude_self=True)
    blocks = list(iter_knn_scores(X, X, ids, np.arange(1, 9), k=3, exclude_self=True, block=64))
    assert [b[0] for b in blocks] == [slice(0, 64), slice(64, 128), slice(128, 192), slice(192, 200)]
    np.testing.assert_allclose(np.concatenate([b[1] for b in blocks]), full, rtol=0, atol=1e-6)


def test_memory_stays_bounded(monkeypatch):
    """Peak allocation follows the block budget, not n_queries x n_refs."""
    import tracemalloc

    rng = np.random.default_rng(11)
    n_q, n_ref, d = 3000, 4000, 8
    Xq = rng.normal(size=(n_q, d)).astype(np.float32)
    Xref = rng.normal(size=(n_ref, d)).astype(np.float32)
    Xq /= np.linalg.norm(Xq, axis=1, keepdims=True)
    Xref /= np.linalg.norm(Xref, axis=1, keepdims=True)
    ref_ids = rng.integers(1, 21, size=n_ref)
    monkeypatch.setattr(knn, "_BLOCK_ELEMS", 1 << 16)  # 256 KB blocks
    full_matrix = n_q * n_ref * 4  # 48 MB
    for fn in (lambda: knn_scores(Xq, Xref, ref_ids, np.arange(1, 21), k=5),
               lambda: nearest_labelled(Xq, Xref, 5)):
        tracemalloc.start()
        fn()
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        # output (3000 x 20 float32) + sorted reference copy + a few blocks: ~1-2 MB
        assert peak < full_matrix / 10, peak


def test_near_unit_float16_rows_rank_exactly_like_sklearn_cosine():
    # Unit vectors stored as float16 have norms within ~1e-4 of 1: vidid must still
    # normalise them (skipping it shifted cosines by ~1e-4 and flipped rankings).
    rng = np.random.default_rng(5)
    d, n_ref, n_q, k = 512, 1500, 40, 25
    centre = rng.normal(size=d)
    Xref = centre + 0.06 * rng.normal(size=(n_ref, d))  # near ties everywhere
    Xq = centre + 0.06 * rng.normal(size=(n_q, d))
    scale = lambda X: X / np.linalg.norm(X, axis=1, keepdims=True) * (  # noqa: E731
        1 + rng.uniform(-4e-5, 4e-5, size=(len(X), 1)))
    Xref, Xq = scale(Xref).astype(np.float16), scale(Xq).astype(np.float16)
    norms = np.linalg.norm(np.vstack([Xref, Xq]).astype(np.float64), axis=1)
    assert np.abs(norms - 1).max() < 1e-4  # the band that used to skip normalising
    idx, sim = nearest_labelled(Xq, Xref, k=k)
    nn = NearestNeighbors(n_neighbors=k, metric="cosine", algorithm="brute").fit(Xref)
    dist, ref_idx = nn.kneighbors(Xq)
    # equal rankings wherever sklearn's own gaps are above float32 resolution
    gaps = np.diff(dist, axis=1)
    clear = np.ones_like(idx, dtype=bool)
    clear[:, 1:] &= gaps > 1e-6
    clear[:, :-1] &= gaps > 1e-6
    assert clear.mean() > 0.5
    np.testing.assert_array_equal(idx[clear], ref_idx[clear])
    np.testing.assert_allclose(sim, 1.0 - dist, atol=2e-6)


def test_huge_float32_rows_normalise_without_overflow():
    X = np.full((3, 512), 3e38, np.float32)
    X[1] *= -1
    idx, sim = nearest_labelled(X[:1], X, k=3)
    assert np.isfinite(sim).all() and sim[0, 0] == pytest.approx(1.0)
    assert sim[0, -1] == pytest.approx(-1.0)
