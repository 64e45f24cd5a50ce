"""Automatic eps: planted recurring people are recovered without a user-given eps."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.cluster import DBSCAN
from sklearn.metrics import adjusted_rand_score

from core.cluster.eps_choice import auto_dbscan, choose_eps, k_distance_knee


def _planted(seed: int = 0, people: int = 12, videos: int = 5, singletons: int = 80, dim: int = 32):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(people, dim))
    X = np.concatenate([np.repeat(centres, videos, axis=0)
                        + rng.normal(scale=0.08, size=(people * videos, dim)),
                        rng.normal(size=(singletons, dim))])
    truth = np.concatenate([np.repeat(np.arange(people), videos),
                            np.arange(people, people + singletons)])
    return (X / np.linalg.norm(X, axis=1, keepdims=True)).astype(np.float32), truth


def test_choose_eps_prefers_most_clusters_below_the_knee():
    sweep = pd.DataFrame({"eps": [0.5, 0.6, 0.7, 0.8], "n_clusters": [3, 7, 7, 2]})
    assert choose_eps(sweep, knee=0.75) == 0.7
    assert choose_eps(sweep, knee=0.55) == 0.5
    assert choose_eps(sweep.assign(n_clusters=0), knee=0.62) == 0.62


def test_auto_dbscan_recovers_planted_people_and_matches_sklearn():
    X, truth = _planted()
    eps, labels = auto_dbscan(X, 2)
    assert 0 < eps <= k_distance_knee(X, 2) + 1e-9
    # the labels are exactly sklearn's DBSCAN at the chosen eps
    ref = DBSCAN(eps=eps, min_samples=2).fit_predict(X)
    assert adjusted_rand_score(ref, labels) == 1.0
    # every planted person is one cluster; singletons stay unclustered
    as_singletons = np.where(labels < 0, np.arange(len(labels)) + 10_000, labels)
    assert adjusted_rand_score(truth, as_singletons) > 0.95


def test_auto_dbscan_on_degenerate_input():
    eps, labels = auto_dbscan(np.zeros((1, 4), np.float32) + 0.5, 2)
    assert labels.tolist() == [-1]
