"""Pure functions that build the Plotly figures of the Training, Errors and Video review pages.

Every function takes plain values (numpy arrays, pandas frames) and returns a
``plotly.graph_objects.Figure``; none reads files, session state or caches, so they
are cheap to test and safe to call from any session.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

#: Colours of the ranked-list kinds, shared by the tables and the charts.
KIND_COLOURS = {
    "hit": "#2e7d32",
    "other identity": "#c62828",
    "distractor": "#ef6c00",
    "unlabelled": "#757575",
    "noise cluster": "#ef6c00",
    "shadow class": "#8e24aa",
    "identity": "#c62828",
    "true identity": "#2e7d32",
    "class": "#1f77b4",
}
_LAYOUT = dict(margin=dict(l=10, r=10, t=40, b=10), template="plotly_white")


def fold_label(fold: int, n_folds: int | None) -> str:
    """``fold k`` for a cross-validation fold, ``refit j`` for a model trained on every
    video (fold index ``>= n_folds``).

    >>> fold_label(1, 3), fold_label(3, 3), fold_label(4, None)
    ('fold 1', 'refit 1', 'fold 4')
    """
    if n_folds and int(fold) >= int(n_folds):
        return f"refit {int(fold) - int(n_folds) + 1}"
    return f"fold {int(fold)}"


def training_curves(metrics: pd.DataFrame, n_folds: int | None = None) -> go.Figure:
    """Loss and validation mAP per epoch, one line per fold, side by side.

    Parameters
    ----------
    metrics : DataFrame
        Columns ``fold``, ``epoch``, ``loss``, ``val_map`` (rows of ``metrics.json``).
    n_folds : int, optional
        The run's cross-validation folds: rows of a fold ``>= n_folds`` are its refit
        models (trained on every video, no validation) and read ``refit j``.

    Examples
    --------
    >>> df = pd.DataFrame({"fold": [0, 0], "epoch": [0, 1], "loss": [2.0, 1.0],
    ...                    "val_map": [0.5, 0.6]})
    >>> len(training_curves(df).data)
    2
    """
    fig = make_subplots(rows=1, cols=2, subplot_titles=("training loss", "validation mAP"),
                        horizontal_spacing=0.08)
    palette = _palette()
    if len(metrics):
        for i, (fold, rows) in enumerate(metrics.sort_values(["fold", "epoch"]).groupby("fold")):
            colour = palette[i % len(palette)]
            name = fold_label(fold, n_folds)
            for col, column in ((1, "loss"), (2, "val_map")):
                if column not in rows or rows[column].isna().all():
                    continue
                fig.add_trace(go.Scatter(
                    x=rows["epoch"], y=rows[column], mode="lines+markers",
                    name=name, legendgroup=name, showlegend=col == 1,
                    line=dict(color=colour, dash="dot" if name.startswith("refit") else None),
                    marker=dict(size=5),
                    hovertemplate=f"{name}<br>epoch %{{x}}<br>{column} %{{y:.4f}}<extra></extra>",
                ), row=1, col=col)
    fig.update_xaxes(title_text="epoch")
    fig.update_yaxes(range=[0, 1.02], row=1, col=2)
    fig.update_layout(height=320, legend=dict(orientation="h", y=-0.25), **_LAYOUT)
    return fig


def runs_comparison(runs: pd.DataFrame) -> go.Figure:
    """mAP of every finished run as a bar, coloured by method (the ablation at a glance).

    Parameters
    ----------
    runs : DataFrame
        Columns ``name``, ``method``, ``mAP`` (NaN for runs without a result).

    Examples
    --------
    >>> df = pd.DataFrame({"name": ["a", "b"], "method": ["knn", "noise"], "mAP": [0.7, 0.8]})
    >>> len(runs_comparison(df).data)
    2
    """
    done = runs.dropna(subset=["mAP"]) if "mAP" in runs else runs.iloc[:0]
    fig = go.Figure()
    for method, rows in done.groupby("method", sort=True):
        fig.add_trace(go.Bar(x=rows["name"], y=rows["mAP"], name=str(method),
                             text=[f"{v:.3f}" for v in rows["mAP"]], textposition="outside",
                             hovertemplate="%{x}<br>mAP %{y:.4f}<extra>" + str(method) + "</extra>"))
    fig.update_layout(height=300, yaxis=dict(title="mAP", range=map_axis_range(done["mAP"])),
                      xaxis=dict(title="run", type="category"), **_LAYOUT)
    return fig


def map_axis_range(values: Sequence[float] | pd.Series) -> list[float]:
    """A y range that shows differences between close mAPs (0.952 vs 0.9915), never beyond [0, 1.05].

    >>> map_axis_range([0.952, 0.9915])
    [0.932, 1.011]
    >>> map_axis_range([0.2, 0.9])
    [0.0, 1.05]
    """
    v = np.asarray(pd.Series(values).dropna(), dtype=float)
    if not len(v):
        return [0.0, 1.05]
    lo, hi = float(v.min()), float(v.max())
    span = max(hi - lo, 0.02)
    low = max(0.0, lo - span / 2) if lo - span / 2 > 0.3 else 0.0
    top = min(1.05, hi + span / 2 + (0.05 if low == 0.0 else 0.0))
    return [round(low, 3), round(max(top, lo + 0.01), 3) if low > 0 else 1.05]


def identity_ap_chart(ap: pd.DataFrame, *, highlight: int | None = None) -> go.Figure:
    """Per-identity AP sorted worst first, the chosen identity highlighted.

    Parameters
    ----------
    ap : DataFrame
        Columns ``identity`` (int) and ``AP`` (float).
    highlight : int, optional
        Identity drawn in a contrasting colour.

    Examples
    --------
    >>> fig = identity_ap_chart(pd.DataFrame({"identity": [3, 1], "AP": [0.2, 0.9]}), highlight=3)
    >>> list(fig.data[0].x)
    ['3', '1']
    """
    rows = ap.sort_values(["AP", "identity"], kind="stable")
    if len(rows) > MAX_AP_BARS:
        return _identity_ap_curve(rows, highlight)
    colours = np.where(rows["identity"].to_numpy() == highlight, "#c62828", "#1f77b4")
    fig = go.Figure(go.Bar(x=rows["identity"].astype(str).tolist(), y=rows["AP"],
                           marker_color=colours.tolist(),
                           hovertemplate="identity %{x}<br>AP %{y:.4f}<extra></extra>"))
    fig.update_layout(height=230, xaxis=dict(title="identity (worst first)", type="category",
                                             showticklabels=len(rows) <= 60),
                      yaxis=dict(title="AP", range=[0, 1.02]), **_LAYOUT)
    return fig


#: Above this many identities the AP chart is a curve of the sorted APs, not one bar each
#: (10,000 bars with their own colours took seconds to draw in the browser).
MAX_AP_BARS = 500


def _identity_ap_curve(rows: pd.DataFrame, highlight: int | None, *, points: int = 2000,
                       worst: int = 200) -> go.Figure:
    """Sorted APs as a line (rank -> AP): every one of the ``worst``, an even thinning of
    the rest to about ``points``, and the highlighted identity as a marker."""
    n = len(rows)
    keep = np.unique(np.concatenate([np.arange(min(worst, n)),
                                     np.linspace(0, n - 1, points).round().astype(int)]))
    ids = rows["identity"].to_numpy()
    ap = rows["AP"].to_numpy(dtype=float)
    fig = go.Figure(go.Scatter(x=keep + 1, y=ap[keep], customdata=ids[keep], mode="lines",
                               line=dict(color="#1f77b4"), name="AP",
                               hovertemplate="rank %{x}: identity %{customdata}<br>AP %{y:.4f}"
                                             "<extra></extra>"))
    at = np.flatnonzero(ids == highlight)
    if len(at):
        fig.add_trace(go.Scatter(x=at + 1, y=ap[at], customdata=ids[at], mode="markers",
                                 marker=dict(color="#c62828", size=10), name=f"identity {highlight}",
                                 hovertemplate="identity %{customdata}<br>AP %{y:.4f}<extra></extra>"))
    fig.update_layout(height=230, showlegend=False,
                      xaxis=dict(title=f"identities, worst first ({n:,})"),
                      yaxis=dict(title="AP", range=[0, 1.02]), **_LAYOUT)
    return fig


def stealers_chart(stealers: pd.DataFrame) -> go.Figure:
    """Horizontal bars: who takes an identity's videos (other identities, noise clusters).

    Parameters
    ----------
    stealers : DataFrame
        Columns ``label`` (str), ``kind`` (a key of :data:`KIND_COLOURS`), ``videos`` (int).

    Examples
    --------
    >>> df = pd.DataFrame({"label": ["identity 4", "noise cluster 2"],
    ...                    "kind": ["identity", "noise cluster"], "videos": [3, 1]})
    >>> stealers_chart(df).data[0].orientation
    'h'
    """
    rows = stealers.sort_values("videos", ascending=True, kind="stable")
    colours = [KIND_COLOURS.get(k, "#757575") for k in rows["kind"]]
    fig = go.Figure(go.Bar(y=rows["label"].astype(str), x=rows["videos"], orientation="h",
                           marker_color=colours, customdata=rows["kind"],
                           hovertemplate="%{y}<br>%{x} videos<br>%{customdata}<extra></extra>"))
    fig.update_layout(height=max(160, 28 * len(rows) + 60),
                      xaxis=dict(title="videos taken", dtick=1 if int(rows["videos"].max() if len(rows) else 0) < 10 else None),
                      yaxis=dict(type="category"), **_LAYOUT)
    return fig


def frame_scores_chart(frame_no: np.ndarray, quality: np.ndarray, det: np.ndarray) -> go.Figure:
    """A video's face quality (left axis) and detection score (right axis) over its frames.

    Examples
    --------
    >>> fig = frame_scores_chart(np.array([1, 2]), np.array([50., 60.]), np.array([.9, .95]))
    >>> [t.name for t in fig.data]
    ['quality', 'detection']
    """
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    # Markers, not lines: a frame number may hold several faces.
    fig.add_trace(go.Scatter(x=frame_no, y=quality, name="quality", mode="markers",
                             marker=dict(size=7, color="#1f77b4")), secondary_y=False)
    fig.add_trace(go.Scatter(x=frame_no, y=det, name="detection", mode="markers",
                             marker=dict(size=6, color="#ff7f0e", symbol="diamond")),
                  secondary_y=True)
    fig.update_xaxes(title_text="frame")
    fig.update_yaxes(title_text="quality", secondary_y=False)
    fig.update_yaxes(title_text="detection score", secondary_y=True)
    fig.update_layout(height=280, legend=dict(orientation="h", y=1.15), **_LAYOUT)
    return fig


def frame_similarity_chart(frame_no: np.ndarray, lines: dict[str, np.ndarray],
                           weights: np.ndarray | None = None) -> go.Figure:
    """Cosine similarity of each frame to identity centres (one line per centre).

    Frames where the "predicted" line rises above the "true" one are the frames that
    carry the error. ``weights`` (the pooling weights) sizes the markers so the
    frames that count most in the pooled vector stand out.

    Examples
    --------
    >>> fig = frame_similarity_chart(np.arange(3), {"true 1": np.zeros(3), "pred 2": np.ones(3)})
    >>> len(fig.data)
    2
    """
    fig = go.Figure()
    sizes = None
    if weights is not None and len(weights) and float(np.max(weights)) > 0:
        sizes = 4 + 10 * np.asarray(weights, float) / float(np.max(weights))
    palette = ["#2e7d32", "#c62828", "#1f77b4", "#8e24aa", "#ef6c00"]
    for i, (label, values) in enumerate(lines.items()):
        fig.add_trace(go.Scatter(
            x=frame_no, y=values, name=label, mode="markers",
            marker=dict(size=sizes if sizes is not None else 7, color=palette[i % len(palette)],
                        opacity=0.8),
            hovertemplate=f"{label}<br>frame %{{x}}<br>cosine %{{y:.3f}}<extra></extra>"))
    fig.update_layout(height=300, xaxis=dict(title="frame"),
                      yaxis=dict(title="cosine similarity to centre"),
                      legend=dict(orientation="h", y=1.15), **_LAYOUT)
    return fig


def top_classes_chart(labels: Sequence[str], probs: Sequence[float], *,
                      kinds: Sequence[str] | None = None, value_name: str = "probability") -> go.Figure:
    """Horizontal bars of a video's top predicted classes, best at the top.

    Examples
    --------
    >>> top_classes_chart(["identity 3", "identity 9"], [0.7, 0.2]).data[0].x.tolist()
    [0.2, 0.7]
    """
    labels, probs = list(labels)[::-1], np.asarray(probs, float)[::-1]
    colours = ["#1f77b4"] * len(labels) if kinds is None else \
        [KIND_COLOURS.get(k, "#1f77b4") for k in list(kinds)[::-1]]
    fig = go.Figure(go.Bar(y=labels, x=probs, orientation="h", marker_color=colours,
                           text=[f"{p:.3f}" for p in probs], textposition="auto",
                           hovertemplate="%{y}<br>" + value_name + " %{x:.4f}<extra></extra>"))
    fig.update_layout(height=max(160, 30 * len(labels) + 60), xaxis=dict(title=value_name),
                      yaxis=dict(type="category"), **_LAYOUT)
    return fig


def _palette() -> list[str]:
    import plotly.express as px

    return list(px.colors.qualitative.Plotly)


def identity_ap_scatter(table: pd.DataFrame, a: str, b: str) -> go.Figure:
    """Per-identity AP of run ``a`` (x) against run ``b`` (y), gained / lost / same coloured.

    Parameters
    ----------
    table : DataFrame
        :func:`core.runs.compare.compare_identity_ap`: ``identity``, ``a``, ``b``, ``change``.

    Examples
    --------
    >>> df = pd.DataFrame({"identity": [1, 2], "A": [0.5, 1.0], "B": [0.9, 1.0],
    ...                    "change": ["gained", "same"]})
    >>> sorted(t.name for t in identity_ap_scatter(df, "A", "B").data)
    ['gained', 'same', 'same AP']
    """
    colours = {"gained": "#2e7d32", "lost": "#c62828", "same": "#9e9e9e"}
    fig = go.Figure(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="same AP",
                               line=dict(color="#bdbdbd", dash="dash"), hoverinfo="skip"))
    for change, rows in table.groupby("change", sort=True):
        fig.add_trace(go.Scatter(
            x=rows[a], y=rows[b], mode="markers", name=str(change),
            marker=dict(color=colours.get(str(change), "#1f77b4"), size=8, opacity=0.8),
            customdata=rows["identity"],
            hovertemplate=f"identity %{{customdata}}<br>{a}: %{{x:.3f}}<br>{b}: %{{y:.3f}}<extra></extra>"))
    fig.update_layout(height=380, xaxis=dict(title=f"AP · {a}", range=[-0.02, 1.02]),
                      yaxis=dict(title=f"AP · {b}", range=[-0.02, 1.02], scaleanchor="x"), **_LAYOUT)
    return fig


def curves_overlaid(curves: dict[str, pd.DataFrame], n_folds: dict[str, int | None] | None = None) -> go.Figure:
    """Validation mAP per epoch of several runs on one chart (mean over the CV folds).

    Refit models (no validation) are left out; a reference method (one row per fold,
    epoch 0) draws as a single marker.

    Examples
    --------
    >>> df = pd.DataFrame({"fold": [0, 1, 0, 1], "epoch": [0, 0, 1, 1], "loss": [2, 2, 1, 1],
    ...                    "val_map": [0.5, 0.7, 0.6, 0.8]})
    >>> fig = curves_overlaid({"run a": df})
    >>> [round(float(v), 2) for v in fig.data[0].y]
    [0.6, 0.7]
    """
    fig = go.Figure()
    for name, m in curves.items():
        if not len(m) or "val_map" not in m:
            continue
        folds = (n_folds or {}).get(name)
        rows = m[m["fold"] < folds] if folds else m
        mean = rows.dropna(subset=["val_map"]).groupby("epoch")["val_map"].mean()
        if mean.empty:
            continue
        fig.add_trace(go.Scatter(x=mean.index, y=mean.values, mode="lines+markers", name=name,
                                 hovertemplate=f"{name}<br>epoch %{{x}}<br>mean val mAP %{{y:.4f}}<extra></extra>"))
    fig.update_layout(height=320, xaxis=dict(title="epoch"),
                      yaxis=dict(title="validation mAP (mean over folds)"),
                      legend=dict(orientation="h", y=-0.25), **_LAYOUT)
    return fig
