"""Pure Plotly figure builders of the dashboard (no Streamlit needed)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dashboard import charts


def _arr(v) -> np.ndarray:
    """Trace data as a numpy array (plotly may store typed arrays as numpy already)."""
    return np.asarray(v)


def test_histogram_matches_numpy_and_drops_nan():
    rng = np.random.default_rng(0)
    v = rng.normal(size=500)
    v[:5] = np.nan
    fig = charts.histogram(v, title="t", xlabel="x", nbins=20)
    counts, edges = np.histogram(v[5:], bins=20)
    np.testing.assert_array_equal(_arr(fig.data[0].y), counts)
    np.testing.assert_allclose(_arr(fig.data[0].x), (edges[:-1] + edges[1:]) / 2)
    assert charts.histogram(np.array([]), title="t", xlabel="x").data[0].y is not None


def test_count_bars_sorted_by_value():
    fig = charts.count_bars(pd.Series({3: 1, 1: 4, 2: 2}), title="t", xlabel="videos")
    assert list(_arr(fig.data[0].x)) == [1, 2, 3]
    assert list(_arr(fig.data[0].y)) == [4, 2, 1]


def test_k_distance_sorted_marks_eps_and_knee_and_thins_long_curves():
    rng = np.random.default_rng(1)
    kd = rng.uniform(0, 1, 10_000)
    kd[:3] = np.inf  # beyond the graph's radius: left out
    fig = charts.k_distance_figure(kd, k=3, eps=0.4, knee=0.6, max_points=500)
    y = _arr(fig.data[0].y)
    assert np.all(np.diff(y) >= 0) and np.isfinite(y).all()
    assert len(y) <= 500 and y[-1] == np.sort(kd[3:])[-1]
    lines = sorted(s.y0 for s in fig.layout.shapes)
    assert lines == [0.4, 0.6]


def test_eps_sweep_panels_and_current_eps():
    df = pd.DataFrame({"eps": [0.5, 1.0, 1.5], "n_clusters": [0, 4, 1],
                       "unclustered_share": [1.0, 0.4, 0.0], "largest": [0, 5, 20],
                       "ari": [0.0, 0.6, 0.1], "purity": [np.nan, 0.9, 0.2]})
    fig = charts.eps_sweep_figure(df, eps=1.1)
    names = [t.name for t in fig.data]
    assert names == ["clusters", "unclustered share", "largest cluster", "ARI", "purity"]
    assert {s.x0 for s in fig.layout.shapes} == {1.1} and len(fig.layout.shapes) == 4
    # No truth columns: no agreement panel.
    fig2 = charts.eps_sweep_figure(df.drop(columns=["ari", "purity"]), eps=1.1)
    assert len(fig2.data) == 3 and len(fig2.layout.shapes) == 3


def test_cluster_size_figure_counts_match_bincount():
    rng = np.random.default_rng(2)
    labels = rng.integers(-1, 12, size=300)
    fig = charts.cluster_size_figure(labels)
    sizes = np.bincount(labels[labels >= 0])
    expect = pd.Series(sizes[sizes > 0]).value_counts().sort_index()
    assert dict(zip(_arr(fig.data[0].x).tolist(), _arr(fig.data[0].y).tolist())) == expect.to_dict()
    assert len(charts.cluster_size_figure(np.full(4, -1)).data[0].x) == 0


def test_scatter_map_row_ids_survive_trace_split():
    rng = np.random.default_rng(3)
    n = 200
    xy = rng.normal(size=(n, 2))
    labels = rng.integers(-1, 5, size=n)
    row_ids = rng.permutation(10_000)[:n]
    fig = charts.scatter_map(xy, labels, row_ids=row_ids, hover=[f"v{i}" for i in range(n)])
    seen = np.concatenate([_arr(t.customdata) for t in fig.data])
    assert sorted(seen.tolist()) == sorted(row_ids.tolist())
    pos = {r: i for i, r in enumerate(row_ids)}
    for t in fig.data:
        idx = np.array([pos[r] for r in _arr(t.customdata)])
        # each trace holds exactly its category's points, at their coordinates
        want = "unclustered" if t.name == "unclustered" else int(t.name)
        got = np.where(labels[idx] == -1, "unclustered", labels[idx].astype(object))
        assert all(g == want for g in got)
        np.testing.assert_allclose(_arr(t.x), xy[idx, 0].astype(np.float32))
        assert [f"v{i}" for i in idx] == list(t.text)
    assert fig.data[0].name == "unclustered" and fig.data[0].marker.color == charts.GREY
    assert all(type(t).__name__ == "Scattergl" for t in fig.data)


def test_scatter_map_many_categories_other_or_cycle():
    labels = np.repeat(np.arange(30), np.arange(30, 0, -1))  # category 0 largest
    xy = np.zeros((len(labels), 2))
    fig = charts.scatter_map(xy, labels, max_categories=5, overflow="other")
    names = [t.name for t in fig.data]
    assert names[0] == "other" and names[1:] == ["0", "1", "2", "3", "4"]
    assert len(fig.data[0].customdata) == int((labels >= 5).sum())
    # cycle: grey unclustered + one trace holding every category, coloured by rank
    labels2 = np.concatenate([labels, [-1, -1]])
    fig = charts.scatter_map(np.zeros((len(labels2), 2)), labels2, max_categories=5,
                             color_title="clusters")
    assert [t.name for t in fig.data] == ["unclustered", "30 clusters"]
    t = fig.data[1]
    rows = _arr(t.customdata)
    assert sorted(rows.tolist()) == list(range(len(labels)))
    cols = np.asarray(t.marker.color)
    # rank r (largest first) gets PALETTE[r % 20]; here rank == label
    assert all(cols[i] == charts.PALETTE[labels[r] % len(charts.PALETTE)]
               for i, r in enumerate(rows))
    fig = charts.scatter_map(xy, labels.astype(float), continuous=True, color_title="q")
    assert len(fig.data) == 1 and len(fig.data[0].customdata) == len(labels)
    with pytest.raises(ValueError, match="row_ids"):
        charts.scatter_map(xy, labels, row_ids=np.arange(3))
    with pytest.raises(ValueError, match="overflow"):
        charts.scatter_map(xy, labels, overflow="drop")


def test_scatter_map_fixed_colours():
    fig = charts.scatter_map(np.zeros((3, 2)), np.array(["correct", "wrong", "distractor"]),
                             colors={"correct": charts.CORRECT, "wrong": charts.WRONG})
    by = {t.name: t.marker.color for t in fig.data}
    assert by == {"distractor": charts.GREY, "correct": charts.CORRECT, "wrong": charts.WRONG}


def test_selected_rows_maps_selection_through_customdata():
    # Two traces: point_index restarts in each, customdata carries the true row.
    fig = charts.scatter_map(np.arange(12).reshape(6, 2), np.array([0, 1, 0, 1, 0, 1]),
                             row_ids=np.array([50, 51, 52, 53, 54, 55]))
    sel = {"points": [{"curve_number": c, "point_index": i,
                       "customdata": [int(_arr(fig.data[c].customdata)[i])]}
                      for c, i in [(0, 1), (1, 0), (1, 2)]]}
    assert charts.selected_rows(sel).tolist() == [51, 52, 55]
    assert charts.selected_rows(None).size == 0
    assert charts.selected_rows({"points": [{"x": 1}, {"customdata": []}, {"customdata": 7}]}) \
        .tolist() == [7]


def test_pooling_shift_figure_one_box_per_option():
    fig = charts.pooling_shift_figure({"uniform": np.array([0.9, 1.0]),
                                       "quality2": np.array([0.99, 0.98])})
    assert [t.name for t in fig.data] == ["uniform", "quality2"]


def test_box_stats_match_an_independent_count():
    """Server-side box statistics: quartiles as numpy's linear percentiles, whiskers at the
    furthest data points within 1.5 IQR of the box (counted here by sorting), NaNs dropped."""
    rng = np.random.default_rng(4)
    v = np.concatenate([rng.normal(size=999), [50.0, -40.0, np.nan]])
    b = charts.box_stats(v)
    s = np.sort(v[np.isfinite(v)])
    q1, med, q3 = np.quantile(s, [0.25, 0.5, 0.75], method="linear")
    inside = s[(s >= q1 - 1.5 * (q3 - q1)) & (s <= q3 + 1.5 * (q3 - q1))]
    assert b["q1"] == [pytest.approx(q1)] and b["q3"] == [pytest.approx(q3)]
    assert b["median"] == [pytest.approx(med)]
    assert b["lowerfence"] == [inside[0]] and b["upperfence"] == [inside[-1]]
    assert 50.0 not in b["upperfence"] and b["mean"] == [pytest.approx(s.mean())]
    fig = charts.pooling_shift_figure({"uniform": v})
    assert fig.data[0].y is None and len(fig.to_json()) < 10_000  # no raw values (~20 kB) sent


def test_identity_ap_chart_is_a_thinned_curve_for_many_identities():
    from dashboard import run_charts

    n = 3000
    rng = np.random.default_rng(0)
    ap = pd.DataFrame({"identity": np.arange(1, n + 1), "AP": rng.uniform(size=n)})
    fig = run_charts.identity_ap_chart(ap, highlight=1234)
    line, mark = fig.data
    y = np.asarray(line.y)
    assert len(y) <= 2200 and np.all(np.diff(y) >= 0)  # sorted worst first, thinned
    want = np.sort(ap["AP"].to_numpy())
    np.testing.assert_array_equal(y[:200], want[:200])  # every one of the worst kept
    assert y[-1] == want[-1]
    assert list(mark.customdata) == [1234]
    assert mark.y[0] == ap.loc[ap.identity == 1234, "AP"].item()
    few = run_charts.identity_ap_chart(ap.head(40), highlight=3)
    assert few.data[0].type == "bar" and len(few.data[0].x) == 40
