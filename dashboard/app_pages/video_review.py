"""Video review page: one video's frames, what they resemble, and what the run predicted.

Reachable with the video preselected through query parameters
(``?video=NAME&run=RUN``), so a link from the Errors or Map page can be shared.
UI only: reads go through :mod:`dashboard.cache.datasets` / :mod:`dashboard.cache.runs`, figures
come from :mod:`dashboard.run_charts`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from core.io.names import canonical_name
from core.runs import oof
from core.runs.evidence import FUSED
from dashboard import run_charts
from dashboard.cache import datasets as data
from dashboard.cache import modal as modal_cache
from dashboard.cache import noise as noise_cache
from dashboard.cache import runs as run_data

PAGE = "review"
K_VIDEO = f"{PAGE}_video"
K_RUN = f"{PAGE}_run"
K_FILTER = f"{PAGE}_filter"
K_SEARCH = f"{PAGE}_search"
NO_RUN = "(no run)"
MAX_OPTIONS = 5000


def _apply_query_params(names: set[str], run_names: list[str]) -> None:
    """Preselect from ``?video=&run=`` once per distinct link (later choices win)."""
    video = st.query_params.get("video")
    run = st.query_params.get("run")
    link = (video, run)
    if st.session_state.get(f"{PAGE}_applied_link") == link:
        return
    st.session_state[f"{PAGE}_applied_link"] = link
    if video and canonical_name(video) in names:
        st.session_state[K_VIDEO] = canonical_name(video)
        st.session_state[K_FILTER] = "all"
        st.session_state[K_SEARCH] = ""
    elif video:
        st.warning(f"The link names video {video!r}, which is not in the active dataset.")
    if run in run_names:
        st.session_state[K_RUN] = run


def _candidates(lv, rs: oof.OutOfFold | None, truth: dict[str, int]) -> list[str]:
    """The videos of the filter; ``lv`` is the multimodal dataset when there is one."""
    names = np.asarray(lv.names)
    faceless = getattr(lv, "modal", None) is not None and not lv.modal.has("face").all()
    options = ["all", "labelled", "distractors"] + (["no face"] if faceless else []) \
        + (["misclassified by the run"] if rs is not None else [])
    if st.session_state.get(K_FILTER) not in options:
        st.session_state[K_FILTER] = "all"
    c1, c2 = st.columns([2, 3])
    which = c1.radio("Videos", options, key=K_FILTER, horizontal=True)
    query = c2.text_input("Filter by name", key=K_SEARCH, placeholder="part of a video name").strip()
    if which == "labelled":
        names = names[np.asarray(lv.ids) > 0]
    elif which == "distractors":
        names = names[np.asarray(lv.ids) == 0]
    elif which == "no face":
        names = names[~lv.modal.has("face")]
    elif which == "misclassified by the run" and rs is not None:
        wrong = rs.wrong()  # the one "wrong" rule (core.runs.oof), as on the Map and Errors pages
        names = np.intersect1d(rs.names[wrong].astype(str), names.astype(str))
    if query:
        names = np.asarray([n for n in names.tolist() if query.lower() in n.lower()], dtype=object)
    return [str(n) for n in names[:MAX_OPTIONS]]


def _pick_neighbour(table: pd.DataFrame) -> None:
    rows = st.session_state[f"{PAGE}_neighbours"].selection.rows
    if rows and rows[0] < len(table):
        st.session_state[K_VIDEO] = table.iloc[rows[0]]["video"]
        st.session_state[K_FILTER] = "all"
        st.session_state[K_SEARCH] = ""


def _prediction(rs: oof.OutOfFold | None, video: str, pooled: np.ndarray | None,
                centre_ids: np.ndarray, centres: np.ndarray,
                evidence: pd.DataFrame | None) -> tuple[pd.DataFrame, str, int | None]:
    """Top classes of the video (labels, values, kinds), what they are, and the top identity."""
    if rs is not None:
        r = rs.row_of(video)
        if r is not None and rs.scored[r]:
            ok = rs.classes[r] >= 0
            ids = rs.identity_ids[rs.classes[r][ok]]
            df = pd.DataFrame({"label": [f"identity {i}" for i in ids], "value": rs.scores[r][ok],
                               "kind": "class", "identity": ids})
            if rs.noise_prob is not None and rs.noise_prob[r] > 0:  # knn runs store zeros
                df = pd.concat([df, pd.DataFrame({"label": ["noise (all noise classes)"],
                                                  "value": [float(rs.noise_prob[r])],
                                                  "kind": ["distractor"], "identity": [0]})])
            df = df.sort_values("value", ascending=False, kind="stable").head(10)
            top = int(df["identity"].iloc[0])
            return df, "score from the run (out-of-fold)" if rs.source == "oof" else "score from the run", top
    if pooled is None:  # no face: each modality's own KNN vote stands in for the centres
        ev = evidence[evidence["present"]] if evidence is not None else pd.DataFrame()
        if ev.empty:
            return pd.DataFrame(columns=["label", "value", "kind", "identity"]), "nothing to compare", None
        df = pd.DataFrame({"label": [f"identity {p} ({m})" for p, m in zip(ev["points to"], ev["modality"])],
                           "value": ev["score"].to_numpy(), "kind": "class",
                           "identity": ev["points to"].to_numpy()})
        return df, "KNN score of each modality alone", int(ev["points to"].iloc[-1])
    sims = centres @ pooled.astype(np.float32)
    order = np.argsort(-sims, kind="stable")[:10]
    df = pd.DataFrame({"label": [f"identity {i}" for i in centre_ids[order]], "value": sims[order],
                       "kind": "class", "identity": centre_ids[order]})
    return df, "cosine to identity centre", int(centre_ids[order[0]]) if len(order) else None


def _frames_section(lv, row: int, video: str, true_id: int, pred_id: int | None,
                    centre_ids: np.ndarray, centres: np.ndarray, pred_role: str = "predicted") -> None:
    from core.features.pooling import frame_weights

    fs = lv.frames
    a, b = int(fs.offsets[row]), int(fs.offsets[row + 1])
    feats = np.asarray(fs.feats[a:b], dtype=np.float32)
    quality, det = np.asarray(fs.quality[a:b]), np.asarray(fs.det[a:b])
    frame_no = np.asarray(fs.frame_no[a:b])
    weighting = (getattr(lv.pooled, "options", None) or {}).get("weighting", "quality")
    weights = frame_weights(quality, det, np.array([0, b - a]), weighting=weighting)
    st.markdown("**Face quality and detection score per frame**")
    st.plotly_chart(run_charts.frame_scores_chart(frame_no, quality, det), key=f"{PAGE}_scores")

    wanted = [("true", true_id), (pred_role, pred_id)]
    lines: dict[str, np.ndarray] = {}
    for role, ident in wanted:
        if ident is None or ident <= 0:
            continue
        hit = np.flatnonzero(centre_ids == ident)
        if not len(hit):
            continue
        label = f"{role} identity {ident}" if not (role == pred_role and ident == true_id) else None
        if label is None:
            continue
        lines[label] = oof.frame_similarities(feats, centres[hit])[:, 0]
    st.markdown("**Similarity of each frame to identity centres** "
                "(marker size = the frame's weight in the pooled vector)")
    if not lines:
        st.caption("No labelled identity to compare with (a distractor predicted as noise).")
        return
    st.plotly_chart(run_charts.frame_similarity_chart(frame_no, lines, weights), key=f"{PAGE}_sims")
    keys = list(lines)
    if len(keys) == 2:
        worse = lines[keys[1]] > lines[keys[0]]
        if worse.any():
            st.caption(f"{int(worse.sum())} of {len(worse)} frames look more like the {pred_role} "
                       f"identity than the true one.")
        else:
            st.caption(f"None of the {len(worse)} frame(s) is closer to the predicted identity's "
                       f"centre than to the true one: the error is the model's, not the frames' "
                       f"(see which classes pulled the video, right).")


def _evidence_section(evidence: pd.DataFrame | None, run_cfg: dict) -> None:
    """Each modality's evidence: the identity it alone points to, its weight, its presence."""
    if evidence is None:
        return
    st.subheader("What each modality says")
    used = run_cfg.get("modalities")
    st.caption("Each modality alone: the KNN score (mean cosine of its nearest labelled videos "
               "holding that modality) of the identity it points to, the true identity's score "
               "and rank, and its nearest labelled video. Weight: its share in the late fusion "
               "(face 1, head 0.5, body 0.25, audio 0.5, over the modalities the video holds)."
               + (f" The run used {', '.join(used)}." if used else ""))
    shown = evidence[["modality", "present", "weight", "points to", "score", "true score",
                      "true rank", "agrees", "nearest video", "cosine"]]
    st.dataframe(shown, key=f"{PAGE}_evidence", hide_index=True,
                 column_config={"weight": st.column_config.ProgressColumn(
                     format="%.2f", min_value=0.0, max_value=1.0),
                     "score": st.column_config.NumberColumn(format="%.3f"),
                     "true score": st.column_config.NumberColumn(format="%.3f"),
                     "cosine": st.column_config.NumberColumn(format="%.3f"),
                     "true rank": st.column_config.NumberColumn(format="%d")})
    ok = evidence[evidence["present"] & (evidence["modality"] != FUSED)]
    if len(ok) and evidence["true identity"].iloc[0] > 0:
        right = ok[ok["agrees"]]["modality"].tolist()
        st.caption(f"Alone, {', '.join(right) if right else 'no modality'} point(s) to the true "
                   f"identity ({len(right)} of {len(ok)} it holds).")


