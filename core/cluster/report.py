"""eps guidance and cluster quality on top of :class:`core.cluster.NeighborGraph`.

* :func:`suggest_eps` — the knee of the sorted k-distance curve (Kneedle);
* :func:`eps_sweep` — clusters / unclustered fraction / largest share (and ARI / purity
  against known persons) over a grid of eps, one forest per min_samples;
* :func:`summarize_clusters` — per cluster: size, mean intra-cluster cosine similarity,
  nearest known identity, medoid and representative videos.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from core.cluster.graph import NeighborGraph
from core.errors import DataError

SWEEP_COLUMNS = ["eps", "n_clusters", "unclustered_frac", "largest_share", "ari", "purity"]
SUMMARY_COLUMNS = ["cluster", "size", "mean_intra_sim", "nearest_identity",
                   "nearest_identity_sim", "medoid", "representatives"]


def knee_index(y: np.ndarray) -> int:
    """Index of the knee of an ascending convex curve (Kneedle: farthest below the chord).

    Examples
    --------
    >>> knee_index(np.array([1, 1, 1, 1, 2, 4, 8, 16], dtype=float))
    5
    """
    y = np.asarray(y, dtype=np.float64)
    if y.size < 3 or y[-1] == y[0]:
        return int(y.size - 1) if y.size else 0
    x = np.linspace(0.0, 1.0, y.size)
    yn = (y - y[0]) / (y[-1] - y[0])
    return int(np.argmax(x - yn))


def suggest_eps(graph: NeighborGraph, min_samples: int = 2) -> float:
    """Suggested eps: the knee of the sorted ``min_samples``-distance curve.

    Points whose k-th neighbour lies beyond ``max_eps`` enter the curve at ``max_eps``
    (so the suggestion never exceeds ``max_eps``; a knee at ``max_eps`` means: rebuild
    with a larger ``max_eps``).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = np.concatenate([rng.normal(0, 0.01, (20, 8)), rng.normal(0, 1, (20, 8))])
    >>> eps = suggest_eps(NeighborGraph.build(X.astype(np.float32), max_eps=3.0), 2)
    >>> 0.01 < eps < 3.0
    True
    """
    curve = graph.k_distance(min_samples)
    if curve.size == 0:
        return float(graph.max_eps)
    curve = np.minimum(curve, graph.max_eps)
    return float(min(max(curve[knee_index(curve)], np.nextafter(0.0, 1.0)), graph.max_eps))


def _noise_as_singletons(labels: np.ndarray) -> np.ndarray:
    out = labels.astype(np.int64).copy()
    noise = out < 0
    out[noise] = out.max(initial=-1) + 1 + np.arange(int(noise.sum()))
    return out


def clustering_ari(labels: np.ndarray, truth: np.ndarray) -> float:
    """Adjusted Rand index of DBSCAN labels against true persons, -1 as singleton clusters.

    Counting each unclustered point as its own cluster scores a stranger seen once
    correctly left alone, and a recurring stranger left unclustered as a miss.

    Examples
    --------
    >>> clustering_ari(np.array([0, 0, -1, -1]), np.array(["a", "a", "b", "c"]))
    1.0
    """
    from sklearn.metrics import adjusted_rand_score

    return float(adjusted_rand_score(np.asarray(truth), _noise_as_singletons(np.asarray(labels))))


def purity(labels: np.ndarray, truth: np.ndarray) -> float:
    """Share of clustered points whose true person is their cluster's majority person.

    NaN when nothing is clustered.

    Examples
    --------
    >>> purity(np.array([0, 0, 0, 1, -1]), np.array([5, 5, 6, 7, 8]))
    0.75
    """
    clustered = labels >= 0
    if not clustered.any():
        return float("nan")
    lab = labels[clustered]
    _, t = np.unique(truth[clustered], return_inverse=True)
    n_t = int(t.max()) + 1
    keys, counts = np.unique(lab.astype(np.int64) * n_t + t, return_counts=True)
    best = pd.Series(counts).groupby(keys // n_t).max()
    return float(best.sum() / lab.size)


def eps_sweep(graph: NeighborGraph, eps_values: Sequence[float], min_samples: int = 2,
              truth: np.ndarray | None = None) -> pd.DataFrame:
    """Cluster statistics over a grid of eps at one ``min_samples``.

    Columns: ``eps``, ``n_clusters``, ``unclustered_frac``, ``largest_share`` (largest
    cluster's share of all points), and — with ``truth`` (true person per point) —
    ``ari`` (adjusted Rand index, each unclustered point its own singleton cluster) and
    ``purity`` (see :func:`purity`). The forest is built once for the whole sweep.

    Examples
    --------
    >>> X = np.array([[0, 0], [0, 1], [0, 2], [0, 9]], dtype=np.float32)
    >>> eps_sweep(NeighborGraph.build(X, max_eps=2), [0.5, 1.0], 2)["n_clusters"].tolist()
    [0, 1]
    """
    eps_arr = np.asarray(list(eps_values), dtype=np.float64)
    if eps_arr.ndim != 1 or eps_arr.size == 0:
        raise ValueError(f"eps_values must be a non-empty 1-D sequence, got {eps_values!r}")
    if truth is not None:
        truth = np.asarray(truth)
        if truth.shape != (graph.n_points,):
            raise DataError(f"truth must hold one label per point ({graph.n_points}), "
                            f"got shape {truth.shape}")
    n = graph.n_points
    rows = []
    for eps in eps_arr:
        labels = graph.dbscan(float(eps), min_samples)
        sizes = np.bincount(labels[labels >= 0]) if (labels >= 0).any() else np.zeros(0, int)
        row = {"eps": float(eps), "n_clusters": int(sizes.size),
               "unclustered_frac": float((labels < 0).mean()) if n else 0.0,
               "largest_share": float(sizes.max() / n) if sizes.size else 0.0,
               "ari": np.nan, "purity": np.nan}
        if truth is not None:
            row["ari"] = clustering_ari(labels, truth)
            row["purity"] = purity(labels, truth)
        rows.append(row)
    return pd.DataFrame(rows, columns=SWEEP_COLUMNS)


def summarize_clusters(X: np.ndarray, labels: np.ndarray, *, identity_X: np.ndarray | None = None,
                       identity_ids: Sequence[int] | None = None,
                       names: Sequence[str] | None = None, n_representatives: int = 3) -> pd.DataFrame:
    """One row per cluster (``-1`` excluded), largest first.

    Columns: ``cluster``, ``size``, ``mean_intra_sim`` (mean cosine similarity over the
    cluster's pairs; NaN for a single member), ``nearest_identity`` /
    ``nearest_identity_sim`` (the known identity whose mean vector ``identity_X`` has the
    highest mean cosine similarity to the members; a noise cluster sitting on a known
    identity is a likely ground-truth error), ``medoid`` (the member most similar to the
    cluster mean; a name if ``names`` is given, else a row index) and ``representatives``
    (the ``n_representatives`` members closest to the mean, best first).

    ``X`` rows are expected L2-normalised (pooled vectors); ``identity_X`` likewise
    (per-identity mean of labelled pooled vectors, re-normalised).

    Examples
    --------
    >>> X = np.array([[1, 0], [0.8, 0.6], [0, 1]], dtype=np.float32)
    >>> summarize_clusters(X, np.array([0, 0, -1]))[["cluster", "size"]].values.tolist()
    [[0, 2]]
    """
    X = np.asarray(X)
    labels = np.asarray(labels)
    if X.ndim != 2 or labels.shape != (X.shape[0],):
        raise DataError(f"labels must hold one entry per row of X ({X.shape[0]}), "
                        f"got shape {labels.shape}")
    if names is not None and len(names) != X.shape[0]:
        raise DataError(f"names must hold one entry per row of X ({X.shape[0]}), got {len(names)}")
    clustered = np.flatnonzero(labels >= 0)
    if clustered.size == 0:
        return pd.DataFrame(columns=SUMMARY_COLUMNS)
    lab = labels[clustered].astype(np.int64)
    Xc = X[clustered].astype(np.float64)
    ids, inv, sizes = np.unique(lab, return_inverse=True, return_counts=True)
    # Per-cluster sums of member vectors as one sparse (clusters x members) product: each
    # row adds its members in row order, exactly as a sequential scatter-add would.
    from scipy.sparse import csr_matrix

    sums = np.asarray(csr_matrix((np.ones(inv.size), (inv, np.arange(inv.size))),
                                 shape=(ids.size, inv.size)) @ Xc)
    self_sim = np.einsum("ij,ij->i", Xc, Xc)
    self_tot = np.bincount(inv, weights=self_sim, minlength=ids.size)
    sq = np.einsum("ij,ij->i", sums, sums)
    with np.errstate(invalid="ignore", divide="ignore"):
        intra = np.where(sizes > 1, (sq - self_tot) / (sizes * (sizes - 1.0)), np.nan)
    # Rank members by similarity to their cluster mean: medoid + representatives.
    score = np.einsum("ij,ij->i", Xc, sums[inv]) / sizes[inv]
    order = np.lexsort((-score, inv))
    first = np.searchsorted(inv[order], np.arange(ids.size))
    members = clustered[order]
    label_of = (lambda i: names[i]) if names is not None else (lambda i: int(i))
    # Rows in the output order (largest first, then by cluster id): no DataFrame sort.
    rank = np.lexsort((ids, -sizes))
    medoid = [label_of(members[first[c]]) for c in rank]
    reps = [[label_of(i) for i in members[first[c]:first[c] + min(n_representatives, sizes[c])]]
            for c in rank]
    nearest = np.zeros(ids.size, dtype=np.int64)
    nearest_known = np.zeros(ids.size, dtype=bool)
    nearest_sim = np.full(ids.size, np.nan)
    if identity_X is not None:
        identity_X = np.asarray(identity_X, dtype=np.float64)
        if identity_X.ndim != 2 or identity_X.shape[1] != X.shape[1]:
            raise DataError(f"identity_X must be (n_identities, {X.shape[1]}), got {identity_X.shape}")
        if identity_ids is None:
            identity_ids = np.arange(1, identity_X.shape[0] + 1)
        identity_ids = np.asarray(identity_ids)
        if identity_ids.shape != (identity_X.shape[0],):
            raise DataError(f"identity_ids must hold one id per row of identity_X "
                            f"({identity_X.shape[0]}), got shape {identity_ids.shape}")
        if identity_X.shape[0]:
            sims = (sums / sizes[:, None]) @ identity_X.T   # mean member-identity similarity
            best = sims.argmax(axis=1)
            nearest = identity_ids[best].astype(np.int64)
            nearest_known[:] = True
            nearest_sim = sims[np.arange(ids.size), best]
    return pd.DataFrame({
        "cluster": ids[rank], "size": sizes[rank], "mean_intra_sim": intra[rank],
        "nearest_identity": pd.arrays.IntegerArray(nearest[rank], ~nearest_known[rank]),
        "nearest_identity_sim": nearest_sim[rank], "medoid": medoid, "representatives": reps})
