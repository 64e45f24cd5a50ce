"""Labelled videos whose ground-truth identity is probably wrong (cleanlab).

A run's out-of-fold scores are what each labelled video looks like to a model that
never saw its label; :func:`find_label_issues` hands them to
``cleanlab.filter.find_label_issues`` (confident learning) and returns the videos it
flags, most suspicious first, with the identity the run would give them instead.
Shown on the Errors page and by ``vidid issues RUN``.
"""

from __future__ import annotations

import os
import threading

import numpy as np
import pandas as pd

from core.errors import DataError
from core.runs.oof import OutOfFold

_CLEANLAB_LOCK = threading.Lock()

#: Columns of :func:`find_label_issues`'s table, in order.
ISSUE_COLUMNS = ("video", "given", "suggested", "given_prob", "suggested_prob", "quality")

#: Largest dense (videos x identities) float64 matrix handed to cleanlab. cleanlab's
#: confident learning needs it dense and copies it; at the 2019 size it is 101,885 x
#: 10,000 = 7.6 GiB, and the dashboard that asked for it was killed for memory.
DENSE_BUDGET_BYTES = 1 << 30

#: ``DataFrame.attrs["method"]`` of each way the table can be made.
METHOD_CLEANLAB = "cleanlab"
METHOD_SPARSE = "predicted_neq_given"


