"""What each modality says about a video, and which videos lack a usable face.

Multimodal error review (issue 10) in plain functions, shared by the dashboard's
Errors and Video review pages (and usable from a script or the CLI):

* :func:`face_condition` — the one rule of "faceless" and "low-quality face": a video
  with no face frame is *no face*; one whose pooled face quality (the mean quality
  score of its face frames, ``PooledVideos.mean_quality``) is below ``low_quality``
  is a *low-quality face*; the rest *face*.
* :func:`modality_evidence` — per video and modality, the identity that modality
  *alone* points to: a KNN score per identity (mean cosine of the ``k`` nearest
  labelled videos of that identity holding the modality, as the KNN baseline scores),
  the true identity's score and rank, the nearest labelled video, and the modality's
  weight in the late fusion (:data:`core.learn.fusion.KNN_WEIGHTS`, renormalised over
  the modalities the video holds). A last row per video fuses them late.
* :func:`modality_agreement` — per modality over many videos (an identity's): how
  often it alone points to the true identity.
* :func:`condition_outcomes` — a run's out-of-fold verdict on a set of videos, with
  the rank each holds in its own identity's top 100.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from core.runs.oof import TOP, OutOfFold, rankings

#: Default of the low-quality rule: pooled face quality below this (real data: mean ≈ 80).
DEFAULT_LOW_FACE_QUALITY = 40.0
FACE_CONDITIONS = ("face", "low-quality face", "no face")
#: The ``modality`` of the late-fused row :func:`modality_evidence` adds per video.
FUSED = "all (late fusion)"


def face_condition(has_face: np.ndarray, mean_quality: np.ndarray, *,
                   low_quality: float = DEFAULT_LOW_FACE_QUALITY) -> np.ndarray:
    """Per video: ``"no face"``, ``"low-quality face"`` or ``"face"``.

    Parameters
    ----------
    has_face : (n,) bool, the video holds at least one face frame
    mean_quality : (n,) float, its pooled face quality (mean frame quality score)
    low_quality : a face video whose pooled quality is below this is low quality

    Examples
    --------
    >>> face_condition(np.array([True, True, False]), np.array([80.0, 12.0, 0.0])).tolist()
    ['face', 'low-quality face', 'no face']
    """
    has_face = np.asarray(has_face, dtype=bool)
    q = np.asarray(mean_quality, dtype=np.float64)
    if has_face.shape != q.shape:
        raise ValueError(f"has_face {has_face.shape} and mean_quality {q.shape} differ in shape")
    if not np.isfinite(low_quality):
        raise ValueError(f"low_quality must be a finite number, got {low_quality!r}")
    out = np.full(has_face.shape, FACE_CONDITIONS[0], dtype=object)
    out[has_face & (q < low_quality)] = FACE_CONDITIONS[1]
    out[~has_face] = FACE_CONDITIONS[2]
    return out


def modality_evidence(modal, ids: np.ndarray, rows: Sequence[int], *,
                      reference: np.ndarray | None = None, k: int = 5,
                      weights: Mapping[str, float] | None = None,
                      names: np.ndarray | None = None) -> pd.DataFrame:
    """Which identity each modality alone points to, for the videos ``rows``.

    Parameters
    ----------
    modal : ModalFeatures (:mod:`core.features.modal_features`), unit rows where present
    ids : (n,) int, identity of every video (0 = distractor)
    rows : the videos to explain (rows of ``modal``)
    reference : rows of the labelled videos to compare with (default: every row with
        ``ids > 0``); a video is never its own neighbour
    k : neighbours per identity in the KNN score
    weights : late-fusion weight per modality (default :data:`core.learn.fusion.KNN_WEIGHTS`)
    names : (n,) video names for the ``video`` / ``nearest video`` columns

    Returns
    -------
    DataFrame, one row per (video, modality) plus one :data:`FUSED` row per video:
    ``row``, ``video``, ``modality``, ``present`` (the video holds it and some labelled
    video of ``reference`` does too), ``weight`` (0 where absent),
    ``points to`` (identity, NA where absent), ``score``, ``true identity``,
    ``true score`` / ``true rank`` (NaN for a distractor or where absent),
    ``agrees`` (points to the true identity), ``nearest video``, ``cosine``.

    Examples
    --------
    >>> from core.features.modal_features import ModalFeatures
    >>> e = np.eye(3, dtype=np.float32)
    >>> mf = ModalFeatures(("face", "audio"), {"face": e[[0, 0, 1, 0]], "audio": e[[1, 2, 2, 0]]},
    ...                    np.array([[1, 1], [1, 1], [1, 1], [0, 1]], bool))
    >>> ev = modality_evidence(mf, np.array([1, 1, 2, 1]), [3], k=1)
    >>> ev[["modality", "present", "agrees"]].values.tolist()
    [['face', False, False], ['audio', True, True], ['all (late fusion)', True, True]]
    >>> ev["points to"].tolist()
    [<NA>, 1, 1]
    """
    from core.learn.fusion import KNN_WEIGHTS
    from core.learn.knn import knn_scores, nearest_labelled

    weights = KNN_WEIGHTS if weights is None else weights
    ids = np.asarray(ids, dtype=np.int64)
    rows = np.asarray(rows, dtype=np.int64).reshape(-1)
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    if rows.size and (rows.min() < 0 or rows.max() >= len(ids)):
        raise ValueError(f"rows hold {int(rows.max() if rows.max() >= len(ids) else rows.min())}, "
                         f"outside 0..{len(ids) - 1}")
    ref = np.flatnonzero(ids > 0) if reference is None else np.asarray(reference, dtype=np.int64)
    identity_ids = np.unique(ids[ref][ids[ref] > 0])
    mods = modal.modalities
    M, n_q, C = len(mods), len(rows), len(identity_ids)
    present = np.asarray(modal.present)[rows]
    w = np.array([float(weights.get(m, 0.5)) for m in mods]) * present
    w_norm = w / np.maximum(w.sum(axis=1, keepdims=True), 1e-12)
    true = ids[rows]
    true_col = np.searchsorted(identity_ids, true)
    true_ok = (true > 0) & (true_col < C) & (identity_ids[np.minimum(true_col, max(C - 1, 0))] == true) \
        if C else np.zeros(n_q, bool)
    fused = np.zeros((n_q, C), np.float32)
    parts = []
    for j, m in enumerate(mods):
        S = np.full((n_q, C), np.nan, np.float32)
        near_row = np.full(n_q, -1, np.int64)
        near_cos = np.full(n_q, np.nan, np.float32)
        q = np.flatnonzero(present[:, j])
        r = ref[np.asarray(modal.present)[ref, j]]
        if q.size and r.size and C:
            block = np.asarray(modal.blocks[m])
            pos = {int(x): i for i, x in enumerate(r.tolist())}
            self_idx = np.array([pos.get(int(x), -1) for x in rows[q]], dtype=np.int64)
            S[q] = knn_scores(block[rows[q]], block[r], ids[r], identity_ids, k=k,
                              exclude_self=self_idx)
            idx, sim = nearest_labelled(block[rows[q]], block[r], k=1, exclude_self=self_idx)
            ok = idx[:, 0] >= 0
            near_row[q[ok]] = r[idx[ok, 0]]
            near_cos[q[ok]] = sim[ok, 0]
            fused[q] += w[q, j, None] * S[q]
        parts.append(_evidence_rows(m, rows, present[:, j] & ~np.isnan(S).all(axis=1) if C else
                                    np.zeros(n_q, bool), w_norm[:, j], S, identity_ids, true,
                                    true_ok, true_col, near_row, near_cos, names))
    has_any = w.sum(axis=1) > 0
    fused = np.where(has_any[:, None], fused / np.maximum(w.sum(axis=1, keepdims=True), 1e-12),
                     np.nan).astype(np.float32)
    parts.append(_evidence_rows(FUSED, rows, has_any & (C > 0), has_any.astype(float), fused,
                                identity_ids, true, true_ok, true_col, np.full(n_q, -1),
                                np.full(n_q, np.nan, np.float32), names))
    out = pd.concat(parts, ignore_index=True)
    order = np.lexsort((out["_order"].to_numpy(), out["_query"].to_numpy()))
    return out.iloc[order].drop(columns=["_order", "_query"]).reset_index(drop=True)


def _evidence_rows(modality: str, rows: np.ndarray, ok: np.ndarray, weight: np.ndarray,
                   S: np.ndarray, identity_ids: np.ndarray, true: np.ndarray, true_ok: np.ndarray,
                   true_col: np.ndarray, near_row: np.ndarray, near_cos: np.ndarray,
                   names: np.ndarray | None) -> pd.DataFrame:
    n = len(rows)
    best = np.zeros(n, np.int64)
    score = np.full(n, np.nan)
    t_score = np.full(n, np.nan)
    t_rank = np.full(n, np.nan)
    if ok.any():
        Sk = S[ok]
        best[ok] = identity_ids[np.argmax(Sk, axis=1)]
        score[ok] = Sk.max(axis=1)
        has_t = ok & true_ok
        if has_t.any():
            ts = S[has_t, true_col[has_t]]
            t_score[has_t] = ts
            t_rank[has_t] = 1 + (S[has_t] > ts[:, None]).sum(axis=1)
    label = (lambda r: np.asarray(names)[r].astype(str)) if names is not None else (lambda r: r.astype(str))
    nearest = np.where(near_row >= 0, label(np.maximum(near_row, 0)), "")
    points_to = pd.array(best, dtype="Int64")
    points_to[~ok] = pd.NA  # an absent modality points nowhere
    return pd.DataFrame({
        "row": rows, "video": label(rows), "modality": modality, "present": ok,
        "weight": np.where(ok, weight, 0.0).round(3),
        "points to": points_to, "score": score,
        "true identity": true, "true score": t_score, "true rank": t_rank,
        "agrees": ok & (best == true) & (true > 0), "nearest video": nearest, "cosine": near_cos,
        "_order": 99 if modality == FUSED else 0, "_query": np.arange(n)})


def modality_agreement(evidence: pd.DataFrame) -> pd.DataFrame:
    """Per modality over the videos of ``evidence``: how many hold it, how many it gets right.

    Returns ``modality``, ``videos`` (holding it), ``points to the true identity``
    (count), ``share`` (of those holding it), ``mean weight``; modalities in the order
    of ``evidence``.

    Examples
    --------
    >>> ev = pd.DataFrame({"modality": ["face", "audio", "face", "audio"],
    ...     "present": [True, True, False, True], "agrees": [True, False, False, True],
    ...     "weight": [0.67, 0.33, 0.0, 1.0]})
    >>> modality_agreement(ev)["share"].tolist()
    [1.0, 0.5]
    """
    ev = evidence[evidence["present"]]
    order = list(dict.fromkeys(evidence["modality"].tolist()))
    g = ev.groupby("modality", sort=False)
    out = pd.DataFrame({"videos": g.size(), "points to the true identity": g["agrees"].sum(),
                        "mean weight": g["weight"].mean()}).reindex(order)
    out["videos"] = out["videos"].fillna(0).astype(int)
    out["points to the true identity"] = out["points to the true identity"].fillna(0).astype(int)
    out["share"] = out["points to the true identity"] / out["videos"].where(out["videos"] > 0)
    out = out.rename_axis("modality").reset_index()
    return out[["modality", "videos", "points to the true identity", "share", "mean weight"]]


def condition_outcomes(rs: OutOfFold, truth: Mapping[str, int], videos: Sequence[str]) -> pd.DataFrame:
    """The run's verdict on ``videos`` (those it scored): predicted identity and own-line rank.

    Returns ``video``, ``true identity`` (0 distractor), ``predicted`` (0 = noise),
    ``correct`` (labelled and top-1 right), ``rank in own line`` (its rank in its true
    identity's top 100, NaN outside it or for a distractor), ``score`` (the top score).

    Examples
    --------
    >>> from core.runs.oof import scores_from_arrays
    >>> rs = scores_from_arrays({"names": np.array(["a", "b"]), "identity_ids": np.array([1, 2]),
    ...     "ids": np.array([1, 1]), "scores": np.array([[.9, .1], [.3, .7]])})
    >>> condition_outcomes(rs, {"a": 1, "b": 1}, ["b", "a"])[["video", "correct", "rank in own line"]].values.tolist()
    [['b', False, 2.0], ['a', True, 1.0]]
    """
    pred, score = rs.predicted()
    lines = rankings(rs, top=TOP)
    rows = [(v, rs.row_of(v)) for v in videos]
    rows = [(v, r) for v, r in rows if r is not None and rs.scored[r]]
    t = np.array([int(truth.get(v, 0)) for v, _ in rows], dtype=np.int64)
    p = np.array([int(pred[r]) for _, r in rows], dtype=np.int64)

    def own_rank(video: str, identity: int) -> float:
        line = lines.get(identity, []) if identity > 0 else []
        return float(line.index(video) + 1) if video in line else np.nan

    return pd.DataFrame({
        "video": [v for v, _ in rows], "true identity": t, "predicted": p,
        "correct": (t > 0) & (p == t),
        "rank in own line": [own_rank(v, int(i)) for (v, _), i in zip(rows, t)],
        "score": [float(score[r]) for _, r in rows]})


__all__ = ["DEFAULT_LOW_FACE_QUALITY", "FACE_CONDITIONS", "FUSED", "condition_outcomes",
           "face_condition", "modality_agreement", "modality_evidence"]
