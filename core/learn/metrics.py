"""The official iQIYI-VID metric (mAP), per-identity AP, ranking and confusions.

Official rules: in a submitted line duplicates are dropped (first occurrence kept)
and at most 100 videos may remain; for each identity of the ground truth,
AP = (sum over ranks k, 1-based, where the video is correct of hits_so_far / k) /
(number of ground-truth videos of the identity — *not* capped at 100); an identity
with no submitted line scores 0; lines for identities absent from the ground truth
are ignored (not checked either). mAP is the mean AP over the ground-truth identities.
Identity IDs are compared as integers (``07`` is identity 7).

Names: a :class:`~core.formats.GroundTruth` and :func:`~core.formats.read_submission`
already hold canonical names (one ``.mp4`` stripped); names given in plain dicts
are stripped of at most one ``.mp4`` here, exactly once, so ``X.mp4.mp4`` is never
the video ``X.mp4``.
"""

from __future__ import annotations

import os
from typing import Iterable, Mapping, Sequence

import numpy as np

from core.errors import DataError
from core.io.names import canonical_name

MAX_PER_LINE = 100


def _dedupe(ranked: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(canonical_name(v) for v in ranked))


def _gt_sets(gt) -> dict[int, set[str]]:
    """``{identity: set of canonical videos}`` from a GroundTruth or a mapping."""
    if hasattr(gt, "by_identity"):  # names already canonical: never strip a second .mp4
        return {int(i): set(vids) for i, vids in gt.by_identity().items()}
    if isinstance(gt, Mapping):
        items = gt.items()
    else:
        raise TypeError(
            f"ground truth must be a GroundTruth or dict[int, videos], got {type(gt).__name__}"
        )
    return {int(i): {canonical_name(v) for v in vids} for i, vids in items}


def _check_line(identity: int, videos: list[str]) -> None:
    if len(videos) > MAX_PER_LINE:
        raise DataError(
            f"submission: identity {identity}: {len(videos)} distinct videos, "
            f"at most {MAX_PER_LINE} allowed"
        )


def _ap(videos: list[str], relevant: set[str] | frozenset[str], n_relevant: int) -> float:
    if n_relevant <= 0:
        return 0.0
    hits = np.fromiter((v in relevant for v in videos), dtype=bool, count=len(videos))
    if not hits.any():
        return 0.0
    k = np.flatnonzero(hits) + 1  # 1-based ranks of the hits
    return float((np.arange(1, len(k) + 1) / k).sum() / n_relevant)


def average_precision(
    ranked: Sequence[str],
    relevant: Iterable[str],
    n_relevant: int | None = None,
) -> float:
    """Official AP of one submitted line.

    Parameters
    ----------
    ranked : sequence of str
        Submitted videos, best first (duplicates dropped, first kept; at most 100
        distinct videos).
    relevant : iterable of str
        The identity's ground-truth videos.
    n_relevant : int, optional
        The denominator; default ``len(set(relevant))`` (never capped at 100).

    Examples
    --------
    >>> round(average_precision(["a", "x", "b"], {"a", "b", "c"}), 4)  # (1/1 + 2/3) / 3
    0.5556
    >>> average_precision(["a", "a", "b"], {"a", "b"})  # duplicate dropped
    1.0
    """
    rel = {canonical_name(v) for v in relevant}
    videos = _dedupe(ranked)
    if len(videos) > MAX_PER_LINE:
        raise DataError(
            f"ranked list holds {len(videos)} distinct videos, at most {MAX_PER_LINE} allowed"
        )
    return _ap(videos, rel, len(rel) if n_relevant is None else int(n_relevant))


def per_identity_ap(gt, submission: Mapping[int, Sequence[str]]) -> dict[int, float]:
    """AP of every ground-truth identity (0.0 where the submission has no line).

    Parameters
    ----------
    gt : GroundTruth or dict[int, iterable of str]
    submission : dict[int, sequence of str]
        Ranked videos per identity, best first (names as written: one ``.mp4`` is
        stripped). Lines for identities not in the ground truth are ignored.

    Examples
    --------
    >>> per_identity_ap({1: ["a"], 2: ["b", "c"]}, {1: ["a"], 3: ["b"]})
    {1: 1.0, 2: 0.0}
    """
    lines = {int(i): _dedupe(ranked) for i, ranked in submission.items()}
    return _per_identity(_gt_sets(gt), lines)


