"""Errors page: per-identity AP of a run, and for one identity what went wrong.

UI only: the analysis lives in :mod:`dashboard.cache.runs` (plain functions over the
run's stored out-of-fold scores, cached) and the figures in :mod:`dashboard.run_charts`.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pandas as pd
import streamlit as st

from core.runs import oof
from dashboard import run_charts
from dashboard.cache import datasets as data
from dashboard.cache import modal as modal_cache
from dashboard.cache import runs as run_data

PAGE = "errors"
K_RUN = f"{PAGE}_run"
K_IDENTITY = f"{PAGE}_identity"
K_SEARCH = f"{PAGE}_search"
K_FACE_FILTER = f"{PAGE}_face_filter"
K_LOW_QUALITY = f"{PAGE}_low_quality"
REVIEW_PAGE = "app_pages/video_review.py"
MAX_BARS = 12


def _no_run(spec: data.DatasetSpec | None, root: Path) -> None:
    st.info("No finished run with scores yet. The Errors page reviews a run's out-of-fold "
            "predictions: train one on the **Training** page — the KNN baseline takes seconds.")
    c1, c2 = st.columns([1, 2])
    c1.page_link("app_pages/training.py", label="Go to Training", icon=":material/model_training:")
    if spec is None or not spec.train_pairs:
        return
    if c2.button("Train the KNN baseline now", key=f"{PAGE}_quick_knn", type="primary",
                 icon=":material/bolt:"):
        from core.runs.launch import launch_training

        pairs = [(s.name, s.feats, s.gt) for s in spec.splits if s.name in ("train", "val")]
        try:
            run_dir = launch_training(pairs, {"method": "knn", "folds": 5}, root)
        except data.USER_ERRORS as exc:
            st.error(f"Could not launch training: {data.friendly_error(exc)}")
            return
        st.session_state[K_RUN] = run_dir.name
        st.session_state["training_followed"] = str(run_dir)
        _wait_for(run_dir)


def _wait_for(run_dir: Path) -> None:
    @st.fragment(run_every=1.0)
    def _poll() -> None:
        state, status = run_data.run_status(run_dir)
        if state == "running":
            st.progress(float(status.get("progress") or 0.0),
                        text=f"Training {run_dir.name}: {status.get('phase') or 'starting'}")
        elif state == "complete":
            st.rerun()
        else:
            st.warning(f"Run {run_dir.name} is {state}: {status.get('message') or ''}")

    _poll()


def _pick_run(table: pd.DataFrame) -> pd.Series:
    names = table["name"].tolist()
    wanted = st.query_params.get("run")
    if wanted in names and st.session_state.get(f"{PAGE}_qp_run") != wanted:
        st.session_state[K_RUN] = wanted  # a shared link wins once
        st.session_state[f"{PAGE}_qp_run"] = wanted
    if st.session_state.get(K_RUN) not in names:
        st.session_state[K_RUN] = names[0]
    labels = {r["name"]: f"{r['name']} · {r['method']} · mAP {r['mAP']:.4f}" if pd.notna(r["mAP"])
              else f"{r['name']} · {r['method']}" for _, r in table.iterrows()}
    name = st.selectbox("Run", names, key=K_RUN, format_func=labels.get)
    st.query_params["run"] = name
    return table[table["name"] == name].iloc[0]


def _search(ap: pd.DataFrame, rs: oof.OutOfFold, truth: dict[str, int]) -> pd.DataFrame:
    query = st.text_input("Search: identity ID or video name", key=K_SEARCH,
                          placeholder="e.g. 17 or IQIYI_VID_TRAIN_0000123").strip()
    if not query:
        return ap
    ids = {int(query)} if query.isdigit() else set()
    matches = [v for v in truth if query.lower() in v.lower()][:50]  # videos -> their identity
    ids |= {truth[v] for v in matches if truth[v] > 0}
    found = ap[ap["identity"].isin(ids)]
    if found.empty:
        st.caption(f"Nothing matches {query!r}.")
    return found


def _box_changed(box: str) -> None:
    st.session_state[K_IDENTITY] = st.session_state[box]


def _select_identity(identities: list[int]) -> None:
    rows = st.session_state[f"{PAGE}_ap_table"].selection.rows
    if rows and rows[0] < len(identities):
        st.session_state[K_IDENTITY] = identities[rows[0]]


def _styled(table: pd.DataFrame):
    colours = run_charts.KIND_COLOURS
    return table.style.map(lambda k: f"color: {colours.get(k, '#000')}; font-weight: 600",
                           subset=["kind"]).format({"score": "{:.4f}"})


def _video_link(frame, key: str, run_name: str, label: str) -> None:
    """A selectable table of videos; the selected one gets a link to Video review."""
    raw = frame.data if hasattr(frame, "data") else frame  # a Styler keeps its frame in .data
    event = st.dataframe(frame, key=key, hide_index=True, on_select="rerun",
                         selection_mode="single-row", height=min(400, 38 + 35 * max(len(raw), 1)))
    rows = event.selection.rows if event is not None else []
    if rows and rows[0] < len(raw):
        video = raw.iloc[rows[0]]["video"]
        st.page_link(REVIEW_PAGE, label=f"Open {video} in Video review", icon=":material/movie:",
                     query_params={"video": video, "run": run_name})
    else:
        st.caption(f"Select a row to open {label} in Video review.")


def _readable_ranks(missed: pd.DataFrame) -> pd.DataFrame:
    """Rank as text: a number, or "not in its top classes" where the run stored none."""
    out = missed.copy()
    out["rank"] = [str(int(r)) if r == r else "not in its top classes" for r in missed["rank"]]
    return out


def _label_issues_section(run_dir: str, run_name: str) -> None:
    with st.expander("Probably mislabelled videos (cleanlab)", icon=":material/report:"):
        st.caption("cleanlab's confident learning over the out-of-fold probabilities: labelled "
                   "videos whose ground-truth identity the run finds unlikely, most suspicious "
                   "first, with the identity it suggests. Select one to open it in Video review.")
        try:
            issues = run_data.run_label_issues(run_dir)
        except data.USER_ERRORS as exc:
            st.warning(f"Not available: {data.friendly_error(exc)}")
            return
        if issues is None or issues.empty:
            st.caption("None found.")
            return
        if issues.attrs.get("method") == "predicted_neq_given":
            st.info("This run is too large for cleanlab's dense (videos x identities) matrix, "
                    "so these are the labelled videos whose most probable identity is another "
                    "one (cleanlab's predicted_neq_given, computed from the stored top classes), "
                    "least confident first.", icon=":material/memory:")
        st.markdown(f"**{len(issues)}** video(s) flagged")
        _video_link(issues, f"{PAGE}_issues", run_name, "a flagged video")
        st.download_button("Label issues (CSV)", run_data.csv_bytes(issues),
                           file_name=f"label_issues_{run_name}.csv", mime="text/csv",
                           key=f"{PAGE}_download_issues", icon=":material/download:")


def _multimodal(spec) -> bool:
    """Whether the dataset has head / body / audio files (a load error is shown once)."""
    try:
        return modal_cache.modal_dataset(spec) is not None
    except data.USER_ERRORS as exc:
        st.warning(f"Cannot read the other modalities: {data.friendly_error(exc)}")
        return False


def _evidence_table(spec, video: str) -> None:
    """What each modality alone says about one video (late-fusion weights, KNN scores)."""
    try:
        ev = modal_cache.modality_evidence(spec, [video])
    except data.USER_ERRORS as exc:
        st.warning(f"Not available: {data.friendly_error(exc)}")
        return
    if ev is None or ev.empty:
        st.caption(f"{video} is not in the active dataset's modalities.")
        return
    shown = ev[["modality", "present", "weight", "points to", "score", "true score", "true rank",
                "agrees", "nearest video", "cosine"]]
    st.dataframe(shown, key=f"{PAGE}_evidence_{video}", hide_index=True,
                 column_config={"score": st.column_config.NumberColumn(format="%.3f"),
                                "true score": st.column_config.NumberColumn(format="%.3f"),
                                "cosine": st.column_config.NumberColumn(format="%.3f"),
                                "true rank": st.column_config.NumberColumn(format="%d")})


def _identity_modalities(spec, rs: oof.OutOfFold, truth: dict[str, int], identity: int) -> None:
    """Per modality over the identity's ground-truth videos: how often it alone is right."""
    scored = set(rs.names[rs.scored].tolist())
    videos = sorted(v for v, i in truth.items() if i == identity and v in scored)[:200]
    if not videos or not _multimodal(spec):
        return
    from core.runs.evidence import modality_agreement

    st.markdown("**What each modality says about its videos** (each modality alone: the "
                "identity its nearest labelled videos point to)")
    try:
        ev = modal_cache.modality_evidence(spec, videos)
    except data.USER_ERRORS as exc:
        st.warning(f"Not available: {data.friendly_error(exc)}")
        return
    st.dataframe(modality_agreement(ev), key=f"{PAGE}_identity_modalities", hide_index=True,
                 column_config={"share": st.column_config.ProgressColumn(
                     format="%.2f", min_value=0.0, max_value=1.0),
                     "mean weight": st.column_config.NumberColumn(format="%.2f")})


