"""Cached reads of the run store for the Training, Errors and Video review pages.

This is the second half of the dashboard's one caching layer (``dashboard/data.py``
holds the dataset half). The top of the file is plain functions over plain values
(no Streamlit: unit-testable, usable from a notebook); the bottom wraps them in
``st.cache_data`` / ``st.cache_resource`` keyed by the run directory *and* the
modification time of the files read, so a run that is still writing is re-read as
soon as it changes and a finished one is read once for every session.

The shared object (:class:`RunScores`, in ``st.cache_resource``) holds read-only
arrays: a page cannot mutate what another browser tab sees.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Sequence

import numpy as np
import pandas as pd
import streamlit as st

from core.errors import DataError
from core.io.names import canonical_name

if TYPE_CHECKING:  # pragma: no cover
    from core.features.dataset import LabelledVideos

#: Arrays a run may hold with per-video class scores, in order of preference.
SCORE_FILES = ("oof",)
TOP = 100


# ============================================================================ plain functions

@dataclass(frozen=True, eq=False)
class RunScores:
    """Bounded per-video scores of a run: the top-k identities of every video.

    Attributes
    ----------
    names : (n,) object array of canonical video names
    classes : (n, k) int identity *class index* per slot, best first (-1 = not scored)
    scores : (n, k) float32 score (softmax probability or KNN similarity) per slot
    identity_ids : (C,) int64, class index ``c`` is identity ``identity_ids[c]``
    truth : (n,) int64 true identity (0 = distractor), or None if the file lacks it
    noise_prob : (n,) float32 probability mass of the noise classes (noise method), or None
    fold : (n,) int64 fold that held the video out (-1 = never held out), or None
    source : which run file the scores came from (``"oof"`` = out-of-fold)
    """

    names: np.ndarray
    classes: np.ndarray
    scores: np.ndarray
    identity_ids: np.ndarray
    truth: np.ndarray | None
    noise_prob: np.ndarray | None
    fold: np.ndarray | None
    source: str

    @property
    def n_identities(self) -> int:
        return len(self.identity_ids)

    @property
    def scored(self) -> np.ndarray:
        """(n,) bool: videos that hold scores (out-of-fold: held out by some fold)."""
        if self.classes.shape[1] == 0:
            return np.zeros(len(self.names), bool)
        return self.classes[:, 0] >= 0

    def row_of(self, name: str) -> int | None:
        hits = np.flatnonzero(self.names == canonical_name(name))
        return int(hits[0]) if len(hits) else None

    def identity_of_class(self, c: int) -> int:
        return int(self.identity_ids[c])

    def predicted(self) -> tuple[np.ndarray, np.ndarray]:
        """Top-1 identity (0 = noise wins, -1 = not scored) and its score, per video.

        Noise wins when the run's noise mass exceeds the best identity's score.

        >>> rs = scores_from_arrays({"names": np.array(["a", "b"]), "identity_ids": np.array([4, 9]),
        ...     "top_class": np.array([[1, 0], [0, 1]]), "top_score": np.array([[.6, .1], [.2, .1]]),
        ...     "noise_prob": np.array([.3, .7])})
        >>> [p.tolist() for p in rs.predicted()]
        [[9, 0], [0.6000000238418579, 0.699999988079071]]
        """
        n = len(self.names)
        ident = np.full(n, -1, dtype=np.int64)
        score = np.full(n, np.nan, dtype=np.float32)
        ok = self.scored
        ident[ok] = self.identity_ids[self.classes[ok, 0]]
        score[ok] = self.scores[ok, 0]
        if self.noise_prob is not None:
            noise = ok & (self.noise_prob > np.nan_to_num(score, nan=np.inf))
            ident[noise] = 0
            score[noise] = self.noise_prob[noise]
        return ident, score

    def truth_map(self) -> dict[str, int]:
        """Canonical name -> true identity (0 = distractor) of every video in the file."""
        if self.truth is None:
            return {}
        return dict(zip(self.names.tolist(), self.truth.tolist()))


def scores_from_arrays(arrays: Mapping[str, np.ndarray], *, source: str = "oof") -> RunScores:
    """Build :class:`RunScores` from the arrays of a run's score file.

    Accepts the bounded layout written by ``core.train.fit`` (``names``, ``top_class``,
    ``top_score`` of shape (n, k), ``identity_ids``, optional ``ids``, ``noise_prob``,
    ``fold``) and a dense one (``scores`` of shape (n, C) without class indices).

    Examples
    --------
    >>> rs = scores_from_arrays({"names": np.array(["a", "b"]), "identity_ids": np.array([3, 4]),
    ...                          "scores": np.array([[0.9, 0.1], [0.2, 0.8]])})
    >>> rs.classes.tolist(), rs.truth is None
    ([[0, 1], [1, 0]], True)
    """
    def pick(*keys: str):
        for k in keys:
            if k in arrays:
                return np.asarray(arrays[k])
        return None

    names = pick("names")
    ids = pick("identity_ids")
    if names is None or ids is None:
        raise DataError(f"{source}.npz: score file lacks names or identity_ids "
                        f"(has {', '.join(sorted(arrays))})")
    classes = pick("top_class", "top_classes", "classes")
    scores = pick("top_score", "top_scores", "scores")
    if scores is None:
        raise DataError(f"{source}.npz: score file lacks scores (has {', '.join(sorted(arrays))})")
    if classes is None:  # dense (n, C): keep every column, best first
        order = np.argsort(-scores, axis=1, kind="stable")
        classes, scores = order, np.take_along_axis(scores, order, axis=1)
    n = len(names)
    if scores.ndim != 2 or classes.shape != scores.shape or len(scores) != n:
        raise DataError(f"{source}.npz: inconsistent shapes: names {names.shape}, classes "
                        f"{classes.shape}, scores {scores.shape}")
    if classes.size and classes.max() >= len(ids):
        raise DataError(f"{source}.npz: class index {int(classes.max())} but only {len(ids)} identities")
    extra = {}
    for key, dtype in (("ids", np.int64), ("noise_prob", np.float32), ("fold", np.int64)):
        a = pick(key)
        extra[key] = None if a is None or a.shape != (n,) else a.astype(dtype)
    out = RunScores(names=np.asarray([canonical_name(str(v)) for v in names], dtype=object),
                    classes=classes.astype(np.int64), scores=scores.astype(np.float32),
                    identity_ids=ids.astype(np.int64).reshape(-1), truth=extra["ids"],
                    noise_prob=extra["noise_prob"], fold=extra["fold"], source=source)
    for a in (out.names, out.classes, out.scores, out.identity_ids, out.truth, out.noise_prob, out.fold):
        if a is not None:
            a.flags.writeable = False
    return out


def rankings(rs: RunScores, top: int = TOP) -> dict[int, list[str]]:
    """Top-``top`` videos per identity from the stored top-k slots (a submission).

    Only videos whose stored top-k holds an identity can rank for it; with a bounded
    store that is exactly what the run can tell. Ties break by video order.

    Examples
    --------
    >>> rs = scores_from_arrays({"names": np.array(["a", "b", "c"]), "identity_ids": np.array([1, 2]),
    ...                          "scores": np.array([[.9, .1], [.6, .4], [.2, .8]])})
    >>> rankings(rs, top=2)
    {1: ['a', 'b'], 2: ['c', 'b']}
    """
    C = rs.n_identities
    rows, slots = np.nonzero((rs.classes >= 0) & (rs.classes < C))
    cls = rs.classes[rows, slots]
    sc = rs.scores[rows, slots]
    order = np.lexsort((rows, -sc, cls))  # by class, then score desc, then row
    cls, rows = cls[order], rows[order]
    starts = np.searchsorted(cls, np.arange(C))
    ends = np.searchsorted(cls, np.arange(C), side="right")
    return {int(rs.identity_ids[c]): rs.names[rows[starts[c]:min(ends[c], starts[c] + top)]].tolist()
            for c in range(C)}


def identity_table(rs: RunScores, truth: Mapping[str, int], identity: int) -> pd.DataFrame:
    """Every video the run scores for ``identity``, best first, with what it really is.

    Columns: ``rank`` (1-based), ``video``, ``score``, ``kind`` (``hit``, ``other identity``,
    ``distractor``), ``true_identity`` (0 = distractor), ``in_top100``, ``costs_ap`` (an
    intruder in the top 100 ranked above some ground-truth video of the identity: it
    lowers the AP; intruders below the last hit cost nothing).

    Examples
    --------
    >>> rs = scores_from_arrays({"names": np.array(["a", "b", "c"]), "identity_ids": np.array([1, 2]),
    ...                          "scores": np.array([[.9, .1], [.6, .4], [.2, .8]])})
    >>> identity_table(rs, {"a": 1, "c": 2}, 1)[["video", "kind"]].values.tolist()
    [['a', 'hit'], ['b', 'distractor'], ['c', 'other identity']]
    """
    c = _class_of(rs, identity)
    rows, slots = np.nonzero(rs.classes == c)
    sc = rs.scores[rows, slots]
    order = np.lexsort((rows, -sc))
    rows, sc = rows[order], sc[order]
    names = rs.names[rows]
    true = np.array([int(truth.get(n, 0)) for n in names], dtype=np.int64)
    kind = np.where(true == identity, "hit", np.where(true == 0, "distractor", "other identity"))
    rank = np.arange(1, len(rows) + 1)
    hit_ranks = rank[kind == "hit"]
    last_hit = int(hit_ranks[-1]) if len(hit_ranks) else 0
    missing = sum(1 for i in truth.values() if i == identity) > len(hit_ranks)
    # An intruder costs AP when a ground-truth video ranks below it (or is not ranked at all).
    costs = (kind != "hit") & (rank <= TOP) & ((rank < last_hit) | missing)
    return pd.DataFrame({"rank": rank, "video": names.astype(str), "score": sc.astype(float),
                         "kind": kind, "true_identity": true, "in_top100": rank <= TOP,
                         "costs_ap": costs})


def missed_videos(rs: RunScores, truth: Mapping[str, int], identity: int) -> pd.DataFrame:
    """Ground-truth videos of ``identity`` outside its top 100, and where they ranked.

    Columns: ``video``, ``rank`` (its rank for the identity, NaN when the identity is
    not among the video's stored top classes), ``score``, ``predicted`` (what the
    video was predicted as: ``identity N``, ``noise`` or ``not scored``).

    Examples
    --------
    >>> rs = scores_from_arrays({"names": np.array(["a", "b"]), "identity_ids": np.array([1, 2]),
    ...                          "scores": np.array([[.9, .1], [.3, .7]])})
    >>> missed_videos(rs, {"a": 2, "b": 2}, 2).empty
    True
    """
    table = identity_table(rs, truth, identity)
    ranked = dict(zip(table["video"], zip(table["rank"], table["score"])))
    gt = sorted(v for v, i in truth.items() if i == identity)
    row_of = {n: i for i, n in enumerate(rs.names.tolist())}
    pred, _ = rs.predicted()
    out = []
    for v in gt:
        rank, score = ranked.get(v, (np.nan, np.nan))
        if rank == rank and rank <= TOP:
            continue
        r = row_of.get(v)
        p = -1 if r is None else int(pred[r])
        label = "not scored" if p < 0 else ("noise" if p == 0 else f"identity {p}")
        out.append((v, rank, score, label))
    return pd.DataFrame(out, columns=["video", "rank", "score", "predicted"])


def stealers(rs: RunScores, truth: Mapping[str, int], identity: int,
             noise_cluster_of: Mapping[str, int] | None = None) -> pd.DataFrame:
    """Who takes ``identity``'s videos: the top-1 prediction of its wrongly predicted videos.

    A video lost to noise (its noise mass beats every identity) is attributed to the
    noise cluster ``noise_cluster_of[video]`` when given (e.g. the cluster of its
    nearest clustered distractor), else to "noise".

    Columns: ``label`` (``identity 12``, ``noise cluster 3``, ``noise``), ``kind``
    (``identity``, ``noise cluster``, ``distractor``), ``videos``, most first.

    Examples
    --------
    >>> rs = scores_from_arrays({"names": np.array(["a", "b", "c"]), "identity_ids": np.array([1, 2]),
    ...                          "scores": np.array([[.9, .1], [.3, .7], [.2, .8]])})
    >>> stealers(rs, {"a": 1, "b": 1, "c": 1}, 1).values.tolist()
    [['identity 2', 'identity', 2]]
    """
    gt = np.asarray([v for v, i in truth.items() if i == identity], dtype=object)
    rows = np.flatnonzero(np.isin(rs.names, gt)) if len(gt) else np.zeros(0, np.int64)
    pred, _ = rs.predicted()
    pred = pred[rows]
    wrong = (pred != identity) & (pred >= 0)
    labels, kinds = [], []
    for v, p in zip(rs.names[rows][wrong].tolist(), pred[wrong].tolist()):
        if p > 0:
            labels.append(f"identity {p}")
            kinds.append("identity")
        elif noise_cluster_of is not None and noise_cluster_of.get(v, -1) >= 0:
            labels.append(f"noise cluster {int(noise_cluster_of[v])}")
            kinds.append("noise cluster")
        else:
            labels.append("noise")
            kinds.append("distractor")
    return _count(labels, kinds)


def _count(labels: list[str], kinds: list[str]) -> pd.DataFrame:
    if not labels:
        return pd.DataFrame({"label": pd.Series(dtype=str), "kind": pd.Series(dtype=str),
                             "videos": pd.Series(dtype="int64")})
    df = pd.DataFrame({"label": labels, "kind": kinds})
    out = df.groupby(["label", "kind"], sort=False).size().rename("videos").reset_index()
    return out.sort_values(["videos", "label"], ascending=[False, True], kind="stable").reset_index(drop=True)


def intruder_sources(table: pd.DataFrame, noise_cluster_of: Mapping[str, int] | None) -> pd.DataFrame:
    """Where the intruders that cost AP come from: other identities and noise clusters.

    Counts the rows of :func:`identity_table` flagged ``costs_ap`` (all non-hits of the
    top 100 when the table has no such column).

    Distractors are grouped by their noise cluster (``noise_cluster_of``: video ->
    DBSCAN label, -1 unclustered); without a clustering they count as "distractors".

    Examples
    --------
    >>> t = pd.DataFrame({"video": ["x", "y", "z"], "kind": ["distractor", "other identity", "hit"],
    ...                   "true_identity": [0, 4, 1], "in_top100": [True, True, True]})
    >>> intruder_sources(t, {"x": 2}).values.tolist()
    [['identity 4', 'identity', 1], ['noise cluster 2', 'noise cluster', 1]]
    """
    bad = table[table["costs_ap"]] if "costs_ap" in table else \
        table[(table["kind"] != "hit") & table["in_top100"]]
    labels, kinds = [], []
    for v, kind, tid in zip(bad["video"], bad["kind"], bad["true_identity"]):
        if kind == "other identity":
            labels.append(f"identity {int(tid)}")
            kinds.append("identity")
        elif noise_cluster_of is not None and noise_cluster_of.get(v, -1) >= 0:
            labels.append(f"noise cluster {int(noise_cluster_of[v])}")
            kinds.append("noise cluster")
        else:
            labels.append("unclustered distractors" if noise_cluster_of is not None else "distractors")
            kinds.append("distractor")
    return _count(labels, kinds)


def nearest_noise_cluster(Xq: np.ndarray, X_noise: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Cluster of the nearest *clustered* distractor of each query (-1 if none is clustered).

    >>> nearest_noise_cluster(np.array([[1., 0]]), np.array([[0, 1.], [.9, .1], [1, 0]]),
    ...                       np.array([3, 5, -1])).tolist()
    [5]
    """
    from core.learn.knn import nearest_labelled

    labels = np.asarray(labels)
    clustered = np.flatnonzero(labels >= 0)
    if len(clustered) == 0 or len(Xq) == 0:
        return np.full(len(Xq), -1, dtype=np.int64)
    idx, _ = nearest_labelled(np.asarray(Xq, np.float32), np.asarray(X_noise, np.float32)[clustered], k=1)
    return labels[clustered][idx[:, 0]].astype(np.int64)


