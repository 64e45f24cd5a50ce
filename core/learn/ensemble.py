"""Combining scores: fold ensembles, bounded top-k storage, per-identity top lists.

Score matrices at the 2019 scale (60k videos x 10k identities) do not fit in memory
as dense float32 comfortably, so callers work in row blocks: each block is reduced
to its top ``k`` classes per video (:func:`top_k_per_row`) and folded into the
running top-``n`` videos per identity (:class:`TopPerIdentity`).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

ENSEMBLES = ("sum", "map_weighted")


def fold_weights(val_maps: Sequence[float], how: str = "sum") -> np.ndarray:
    """Normalised weights of fold models: equal (``"sum"``) or proportional to val mAP.

    >>> fold_weights([0.5, 0.7, 0.8], "map_weighted").round(3).tolist()
    [0.25, 0.35, 0.4]
    """
    v = np.asarray(val_maps, dtype=np.float64)
    if how == "sum":
        w = np.ones_like(v)
    elif how == "map_weighted":
        w = np.clip(v, 0, None)
        if not w.sum() > 0:
            w = np.ones_like(v)
    else:
        raise ValueError(f"unknown ensemble {how!r}; choose one of {', '.join(ENSEMBLES)}")
    return w / w.sum()


def top_k_per_row(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best columns of each row, best first.

    Returns
    -------
    idx : (n, k') int32 column indices, ``k' = min(k, n_cols)``
    val : (n, k') float32 their scores

    >>> top_k_per_row(np.array([[0.1, 0.5, 0.2]]), 2)
    (array([[1, 2]], dtype=int32), array([[0.5, 0.2]], dtype=float32))
    """
    scores = np.asarray(scores)
    k = min(int(k), scores.shape[1])
    if k <= 0:
        return np.zeros((len(scores), 0), np.int32), np.zeros((len(scores), 0), np.float32)
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    vals = np.take_along_axis(scores, part, axis=1)
    order = np.argsort(-vals, axis=1, kind="stable")
    idx = np.take_along_axis(part, order, axis=1)
    return idx.astype(np.int32), np.take_along_axis(vals, order, axis=1).astype(np.float32)


class TopPerIdentity:
    """Running top-``n`` rows per column over score blocks (bounded memory).

    Examples
    --------
    >>> acc = TopPerIdentity(n_identities=2, top=2)
    >>> acc.update(np.array([[0.9, 0.1], [0.2, 0.8]]), np.array([0, 1]))
    >>> acc.update(np.array([[0.5, 0.95]]), np.array([2]))
    >>> acc.ranking(np.array(["a", "b", "c"], dtype=object), np.array([7, 9]))
    {7: ['a', 'c'], 9: ['c', 'b']}
    """

    def __init__(self, n_identities: int, top: int = 100) -> None:
        self.top = int(top)
        self.scores = np.full((0, n_identities), -np.inf, dtype=np.float64)
        self.rows = np.zeros((0, n_identities), dtype=np.int64)

    def update(self, scores: np.ndarray, rows: np.ndarray) -> None:
        """Fold in a block: ``scores`` (m, C) for dataset rows ``rows`` (m,)."""
        scores = np.asarray(scores, dtype=np.float64)
        rows = np.asarray(rows, dtype=np.int64)
        s = np.concatenate([self.scores, scores])
        r = np.concatenate([self.rows, np.broadcast_to(rows[:, None], scores.shape)])
        if len(s) > self.top:
            keep = np.argpartition(-s, self.top - 1, axis=0)[: self.top]
            # Scores equal to a column's top-th value may overflow it: the partition
            # would pick among them arbitrarily; keep the lowest rows instead.
            kth = np.take_along_axis(s, keep, axis=0).min(axis=0)
            tied = np.flatnonzero((s >= kth).sum(axis=0) > self.top)
            if len(tied):
                st, rt, kt = s[:, tied], r[:, tied], kth[tied]
                above, equal = st > kt, st == kt
                need = self.top - above.sum(axis=0)
                by_row = np.sort(np.where(equal, rt, np.iinfo(np.int64).max), axis=0)
                last_row = np.take_along_axis(by_row, (need - 1)[None, :], axis=0)
                chosen = above | (equal & (rt <= last_row))
                keep[:, tied] = np.nonzero(chosen.T)[1].reshape(len(tied), self.top).T
            s = np.take_along_axis(s, keep, axis=0)
            r = np.take_along_axis(r, keep, axis=0)
        self.scores, self.rows = s, r

    def ranking(self, names: np.ndarray, identity_ids: np.ndarray) -> dict[int, list[str]]:
        """``{identity ID: [video names, best first]}`` (ties: lower row first)."""
        order = np.lexsort((self.rows, -self.scores), axis=0)
        rows = np.take_along_axis(self.rows, order, axis=0)
        valid = np.isfinite(np.take_along_axis(self.scores, order, axis=0))
        names = np.asarray(names, dtype=object)
        return {
            int(i): [str(n) for n in names[rows[valid[:, c], c]]]
            for c, i in enumerate(np.asarray(identity_ids))
        }
