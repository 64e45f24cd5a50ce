"""vidid dashboard entry point: ``streamlit run dashboard/streamlit_app.py``.

Builds the navigation (Data, Noise clusters, Map, Training, Results, Compare runs,
Errors, Video review). A page file that is not there yet is left out rather than breaking the app.
Before the page runs, the sidebar names the active dataset (on first launch this
generates the demo dataset, with a progress bar).
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

HERE = Path(__file__).resolve().parent

# (path relative to this script, title, icon, url path); the first page is the default.
PAGES: list[tuple[str, str, str, str]] = [
    ("app_pages/data_page.py", "Data", ":material/dataset:", "data"),
    ("app_pages/noise_clusters.py", "Noise clusters", ":material/bubble_chart:", "noise_clusters"),
    ("app_pages/map.py", "Map", ":material/scatter_plot:", "map"),
    ("app_pages/training.py", "Training", ":material/model_training:", "training"),
    ("app_pages/results.py", "Results", ":material/leaderboard:", "results"),
    ("app_pages/compare.py", "Compare runs", ":material/compare_arrows:", "compare"),
    ("app_pages/errors.py", "Errors", ":material/rule:", "errors"),
    ("app_pages/video_review.py", "Video review", ":material/movie:", "video_review"),
]


def build_pages() -> list[st.Page]:
    """``st.Page`` objects for the page files that exist, Data first (the default)."""
    pages = []
    for rel, title, icon, url in PAGES:
        if (HERE / rel).is_file():
            pages.append(st.Page(rel, title=title, icon=icon, url_path=url,
                                 default=not pages))
    return pages


def _sidebar() -> None:
    from dashboard.cache import datasets as data

    try:  # first visit: generates the demo (with a progress bar) before any page runs
        spec = data.active_dataset()
    except data.USER_ERRORS as exc:
        st.sidebar.error(f"Demo dataset unavailable: {data.friendly_error(exc)}")
        spec = None
    with st.sidebar:
        if spec is not None:
            st.caption(f"Dataset: **{spec.name}**  \n{len(spec.splits)} split(s): "
                       f"{', '.join(spec.split_names)}")
        chosen = st.session_state.get(data.KEY_NOISE_LABELS)
        if chosen is not None:
            st.caption(f"Clustering for training: eps {chosen['eps']:.2f}, "
                       f"min_samples {chosen['min_samples']}")


st.set_page_config(page_title="vidid", page_icon=":material/face:", layout="wide")
page = st.navigation(build_pages())
_sidebar()
page.run()
