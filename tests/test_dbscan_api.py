"""core.cluster.sklearn_api / core.cluster.radius_exact: label for label equal to sklearn.cluster.DBSCAN.

The fuzz draws data whose pair distances are exactly representable or not (decimal
steps, integers, booleans, float16/32/64, C or Fortran order), in 1 to 512 dimensions,
and eps *on* a pair's distance (computed the tree's way, the Gram way, rounded to
float32, or one or two ulps off), so that every neighbourhood decision at the boundary
is exercised. Without the exact boundary decisions the fuzz and the first issue case fail.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import sparse
from sklearn.cluster import DBSCAN as SkDBSCAN
from sklearn.metrics import pairwise_distances

from core.cluster import DBSCAN, NeighborGraph, dbscan
from core.cluster.radius_exact import SklearnRadius, resolve_path


def _same(ours, ref) -> None:
    np.testing.assert_array_equal(ours.labels_, ref.labels_)
    np.testing.assert_array_equal(ours.core_sample_indices_, ref.core_sample_indices_)


def _boundary_eps(rng: np.random.Generator, X: np.ndarray) -> float:
    """An eps lying on (or an ulp or two beside) the distance of a random pair."""
    i, j = rng.integers(0, X.shape[0], 2)
    a, b = X[i].astype(np.float64), X[j].astype(np.float64)
    kind = rng.integers(0, 3)
    if kind == 0:
        eps = float(np.sqrt(((a - b) ** 2).sum()))
    elif kind == 1:
        eps = float(np.sqrt(max((a * a).sum() + (b * b).sum() - 2 * (a @ b), 0.0)))
    else:
        eps = float(np.float32(np.sqrt(((a - b) ** 2).sum())))
    for _ in range(int(rng.integers(0, 3))):
        eps = float(np.nextafter(eps, rng.choice([0.0, np.inf])))
    return eps


def _fuzz_data(rng: np.random.Generator) -> np.ndarray:
    n = int(rng.choice([2, 5, 11, 12, 30, 80]))
    d = int(rng.choice([1, 2, 3, 7, 15, 16, 33, 128, 512]))
    dtype = str(rng.choice(["float16", "float32", "float64", "int64", "int32", "uint8", "bool"]))
    if dtype[0] in "iub":
        X = rng.integers(0, 6 if dtype != "bool" else 2, (n, d)).astype(dtype)
    else:
        step = float(rng.choice([0.1, 0.3, 1.7, 1e-3]))
        X = (rng.integers(-9, 10, (n, d)) * step).astype(dtype)
    # Fortran order: scikit-learn then queries with a copy of what it fitted.
    return np.asfortranarray(X) if rng.random() < 0.25 else X


def test_fuzz_labels_equal_sklearn_at_pair_distances():
    rng = np.random.default_rng(12)
    n_cases = 0
    for _ in range(70):
        X = _fuzz_data(rng)
        m = int(rng.integers(1, 5))
        for _ in range(3):
            eps = _boundary_eps(rng, X)
            if not eps > 0:
                continue
            ref = SkDBSCAN(eps=eps, min_samples=m).fit(X)
            _same(DBSCAN(eps=eps, min_samples=m).fit(X), ref)
            n_cases += 1
    assert n_cases >= 180


def test_fuzz_graph_requeries_equal_sklearn():
    """One graph, many boundary eps: the re-clustering path gives sklearn's labels too."""
    rng = np.random.default_rng(1)
    for _ in range(16):
        X = _fuzz_data(rng)
        eps_values = [e for e in (_boundary_eps(rng, X) for _ in range(8)) if e > 0]
        if not eps_values:
            continue
        graph = NeighborGraph.build(X, max_eps=max(eps_values))
        for eps in eps_values:
            for m in (1, 2, 3, 4, 6):
                labels, core = graph.dbscan(eps, m, return_core=True)
                ref = SkDBSCAN(eps=eps, min_samples=m).fit(X)
                np.testing.assert_array_equal(labels, ref.labels_)
                np.testing.assert_array_equal(np.flatnonzero(core), ref.core_sample_indices_)


