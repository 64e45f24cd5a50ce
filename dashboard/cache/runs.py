"""Cached reads of the run store for the Training, Errors, Map and Video review pages.

The run half of the dashboard's caching layer (:mod:`dashboard.cache.datasets` holds
the dataset half). The analysis itself is :mod:`core.runs.oof` (plain functions, also
behind ``vidid errors``); this module wraps the reads in ``st.cache_data`` /
``st.cache_resource`` keyed by the run directory *and* the modification time of the
files read, so a run that is still writing is re-read as soon as it changes and a
finished one is read once for every session.

The shared object (:class:`OutOfFold`, in ``st.cache_resource``) holds read-only
arrays: a page cannot mutate what another browser tab sees.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Sequence

import numpy as np
import pandas as pd
import streamlit as st

from core.errors import DataError
from core.io.names import canonical_name
from core.runs.oof import (SCORE_FILES, OutOfFold, nearest_noise_cluster, per_identity_ap_frame,
                           rankings, scores_from_arrays)

if TYPE_CHECKING:  # pragma: no cover
    from core.features.dataset import LabelledVideos


# ============================================================================ helpers

def _mtime(path: Path) -> int:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return -1


# ============================================================================ cached reads

def runs_table(root: str | os.PathLike) -> pd.DataFrame:
    """``core.runs.list_runs(root)``: one row per run, newest first.

    Deliberately not cached: it reads three small JSON files per run (milliseconds for
    hundreds of runs), and a run whose process died must read "interrupted" at once,
    which no file change announces.
    """
    from core.runs import list_runs

    return list_runs(root)


def run_status(run_dir: str | os.PathLike) -> tuple[str, dict]:
    """``(effective state, status.json)`` of a run, read fresh (a few hundred bytes)."""
    from core.runs import Run

    run = Run.open(run_dir)
    status = run.status
    return run.state, status


@st.cache_data(max_entries=64, show_spinner=False)
def _metrics_cached(run_dir: str, mtime: int) -> pd.DataFrame:
    from core.runs import Run

    return Run.open(run_dir).metrics()


def run_metrics(run_dir: str | os.PathLike) -> pd.DataFrame:
    """Per-epoch rows of ``metrics.json`` (cached until the file changes)."""
    return _metrics_cached(str(run_dir), _mtime(Path(run_dir) / "metrics.json"))


@st.cache_data(max_entries=64, show_spinner=False)
def _config_cached(run_dir: str, mtime: int) -> dict:
    from core.runs import Run

    return Run.open(run_dir).config()


def run_config(run_dir: str | os.PathLike) -> dict:
    """The run's ``config.json`` (cached until the file changes)."""
    return _config_cached(str(run_dir), _mtime(Path(run_dir) / "config.json"))


def run_summary(run_dir: str | os.PathLike) -> dict | None:
    """``summary.json`` of a finished run, else None."""
    from core.runs import Run

    return Run.open(run_dir).summary()


def score_file(run_dir: str | os.PathLike) -> Path | None:
    """The run's per-video score file (out-of-fold first), or None if it has none yet."""
    for name in SCORE_FILES:
        p = Path(run_dir) / f"{name}.npz"
        if p.exists():
            return p
    return None


@st.cache_resource(max_entries=8, show_spinner="Reading the run's scores…")
def _scores_cached(path: str, mtime: int) -> OutOfFold:
    from core.runs import Run

    p = Path(path)
    arrays = Run.open(p.parent).load_array(p.stem)
    return scores_from_arrays(arrays, source=p.stem)


def run_scores(run_dir: str | os.PathLike) -> OutOfFold | None:
    """The run's per-video scores (shared, read-only), or None if it stored none."""
    p = score_file(run_dir)
    return None if p is None else _scores_cached(str(p), _mtime(p))


