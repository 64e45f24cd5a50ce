"""Core-point clusters at every eps at once: a minimum spanning forest and its leaf order.

For one ``min_samples``, DBSCAN's core points at ``eps`` and their clusters are the
connected components of the graph edges whose mutual-reachability weight
``max(d_ij, c_i, c_j)`` is ``<= eps`` (``c`` the core distance) — the same components as
the minimum spanning forest over those weights cut at ``eps``.

The forest is then flattened once into a *leaf order* (merging components in weight
order and concatenating their member lists): every cluster at every threshold is a
contiguous run of that order, separated from the next run by a gap larger than the
threshold. A query at any eps is then a comparison and a cumulative sum over ``n``
values.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.cluster.neighbors import RadiusGraph


@dataclass(frozen=True)
class LeafOrder:
    """Points in single-linkage leaf order; ``gaps[i]`` joins ``order[i]`` and ``order[i+1]``.

    ``gaps`` are squared mutual-reachability distances (``inf`` between separate trees).
    """

    order: np.ndarray  # (n,) int64
    gaps: np.ndarray   # (n - 1,) float64


def mutual_reachability_forest(graph: RadiusGraph, core_sqdist: np.ndarray
                               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Minimum spanning forest ``(u, v, w)`` over squared mutual-reachability weights.

    Edges of points whose core distance is infinite (fewer than ``min_samples`` points
    within ``max_eps``) are left out: such points are never core.

    Examples
    --------
    >>> from core.cluster.neighbors import build_radius_graph
    >>> g = build_radius_graph(np.array([[0.], [1.], [3.]], dtype=np.float32), 2.5)
    >>> [a.tolist() for a in mutual_reachability_forest(g, np.array([1., 1., 4.]))]
    [[0, 1], [1, 2], [1.0, 4.0]]
    """
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import minimum_spanning_tree

    n = graph.n_points
    rows = np.repeat(np.arange(n, dtype=np.int64), np.diff(graph.indptr))
    cols = graph.indices.astype(np.int64)
    upper = cols > rows
    u, v = rows[upper], cols[upper]
    w = np.maximum(graph.sqdist[upper], np.maximum(core_sqdist[u], core_sqdist[v]))
    ok = np.isfinite(w)
    u, v, w = u[ok], v[ok], w[ok]
    if u.size == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.float64)
    # scipy drops explicit zeros (duplicate points): lift them to the smallest float.
    tiny = np.nextafter(0.0, 1.0)
    mst = minimum_spanning_tree(csr_matrix((np.where(w == 0.0, tiny, w), (u, v)),
                                           shape=(n, n))).tocoo()
    fw = np.asarray(mst.data, dtype=np.float64)
    fw[fw == tiny] = 0.0
    keep = np.argsort(fw, kind="stable")
    fu, fv = np.asarray(mst.row, np.int64)[keep], np.asarray(mst.col, np.int64)[keep]
    return np.minimum(fu, fv), np.maximum(fu, fv), fw[keep]


def leaf_order(n: int, u: np.ndarray, v: np.ndarray, w: np.ndarray) -> LeafOrder:
    """Flatten a forest (edges sorted by ascending ``w``) into its single-linkage leaf order.

    Kruskal-style merging: joining two components appends the second's member list to
    the first's and records ``w`` as the gap at the junction. One pass over the edges.

    Examples
    --------
    >>> lo = leaf_order(4, np.array([2, 0]), np.array([3, 1]), np.array([0.5, 1.0]))
    >>> lo.order.tolist(), lo.gaps.tolist()
    ([0, 1, 2, 3], [1.0, inf, 0.5])
    """
    parent = list(range(n))
    head = list(range(n))
    tail = list(range(n))
    nxt = [-1] * n
    gap_after = [np.inf] * n

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b, wt in zip(u.tolist(), v.tolist(), w.tolist()):
        ra, rb = find(a), find(b)
        if ra == rb:
            continue
        nxt[tail[ra]] = head[rb]
        gap_after[tail[ra]] = wt
        tail[ra] = tail[rb]
        parent[rb] = ra
    order = []
    gaps = []
    for r in range(n):
        if parent[r] != r:
            continue
        x = head[r]
        while x != -1:
            order.append(x)
            gaps.append(gap_after[x])
            x = nxt[x]
    return LeafOrder(order=np.asarray(order, dtype=np.int64),
                     gaps=np.asarray(gaps[:-1], dtype=np.float64))


