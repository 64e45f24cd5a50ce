"""Class layout of the noise-aware method and its per-epoch relabelling rule.

Classes: ``C`` identities ``0..C-1``, ``K`` DBSCAN noise clusters ``C..C+K-1`` and
``C`` dynamic "shadow" noise classes ``C+K..2C+K-1`` (one per identity).
Clustered distractors keep their cluster class. Unclustered distractors start on a
random shadow class and, after every epoch, take the model's prediction: identity
``l`` maps to the shadow class of ``l``; a noise class (cluster or shadow) is kept.
Those dynamically labelled samples weigh ``ramp(epoch)`` in the loss.

Pure numpy, no torch: every rule here is tested on toy examples.
"""

from __future__ import annotations

import numpy as np

from core.errors import DataError


def noise_targets(cluster_labels: np.ndarray, n_identities: int) -> tuple[np.ndarray, np.ndarray]:
    """Initial class of each distractor from its DBSCAN label, before the random shadows.

    Parameters
    ----------
    cluster_labels : (n,) int, ``-1`` = unclustered, else ``0..K-1``
    n_identities : ``C``

    Returns
    -------
    targets : (n,) int64, ``C + k`` for clustered rows, ``-1`` for unclustered rows
    dynamic : (n,) bool, True for unclustered rows (their label changes every epoch)

    Examples
    --------
    >>> noise_targets(np.array([-1, 0, 2]), 3)
    (array([-1,  3,  5]), array([ True, False, False]))
    """
    cl = np.asarray(cluster_labels, dtype=np.int64)
    if cl.size and cl.min() < -1:
        raise DataError(f"noise cluster labels must be -1 or >= 0, got {int(cl.min())}")
    dynamic = cl < 0
    targets = np.where(dynamic, -1, cl + n_identities).astype(np.int64)
    return targets, dynamic


def compact_clusters(cluster_labels: np.ndarray) -> tuple[np.ndarray, int]:
    """Renumber cluster labels to ``0..K-1`` in order of first appearance; ``-1`` stays.

    A fold's training distractors hold only some of the clusters; compacting keeps
    every noise class trained.

    >>> compact_clusters(np.array([5, -1, 2, 5]))
    (array([ 0, -1,  1,  0]), 2)
    """
    cl = np.asarray(cluster_labels, dtype=np.int64)
    present = cl >= 0
    if not present.any():
        return np.full(cl.shape, -1, dtype=np.int64), 0
    uniq, first = np.unique(cl[present], return_index=True)
    order = np.argsort(first, kind="stable")          # by first appearance
    rank = np.empty(len(uniq), dtype=np.int64)
    rank[order] = np.arange(len(uniq))
    out = np.full(cl.shape, -1, dtype=np.int64)
    out[present] = rank[np.searchsorted(uniq, cl[present])]
    return out, int(len(uniq))


def random_shadow_labels(n: int, n_identities: int, n_clusters: int, *, rng: np.random.Generator) -> np.ndarray:
    """``n`` shadow classes drawn uniformly from ``C+K..2C+K-1``.

    >>> random_shadow_labels(4, 2, 1, rng=np.random.default_rng(0)).tolist()
    [4, 4, 4, 3]
    """
    return (n_identities + n_clusters + rng.integers(0, n_identities, size=n)).astype(np.int64)


def relabel_noise(predicted: np.ndarray, n_identities: int, n_clusters: int) -> np.ndarray:
    """New labels of dynamic noise samples from the model's argmax predictions.

    A prediction of identity ``l < C`` becomes shadow class ``C + K + l``; a prediction
    of a noise class (cluster ``C..C+K-1`` or shadow ``C+K..2C+K-1``) is kept.

    Parameters
    ----------
    predicted : (n,) int argmax over all ``2C + K`` classes
    n_identities, n_clusters : ``C`` and ``K``

    Examples
    --------
    >>> relabel_noise(np.array([0, 1, 2, 3, 4]), n_identities=2, n_clusters=1)
    array([3, 4, 2, 3, 4])
    """
    pred = np.asarray(predicted, dtype=np.int64)
    n_classes = 2 * n_identities + n_clusters
    if pred.size and (pred.min() < 0 or pred.max() >= n_classes):
        bad = pred[(pred < 0) | (pred >= n_classes)][0]
        raise DataError(f"predicted class {int(bad)} outside 0..{n_classes - 1}")
    return np.where(pred < n_identities, pred + n_identities + n_clusters, pred)


def shadow_weight(epoch: int, n_epochs: int, *, start: float = 0.1, end: float = 0.6) -> float:
    """Loss weight of dynamically labelled noise in ``epoch`` (0-based): linear ramp.

    ``start`` in the first epoch, ``end`` in the last; a single epoch uses ``start``.

    >>> [round(shadow_weight(e, 6), 2) for e in range(6)]
    [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]
    """
    if n_epochs < 1:
        raise ValueError(f"n_epochs must be >= 1, got {n_epochs}")
    if not 0 <= epoch < n_epochs:
        raise ValueError(f"epoch {epoch} outside 0..{n_epochs - 1}")
    if n_epochs == 1:
        return float(start)
    return float(start + (end - start) * epoch / (n_epochs - 1))
