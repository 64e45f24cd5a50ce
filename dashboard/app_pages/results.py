"""Results page: score a complete run on any split, download the submission, manage runs.

UI only: scoring runs in a detached process (:func:`core.runs.split_score.launch_scoring`,
like training) and writes into the run directory; labels, notes and deletion are
:mod:`core.runs.manage`; the reads go through :mod:`dashboard.cache.runs`.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard.cache import datasets as data
from dashboard.cache import runs as run_data

PAGE = "results"
K_RUN = f"{PAGE}_run"
K_SPLIT = f"{PAGE}_split"
K_CONFIRM = f"{PAGE}_confirm_delete"


def run_title(row: pd.Series) -> str:
    """How a run reads in a select box: its label (if any), name, method and mAP."""
    label = row.get("label") or ""
    m = row.get("mAP")
    score = f" · mAP {m:.4f}" if isinstance(m, (int, float)) and pd.notna(m) else ""
    return f"{label + ' · ' if label else ''}{row['name']} · {row['method']}{score}"


def _pick_run(table: pd.DataFrame) -> pd.Series:
    names = table["name"].tolist()
    wanted = st.query_params.get("run")
    if wanted in names and st.session_state.get(f"{PAGE}_qp_run") != wanted:
        st.session_state[K_RUN] = wanted
        st.session_state[f"{PAGE}_qp_run"] = wanted
    if st.session_state.get(K_RUN) not in names:
        st.session_state[K_RUN] = names[0]
    titles = {r["name"]: run_title(r) for _, r in table.iterrows()}
    name = st.selectbox("Run", names, key=K_RUN, format_func=titles.get)
    return table[table["name"] == name].iloc[0]


def _score_section(spec: data.DatasetSpec, run: pd.Series) -> None:
    st.subheader("Score a split")
    if run["state"] != "complete":
        st.info(f"Run {run['name']} is {run['state']}: only a complete run can score a split.")
        return
    splits = spec.split_names
    default = "test" if "test" in splits else splits[-1]
    st.session_state.setdefault(K_SPLIT, default)
    if st.session_state[K_SPLIT] not in splits:
        st.session_state[K_SPLIT] = default
    c1, c2 = st.columns([2, 1])
    split = c1.selectbox("Split of the active dataset", splits, key=K_SPLIT,
                         format_func=lambda s: s + ("" if spec.split(s).gt else " (no ground truth)"))
    files = spec.split(split)
    status = run_data.scoring_status(run["path"], split)
    running = status.get("state") == "running"
    label = "Score again" if status.get("state") == "complete" else f"Score {split}"
    c2.write("")
    if c2.button(label, key=f"{PAGE}_score", type="primary", icon=":material/calculate:",
                 disabled=running):
        from core.runs.split_score import launch_scoring

        try:
            launch_scoring(run["path"], split, files.feats, files.gt)
        except data.USER_ERRORS as exc:
            st.error(f"Could not score {split}: {data.friendly_error(exc)}")
            return
        st.rerun()
    if running:
        st.fragment(run_every=1.0)(_scoring_progress)(run["path"], split)
        return
    _scored_body(run, split, status)


def _scoring_progress(run_path: str, split: str) -> None:
    status = run_data.scoring_status(run_path, split)
    if status.get("state") != "running":
        st.rerun()  # done: draw the results
    st.progress(min(max(float(status.get("progress") or 0.0), 0.0), 1.0),
                text=f"Scoring {split}: {status.get('message') or 'starting'}")


def _scored_body(run: pd.Series, split: str, status: dict) -> None:
    state = status.get("state")
    if not state:
        st.caption(f"{split} has not been scored with this run yet.")
        return
    if state == "failed":
        st.error(f"Scoring {split} failed: {status.get('message') or 'unknown error'}")
        return
    sub = run_data.submission_bytes(run["path"], split)
    ap = run_data.split_identity_ap(run["path"], split)
    m = st.columns(3)
    m[0].metric(f"mAP on {split} (official)", f"{status['mAP']:.4f}" if status.get("mAP") is not None
                else "–", help=None if status.get("mAP") is not None else f"{split} has no ground truth")
    m[1].metric("identities", status.get("n_identities") or "–")
    m[2].metric("scored", (status.get("finished") or "")[:19].replace("T", " "))
    d1, d2 = st.columns(2)
    if sub is not None:
        d1.download_button("Download submission", sub, file_name=f"submission_{split}_{run['name']}.txt",
                           mime="text/plain", key=f"{PAGE}_download_submission", type="primary",
                           icon=":material/download:",
                           help="Official format: one line per identity, ID then up to 100 videos")
    if ap is not None:
        d2.download_button("Per-identity AP (CSV)", run_data.csv_bytes(ap),
                           file_name=f"per_identity_ap_{split}_{run['name']}.csv", mime="text/csv",
                           key=f"{PAGE}_download_ap", icon=":material/table:")
        st.markdown(f"**Per-identity AP on {split}, worst first**")
        st.dataframe(ap, key=f"{PAGE}_ap", hide_index=True, height=300,
                     column_config={"AP": st.column_config.ProgressColumn(
                         format="%.3f", min_value=0.0, max_value=1.0)})


def _manage_section(run: pd.Series) -> None:
    from core.runs.manage import delete_run, set_label

    st.subheader("Manage this run")
    with st.form(f"{PAGE}_label_form", border=False):
        c1, c2 = st.columns([1, 2])
        label = c1.text_input("Label", value=run.get("label") or "", key=f"{PAGE}_label_{run['name']}",
                              max_chars=80, placeholder="e.g. baseline")
        note = c2.text_area("Note", value=run.get("note") or "", key=f"{PAGE}_note_{run['name']}",
                            height=68, placeholder="what this run tried")
        if st.form_submit_button("Save label and note", icon=":material/save:"):
            try:
                set_label(run["path"], label, note)
            except data.USER_ERRORS as exc:
                st.error(data.friendly_error(exc))
            else:
                st.toast(f"Saved the label of {run['name']}")
                st.rerun()
    if run["state"] == "running":
        st.caption("A running run cannot be deleted; cancel it on the Training page first.")
        return
    confirm = st.checkbox(f"Yes, delete {run['name']} and all its files", key=f"{PAGE}_confirm_{run['name']}")
    if st.button("Delete run", key=f"{PAGE}_delete", icon=":material/delete:", disabled=not confirm):
        try:
            delete_run(run["path"])
        except data.USER_ERRORS as exc:
            st.error(data.friendly_error(exc))
            return
        st.session_state.pop(K_RUN, None)
        st.toast(f"Deleted {run['name']}")
        st.rerun()


st.title("Results")
st.caption("Score a finished run on any split (the test split gives the headline mAP), download "
           "the official submission and the per-identity AP, and label or delete runs.")
try:
    spec = data.active_dataset()
except data.USER_ERRORS as exc:
    st.error(f"No dataset: {data.friendly_error(exc)}")
    st.stop()
root = data.runs_root()
try:
    table = run_data.runs_table(root)
except data.USER_ERRORS as exc:
    st.error(f"Cannot read the run store {root}: {data.friendly_error(exc)}")
    st.stop()
if table.empty:
    st.info("No runs yet: launch one on the Training page — the knn baseline takes seconds.")
    st.page_link("app_pages/training.py", label="Go to Training", icon=":material/model_training:")
    st.stop()
run = _pick_run(table)
if run.get("note"):
    st.caption(f"Note: {run['note']}")
_score_section(spec, run)
st.divider()
_manage_section(run)
st.page_link("app_pages/compare.py", label="Compare runs", icon=":material/compare_arrows:")