def _face_condition_section(spec, rs: oof.OutOfFold, truth: dict[str, int], run_dir: str,
                            run_name: str) -> None:
    """Filter the run's labelled videos to those without a face or with a low-quality one."""
    from core.runs.evidence import DEFAULT_LOW_FACE_QUALITY, condition_outcomes

    if spec is None or not _multimodal(spec):
        return
    st.subheader("Videos without a usable face")
    used = run_data.run_config(run_dir).get("modalities") or ["face"]
    st.session_state.setdefault(K_FACE_FILTER, "no face")
    st.session_state.setdefault(K_LOW_QUALITY, DEFAULT_LOW_FACE_QUALITY)
    c1, c2 = st.columns([2, 2])
    which = c1.radio("Show", ["no face", "low-quality face"], key=K_FACE_FILTER, horizontal=True)
    low = c2.number_input("Low quality: pooled face quality below", key=K_LOW_QUALITY,
                          min_value=-100.0, max_value=300.0, step=5.0)
    st.caption(f"**No face**: the video has no face frame, only head / body / audio. "
               f"**Low-quality face**: it has face frames but their pooled face quality (the "
               f"mean quality score of its frames) is below {low:g}. Run {run_name} used "
               f"{', '.join(used)}.")
    try:
        cond = modal_cache.face_conditions(spec, low)
    except data.USER_ERRORS as exc:
        st.warning(f"Not available: {data.friendly_error(exc)}")
        return
    videos = cond.index[cond["condition"] == which].tolist()
    table = condition_outcomes(rs, truth, videos)
    table = table[table["true identity"] > 0]
    if table.empty:
        st.caption(f"The run scored no labelled video with {which}.")
        return
    table = table.join(cond[["face quality", "modalities"]], on="video")
    m = st.columns(3)
    m[0].metric(f"labelled videos, {which}", len(table))
    m[1].metric("top-1 correct", f"{int(table['correct'].sum())} of {len(table)}")
    m[2].metric("in their identity's top 100", int(table["rank in own line"].notna().sum()),
                help="Ranked at all for their own identity: a face-only run cannot rank a "
                     "faceless video")
    table = table.sort_values(["correct", "rank in own line"], na_position="first", kind="stable")
    event = st.dataframe(table, key=f"{PAGE}_face_table", hide_index=True, on_select="rerun",
                         selection_mode="single-row", height=min(360, 38 + 35 * len(table)),
                         column_config={"score": st.column_config.NumberColumn(format="%.3f"),
                                        "rank in own line": st.column_config.NumberColumn(format="%d")})
    rows = event.selection.rows if event is not None else []
    video = table["video"].iloc[rows[0]] if rows and rows[0] < len(table) else table["video"].iloc[0]
    st.markdown(f"**What each modality says about {video}** (alone: KNN score of its nearest "
                f"labelled videos holding that modality; weight: its share in the late fusion)")
    _evidence_table(spec, video)
    st.page_link(REVIEW_PAGE, label=f"Open {video} in Video review", icon=":material/movie:",
                 query_params={"video": video, "run": run_name})


