"""Noise clusters page: tune DBSCAN over the distractors by eye, at once.

The neighbour graph of the distractors is built once per dataset (cached, shared); a
slider move reruns only the fragment below, which asks the graph for the labels
(milliseconds) and redraws what depends on them. Nothing heavy is recomputed on a
slider move, and the browser redraws little: Streamlit re-draws a Plotly chart in full
whenever its figure changes at all (~1,500 DOM mutations for the k-distance chart,
3-9k for the four-panel sweep, measured in Chromium), so the sweep is drawn without the moving eps line (its
figure changes only with min_samples and is not re-sent to Plotly on an eps move); the
k-distance curve (one panel, thinned) carries the eps line. The cluster table (a
per-cluster summary) is computed only when it is shown.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import streamlit as st

from dashboard import charts
from dashboard.cache import datasets as data
from dashboard.cache import noise as noise_cache

st.title("Noise clusters")
st.caption("Distractors (videos of people outside the known identities) that recur form "
           "clusters. Each cluster becomes an extra noise class for training; the rest get "
           "the dynamic shadow classes. Move eps and min_samples and watch the clustering "
           "change: the graph is built once, each move only re-reads it.")

spec = data.active_dataset()
try:
    graph = noise_cache.noise_graph(spec)
    lv = data.load_dataset(spec)
except data.USER_ERRORS as exc:
    st.error(f"{spec.name}: {data.friendly_error(exc)}")
    st.stop()
rows = data.noise_rows(spec)
if graph.n_points < 3:
    st.info(f"{spec.name} has {graph.n_points} distractor video(s): nothing to cluster.")
    st.stop()
names = np.asarray(lv.names)[rows]

# An approximate graph may store too few neighbours for a large min_samples.
MIN_SAMPLES_MAX = int(min(20, getattr(graph, "max_min_samples", None) or 20))
EPS_MIN, EPS_MAX = 0.05, float(graph.max_eps)
EPS_GRID = noise_cache.eps_grid(EPS_MAX)
#: Points of the drawn k-distance curve (a sorted curve: a few hundred show its shape).
KDIST_POINTS = 400

# Per-dataset defaults: min_samples 2 (as the original) and the eps giving the most
# clusters at or below the knee of the k-distance curve, before a merge (noise_cache.choose_eps).
if st.session_state.get("noise_for") != spec.root:
    st.session_state["noise_for"] = spec.root
    st.session_state["noise_eps"] = noise_cache.default_eps(spec, 2)
    st.session_state["noise_min_samples"] = 2
st.session_state.setdefault("noise_eps", noise_cache.default_eps(spec, 2))
st.session_state.setdefault("noise_min_samples", 2)

desc = graph.describe()
noise_splits = pd.unique(np.asarray(lv.split)[rows]).tolist()
what = "distractors" if spec.labelled_splits else "videos (no ground truth: all clustered)"
st.caption(f"{graph.n_points:,} {what} of {', '.join(map(str, noise_splits))} "
           f"· neighbour graph: {desc['n_edges']:,} pairs within distance {desc['max_eps']:g}, "
           f"{desc['method']}, built in {desc['build_seconds']:.2f} s")


@st.fragment
def clustering() -> None:
    c1, c2 = st.columns([3, 1])
    eps = c1.slider("eps (distance between unit vectors)", EPS_MIN, EPS_MAX, step=0.01,
                    key="noise_eps", persist_state="session",
                    help="Two distractors closer than eps are neighbours. The original "
                         "solution used 1.2 on its features. The default here is the eps "
                         "with the most clusters at or below the knee of the k-distance "
                         "curve, stepped back where the largest cluster doubles (a merge).")
    min_samples = c2.slider("min_samples", 2, MIN_SAMPLES_MAX, key="noise_min_samples", persist_state="session",
                            help="Neighbours (itself included) a video needs to be a core "
                                 "point of a cluster")
    t0 = time.perf_counter()
    labels = noise_cache.cluster_noise(spec, eps, min_samples)
    took_ms = 1000 * (time.perf_counter() - t0)
    sizes = np.bincount(labels[labels >= 0]) if (labels >= 0).any() else np.zeros(0, int)
    n_clusters = int(sizes.size)

    m = st.columns(4)
    m[0].metric("N clusters", n_clusters)
    m[1].metric("Clustered videos", f"{int((labels >= 0).sum()):,}")
    m[2].metric("Unclustered share", f"{(labels < 0).mean():.1%}")
    m[3].metric("Largest cluster", int(sizes.max()) if sizes.size else 0)
    st.caption(f"DBSCAN answered in {took_ms:.1f} ms from the cached neighbour graph.")

    curve, knee = noise_cache.k_distance(spec, min_samples)
    sweep = noise_cache.eps_sweep(spec, min_samples, EPS_GRID)
    from core.cluster.eps_choice import cliff_above

    cliff = cliff_above(sweep, eps)
    if cliff is not None:
        (s0, s1), (n0, n1) = cliff["largest_share"], cliff["n_clusters"]
        n = graph.n_points
        st.warning(f"A cliff is near: at eps {cliff['eps']:.2f} (just {cliff['eps'] - eps:.2f} "
                   f"above) the largest cluster grows from {round(s0 * n):,} to {round(s1 * n):,} "
                   f"videos and the clusters go from {n0:,} to {n1:,}. Distinct people start "
                   f"merging there: small changes to the features can push this eps over it.",
                   icon=":material/warning:")
    c1, c2 = st.columns(2)
    # uirevision: a zoom the user made survives slider moves.
    static = dict(uirevision=spec.root)
    with c1:
        st.plotly_chart(charts.k_distance_figure(curve, k=min_samples, eps=eps, knee=knee,
                                                 max_points=KDIST_POINTS)
                        .update_layout(**static), key="noise_fig_kdist")
        st.caption(f"Each distractor's distance to its {charts.ordinal(min_samples)} nearest "
                   f"neighbour "
                   f"(itself counted), sorted. Points under the red eps line are core points. "
                   f"The knee (dashed, {knee:.2f}) is where distances start to climb; the "
                   f"default eps is where the sweep below finds the most clusters, at or "
                   f"below the knee, before a step that doubles the largest cluster.")
    with c2:
        st.plotly_chart(charts.cluster_size_figure(labels).update_layout(uirevision=spec.root),
                        key="noise_fig_sizes")
        st.caption("How many clusters have each size. One huge cluster means eps is too "
                   "large (distinct people merged).")
    # The current eps is marked here too (the red line), at the price of a redraw per
    # move; the panels are lines only to keep that redraw cheap.
    st.plotly_chart(charts.eps_sweep_figure(sweep, eps=eps, knee=knee).update_layout(**static),
                    key="noise_fig_sweep")
    truth_note = (" ARI and purity compare the clusters with the true persons of the "
                  "synthetic distractors (truth.tsv).") if "ari" in sweep and \
        sweep["ari"].notna().any() else ""
    st.caption(f"The same statistics over the whole range of eps at this min_samples (the "
               f"numbers above are their values at the current eps, the red line, {eps:.2f}); "
               f"the dashed line is the knee ({knee:.2f})." + truth_note)

    st.subheader("Clusters")
    # The per-cluster summary (similarities, nearest identity, medoid) is the one part of
    # the page that costs more than a few milliseconds per new eps: computed on demand.
    show_table = st.toggle("Show the cluster table (size, similarity inside, nearest known "
                           "identity, representatives)", key="noise_show_table",
                           persist_state="session")
    summary = noise_cache.cluster_summary(spec, eps, min_samples) if show_table else None
    default_flag = noise_cache.identity_self_similarity(spec) if show_table else float("nan")
    if summary is None:
        st.caption("Turn on the table to inspect the clusters one by one and flag those "
                   "sitting on a known identity.")
    elif not summary.empty:
        flag_at = st.number_input(
            "Flag a cluster when its similarity to a known identity is at least",
            min_value=-1.0, max_value=1.0, step=0.01, key="noise_flag_sim", persist_state="session", value=None,
            placeholder=f"{default_flag:.2f} (a quarter of labelled videos are less similar "
                        f"to their own identity)" if np.isfinite(default_flag) else "no identities",
        )
        threshold = flag_at if flag_at is not None else default_flag
        table = summary.copy()
        table["possible GT error"] = table["nearest_identity_sim"] >= threshold \
            if np.isfinite(threshold) else False
        # The flag first, where the eye starts: which cluster sits on which identity.
        table.insert(0, "flag", np.where(table["possible GT error"],
                                         "⚑ on identity " + table["nearest_identity"].astype(str), ""))
        table["representatives"] = table["representatives"].map(", ".join)
        # Flagged clusters first: they are the ones to look at.
        table = table.sort_values(["possible GT error", "size"], ascending=[False, False],
                                  ignore_index=True, kind="stable")
        n_flag = int(table["possible GT error"].sum())
        if n_flag:
            st.warning(f"{n_flag} cluster(s) sit on a known identity (similarity ≥ "
                       f"{threshold:.2f}): their videos may be that person, missing from the "
                       f"ground truth — or lookalikes.", icon=":material/flag:")
        event = st.dataframe(
            table, hide_index=True, width="stretch", key="noise_cluster_table",
            on_select="rerun", selection_mode="single-row",
            column_config={
                "flag": st.column_config.TextColumn("flag", width="medium"),
                "mean_intra_sim": st.column_config.NumberColumn("mean similarity inside",
                                                                format="%.3f"),
                "nearest_identity": st.column_config.NumberColumn("nearest identity"),
                "nearest_identity_sim": st.column_config.ProgressColumn(
                    "similarity to it", min_value=-1.0, max_value=1.0, format="%.3f"),
            })
        st.download_button("Cluster table (CSV)", table.to_csv(index=False).encode("utf-8"),
                           file_name=f"noise_clusters_eps{eps:.2f}_ms{min_samples}.csv",
                           mime="text/csv", key="noise_download_clusters", icon=":material/download:")
        picked = event.selection.rows if event is not None else []
        if picked:
            k = int(table.iloc[picked[0]]["cluster"])
            members = names[labels == k]
            review = data.review_page()
            st.markdown(f"**Cluster {k}**: {len(members)} videos"
                        + (" — open one in Video review:" if review else ":"))
            for name in members[:30]:
                if review:
                    st.page_link(review, label=str(name), query_params={"video": str(name)},
                                 icon=":material/movie:")
                else:
                    st.markdown(f"- `{name}`")
            if len(members) > 30:
                st.caption(f"… and {len(members) - 30} more.")
        else:
            st.caption("Select a row to list the cluster's videos.")
    else:
        st.info("No clusters at these settings: raise eps or lower min_samples.")

    chosen = st.session_state.get(data.KEY_NOISE_LABELS)
    c1, c2 = st.columns([1, 3], vertical_alignment="center")
    if c1.button("Use this clustering for training", type="primary", key="noise_use"):
        st.session_state[data.KEY_NOISE_LABELS] = {
            "eps": float(eps), "min_samples": int(min_samples),
            "labels": np.asarray(labels).copy(), "names": names.astype(str),
            "n_clusters": n_clusters, "dataset": spec.root,
        }
        chosen = st.session_state[data.KEY_NOISE_LABELS]
        st.toast(f"Training will use {n_clusters} noise clusters (eps {eps:.2f}, "
                 f"min_samples {min_samples}).", icon=":material/check:")
    if chosen is not None:
        c2.caption(f"Chosen for training: eps {chosen['eps']:.2f}, min_samples "
                   f"{chosen['min_samples']}, {chosen.get('n_clusters', '?')} clusters.")
    else:
        c2.caption("Training clusters the distractors itself with its own eps unless you "
                   "choose a clustering here.")


try:
    clustering()
except data.USER_ERRORS as exc:
    st.error(data.friendly_error(exc))