@st.cache_data(max_entries=16, show_spinner=False)
def _truth_map_cached(score_path: str, mtime: int) -> dict[str, int]:
    rs = run_scores(Path(score_path).parent)
    if rs.truth is None:
        raise DataError(f"{score_path}: holds no true identities ('ids'); cannot review errors")
    return rs.truth_map()


def run_truth(run_dir: str | os.PathLike) -> dict[str, int]:
    """True identity (0 = distractor) of every video the run scored (``ids`` of its scores)."""
    p = score_file(run_dir)
    if p is None:
        return {}
    return _truth_map_cached(str(p), _mtime(p))


@st.cache_data(max_entries=16, show_spinner=False)
def _per_identity_cached(run_dir: str, score_mtime: int, ap_mtime: int) -> pd.DataFrame:
    rs = run_scores(run_dir)
    truth = run_truth(run_dir)
    scored = rs.scored
    by_id: dict[int, list[str]] = {}
    for v, ok in zip(rs.names.tolist(), scored.tolist()):
        i = truth.get(v, 0)
        if ok and i > 0:
            by_id.setdefault(int(i), []).append(v)
    counts = {i: len(v) for i, v in by_id.items()}
    ap_file = Path(run_dir) / "per_identity_ap.json"
    if ap_mtime >= 0:
        import json

        try:
            stored = json.loads(ap_file.read_text(encoding="utf-8"))
            return per_identity_ap_frame({int(k): float(v) for k, v in stored.items()}, counts)
        except (ValueError, OSError, AttributeError):
            pass  # unreadable: recompute below
    from core.learn.metrics import per_identity_ap

    return per_identity_ap_frame(per_identity_ap(by_id, rankings(rs)), counts)


def run_identity_ap(run_dir: str | os.PathLike) -> pd.DataFrame | None:
    """Per-identity AP of the run (worst first; ``identity``, ``AP``, ``videos``), or None.

    The run's ``per_identity_ap.json`` when present (the AP behind its mAP), else
    computed from its stored scores over the held-out labelled videos.
    """
    p = score_file(run_dir)
    if p is None:
        return None
    return _per_identity_cached(str(run_dir), _mtime(p), _mtime(Path(run_dir) / "per_identity_ap.json"))


@st.cache_data(max_entries=16, show_spinner=False)
def _noise_clusters_cached(path: str, mtime: int) -> dict[str, int]:
    with np.load(path, allow_pickle=False) as z:
        names, labels = z["names"], z["labels"]
    return {canonical_name(str(n)): int(k) for n, k in zip(names.tolist(), labels.tolist())}


def run_noise_clusters(run_dir: str | os.PathLike) -> dict[str, int] | None:
    """Distractor -> DBSCAN noise cluster (-1 unclustered) the run trained with, or None.

    ``noise_clusters.npz`` is written by the noise method; other methods have none.
    """
    p = Path(run_dir) / "noise_clusters.npz"
    if not p.exists():
        return None
    try:
        return _noise_clusters_cached(str(p), _mtime(p))
    except (KeyError, ValueError, OSError):
        return None


def session_noise_clusters(chosen: dict | None) -> dict[str, int] | None:
    """The clustering chosen on the Noise clusters page as video -> label, or None."""
    if not chosen or "names" not in chosen or "labels" not in chosen:
        return None
    return _session_clusters_cached(tuple(str(n) for n in chosen["names"]),
                                    tuple(int(k) for k in np.asarray(chosen["labels"]).tolist()))


@st.cache_data(max_entries=4, show_spinner=False)
def _session_clusters_cached(names: tuple, labels: tuple) -> dict[str, int]:
    return {canonical_name(n): k for n, k in zip(names, labels)}


# ============================================================================ the Map's outcome colours

@st.cache_data(max_entries=8, show_spinner=False)
def _correctness_cached(run_path: str, mtime: float) -> pd.DataFrame:
    from core.runs.oof import load_out_of_fold

    return load_out_of_fold(run_path).outcome_table()  # the one "wrong" rule (noise wins)