def _capped(counts: pd.DataFrame) -> pd.DataFrame:
    """The biggest ``MAX_BARS - 1`` rows of a (label, kind, videos) table, the rest summed."""
    if len(counts) <= MAX_BARS:
        return counts
    rest = int(counts["videos"].iloc[MAX_BARS - 1:].sum())
    other = pd.DataFrame({"label": [f"{len(counts) - MAX_BARS + 1} others"], "kind": ["other"],
                          "videos": [rest]})
    return pd.concat([counts.iloc[:MAX_BARS - 1], other], ignore_index=True)


def _identity_section(spec, rs: oof.OutOfFold, truth: dict[str, int], ap: pd.DataFrame,
                      run_dir: str, run_name: str) -> None:
    identity = int(st.session_state[K_IDENTITY])
    table = oof.identity_table(rs, truth, identity)
    top = table[table["in_top100"]]
    missed = oof.missed_videos(rs, truth, identity)
    scored = set(rs.names[rs.scored].tolist())
    n_gt = sum(1 for v, i in truth.items() if i == identity and v in scored)
    row = ap[ap["identity"] == identity]
    st.subheader(f"Identity {identity}")
    m = st.columns(5)
    m[0].metric("AP", f"{float(row['AP'].iloc[0]):.4f}" if len(row) else "–")
    m[1].metric("ground-truth videos", n_gt)
    m[2].metric("hits in top 100", int((top["kind"] == "hit").sum()))
    m[3].metric("intruders", f"{int(top['costs_ap'].sum())} of {len(top)}",
                help="Videos of its top 100 that are not this identity yet rank above one of "
                     "its ground-truth videos: each of them lowers the AP")
    m[4].metric("missed", len(missed))

    clusters = run_data.run_noise_clusters(run_dir)
    cluster_source = "the run's DBSCAN clusters"
    if clusters is None:
        clusters = run_data.session_noise_clusters(st.session_state.get(data.KEY_NOISE_LABELS))
        cluster_source = "the clustering chosen on the Noise clusters page"
    left, right = st.columns([3, 2])
    with left:
        st.markdown("**Ranked list** (top 100): "
                    + " · ".join(f":{c}[{k}]" for k, c in (("hit", "green"), ("other identity", "red"),
                                                            ("distractor", "orange"))))
        shown = top[["rank", "video", "score", "kind", "true_identity"]]
        _video_link(_styled(shown), f"{PAGE}_ranked", run_name, "a video")
        st.markdown("**Missed**: ground-truth videos outside the top 100")
        if missed.empty:
            st.caption("None: every ground-truth video is in the top 100.")
        else:
            _video_link(_readable_ranks(missed), f"{PAGE}_missed", run_name, "a missed video")
        d1, d2 = st.columns(2)
        d1.download_button("Ranked list (CSV)", run_data.csv_bytes(shown),
                           file_name=f"ranked_identity_{identity}_{run_name}.csv", mime="text/csv",
                           key=f"{PAGE}_download_ranked", icon=":material/download:")
        d2.download_button("Missed videos (CSV)", run_data.csv_bytes(missed),
                           file_name=f"missed_identity_{identity}_{run_name}.csv", mime="text/csv",
                           key=f"{PAGE}_download_missed", icon=":material/download:")
    with right:
        st.markdown("**Who takes its videos** (top-1 prediction of its wrongly predicted videos)")
        lost_to_noise = missed[missed["predicted"] == "noise"]["video"].tolist()
        near = None
        if clusters and lost_to_noise:
            try:
                near = run_data.nearest_clusters_for(spec, lost_to_noise, clusters)
            except data.USER_ERRORS:
                near = None
        steal = _capped(oof.stealers(rs, truth, identity, near))
        if steal.empty:
            st.caption("Nobody: all its scored videos are predicted as this identity.")
        else:
            st.plotly_chart(run_charts.stealers_chart(steal), key=f"{PAGE}_stealers")
        st.markdown("**Where the intruders costing AP come from** (wrong videos ranked above "
                    "one of its ground-truth videos)")
        intr = oof.intruder_sources(table, clusters)
        intr = _capped(intr)
        if intr.empty:
            st.caption("None: every intruder ranks below its last ground-truth video.")
        else:
            st.plotly_chart(run_charts.stealers_chart(intr), key=f"{PAGE}_intruders")
            if clusters is not None:
                st.caption(f"Distractors grouped by {cluster_source}.")
            else:
                st.caption("Choose a clustering on the Noise clusters page to see which noise "
                           "clusters the distractors come from.")
    if spec is not None:
        _identity_modalities(spec, rs, truth, identity)


