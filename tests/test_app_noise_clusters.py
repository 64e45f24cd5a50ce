"""Noise clusters page (AppTest on the tiny demo): the sliders answer at once and agree
with scikit-learn's DBSCAN on the same distractors."""

from __future__ import annotations

import functools
import logging

import numpy as np
from app_helpers import APP

PAGE = "app_pages/noise_clusters.py"
logging.getLogger("streamlit").setLevel(logging.ERROR)




def _page():
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(APP, default_timeout=60).run()
    at.switch_page(PAGE).run()
    assert not at.exception
    return at


def _n_clusters(at) -> int:
    (m,) = [m for m in at.metric if m.label == "N clusters"]
    return int(m.value)


@functools.lru_cache(maxsize=1)
def _noise_X() -> np.ndarray:
    """The train+val distractors, pooled straight from the demo files."""
    from core.features.dataset import open_split
    from dashboard.cache.sources import demo_dir

    d = demo_dir("tiny")
    parts = [open_split(d / f"face_{s}.pickle", d / f"{s}_gt.txt", split=s)
             for s in ("train", "val")]
    return np.concatenate([p.X[p.ids == 0] for p in parts])


def _sklearn_clusters(eps: float, min_samples: int) -> tuple[int, np.ndarray, np.ndarray]:
    """Independent reference: scikit-learn's DBSCAN of the distractors."""
    from sklearn.cluster import DBSCAN

    X = _noise_X()
    labels = DBSCAN(eps=eps, min_samples=min_samples).fit_predict(X)
    return int(labels.max() + 1), labels, X


def test_eps_slider_changes_cluster_count_like_sklearn(app_env, monkeypatch):
    at = _page()
    from core.cluster import NeighborGraph
    from core.cluster.report import suggest_eps
    from dashboard.cache import datasets as data
    from dashboard.cache import noise as noise_cache

    knee = suggest_eps(NeighborGraph.build(_sklearn_clusters(1.0, 2)[2], max_eps=1.5), 2)

    def no_rebuild(*args, **kwargs):
        raise AssertionError("a slider move rebuilt the neighbour graph")

    # The graph is built once per dataset: slider moves must only query it.
    monkeypatch.setattr(NeighborGraph, "build", classmethod(no_rebuild))
    eps0 = at.slider(key="noise_eps").value
    assert _n_clusters(at) == _sklearn_clusters(eps0, 2)[0]
    # The default: the most clusters over the sweep's grid at or below the knee.
    # (training's rule, core.cluster.eps_choice.eps_on_graph: the knee itself is a candidate;
    # its exact k-distance knee may differ from the graph's in the 7th digit)
    grid = [e for e in noise_cache.eps_grid(1.5) if e <= knee] + [eps0]
    assert eps0 <= knee + 1e-6
    assert _n_clusters(at) == max(_sklearn_clusters(e, 2)[0] for e in grid)
    counts = {}
    for eps in (0.8, 1.2):
        at.slider(key="noise_eps").set_value(eps).run()
        assert not at.exception
        counts[eps] = _n_clusters(at)
        assert counts[eps] == _sklearn_clusters(eps, 2)[0], eps
    assert counts[0.8] != counts[1.2]
    at.slider(key="noise_min_samples").set_value(3).run()
    assert _n_clusters(at) == _sklearn_clusters(1.2, 3)[0]
    # The charts: k-distance, cluster sizes, eps sweep.
    assert len(at.get("plotly_chart")) == 3


def test_use_clustering_for_training_stores_labels(app_env):
    at = _page()
    at.slider(key="noise_eps").set_value(1.0).run()
    at.button(key="noise_use").click().run()
    assert not at.exception
    chosen = at.session_state["noise_labels"]
    k, ref, _ = _sklearn_clusters(1.0, 2)
    assert chosen["eps"] == 1.0 and chosen["min_samples"] == 2 and chosen["n_clusters"] == k
    assert len(chosen["labels"]) == len(chosen["names"]) == len(ref)
    # Same partition as scikit-learn (labels numbered the same way).
    np.testing.assert_array_equal(chosen["labels"], ref)
    assert all(str(n).startswith("IQIYI_VID_") for n in chosen["names"])


def test_cluster_table_lists_clusters_with_nearest_identity(app_env):
    at = _page()
    at.slider(key="noise_eps").set_value(1.1).run()
    # The table is computed on demand only: off by default, no summary shown.
    assert not [df for df in at.dataframe if "nearest_identity" in df.value.columns]
    at.toggle(key="noise_show_table").set_value(True).run()
    assert not at.exception
    (table,) = [df for df in at.dataframe if "nearest_identity" in df.value.columns]
    df = table.value
    k, ref, _ = _sklearn_clusters(1.1, 2)
    assert len(df) == k
    assert sorted(df["size"].tolist()) == sorted(np.bincount(ref[ref >= 0]).tolist())
    assert df["nearest_identity"].between(1, 20).all()
    assert "possible GT error" in df.columns
    assert df.columns[0] == "flag"  # the flag first, naming the identity
    flagged = df[df["possible GT error"]]
    assert (flagged["flag"] == "⚑ on identity " + flagged["nearest_identity"].astype(str)).all()
    assert (df.loc[~df["possible GT error"], "flag"] == "").all()
    assert "Cluster table (CSV)" in [d.proto.label for d in at.get("download_button")]