def core_labels(tree: LeafOrder, core: np.ndarray, eps2: float) -> np.ndarray:
    """Cluster of every core point at squared radius ``eps2`` (-1 for the others).

    Clusters are numbered by their lowest point index, as scikit-learn's DBSCAN numbers
    them. Relies on non-core points being isolated at ``eps2`` (true for forests from
    :func:`mutual_reachability_forest`).

    Examples
    --------
    >>> tree = leaf_order(4, np.array([2, 0]), np.array([3, 1]), np.array([0.5, 1.0]))
    >>> core_labels(tree, np.ones(4, bool), 0.7).tolist()
    [0, 1, 2, 2]
    >>> core_labels(tree, np.ones(4, bool), 1.0).tolist()
    [0, 0, 1, 1]
    """
    n = tree.order.size
    brk = np.empty(n, dtype=bool)
    brk[0] = True
    np.greater(tree.gaps, eps2, out=brk[1:])
    starts = np.flatnonzero(brk)
    seg = np.cumsum(brk) - 1                        # segment of each position in the order
    first = np.minimum.reduceat(tree.order, starts)  # lowest point index of each segment
    seg_core = core[first]
    mark = np.zeros(n, dtype=bool)
    mark[first[seg_core]] = True
    rank = np.cumsum(mark) - 1
    seg_label = np.where(seg_core, rank[first], -1)
    labels = np.empty(n, dtype=np.int64)
    labels[tree.order] = seg_label[seg]
    return labels


def dbscan_labels(indptr: np.ndarray, indices: np.ndarray, min_samples: float,
                  sample_weight: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """DBSCAN on explicit eps-neighbourhoods, as ``sklearn.cluster.DBSCAN`` labels them.

    ``indices[indptr[i]:indptr[i + 1]]`` is point i's neighbourhood (itself included when
    it is its own neighbour). A point is core when its neighbourhood holds at least
    ``min_samples`` points (or that much ``sample_weight``); clusters are numbered in the
    order of their lowest core point and a border point takes the lowest-numbered
    cluster among the core points whose neighbourhood holds it — scikit-learn's
    depth-first ``dbscan_inner``, step for step. Neighbourhoods need not be symmetric.

    Returns
    -------
    labels : (n,) int64, -1 for noise.
    core : (n,) bool.

    Examples
    --------
    >>> indptr, indices = np.array([0, 2, 4, 5]), np.array([0, 1, 0, 1, 2])
    >>> [a.tolist() for a in dbscan_labels(indptr, indices, 2)]
    [[0, 0, -1], [True, True, False]]
    """
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import connected_components

    n = indptr.shape[0] - 1
    indices = np.asarray(indices, dtype=np.int64)
    rows = np.repeat(np.arange(n, dtype=np.int64), np.diff(indptr))
    if sample_weight is None:
        weight = np.diff(indptr)
    else:
        # scikit-learn sums each neighbourhood with np.sum (its own summation order).
        w = np.asarray(sample_weight, dtype=np.float64)
        weight = np.array([np.sum(w[indices[indptr[i]:indptr[i + 1]]]) for i in range(n)])
    core = weight >= min_samples
    labels = np.full(n, -1, dtype=np.int64)
    if not core.any():
        return labels, core
    cc = core[rows] & core[indices]
    cu, cv = rows[cc], indices[cc]
    fwd = np.sort(cu * n + cv)
    if not np.array_equal(fwd, np.sort(cv * n + cu)):
        return _dbscan_inner(indptr, indices, core), core
    # Symmetric core-core links: clusters are connected components of the core points.
    n_comp, comp = connected_components(
        csr_matrix((np.ones(cu.size, dtype=np.int8), (cu, cv)), shape=(n, n)), directed=False)
    core_idx = np.flatnonzero(core)
    first = np.full(n_comp, n, dtype=np.int64)
    np.minimum.at(first, comp[core_idx], core_idx)
    used = first < n
    rank = np.full(n_comp, -1, dtype=np.int64)
    rank[np.flatnonzero(used)[np.argsort(first[used], kind="stable")]] = np.arange(int(used.sum()))
    labels[core_idx] = rank[comp[core_idx]]
    # Border points: the first cluster (lowest number) whose core points reach them.
    border = core[rows] & ~core[indices]
    if border.any():
        best = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
        np.minimum.at(best, indices[border], labels[rows[border]])
        hit = best != np.iinfo(np.int64).max
        labels[hit] = best[hit]
    return labels, core


def _dbscan_inner(indptr: np.ndarray, indices: np.ndarray, core: np.ndarray) -> np.ndarray:
    """scikit-learn's ``dbscan_inner`` as written (for one-way neighbourhoods)."""
    n = core.shape[0]
    labels = np.full(n, -1, dtype=np.int64)
    ip, ix, is_core = indptr.tolist(), indices.tolist(), core.tolist()
    lab = labels.tolist()
    label_num = 0
    for start in range(n):
        if lab[start] != -1 or not is_core[start]:
            continue
        stack = [start]
        while stack:
            i = stack.pop()
            if lab[i] != -1:
                continue
            lab[i] = label_num
            if is_core[i]:
                stack.extend(v for v in ix[ip[i]:ip[i + 1]] if lab[v] == -1)
        label_num += 1
    return np.asarray(lab, dtype=np.int64)