st.title("Errors")
st.caption("Per-identity average precision of a run's out-of-fold predictions, and for one "
           "identity: its ranked list, what it missed, and who steals its videos.")
root = data.runs_root()
try:
    spec = data.active_dataset()
except data.USER_ERRORS as exc:
    st.warning(f"No dataset loaded: {data.friendly_error(exc)}")
    spec = None
st.session_state.setdefault(K_IDENTITY, None)
try:
    runs = run_data.runs_table(root)
except data.USER_ERRORS as exc:
    st.error(f"Cannot read the run store {root}: {data.friendly_error(exc)}")
    st.stop()
with_scores = runs[[run_data.score_file(p) is not None for p in runs["path"]]] if len(runs) else runs
if with_scores.empty:
    _no_run(spec, root)
    st.stop()

run_col, search_col = st.columns([3, 2])
with run_col:
    run = _pick_run(with_scores)
try:
    rs = run_data.run_scores(run["path"])
    truth = run_data.run_truth(run["path"])
    ap = run_data.run_identity_ap(run["path"])
except data.USER_ERRORS as exc:
    st.error(f"Run {run['name']}: {data.friendly_error(exc)}")
    st.stop()
if ap is None or ap.empty:
    st.warning(f"Run {run['name']} holds no labelled video with scores.")
    st.stop()