def test_a_cliff_just_above_eps_is_announced(app_env):
    from core.cluster.eps_choice import cliff_above
    from dashboard.cache import datasets as data
    from dashboard.cache import noise as noise_cache

    at = _page()
    spec = data.active_dataset()
    sweep = noise_cache.eps_sweep(spec, 2, noise_cache.eps_grid(float(noise_cache.noise_graph(spec).max_eps)))
    cliffs = [e for e in sweep["eps"] if cliff_above(sweep, e) is not None]
    smooth = [e for e in sweep["eps"] if cliff_above(sweep, e) is None and e >= 0.05]
    if cliffs:
        at.slider(key="noise_eps").set_value(float(cliffs[0])).run()
        assert any("A cliff is near" in w.value for w in at.warning)
    at.slider(key="noise_eps").set_value(float(smooth[0])).run()
    assert not any("A cliff is near" in w.value for w in at.warning)


def test_two_sessions_keep_their_own_clustering(app_env):
    """Session state is per tab: one tab's choice never leaks into another."""
    a, b = _page(), _page()
    default = b.slider(key="noise_eps").value
    assert default != 1.2
    a.slider(key="noise_eps").set_value(1.2).run()
    a.button(key="noise_use").click().run()
    b.run()
    assert "noise_labels" in a.session_state and "noise_labels" not in b.session_state
    assert b.slider(key="noise_eps").value == default
    assert _n_clusters(b) == _sklearn_clusters(default, 2)[0]
    assert not a.exception and not b.exception


# ---------------------------------------------------------------- pure helpers (no app)


def test_graph_radius_keeps_the_graph_within_budget():
    from core.cluster import NeighborGraph
    from dashboard.cache.noise import graph_radius

    rng = np.random.default_rng(0)
    X = rng.normal(size=(3000, 32)).astype(np.float32)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    assert graph_radius(X[:50]) == 1.5  # small sets: the full radius
    r = graph_radius(X, budget=100_000, floor=0.1)
    assert 0.1 <= r < 1.5
    edges = NeighborGraph.build(X, max_eps=r).n_edges
    assert 60_000 <= edges <= 110_000  # about the budget (rounded down to 0.01)


def test_choose_eps_most_clusters_at_or_below_the_knee():
    import pandas as pd

    from dashboard.cache.noise import choose_eps

    sweep = pd.DataFrame({"eps": [0.5, 0.6, 0.7, 0.8, 0.9],
                          "n_clusters": [0, 3, 7, 7, 1]})
    assert choose_eps(sweep, knee=0.95) == 0.8   # ties: the larger eps
    assert choose_eps(sweep, knee=0.75) == 0.7
    assert choose_eps(sweep.assign(n_clusters=0), knee=0.72) == 0.72
    assert choose_eps(sweep.assign(n_clusters=0), knee=float("nan")) == 1.2


def test_choose_eps_steps_back_from_a_merge():
    """The count of clusters can still peak where two groups have merged: the largest
    cluster doubling in one grid step sends the pick back to the step before."""
    import pandas as pd

    from dashboard.cache.noise import choose_eps

    sweep = pd.DataFrame({"eps": [0.8, 0.85, 0.9, 0.95, 1.0],
                          "n_clusters": [5, 9, 10, 10, 2],
                          "largest_share": [0.01, 0.012, 0.014, 0.04, 0.6]})
    assert choose_eps(sweep, knee=0.97) == 0.9     # 0.014 -> 0.04 at 0.95: a merge
    assert choose_eps(sweep.assign(largest_share=[0.01, 0.012, 0.014, 0.02, 0.6]),
                      knee=0.97) == 0.95           # steady growth: the most clusters
    assert choose_eps(sweep.iloc[::-1], knee=0.97) == 0.9  # row order does not matter


def test_settings_survive_a_visit_to_another_page(app_env):
    at = _page()
    at.slider(key="noise_eps").set_value(1.15).run()
    at.slider(key="noise_min_samples").set_value(3).run()
    at.switch_page("app_pages/data_page.py").run()
    at.switch_page(PAGE).run()
    assert not at.exception
    assert at.slider(key="noise_eps").value == 1.15
    assert at.slider(key="noise_min_samples").value == 3
    assert _n_clusters(at) == _sklearn_clusters(1.15, 3)[0]