def _per_identity(sets: dict[int, set[str]], lines: Mapping[int, list[str]]) -> dict[int, float]:
    """AP per ground-truth identity; ``lines`` de-duplicated, names canonical.

    Only lines of ground-truth identities are checked for the 100-video rule: the
    official script ignores every other line.
    """
    out = {}
    for i, rel in sorted(sets.items()):
        if i in lines:
            _check_line(i, lines[i])
            out[i] = _ap(lines[i], rel, len(rel))
        else:
            out[i] = 0.0
    return out


def mean_average_precision(gt, submission: Mapping[int, Sequence[str]]) -> float:
    """Official mAP: mean AP over the identities of the ground truth.

    Examples
    --------
    >>> mean_average_precision({1: ["a"], 2: ["b", "c"]}, {1: ["a"], 2: ["x", "c"]})
    0.625
    """
    aps = per_identity_ap(gt, submission)
    if not aps:
        raise DataError("ground truth holds no identities: mAP is undefined")
    return float(np.mean(list(aps.values())))


def evaluate_files(gt_path: str | os.PathLike, submission_path: str | os.PathLike) -> dict:
    """Score a submission file against a ground-truth file (either layout).

    Returns
    -------
    dict with ``mAP`` (float), ``per_identity`` ({id: AP}), ``n_identities``
    (ground-truth identities), ``n_missing`` (of those, without a submitted line),
    ``n_unknown_identities`` (submitted lines for identities not in the ground truth).

    Examples
    --------
    >>> evaluate_files("val_gt.txt", "submission.txt")["mAP"]  # doctest: +SKIP
    0.8252
    """
    from core.io.formats import read_ground_truth, read_submission

    gt = read_ground_truth(gt_path)
    sets = _gt_sets(gt)
    if not sets:
        raise DataError(f"{gt_path}: ground truth holds no identities")
    sub = read_submission(submission_path, identities=sets)
    # both sides hold canonical names: de-duplicate without stripping a second .mp4
    aps = _per_identity(sets, {i: list(dict.fromkeys(v)) for i, v in sub.items() if i in sets})
    return {
        "mAP": float(np.mean(list(aps.values()))),
        "per_identity": aps,
        "n_identities": len(sets),
        "n_missing": sum(1 for i in sets if i not in sub),
        "n_unknown_identities": sum(1 for i in sub if int(i) not in sets),
    }


