"""Exact k-distances: each vector's distance to its k-th nearest vector (itself counted).

The curve DBSCAN's eps is read from (:mod:`core.cluster.eps_choice`). Blocked like
:func:`core.learn.knn.nearest_labelled` (the same products, the same block sizes), so
memory stays bounded, without this package depending on the recognition package.
"""

from __future__ import annotations

import numpy as np

_BLOCK_ELEMS = 1 << 25  # similarities held at once (128 MiB of float32)


def kth_neighbour_distances(X: np.ndarray, k: int, *, block: int = 4096) -> np.ndarray:
    """(n,) float64 Euclidean distance of each row of ``X`` (unit rows; others are
    normalised) to its ``min(k, n)``-th nearest row, the row itself counted as DBSCAN
    counts it.

    >>> X = np.eye(3, dtype=np.float32)
    >>> kth_neighbour_distances(X, 1).tolist(), kth_neighbour_distances(X, 2).round(4).tolist()
    ([0.0, 0.0, 0.0], [1.4142, 1.4142, 1.4142])
    """
    X = np.asarray(X, dtype=np.float32)
    n = len(X)
    if n == 0:
        return np.zeros(0, dtype=np.float64)
    norms = np.sqrt(np.einsum("ij,ij->i", X, X))
    if not np.all(np.abs(norms - 1.0) < 1e-4):
        X = X / np.where(norms > 0, norms, 1.0)[:, None]
    kk = min(int(k), n)
    step = int(max(1, min(block, _BLOCK_ELEMS // n)))
    sim = np.empty(n, dtype=np.float32)
    for s in range(0, n, step):
        e = min(s + step, n)
        S = X[s:e] @ X.T
        sim[s:e] = np.partition(S, n - kk, axis=1)[:, n - kk]  # the kk-th largest
    return np.sqrt(np.clip(2.0 - 2.0 * sim.astype(np.float64), 0.0, None))


__all__ = ["kth_neighbour_distances"]
