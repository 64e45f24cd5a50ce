"""Cached noise-cluster computations: the neighbour graph of the distractors, DBSCAN,
k-distance, eps sweeps, identity centroids and cluster summaries.

Part of the caching layer :mod:`dashboard.cache` (built on :mod:`dashboard.cache.datasets`).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
import streamlit as st

from core.cluster.eps_choice import choose_eps, eps_on_graph, k_distance_knee  # training's rule
from dashboard.cache.datasets import load_dataset, load_truth, noise_rows
from dashboard.dataset_spec import DatasetSpec, files_fingerprint

#: The largest radius the neighbour graph is built to (unit vectors: distances in [0, 2];
#: the original solution clustered at 1.2).
MAX_EPS = 1.5
#: Edge budget of the graph (the pairs :func:`graph_radius` aims at). Building the
#: symmetric CSR peaks at ~150 bytes per stored pair (``core.resources.
#: CLUSTER_BYTES_PER_EDGE``, measured): 4M pairs ≈ 0.6 GiB at the peak, ~0.1 GiB kept
#: (CSR + forests) once built.
GRAPH_EDGE_BUDGET = 4_000_000
#: Hard cap passed to the build: the radius is a sampled estimate, so allow twice the
#: budget (≈ 1.1 GiB peak) before the build stops with an error instead of growing on.
GRAPH_MAX_EDGES = 2 * GRAPH_EDGE_BUDGET
#: Never build below this radius, whatever the budget says (the slider needs room).
MIN_GRAPH_EPS = 0.8


def graph_radius(X: np.ndarray, *, budget: int = GRAPH_EDGE_BUDGET, ceiling: float = MAX_EPS,
                 floor: float = MIN_GRAPH_EPS, sample: int = 1000, seed: int = 0) -> float:
    """The radius to build the neighbour graph at so that it holds about ``budget`` pairs.

    Small sets get the full ``ceiling``; for large ones the radius is the distance
    quantile (estimated on a seeded sample of pairs) at which ``budget`` of the
    ``n (n - 1) / 2`` pairs fall inside, clipped to ``[floor, ceiling]``. This keeps
    memory bounded at any scale while leaving eps all the room that matters.

    >>> graph_radius(np.eye(4, dtype=np.float32))
    1.5
    """
    X = np.asarray(X, dtype=np.float32)
    n = len(X)
    pairs = n * (n - 1) / 2
    if pairs <= budget:
        return float(ceiling)
    rng = np.random.default_rng(seed)
    a = X[rng.choice(n, size=min(sample, n), replace=False)]
    b = X[rng.choice(n, size=min(20 * sample, n), replace=False)]
    d = np.sqrt(np.maximum(2.0 - 2.0 * (a @ b.T), 0.0)).ravel()
    d = d[d > 1e-6]  # a point and itself
    r = float(np.quantile(d, budget / pairs)) if d.size else float(ceiling)
    return float(np.clip(np.floor(r * 100) / 100, floor, ceiling))


@st.cache_resource(max_entries=4, show_spinner="Building the neighbour graph of the distractors…")
def _graph_cached(spec: DatasetSpec, fingerprint: tuple, max_eps: float | None):
    from core.cluster import NeighborGraph

    lv = load_dataset(spec)
    X = np.asarray(lv.X)[noise_rows(spec)]
    check_graph_fits(len(X), X.shape[1] if X.ndim == 2 else 0)
    radius = graph_radius(X) if max_eps is None else max_eps
    return NeighborGraph.build(X, max_eps=radius, max_edges=GRAPH_MAX_EDGES)


def check_graph_fits(n: int, dim: int = 512, *, max_edges: int = GRAPH_MAX_EDGES) -> int:
    """Refuse (``DataError``) a neighbour graph of ``n`` vectors that would not fit in memory.

    The estimate is :func:`core.resources.estimate_cluster_bytes` with the pairs the
    build may store: all ``n (n - 1) / 2`` pairs of a small set, else ``max_edges``
    (the cap the dashboard builds with). Returns the available bytes.

    >>> check_graph_fits(1000) > 0
    True
    """
    from core.resources import check_fits, estimate_cluster_bytes

    pairs = min(int(n) * (int(n) - 1) // 2, int(max_edges))
    return check_fits(estimate_cluster_bytes(int(n), pairs, dim=int(dim)),
                      f"the neighbour graph of {int(n):,} distractors (up to {pairs:,} pairs)")


def noise_graph(spec: DatasetSpec, max_eps: float | None = None):
    """The ``NeighborGraph`` of the distractors (built once per dataset, shared).

    ``max_eps`` default: :func:`graph_radius` (1.5 unless the set is large).
    """
    return _graph_cached(spec, files_fingerprint(spec), None if max_eps is None else float(max_eps))


def cluster_noise(spec: DatasetSpec, eps: float, min_samples: int) -> np.ndarray:
    """DBSCAN labels of the distractors (milliseconds: a query on the cached graph)."""
    return noise_graph(spec).dbscan(float(eps), int(min_samples))


@st.cache_data(max_entries=32, show_spinner=False)
def _kdist_cached(spec: DatasetSpec, fingerprint: tuple, k: int) -> tuple[np.ndarray, float]:
    g = noise_graph(spec)
    curve = g.k_distance(k) if g.n_points else np.zeros(0)
    # The knee training uses (exact k-distances of the distractors, core.cluster.eps_choice).
    X = np.asarray(load_dataset(spec).X)[noise_rows(spec)]
    knee = k_distance_knee(X, k) if g.n_points >= 3 else float("nan")
    return curve, knee


def k_distance(spec: DatasetSpec, k: int) -> tuple[np.ndarray, float]:
    """Sorted ``k``-distance curve of the distractors and its knee (the suggested eps)."""
    return _kdist_cached(spec, files_fingerprint(spec), int(k))


def eps_grid(max_eps: float, step: float = 0.05, start: float = 0.05) -> np.ndarray:
    """The eps values of the sweep: ``start, start + step, …`` up to ``max_eps``."""
    return np.round(np.arange(start, max_eps + 1e-9, step), 2)


def default_eps(spec: DatasetSpec, min_samples: int = 2) -> float:
    """Default eps for the Noise clusters page: training's automatic eps
    (:func:`core.cluster.eps_choice.eps_on_graph` at the same knee) on the cached graph."""
    return _default_eps_cached(spec, files_fingerprint(spec), int(min_samples))


@st.cache_data(max_entries=16, show_spinner=False)
def _default_eps_cached(spec: DatasetSpec, fingerprint: tuple, min_samples: int) -> float:
    g = noise_graph(spec)
    _, knee = k_distance(spec, min_samples)
    return eps_on_graph(g, knee, min_samples)


def noise_truth(spec: DatasetSpec) -> np.ndarray | None:
    """True person of every distractor (from ``truth.tsv``), or None when unknown."""
    truth = load_truth(spec)
    if truth is None:
        return None
    names = np.asarray(load_dataset(spec).names)[noise_rows(spec)]
    person = truth["person"].reindex(names)
    if person.isna().any():
        return None
    return person.astype(str).to_numpy()


@st.cache_data(max_entries=16, show_spinner="Sweeping eps…")
def _sweep_cached(spec: DatasetSpec, fingerprint: tuple, min_samples: int,
                  eps_values: tuple) -> pd.DataFrame:
    from core.cluster.report import eps_sweep

    df = eps_sweep(noise_graph(spec), eps_values, min_samples, truth=noise_truth(spec))
    n = noise_graph(spec).n_points
    return df.assign(unclustered_share=df["unclustered_frac"],
                     largest=(df["largest_share"] * n).round().astype(int))


def eps_sweep(spec: DatasetSpec, min_samples: int, eps_values: Sequence[float]) -> pd.DataFrame:
    """Clusters / unclustered share / largest cluster (and ARI, purity) over ``eps_values``."""
    return _sweep_cached(spec, files_fingerprint(spec), int(min_samples),
                         tuple(round(float(e), 4) for e in eps_values))


@st.cache_data(max_entries=8, show_spinner=False)
def _centroids_cached(spec: DatasetSpec, fingerprint: tuple) -> tuple[np.ndarray, np.ndarray]:
    lv = load_dataset(spec)
    ids = np.asarray(lv.ids)
    lab = ids > 0
    uniq, inv = np.unique(ids[lab], return_inverse=True)
    sums = np.zeros((len(uniq), lv.X.shape[1]), dtype=np.float64)
    np.add.at(sums, inv, np.asarray(lv.X)[lab])
    norms = np.linalg.norm(sums, axis=1, keepdims=True)
    return (sums / np.maximum(norms, 1e-12)).astype(np.float32), uniq


def identity_centroids(spec: DatasetSpec) -> tuple[np.ndarray, np.ndarray]:
    """(unit mean vector per known identity, identity IDs)."""
    return _centroids_cached(spec, files_fingerprint(spec))


@st.cache_data(max_entries=8, show_spinner=False)
def _self_sim_cached(spec: DatasetSpec, fingerprint: tuple, quantile: float) -> float:
    lv = load_dataset(spec)
    ids = np.asarray(lv.ids)
    lab = np.flatnonzero(ids > 0)
    if lab.size == 0:
        return float("nan")
    cents, uniq = identity_centroids(spec)
    own = cents[np.searchsorted(uniq, ids[lab])]
    sims = np.einsum("ij,ij->i", np.asarray(lv.X)[lab], own)
    return float(np.quantile(sims, quantile))


def identity_self_similarity(spec: DatasetSpec, quantile: float = 0.25) -> float:
    """The ``quantile`` of the cosine between a labelled video and its identity's mean.

    A noise cluster whose members are on average at least this similar to a known
    identity sits *on* that identity: a likely ground-truth error (or a lookalike).
    """
    return _self_sim_cached(spec, files_fingerprint(spec), float(quantile))


@st.cache_data(max_entries=64, show_spinner=False)
def _summary_cached(spec: DatasetSpec, fingerprint: tuple, eps: float,
                    min_samples: int) -> pd.DataFrame:
    from core.cluster.report import summarize_clusters

    rows = noise_rows(spec)
    lv = load_dataset(spec)
    labels = cluster_noise(spec, eps, min_samples)
    cents, ids = identity_centroids(spec)
    return summarize_clusters(np.asarray(lv.X)[rows], labels,
                              identity_X=cents if len(ids) else None,
                              identity_ids=ids if len(ids) else None,
                              names=list(np.asarray(lv.names)[rows]))


def cluster_summary(spec: DatasetSpec, eps: float, min_samples: int) -> pd.DataFrame:
    """One row per noise cluster at (eps, min_samples), largest first (see
    ``core.cluster.report.summarize_clusters``)."""
    return _summary_cached(spec, files_fingerprint(spec), round(float(eps), 4), int(min_samples))


__all__ = ["GRAPH_EDGE_BUDGET", "GRAPH_MAX_EDGES", "MAX_EPS", "MIN_GRAPH_EPS", "check_graph_fits", "choose_eps", "cluster_noise", "cluster_summary", "default_eps", "eps_grid", "eps_sweep", "graph_radius", "identity_centroids", "identity_self_similarity", "k_distance", "noise_graph", "noise_truth"]
