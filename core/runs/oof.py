"""A run's out-of-fold predictions and the error analysis over them (no Streamlit).

:class:`OutOfFold` is the one owner of a run's per-video scores (``oof.npz``, bounded
to the top-k identities of every video) and of the one rule of what a video was
predicted as (:meth:`OutOfFold.predicted`: the top identity, unless the noise mass
beats it) and so of which videos are "wrong" (:meth:`OutOfFold.outcomes`). The Map,
Errors and Video review pages of the dashboard and ``vidid errors`` all read them.

The analysis functions take plain values: :func:`rankings` (a submission from the
stored slots), :func:`identity_table`, :func:`missed_videos`, :func:`stealers`,
:func:`intruder_sources`, :func:`nearest_noise_cluster`, :func:`per_identity_ap_frame`,
:func:`frame_similarities`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd

from core.errors import DataError
from core.io.names import canonical_name

#: Arrays a run may hold with per-video class scores, in order of preference.
SCORE_FILES = ("oof",)
TOP = 100


# ============================================================================ plain functions

@dataclass(frozen=True, eq=False)
class OutOfFold:
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

    def outcomes(self) -> np.ndarray:
        """The one "wrong" rule, per video: ``correct``, ``wrong``, ``distractor`` or ``not scored``.

        A labelled video (true identity > 0) is ``wrong`` when :meth:`predicted` (noise
        wins over a weaker identity) is not its identity; distractors and videos without
        a stored truth read ``distractor``; videos no fold held out read ``not scored``.

        >>> rs = scores_from_arrays({"names": np.array(["a", "b", "c", "d"]),
        ...     "identity_ids": np.array([4, 9]), "ids": np.array([9, 9, 0, 4]),
        ...     "top_class": np.array([[1], [1], [0], [-1]]), "top_score": np.array([[.6], [.2], [.5], [0]]),
        ...     "noise_prob": np.array([.3, .7, 0, 0])})
        >>> rs.outcomes().tolist()
        ['correct', 'wrong', 'distractor', 'not scored']
        """
        pred, _ = self.predicted()
        truth = self.truth if self.truth is not None else np.zeros(len(self.names), np.int64)
        return np.where(pred < 0, "not scored", np.where(truth <= 0, "distractor",
                        np.where(pred == truth, "correct", "wrong"))).astype(object)

    def wrong(self) -> np.ndarray:
        """(n,) bool: labelled videos the run got wrong (``outcomes() == "wrong"``)."""
        return self.outcomes() == "wrong"

    def outcome_table(self) -> pd.DataFrame:
        """Per video (index ``video``): ``outcome``, ``predicted`` (0 = noise or not scored), ``true``."""
        pred, _ = self.predicted()
        truth = self.truth if self.truth is not None else np.zeros(len(self.names), np.int64)
        return pd.DataFrame({"outcome": self.outcomes(), "predicted": np.maximum(pred, 0), "true": truth},
                            index=pd.Index(self.names.astype(str), name="video"))

    def truth_map(self) -> dict[str, int]:
        """Canonical name -> true identity (0 = distractor) of every video in the file."""
        if self.truth is None:
            return {}
        return dict(zip(self.names.tolist(), self.truth.tolist()))


def scores_from_arrays(arrays: Mapping[str, np.ndarray], *, source: str = "oof") -> OutOfFold:
    """Build :class:`OutOfFold` from the arrays of a run's score file.

    Accepts the bounded layout written by ``core.learn.fit`` (``names``, ``top_class``,
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
    out = OutOfFold(names=np.asarray([canonical_name(str(v)) for v in names], dtype=object),
                    classes=classes.astype(np.int64), scores=scores.astype(np.float32),
                    identity_ids=ids.astype(np.int64).reshape(-1), truth=extra["ids"],
                    noise_prob=extra["noise_prob"], fold=extra["fold"], source=source)
    for a in (out.names, out.classes, out.scores, out.identity_ids, out.truth, out.noise_prob, out.fold):
        if a is not None:
            a.flags.writeable = False
    return out


def rankings(rs: OutOfFold, top: int = TOP) -> dict[int, list[str]]:
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


def identity_table(rs: OutOfFold, truth: Mapping[str, int], identity: int) -> pd.DataFrame:
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


def missed_videos(rs: OutOfFold, truth: Mapping[str, int], identity: int) -> pd.DataFrame:
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


def stealers(rs: OutOfFold, truth: Mapping[str, int], identity: int,
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


def _class_of(rs: OutOfFold, identity: int) -> int:
    hits = np.flatnonzero(rs.identity_ids == int(identity))
    if not len(hits):
        raise DataError(f"identity {identity} is not a class of this run")
    return int(hits[0])


def load_out_of_fold(run_dir: str | os.PathLike) -> OutOfFold | None:
    """The run's out-of-fold scores (``oof.npz``), or None when it has none yet."""
    from core.runs.run import Run

    for name in SCORE_FILES:
        if (Path(run_dir) / f"{name}.npz").exists():
            return scores_from_arrays(Run.open(run_dir).load_array(name), source=name)
    return None


__all__ = ["SCORE_FILES", "TOP", "OutOfFold", "frame_similarities", "identity_table", "intruder_sources",
           "load_out_of_fold", "missed_videos", "nearest_noise_cluster", "per_identity_ap_frame",
           "rankings", "scores_from_arrays", "stealers"]