# ---------------------------------------------------------------- the cases of issue 12
@pytest.mark.parametrize("X, eps", [
    (np.array([[0, 0.4], [0.1, 0.4]]), 0.1),                    # brute, float64, at eps
    (np.array([[0, 0], [1, 1]]), np.sqrt(2)),                    # integers at sqrt(2)
    (np.array([[2**25], [2**25 + 1], [0]] * 5, dtype=np.int64), 0.5),  # ints beyond float32
    ((np.arange(24).reshape(12, 2) * 0.1).astype(np.float32), 0.1),   # float32 kd-tree
    ((np.arange(40).reshape(20, 2) * 0.3).astype(np.float16), 0.3),
])
def test_issue_cases(X, eps):
    for m in (1, 2, 3):
        _same(DBSCAN(eps=eps, min_samples=m).fit(X), SkDBSCAN(eps=eps, min_samples=m).fit(X))


def test_integers_are_not_rounded():
    X = np.array([[2**25], [2**25 + 1]], dtype=np.int64)
    assert dbscan(X, eps=0.5, min_samples=2)[1].tolist() == [-1, -1]
    assert dbscan(X, eps=1.0, min_samples=2)[1].tolist() == [0, 0]


def test_paths_follow_sklearn_auto_choice():
    assert resolve_path((11, 3), np.dtype("float64")) == "reduction"    # n_neighbors >= n // 2
    assert resolve_path((12, 3), np.dtype("float64")) == "kd_tree"
    assert resolve_path((12, 16), np.dtype("float32")) == "reduction"   # > 15 features
    assert resolve_path((12, 16), np.dtype("int64")) == "chunked"
    assert resolve_path((12, 3), np.dtype("float32"), "ball_tree") == "ball_tree"
    with pytest.raises(ValueError, match="algorithm"):
        resolve_path((12, 3), np.dtype("float32"), "cover_tree")


@pytest.mark.parametrize("algorithm", ["brute", "kd_tree", "ball_tree"])
def test_oracle_decides_every_pair_as_sklearn(algorithm):
    from sklearn.neighbors import NearestNeighbors

    X = (np.random.default_rng(1).integers(-3, 4, (40, 3)) * 0.1).astype(np.float32)
    eps = float(np.sqrt(((X[0].astype(float) - X[1].astype(float)) ** 2).sum()))
    found = NearestNeighbors(radius=eps, algorithm=algorithm).fit(X).radius_neighbors(
        X, return_distance=False)
    ref = np.zeros((40, 40), bool)
    for i, f in enumerate(found):
        ref[i, f] = True
    rows, cols = np.divmod(np.arange(1600), 40)
    got = SklearnRadius(X, algorithm=algorithm).decide(rows, cols, eps).reshape(40, 40)
    np.testing.assert_array_equal(got, ref)


# ---------------------------------------------------------------- API
def _blobs(seed: int = 0, n: int = 90) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(3, 5)) * 4
    return centres[rng.integers(0, 3, n)] + rng.normal(size=(n, 5))


def test_function_returns_core_and_labels_like_sklearn():
    from sklearn.cluster import dbscan as sk_dbscan

    X = _blobs()
    core, labels = dbscan(X, eps=1.2, min_samples=4)
    ref_core, ref_labels = sk_dbscan(X, eps=1.2, min_samples=4)
    np.testing.assert_array_equal(core, ref_core)
    np.testing.assert_array_equal(labels, ref_labels)


def test_estimator_attributes_and_params():
    X = _blobs()
    est = DBSCAN(eps=1.2, min_samples=4)
    assert est.get_params()["eps"] == 1.2 and not hasattr(est, "labels_")
    assert est.fit(X) is est
    ref = SkDBSCAN(eps=1.2, min_samples=4).fit(X)
    _same(est, ref)
    np.testing.assert_array_equal(est.components_, ref.components_)
    np.testing.assert_array_equal(est.fit_predict(X), ref.labels_)
    assert repr(DBSCAN(eps=0.3)) == "DBSCAN(eps=0.3)"
    with pytest.raises(ValueError, match="Invalid parameter"):
        est.set_params(max_eps=1)


