"""Data page: choose the dataset, see what is in it, see what the pooling options change.

UI only: loading and statistics come from ``dashboard.cache.datasets`` (the caching layer),
figures from ``dashboard.charts``. Bad input shows the library's one-line message;
the previously active dataset stays active.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import streamlit as st

from core.synth import PRESETS
from dashboard import charts
from dashboard.cache import datasets as data
from dashboard.cache import sources
from dashboard.cache import stats as stats_cache

st.title("Data")
st.caption("The dataset every page works on: the built-in synthetic demo, a folder of real "
           "iQIYI-VID files on this machine, or files you upload. Feature pickles are always "
           "read with the restricted (safe) unpickler.")

SOURCES = ("Demo", "Folder on this machine", "Upload files")
st.session_state.setdefault("data_source", SOURCES[0])
st.session_state.setdefault("data_folder", "")


def _try_activate(make_spec, *, hide: str | None = None) -> None:
    """Build a spec and load it; on a user mistake show one line and keep the old dataset.

    ``hide``: an internal folder (the uploads' hashed folder) left out of the message.
    """
    try:
        with st.spinner("Reading and checking the files…"):
            spec = make_spec()
            data.activate(spec)
    except data.USER_ERRORS as exc:
        message = data.friendly_error(exc)
        if hide:
            message = sources.without_folder(message, hide)
        st.error(f"Could not open this dataset: {message}", icon=":material/error:")
        return
    # Rerun so the whole app (sidebar included) shows the new dataset; say so once.
    st.session_state["data_flash"] = f"Now using **{spec.name}**."
    st.rerun()


def _drop_unused_upload(folder) -> None:
    """An upload that failed to open is removed (uploads must not pile up)."""
    import shutil

    active = data.active_dataset()
    if str(folder) != str(active.root):
        shutil.rmtree(folder, ignore_errors=True)


def _storage_section() -> None:
    from core.storage import CLEARABLE, cache_usage, clear_cache, human_bytes

    usage = cache_usage()
    total = int(usage["bytes"].sum())
    with st.expander(f"Storage: {human_bytes(total)} in `{usage['where'].iloc[0]}`",
                     icon=":material/storage:"):
        st.caption("What vidid writes on this machine: generated demo data, uploaded files, "
                   "feature caches and projections (rebuilt when needed) and, unless "
                   "VIDID_RUNS moves them, the runs (delete those on the Results page).")
        shown = usage.assign(size=usage["bytes"].map(human_bytes))[["part", "size", "items"]]
        st.dataframe(shown, hide_index=True, key="data_storage")
        cols = st.columns(len(CLEARABLE))
        active = data.active_dataset()
        for col, part in zip(cols, CLEARABLE):
            if col.button(f"Clear {part}", key=f"data_clear_{part.replace(' ', '_')}",
                          icon=":material/delete_sweep:"):
                freed = clear_cache(part, keep=(active.root,))
                st.toast(f"Cleared {part}: {human_bytes(freed)} freed (the dataset in use is kept)")
                st.rerun()


flash = st.session_state.pop("data_flash", None)
if flash:
    st.success(flash, icon=":material/check_circle:")


with st.container(border=True):
    source = st.radio("Source", SOURCES, horizontal=True, key="data_source", persist_state="session",
                      label_visibility="collapsed")
    if source == "Demo":
        presets = list(PRESETS)
        default = sources.demo_preset() if sources.demo_preset() in presets else "demo"
        c1, c2 = st.columns([3, 1], vertical_alignment="bottom")
        preset = c1.selectbox("Demo preset", presets, index=presets.index(default),
                              key="data_preset", persist_state="session",
                              help="tiny: seconds to generate; demo: 400 identities; large: "
                                   "2019 scale (10,000 identities, several GB, minutes)")
        if c2.button("Use the demo", key="data_use_demo", width="stretch"):
            _try_activate(lambda: sources.demo_spec(preset))
    elif source == "Folder on this machine":
        c1, c2 = st.columns([3, 1], vertical_alignment="bottom")
        folder = c1.text_input(
            "Folder", key="data_folder", persist_state="session", placeholder="/data/iQIYI-VID-2019",
            help="A folder holding face_train*.pickle / face_val*.pickle / face_test*.pickle "
                 "and the ground truth train_gt.txt / val_gt.txt (2019) or train.txt / "
                 "val.txt (2018). A split without ground truth is treated as unlabelled.")
        if c2.button("Open folder", key="data_open_folder", width="stretch",
                     disabled=not folder.strip()):
            _try_activate(lambda: data.detect_splits(folder.strip()))
    else:
        files = st.file_uploader(
            "Feature pickles and ground-truth files", accept_multiple_files=True,
            type=["pickle", "pkl", "txt", "tsv"], key="data_uploads",
            help="Name them as the dataset does: face_val.pickle + val_gt.txt, ...")
        if st.button("Load uploaded files", key="data_load_uploads", disabled=not files):
            try:
                folder = sources.save_uploads((f.name, f.getvalue()) for f in files)
            except data.USER_ERRORS as exc:
                st.error(f"Could not open this dataset: {data.friendly_error(exc)}",
                         icon=":material/error:")
            else:
                _try_activate(lambda: data.detect_splits(folder, name="upload"), hide=str(folder))
                _drop_unused_upload(folder)

spec = data.active_dataset()
try:
    stats = stats_cache.dataset_stats(spec)
except data.USER_ERRORS as exc:  # the active files changed on disk and no longer load
    st.error(f"{spec.name}: {data.friendly_error(exc)}")
    st.stop()

st.subheader(f"{spec.name}")
st.caption(f"`{spec.root}` — splits: {', '.join(spec.split_names)}"
           + ("; true persons known (truth.tsv)" if spec.truth else ""))
cols = st.columns(5)
cols[0].metric("Videos", f"{stats['videos']:,}")
cols[1].metric("Identities", f"{stats['identities']:,}")
cols[2].metric("Distractors", f"{stats['distractors']:,}",
               help="Videos of a labelled split that its ground truth does not name")
cols[3].metric("Frames", f"{stats['frames']:,}")
cols[4].metric("Empty videos", f"{stats['empty']:,}", help="No detected face: cannot be pooled")
st.dataframe(stats["per_split"], hide_index=True, width="stretch")

st.subheader("Modalities")
try:
    coverage = stats_cache.modality_coverage(spec)
except data.USER_ERRORS as exc:
    st.error(f"{spec.name}: {data.friendly_error(exc)}")
else:
    st.caption("Videos holding each modality (head_, body_, audio_ files beside each face "
               "file; empty: no file). Faceless videos have no face frame but another "
               "modality: `vidid train` scores them when those files are present.")
    st.dataframe(coverage, hide_index=True, width="stretch")

st.subheader("Distributions")
if stats["sampled"]:
    st.caption(f"Frame scores below are drawn from a random sample of "
               f"{len(stats['quality']):,} of {stats['frames']:,} frames.")
c1, c2 = st.columns(2)
with c1:
    st.plotly_chart(charts.histogram(stats["frames_per_video"], title="Faces per video",
                                     xlabel="faces", nbins=60, log_y=True),
                    key="data_fig_frames")
    st.plotly_chart(charts.histogram(stats["det"], title="Detection score per face",
                                     xlabel="detection score", nbins=60, log_y=True),
                    key="data_fig_det")
with c2:
    st.plotly_chart(charts.histogram(stats["quality"], title="Quality score per face",
                                     xlabel="quality", nbins=60),
                    key="data_fig_quality")
    st.plotly_chart(charts.count_bars(stats["videos_per_identity"],
                                      title="Videos per identity", xlabel="videos"),
                    key="data_fig_per_id")
st.caption("A video's vector is the quality-weighted mean of its faces, so low-quality faces "
           "(left tail of the quality histogram) count little, and very long videos are not "
           "worth more than short ones.")

st.subheader("What the pooling options change")
st.caption("Each option re-pools every video; the boxes show how far the vectors move "
           "(cosine to the default quality-weighted vector: 1 = unchanged). With train and "
           "val labelled, a 5-NN baseline ranking val by train shows the effect on mAP.")
with st.form("data_pooling_form", border=False):
    c1, c2, c3 = st.columns(3)
    weightings = c1.multiselect("Weightings", ["uniform", "quality2", "quality"],
                                default=["uniform", "quality2"], key="data_weightings", persist_state="session")
    min_q = c2.number_input("Drop faces with quality under", value=None, step=5.0,
                            key="data_min_quality", persist_state="session", placeholder="no threshold")
    min_det = c3.number_input("Drop faces with detection under", value=None, min_value=0.0,
                              max_value=1.0, step=0.05, key="data_min_det", persist_state="session",
                              placeholder="no threshold")
    st.form_submit_button("Compare")
options = [(w, None, None) for w in weightings if w != "quality"]
if min_q is not None or min_det is not None:
    options.append(("quality", min_q, min_det))
if options:
    try:
        effect = stats_cache.pooling_effect(spec, options)
    except data.USER_ERRORS as exc:
        st.error(data.friendly_error(exc))
    else:
        c1, c2 = st.columns([3, 2])
        c1.plotly_chart(charts.pooling_shift_figure(effect["cosines"]), key="data_fig_pooling")
        cos = effect["cosines"]
        moved = pd.DataFrame({
            "option": list(cos),
            "median cosine": [float(np.median(v)) for v in cos.values()],
            "videos moved > 0.01": [int((v < 0.99).sum()) for v in cos.values()],
        })
        if effect["map"]:
            base = effect["map"]["quality (default)"]
            moved["5-NN val mAP"] = [effect["map"].get(o, np.nan) for o in moved["option"]]
            moved["vs default"] = moved["5-NN val mAP"] - base
            used, total = effect.get("knn_queries", (0, 0))
            sample = (f" Computed on a seeded sample of {used:,} of the {total:,} val videos "
                      "(the same sample for every option)." if used < total else "")
            c2.metric("Default (quality) 5-NN val mAP", f"{base:.4f}",
                      help="Each val video ranked by the mean cosine to its 5 nearest train "
                           "videos of each identity; official mAP over val identities." + sample)
            if sample:
                c2.caption(sample.strip())
        c2.dataframe(moved, hide_index=True, width="stretch",
                     column_config={"option": st.column_config.TextColumn("option", width="large"),
                                    "median cosine": st.column_config.NumberColumn(format="%.4f"),
                                    "5-NN val mAP": st.column_config.NumberColumn(format="%.4f"),
                                    "vs default": st.column_config.NumberColumn(format="%+.4f")})
else:
    st.info("Pick a weighting or a threshold to compare with the default.")

if os.environ.get("VIDID_RUNS") is None:
    st.caption(f"Runs are stored under `{data.runs_root()}`.")
_storage_section()