def per_identity_ap_frame(ap: Mapping[int, float], gt_counts: Mapping[int, int]) -> pd.DataFrame:
    """Per-identity AP as a table sorted worst first (``identity``, ``AP``, ``videos``).

    >>> per_identity_ap_frame({1: 0.5, 2: 0.25}, {1: 3, 2: 4}).values.tolist()
    [[2.0, 0.25, 4.0], [1.0, 0.5, 3.0]]
    """
    df = pd.DataFrame({"identity": [int(i) for i in ap], "AP": [float(v) for v in ap.values()]})
    df["videos"] = [int(gt_counts.get(i, 0)) for i in df["identity"]]
    return df.sort_values(["AP", "identity"], kind="stable").reset_index(drop=True)


def frame_similarities(feats: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Cosine similarity of each frame feature (rows) to each centre (rows): (n_frames, m).

    >>> frame_similarities(np.array([[2., 0], [0, 3]]), np.array([[1., 0]])).ravel().tolist()
    [1.0, 0.0]
    """
    f = np.asarray(feats, dtype=np.float32)
    n = np.linalg.norm(f, axis=1, keepdims=True)
    f = f / np.where(n > 0, n, 1.0)
    return f @ np.asarray(centres, dtype=np.float32).T


def _class_of(rs: RunScores, identity: int) -> int:
    hits = np.flatnonzero(rs.identity_ids == int(identity))
    if not len(hits):
        raise DataError(f"identity {identity} is not a class of this run")
    return int(hits[0])


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
def _scores_cached(path: str, mtime: int) -> RunScores:
    from core.runs import Run

    p = Path(path)
    arrays = Run.open(p.parent).load_array(p.stem)
    return scores_from_arrays(arrays, source=p.stem)


def run_scores(run_dir: str | os.PathLike) -> RunScores | None:
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
