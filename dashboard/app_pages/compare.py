"""Compare runs: mAP side by side, per-identity AP of run A vs run B, curves, disagreements.

UI only: the joins are :mod:`core.runs.compare`, the reads :mod:`dashboard.cache.runs`,
the figures :mod:`dashboard.run_charts`.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.runs.compare import compare_identity_ap, disagreements
from dashboard import run_charts
from dashboard.cache import datasets as data
from dashboard.cache import runs as run_data

PAGE = "compare"
K_RUNS = f"{PAGE}_runs"
K_SOURCE = f"{PAGE}_source"
OOF = "out-of-fold (train + val)"
REVIEW_PAGE = "app_pages/video_review.py"


def _title(row: pd.Series) -> str:
    return f"{row['label']} ({row['name']})" if row.get("label") else str(row["name"])


def _scores_table(chosen: pd.DataFrame) -> pd.DataFrame:
    from core.runs.split_score import scored_splits, scoring_status

    rows = []
    for _, r in chosen.iterrows():
        row = {"run": _title(r), "method": r["method"], "mAP out-of-fold": r["mAP"]}
        for split in scored_splits(r["path"]):
            status = scoring_status(r["path"], split)
            if status.get("state") == "complete" and status.get("mAP") is not None:
                row[f"mAP {split}"] = status["mAP"]
        rows.append(row)
    return pd.DataFrame(rows)


def _sources(chosen: pd.DataFrame) -> list[str]:
    from core.runs.split_score import scored_splits

    common = None
    for p in chosen["path"]:
        have = {s for s in scored_splits(p) if run_data.split_identity_ap(p, s) is not None}
        common = have if common is None else common & have
    return [OOF] + sorted(common or [])


def _pair_section(chosen: pd.DataFrame, source: str) -> None:
    titles = [_title(r) for _, r in chosen.iterrows()]
    c1, c2 = st.columns(2)
    a = c1.selectbox("Run A", range(len(titles)), index=0, key=f"{PAGE}_a", format_func=titles.__getitem__)
    b = c2.selectbox("Run B", range(len(titles)), index=1, key=f"{PAGE}_b", format_func=titles.__getitem__)
    if a == b:
        st.info("Choose two different runs as A and B.")
        return
    ra, rb = chosen.iloc[a], chosen.iloc[b]
    split = None if source == OOF else source
    ap_a, ap_b = run_data.identity_ap_map(ra["path"], split), run_data.identity_ap_map(rb["path"], split)
    if not ap_a or not ap_b:
        st.warning("One of the runs has no per-identity AP for this source.")
        return
    table = compare_identity_ap(ap_a, ap_b, names=("A", "B"))
    counts = table["change"].value_counts()
    m = st.columns(3)
    m[0].metric("identities gained by B", int(counts.get("gained", 0)))
    m[1].metric("identities lost by B", int(counts.get("lost", 0)))
    m[2].metric("unchanged", int(counts.get("same", 0)))
    left, right = st.columns([3, 2])
    left.plotly_chart(run_charts.identity_ap_scatter(table, "A", "B"), key=f"{PAGE}_scatter")
    with right:
        st.markdown("**Identities that changed most** (B − A)")
        moved = table[table["change"] != "same"]
        st.dataframe(moved, key=f"{PAGE}_moved", hide_index=True, height=300,
                     column_config={c: st.column_config.NumberColumn(format="%.3f") for c in ("A", "B", "delta")})
        st.download_button("Per-identity AP, A vs B (CSV)", run_data.csv_bytes(table),
                           file_name=f"identity_ap_{ra['name']}_vs_{rb['name']}.csv", mime="text/csv",
                           key=f"{PAGE}_download_ap", icon=":material/download:")

    st.markdown("**Videos one run gets right and the other wrong** (out-of-fold top-1 prediction)")
    try:
        out_a, out_b = run_data.run_correctness(ra["path"]), run_data.run_correctness(rb["path"])
    except (OSError, *data.USER_ERRORS) as exc:
        st.caption(f"Not available: {exc}")
        return
    diff = disagreements(out_a, out_b, names=("A", "B"))
    if diff.empty:
        st.caption("None: both runs get the same labelled videos right.")
        return
    n_a = int((diff["right in"] == "A").sum())
    st.caption(f"{n_a} right only in A, {len(diff) - n_a} right only in B. Select a row to open "
               f"the video in Video review (with the run that got it wrong).")
    event = st.dataframe(diff, key=f"{PAGE}_diff", hide_index=True, on_select="rerun",
                         selection_mode="single-row", height=min(400, 38 + 35 * len(diff)))
    rows = event.selection.rows if event is not None else []
    if rows and rows[0] < len(diff):
        r = diff.iloc[rows[0]]
        wrong_run = rb if r["right in"] == "A" else ra
        st.page_link(REVIEW_PAGE, label=f"Open {r['video']} in Video review ({wrong_run['name']})",
                     icon=":material/movie:", query_params={"video": r["video"], "run": wrong_run["name"]})
    st.download_button("Disagreements (CSV)", run_data.csv_bytes(diff),
                       file_name=f"disagreements_{ra['name']}_vs_{rb['name']}.csv", mime="text/csv",
                       key=f"{PAGE}_download_diff", icon=":material/download:")


st.title("Compare runs")
st.caption("Pick two or more finished runs: their mAP side by side, then run A against run B "
           "identity by identity and video by video.")
root = data.runs_root()
try:
    runs = run_data.runs_table(root)
except data.USER_ERRORS as exc:
    st.error(f"Cannot read the run store {root}: {data.friendly_error(exc)}")
    st.stop()
done = runs[runs["state"] == "complete"] if len(runs) else runs
if len(done) < 2:
    st.info("Comparing needs at least two complete runs; train another on the Training page.")
    st.page_link("app_pages/training.py", label="Go to Training", icon=":material/model_training:")
    st.stop()
names = done["name"].tolist()
titles = {r["name"]: _title(r) for _, r in done.iterrows()}
wanted = [n for n in (st.query_params.get_all("run") or []) if n in names]
st.session_state.setdefault(K_RUNS, wanted[:] if len(wanted) >= 2 else names[:2])
st.session_state[K_RUNS] = [n for n in st.session_state[K_RUNS] if n in names]
picked = st.multiselect("Runs", names, key=K_RUNS, format_func=titles.get)
if len(picked) < 2:
    st.info("Choose at least two runs.")
    st.stop()
chosen = done.set_index("name").loc[picked].reset_index()

scores = _scores_table(chosen)
st.markdown("**mAP** (out-of-fold on train + val; a split's official mAP once the run scored "
            "it on the Results page)")
st.dataframe(scores, key=f"{PAGE}_scores", hide_index=True, width="stretch",
             column_config={c: st.column_config.NumberColumn(format="%.4f")
                            for c in scores.columns if c.startswith("mAP")})
curves = {_title(r): run_data.run_metrics(r["path"]) for _, r in chosen.iterrows()}
folds = {_title(r): run_data.run_config(r["path"]).get("folds") for _, r in chosen.iterrows()}
st.plotly_chart(run_charts.curves_overlaid(curves, folds), key=f"{PAGE}_curves")

st.divider()
source = st.radio("Compare on", _sources(chosen), key=K_SOURCE, horizontal=True,
                  help="A split appears here once every chosen run scored it on the Results page.")
_pair_section(chosen, source)
