"""Approximate eps-neighbour graph for large n: range search inside k-means cells.

The points are split into ``nlist`` k-means cells (faiss); every point is also listed in
its ``nprobe`` nearest cells. For each cell, the points whose nearest cell it is are
compared (float32 matrix products) with every point listed in it; candidate pairs get
their exact float64 squared distance and those within ``max_eps`` are kept. The result
is a subset of the exact graph (no per-point neighbour cap, so any ``min_samples`` can be
asked); :func:`core.cluster.neighbors.graph_recall` measures what it misses.
"""

from __future__ import annotations

import numpy as np

from core.cluster.neighbors import (F32_EPS, DEFAULT_MAX_EDGES, ProgressFn, RadiusGraph, pair_sqdist,
                            screen_pairs, squared_norms, symmetric_csr)


def build_ivf_graph(X: np.ndarray, max_eps: float, *, nlist: int | None = None, nprobe: int = 12,
                    max_edges: int = DEFAULT_MAX_EDGES, seed: int = 0,
                    progress: ProgressFn | None = None) -> RadiusGraph:
    """Approximate graph: range search inside an inverted-file partition (faiss k-means).

    The points are split into ``nlist`` k-means cells (faiss); every point is also listed
    in its ``nprobe`` nearest cells. For each cell, the points whose *nearest* cell it is
    are compared (blocked float32 matrix products) with every point listed in it, and
    pairs within ``max_eps`` kept. A true pair is missed only when neither point lies in
    one of the other's ``nprobe`` nearest cells; every stored pair is a true pair with its
    exact float64 distance, and no per-point neighbour cap applies, so any
    ``min_samples`` can be asked. Measure the recall with :func:`graph_recall`.

    Examples
    --------
    >>> X = np.eye(4, dtype=np.float32)
    >>> build_ivf_graph(X, 1.5, nlist=1).n_edges
    6
    """
    import faiss

    n, d = X.shape
    if nprobe < 1:
        raise ValueError(f"nprobe must be >= 1, got {nprobe}")
    if nlist is None:
        nlist = int(np.clip(round(1.5 * np.sqrt(n)), 1, 4096))
    nlist = int(max(1, min(nlist, n // 40)))     # faiss wants >= 39 training points per cell
    nprobe = min(nprobe, nlist)
    r2 = max_eps * max_eps
    X32 = np.ascontiguousarray(X, dtype=np.float32)
    norms = squared_norms(X)
    n32 = norms.astype(np.float32)
    tol = 4.0 * (d + 2) * F32_EPS * float(norms.max()) + 1e-12
    report = progress or (lambda f, m="": None)

    rng = np.random.default_rng(seed)
    # faiss's OpenMP threads spin-wait: on a busy shared machine one thread is faster.
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        assign = _ivf_assign(X32, nlist, nprobe, rng, seed, report) if nlist > 1 \
            else np.zeros((n, 1), dtype=np.int64)
    finally:
        faiss.omp_set_num_threads(threads)
    primary = assign[:, 0]
    p_order = np.argsort(primary, kind="stable")
    p_ptr = np.concatenate([[0], np.cumsum(np.bincount(primary, minlength=nlist))])
    flat = assign.reshape(-1)
    e_order = np.argsort(flat, kind="stable") // assign.shape[1]
    e_ptr = np.concatenate([[0], np.cumsum(np.bincount(flat, minlength=nlist))])

    from threadpoolctl import threadpool_limits

    # Cells give small matrix products: one BLAS thread runs them many times faster
    # than several threads that spin-wait for each other on a shared machine.
    with threadpool_limits(1, user_api="blas"):
        lo, hi = _cell_pairs(X32, n32, p_order, p_ptr, e_order, e_ptr, r2 + tol,
                             max_edges=max_edges, max_eps=max_eps, report=report)
    key = np.unique(lo * n + hi)
    rows, cols = key // n, key % n
    report(0.9, f"exact distances of {key.size} pairs")
    d2 = pair_sqdist(X, norms, rows, cols)
    keep = d2 <= r2
    if int(keep.sum()) > max_edges:
        raise ValueError(f"the neighbour graph at max_eps={max_eps:g} holds {int(keep.sum())} "
                         f"pairs, more than max_edges={max_edges}: lower max_eps")
    graph = symmetric_csr(n, rows[keep], cols[keep], d2[keep], max_eps=max_eps,
                           method="approx")
    report(1.0, f"{graph.n_edges} pairs")
    return graph


def _cell_pairs(X32: np.ndarray, n32: np.ndarray, p_order: np.ndarray, p_ptr: np.ndarray,
                e_order: np.ndarray, e_ptr: np.ndarray, limit: float, *, max_edges: int,
                max_eps: float, report: ProgressFn) -> tuple[np.ndarray, np.ndarray]:
    """Candidate pairs ``(lo, hi)`` (lo < hi, may repeat) found inside the cells."""
    nlist = p_ptr.size - 1
    lo_out: list[np.ndarray] = []
    hi_out: list[np.ndarray] = []
    n_cand = 0
    budget = 16_000_000                      # float32 entries per product block
    for cell in range(nlist):
        P = p_order[p_ptr[cell]:p_ptr[cell + 1]]
        E = np.sort(e_order[e_ptr[cell]:e_ptr[cell + 1]])
        if P.size == 0:
            continue
        XE = X32[E]
        step = max(1, budget // max(E.size, 1))
        for s in range(0, P.size, step):
            Pb = P[s:s + step]
            S = X32[Pb] @ XE.T
            a, b = screen_pairs(S, n32[Pb], n32[E], limit)
            del S
            i, j = Pb[a], E[b]
            ok = i != j
            i, j = i[ok], j[ok]
            lo_out.append(np.minimum(i, j))
            hi_out.append(np.maximum(i, j))
            n_cand += i.size
            if n_cand > 4 * max_edges:
                raise ValueError(
                    f"the neighbour graph at max_eps={max_eps:g} holds more than "
                    f"max_edges={max_edges} pairs (over {n_cand} candidates after {cell} of "
                    f"{nlist} cells): lower max_eps")
        if cell % 16 == 0:
            report(0.25 + 0.6 * (cell + 1) / nlist, f"cell {cell + 1}/{nlist}, {n_cand} candidates")
    if not lo_out:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    return np.concatenate(lo_out).astype(np.int64), np.concatenate(hi_out).astype(np.int64)


def _ivf_assign(X32: np.ndarray, nlist: int, nprobe: int, rng: np.random.Generator, seed: int,
                report: ProgressFn) -> np.ndarray:
    """The ``nprobe`` nearest of ``nlist`` k-means cells of every row (nearest first)."""
    import faiss

    n, d = X32.shape
    sample = rng.choice(n, size=min(n, 40 * nlist), replace=False)
    km = faiss.Kmeans(d, nlist, niter=10, seed=seed, verbose=False)
    km.train(X32[np.sort(sample)])
    centroids = faiss.IndexFlatL2(d)
    centroids.add(km.centroids)
    assign = np.empty((n, nprobe), dtype=np.int64)
    step = 50_000
    for s in range(0, n, step):
        assign[s:s + step] = centroids.search(X32[s:s + step], nprobe)[1]
        report(0.25 * min(s + step, n) / n, f"cells {min(s + step, n)}/{n}")
    return assign
