"""scikit-learn's DBSCAN API on vidid's engine: :func:`dbscan` and :class:`DBSCAN`.

Same signatures, attributes and results as ``sklearn.cluster.dbscan`` / ``DBSCAN``
(label for label, core point for core point):

* ``metric="euclidean"`` on dense data — vidid's :class:`core.cluster.NeighborGraph`
  (blocked products, scikit-learn's own decision for pairs at eps, see
  :mod:`core.cluster.radius_exact`), for any dtype (float16/32/64, integers, booleans);
* ``metric="precomputed"`` — a dense distance matrix (``D[i] <= eps``) or a sparse one /
  neighbourhood graph (its stored entries ``<= eps``, the diagonal always stored);
* anything else (``"cosine"``, ``"manhattan"``, ``"minkowski"`` with ``p``, callables,
  sparse feature matrices, ``metric_params``) — the neighbourhoods come from
  ``sklearn.neighbors.NearestNeighbors`` with the same options (delegated: they are
  scikit-learn's by construction), the clustering from vidid.

The clustering itself is :func:`core.cluster.tree.dbscan_labels`; ``sample_weight`` is
supported everywhere.

Examples
--------
>>> X = np.array([[1, 2], [2, 2], [2, 3], [8, 7], [8, 8], [25, 80]])
>>> core, labels = dbscan(X, eps=3, min_samples=2)
>>> core.tolist(), labels.tolist()
([0, 1, 2, 3, 4], [0, 0, 0, 1, 1, -1])
>>> DBSCAN(eps=3, min_samples=2).fit(X).labels_.tolist()
[0, 0, 0, 1, 1, -1]
"""

from __future__ import annotations

import numbers
import warnings

import numpy as np

from core.cluster.graph import NeighborGraph
from core.cluster.tree import dbscan_labels
from core.cluster.radius_exact import ALGORITHMS, SklearnRadius

#: Metrics computed by vidid itself; any other scikit-learn metric is delegated.
NATIVE_METRICS = ("euclidean", "precomputed")


class DBSCAN:
    """Density-based clustering, ``sklearn.cluster.DBSCAN``'s interface and results.

    Parameters
    ----------
    eps : neighbourhood radius (inclusive), > 0.
    min_samples : points (or total ``sample_weight``) within eps, the point itself
        included, that make a point core.
    metric : ``"euclidean"`` (default), ``"precomputed"``, ``"cosine"``, or any metric
        ``sklearn.neighbors.NearestNeighbors`` accepts (string or callable).
    metric_params, algorithm, leaf_size, p, n_jobs : as scikit-learn's.

    Attributes
    ----------
    core_sample_indices_ : (n_core,) indices of the core points.
    components_ : (n_core, n_features) copy of the core points' rows.
    labels_ : (n,) cluster of each point, ``-1`` for noise.

    Examples
    --------
    >>> X = np.array([[0.0, 0.4], [0.1, 0.4], [5, 5]])
    >>> DBSCAN(eps=0.1, min_samples=2).fit_predict(X).tolist()
    [0, 0, -1]
    """

    def __init__(self, eps: float = 0.5, *, min_samples: int = 5, metric="euclidean",
                 metric_params: dict | None = None, algorithm: str = "auto",
                 leaf_size: int = 30, p: float | None = None, n_jobs: int | None = None):
        self.eps = eps
        self.min_samples = min_samples
        self.metric = metric
        self.metric_params = metric_params
        self.algorithm = algorithm
        self.leaf_size = leaf_size
        self.p = p
        self.n_jobs = n_jobs

    # scikit-learn's get_params / set_params (clone, GridSearchCV) without inheriting.
    _PARAMS = ("eps", "min_samples", "metric", "metric_params", "algorithm", "leaf_size",
               "p", "n_jobs")

    def get_params(self, deep: bool = True) -> dict[str, object]:
        return {k: getattr(self, k) for k in self._PARAMS}

    def set_params(self, **params) -> "DBSCAN":
        for key, value in params.items():
            if key not in self._PARAMS:
                raise ValueError(f"Invalid parameter {key!r} for estimator DBSCAN; "
                                 f"valid parameters: {', '.join(self._PARAMS)}")
            setattr(self, key, value)
        return self

    def __repr__(self) -> str:
        defaults = DBSCAN()
        changed = [f"{k}={getattr(self, k)!r}" for k in self._PARAMS
                   if getattr(self, k) is not getattr(defaults, k)
                   and getattr(self, k) != getattr(defaults, k)]
        return f"DBSCAN({', '.join(changed)})"

    def fit(self, X, y=None, sample_weight=None) -> "DBSCAN":
        """Cluster ``X`` (features, or distances with ``metric="precomputed"``)."""
        eps, min_samples = _check_params(self)
        X = _check_data(X, self.metric)
        n = X.shape[0]
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, n)
        labels, core = _compute_dbscan(X, eps, min_samples, self, sample_weight)
        self.core_sample_indices_ = np.flatnonzero(core)
        self.labels_ = labels
        if self.core_sample_indices_.size:
            self.components_ = X[self.core_sample_indices_].copy()
        else:
            self.components_ = np.empty((0, X.shape[1]))
        self.n_features_in_ = X.shape[1]
        return self

    def fit_predict(self, X, y=None, sample_weight=None) -> np.ndarray:
        """``fit(X)`` and return ``labels_``."""
        return self.fit(X, sample_weight=sample_weight).labels_


