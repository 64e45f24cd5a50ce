"""Compare runs: per-identity AP of two runs, and the videos one gets right and the other wrong.

Plain functions over plain values (the dashboard's Compare runs page reads the runs
through its cache and calls these): :func:`compare_identity_ap` joins two
``{identity: AP}`` maps; :func:`disagreements` joins two out-of-fold outcome tables
(:meth:`core.runs.oof.OutOfFold.outcome_table`, the one "wrong" rule).
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import pandas as pd

#: AP differences below this are "same" (rounding noise of the metric).
SAME_AP = 1e-9


def compare_identity_ap(ap_a: Mapping[int, float], ap_b: Mapping[int, float], *,
                        names: tuple[str, str] = ("A", "B")) -> pd.DataFrame:
    """One row per identity scored by both runs: AP in each, their difference, the change.

    Returns
    -------
    DataFrame with columns ``identity``, ``names[0]``, ``names[1]``, ``delta`` (B - A) and
    ``change`` (``gained`` / ``lost`` / ``same``), largest change first.

    Examples
    --------
    >>> compare_identity_ap({1: 0.5, 2: 1.0, 3: 0.2}, {1: 0.9, 2: 1.0, 4: 0.3})
       identity    A    B  delta  change
    0         1  0.5  0.9    0.4  gained
    1         2  1.0  1.0    0.0    same
    """
    a_name, b_name = names
    common = sorted(set(map(int, ap_a)) & set(map(int, ap_b)))
    a = np.array([float(ap_a[i]) for i in common])
    b = np.array([float(ap_b[i]) for i in common])
    delta = b - a
    change = np.where(delta > SAME_AP, "gained", np.where(delta < -SAME_AP, "lost", "same"))
    df = pd.DataFrame({"identity": np.asarray(common, dtype=np.int64), a_name: a, b_name: b,
                       "delta": delta, "change": change})
    order = np.lexsort((df["identity"].to_numpy(), -np.abs(delta)))
    return df.iloc[order].reset_index(drop=True)


def disagreements(outcomes_a: pd.DataFrame, outcomes_b: pd.DataFrame, *,
                  names: tuple[str, str] = ("A", "B")) -> pd.DataFrame:
    """Labelled videos one run gets right and the other wrong.

    Parameters
    ----------
    outcomes_a, outcomes_b : DataFrame
        Index ``video``; columns ``outcome``, ``predicted``, ``true``
        (:meth:`core.runs.oof.OutOfFold.outcome_table`).

    Returns
    -------
    DataFrame with ``video``, ``true``, ``predicted by <A>``, ``predicted by <B>`` and
    ``right in`` (the run that gets it right), sorted by ``right in`` then video.

    Examples
    --------
    >>> a = pd.DataFrame({"outcome": ["correct", "wrong", "correct"], "predicted": [1, 3, 2],
    ...                   "true": [1, 2, 2]}, index=pd.Index(["x", "y", "z"], name="video"))
    >>> b = pd.DataFrame({"outcome": ["wrong", "correct", "correct"], "predicted": [0, 2, 2],
    ...                   "true": [1, 2, 2]}, index=pd.Index(["x", "y", "z"], name="video"))
    >>> disagreements(a, b)[["video", "right in"]].values.tolist()
    [['x', 'A'], ['y', 'B']]
    """
    a_name, b_name = names
    joined = outcomes_a.add_suffix("_a").join(outcomes_b.add_suffix("_b"), how="inner")
    a_ok = joined["outcome_a"] == "correct"
    b_ok = joined["outcome_b"] == "correct"
    both_scored = joined["outcome_a"].isin(["correct", "wrong"]) & joined["outcome_b"].isin(["correct", "wrong"])
    diff = joined[both_scored & (a_ok != b_ok)]
    out = pd.DataFrame({
        "video": diff.index.astype(str),
        "true": diff["true_a"].to_numpy(np.int64),
        f"predicted by {a_name}": diff["predicted_a"].to_numpy(np.int64),
        f"predicted by {b_name}": diff["predicted_b"].to_numpy(np.int64),
        "right in": np.where(a_ok[diff.index], a_name, b_name),
    })
    return out.sort_values(["right in", "video"], kind="stable").reset_index(drop=True)


__all__ = ["compare_identity_ap", "disagreements"]
