"""Pure functions building the Plotly figures of the Data, Noise clusters and Map pages.

No Streamlit here: every function takes arrays / frames and returns a
``plotly.graph_objects.Figure``, so each is unit-tested directly. Colours are shared
by every page: one palette for categories, grey for "unclustered" / "distractor",
green / red for correct / wrong.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

# Consistent colours across pages.
ACCENT = "#2f6fdf"        # the app's primary colour (config.toml)
MARK = "#e4572e"          # the current value of a slider, drawn over a curve
KNEE = "#7a869a"          # a suggestion (the k-distance knee)
GREY = "#b8bcc6"          # unclustered / distractor / "other"
CORRECT = "#2a9d5b"
WRONG = "#d64545"
PALETTE = (
    "#2f6fdf", "#e4572e", "#29a19c", "#f2a541", "#8e5bd6", "#d64f8a", "#5a8f29",
    "#c77d3a", "#3aa3d9", "#a83232", "#6c7a89", "#b5a300", "#1b9e77", "#7570b3",
    "#e7298a", "#66a61e", "#e6ab02", "#a6761d", "#386cb0", "#f0027f",
)
CONTINUOUS_SCALE = "Viridis"
# No template: st.plotly_chart applies the app's theme, and validating a template costs
# ~30 ms per figure (too much on a slider move).
_LAYOUT = dict(margin=dict(l=10, r=10, t=40, b=10), legend=dict(itemsizing="constant"))


def _hline(y: float, color: str, *, dash: str = "solid", text: str = "",
           pos: str = "left") -> tuple[dict, dict | None]:
    """A full-width horizontal line (shape) and its label (annotation), as plain dicts."""
    shape = dict(type="line", xref="paper", x0=0, x1=1, yref="y", y0=y, y1=y,
                 line=dict(color=color, width=2 if dash == "solid" else 1.5, dash=dash))
    note = dict(xref="paper", x=0 if pos == "left" else 1, yref="y", y=y, text=text,
                showarrow=False, xanchor=pos, yanchor="bottom" if pos == "left" else "top",
                font=dict(color=color)) if text else None
    return shape, note


def color_for(label: Any, *, index: int) -> str:
    """The colour of the ``index``-th category, grey for the "unclustered" label -1.

    >>> color_for(-1, index=0), color_for(3, index=0)
    ('#b8bcc6', '#2f6fdf')
    """
    if isinstance(label, (int, np.integer)) and int(label) == -1:
        return GREY
    if isinstance(label, str) and label in ("unclustered", "distractor", "other"):
        return GREY
    return PALETTE[index % len(PALETTE)]


# --------------------------------------------------------------------------- Data page


def histogram(values: np.ndarray, *, title: str, xlabel: str, nbins: int = 50,
              log_y: bool = False, color: str = ACCENT) -> go.Figure:
    """A histogram of ``values`` (NaNs dropped).

    >>> fig = histogram(np.array([1, 2, 2, 3]), title="t", xlabel="x", nbins=3)
    >>> int(sum(fig.data[0].y))
    4
    """
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if len(v):
        counts, edges = np.histogram(v, bins=nbins)
    else:
        counts, edges = np.zeros(0, int), np.zeros(1)
    centers = (edges[:-1] + edges[1:]) / 2
    fig = go.Figure(go.Bar(x=centers, y=counts, width=np.diff(edges), marker_color=color,
                           hovertemplate=f"{xlabel} %{{x:.3g}}<br>%{{y}}<extra></extra>"))
    fig.update_layout(title=title, xaxis_title=xlabel, yaxis_title="count", bargap=0.02,
                      **_LAYOUT)
    if log_y:
        fig.update_yaxes(type="log")
    return fig


def count_bars(counts: Mapping[Any, int] | pd.Series, *, title: str, xlabel: str,
               color: str = ACCENT) -> go.Figure:
    """Bars of ``count`` per discrete value (e.g. how many identities have k videos).

    >>> fig = count_bars({1: 3, 2: 5}, title="t", xlabel="videos")
    >>> fig.data[0].y.tolist()
    [3, 5]
    """
    s = pd.Series(counts).sort_index()
    fig = go.Figure(go.Bar(x=s.index.to_numpy(), y=s.to_numpy(), marker_color=color,
                           hovertemplate=f"{xlabel} %{{x}}<br>%{{y}}<extra></extra>"))
    fig.update_layout(title=title, xaxis_title=xlabel, yaxis_title="count", **_LAYOUT)
    return fig


def pooling_shift_figure(cosines: Mapping[str, np.ndarray]) -> go.Figure:
    """Per option, the distribution of each video's cosine to its default pooled vector.

    ``cosines`` maps an option label to the (n_videos,) cosines; the closer to 1, the
    less the option changes the videos. Drawn as box plots side by side.

    >>> fig = pooling_shift_figure({"uniform": np.array([0.99, 0.97])})
    >>> fig.data[0].name
    'uniform'
    """
    fig = go.Figure()
    for i, (label, c) in enumerate(cosines.items()):
        # The box's statistics are computed here, not in the browser: at the 2019 size each
        # option's raw cosines are ~200,000 numbers (megabytes of JSON to draw five lines).
        fig.add_trace(go.Box(name=label, x=[label], marker_color=PALETTE[i % len(PALETTE)],
                             boxpoints=False, **box_stats(c)))
    fig.update_layout(title="Cosine of each pooled video to the default (quality) pooling",
                      yaxis_title="cosine to default", showlegend=False, **_LAYOUT)
    return fig


def box_stats(values: np.ndarray) -> dict[str, list[float]]:
    """Plotly's box of ``values`` (NaNs dropped): quartiles (linear, as Plotly computes them),
    whiskers at the furthest values within 1.5 IQR, and the mean; precomputed keyword args.

    >>> box_stats(np.array([1.0, 2.0, 3.0, 4.0, 100.0]))
    {'q1': [2.0], 'median': [3.0], 'q3': [4.0], 'lowerfence': [1.0], 'upperfence': [4.0], 'mean': [22.0]}
    """
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return {k: [float("nan")] for k in ("q1", "median", "q3", "lowerfence", "upperfence", "mean")}
    q1, med, q3 = np.percentile(v, [25, 50, 75])
    iqr = q3 - q1
    lo = float(v[v >= q1 - 1.5 * iqr].min())
    hi = float(v[v <= q3 + 1.5 * iqr].max())
    return {"q1": [float(q1)], "median": [float(med)], "q3": [float(q3)],
            "lowerfence": [lo], "upperfence": [hi], "mean": [float(v.mean())]}


# --------------------------------------------------------------------------- Noise clusters


def k_distance_figure(kdist: np.ndarray, *, k: int, eps: float,
                      knee: float | None = None, max_points: int = 2000) -> go.Figure:
    """The sorted distance of every point to its ``k``-th neighbour, with eps marked.

    Points above the ``eps`` line are too far from ``k`` neighbours to be core points;
    the knee of the curve is the usual eps suggestion. Infinite distances (no ``k``-th
    neighbour within the graph's radius) are left out; long curves are thinned to
    ``max_points`` evenly spaced points.

    >>> fig = k_distance_figure(np.array([0.3, 0.1, 0.5]), k=2, eps=0.4, knee=0.3)
    >>> fig.data[0].y.tolist()
    [0.1, 0.3, 0.5]
    """
    y = np.sort(np.asarray(kdist, dtype=np.float64))
    y = y[np.isfinite(y)]  # points with fewer than k neighbours within the graph's radius
    x = np.arange(1, len(y) + 1)
    if len(y) > max_points:  # a smooth curve needs no more; keeps the chart light
        keep = np.unique(np.linspace(0, len(y) - 1, max_points).round().astype(int))
        x, y = x[keep], y[keep]
    shapes, notes = [], []
    lines = [(eps, MARK, "solid", f"eps {eps:.3f}", "left")]
    if knee is not None and np.isfinite(knee):
        lines.append((knee, KNEE, "dash", f"knee {knee:.3f}", "right"))
    for value, color, dash, text, pos in lines:
        shape, note = _hline(value, color, dash=dash, text=text, pos=pos)
        shapes.append(shape)
        notes.append(note)
    return go.Figure(
        data=[dict(type="scatter", x=x, y=y, mode="lines", line=dict(color=ACCENT, width=2),
                   name=f"{k}-NN distance",
                   hovertemplate="%{x} points<br>distance %{y:.3f}<extra></extra>")],
        layout=dict(title=dict(text=f"Distance to the {ordinal(k)} nearest neighbour (sorted)"),
                    xaxis=dict(title=dict(text="points, sorted")),
                    yaxis=dict(title=dict(text="distance")), showlegend=False,
                    shapes=shapes, annotations=notes, **_LAYOUT))


def ordinal(k: int) -> str:
    """The English ordinal of ``k``.

    >>> [ordinal(k) for k in (1, 2, 3, 4, 11, 22)]
    ['1st', '2nd', '3rd', '4th', '11th', '22nd']
    """
    suffix = "th" if 10 <= k % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(k % 10, "th")
    return f"{k}{suffix}"


_SWEEP_PANELS = (
    ("n_clusters", "clusters"),
    ("unclustered_share", "unclustered share"),
    ("largest", "largest cluster"),
)


def eps_sweep_figure(sweep: pd.DataFrame, *, eps: float | None = None,
                     knee: float | None = None) -> go.Figure:
    """Clustering statistics over eps (one panel each), the current eps and the knee marked.

    ``sweep`` has an ``eps`` column and any of ``n_clusters``, ``unclustered_share``,
    ``largest``, ``ari``, ``purity`` (agreement with the true persons, where known).
    ``eps`` (red line) and ``knee`` (dashed grey line) are optional: without ``eps`` the
    figure does not change when eps does (a page redraws it only when the sweep changes).

    >>> df = pd.DataFrame({"eps": [0.5, 1.0], "n_clusters": [3, 1]})
    >>> [t.name for t in eps_sweep_figure(df, eps=0.7).data]
    ['clusters']
    >>> [s.line.dash for s in eps_sweep_figure(df, knee=0.8).layout.shapes]
    ['dash']
    """
    panels = [(c, t) for c, t in _SWEEP_PANELS if c in sweep]
    truth = [c for c in ("ari", "purity") if c in sweep and sweep[c].notna().any()]
    n = max(len(panels) + (1 if truth else 0), 1)
    titles = [t for _, t in panels] + (["agreement with true persons"] if truth else [])
    x = sweep["eps"].to_numpy()
    gap = 0.06
    width = (1 - gap * (n - 1)) / n
    layout: dict[str, Any] = dict(height=300, showlegend=bool(truth), shapes=[], annotations=[],
                                  **_LAYOUT)
    layout["margin"] = dict(l=10, r=10, t=50, b=10)
    data: list[dict] = []
    # Panels side by side: axis pair i (x, y / x2, y2 / ...) on its own horizontal domain.
    for i in range(n):
        sfx = "" if i == 0 else str(i + 1)
        x0 = i * (width + gap)
        layout[f"xaxis{sfx}"] = dict(domain=[x0, x0 + width], anchor=f"y{sfx}",
                                     title=dict(text="eps"))
        layout[f"yaxis{sfx}"] = dict(anchor=f"x{sfx}")
        for value, color, dash in ((eps, MARK, "solid"), (knee, KNEE, "dash")):
            if value is not None and np.isfinite(value):
                layout["shapes"].append(dict(type="line", xref=f"x{sfx}", x0=value, x1=value,
                                             yref=f"y{sfx} domain", y0=0, y1=1,
                                             line=dict(color=color, width=1.5, dash=dash)))
        layout["annotations"].append(dict(text=titles[i] if i < len(titles) else "",
                                          xref="paper", x=x0 + width / 2, yref="paper", y=1.0,
                                          xanchor="center", yanchor="bottom", showarrow=False,
                                          font=dict(size=14)))
    for i, (col, title) in enumerate(panels):
        sfx = "" if i == 0 else str(i + 1)
        data.append(dict(type="scatter", x=x, y=sweep[col].to_numpy(), mode="lines",
                         name=title, xaxis=f"x{sfx}", yaxis=f"y{sfx}", showlegend=False,
                         line=dict(color=ACCENT),  # lines only: fewer SVG nodes to redraw
                         hovertemplate=f"eps %{{x:.3f}}<br>{title} %{{y:.3g}}<extra></extra>"))
    sfx = "" if n == 1 else str(n)
    for j, col in enumerate(truth):
        data.append(dict(type="scatter", x=x, y=sweep[col].to_numpy(), mode="lines",
                         name="ARI" if col == "ari" else col, xaxis=f"x{sfx}", yaxis=f"y{sfx}",
                         line=dict(color=PALETTE[2 + j])))
    return go.Figure(data=data, layout=layout)


def cluster_size_figure(labels: np.ndarray) -> go.Figure:
    """How many clusters have each size (unclustered points, label -1, not counted).

    >>> fig = cluster_size_figure(np.array([0, 0, 1, 1, 2, 2, 2, -1]))
    >>> dict(zip(fig.data[0].x, fig.data[0].y))
    {2: 2, 3: 1}
    """
    labels = np.asarray(labels)
    sizes = np.bincount(labels[labels >= 0]) if (labels >= 0).any() else np.zeros(0, int)
    sizes = sizes[sizes > 0]
    vals, counts = np.unique(sizes, return_counts=True)
    return go.Figure(
        data=[dict(type="bar", x=vals.tolist(), y=counts.tolist(), marker=dict(color=ACCENT),
                   hovertemplate="%{y} clusters of %{x} videos<extra></extra>")],
        layout=dict(title=dict(text="Cluster sizes"),
                    xaxis=dict(title=dict(text="videos in the cluster")),
                    yaxis=dict(title=dict(text="clusters")), **_LAYOUT))


# --------------------------------------------------------------------------- Map


#: Category labels drawn grey, underneath the others.
GREY_KEYS = ("-1", "unclustered", "distractor", "unlabelled", "not scored", "other")


def scatter_map(xy: np.ndarray, color: Sequence[Any] | np.ndarray, *,
                hover: Sequence[str] | None = None, row_ids: np.ndarray | None = None,
                continuous: bool = False, color_title: str = "",
                colors: Mapping[Any, str] | None = None,
                max_categories: int = 20, overflow: str = "cycle") -> go.Figure:
    """A WebGL scatter of 2-d points coloured by category (or by a number).

    Every point carries its row id in ``customdata`` so a box/lasso selection maps
    back to the right rows whatever trace it falls in (see :func:`selected_rows`).
    Grey categories (:data:`GREY_KEYS`, e.g. ``-1`` = unclustered) come first, drawn
    underneath. Up to ``max_categories`` other categories get one trace (and legend
    entry) each, largest first. With more, ``overflow="cycle"`` draws them all in one
    trace whose points cycle through the palette by category (neighbouring clusters
    still differ; the hover names each point's category), and ``overflow="other"``
    keeps the largest ``max_categories`` and greys the rest as "other".

    Parameters
    ----------
    xy : (n, 2) coordinates.
    color : (n,) category labels, or numbers when ``continuous``.
    hover : (n,) hover text (HTML allowed), optional.
    row_ids : (n,) ints returned by selections; default ``arange(n)``.
    continuous : colour by a number with a colour bar instead of categories.
    colors : fixed colour per category (e.g. correct/wrong).

    Examples
    --------
    >>> fig = scatter_map(np.zeros((3, 2)), np.array([-1, 0, 0]), row_ids=np.array([7, 8, 9]))
    >>> [(t.name, t.customdata.tolist()) for t in fig.data]
    [('unclustered', [7]), ('0', [8, 9])]
    """
    if overflow not in ("cycle", "other"):
        raise ValueError(f"overflow must be 'cycle' or 'other', got {overflow!r}")
    xy = np.asarray(xy, dtype=np.float32)
    n = len(xy)
    ids = np.arange(n) if row_ids is None else np.asarray(row_ids)
    if len(ids) != n:
        raise ValueError(f"row_ids has {len(ids)} entries for {n} points")
    text = None if hover is None else np.asarray(hover, dtype=object)
    hovertemplate = "%{text}<extra></extra>" if text is not None else None
    size = 8 if n <= 2_000 else 6 if n <= 20_000 else 4  # few points: make them visible
    traces: list[go.Scattergl] = []

    def add(mask: np.ndarray | slice, name: str, marker: dict, **extra: Any) -> None:
        traces.append(go.Scattergl(
            x=xy[mask, 0], y=xy[mask, 1], mode="markers", name=name, customdata=ids[mask],
            text=None if text is None else text[mask], hovertemplate=hovertemplate,
            marker=marker, **extra))

    if continuous:
        c = np.asarray(color, dtype=np.float64)
        add(slice(None), color_title or "value",
            dict(size=size, color=c, colorscale=CONTINUOUS_SCALE, opacity=0.85,
                 colorbar=dict(title=dict(text=color_title))))
    else:
        label_str = np.asarray(color, dtype=object).astype(str)
        uniq, inv, counts = np.unique(label_str, return_inverse=True, return_counts=True)
        is_grey = np.isin(uniq, GREY_KEYS)
        order = [int(u) for u in np.argsort(-counts, kind="stable") if not is_grey[u]]
        if len(order) > max_categories and overflow == "other":
            rest = np.isin(inv, order[max_categories:])
            label_str = np.where(rest, "other", label_str)
            uniq, inv, counts = np.unique(label_str, return_inverse=True, return_counts=True)
            is_grey = np.isin(uniq, GREY_KEYS)
            order = [int(u) for u in np.argsort(-counts, kind="stable") if not is_grey[u]]
        for g in GREY_KEYS:
            hit = np.flatnonzero(uniq == g)
            if hit.size:
                key = str(g)
                add(inv == hit[0], "unclustered" if key == "-1" else key,
                    dict(size=max(size - 2, 3), color=(colors or {}).get(key, GREY), opacity=0.7))
        if len(order) <= max_categories:
            for i, u in enumerate(order):
                key = str(uniq[u])
                add(inv == u, key, dict(size=size, opacity=0.9,
                                        color=(colors or {}).get(key, PALETTE[i % len(PALETTE)])))
        else:  # one trace, colours cycling by category rank
            rank = np.full(len(uniq), -1)
            rank[order] = np.arange(len(order))
            mask = rank[inv] >= 0
            palette = np.asarray(PALETTE, dtype=object)
            add(mask, f"{len(order)} {color_title or 'categories'}",
                dict(size=size, opacity=0.9, color=palette[rank[inv][mask] % len(PALETTE)]))
    # Box select by default (lasso is one click away in the toolbar).
    axis = dict(showticklabels=False, title=None, zeroline=False, showgrid=False)
    fig = go.Figure(data=traces)
    fig.update_layout(dragmode="select", height=620, legend_title_text=color_title,
                      xaxis=axis, yaxis=axis, **_LAYOUT)
    return fig


def selected_rows(selection: Mapping[str, Any] | None) -> np.ndarray:
    """Row ids of the points of a Plotly selection event (from their ``customdata``).

    Accepts what ``st.plotly_chart(on_select="rerun")`` returns (``event.selection``)
    or a plain dict with a ``points`` list; ``customdata`` may be a scalar or a
    one-element list. Points without customdata are ignored. Sorted, unique.

    >>> selected_rows({"points": [{"customdata": [5]}, {"customdata": 2}, {"x": 1}]})
    array([2, 5])
    """
    if not selection:
        return np.zeros(0, dtype=np.int64)
    points = selection.get("points", []) if hasattr(selection, "get") else []
    out = []
    for p in points or []:
        cd = p.get("customdata") if hasattr(p, "get") else None
        if cd is None:
            continue
        if isinstance(cd, (list, tuple, np.ndarray)):
            if len(cd) == 0:
                continue
            cd = cd[0]
        try:
            out.append(int(cd))
        except (TypeError, ValueError):
            continue
    return np.unique(np.asarray(out, dtype=np.int64))
