"""Map page: a 2-d map (UMAP) of the videos; select a region, list its videos, open one.

The map is computed once per data and parameters (on disk, shared by all sessions),
with progress while it computes. Every point carries its row in ``customdata`` so a
box/lasso selection maps back to the right videos whatever colour trace it is in. The
chart and its selection table form a fragment: selecting reruns only them, with the
figure built once per full run.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from dashboard import charts
from dashboard.cache import datasets as data
from dashboard.cache import runs as run_data
from dashboard.cache import map as map_cache, modal as modal_cache, noise as noise_cache

st.title("Map")
st.caption("Each dot is a video, placed so that videos with similar pooled vectors (faces, "
           "or the modality it is drawn from) sit close together. Recurring distractors form tight islands (the noise clusters); "
           "a distractor island inside an identity's region is worth a look. Box- or "
           "lasso-select dots to list them.")

spec = data.active_dataset()
try:
    lv = data.load_dataset(spec)
except data.USER_ERRORS as exc:
    st.error(f"{spec.name}: {data.friendly_error(exc)}")
    st.stop()

SUBSETS = {"Distractors, by noise cluster": "noise", "All videos": "all"}
COLOR_BY = ("identity", "split", "quality", "outcome of a run")
#: Up to this many points the hover also gives faces and mean quality (the selection
#: table always does): at 100,000 points the longer text doubled what the browser receives.
FULL_HOVER_POINTS = 20_000
st.session_state.setdefault("map_subset", next(iter(SUBSETS)))
st.session_state.setdefault("map_color", "identity")
st.session_state.setdefault("map_method", "umap")
st.session_state.setdefault("map_n_neighbors", 15)
st.session_state.setdefault("map_min_dist", 0.1)

try:
    sources = modal_cache.map_sources(spec)
except data.USER_ERRORS as exc:
    st.warning(f"Cannot read the other modalities: {data.friendly_error(exc)}")
    sources = ["face"]
if st.session_state.get("map_source") not in sources:
    st.session_state["map_source"] = "face"

c1, c2, c3 = st.columns([2, 2, 1])
subset_label = c1.radio("Show", list(SUBSETS), key="map_subset", persist_state="session", horizontal=True)
subset = SUBSETS[subset_label]
color_by = None
source = "face"
if subset == "all":
    color_by = c2.selectbox("Colour by", COLOR_BY, key="map_color", persist_state="session")
    if len(sources) > 1:
        source = c2.selectbox(
            "Drawn from", sources, key="map_source",
            format_func=lambda m: "all modalities side by side" if m == modal_cache.FUSED_SOURCE
            else f"{m} features",
            help="The pooled vectors placed on the map. Only modalities present in the data "
                 "are offered; 'all modalities side by side' concatenates each video's unit "
                 "blocks weighted as in the late fusion (face 1, head 0.5, body 0.25, audio 0.5), "
                 "so faceless videos are drawn too.")
if source != "face":
    try:
        lv = modal_cache.modal_dataset(spec)  # rows of the map index this dataset
    except data.USER_ERRORS as exc:
        st.error(f"{spec.name}: {data.friendly_error(exc)}")
        st.stop()
    st.caption(f"Drawn from {'every modality side by side' if source == modal_cache.FUSED_SOURCE else source + ' features'}: "
               "videos lacking it are left out.")
elif len(sources) > 1 and subset == "noise":
    st.caption("Noise clusters are found on faces, so this map is drawn from faces.")
method = c3.selectbox("Layout", ["umap", "pca"], key="map_method", persist_state="session",
                      format_func=lambda m: {"umap": "UMAP", "pca": "PCA (fast, linear)"}[m])
with st.expander("Map parameters"):
    p1, p2 = st.columns(2)
    n_neighbors = p1.slider("UMAP n_neighbors", 5, 100, key="map_n_neighbors", persist_state="session",
                            help="Larger: more global structure, slower")
    min_dist = p2.slider("UMAP min_dist", 0.0, 0.99, step=0.01, key="map_min_dist", persist_state="session",
                         help="Smaller: tighter islands")

# ---------------------------------------------------------------- colours
names_all = np.asarray(lv.names).astype(str)
ids_all = np.asarray(lv.ids)
split_all = np.asarray(lv.split).astype(str)
frames_all = np.asarray(lv.pooled.n_frames)
quality_all = np.asarray(lv.pooled.mean_quality, dtype=np.float32)
labelled = data.labelled_ids(lv, spec)

extra_col: dict[str, np.ndarray] = {}
continuous = False
colors = None
if subset == "noise":
    noise = data.noise_rows(spec)
    if len(noise) < 3:
        st.info(f"{spec.name} has {len(noise)} distractor video(s): switch to all videos.")
        st.stop()
    chosen = st.session_state.get(data.KEY_NOISE_LABELS)
    if chosen is not None and chosen.get("dataset") == spec.root \
            and np.array_equal(np.asarray(chosen["names"]).astype(str), names_all[noise]):
        eps, min_samples = chosen["eps"], chosen["min_samples"]
        labels = np.asarray(chosen["labels"])
        how = "the clustering chosen for training"
    else:
        eps, min_samples = noise_cache.default_eps(spec, 2), 2
        labels = noise_cache.cluster_noise(spec, eps, min_samples)
        how = "the suggested clustering (pick another on the Noise clusters page)"
    cluster_of = np.full(len(names_all), -2, dtype=np.int64)
    cluster_of[noise] = labels
    st.caption(f"Coloured by {how}: eps {eps:.2f}, min_samples {min_samples} — "
               f"{int(labels.max(initial=-1)) + 1} clusters; unclustered in grey.")
    extra_col["cluster"] = cluster_of
    title = "noise clusters"
elif color_by == "identity":
    title = "identities"
elif color_by == "split":
    title = "split"
elif color_by == "quality":
    title = "mean face quality"
    continuous = True
else:
    title = "outcome"
    runs = run_data.runs_table(data.runs_root())
    done = runs[(runs["state"] == "complete")] if not runs.empty else runs
    if not done.empty:
        done = done[[(Path(p) / "oof.npz").is_file() for p in done["path"]]]
    if done.empty:
        st.info("No finished run yet: launch one on the Training page. Colouring by identity.")
        color_by, title = "identity", "identities"
    else:
        by_name = done.set_index("name")
        run_name = st.selectbox(
            "Run", by_name.index.tolist(), key="map_run",
            format_func=lambda n: f"{n} ({by_name.loc[n, 'method']}, mAP "
                                  f"{float(by_name.loc[n, 'mAP'] or float('nan')):.4f})")
        outcome = run_data.run_correctness(by_name.loc[run_name, "path"])
        extra_col["outcome"] = outcome["outcome"].reindex(names_all).fillna("not scored") \
            .to_numpy(dtype=object)
        if (extra_col["outcome"] == "not scored").all():
            st.warning(f"Run {run_name} scored none of the videos of {spec.name}: it was "
                       f"trained on another dataset.")
        colors = {"correct": charts.CORRECT, "wrong": charts.WRONG}
        st.caption("Out-of-fold top-1 prediction of each labelled video of the run; "
                   "distractors and videos outside the run in grey.")

# ---------------------------------------------------------------- the map
progress_bar = None


def _progress(fraction: float, message: str) -> None:
    global progress_bar
    if progress_bar is None:
        progress_bar = st.progress(0.0, text="Computing the map (once per data and parameters)…")
    progress_bar.progress(min(max(fraction, 0.0), 1.0), text=f"Computing the map: {message}")


try:
    rows, xy, total = map_cache.projection(spec, subset, method=method, n_neighbors=n_neighbors,
                                      min_dist=min_dist, seed=0,
                                      max_points=map_cache.MAX_MAP_POINTS, progress=_progress,
                                      source=source)
except data.USER_ERRORS as exc:
    st.error(data.friendly_error(exc))
    st.stop()
if progress_bar is not None:
    progress_bar.empty()
if total > len(rows):
    st.info(f"Showing a random sample of {len(rows):,} of {total:,} videos so the map stays "
            f"fluid.", icon=":material/info:")

if subset == "noise":
    cl = extra_col["cluster"][rows]
    color = cl
elif color_by == "identity":
    color = np.where(ids_all[rows] > 0, np.char.add("id ", ids_all[rows].astype(str)),
                     np.where(labelled[rows], "distractor", "unlabelled")).astype(object)
elif color_by == "split":
    color = split_all[rows]
elif color_by == "quality":
    color = quality_all[rows]
else:
    color = extra_col["outcome"][rows]

id_text = np.where(ids_all[rows] > 0, np.char.add("identity ", ids_all[rows].astype(str)),
                   np.where(labelled[rows], "distractor", "unlabelled"))
hover = pd.Series(names_all[rows]).radd("<b>").add("</b><br>") \
    .add(split_all[rows]).add(" · ").add(id_text)
if len(rows) <= FULL_HOVER_POINTS:  # tens of thousands of points: the hover text is the payload
    hover = hover.add("<br>").add(frames_all[rows].astype(str)).add(" faces · mean quality ") \
        .add(np.char.mod("%.0f", quality_all[rows]))
if subset == "noise":
    hover = hover.add("<br>cluster ").add(np.where(cl >= 0, cl.astype(str), "none"))
elif color_by == "outcome of a run":
    hover = hover.add("<br>").add(extra_col["outcome"][rows].astype(str))

fig = charts.scatter_map(xy, color, hover=hover.to_numpy(), row_ids=rows, continuous=continuous,
                         color_title=title, colors=colors)


@st.fragment
def map_and_selection(fig) -> None:
    """The chart and its selection table: a selection reruns only this part."""
    event = st.plotly_chart(fig, key="map_chart", on_select="rerun",
                            selection_mode=("box", "lasso", "points"))
    picked = charts.selected_rows(event.selection if event is not None else None)
    if picked.size == 0:
        st.caption("Select dots (box or lasso in the chart's toolbar) to list their videos here.")
        return
    review = data.review_page()
    table = pd.DataFrame({
        "video": names_all[picked], "split": split_all[picked],
        "identity": np.where(ids_all[picked] > 0, ids_all[picked].astype(str),
                             np.where(labelled[picked], "distractor", "unlabelled")),
        "faces": frames_all[picked], "mean quality": quality_all[picked].round(1),
    })
    if subset == "noise":
        c = extra_col["cluster"][picked]
        table["cluster"] = np.where(c >= 0, c.astype(str), "none")
    if "outcome" in extra_col:
        table["outcome"] = extra_col["outcome"][picked]
    column_config = {}
    if review:
        table["review"] = [f"video_review?video={n}" for n in table["video"]]
        column_config["review"] = st.column_config.LinkColumn("review", display_text="open")
    st.subheader(f"{len(table):,} selected videos")
    st.dataframe(table, hide_index=True, width="stretch", column_config=column_config,
                 key="map_selected_table")
    st.download_button("Selection (CSV)", table.drop(columns=["review"], errors="ignore")
                       .to_csv(index=False).encode("utf-8"), file_name="map_selection.csv",
                       mime="text/csv", key="map_download_selection", icon=":material/download:")
    if review:
        pick = st.selectbox("Open in Video review", table["video"].tolist(), key="map_open")
        st.page_link(review, label=f"Review {pick}", query_params={"video": pick},
                     icon=":material/movie:")


map_and_selection(fig)
