"""Noise clustering: the neighbour graph built once, DBSCAN at any eps, eps choice, reports.

``NeighborGraph.build(X, max_eps)`` stores every pair within ``max_eps`` once
(:mod:`core.cluster.neighbors` exact, :mod:`core.cluster.ivf` approximate); the
minimum spanning forest over mutual-reachability distances
(:mod:`core.cluster.tree`) makes DBSCAN at any ``eps <= max_eps`` an O(n) cut
(:mod:`core.cluster.graph`). :mod:`core.cluster.eps_choice` picks eps when none is
given; :mod:`core.cluster.report` summarises a clustering; :mod:`core.cluster.clusterers`
is the table of clusterers training uses (DBSCAN today).
"""

from core.cluster.clusterers import (Clusterer, cluster_distractors, clusterer_names, get_clusterer,
                                     register_clusterer)
from core.cluster.eps_choice import auto_dbscan, choose_eps, k_distance_knee
from core.cluster.graph import NeighborGraph
from core.cluster.sklearn_api import DBSCAN, NoiseDBSCAN, dbscan
from core.cluster.report import (clustering_ari, eps_sweep, knee_index, purity, suggest_eps,
                                 summarize_clusters)

__all__ = ["DBSCAN", "Clusterer", "NeighborGraph", "NoiseDBSCAN", "auto_dbscan", "cluster_distractors",
           "clusterer_names", "get_clusterer", "register_clusterer", "choose_eps", "clustering_ari", "dbscan",
           "eps_sweep", "k_distance_knee", "knee_index", "purity", "suggest_eps",
           "summarize_clusters"]
