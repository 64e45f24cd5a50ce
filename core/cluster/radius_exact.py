"""scikit-learn's own eps-neighbourhood decision for chosen pairs, bit for bit.

``sklearn.cluster.DBSCAN`` asks ``NearestNeighbors(radius=eps, algorithm=...)
.radius_neighbors(X)`` for every point's neighbourhood. With ``metric="euclidean"`` the
search takes one of three paths, and each rounds the squared distance its own way:

* **tree** — ``algorithm="auto"`` on dense data with at most 15 features and at least
  12 points (``n_neighbors=5 < n // 2``), or ``"kd_tree"`` / ``"ball_tree"``: a float64
  ``KDTree``/``BallTree`` (integers and float16/32 converted to float64); a leaf compares
  ``sum_k (x_k - y_k) ** 2``, summed feature by feature, with ``eps * eps``; whole nodes
  are taken or pruned by their bounds, compared with ``eps`` itself.
* **reduction** — brute force on C-ordered float32/float64 data: blocks of 256 x 256
  points, ``(|x|^2 + (-2 x.y)) + |y|^2`` with ``x.y`` from a float64 BLAS ``dgemm`` of the
  block (float32 upcast), clipped at 0, compared with ``eps * eps``.
* **chunked** — brute force otherwise (integers, float16): ``pairwise_distances`` on row
  chunks sized by ``working_memory`` (numpy ``matmul`` in float64), compared with
  ``eps * eps``.

The three agree with the exact distance to a few units in the last place, so a pair
whose distance is not within that band of ``eps`` is decided the same by all of them
(and by vidid's own float64 recomputation). :class:`SklearnRadius` decides the pairs
*inside* the band by re-running scikit-learn's computation on exactly the tree, block or
chunk in which scikit-learn meets that pair — the same code on the same operands gives
the same bits.

Examples
--------
>>> X = np.array([[0, 0.4], [0.1, 0.4]])
>>> SklearnRadius(X).decide(np.array([0]), np.array([1]), 0.1).tolist()
[True]
"""

from __future__ import annotations

import numpy as np

#: Algorithms of ``sklearn.neighbors.NearestNeighbors`` that vidid reproduces.
ALGORITHMS = ("auto", "brute", "kd_tree", "ball_tree")
#: Unit roundoff of float64.
_U64 = float(np.finfo(np.float64).eps) / 2