def dbscan(X, eps: float = 0.5, *, min_samples: int = 5, metric="euclidean",
           metric_params: dict | None = None, algorithm: str = "auto", leaf_size: int = 30,
           p: float | None = 2, sample_weight=None, n_jobs: int | None = None
           ) -> tuple[np.ndarray, np.ndarray]:
    """DBSCAN in one call: ``(core_sample_indices, labels)``, as ``sklearn.cluster.dbscan``.

    Examples
    --------
    >>> core, labels = dbscan([[0], [1], [1]], eps=1, min_samples=2)
    >>> core.tolist(), labels.tolist()
    ([0, 1, 2], [0, 0, 0])
    """
    est = DBSCAN(eps=eps, min_samples=min_samples, metric=metric,
                 metric_params=metric_params, algorithm=algorithm, leaf_size=leaf_size,
                 p=p, n_jobs=n_jobs)
    est.fit(X, sample_weight=sample_weight)
    return est.core_sample_indices_, est.labels_


# ------------------------------------------------------------------ checks (one place)
def _check_params(est: DBSCAN) -> tuple[float, int]:
    eps = est.eps
    if isinstance(eps, (bool, np.bool_)) or not isinstance(eps, numbers.Real):
        raise TypeError(f"eps must be a real number, got {eps!r}")
    if not (np.isfinite(eps) and eps > 0):
        raise ValueError(f"eps must be a finite number > 0, got {eps!r}")
    m = est.min_samples
    if isinstance(m, (bool, np.bool_)) or not isinstance(m, numbers.Integral):
        raise TypeError(f"min_samples must be an integer, got {m!r}")
    if m < 1:
        raise ValueError(f"min_samples must be >= 1, got {m!r}")
    if not (callable(est.metric) or isinstance(est.metric, str)):
        raise TypeError(f"metric must be a string or a callable, got {est.metric!r}")
    if est.algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm must be one of {', '.join(ALGORITHMS)}; "
                         f"got {est.algorithm!r}")
    leaf = est.leaf_size
    if isinstance(leaf, (bool, np.bool_)) or not isinstance(leaf, numbers.Integral) or leaf < 1:
        raise ValueError(f"leaf_size must be an integer >= 1, got {leaf!r}")
    if est.p is not None and (not isinstance(est.p, numbers.Real) or not est.p > 0):
        raise ValueError(f"p must be a number > 0 or None, got {est.p!r}")
    return float(eps), int(m)


def _check_data(X, metric) -> np.ndarray:
    from scipy import sparse

    if sparse.issparse(X):
        X = X.tocsr()
    else:
        X = np.asarray(X)
        if X.dtype == object or X.dtype.kind not in "biuf":
            raise TypeError(f"X must hold real numbers, got dtype {X.dtype}")
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D (n_samples, n_features), got shape {X.shape}")
    if X.shape[0] < 1 or X.shape[1] < 1:
        raise ValueError(f"X must hold at least one sample and one feature, got shape {X.shape}")
    data = X.data if sparse.issparse(X) else X
    if data.dtype.kind == "f" and not np.isfinite(data).all():
        raise ValueError("X holds NaN or infinite values")
    if metric == "precomputed":
        if X.shape[0] != X.shape[1]:
            raise ValueError(f"Precomputed matrix must be square, got shape {X.shape}")
        if (data < 0).any():
            raise ValueError("Negative values in data passed to precomputed distance matrix.")
    return X


def _check_sample_weight(sample_weight, n: int) -> np.ndarray:
    w = np.asarray(sample_weight, dtype=np.float64)
    if w.ndim == 0:
        w = np.full(n, float(w))
    if w.shape != (n,):
        raise ValueError(f"sample_weight.shape == {w.shape}, expected {(n,)}")
    if not np.isfinite(w).all():
        raise ValueError("sample_weight holds NaN or infinite values")
    return w


