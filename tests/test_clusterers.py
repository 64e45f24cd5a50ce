"""core.cluster.clusterers: the one clusterer interface (DBSCAN today).

The newcomer test: a toy clusterer is one function plus one ``register_clusterer`` line,
and ``cluster_distractors`` (what training's noise classes use) runs it.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.cluster import DBSCAN

from core.cluster import Clusterer, cluster_distractors, clusterer_names, get_clusterer, register_clusterer
from core.cluster.clusterers import unregister_clusterer


def _unit(rng, n, d=8):
    X = rng.normal(size=(n, d))
    return (X / np.linalg.norm(X, axis=1, keepdims=True)).astype(np.float32)


def test_dbscan_is_the_default_and_matches_sklearn():
    assert clusterer_names() == ("dbscan",)
    X = _unit(np.random.default_rng(0), 60, 3)
    labels, eps = cluster_distractors(X, 0.4, 3)
    assert eps == 0.4
    np.testing.assert_array_equal(labels, DBSCAN(eps=0.4, min_samples=3).fit(X).labels_)
    with pytest.raises(ValueError, match="unknown clusterer 'hdbscan'; choose one of dbscan"):
        cluster_distractors(X, 0.4, 3, method="hdbscan")


def test_a_toy_clusterer_is_one_function_and_one_registry_line():
    def by_sign(X, eps, min_samples):  # toy: cluster by the sign of the first coordinate
        return (X[:, 0] > 0).astype(np.int64), 0.0 if eps is None else eps

    register_clusterer(Clusterer("by_sign", "sign of the first coordinate", by_sign))
    try:
        X = _unit(np.random.default_rng(1), 20)
        labels, eps = cluster_distractors(X, None, 2, method="by_sign")
        assert labels.tolist() == (X[:, 0] > 0).astype(int).tolist() and eps == 0.0
        assert get_clusterer("by_sign").summary.startswith("sign")
        with pytest.raises(ValueError, match="already registered"):
            register_clusterer(get_clusterer("by_sign"))
    finally:
        unregister_clusterer("by_sign")
    assert clusterer_names() == ("dbscan",)