def resolve_path(shape: tuple[int, int], dtype: np.dtype, algorithm: str = "auto") -> str:
    """Which of scikit-learn's paths (``"kd_tree"``, ``"ball_tree"``, ``"reduction"``,
    ``"chunked"``) answers a euclidean radius search on dense data of this shape/dtype.

    Mirrors ``NearestNeighbors._fit`` (``algorithm="auto"``: brute above 15 features or
    when ``n_neighbors=5 >= n // 2``, else a KD tree) and ``RadiusNeighbors.is_usable_for``.

    Examples
    --------
    >>> resolve_path((20, 3), np.dtype("float32")), resolve_path((20, 512), np.dtype("float16"))
    ('kd_tree', 'chunked')
    """
    if algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm must be one of {', '.join(ALGORITHMS)}; got {algorithm!r}")
    n, d = shape
    if algorithm == "auto":
        algorithm = "brute" if (d > 15 or 5 >= n // 2) else "kd_tree"
    if algorithm != "brute":
        return algorithm
    return "reduction" if np.dtype(dtype) in (np.float32, np.float64) else "chunked"


def squared_radius(eps: float, path: str, dtype: np.dtype) -> float:
    """The value scikit-learn compares squared distances with on ``path`` for ``eps``.

    ``eps * eps`` in float64, except on the reduction path with float32 data, whose
    32-bit distance metric squares ``float32(eps)`` in float32.

    Examples
    --------
    >>> squared_radius(0.1, "reduction", np.dtype("float32")) == 0.1 * 0.1
    False
    """
    eps = float(eps)
    if path == "reduction" and np.dtype(dtype) == np.float32:
        e = np.float32(eps)
        return float(e * e)
    return eps * eps


def rounding_band(norms: np.ndarray, n_features: int) -> np.ndarray:
    """Per-point half-width of the band where the paths' squared distances may disagree.

    Any two ways of rounding ``|x|^2 + |y|^2 - 2 x.y`` (or ``sum (x - y)^2``) in float64
    over ``d`` features differ by at most about ``2 (d + 2) u (|x|^2 + |y|^2)``; the band
    of a pair is ``band[i] + band[j]``, four times that bound.
    """
    return 8.0 * (n_features + 4) * _U64 * np.asarray(norms, dtype=np.float64)


class SklearnRadius:
    """scikit-learn's euclidean eps-neighbourhood decision on dense data ``X``.

    Parameters
    ----------
    X : (n, d) array exactly as scikit-learn receives it (its own dtype).
    algorithm, leaf_size : as ``sklearn.cluster.DBSCAN``'s.

    scikit-learn queries with the very array it fitted when ``X`` is C-ordered, and with
    a second C-ordered copy otherwise; its chunked brute force takes another product
    (and keeps the diagonal as computed) in the second case, so that is recorded too.
    """

    def __init__(self, X: np.ndarray, *, algorithm: str = "auto", leaf_size: int = 30):
        X = np.asarray(X)
        self.query_is_fit = bool(X.flags.c_contiguous)
        self.X = np.ascontiguousarray(X)
        self.algorithm = algorithm
        self.leaf_size = leaf_size
        self.path = resolve_path(self.X.shape, self.X.dtype, algorithm)
        self._tree = None

    def decide(self, rows: np.ndarray, cols: np.ndarray, eps: float) -> np.ndarray:
        """Whether ``cols[k]`` is in the eps-neighbourhood of ``rows[k]`` as scikit-learn finds it.

        The decision is directed (a tree may take ``j`` into ``i``'s neighbourhood and
        not ``i`` into ``j``'s when their distance rounds to ``eps``).
        """
        rows = np.asarray(rows, dtype=np.int64)
        cols = np.asarray(cols, dtype=np.int64)
        if rows.size == 0:
            return np.zeros(0, dtype=bool)
        eps = float(eps)
        if self.path in ("kd_tree", "ball_tree"):
            return self._decide_tree(rows, cols, eps)
        if self.path == "reduction":
            return self._decide_blocks(rows, cols, eps)
        return self._decide_chunks(rows, cols, eps)

    def tree_neighborhoods(self, eps: float) -> tuple[np.ndarray, np.ndarray]:
        """Every point's neighbourhood from scikit-learn's tree, in the tree's order.

        Only for the tree paths (cheap there: a few dimensions). The order matters to
        weighted DBSCAN, whose neighbourhood sums scikit-learn takes in this order.
        """
        if self.path not in ("kd_tree", "ball_tree"):
            raise ValueError(f"tree_neighborhoods needs a tree path, not {self.path!r}")
        found = self._query_tree(self.X, float(eps))
        lens = np.fromiter((len(f) for f in found), dtype=np.int64, count=len(found))
        indptr = np.zeros(len(found) + 1, dtype=np.int64)
        np.cumsum(lens, out=indptr[1:])
        return indptr, np.concatenate([np.asarray(f, dtype=np.int64) for f in found])

    # -------------------------------------------------------------- tree
    def _query_tree(self, Q: np.ndarray, eps: float):
        if self._tree is None:
            from sklearn.neighbors import BallTree, KDTree

            cls = KDTree if self.path == "kd_tree" else BallTree
            self._tree = cls(self.X, self.leaf_size, metric="euclidean")
        return self._tree.query_radius(Q, eps, return_distance=False)

    def _decide_tree(self, rows: np.ndarray, cols: np.ndarray, eps: float) -> np.ndarray:
        # A query point's neighbourhood does not depend on the other query points.
        uniq, inv = np.unique(rows, return_inverse=True)
        found = self._query_tree(self.X[uniq], eps)
        return _member(uniq.size, found, inv, cols, self.X.shape[0])

    # -------------------------------------------------------- reduction
    def _decide_blocks(self, rows: np.ndarray, cols: np.ndarray, eps: float) -> np.ndarray:
        from sklearn import get_config
        from sklearn.metrics._pairwise_distances_reduction import RadiusNeighbors

        n = self.X.shape[0]
        chunk = min(n, max(int(get_config().get("pairwise_dist_chunk_size", 256)), 20))
        radius = squared_radius(eps, self.path, self.X.dtype)
        bi, bj = rows // chunk, cols // chunk
        out = np.zeros(rows.size, dtype=bool)
        blocks = np.unique(np.stack([bi, bj], axis=1), axis=0)
        for a, b in blocks.tolist():
            sel = np.flatnonzero((bi == a) & (bj == b))
            xs, ys = a * chunk, b * chunk
            # The same dgemm operands (this block of rows against that block of columns)
            # as in scikit-learn's own pass; "sqeuclidean" takes the same code and
            # compares with the radius given: eps squared as "euclidean" squares it.
            found = RadiusNeighbors.compute(
                X=self.X[xs:xs + chunk], Y=self.X[ys:ys + chunk], radius=radius,
                metric="sqeuclidean", return_distance=False, sort_results=False)
            local_rows = rows[sel] - xs
            uniq, inv = np.unique(local_rows, return_inverse=True)
            out[sel] = _member(uniq.size, found[uniq], inv, cols[sel] - ys,
                               min(chunk, n - ys))
        return out

    # ---------------------------------------------------------- chunked
    def _decide_chunks(self, rows: np.ndarray, cols: np.ndarray, eps: float) -> np.ndarray:
        from sklearn.metrics import pairwise_distances
        from sklearn.utils._chunking import gen_batches, get_chunk_n_rows

        X = self.X
        Q = X if self.query_is_fit else X.copy()
        n = X.shape[0]
        step = get_chunk_n_rows(row_bytes=8 * n, max_n_rows=n)
        out = np.zeros(rows.size, dtype=bool)
        radius = eps * eps
        for sl in gen_batches(n, step):
            sel = np.flatnonzero((rows >= sl.start) & (rows < sl.stop))
            if sel.size == 0:
                continue
            # One chunk covering every row is passed as the query array itself
            # (scikit-learn's "X is Y" fast path when it is the fitted array); the
            # diagonal is set to 0 when query and fitted data are one array, as there.
            chunk = Q if (sl.start == 0 and sl.stop == n) else Q[sl]
            D = pairwise_distances(chunk, X, metric="euclidean", squared=True)
            if Q is X:
                D.flat[sl.start::n + 1] = 0
            out[sel] = D[rows[sel] - sl.start, cols[sel]] <= radius
        return out


def _member(n_rows: int, found, inv: np.ndarray, cols: np.ndarray, n_cols: int) -> np.ndarray:
    """``cols[k] in found[inv[k]]`` for every k (``found``: one index array per row)."""
    lens = np.fromiter((len(f) for f in found), dtype=np.int64, count=n_rows)
    flat = np.concatenate([np.asarray(f, dtype=np.int64) for f in found]) if n_rows else \
        np.empty(0, np.int64)
    keys = np.repeat(np.arange(n_rows, dtype=np.int64), lens) * n_cols + flat
    return np.isin(inv.astype(np.int64) * n_cols + cols, keys)