# ------------------------------------------------------------------ neighbourhoods
def _compute_dbscan(X, eps: float, min_samples: int, est: DBSCAN,
                    sample_weight: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    from scipy import sparse

    if est.metric == "euclidean" and not sparse.issparse(X) and est.metric_params is None:
        exact = SklearnRadius(X, algorithm=est.algorithm, leaf_size=est.leaf_size)
        if sample_weight is not None and exact.path in ("kd_tree", "ball_tree"):
            # Weighted: scikit-learn sums each neighbourhood in its tree's order; in a
            # few dimensions the tree itself is the fast way to have that order.
            indptr, indices = exact.tree_neighborhoods(eps)
        else:
            graph = NeighborGraph.build(X, max_eps=eps, method="exact",
                                        algorithm=est.algorithm, leaf_size=est.leaf_size)
            if sample_weight is None:
                return graph.dbscan(eps, min_samples, return_core=True)
            indptr, indices = graph.neighborhoods(eps)
    elif est.metric == "precomputed":
        indptr, indices = _precomputed_neighborhoods(X, eps)
    else:
        indptr, indices = _delegated_neighborhoods(X, eps, est)
    return dbscan_labels(indptr, indices, min_samples, sample_weight)


def _precomputed_neighborhoods(D, eps: float) -> tuple[np.ndarray, np.ndarray]:
    """Neighbourhoods read off a distance matrix, as scikit-learn reads them.

    Dense: ``D[i, j] <= eps`` (numpy's comparison, in D's dtype). Sparse: the stored
    entries ``<= eps`` after the diagonal is stored explicitly (a neighbourhood graph
    without self-loops still counts each point in its own neighbourhood).
    """
    from scipy import sparse

    if not sparse.issparse(D):
        r, c = np.nonzero(D <= eps)
        indptr = np.zeros(D.shape[0] + 1, dtype=np.int64)
        np.cumsum(np.bincount(r, minlength=D.shape[0]), out=indptr[1:])
        return indptr, c.astype(np.int64)
    G = D.tocsr(copy=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sparse.SparseEfficiencyWarning)
        G.setdiag(G.diagonal())
    G.sum_duplicates()
    keep = G.data <= eps
    rows = np.repeat(np.arange(G.shape[0], dtype=np.int64), np.diff(G.indptr))
    r, c = rows[keep], G.indices[keep].astype(np.int64)
    indptr = np.zeros(G.shape[0] + 1, dtype=np.int64)
    np.cumsum(np.bincount(r, minlength=G.shape[0]), out=indptr[1:])
    return indptr, c


def _delegated_neighborhoods(X, eps: float, est: DBSCAN) -> tuple[np.ndarray, np.ndarray]:
    """Neighbourhoods from ``sklearn.neighbors.NearestNeighbors`` with the same options."""
    from sklearn.neighbors import NearestNeighbors

    nn = NearestNeighbors(radius=eps, algorithm=est.algorithm, leaf_size=est.leaf_size,
                          metric=est.metric, metric_params=est.metric_params, p=est.p,
                          n_jobs=est.n_jobs).fit(X)
    found = nn.radius_neighbors(X, return_distance=False)
    lens = np.fromiter((len(f) for f in found), dtype=np.int64, count=len(found))
    indptr = np.zeros(len(found) + 1, dtype=np.int64)
    np.cumsum(lens, out=indptr[1:])
    indices = (np.concatenate([np.asarray(f, dtype=np.int64) for f in found])
               if len(found) else np.empty(0, np.int64))
    return indptr, indices


class NoiseDBSCAN:
    """Re-clustering estimator over :class:`NeighborGraph` (scikit-learn's own interface,
    ``fit(X, sample_weight=...)``, ``components_``, any metric: :class:`core.cluster.sklearn_api.DBSCAN`).

    ``fit`` builds the graph at ``max_eps`` (default: ``eps``; ``method`` as in
    :meth:`NeighborGraph.build`, default exact) and keeps it in ``graph_``,
    so ``set_params(eps=...)`` followed by :meth:`refit` re-clusters in milliseconds.

    Examples
    --------
    >>> X = np.array([[0, 0], [0, 1], [5, 5]], dtype=np.float32)
    >>> NoiseDBSCAN(eps=1.0, min_samples=2).fit(X).labels_
    array([ 0,  0, -1])
    """

    def __init__(self, eps: float = 0.5, min_samples: int = 5, max_eps: float | None = None,
                 method: str = "exact"):
        self.eps = eps
        self.min_samples = min_samples
        self.max_eps = max_eps
        self.method = method

    def get_params(self, deep: bool = True) -> dict[str, object]:
        return {"eps": self.eps, "min_samples": self.min_samples, "max_eps": self.max_eps,
                "method": self.method}

    def set_params(self, **params) -> "NoiseDBSCAN":
        for key, value in params.items():
            if key not in self.get_params():
                raise ValueError(f"unknown parameter {key!r} for NoiseDBSCAN")
            setattr(self, key, value)
        return self

    def fit(self, X: np.ndarray, y=None) -> "NoiseDBSCAN":
        max_eps = self.eps if self.max_eps is None else self.max_eps
        self.graph_ = NeighborGraph.build(X, max_eps=max_eps, method=self.method)
        return self.refit()

    def refit(self) -> "NoiseDBSCAN":
        """Re-cluster the fitted graph with the current ``eps`` / ``min_samples``."""
        labels, core = self.graph_.dbscan(self.eps, self.min_samples, return_core=True)
        self.labels_ = labels
        self.core_sample_indices_ = np.flatnonzero(core)
        return self

    def fit_predict(self, X: np.ndarray, y=None) -> np.ndarray:
        return self.fit(X).labels_