def run_correctness(run_path: str | os.PathLike) -> pd.DataFrame:
    """Per video of a finished run: ``outcome`` (correct / wrong / distractor / not scored),
    ``predicted`` and ``true`` identity, from its out-of-fold top-1 prediction."""
    p = Path(run_path) / "oof.npz"
    return _correctness_cached(str(run_path), p.stat().st_mtime)



@st.cache_data(max_entries=64, show_spinner=False)
def _nearest_cluster_cached(spec_key: tuple, videos: tuple[str, ...], clusters_key: tuple) -> dict[str, int]:
    from dashboard.cache import datasets as data

    lv = data.load_dataset(spec_key[0])
    index = {n: i for i, n in enumerate(np.asarray(lv.names).tolist())}
    cluster_names, cluster_labels = clusters_key
    noise = [(index[n], k) for n, k in zip(cluster_names, cluster_labels) if n in index]
    q = [index[v] for v in videos if v in index]
    if not noise or not q:
        return {}
    rows = np.array([r for r, _ in noise])
    labels = np.array([k for _, k in noise])
    X = np.asarray(lv.X)
    got = nearest_noise_cluster(X[q], X[rows], labels)
    return {v: int(k) for v, k in zip([v for v in videos if v in index], got.tolist())}


def nearest_clusters_for(spec, videos: Sequence[str], clusters: Mapping[str, int]) -> dict[str, int]:
    """For each video, the noise cluster of its nearest clustered distractor (dataset ``spec``)."""
    names = tuple(sorted(clusters))
    key = (names, tuple(int(clusters[n]) for n in names))
    return _nearest_cluster_cached(spec_key(spec), tuple(sorted(map(str, videos))), key)


@st.cache_data(max_entries=256, show_spinner=False)
def _neighbours_cached(spec_key: tuple, video: str, k: int) -> pd.DataFrame:
    from core.learn.knn import nearest_labelled
    from dashboard.cache import datasets as data

    lv = data.load_dataset(spec_key[0])
    ids = np.asarray(lv.ids)
    ref = np.flatnonzero(ids > 0)
    row = _row_in(lv, video)
    exclude = np.full(1, -1, dtype=np.int64)
    pos = np.searchsorted(ref, row)
    if pos < len(ref) and ref[pos] == row:
        exclude[0] = pos
    idx, sim = nearest_labelled(np.asarray(lv.X)[row:row + 1], np.asarray(lv.X)[ref], k=k,
                                exclude_self=exclude)
    keep = idx[0] >= 0
    rows = ref[idx[0][keep]]
    return pd.DataFrame({"video": np.asarray(lv.names)[rows].astype(str),
                         "identity": ids[rows].astype(np.int64),
                         "split": np.asarray(lv.split)[rows].astype(str),
                         "cosine": sim[0][keep].astype(float)})


def nearest_labelled_videos(spec, video: str, k: int = 10) -> pd.DataFrame:
    """The ``k`` labelled videos closest to ``video`` (cosine of pooled vectors)."""
    return _neighbours_cached(spec_key(spec), canonical_name(video), int(k)).copy()


def spec_key(spec) -> tuple:
    """A hashable cache key naming a dataset *and* the state of its files (size, mtime)."""
    paths = [p for s in spec.splits for p in (s.feats, s.gt) if p]
    return (spec, tuple((p, *_stat(p)) for p in paths))


def _stat(path: str) -> tuple[int, int]:
    try:
        st_ = os.stat(path)
        return st_.st_size, st_.st_mtime_ns
    except OSError:
        return -1, -1


def _row_in(lv: "LabelledVideos", video: str) -> int:
    names = np.asarray(lv.names)
    hits = np.flatnonzero(names == canonical_name(video))
    if not len(hits):
        raise DataError(f"no video named {video!r} in the active dataset")
    return int(hits[0])


# ============================================================================ scored splits, label issues, comparison