def oof_pred_probs(rs: OutOfFold) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Dense (n, C) out-of-fold probabilities of the scored labelled videos.

    The run stores each video's top-k identities only; the others get 0 and every row
    is renormalised to sum to 1 (KNN similarities are clipped at 0 first). The noise
    mass of the noise method is left out: the question is *which identity*.

    Returns
    -------
    rows : (m,) rows of ``rs`` used (scored, true identity among the run's identities)
    labels : (m,) class index of each row's given identity
    pred_probs : (m, C) float64

    Examples
    --------
    >>> from core.runs.oof import scores_from_arrays
    >>> rs = scores_from_arrays({"names": np.array(["a", "b", "c"]), "identity_ids": np.array([5, 7]),
    ...     "ids": np.array([5, 0, 7]), "scores": np.array([[.6, .2], [.5, .5], [.3, .1]])})
    >>> rows, labels, P = oof_pred_probs(rs)
    >>> rows.tolist(), labels.tolist(), P.round(2).tolist()
    ([0, 2], [0, 1], [[0.75, 0.25], [0.75, 0.25]])
    """
    rows, labels = _labelled_rows(rs)
    C = rs.n_identities
    P = np.zeros((len(rows), C), dtype=np.float64)
    cls = rs.classes[rows]
    val = np.clip(rs.scores[rows].astype(np.float64), 0.0, None)
    ok = cls >= 0
    r = np.broadcast_to(np.arange(len(rows))[:, None], cls.shape)
    P[r[ok], cls[ok]] = val[ok]
    total = P.sum(axis=1, keepdims=True)
    empty = total[:, 0] <= 0
    P[empty] = 1.0 / C  # nothing known: uniform
    total[empty] = 1.0
    P /= total
    return rows, labels, P


def _labelled_rows(rs: OutOfFold) -> tuple[np.ndarray, np.ndarray]:
    """Rows of the scored videos whose true identity is one of the run's, and its class index."""
    if rs.truth is None:
        raise DataError(f"{rs.source}.npz: holds no true identities ('ids'); cannot look for label issues")
    class_of = {int(i): c for c, i in enumerate(rs.identity_ids.tolist())}
    truth = rs.truth
    known = np.fromiter((int(t) in class_of for t in truth.tolist()), bool, count=len(truth))
    rows = np.flatnonzero(rs.scored & (truth > 0) & known)
    labels = np.fromiter((class_of[int(t)] for t in truth[rows].tolist()), np.int64, count=len(rows))
    return rows, labels


def find_label_issues(rs: OutOfFold, *, filter_by: str = "prune_by_noise_rate") -> pd.DataFrame:
    """Labelled videos cleanlab flags as probably mislabelled, most suspicious first.

    Parameters
    ----------
    rs : a run's out-of-fold scores (:func:`core.runs.oof.load_out_of_fold`)
    filter_by : cleanlab's ``filter_by`` (``prune_by_noise_rate``, ``prune_by_class``,
        ``both``, ``confident_learning``, ``predicted_neq_given``)

    Returns
    -------
    DataFrame with :data:`ISSUE_COLUMNS`: ``video``, ``given`` (its identity in the
    ground truth), ``suggested`` (the identity the run gives it), ``given_prob`` and
    ``suggested_prob`` (out-of-fold probabilities), ``quality`` (cleanlab's
    self-confidence label quality; lower is more suspicious).

    Examples
    --------
    >>> issues = find_label_issues(load_out_of_fold(run_dir))  # doctest: +SKIP
    >>> issues.head(3)  # doctest: +SKIP
    """
    from cleanlab.filter import find_label_issues as _cleanlab_find
    from cleanlab.rank import get_label_quality_scores

    if dense_bytes(rs) > DENSE_BUDGET_BYTES:
        return sparse_label_issues(rs)
    rows, labels, P = oof_pred_probs(rs)
    if len(rows) < 2 or P.shape[1] < 2:
        return pd.DataFrame(columns=list(ISSUE_COLUMNS))
    import warnings

    # n_jobs=1: cleanlab's default forks a multiprocessing pool (one process per physical
    # core); forked from a threaded process (the dashboard's server, torch's OpenMP pool)
    # a child can deadlock on a lock held by another thread -- the Errors page then
    # never finishes. cleanlab keeps its per-class inputs in module globals, so calls
    # from two threads (two dashboard sessions) are serialised.
    with _CLEANLAB_LOCK, warnings.catch_warnings():  # few videos per identity: cleanlab warns
        warnings.simplefilter("ignore")
        ranked = _cleanlab_find(labels, P, filter_by=filter_by, n_jobs=1,
                                return_indices_ranked_by="self_confidence")
        quality = get_label_quality_scores(labels, P, method="self_confidence")
    ranked = np.asarray(ranked, dtype=np.int64)
    best = P.argmax(axis=1)
    return _table(rs, rows, labels, best, P[np.arange(len(rows)), labels],
                  P[np.arange(len(rows)), best], quality, ranked, METHOD_CLEANLAB)


def dense_bytes(rs: OutOfFold) -> int:
    """Bytes of the dense float64 matrix :func:`oof_pred_probs` would build (an upper bound)."""
    return int(rs.scored.sum()) * int(rs.n_identities) * 8


def sparse_label_issues(rs: OutOfFold) -> pd.DataFrame:
    """Labelled videos whose most probable identity is not their given one, from the stored top-k.

    What cleanlab's ``filter_by="predicted_neq_given"`` flags, ranked by self-confidence
    (the probability of the given identity, lowest first), but computed from the top-k
    without the dense matrix: memory O(videos x k). The probabilities are those of
    :func:`oof_pred_probs` (top-k renormalised; a row with nothing stored is uniform,
    and its arg-max is the first identity). ``attrs["method"]`` is :data:`METHOD_SPARSE`.

    >>> from core.runs.oof import scores_from_arrays
    >>> rs = scores_from_arrays({"names": np.array(["a", "b", "c"]), "identity_ids": np.array([5, 7]),
    ...     "ids": np.array([5, 7, 7]), "scores": np.array([[.6, .2], [.5, .1], [.3, .1]])})
    >>> sparse_label_issues(rs)["video"].tolist()  # b and c look like identity 5
    ['b', 'c']
    """
    rows, labels = _labelled_rows(rs)
    C = rs.n_identities
    cls = rs.classes[rows].astype(np.int64)
    val = np.clip(rs.scores[rows].astype(np.float64), 0.0, None)
    val[cls < 0] = 0.0
    total = val.sum(axis=1)
    empty = total <= 0
    P = val / np.where(empty, 1.0, total)[:, None]
    given = np.where(cls == labels[:, None], P, 0.0).sum(axis=1)
    given[empty] = 1.0 / C
    # the arg-max over every identity: the lowest class index among the largest values
    top = P.max(axis=1, keepdims=True)
    best = np.where((P == top) & (cls >= 0), cls, np.iinfo(np.int64).max).min(axis=1)
    best_prob = top[:, 0]
    best[empty], best_prob[empty] = 0, 1.0 / C
    flagged = np.flatnonzero(best != labels)
    ranked = flagged[np.argsort(given[flagged], kind="stable")]
    return _table(rs, rows, labels, best, given, best_prob, given, ranked, METHOD_SPARSE)


def _table(rs: OutOfFold, rows, labels, best, given_prob, best_prob, quality, ranked,
           method: str) -> pd.DataFrame:
    ids = rs.identity_ids
    df = pd.DataFrame({
        "video": rs.names[rows[ranked]].astype(str),
        "given": ids[labels[ranked]].astype(np.int64),
        "suggested": ids[best[ranked]].astype(np.int64),
        "given_prob": np.asarray(given_prob)[ranked],
        "suggested_prob": np.asarray(best_prob)[ranked],
        "quality": np.asarray(quality)[ranked],
    }, columns=list(ISSUE_COLUMNS))
    df.attrs["method"] = method
    return df


def run_label_issues(run_dir: str | os.PathLike, **kwargs) -> pd.DataFrame:
    """:func:`find_label_issues` of the run at ``run_dir`` (its ``oof.npz``).

    >>> run_label_issues("/nonexistent")  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    core.errors.DataError: /nonexistent: no such run directory
    """
    from core.runs.oof import load_out_of_fold
    from core.runs.run import Run

    run = Run.open(run_dir)
    rs = load_out_of_fold(run.path)
    if rs is None:
        raise DataError(f"{run.path}: no out-of-fold scores (oof.npz); is the run complete?")
    return find_label_issues(rs, **kwargs)


__all__ = ["DENSE_BUDGET_BYTES", "ISSUE_COLUMNS", "METHOD_CLEANLAB", "METHOD_SPARSE", "dense_bytes",
           "find_label_issues", "oof_pred_probs", "run_label_issues", "sparse_label_issues"]
