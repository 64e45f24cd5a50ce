"""DBSCAN of pooled noise videos at any eps / min_samples in milliseconds.

Build the neighbour graph once (:class:`NeighborGraph`), then answer DBSCAN for any
``eps <= max_eps`` and any ``min_samples`` without touching the vectors again:

* a point's core distance ``c_m`` is the distance to its ``m``-th neighbour counting
  itself, read off its sorted row; it is core at ``eps`` iff ``c_m <= eps``;
* the core points' clusters at ``eps`` are the connected components of the edges with
  mutual reachability ``max(d_ij, c_i, c_j) <= eps`` — a cut of the minimum spanning
  forest over those weights, computed once per ``min_samples``, flattened into a leaf
  order and cached (:mod:`core.cluster.tree`), so a cut costs a few passes over n values;
* a border point (not core, within ``eps`` of a core point) joins, among the clusters of
  its core neighbours within ``eps``, the one scikit-learn would give it: the cluster
  whose lowest-index core point comes first.

Clusters are numbered ``0..K-1`` in the order of their lowest-index core point, exactly
as ``sklearn.cluster.DBSCAN`` numbers them, so on the same neighbourhoods the labels are
identical to scikit-learn's, border points included. ``-1`` marks unclustered points.

The neighbourhoods are scikit-learn's too, whatever the dtype and dimension: the graph
stores float64 squared distances, exact to a few ulps, and eps is squared as
scikit-learn squares it. When a query's eps falls within that rounding band of a
distance the answer rests on (a core distance, a forest edge, a border point's pair:
an eps taken from the data, a pair exactly at eps), the pairs in the band are decided
by :class:`core.cluster.radius_exact.SklearnRadius` — scikit-learn's own computation for each
pair — and that query is answered from the neighbourhoods
(:func:`core.cluster.tree.dbscan_labels`) instead of the caches.
The scikit-learn-compatible ``dbscan`` / ``DBSCAN`` live in :mod:`core.cluster.sklearn_api`.

Examples
--------
>>> import numpy as np
>>> X = np.array([[1, 0], [0.99, 0.141], [0, 1]], dtype=np.float32)
>>> graph = NeighborGraph.build(X, max_eps=0.5)
>>> graph.dbscan(eps=0.2, min_samples=2)
array([ 0,  0, -1])
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from core.cluster.ivf import build_ivf_graph
from core.cluster.tree import (
    LeafOrder,
    core_labels,
    dbscan_labels,
    leaf_order,
    mutual_reachability_forest,
)
from core.cluster.neighbors import (
    DEFAULT_MAX_EDGES,
    RadiusGraph,
    build_radius_graph,
    check_max_eps,
    check_radius,
    squared_norms,
    validate_vectors,
)
from core.cluster.radius_exact import SklearnRadius, rounding_band, squared_radius

ProgressFn = Callable[[float, str], None]

#: Below this many points ``method="auto"`` builds the exact graph.
EXACT_MAX_POINTS = 100_000
#: The graph stores pairs a hair beyond ``max_eps`` so that an eps of ``max_eps`` off by
#: rounding (``np.arange``/``linspace`` grids, slider steps) is still answered exactly.
_RADIUS_SLACK = 1e-6
METHODS = ("auto", "exact", "approx")


@dataclass(eq=False)
class NeighborGraph:
    """The eps-neighbour graph of a set of vectors at ``max_eps``, with DBSCAN on top.

    Build it with :meth:`NeighborGraph.build`; then :meth:`dbscan`, :meth:`k_distance` and
    :meth:`core_distances` answer from the stored graph. Thread-safe (the per-min_samples
    caches are guarded by a lock).
    """

    graph: RadiusGraph
    max_eps: float
    input_dtype: str = "float32"
    build_seconds: float = 0.0
    #: scikit-learn's decision for pairs within rounding of eps (None: not kept).
    exact: SklearnRadius | None = field(default=None, repr=False)
    #: per-point half-width of the rounding band of squared distances.
    band: np.ndarray | None = field(default=None, repr=False)
    band_max: float = field(default=0.0, repr=False)
    _sorted: dict = field(default_factory=dict, repr=False)
    _trees: dict = field(default_factory=dict, repr=False)
    _core: dict = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __getstate__(self) -> dict:
        # Picklable (st.cache_data, joblib): drop the lock, keep the cached forests.
        state = self.__dict__.copy()
        state.pop("_lock", None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        if not isinstance(self.__dict__.get("_sorted"), dict):
            self._sorted = {}  # pickled before the boundary checks existed
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ build
    @classmethod
    def build(cls, X: np.ndarray, max_eps: float = 1.3, *, method: str = "auto",
              nprobe: int = 12, max_edges: int = DEFAULT_MAX_EDGES,
              progress: ProgressFn | None = None, algorithm: str = "auto",
              leaf_size: int = 30) -> "NeighborGraph":
        """Build the neighbour graph of ``X`` at radius ``max_eps``.

        Parameters
        ----------
        X : (n, d) array of finite vectors (pooled, L2-normalised rows in vidid).
        max_eps : largest eps that :meth:`dbscan` will accept.
        method : ``"exact"`` (all pairs within ``max_eps``), ``"approx"`` (range search
            inside faiss k-means cells, see :func:`core.cluster.ivf.build_ivf_graph`: a
            subset of the exact graph, recall < 1) or ``"auto"`` (exact below
            ``EXACT_MAX_POINTS`` points).
        nprobe : cells each point is listed in (approximate build): more = higher recall.
        max_edges : raise ``ValueError`` once more pairs than this are found (memory cap).
        progress : optional ``progress(fraction, message)`` callback.
        algorithm, leaf_size : the ``sklearn.cluster.DBSCAN`` options whose neighbourhoods
            :meth:`dbscan` reproduces at eps exactly on a pair's distance (``"auto"``:
            scikit-learn's default choice of tree or brute force).

        Examples
        --------
        >>> X = np.eye(3, dtype=np.float32)
        >>> NeighborGraph.build(X, max_eps=1.5).n_edges
        3
        """
        if method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}; got {method!r}")
        max_eps = check_max_eps(max_eps)
        # The data as scikit-learn would see it (dtype, memory order), for the exact
        # decisions at eps; the float32/float64 copy for the products.
        raw = X if isinstance(X, np.ndarray) else None
        if raw is None and (isinstance(X, (list, tuple)) or hasattr(X, "__array__")):
            raw = X = np.asarray(X)
        X = validate_vectors(X)
        if raw is None or (raw.dtype == X.dtype and raw.flags.c_contiguous):
            raw = X
        if method == "auto" or X.shape[0] == 0:
            method = "exact" if X.shape[0] < EXACT_MAX_POINTS else "approx"
        t0 = time.perf_counter()
        exact = SklearnRadius(raw, algorithm=algorithm, leaf_size=leaf_size)
        norms = squared_norms(X)
        band = rounding_band(norms, X.shape[1]) if X.shape[0] else np.zeros(0)
        # Keep every pair that scikit-learn could count at max_eps (rounding included).
        r2 = max((max_eps * (1.0 + _RADIUS_SLACK)) ** 2,
                 squared_radius(max_eps, exact.path, raw.dtype))
        radius = max(float(np.sqrt(r2 + 2.0 * float(band.max(initial=0.0)))), max_eps)
        if method == "exact":
            g = build_radius_graph(X, radius, max_edges=max_edges, progress=progress, norms=norms)
        else:
            g = build_ivf_graph(X, radius, nprobe=nprobe, max_edges=max_edges, progress=progress)
        return cls(graph=g, max_eps=max_eps, input_dtype=raw.dtype.name,
                   build_seconds=time.perf_counter() - t0, exact=exact, band=band,
                   band_max=float(band.max(initial=0.0)))

    # ------------------------------------------------------------ properties
    @property
    def n_points(self) -> int:
        return self.graph.n_points

    @property
    def n_edges(self) -> int:
        """Undirected pairs stored (within ``max_eps``)."""
        return self.graph.n_edges

    @property
    def method(self) -> str:
        return self.graph.method

    def describe(self) -> dict[str, object]:
        """Plain-value summary of the graph (for logs and the dashboard)."""
        deg = np.diff(self.graph.indptr)
        return {"n_points": self.n_points, "n_edges": self.n_edges, "max_eps": self.max_eps,
                "method": self.method,
                "mean_degree": float(deg.mean()) if deg.size else 0.0,
                "max_degree": int(deg.max()) if deg.size else 0,
                "build_seconds": self.build_seconds}

    # -------------------------------------------------------------- checks
    def _check_eps(self, eps: object) -> float:
        value = check_radius(eps, "eps")
        if value > self.graph.max_eps:
            raise ValueError(f"eps={value:g} exceeds the graph's max_eps={self.max_eps:g}; "
                             f"rebuild the graph with a larger max_eps")
        return value

    def _squared_radius(self, eps: float) -> float:
        """``eps ** 2`` as scikit-learn's radius search compares it.

        On its brute-force path with float32 data scikit-learn squares eps in float32
        (its 32-bit distance metric), elsewhere in float64 (trees and integers work in
        float64); squared distances ``<=`` it are neighbours.
        """
        if self.exact is not None:
            return squared_radius(eps, self.exact.path, np.dtype(self.input_dtype))
        if self.input_dtype == "float32":
            e = np.float32(eps)
            return float(np.float32(e * e))
        return eps * eps

    def _check_min_samples(self, min_samples: object) -> int:
        if isinstance(min_samples, (bool, np.bool_)) or not isinstance(min_samples, (int, np.integer)):
            if isinstance(min_samples, (float, np.floating)) and float(min_samples).is_integer():
                min_samples = int(min_samples)
            else:
                raise TypeError(f"min_samples must be an integer, got {min_samples!r}")
        m = int(min_samples)
        if m < 1:
            raise ValueError(f"min_samples must be >= 1, got {m}")
        return m

    # ------------------------------------------------------- core distances
    def _core_sqdist(self, m: int) -> np.ndarray:
        """Squared core distance for ``min_samples=m`` (inf: fewer than m within max_eps)."""
        with self._lock:
            cached = self._core.get(m)
        if cached is not None:
            return cached
        g = self.graph
        n = g.n_points
        if m == 1:
            c = np.zeros(n, dtype=np.float64)
        else:
            deg = np.diff(g.indptr)
            has = deg >= m - 1
            pos = np.where(has, g.indptr[:-1] + (m - 2), 0)
            c = np.where(has, g.sqdist[pos] if g.sqdist.size else 0.0, np.inf)
        c.setflags(write=False)
        with self._lock:
            self._core[m] = c
        return c

    def _nearest_sqdist(self) -> np.ndarray:
        """Squared distance of each point's nearest other point (inf: none within max_eps)."""
        return self._core_sqdist(2)

    def core_distances(self, min_samples: int) -> np.ndarray:
        """Core distance of every point (``inf`` where it exceeds ``max_eps``).

        Examples
        --------
        >>> X = np.array([[0, 0], [0, 1], [0, 3]], dtype=np.float32)
        >>> NeighborGraph.build(X, max_eps=2.5).core_distances(2)
        array([1., 1., 2.])
        """
        return np.sqrt(self._core_sqdist(self._check_min_samples(min_samples)))

    def k_distance(self, k: int) -> np.ndarray:
        """Sorted k-distance curve: each point's distance to its k-th neighbour (counting itself).

        Ascending; points whose k-th neighbour lies beyond ``max_eps`` come last as ``inf``.
        Use ``k = min_samples``; the knee suggests eps (:func:`core.cluster.report.suggest_eps`).

        Examples
        --------
        >>> X = np.array([[0, 0], [0, 1], [0, 3]], dtype=np.float32)
        >>> NeighborGraph.build(X, max_eps=1.5).k_distance(2)
        array([ 1.,  1., inf])
        """
        return np.sort(self.core_distances(k))

    # ------------------------------------------------------------- forest
    def _tree(self, m: int) -> LeafOrder:
        """Leaf order of the mutual-reachability forest for ``min_samples=m`` (cached)."""
        with self._lock:
            cached = self._trees.get(m)
        if cached is not None:
            return cached
        u, v, w = mutual_reachability_forest(self.graph, self._core_sqdist(m))
        tree = leaf_order(self.n_points, u, v, w)
        with self._lock:
            self._trees[m] = tree
        return tree

    def prepare(self, min_samples_values) -> None:
        """Precompute the per-min_samples forests (the first query of each m pays this)."""
        for m in min_samples_values:
            self._tree(self._check_min_samples(m))

    # ------------------------------------------------------------- dbscan
    def dbscan(self, eps: float, min_samples: int = 2, *,
               return_core: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """DBSCAN labels at ``eps`` (inclusive) and ``min_samples`` (counting the point itself).

        Identical to ``sklearn.cluster.DBSCAN(eps=eps, min_samples=min_samples)
        .fit_predict(X)`` on the graph's neighbourhoods (exact graph: the same
        neighbourhoods as scikit-learn's brute-force euclidean search).

        Returns
        -------
        labels : (n,) int64, clusters ``0..K-1`` in order of their lowest core index, -1 noise.
        core : (n,) bool core mask, only with ``return_core=True``.

        Examples
        --------
        >>> X = np.array([[0, 0], [0, 1], [0, 2], [0, 9]], dtype=np.float32)
        >>> NeighborGraph.build(X, max_eps=2).dbscan(eps=1, min_samples=3)
        array([ 0,  0,  0, -1])
        """
        eps_v = self._check_eps(eps)
        m = self._check_min_samples(min_samples)
        eps2 = self._squared_radius(eps_v)
        found = None if self._self_in_doubt(eps2) else self._labels(eps2, m)
        if found is None:
            # eps within rounding of a distance that decides the answer: take the
            # neighbourhoods with those pairs decided by scikit-learn's own arithmetic.
            found = dbscan_labels(*self._neighborhoods(eps_v, eps2), m)
        labels, core = found
        return (labels, core) if return_core else labels

    def neighborhoods(self, eps: float) -> tuple[np.ndarray, np.ndarray]:
        """Every point's eps-neighbourhood (itself included) as scikit-learn finds it.

        Returns ``(indptr, indices)`` in CSR form, each row in ascending index order.

        Examples
        --------
        >>> X = np.array([[0, 0.4], [0.1, 0.4], [1, 1]])
        >>> [a.tolist() for a in NeighborGraph.build(X, max_eps=0.5).neighborhoods(0.1)]
        [[0, 2, 4, 5], [0, 1, 0, 1, 2]]
        """
        eps_v = self._check_eps(eps)
        return self._neighborhoods(eps_v, self._squared_radius(eps_v))

    # ---------------------------------------------------- exact boundary
    def _window(self) -> float:
        """Half-width of the rounding band around eps**2 for any pair (0: no exact decisions)."""
        return 2.0 * self.band_max if self.exact is not None and self.band is not None else 0.0

    def _any_near(self, name: str, m: int, values: Callable[[], np.ndarray], eps2: float) -> bool:
        """Whether any of the (cached, sorted) ``values`` lies within the band of ``eps2``."""
        width = self._window()
        if width == 0.0:
            return False
        with self._lock:
            ordered = self._sorted.get((name, m))
        if ordered is None:
            ordered = np.sort(values())
            with self._lock:
                self._sorted[(name, m)] = ordered
        lo = np.searchsorted(ordered, eps2 - width, side="left")
        hi = np.searchsorted(ordered, eps2 + width, side="right")
        return bool(hi > lo)

    def _self_in_doubt(self, eps2: float) -> bool:
        """scikit-learn's brute force may put a point's distance to itself above a tiny eps."""
        return (self.exact is not None and self.exact.path == "reduction"
                and self._window() >= eps2)

    def _boundary_pairs(self, eps2: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Pairs ``(i < j)`` whose squared distance is within rounding of ``eps2``, and the
        points whose distance to themselves might round above it (brute force)."""
        empty = np.empty(0, np.int64)
        if self.exact is None or self.band is None or self.n_points == 0:
            return empty, empty, empty
        g = self.graph
        rows = np.repeat(np.arange(g.n_points, dtype=np.int64), np.diff(g.indptr))
        cols = g.indices.astype(np.int64)
        near = (cols > rows) & (np.abs(g.sqdist - eps2) <= self.band[rows] + self.band[cols])
        selfs = (np.flatnonzero(2.0 * self.band >= eps2) if self._self_in_doubt(eps2)
                 else empty)
        return rows[near], cols[near], selfs

    def _neighborhoods(self, eps: float, eps2: float) -> tuple[np.ndarray, np.ndarray]:
        g = self.graph
        n = g.n_points
        rows = np.repeat(np.arange(n, dtype=np.int64), np.diff(g.indptr))
        cols = g.indices.astype(np.int64)
        keep = g.sqdist <= eps2
        br, bc, selfs = self._boundary_pairs(eps2)
        self_in = np.ones(n, dtype=bool)
        if br.size or selfs.size:
            # Decide the boundary pairs (both directions) and the doubtful self-pairs
            # exactly as scikit-learn does.
            qr = np.concatenate([br, bc, selfs])
            qc = np.concatenate([bc, br, selfs])
            said = self.exact.decide(qr, qc, eps)
            k = br.size
            self_in[selfs] = said[2 * k:]
            key = rows * n + cols
            order = np.argsort(key, kind="stable")
            pos = order[np.searchsorted(key[order], qr[:2 * k] * n + qc[:2 * k])]
            keep[pos] = said[:2 * k]
        ids = np.arange(n, dtype=np.int64)
        r = np.concatenate([rows[keep], ids[self_in]])
        c = np.concatenate([cols[keep], ids[self_in]])
        order = np.lexsort((c, r))
        indptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.bincount(r, minlength=n), out=indptr[1:])
        return indptr, c[order]

    def _labels(self, eps2: float, m: int) -> tuple[np.ndarray, np.ndarray] | None:
        """Labels from the cached core distances and forest; None when a distance they
        rest on lies within rounding of ``eps2`` (the caller then decides exactly).

        The answer rests on three kinds of distance only: each point's core distance
        (the (m-1)-th neighbour decides core or not), the forest's edges (a pair at eps
        joining two core points closes a cycle whose forest path has an edge as long or
        longer, within the band too) and the pairs of border candidates.
        """
        c = self._core_sqdist(m)
        if self._any_near("core", m, lambda: c, eps2):
            return None
        core = c <= eps2
        if not core.any():
            return np.full(self.n_points, -1, dtype=np.int64), core
        tree = self._tree(m)
        if self._any_near("forest", m, lambda: tree.gaps, eps2):
            return None
        labels = core_labels(tree, core, eps2)
        if m >= 2 and not self._attach_border(labels, core, eps2, m):
            return None
        return labels, core

    def _attach_border(self, labels: np.ndarray, core: np.ndarray, eps2: float, m: int) -> bool:
        """Give each non-core point the lowest cluster id among its core neighbours within eps.

        A non-core point has fewer than ``m`` points within eps (itself included), so its
        first ``m - 1`` stored neighbours (rows are sorted by distance) hold them all.
        Returns False (labels unfinished) if one of those pairs lies within rounding of eps.
        """
        g = self.graph
        window = self._window()
        # Only non-core points with some neighbour within eps can be border points.
        cand = np.flatnonzero(~core & (self._nearest_sqdist() <= eps2 + window))
        if cand.size == 0:
            return True
        start = g.indptr[cand]
        deg = g.indptr[cand + 1] - start
        cand, start, deg = cand[deg > 0], start[deg > 0], deg[deg > 0]
        width = min(m - 1, int(deg.max()) if deg.size else 0)
        if width <= 0:
            return True
        offs = np.arange(width)
        valid = offs[None, :] < np.minimum(deg, width)[:, None]
        pos = np.where(valid, start[:, None] + offs[None, :], 0)
        nb = g.indices[pos]
        d2 = g.sqdist[pos]
        if window and (valid & (np.abs(d2 - eps2) <= window)).any():
            return False
        ok = valid & (d2 <= eps2) & core[nb]
        big = np.iinfo(np.int64).max
        best = np.where(ok, labels[nb], big).min(axis=1)
        hit = best != big
        labels[cand[hit]] = best[hit]
        return True


# ---------------------------------------------------------------------- estimator