def scoring_status(run_dir: str | os.PathLike, split: str) -> dict:
    """Where the scoring of ``split`` with the run stands (read fresh; ``{}`` if never)."""
    from core.runs.split_score import scoring_status as _status

    return _status(run_dir, split)


@st.cache_data(max_entries=32, show_spinner=False)
def _split_ap_cached(run_dir: str, split: str, mtime: int) -> pd.DataFrame | None:
    from core.runs.split_score import split_identity_ap

    ap = split_identity_ap(run_dir, split)
    if ap is None:
        return None
    return (pd.DataFrame({"identity": list(ap), "AP": list(ap.values())})
            .sort_values(["AP", "identity"], kind="stable").reset_index(drop=True))


def split_identity_ap(run_dir: str | os.PathLike, split: str) -> pd.DataFrame | None:
    """Per-identity AP (``identity``, ``AP``; worst first) of a scored split, or None."""
    from core.runs.split_score import PER_IDENTITY, scored_dir

    p = scored_dir(run_dir, split) / PER_IDENTITY
    return _split_ap_cached(str(run_dir), str(split), _mtime(p))


def submission_bytes(run_dir: str | os.PathLike, split: str) -> bytes | None:
    """The official submission file of a scored split (read when asked; None if absent)."""
    from core.runs.split_score import SUBMISSION, scored_dir

    p = scored_dir(run_dir, split) / SUBMISSION
    try:
        return p.read_bytes()
    except OSError:
        return None


@st.cache_data(max_entries=8, show_spinner="Looking for label issues (cleanlab)…")
def _label_issues_cached(run_dir: str, mtime: int) -> pd.DataFrame:
    from core.runs.label_issues import find_label_issues

    return find_label_issues(run_scores(run_dir))


def run_label_issues(run_dir: str | os.PathLike) -> pd.DataFrame | None:
    """Labelled videos cleanlab flags as probably mislabelled (most suspicious first), or None."""
    p = score_file(run_dir)
    if p is None:
        return None
    return _label_issues_cached(str(run_dir), _mtime(p))


def identity_ap_map(run_dir: str | os.PathLike, split: str | None = None) -> dict[int, float] | None:
    """``{identity: AP}`` of the run: out-of-fold (``split`` None) or of a scored split."""
    ap = run_identity_ap(run_dir) if split is None else split_identity_ap(run_dir, split)
    if ap is None:
        return None
    return dict(zip(ap["identity"].astype(int).tolist(), ap["AP"].astype(float).tolist()))


def csv_bytes(frame: pd.DataFrame) -> bytes:
    """A table as UTF-8 CSV (what the download buttons hand out)."""
    return frame.to_csv(index=False).encode("utf-8")


@st.cache_data(max_entries=128, show_spinner=False)
def _pulling_cached(run_dir: str, fold: int, spec_key: tuple, video: str) -> pd.DataFrame | None:
    from core.runs.explain import pulling_classes
    from dashboard.cache import datasets as data

    from dashboard.cache.modal import modal_dataset

    spec = spec_key[0]
    lv = data.load_dataset(spec)
    face = np.flatnonzero(np.asarray(lv.names) == video)
    pooled = np.asarray(lv.X)[int(face[0])] if face.size else None
    mlv = modal_dataset(spec)
    hit = np.flatnonzero(np.asarray(mlv.names) == video) if mlv is not None else np.zeros(0, int)
    modal = mlv.modal.select(hit[:1]) if hit.size else None
    if pooled is None and modal is None:
        _row_in(lv, video)  # the one error for a video the dataset lacks
    return pulling_classes(run_dir, pooled, fold, modal=modal)


def pulling_classes_for(spec, run_dir: str | os.PathLike, video: str, fold: int | None) -> pd.DataFrame | None:
    """Top classes (identities, noise clusters, shadow classes) of the fold model that held
    ``video`` out, or None (reference method, or no such fold)."""
    if fold is None or fold < 0:
        return None
    return _pulling_cached(str(run_dir), int(fold), spec_key(spec), canonical_name(video))