st.title("Video review")
try:
    spec = data.active_dataset()
    lv = data.load_dataset(spec)
except data.USER_ERRORS as exc:
    st.error(f"No dataset: {data.friendly_error(exc)}")
    st.page_link("app_pages/data_page.py", label="Choose a dataset", icon=":material/dataset:")
    st.stop()
try:
    mlv = modal_cache.modal_dataset(spec)  # faceless videos are rows here only
except data.USER_ERRORS as exc:
    st.warning(f"Cannot read the other modalities: {data.friendly_error(exc)}")
    mlv = None
catalogue = mlv if mlv is not None else lv
if len(catalogue.names) == 0:
    st.warning(f"{spec.name}: no video with frames to review.")
    st.stop()

root = data.runs_root()
try:
    runs = run_data.runs_table(root)
except data.USER_ERRORS as exc:
    st.warning(f"Cannot read the run store {root}: {data.friendly_error(exc)}")
    runs = pd.DataFrame(columns=["name", "path"])
scored_runs = runs[[run_data.score_file(p) is not None for p in runs["path"]]] if len(runs) else runs
run_names = scored_runs["name"].tolist()
all_names = set(np.asarray(catalogue.names).tolist())
_apply_query_params(all_names, run_names)
st.session_state.setdefault(K_RUN, run_names[0] if run_names else NO_RUN)
if st.session_state[K_RUN] not in [NO_RUN] + run_names:
    st.session_state[K_RUN] = NO_RUN

