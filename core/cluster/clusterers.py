"""The one clusterer interface: name -> how the distractors are clustered (DBSCAN today).

A clusterer is ``cluster(X, eps, min_samples) -> (labels, eps)`` over unit rows ``X``
(labels ``-1`` = unclustered, like scikit-learn; ``eps=None`` lets the clusterer pick
its own scale and report it). Training's noise classes
(:func:`core.learn.fit.fit` via :func:`cluster_distractors`) go through this table, so
a second clusterer is one module plus one :func:`register_clusterer` line: HDBSCAN, for
one, would reuse :meth:`core.cluster.graph.NeighborGraph.core_distances` and the
mutual-reachability forest of :mod:`core.cluster.tree`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

#: ``cluster(X, eps, min_samples) -> (labels int64 (n,), eps used)``
ClusterFn = Callable[[np.ndarray, "float | None", int], "tuple[np.ndarray, float]"]


@dataclass(frozen=True)
class Clusterer:
    """A registered clusterer: its ``name``, a one-line ``summary`` and its ``cluster`` function."""

    name: str
    summary: str
    cluster: ClusterFn


_REGISTRY: dict[str, Clusterer] = {}


def register_clusterer(clusterer: Clusterer) -> Clusterer:
    """Add ``clusterer`` to the table (its name must be new); return it."""
    if clusterer.name in _REGISTRY:
        raise ValueError(f"clusterer {clusterer.name!r} is already registered")
    _REGISTRY[clusterer.name] = clusterer
    return clusterer


def unregister_clusterer(name: str) -> None:
    """Remove a clusterer added by :func:`register_clusterer` (tests, plug-ins)."""
    _REGISTRY.pop(name, None)


def clusterer_names() -> tuple[str, ...]:
    """Registered clusterer names.

    >>> clusterer_names()
    ('dbscan',)
    """
    return tuple(_REGISTRY)


def get_clusterer(name: str) -> Clusterer:
    """The clusterer called ``name``; ``ValueError`` lists the options.

    >>> get_clusterer("kmeans")
    Traceback (most recent call last):
    ValueError: unknown clusterer 'kmeans'; choose one of dbscan
    """
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown clusterer {name!r}; choose one of {', '.join(_REGISTRY)}") from None


def cluster_distractors(X: np.ndarray, eps: float | None, min_samples: int, *,
                        method: str = "dbscan") -> tuple[np.ndarray, float]:
    """``(labels, eps)`` of the pooled distractors ``X`` by the clusterer ``method``.

    >>> labels, eps = cluster_distractors(np.array([[1, 0], [1, 0], [0, 1]], np.float32), 0.5, 2)
    >>> labels.tolist(), eps
    ([0, 0, -1], 0.5)
    """
    clusterer = get_clusterer(method)
    if len(X) == 0:
        return np.zeros(0, dtype=np.int64), float("nan") if eps is None else float(eps)
    labels, used = clusterer.cluster(np.asarray(X, dtype=np.float32), eps, int(min_samples))
    return np.asarray(labels, dtype=np.int64), float(used)


def dbscan_distractors(X: np.ndarray, eps: float | None,
                       min_samples: int) -> tuple[np.ndarray, float]:
    """``(labels, eps)``: DBSCAN (-1 = unclustered) of pooled distractors, Euclidean on
    unit rows; ``eps=None`` chooses eps from the data (:func:`core.cluster.eps_choice.auto_dbscan`).

    >>> labels, eps = dbscan_distractors(np.array([[1, 0], [1, 0], [0, 1]], np.float32), 0.5, 2)
    >>> labels.tolist(), eps
    ([0, 0, -1], 0.5)
    """
    from core.cluster.graph import NeighborGraph

    if len(X) == 0:
        return np.zeros(0, dtype=np.int64), float("nan") if eps is None else float(eps)
    X = np.asarray(X, dtype=np.float32)
    if eps is None:
        from core.cluster.eps_choice import auto_dbscan

        eps, labels = auto_dbscan(X, min_samples)
        return labels, eps
    graph = NeighborGraph.build(X, max_eps=eps)
    return np.asarray(graph.dbscan(eps, min_samples), dtype=np.int64), float(eps)


# ----------------------------------------------------------------------- the registry
register_clusterer(Clusterer("dbscan", "DBSCAN on the neighbour graph (eps=None: the automatic eps)",
                             dbscan_distractors))

__all__ = ["ClusterFn", "Clusterer", "cluster_distractors", "clusterer_names", "dbscan_distractors",
           "get_clusterer", "register_clusterer", "unregister_clusterer"]
