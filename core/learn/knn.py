"""KNN baseline: score videos per identity from their nearest labelled videos.

Exact (no approximate index), vectorised, and blocked: a block of queries is
compared with every reference at a time, so memory stays bounded whatever the
number of queries and references (200k x 200k never builds the full matrix).

The per-identity top-k uses references sorted by identity and grouped into
*buckets* of identities with similar counts (slot widths 1, 2, 3, 4, 6, 8, 12, ...), so
each bucket is a dense ``(queries, identities, slots)`` array where one ``np.partition``
finds the k best of every identity at once; padding wastes at most a quarter of a bucket.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np

AGGREGATIONS = ("mean", "max", "sum")
#: Elements of one similarity block (float32): about 128 MB.
_BLOCK_ELEMS = 1 << 25

ProgressFn = Callable[[float, str], None]


# ----------------------------------------------------------------------------- validation

def _as_unit_rows(X: np.ndarray, what: str) -> np.ndarray:
    """float32 rows of unit norm (zero rows stay zero, like scikit-learn's cosine)."""
    X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"{what} must be a 2-D array (videos, dim), got shape {X.shape}")
    if not np.issubdtype(X.dtype, np.floating):
        raise TypeError(f"{what} must hold floats, got dtype {X.dtype}")
    if X.size and not np.isfinite(X).all():
        bad = int(np.flatnonzero(~np.isfinite(X).all(axis=1))[0])
        raise ValueError(f"{what} row {bad} holds NaN or inf")
    # Always normalise (rows "almost" unit, e.g. unit vectors stored as float16, are
    # off by ~1e-4 and flip rankings), in float64 blocks: no overflow for any finite
    # float32 row, the result rounded once to float32.
    out = np.empty(X.shape, dtype=np.float32)
    step = max(1, (1 << 22) // max(X.shape[1], 1))
    for s in range(0, X.shape[0], step):
        b = X[s:s + step].astype(np.float64)
        norms = np.sqrt(np.einsum("ij,ij->i", b, b))
        out[s:s + step] = b / np.where(norms > 0, norms, 1.0)[:, None]
    return out


def _check_common(Xq: np.ndarray, Xref: np.ndarray, k: int, block: int) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be an int >= 1, got {k!r}")
    if isinstance(block, bool) or not isinstance(block, (int, np.integer)) or block < 1:
        raise ValueError(f"block must be an int >= 1, got {block!r}")
    Xq = _as_unit_rows(Xq, "Xq")
    Xref = _as_unit_rows(Xref, "Xref")
    if Xq.shape[1] != Xref.shape[1]:
        raise ValueError(f"Xq has dimension {Xq.shape[1]} but Xref has {Xref.shape[1]}")
    return Xq, Xref


def _self_index(exclude_self: object, n_q: int, n_ref: int) -> np.ndarray | None:
    """Per query, the reference row to ignore (-1: none)."""
    if exclude_self is None or exclude_self is False:
        return None
    if exclude_self is True:
        if n_q != n_ref:
            raise ValueError(f"exclude_self=True needs Xq and Xref to be the same videos, "
                             f"got {n_q} queries and {n_ref} references")
        return np.arange(n_q, dtype=np.int64)
    idx = np.asarray(exclude_self)
    if idx.shape != (n_q,) or not np.issubdtype(idx.dtype, np.integer):
        raise ValueError(f"exclude_self must be True or an int array of shape ({n_q},) "
                         f"giving each query's reference row (-1 for none), got "
                         f"{idx.dtype} shape {idx.shape}")
    if idx.size and (idx.min() < -1 or idx.max() >= n_ref):
        raise ValueError(f"exclude_self holds reference row {int(idx.max() if idx.max() >= n_ref else idx.min())}, "
                         f"outside -1..{n_ref - 1}")
    return idx.astype(np.int64, copy=False)


def _query_block(block: int, width: int) -> int:
    return int(max(1, min(block, _BLOCK_ELEMS // max(width, 1))))


# ----------------------------------------------------------------------------- per-identity layout

@dataclass(frozen=True)
class _Bucket:
    classes: np.ndarray  # (C_b,) column indices into the output
    idx: np.ndarray      # (C_b, L) positions into the identity-sorted references
    pad: np.ndarray      # (C_b, L) True where idx is padding


def _identity_layout(ref_ids: np.ndarray, identity_ids: np.ndarray, n_ref: int
                     ) -> tuple[np.ndarray, np.ndarray, list[_Bucket], np.ndarray]:
    """Sort references by class; bucket classes by count.

    Returns ``(order, counts, buckets, pos_of_ref)``: ``order`` the original rows of
    the kept references in class order, ``counts`` per class, ``pos_of_ref`` maps an
    original reference row to its position in ``order`` (-1 when dropped).
    """
    ref_ids = np.asarray(ref_ids)
    if ref_ids.shape != (n_ref,):
        raise ValueError(f"ref_ids must have shape ({n_ref},), got {ref_ids.shape}")
    identity_ids = np.asarray(identity_ids)
    if identity_ids.ndim != 1:
        raise ValueError(f"identity_ids must be 1-D, got shape {identity_ids.shape}")
    if np.unique(identity_ids).size != identity_ids.size:
        raise ValueError("identity_ids holds duplicates")
    sorter = np.argsort(identity_ids, kind="stable")
    sorted_ids = identity_ids[sorter]
    pos = np.searchsorted(sorted_ids, ref_ids)
    pos_c = np.minimum(pos, max(sorted_ids.size - 1, 0))
    known = (pos < sorted_ids.size) & (sorted_ids[pos_c] == ref_ids) if sorted_ids.size else np.zeros(n_ref, bool)
    cls = np.where(known, sorter[pos_c], -1)  # class column of each reference
    kept = np.flatnonzero(known)
    order = kept[np.argsort(cls[kept], kind="stable")]
    C = identity_ids.size
    counts = np.bincount(cls[kept], minlength=C).astype(np.int64)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]) if C else np.zeros(0, np.int64)
    pos_of_ref = np.full(n_ref, -1, np.int64)
    pos_of_ref[order] = np.arange(order.size)

    # Slot widths 1, 2, 3, 4, 6, 8, 12, 16, ...: padding wastes at most a quarter of a bucket.
    sizes = np.unique(np.concatenate([1 << np.arange(40), 3 << np.arange(39)]))
    width = np.where(counts > 0, sizes[np.searchsorted(sizes, np.maximum(counts, 1))], 0)
    buckets = []
    for L in np.unique(width[width > 0]):
        classes = np.flatnonzero(width == L)
        slot = np.arange(L)
        idx = starts[classes][:, None] + slot[None, :]
        pad = slot[None, :] >= counts[classes][:, None]
        buckets.append(_Bucket(classes, np.where(pad, 0, idx), pad))
    return order, counts, buckets, pos_of_ref


def _aggregate(G: np.ndarray, k: int, agg: str) -> tuple[np.ndarray, np.ndarray]:
    """Top-k aggregate over the last axis of ``G`` (-inf = absent): (value, count)."""
    L = G.shape[-1]
    if agg == "max":
        top = G.max(axis=-1)
        return top, np.isfinite(top).astype(np.int64)
    if L > k:
        # Partitioning 2-D rows is ~30% faster than the last axis of a 3-D array.
        shape = G.shape[:-1]
        G = np.partition(G.reshape(-1, L), L - k, axis=1)[:, L - k:].reshape(*shape, k)
    finite = np.isfinite(G)
    total = np.where(finite, G, 0.0).sum(axis=-1, dtype=np.float64)
    return total, finite.sum(axis=-1)


# ----------------------------------------------------------------------------- public

def knn_scores(Xq: np.ndarray, Xref: np.ndarray, ref_ids: np.ndarray, identity_ids: np.ndarray,
               *, k: int = 5, agg: str = "mean", block: int = 4096,
               exclude_self: bool | np.ndarray | None = None,
               fill: float | None = None, progress: ProgressFn | None = None) -> np.ndarray:
    """Score every query video for every identity from its nearest reference videos.

    The score of query ``q`` for identity ``i`` aggregates the cosine similarities of
    ``q`` to its ``min(k, n_i)`` nearest reference videos *of identity i*: their mean
    (``agg="mean"``), the largest (``"max"``) or their sum (``"sum"``).
    The similarity matrix is never built whole (see :func:`iter_knn_scores`, which
    also avoids holding the dense ``(n_q, C)`` output).

    Parameters
    ----------
    Xq : (n_q, d) float array
        Query videos (pooled; rows are normalised if they are not unit already).
    Xref : (n_ref, d) float array
        Labelled reference videos.
    ref_ids : (n_ref,) int array
        1-based identity of each reference; references whose ID is not in
        ``identity_ids`` (e.g. 0 for distractors) are ignored.
    identity_ids : (C,) int array
        The identities to score; output column ``c`` is ``identity_ids[c]``.
    k : int, default 5
        Neighbours per identity.
    agg : {"mean", "max", "sum"}
    block : int, default 4096
        Most queries compared at once (lowered so one block stays near 128 MB).
    exclude_self : True or (n_q,) int array, optional
        Out-of-fold use: ``True`` when ``Xq`` and ``Xref`` are the same videos (the
        query's own row is skipped), or per query the reference row to skip (-1: none).
    fill : float, optional
        Score where an identity has no usable reference; default is the lowest score
        the aggregation can give (-1, or -k for ``"sum"``).
    progress : callable(fraction, message), optional

    Returns
    -------
    (n_q, C) float32

    Examples
    --------
    >>> Xref = np.array([[1, 0], [0, 1], [0.6, 0.8]], dtype=np.float32)
    >>> knn_scores(np.array([[1.0, 0.0]]), Xref, np.array([1, 2, 2]), np.array([1, 2]), k=1)
    array([[1. , 0.6]], dtype=float32)
    """
    n_q = np.asarray(Xq).shape[0] if np.ndim(Xq) == 2 else 0
    out = None
    for rows, scores in iter_knn_scores(Xq, Xref, ref_ids, identity_ids, k=k, agg=agg, block=block,
                                        exclude_self=exclude_self, fill=fill, progress=progress):
        if out is None:
            out = np.empty((n_q, scores.shape[1]), dtype=np.float32)
        out[rows] = scores
    if out is None:  # no query
        out = np.zeros((0, np.asarray(identity_ids).size), dtype=np.float32)
    return out


def iter_knn_scores(Xq: np.ndarray, Xref: np.ndarray, ref_ids: np.ndarray, identity_ids: np.ndarray,
                    *, k: int = 5, agg: str = "mean", block: int = 4096,
                    exclude_self: bool | np.ndarray | None = None, fill: float | None = None,
                    progress: ProgressFn | None = None) -> Iterator[tuple[slice, np.ndarray]]:
    """:func:`knn_scores` block by block: yields ``(rows slice, (b, C) float32 scores)``.

    Use it to fold scores into a running top-100 per identity without ever holding
    ``(n_q, C)`` (60k test videos x 10k identities would be 2.4 GB). Arguments as in
    :func:`knn_scores`; validation happens on the first ``next()``.

    Examples
    --------
    >>> Xref = np.array([[1, 0], [0, 1]], dtype=np.float32)
    >>> [(r, s.tolist()) for r, s in iter_knn_scores(Xref, Xref, [1, 2], [1, 2], block=1)]
    [(slice(0, 1, None), [[1.0, 0.0]]), (slice(1, 2, None), [[0.0, 1.0]])]
    """
    if agg not in AGGREGATIONS:
        raise ValueError(f"unknown agg {agg!r}; expected one of {', '.join(AGGREGATIONS)}")
    Xq, Xref = _check_common(Xq, Xref, k, block)
    n_q, n_ref = Xq.shape[0], Xref.shape[0]
    self_idx = _self_index(exclude_self, n_q, n_ref)
    order, counts, buckets, pos_of_ref = _identity_layout(ref_ids, identity_ids, n_ref)
    C = counts.size
    if fill is None:
        fill = -float(k) if agg == "sum" else -1.0
    R = Xref[order]  # identity-sorted references (a copy of the kept rows only)
    self_pos = None
    if self_idx is not None:  # -1 (no self) must not index the last reference
        self_pos = np.where(self_idx >= 0, pos_of_ref[np.maximum(self_idx, 0)], -1)
    width = sum(b.idx.size for b in buckets) + order.size
    step = _query_block(block, width)
    for s in range(0, n_q, step):
        e = min(s + step, n_q)
        out = np.full((e - s, C), fill, dtype=np.float32)
        if order.size:
            S = Xq[s:e] @ R.T  # (b, n_kept)
            if self_pos is not None:
                rows = np.flatnonzero(self_pos[s:e] >= 0)
                S[rows, self_pos[s:e][rows]] = -np.inf
            for b in buckets:
                G = S[:, b.idx]                # (b, C_b, L)
                G[:, b.pad] = -np.inf
                total, count = _aggregate(G, k, agg)
                del G
                val = total / np.maximum(count, 1) if agg == "mean" else total
                out[:, b.classes] = np.where(count > 0, val, fill)
            del S
        if progress is not None:
            progress(e / n_q, f"knn {e}/{n_q} videos")
        yield slice(s, e), out


def nearest_labelled(Xq: np.ndarray, Xref: np.ndarray, k: int = 10, *, block: int = 4096,
                     exclude_self: bool | np.ndarray | None = None,
                     progress: ProgressFn | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Global top-``k`` reference videos of each query, by cosine similarity.

    Returns ``(indices (n_q, k') int64, similarities (n_q, k') float32)`` sorted
    best first, with ``k' = min(k, n_ref)``; an excluded self slot that leaves fewer
    than ``k'`` candidates is filled with index -1 and similarity -inf.

    Examples
    --------
    >>> Xref = np.array([[1, 0], [0, 1], [0.6, 0.8]], dtype=np.float32)
    >>> idx, sim = nearest_labelled(np.array([[0.0, 1.0]]), Xref, k=2)
    >>> idx.tolist(), [round(float(v), 2) for v in sim[0]]
    ([[1, 2]], [1.0, 0.8])
    """
    Xq, Xref = _check_common(Xq, Xref, k, block)
    n_q, n_ref = Xq.shape[0], Xref.shape[0]
    self_idx = _self_index(exclude_self, n_q, n_ref)
    kk = min(k, n_ref)
    idx_out = np.full((n_q, kk), -1, dtype=np.int64)
    sim_out = np.full((n_q, kk), -np.inf, dtype=np.float32)
    if n_q == 0 or kk == 0:
        return idx_out, sim_out
    step = _query_block(block, n_ref)
    for s in range(0, n_q, step):
        e = min(s + step, n_q)
        S = Xq[s:e] @ Xref.T
        if self_idx is not None:
            rows = np.flatnonzero(self_idx[s:e] >= 0)
            S[rows, self_idx[s:e][rows]] = -np.inf
        if kk < n_ref:
            part = np.argpartition(S, n_ref - kk, axis=1)[:, n_ref - kk:]
        else:
            part = np.broadcast_to(np.arange(n_ref), (e - s, n_ref)).copy()
        vals = np.take_along_axis(S, part, axis=1)
        o = np.argsort(-vals, axis=1, kind="stable")
        idx_b = np.take_along_axis(part, o, axis=1)
        sim_b = np.take_along_axis(vals, o, axis=1)
        idx_b[~np.isfinite(sim_b)] = -1
        idx_out[s:e], sim_out[s:e] = idx_b, sim_b
        if progress is not None:
            progress(e / n_q, f"neighbours {e}/{n_q} videos")
    return idx_out, sim_out