head = st.columns([2, 3])
run_name = head[0].selectbox("Run", [NO_RUN] + run_names, key=K_RUN,
                             help="Predictions come from this run's out-of-fold scores.")
rs, truth, run_dir = None, {}, None
if run_name != NO_RUN:
    run_dir = scored_runs[scored_runs["name"] == run_name]["path"].iloc[0]
    try:
        rs = run_data.run_scores(run_dir)
        truth = run_data.run_truth(run_dir)
    except data.USER_ERRORS as exc:
        st.error(f"Run {run_name}: {data.friendly_error(exc)}")
        rs = None
else:
    st.info("No run chosen: predictions below are the nearest identity centres. "
            "Train a run to see the model's predictions.")
    st.page_link("app_pages/training.py", label="Go to Training", icon=":material/model_training:")

options = _candidates(catalogue, rs, truth)
if st.session_state.get(K_VIDEO) is None and rs is not None:
    # First visit with a run: start on a video the run got wrong, the interesting case.
    wrong = rs.names[rs.wrong()]
    st.session_state[K_VIDEO] = next((str(v) for v in wrong if v in all_names), None)
if st.session_state.get(K_VIDEO) not in options:
    if not options:
        st.warning("No video matches the filter.")
        st.stop()
    st.session_state[K_VIDEO] = options[0]
video = head[1].selectbox(f"Video ({len(options)}{'+' if len(options) == MAX_OPTIONS else ''} shown)",
                          options, key=K_VIDEO)
st.query_params["video"] = video
if run_name != NO_RUN:
    st.query_params["run"] = run_name
elif "run" in st.query_params:
    del st.query_params["run"]
# The URL now names this choice: do not treat it as a new shared link on the next rerun.
st.session_state[f"{PAGE}_applied_link"] = (video, run_name if run_name != NO_RUN else None)

face_hit = np.flatnonzero(np.asarray(lv.names) == video)
row = int(face_hit[0]) if face_hit.size else None  # None: no face frame (multimodal data)
c_row = int(np.flatnonzero(np.asarray(catalogue.names) == video)[0])
true_id = int(np.asarray(catalogue.ids)[c_row])
split = str(np.asarray(catalogue.split)[c_row])
centres, centre_ids = noise_cache.identity_centroids(spec)
pooled = np.asarray(lv.X)[row] if row is not None else None
evidence = None
if mlv is not None:
    try:
        evidence = modal_cache.modality_evidence(spec, [video])
    except data.USER_ERRORS as exc:
        st.warning(f"Cannot ask the modalities: {data.friendly_error(exc)}")