def rank_videos(
    scores: np.ndarray,
    names: Sequence[str],
    identity_ids: Sequence[int],
    top: int = MAX_PER_LINE,
    *,
    block_elements: int = 1 << 22,
) -> dict[int, list[str]]:
    """Top-``top`` videos per identity by descending score.

    Ties are broken by video order (lower row first), so the result is
    deterministic. Works on blocks of identity columns with a partition: O(n) per
    identity plus a sort of the ``top`` winners.

    Parameters
    ----------
    scores : (n_videos, C) float array
        Score of each video for each identity column.
    names : (n_videos,) video names
    identity_ids : (C,) identity ID of each column
    top : int
        Videos kept per identity (at most ``n_videos``).
    block_elements : int
        Scores handled per block (bounds the temporary memory).

    Examples
    --------
    >>> rank_videos(np.array([[0.1, 0.9], [0.5, 0.2], [0.5, 0.3]]),
    ...             ["a", "b", "c"], [7, 9], top=2)
    {7: ['b', 'c'], 9: ['a', 'c']}
    """
    scores = np.asarray(scores)
    names = np.asarray(names, dtype=object)
    ids = [int(i) for i in identity_ids]
    if scores.ndim != 2:
        raise ValueError(f"scores must be 2-D (n_videos, n_identities), got shape {scores.shape}")
    n, C = scores.shape
    if len(names) != n or len(ids) != C:
        raise ValueError(
            f"scores {scores.shape} do not match {len(names)} names and {len(ids)} identity ids"
        )
    if len(set(ids)) != C:
        raise ValueError("identity_ids holds duplicates")
    if top < 1:
        raise ValueError(f"top must be >= 1, got {top}")
    dtype = scores.dtype if np.issubdtype(scores.dtype, np.floating) else np.float64
    if n == 0:
        return {i: [] for i in ids}
    k = min(top, n)
    out: dict[int, list[str]] = {}
    block = max(1, block_elements // n)
    for c0 in range(0, C, block):
        S = np.ascontiguousarray(scores[:, c0 : c0 + block].T, dtype=dtype)  # (b, n)
        if np.isnan(S).any():
            raise ValueError(f"scores hold NaN values (identity {ids[c0 + int(np.isnan(S).any(1).argmax())]})")
        order = _top_rows(S, k)
        for r, row in enumerate(order):
            out[ids[c0 + r]] = names[row].tolist()
    return out


def _top_rows(S: np.ndarray, k: int) -> np.ndarray:
    """Indices (b, k) of each row's k largest values, ties to the lower index."""
    b, n = S.shape
    neg = -S
    if k == n:
        return np.argsort(neg, axis=1, kind="stable")
    # k-th largest value per row; take everything above it and, among values equal
    # to it, the lowest indices — a partition alone would pick ties arbitrarily.
    kth = -np.partition(neg, k - 1, axis=1)[:, k - 1 : k]
    chosen = S >= kth
    tied = np.flatnonzero(chosen.sum(axis=1) > k)  # ties at the k-th value overflow
    if len(tied):
        sub, t = S[tied], kth[tied]
        above = sub > t
        equal = sub == t
        need = k - above.sum(axis=1, keepdims=True)
        chosen[tied] = above | (equal & (np.cumsum(equal, axis=1) <= need))
    cols = np.nonzero(chosen)[1].reshape(b, k)  # row-major: ascending index per row
    vals = np.take_along_axis(neg, cols, axis=1)
    return np.take_along_axis(cols, np.argsort(vals, axis=1, kind="stable"), axis=1)


def confusions(
    gt,
    submission: Mapping[int, Sequence[str]],
    video_identity: Mapping[str, int],
):
    """Intruders in each identity's ranked list: the wrong videos and where they sit.

    Parameters
    ----------
    gt : GroundTruth or dict[int, iterable of str]
    submission : dict[int, sequence of str]
        Only lines of ground-truth identities are examined.
    video_identity : dict[str, int]
        True identity of every labelled video (any split); a video absent from it
        is a distractor (0).

    Returns
    -------
    pandas.DataFrame with columns ``identity``, ``rank`` (1-based, after
    de-duplication), ``video``, ``true_identity`` (0 = distractor), ``ap`` (the
    identity's AP), sorted by identity then rank.

    Examples
    --------
    >>> confusions({1: ["a", "b"]}, {1: ["a", "z", "c"]}, {"c": 2}).to_dict("list")
    {'identity': [1, 1], 'rank': [2, 3], 'video': ['z', 'c'], 'true_identity': [0, 2], 'ap': [0.5, 0.5]}
    """
    import pandas as pd

    sets = _gt_sets(gt)
    vid_id = {canonical_name(v): int(i) for v, i in video_identity.items()}
    rows: list[tuple[int, int, str, int, float]] = []
    for identity in sorted(int(i) for i in submission if int(i) in sets):
        videos = _dedupe(submission[identity])
        _check_line(identity, videos)
        rel = sets[identity]
        ap = _ap(videos, rel, len(rel))
        rows.extend(
            (identity, rank, v, vid_id.get(v, 0), ap)
            for rank, v in enumerate(videos, start=1)
            if v not in rel
        )
    df = pd.DataFrame(rows, columns=["identity", "rank", "video", "true_identity", "ap"])
    return df.astype({"identity": "int64", "rank": "int64", "true_identity": "int64", "ap": "float64"})
