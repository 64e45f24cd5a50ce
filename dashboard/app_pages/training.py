"""Training page: launch a run in a separate process, follow it live, compare every run.

UI only: the run is started by :func:`core.runs.launch.launch_training` (a detached
``python -m core.runs.launch`` process writing to the run store), so it survives page
reloads and shows in every browser tab; this page only reads the run store
(:mod:`dashboard.cache.runs`) and draws (:mod:`dashboard.run_charts`).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import streamlit as st

from dashboard import run_charts
from dashboard.cache import datasets as data
from dashboard.cache import runs as run_data

PAGE = "training"
K_FOLLOW = f"{PAGE}_followed"      # path of the run whose progress is shown
K_LAST_STATE = f"{PAGE}_last_state"
LIVE_STATES = ("running",)
RESUMABLE = ("interrupted", "failed", "cancelled")


#: One line on the defaults and why (docs/RECOGNITION.md has the measurements).
DEFAULTS_HELP = (
    "Defaults chosen across a family of realistic data, not one dataset: 5 folds pick the "
    "epoch count, then 2 networks refit on every video join the fold ensemble (with 3-6 "
    "videos per identity a held-out fold is costly); class weights start small so every "
    "head learns at the same pace; the batch size gives ~16 steps per epoch; eps is "
    "chosen from the data.")


def _defaults() -> dict:
    from core.learn.config import TrainConfig

    return TrainConfig().to_dict()


def _modalities_found(spec: data.DatasetSpec) -> list[str]:
    """Modalities whose files sit beside every train/val face file (face first)."""
    from core.io.modalities import MODALITIES, sibling_paths

    found = [set(sibling_paths(f)) for f, _ in spec.train_pairs] or [{"face"}]
    return [m for m in MODALITIES if all(m in f for f in found)]


def _backend_inputs() -> tuple[str, str]:
    """Backend and Ray address widgets (inside the launch form); off without Ray."""
    from core.learn.backends import BACKENDS, ray_available

    has_ray = ray_available()
    d1, d2 = st.columns(2)
    backend = d1.selectbox("Backend", list(BACKENDS), key=f"{PAGE}_backend", disabled=not has_ray,
                           help=" ".join(f"{k}: {v}." for k, v in BACKENDS.items()))
    address = d2.text_input("Ray address (ray backend; empty: a local Ray instance)",
                            key=f"{PAGE}_ray_address", disabled=not has_ray,
                            placeholder="HOST:PORT, ray://HOST:PORT or auto",
                            help="The training process stays the driver: it reads the data "
                                 "and writes the run; the workers get the data from Ray.")
    if not has_ray:
        st.caption("Ray is not installed here (pip install 'vidid[ray]'): training runs locally.")
        return "local", ""
    return backend, address


def _launch_form(spec: data.DatasetSpec, root: Path) -> None:
    from core.learn.methods import get_method, method_names

    defaults = _defaults()
    chosen = st.session_state.get(data.KEY_NOISE_LABELS)
    with st.form(f"{PAGE}_form", border=True):
        st.caption(DEFAULTS_HELP)
        c1, c2, c3 = st.columns(3)
        names = list(method_names())
        method = c1.radio(
            "Method", names, index=names.index(defaults["method"]), key=f"{PAGE}_method",
            horizontal=True, captions=[get_method(n).caption for n in names],
            help=" ".join(f"{n}: {get_method(n).summary}." for n in names))
        folds = c2.slider("Cross-validation folds", 2, 10, int(defaults["folds"]), key=f"{PAGE}_folds")
        epochs = c3.number_input("Epochs (nn / noise)", 1, 500, int(defaults["epochs"]),
                                 key=f"{PAGE}_epochs")
        st.markdown("**Noise clustering** (noise method)")
        options = ["Automatic eps (most clusters below the k-distance knee)",
                   "Set eps / min_samples here"]
        if chosen is not None:
            options.insert(0, f"The clustering chosen on the Noise clusters page "
                              f"(eps {chosen['eps']:.2f}, min_samples {chosen['min_samples']})")
        source = st.radio("Clustering", options, key=f"{PAGE}_cluster_source",
                          label_visibility="collapsed")
        c4, c5 = st.columns(2)
        eps = c4.slider("eps (when set here)", 0.05, 2.0, float(defaults["eps"] or 1.0), 0.05,
                        key=f"{PAGE}_eps")
        min_samples = c5.number_input("min_samples", 1, 50, int(defaults["min_samples"]),
                                      key=f"{PAGE}_min_samples")
        found = _modalities_found(spec)
        modalities = st.multiselect(
            "Modalities", found, default=found, key=f"{PAGE}_modalities",
            help="Feature files beside every train/val face file (head_, body_, audio_). "
                 "With more than the face, videos without a face are scored too; "
                 "face alone is the face-only method.")
        with st.expander("Advanced options"):
            a1, a2, a3, a4 = st.columns(4)
            lr = a1.number_input("Learning rate", 1e-5, 1.0, float(defaults["lr"]), format="%.5f",
                                 key=f"{PAGE}_lr")
            batch = a2.number_input("Batch size (0 = automatic)", 0, 8192, int(defaults["batch_size"] or 0),
                                    key=f"{PAGE}_batch")
            seed = a3.number_input("Seed", 0, 2**31 - 1, int(defaults["seed"]), key=f"{PAGE}_seed")
            knn_k = a4.number_input("KNN k", 1, 100, int(defaults["knn_k"]), key=f"{PAGE}_knn_k")
            b1, b2, b3, b4 = st.columns(4)
            weighting = b1.selectbox("Frame weighting", ["quality", "quality2", "uniform"],
                                     key=f"{PAGE}_weighting")
            ensemble = b2.selectbox("Fold ensemble", ["sum", "map_weighted"], key=f"{PAGE}_ensemble")
            views = b3.checkbox("Test-time views", bool(defaults["views"]), key=f"{PAGE}_views")
            augment = b4.checkbox("Noise augmentation", bool(defaults["augment"]), key=f"{PAGE}_augment")
            refit = st.number_input(
                "Refit networks on every video", 0, 10, int(defaults["refit"]), key=f"{PAGE}_refit",
                help="trained after the folds for their median best epoch count and ensembled "
                     "with the fold models (0: fold models only)")
            backend, ray_address = _backend_inputs()
        submitted = st.form_submit_button("Launch training", type="primary", icon=":material/play_arrow:")
    if not submitted:
        return
    if not spec.train_pairs:
        st.error(f"{spec.name}: no train or val split with features to train on.")
        return
    unlabelled = [Path(f).name for f, g in spec.train_pairs if not g]
    if len(unlabelled) == len(spec.train_pairs):
        st.error(f"{spec.name}: the train/val splits have no ground truth "
                 f"({', '.join(unlabelled)}); nothing to learn from.")
        return
    auto_eps = source.startswith("Automatic")
    config = dict(method=method, folds=int(folds), epochs=int(epochs),
                  eps=None if auto_eps else float(eps),
                  min_samples=int(min_samples), lr=float(lr), batch_size=int(batch) or None, seed=int(seed),
                  refit=int(refit),
                  knn_k=int(knn_k), weighting=weighting, ensemble=ensemble, views=bool(views),
                  augment=bool(augment))
    if not modalities:
        st.error("Choose at least one modality.")
        return
    config["modalities"] = list(modalities)
    noise = chosen if (chosen is not None and source == options[0]
                       and get_method(method).noise_classes) else None
    pairs = [(s.name, s.feats, s.gt) for s in spec.splits if s.name in ("train", "val")]
    from core.runs.launch import launch_training

    try:
        run_dir = launch_training(pairs, config, root, noise_labels=noise, backend=backend,
                                  ray_address=ray_address.strip() or None)
    except data.USER_ERRORS as exc:
        st.error(f"Could not launch training: {data.friendly_error(exc)}")
        return
    st.session_state[K_FOLLOW] = str(run_dir)
    st.session_state[K_LAST_STATE] = "running"
    st.rerun()  # draw the new run in the followed-run panel at the top


def _follow_panel(run_dir: str) -> None:
    """Progress, curves and cancel for one run; refreshes itself while the run is live."""
    try:
        state, _ = run_data.run_status(run_dir)
    except data.USER_ERRORS as exc:
        st.warning(f"Run {Path(run_dir).name}: {data.friendly_error(exc)}")
        return
    live = state in LIVE_STATES
    st.fragment(run_every=1.5 if live else None)(_live_body)(run_dir)


def _live_body(run_dir: str) -> None:
    name = Path(run_dir).name
    try:
        state, status = run_data.run_status(run_dir)
        metrics = run_data.run_metrics(run_dir)
        config = run_data.run_config(run_dir)
    except data.USER_ERRORS as exc:
        st.warning(f"Run {name}: {data.friendly_error(exc)}")
        return
    previous = st.session_state.get(K_LAST_STATE)
    st.session_state[K_LAST_STATE] = state
    if previous in LIVE_STATES and state not in LIVE_STATES:
        st.rerun()  # the run just ended: refresh the runs table and the buttons

    head, cancel_col = st.columns([5, 1])
    head.markdown(f"**{name}** · method `{config.get('method')}` · "
                  f"{config.get('folds')} folds · state **{state}**")
    progress = float(status.get("progress") or 0.0)
    phase = status.get("phase") or ""
    if state == "running":
        head.progress(min(max(progress, 0.0), 1.0), text=f"{progress:.0%} · {phase}")
        if not Path(run_dir, "cancel").exists() and cancel_col.button(
                "Cancel", key=f"{PAGE}_cancel", icon=":material/stop_circle:"):
            from core.runs import Run

            Run.open(run_dir).request_cancel()
        if Path(run_dir, "cancel").exists():
            cancel_col.caption("Cancel requested: the run stops after this epoch.")
    elif state == "complete":
        summary = run_data.run_summary(run_dir) or {}
        m = summary.get("mAP")
        head.success(f"Complete · mAP {m:.4f}" if isinstance(m, (int, float)) else "Complete")
    elif state in ("failed", "interrupted", "cancelled"):
        message = status.get("message") or ""
        head.warning(f"{state.capitalize()}{': ' + message if message else ''}")
    if len(metrics) and metrics["loss"].notna().any():
        st.plotly_chart(run_charts.training_curves(metrics, config.get("folds")), key=f"{PAGE}_curves")
    elif state == "running":
        st.caption("Curves appear after the first epoch.")
    log = Path(run_dir) / "train.log"
    if state in ("failed",) and log.exists():
        with st.expander("Training log (last lines)"):
            st.code("\n".join(log.read_text(errors="replace").splitlines()[-30:]) or "(empty)")


def _await_claim(run_dir: str, before: str | None, timeout: float = 20.0) -> None:
    """Wait (briefly) until the resuming process has claimed the run (or already finished it)."""
    import time

    with st.spinner("Starting the training process…"):
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            try:
                state, status = run_data.run_status(run_dir)
            except data.USER_ERRORS:
                return
            # Run.resume stamps "resumed": a change means the new process took the run over.
            if state not in RESUMABLE or status.get("resumed") != before:
                return
            time.sleep(0.2)


def _on_select_run(paths: list[str]) -> None:
    # Runs before the rerun, so the followed-run panel above the table shows the choice.
    rows = st.session_state[f"{PAGE}_runs"].selection.rows
    if rows and rows[0] < len(paths):
        st.session_state[K_FOLLOW] = paths[rows[0]]
        st.session_state[K_LAST_STATE] = None


def _runs_section(root: Path) -> None:
    st.subheader("All runs")
    try:
        table = run_data.runs_table(root)
    except data.USER_ERRORS as exc:
        st.error(f"Cannot read the run store {root}: {data.friendly_error(exc)}")
        return
    st.caption(f"Run store: `{root}`")
    if table.empty:
        st.info("No runs yet. Launch one above — the **knn** baseline finishes in seconds.")
        return
    live = bool((table["state"] == "running").any())
    # While a run goes the table redraws itself (progress, state); idle, it stays still.
    st.fragment(run_every=2.0 if live else None)(_runs_table)(root)
    if table["mAP"].notna().any():
        st.plotly_chart(run_charts.runs_comparison(table), key=f"{PAGE}_compare")
    _selected_run_actions(table)


def shown_runs(table):
    """The runs table as shown: options a method does not use are blank (knn trains no
    epochs and clusters nothing), the label first."""
    from core.learn.methods import get_method

    shown = table[["label", "name", "method", "state", "mAP", "folds", "epochs", "eps",
                   "min_samples", "seconds", "progress", "started", "message"]].copy()
    for i, method in shown["method"].items():
        try:
            m = get_method(method)
        except ValueError:
            continue
        if not m.trains_network:
            shown.loc[i, "epochs"] = None
        if not m.noise_classes:
            shown.loc[i, ["eps", "min_samples"]] = None
    return shown


def _runs_table(root: Path) -> None:
    try:
        table = run_data.runs_table(root)
    except data.USER_ERRORS as exc:
        st.error(f"Cannot read the run store {root}: {data.friendly_error(exc)}")
        return
    st.dataframe(
        shown_runs(table), key=f"{PAGE}_runs", hide_index=True,
        on_select=partial(_on_select_run, table["path"].tolist()), selection_mode="single-row",
        column_config={
            "mAP": st.column_config.NumberColumn(format="%.4f"),
            "seconds": st.column_config.NumberColumn("time (s)", format="%.1f"),
            "progress": st.column_config.ProgressColumn(min_value=0.0, max_value=1.0),
            "eps": st.column_config.NumberColumn(format="%.2f"),
        })


def _selected_run_actions(table) -> None:
    follow = st.session_state.get(K_FOLLOW)
    sel = table[table["path"] == follow]
    if sel.empty:
        return
    row = sel.iloc[0]
    c1, c2, c3, c4 = st.columns(4)
    if row["state"] in RESUMABLE:
        if c1.button("Resume this run", key=f"{PAGE}_resume", icon=":material/replay:"):
            from core.runs.launch import resume_training

            try:
                before = run_data.run_status(row["path"])[1].get("resumed")
                resume_training(row["path"])
            except data.USER_ERRORS as exc:
                st.error(data.friendly_error(exc))
            else:
                _await_claim(row["path"], before)
                st.session_state[K_FOLLOW] = row["path"]
                st.rerun()  # redraw the followed run as live
        if c2.button("Clean partial files", key=f"{PAGE}_clean", icon=":material/cleaning_services:"):
            from core.runs import clean_run

            try:
                removed = clean_run(row["path"])
                st.toast(f"Removed {len(removed)} partial file(s)")
            except data.USER_ERRORS as exc:
                st.error(data.friendly_error(exc))
    if row["state"] == "complete":
        c3.page_link("app_pages/errors.py", label="Review this run's errors",
                     icon=":material/rule:", query_params={"run": row["name"]})
        c4.page_link("app_pages/results.py", label="Score it on test, download",
                     icon=":material/leaderboard:", query_params={"run": row["name"]})


st.title("Training")
st.caption("Each run trains in its own process and writes to the run store: reloading the "
           "page or opening a second tab never stops it.")
try:
    spec = data.active_dataset()
except data.USER_ERRORS as exc:
    st.error(f"No dataset: {data.friendly_error(exc)}")
    st.page_link("app_pages/data_page.py", label="Choose a dataset", icon=":material/dataset:")
    st.stop()
root = data.runs_root()
st.session_state.setdefault(K_FOLLOW, None)
st.session_state.setdefault(K_LAST_STATE, None)
if st.session_state[K_FOLLOW] is None:  # follow the newest live run, if any
    try:
        live = run_data.runs_table(root)
        live = live[live["state"] == "running"]
        if not live.empty:
            st.session_state[K_FOLLOW] = live.iloc[0]["path"]
    except data.USER_ERRORS:
        pass
following = bool(st.session_state[K_FOLLOW]) and Path(st.session_state[K_FOLLOW]).is_dir()
if following:
    st.subheader("Followed run")
    _follow_panel(st.session_state[K_FOLLOW])
with st.expander("Launch a run", expanded=not following, icon=":material/rocket_launch:"):
    _launch_form(spec, root)
_runs_section(root)