top, value_name, pred_id = _prediction(rs, video, pooled, centre_ids, centres, evidence)

n_frames = 0 if row is None else int(lv.frames.offsets[row + 1] - lv.frames.offsets[row])
facts = st.columns(5)
facts[0].metric("split", split)
facts[1].metric("true identity", str(true_id) if true_id > 0 else "distractor")
facts[2].metric("face frames", n_frames)
facts[3].metric("mean quality", "–" if not n_frames else
                f"{float(np.mean(lv.frames.quality[lv.frames.offsets[row]:lv.frames.offsets[row + 1]])):.1f}")
pred_text = "–" if pred_id is None else ("noise" if pred_id == 0 else str(pred_id))
explained = None
if rs is not None:
    from core.runs.explain import explain_prediction

    explained = explain_prediction(rs, video, true_id)
if explained is not None:  # the run's prediction: right or wrong only for a labelled video
    verdict = "" if true_id <= 0 else (" · wrong" if explained.wrong else " · correct")
    facts[4].metric("predicted identity", pred_text + verdict)
else:  # no run: only the nearest centre, which predicts nothing
    facts[4].metric("nearest identity centre" if pooled is not None else "modalities point to",
                    pred_text,
                    help="Without a run nothing is predicted: this is the identity whose mean "
                         "pooled vector is closest (for a video without a face: the late fusion "
                         "of what each other modality alone points to).")
if explained is not None and (explained.wrong or true_id <= 0):
    box = st.error if explained.wrong else st.info
    box(explained.sentence(), icon=":material/help:")
if rs is not None and rs.row_of(video) is None:
    st.caption(f"Run {run_name} did not score this video (it was trained on other data or "
               "holds the video out of every fold); predictions below are the nearest centres.")

left, right = st.columns([3, 2])
with left:
    if row is None:
        st.info("No face frame: this video is known only by its other modalities (see what "
                "each of them says below).", icon=":material/face_retouching_off:")
    else:
        _frames_section(lv, row, video, true_id, pred_id, centre_ids, centres,
                        "predicted" if explained is not None else "nearest centre")
with right:
    st.markdown(f"**Top predicted classes** ({value_name})")
    kinds = np.where(top["identity"].to_numpy() == true_id, "true identity", top["kind"].to_numpy())
    if top.empty:
        st.caption("Nothing to show.")
    else:
        st.plotly_chart(run_charts.top_classes_chart(top["label"], top["value"], kinds=kinds,
                                                     value_name=value_name), key=f"{PAGE}_top")
    if explained is not None and explained.fold is not None and explained.fold >= 0:
        try:
            pulled = run_data.pulling_classes_for(spec, run_dir, video, explained.fold)
        except data.USER_ERRORS:
            pulled = None
        if pulled is not None:
            st.markdown(f"**Which classes pulled it** (fold {explained.fold}'s model, every "
                        f"output class: identities, noise clusters, shadow classes)")
            pk = np.where(pulled["label"].to_numpy() == f"identity {true_id}", "true identity",
                          pulled["kind"].to_numpy())
            st.plotly_chart(run_charts.top_classes_chart(pulled["label"], pulled["probability"],
                                                         kinds=pk), key=f"{PAGE}_pulled")
            st.caption("Scored on the video's pooled vector without test-time views, so the "
                       "numbers can differ a little from the run's stored scores.")
    st.markdown("**Nearest labelled videos** (cosine of pooled face vectors; select one to open it)")
    near = None
    if row is None:
        st.caption("None by face: the video has no face frame.")
    else:
        try:
            near = run_data.nearest_labelled_videos(spec, video, k=10)
        except data.USER_ERRORS as exc:
            st.warning(data.friendly_error(exc))
    if near is not None:
        near["same identity"] = near["identity"] == true_id
        st.dataframe(near, key=f"{PAGE}_neighbours", hide_index=True, on_select=lambda: _pick_neighbour(near),
                     selection_mode="single-row",
                     column_config={"cosine": st.column_config.NumberColumn(format="%.3f")})
    if spec.videos_dir:
        path = Path(spec.videos_dir) / f"{video}.mp4"
        if path.is_file():
            st.video(str(path))
        else:
            st.caption(f"No file {path.name} in the videos folder.")
    if run_name != NO_RUN:
        st.page_link("app_pages/errors.py", label=f"Errors of run {run_name}", icon=":material/rule:",
                     query_params={"run": run_name})

_evidence_section(evidence, run_data.run_config(run_dir) if run_dir is not None else {})