@pytest.mark.parametrize("kwargs, error", [
    ({"eps": 0}, ValueError), ({"eps": -1.0}, ValueError), ({"eps": np.inf}, ValueError),
    ({"eps": "1"}, TypeError), ({"min_samples": 0}, ValueError),
    ({"min_samples": 2.5}, TypeError), ({"algorithm": "fast"}, ValueError),
    ({"leaf_size": 0}, ValueError), ({"metric": 3}, TypeError),
])
def test_bad_params_refused_at_fit(kwargs, error):
    est = DBSCAN(**kwargs)                 # __init__ only stores
    with pytest.raises(error):
        est.fit(_blobs())


def test_bad_data_refused():
    with pytest.raises(ValueError, match="NaN"):
        DBSCAN().fit(np.array([[0.0], [np.nan]]))
    with pytest.raises(ValueError, match="square"):
        DBSCAN(metric="precomputed").fit(np.zeros((3, 2)))
    with pytest.raises(ValueError, match="Negative"):
        DBSCAN(metric="precomputed").fit(-np.ones((2, 2)))
    with pytest.raises(TypeError, match="real numbers"):
        DBSCAN().fit(np.array([["a"], ["b"]]))


@pytest.mark.parametrize("metric", ["cosine", "manhattan", "chebyshev"])
def test_other_metrics_equal_sklearn(metric):
    X = _blobs(2)
    eps = float(np.median(pairwise_distances(X[:20], metric=metric)) / 3)
    _same(DBSCAN(eps=eps, min_samples=3, metric=metric).fit(X),
          SkDBSCAN(eps=eps, min_samples=3, metric=metric).fit(X))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_precomputed_dense_and_sparse_equal_sklearn(dtype):
    X = _blobs(3)
    D = pairwise_distances(X).astype(dtype)
    eps = float(D[0, 5])                      # a pair exactly at eps
    for m in (2, 5):
        _same(DBSCAN(eps=eps, min_samples=m, metric="precomputed").fit(D),
              SkDBSCAN(eps=eps, min_samples=m, metric="precomputed").fit(D))
        G = sparse.csr_matrix(np.where(D <= 1.5 * eps, D, 0))   # a neighbourhood graph
        _same(DBSCAN(eps=eps, min_samples=m, metric="precomputed").fit(G),
              SkDBSCAN(eps=eps, min_samples=m, metric="precomputed").fit(G))


def test_sample_weight_equal_sklearn():
    rng = np.random.default_rng(4)
    X = _blobs(4)
    w = rng.integers(-1, 4, X.shape[0]).astype(float)
    w[::7] = 0.5
    for metric, data in (("euclidean", X), ("precomputed", pairwise_distances(X))):
        for m in (2, 4, 7):
            _same(DBSCAN(eps=1.0, min_samples=m, metric=metric).fit(data, sample_weight=w),
                  SkDBSCAN(eps=1.0, min_samples=m, metric=metric).fit(data, sample_weight=w))


def test_input_not_modified_and_float16_kept():
    X = _blobs(5).astype(np.float16)
    before = X.copy()
    _same(DBSCAN(eps=1.0, min_samples=3).fit(X), SkDBSCAN(eps=1.0, min_samples=3).fit(X))
    np.testing.assert_array_equal(X, before)


def test_one_way_neighbourhoods_follow_dbscan_inner():
    from core.cluster.tree import dbscan_labels

    # 0 sees 1 but 1 does not see 0 (a tree may decide a pair at eps this way).
    indptr = np.array([0, 2, 4, 6, 7])
    indices = np.array([0, 1, 1, 2, 1, 2, 3])
    labels, core = dbscan_labels(indptr, indices, 2)
    assert core.tolist() == [True, True, True, False]
    assert labels.tolist() == [0, 0, 0, -1]


@pytest.mark.parametrize("n, d", [(5, 2), (40, 2), (40, 16), (300, 3)])
def test_fractional_weights_summed_as_sklearn(n, d):
    """Sums of 0.1-like weights round by summation order: scikit-learn's order is kept."""
    rng = np.random.default_rng(n + d)
    X = rng.integers(0, 4, (n, d)) * 0.1
    w = rng.choice([0.1, 0.2, 0.3, 0.7, 1 / 3, -0.1], n)
    for eps in (0.1, 0.2, float(np.sqrt(0.02))):
        for m in (1, 2, 3):
            _same(DBSCAN(eps=eps, min_samples=m).fit(X, sample_weight=w),
                  SkDBSCAN(eps=eps, min_samples=m).fit(X, sample_weight=w))
