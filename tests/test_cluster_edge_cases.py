"""Edge cases of core.cluster: one point, duplicates, everything noise, one cluster."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.cluster import DBSCAN
from threadpoolctl import threadpool_limits

from core.cluster import NeighborGraph, NoiseDBSCAN
from core.cluster.report import eps_sweep, suggest_eps, summarize_clusters


@pytest.fixture(autouse=True)
def _one_thread():
    # Small problems: OpenMP/BLAS thread teams only spin-wait on a shared machine.
    with threadpool_limits(1):
        yield


def _unit_rows(n: int, dim: int = 16, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


class TestEdgeCases:
    def test_no_points(self):
        graph = NeighborGraph.build(np.zeros((0, 16), np.float32), max_eps=1.0)
        assert graph.n_points == 0 and graph.n_edges == 0
        assert graph.dbscan(0.5, 2).shape == (0,)
        assert graph.k_distance(2).shape == (0,)
        assert suggest_eps(graph, 2) == 1.0
        assert eps_sweep(graph, [0.5], 2)["n_clusters"].tolist() == [0]

    def test_single_point(self):
        X = _unit_rows(1)
        graph = NeighborGraph.build(X, max_eps=1.0)
        assert graph.n_edges == 0
        np.testing.assert_array_equal(graph.dbscan(0.5, 1), [0])       # itself suffices
        np.testing.assert_array_equal(graph.dbscan(0.5, 2), [-1])
        np.testing.assert_array_equal(graph.k_distance(1), [0.0])
        np.testing.assert_array_equal(graph.k_distance(2), [np.inf])
        assert 0 < suggest_eps(graph, 2) <= 1.0
        table = summarize_clusters(X, graph.dbscan(0.5, 1))
        assert table["size"].tolist() == [1] and np.isnan(table["mean_intra_sim"].item())

    def test_all_duplicates_form_one_cluster(self):
        X = np.repeat(_unit_rows(1), 7, axis=0)
        graph = NeighborGraph.build(X, max_eps=0.5)
        for m in (1, 2, 7):
            labels = graph.dbscan(1e-6, m)
            np.testing.assert_array_equal(labels, np.zeros(7, int))
            np.testing.assert_array_equal(labels, DBSCAN(eps=1e-6, min_samples=m).fit_predict(X))
        np.testing.assert_array_equal(graph.dbscan(1e-6, 8), np.full(7, -1))
        assert summarize_clusters(X, graph.dbscan(0.1, 2))["mean_intra_sim"].item() == pytest.approx(1.0)

    def test_duplicate_pairs_among_spread_points(self):
        base = _unit_rows(30, seed=1) * 10     # points far apart (distance ~14)
        X = np.concatenate([base, base[:5]])   # five exact duplicate pairs
        graph = NeighborGraph.build(X, max_eps=1.0)
        labels = graph.dbscan(0.01, 2)
        np.testing.assert_array_equal(labels, DBSCAN(eps=0.01, min_samples=2).fit_predict(X))
        assert labels.max() == 4 and (labels >= 0).sum() == 10

    def test_everything_noise(self):
        X = _unit_rows(50, dim=64)             # random directions: pair distances ~1.41
        graph = NeighborGraph.build(X, max_eps=0.5)
        assert graph.n_edges == 0
        for m in (2, 3, 10):
            np.testing.assert_array_equal(graph.dbscan(0.5, m), np.full(50, -1))
        np.testing.assert_array_equal(graph.dbscan(0.5, 1), np.arange(50))  # min_samples=1
        np.testing.assert_array_equal(graph.dbscan(0.5, 1),
                                      DBSCAN(eps=0.5, min_samples=1).fit_predict(X))
        sweep = eps_sweep(graph, [0.2, 0.5], 2)
        assert sweep["n_clusters"].tolist() == [0, 0]
        assert sweep["unclustered_frac"].tolist() == [1.0, 1.0]
        assert summarize_clusters(X, graph.dbscan(0.5, 2)).empty

    def test_all_one_cluster(self):
        X = _unit_rows(40)
        graph = NeighborGraph.build(X, max_eps=2.0)    # unit vectors: every pair within 2
        assert graph.n_edges == 40 * 39 // 2
        labels = graph.dbscan(2.0, 40)
        np.testing.assert_array_equal(labels, np.zeros(40, int))
        np.testing.assert_array_equal(labels, DBSCAN(eps=2.0, min_samples=40).fit_predict(X))
        sweep = eps_sweep(graph, [2.0], 5)
        assert sweep["largest_share"].item() == 1.0 and sweep["n_clusters"].item() == 1

    def test_min_samples_beyond_any_neighbourhood(self):
        X = _unit_rows(20)
        graph = NeighborGraph.build(X, max_eps=1.0)
        np.testing.assert_array_equal(graph.dbscan(1.0, 64), np.full(20, -1))
        np.testing.assert_array_equal(graph.dbscan(1.0, 64),
                                      DBSCAN(eps=1.0, min_samples=64).fit_predict(X))

    def test_two_points_exactly_at_eps(self):
        X = np.zeros((2, 16), np.float32)
        X[1, :4] = 0.5                          # distance exactly 1.0
        graph = NeighborGraph.build(X, max_eps=1.0)
        np.testing.assert_array_equal(graph.dbscan(1.0, 2), [0, 0])
        np.testing.assert_array_equal(graph.dbscan(0.999, 2), [-1, -1])

    def test_eps_a_rounding_hair_above_max_eps_is_exact(self):
        X = _unit_rows(60, seed=4)
        graph = NeighborGraph.build(X, max_eps=1.3)
        eps = np.arange(0.5, 1.31, 0.05)[-1]     # 1.3000000000000005
        np.testing.assert_array_equal(graph.dbscan(eps, 2), DBSCAN(eps=eps, min_samples=2).fit_predict(X))
        with pytest.raises(ValueError, match="exceeds the graph's max_eps=1.3"):
            graph.dbscan(1.31, 2)

    def test_estimator_on_one_point(self):
        est = NoiseDBSCAN(eps=0.3, min_samples=1).fit(_unit_rows(1))
        np.testing.assert_array_equal(est.labels_, [0])
        np.testing.assert_array_equal(est.core_sample_indices_, [0])
