"""Cross-validation folds: stratified by identity for labelled videos, plain for distractors."""

from __future__ import annotations

import numpy as np

from core.errors import DataError


def stratified_folds(ids: np.ndarray, n_folds: int, *, seed: int = 0) -> np.ndarray:
    """Fold of each labelled video, stratified by identity.

    The videos are ordered by identity (identities in random order, videos shuffled
    within each) and dealt round-robin over the folds, so each identity's count per
    fold differs by at most one (the property of
    ``sklearn.model_selection.StratifiedKFold``) and so do the fold sizes. An identity
    with a single video cannot be both trained and held out: its video gets fold
    ``-1`` (always in training, never validated).

    Parameters
    ----------
    ids : (n,) int identity per labelled video
    n_folds : number of folds, >= 2
    seed : random seed

    Returns
    -------
    (n,) int64 fold in ``0..n_folds-1``, or ``-1``.

    Examples
    --------
    >>> stratified_folds(np.array([1, 1, 1, 1, 2, 2, 3]), 2, seed=0).tolist()
    [1, 0, 0, 1, 0, 1, -1]
    """
    ids = np.asarray(ids)
    if n_folds < 2:
        raise DataError(f"folds must be >= 2, got {n_folds}")
    n = len(ids)
    rng = np.random.default_rng(seed)
    uniq, inv, counts = np.unique(ids, return_inverse=True, return_counts=True)
    single = counts[inv] < 2
    id_rank = rng.permutation(len(uniq))
    # Deal (identity in random order, video in random order) round-robin; singletons
    # go last so they do not unbalance the dealt folds.
    order = np.lexsort((rng.random(n), id_rank[inv], single))
    folds = np.empty(n, dtype=np.int64)
    folds[order] = np.arange(n) % n_folds
    folds[single] = -1
    return folds.astype(np.int64)


def random_folds(n: int, n_folds: int, *, seed: int = 0) -> np.ndarray:
    """Fold of each of ``n`` distractors: a random, balanced assignment.

    >>> np.bincount(random_folds(10, 3, seed=1)).tolist()
    [4, 3, 3]
    """
    if n_folds < 2:
        raise DataError(f"folds must be >= 2, got {n_folds}")
    rng = np.random.default_rng(seed)
    folds = np.empty(n, dtype=np.int64)
    folds[rng.permutation(n)] = np.arange(n) % n_folds
    return folds
