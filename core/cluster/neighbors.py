"""The eps-neighbour graph of pooled vectors, built once: exact (blocked GEMM) or approximate (faiss).

The graph holds, for every point, all other points within ``max_eps`` (Euclidean) and
their **squared** distances in float64, each row sorted by distance. Squared distances
are computed the way scikit-learn's brute-force radius search computes them
(``|x|^2 + |y|^2 - 2 x.y`` in float64 from the input values, clipped at 0) and compared
with ``eps * eps``, so a pair lying exactly at ``eps`` is in or out exactly as in
``sklearn.cluster.DBSCAN``.

Exact build: float32 matrix products over the upper triangle, one row block at a time,
screen candidate pairs with a rounding margin, then recompute the candidates' squared
distances in float64 and keep those ``<= max_eps ** 2``.

The approximate build for large n lives in :mod:`core.cluster.ivf`; :func:`graph_recall`
measures any graph against exact range search on a row sample.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from core.errors import DataError

ProgressFn = Callable[[float, str], None]

#: Default cap on stored undirected pairs (each costs ~24 bytes in the CSR).
DEFAULT_MAX_EDGES = 100_000_000
F32_EPS = float(np.finfo(np.float32).eps)


@dataclass(frozen=True)
class RadiusGraph:
    """Symmetric sparse neighbour lists in CSR form, rows sorted by distance.

    ``indptr`` (n+1,) int64, ``indices`` int32/int64 neighbour ids (self excluded),
    ``sqdist`` float64 squared Euclidean distances, ``method``
    ``"exact"`` (every pair within ``max_eps``) or ``"approx"`` (a subset of them).
    """

    indptr: np.ndarray
    indices: np.ndarray
    sqdist: np.ndarray
    max_eps: float
    method: str

    @property
    def n_points(self) -> int:
        return int(self.indptr.shape[0] - 1)

    @property
    def n_edges(self) -> int:
        """Undirected pairs stored."""
        return int(self.indices.shape[0] // 2)


def validate_vectors(X: object, *, name: str = "X") -> np.ndarray:
    """Check a (n, d) matrix of finite real vectors; return it as a float32/float64 C array.

    Integers become float64 (no precision lost below 2**53), other non-float64 float32.

    Examples
    --------
    >>> validate_vectors(np.ones((2, 3), dtype=np.float32)).shape
    (2, 3)
    """
    if not isinstance(X, np.ndarray):
        if hasattr(X, "__array__") or isinstance(X, (list, tuple)):
            X = np.asarray(X)
        else:
            raise TypeError(f"{name} must be a 2-D numpy array, got {type(X).__name__}")
    if X.ndim != 2:
        raise DataError(f"{name} must be 2-D (n_points, dim), got shape {X.shape}")
    if X.shape[1] < 1:
        raise DataError(f"{name} must hold vectors of at least one value, got shape {X.shape}")
    if X.dtype.kind not in "fiub":
        raise TypeError(f"{name} must hold real numbers, got dtype {X.dtype}")
    if X.dtype.kind in "iu":
        X = X.astype(np.float64)  # exact below 2**53, as scikit-learn converts them
    elif X.dtype != np.float64:
        X = X.astype(np.float32, copy=False)
    X = np.ascontiguousarray(X)
    finite = np.isfinite(X).all(axis=1)
    if not finite.all():
        bad = np.flatnonzero(~finite)
        raise DataError(f"{name}: row {int(bad[0])} holds NaN or infinite values "
                        f"({bad.size} bad row(s) in all)")
    return X


def check_radius(value: object, name: str = "max_eps") -> float:
    """Validate a radius called ``name`` (a finite number > 0) and return it as float."""
    try:
        radius = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number, got {value!r}") from None
    if not np.isfinite(radius) or radius <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return radius


def check_max_eps(max_eps: object) -> float:
    """Validate ``max_eps`` (finite, > 0) and return it as float."""
    return check_radius(max_eps, "max_eps")


def squared_norms(X: np.ndarray) -> np.ndarray:
    """Row squared norms in float64 (as scikit-learn's euclidean reductions compute them)."""
    out = np.empty(X.shape[0], dtype=np.float64)
    step = 16384
    for s in range(0, X.shape[0], step):
        block = X[s:s + step].astype(np.float64)
        out[s:s + step] = np.einsum("ij,ij->i", block, block)
    return out


def pair_sqdist(X: np.ndarray, norms: np.ndarray, rows: np.ndarray, cols: np.ndarray,
                *, chunk: int = 8192) -> np.ndarray:
    """Exact float64 squared distances of the pairs ``(rows[k], cols[k])``.

    ``|x|^2 + |y|^2 - 2 x.y`` with the dot product in float64, clipped at 0.
    """
    out = np.empty(rows.shape[0], dtype=np.float64)
    for s in range(0, rows.shape[0], chunk):
        r = rows[s:s + chunk]
        c = cols[s:s + chunk]
        dots = np.einsum("ij,ij->i", X[r].astype(np.float64), X[c].astype(np.float64))
        out[s:s + chunk] = norms[r] + norms[c] - 2.0 * dots
    np.maximum(out, 0.0, out=out)
    return out


def screen_pairs(S: np.ndarray, row_norms: np.ndarray, col_norms: np.ndarray,
            limit: float) -> tuple[np.ndarray, np.ndarray]:
    """Candidate pairs ``|x|^2 + |y|^2 - 2 S <= limit`` of a block of dot products ``S``.

    May return extra pairs (the caller recomputes exact distances), never misses one.
    When the column norms are nearly equal (unit vectors), a per-row bound on ``S``
    alone saves three passes over the block.
    """
    lo, hi = float(col_norms.min()), float(col_norms.max())
    if hi - lo <= 1e-3 * limit:
        bound = (0.5 * (row_norms.astype(np.float64) + lo - limit)).astype(np.float32)
        return np.nonzero(S >= bound[:, None])
    S *= -2.0
    S += row_norms[:, None]
    S += col_norms[None, :]
    return np.nonzero(S <= np.float32(limit))


def build_radius_graph(X: np.ndarray, max_eps: float, *, block_rows: int | None = None,
                       max_edges: int = DEFAULT_MAX_EDGES,
                       progress: ProgressFn | None = None,
                       norms: np.ndarray | None = None) -> RadiusGraph:
    """Exact graph of all pairs with Euclidean distance ``<= max_eps``.

    Parameters
    ----------
    X : (n, d) validated float32/float64 array (see :func:`validate_vectors`).
    max_eps : radius of the graph.
    block_rows : rows per matrix-product block (default: keeps a block under ~128 MB).
    max_edges : raise ``ValueError`` as soon as more undirected pairs than this are found.
    progress : optional ``progress(fraction, message)`` callback.
    norms : :func:`squared_norms` of ``X`` if the caller has them.

    Examples
    --------
    >>> X = np.eye(3, dtype=np.float32)
    >>> build_radius_graph(X, 1.5).n_edges
    3
    """
    n, d = X.shape
    r2 = max_eps * max_eps
    if n == 0:
        return symmetric_csr(0, *(np.empty(0, t) for t in (np.int64, np.int64, np.float64)),
                             max_eps=max_eps, method="exact")
    norms = squared_norms(X) if norms is None else norms
    X32 = X if X.dtype == np.float32 else X.astype(np.float32)
    n32 = norms.astype(np.float32)
    # Rounding bound of the float32 screen: |2 x.y error| <= d * u * (|x|^2 + |y|^2); x2 margin.
    tol = 4.0 * (d + 2) * F32_EPS * float(norms.max()) + 1e-12
    if block_rows is None:
        block_rows = int(max(64, min(4096, 32_000_000 // max(n, 1))))
    rows_out: list[np.ndarray] = []
    cols_out: list[np.ndarray] = []
    d2_out: list[np.ndarray] = []
    n_found = 0
    # Upper-triangle work is ~quadratic in the start row: report progress by work done.
    total_work = n * (n + 1) / 2.0
    done = 0.0
    for s in range(0, n, block_rows):
        e = min(n, s + block_rows)
        S = X32[s:e] @ X32[s:].T                      # (b, n - s) float32
        ri, ci = screen_pairs(S, n32[s:e], n32[s:], r2 + tol)
        del S
        ci += s
        ri += s
        upper = ci > ri
        ri = ri[upper]
        ci = ci[upper]
        if ri.size:
            d2 = pair_sqdist(X, norms, ri, ci)
            keep = d2 <= r2
            ri, ci, d2 = ri[keep], ci[keep], d2[keep]
            n_found += ri.size
            if n_found > max_edges:
                raise ValueError(
                    f"the neighbour graph at max_eps={max_eps:g} holds more than "
                    f"max_edges={max_edges} pairs ({n_found} after {e} of {n} rows): lower "
                    f"max_eps or use method='approx' (k-nearest-neighbour cap)")
            rows_out.append(ri.astype(np.int64))
            cols_out.append(ci.astype(np.int64))
            d2_out.append(d2)
        done += (e - s) * (n - s - (e - s) / 2.0)
        if progress is not None:
            progress(min(done / total_work, 1.0) * 0.95, f"rows {e}/{n}, {n_found} pairs")
    rows = np.concatenate(rows_out) if rows_out else np.empty(0, np.int64)
    cols = np.concatenate(cols_out) if cols_out else np.empty(0, np.int64)
    d2 = np.concatenate(d2_out) if d2_out else np.empty(0, np.float64)
    graph = symmetric_csr(n, rows, cols, d2, max_eps=max_eps, method="exact")
    if progress is not None:
        progress(1.0, f"{graph.n_edges} pairs")
    return graph


def symmetric_csr(n: int, rows: np.ndarray, cols: np.ndarray, d2: np.ndarray, *,
                   max_eps: float, method: str) -> RadiusGraph:
    """CSR of undirected pairs (rows < cols), each row sorted by (distance, neighbour id)."""
    r = np.concatenate([rows, cols])
    c = np.concatenate([cols, rows])
    w = np.concatenate([d2, d2])
    order = np.lexsort((c, w, r))
    counts = np.bincount(r, minlength=n)
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    idx_dtype = np.int32 if n < 2**31 - 1 else np.int64
    return RadiusGraph(indptr=indptr, indices=c[order].astype(idx_dtype), sqdist=w[order],
                       max_eps=float(max_eps), method=method)


def graph_recall(graph: RadiusGraph, X: np.ndarray, *, sample: int = 1000, seed: int = 0,
                 block_rows: int = 256, radii: tuple[float, ...] = ()) -> dict[str, float]:
    """Recall of a graph's pairs against exact range search on a random subsample of rows.

    Returns ``{"recall", "n_rows", "n_true_pairs", "n_found_pairs"}``: the fraction of the
    true neighbours within ``graph.max_eps`` of the sampled rows that the graph stores;
    plus ``"recall@R"`` for each R in ``radii``: the same over true pairs within R.

    Examples
    --------
    >>> X = np.eye(3, dtype=np.float32)
    >>> graph_recall(build_radius_graph(X, 1.5), X)["recall"]
    1.0
    """
    n = X.shape[0]
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(n, size=min(sample, n), replace=False))
    norms = squared_norms(X)
    X32 = np.ascontiguousarray(X, dtype=np.float32)
    r2 = graph.max_eps ** 2
    tol = 4.0 * (X.shape[1] + 2) * F32_EPS * float(norms.max()) + 1e-12
    n32 = norms.astype(np.float32)
    n_true = n_found = 0
    true_d2: list[np.ndarray] = []
    hit: list[np.ndarray] = []
    for s in range(0, rows.size, block_rows):
        rb = rows[s:s + block_rows]
        S = X32[rb] @ X32.T
        bi, ci = screen_pairs(S, n32[rb], n32, r2 + tol)
        del S
        ri = rb[bi]
        ok = ci != ri
        ri, ci = ri[ok], ci[ok]
        d2 = pair_sqdist(X, norms, ri, ci)
        ri, ci, d2 = ri[d2 <= r2], ci[d2 <= r2], d2[d2 <= r2]
        n_true += ri.size
        # Membership of (ri, ci) in the graph rows: compare sorted keys.
        lens = graph.indptr[rb + 1] - graph.indptr[rb]
        g_rows = np.repeat(rb, lens)
        g_pos = np.concatenate([np.arange(graph.indptr[i], graph.indptr[i + 1]) for i in rb]) \
            if rb.size else np.empty(0, np.int64)
        g_keys = g_rows.astype(np.int64) * n + graph.indices[g_pos].astype(np.int64)
        t_keys = ri.astype(np.int64) * n + ci.astype(np.int64)
        found = np.isin(t_keys, g_keys)
        n_found += int(found.sum())
        true_d2.append(d2)
        hit.append(found)
    recall = 1.0 if n_true == 0 else n_found / n_true
    out = {"recall": float(recall), "n_rows": int(rows.size), "n_true_pairs": int(n_true),
           "n_found_pairs": int(n_found)}
    all_d2 = np.concatenate(true_d2) if true_d2 else np.empty(0)
    all_hit = np.concatenate(hit) if hit else np.empty(0, bool)
    for r in radii:
        within = all_d2 <= r * r
        out[f"recall@{r:g}"] = float(all_hit[within].mean()) if within.any() else 1.0
    return out