c = st.columns(4)
c[0].metric("mAP (out-of-fold)" if rs.source == "oof" else "mAP",
            f"{run['mAP']:.4f}" if pd.notna(run["mAP"]) else f"{ap['AP'].mean():.4f}")
c[1].metric("identities", len(ap))
c[2].metric("videos scored", int(rs.scored.sum()))
c[3].metric("identities with AP < 0.5", int((ap["AP"] < 0.5).sum()))

with search_col:
    found = _search(ap, rs, truth)
ids_order = ap["identity"].tolist()
if st.session_state[K_IDENTITY] not in ids_order:
    st.session_state[K_IDENTITY] = int(found["identity"].iloc[0]) if len(found) else ids_order[0]
elif len(found) and len(found) < len(ap) and st.session_state[K_IDENTITY] not in found["identity"].tolist():
    st.session_state[K_IDENTITY] = int(found["identity"].iloc[0])

left, right = st.columns([2, 3])
with left:
    st.markdown("**Per-identity AP, worst first** (select a row)")
    st.dataframe(found, key=f"{PAGE}_ap_table", hide_index=True, height=280,
                 on_select=partial(_select_identity, found["identity"].tolist()),
                 selection_mode="single-row",
                 column_config={"AP": st.column_config.ProgressColumn(format="%.3f", min_value=0.0,
                                                                      max_value=1.0)})
with right:
    st.plotly_chart(run_charts.identity_ap_chart(ap, highlight=st.session_state[K_IDENTITY]),
                    key=f"{PAGE}_ap_chart")
    ap_of = dict(zip(ap["identity"].tolist(), ap["AP"].tolist()))
    # The box's key names the run: after switching runs a fresh widget shows the new
    # run's AP (a reused one kept drawing the old run's label while closed).
    box = f"{K_IDENTITY}_box_{run['name']}"
    st.session_state[box] = st.session_state[K_IDENTITY]
    st.selectbox("Identity", ids_order, key=box, on_change=_box_changed, args=(box,),
                 format_func=lambda i: f"identity {i} (AP {ap_of[i]:.3f})")
    st.download_button("Per-identity AP (CSV)", run_data.csv_bytes(ap),
                       file_name=f"per_identity_ap_{run['name']}.csv", mime="text/csv",
                       key=f"{PAGE}_download_ap", icon=":material/download:")

_identity_section(spec, rs, truth, ap, run["path"], run["name"])
_face_condition_section(spec, rs, truth, run["path"], run["name"])
_label_issues_section(run["path"], run["name"])
