"""Label issues (cleanlab over out-of-fold scores): planted label noise is found."""

from __future__ import annotations

import numpy as np
import pytest

from core.runs.label_issues import ISSUE_COLUMNS, find_label_issues, oof_pred_probs
from core.runs.oof import scores_from_arrays


def _planted(n_ids: int = 10, per_id: int = 30, flips: int = 12, seed: int = 0):
    """OOF scores of a model that is right about every video; ``flips`` labels are then flipped."""
    rng = np.random.default_rng(seed)
    truth = np.repeat(np.arange(1, n_ids + 1), per_id)
    n = len(truth)
    P = rng.dirichlet(np.full(n_ids, 0.3), size=n) * 0.15
    P[np.arange(n), truth - 1] += 0.85
    given = truth.copy()
    flipped = rng.choice(n, flips, replace=False)
    given[flipped] = (truth[flipped] % n_ids) + 1  # another identity
    names = np.array([f"v{i:04d}" for i in range(n)])
    rs = scores_from_arrays({"names": names, "identity_ids": np.arange(1, n_ids + 1),
                             "ids": given, "scores": P.astype(np.float32)})
    return rs, set(names[flipped].tolist()), truth


def test_planted_label_noise_is_found():
    rs, flipped, truth = _planted()
    issues = find_label_issues(rs)
    assert list(issues.columns) == list(ISSUE_COLUMNS)
    found = set(issues["video"]) & flipped
    assert len(found) >= 0.7 * len(flipped)  # most of the planted noise
    assert len(issues) <= 2 * len(flipped)  # few clean videos flagged
    # the suggestion is the true identity
    row = issues[issues["video"].isin(flipped)].iloc[0]
    assert row["suggested"] == truth[int(row["video"][1:])]
    assert issues["quality"].is_monotonic_increasing  # most suspicious first


@pytest.mark.parametrize("filter_by", ["prune_by_noise_rate", "prune_by_class", "both"])
def test_no_process_is_forked(monkeypatch, filter_by):
    """cleanlab's default forks a pool per call; forked from the dashboard's threaded
    server a child can deadlock (the Errors page then never ends): vidid stays in-process."""
    import multiprocessing

    def refuse(*a, **k):
        raise AssertionError("cleanlab started a process pool")

    monkeypatch.setattr(multiprocessing, "Pool", refuse)
    rs, flipped, _ = _planted(n_ids=40, per_id=30, flips=40)
    issues = find_label_issues(rs, filter_by=filter_by)
    assert len(set(issues["video"]) & flipped) >= 0.7 * len(flipped)


@pytest.mark.parametrize("k", [3, 12])
def test_sparse_path_matches_cleanlab_predicted_neq_given(monkeypatch, k):
    """Over the memory budget, the table comes from the stored top-k without the dense
    matrix: the same videos, order and numbers as cleanlab's predicted_neq_given on it."""
    import core.runs.label_issues as li
    from cleanlab.filter import find_label_issues as cleanlab_find

    rs, flipped, _ = _planted(n_ids=12, per_id=20, flips=15, seed=3)
    top_class = rs.classes[:, :k].astype(np.int32).copy()
    top_score = rs.scores[:, :k].astype(np.float32).copy()
    top_class[5], top_score[5] = -1, 0.0  # a video with nothing stored: uniform
    rs_k = scores_from_arrays({"names": rs.names, "identity_ids": rs.identity_ids, "ids": rs.truth,
                               "top_class": top_class, "top_score": top_score})
    rows, labels, P = oof_pred_probs(rs_k)
    want = cleanlab_find(labels, P, filter_by="predicted_neq_given", n_jobs=1,
                         return_indices_ranked_by="self_confidence")
    monkeypatch.setattr(li, "DENSE_BUDGET_BYTES", 0)
    got = find_label_issues(rs_k)
    assert got.attrs["method"] == li.METHOD_SPARSE
    # the same videos; cleanlab's sort is not stable among equal confidences (given
    # identity outside the top k: 0), vidid keeps row order there
    assert sorted(got["video"]) == sorted(rs_k.names[rows[want]].astype(str))
    assert got["quality"].is_monotonic_increasing
    by_video = {v: i for i, v in enumerate(rs_k.names[rows].astype(str))}
    at = np.array([by_video[v] for v in got["video"]])
    np.testing.assert_allclose(got["given_prob"], P[at, labels[at]], rtol=1e-12)
    np.testing.assert_allclose(got["suggested_prob"], P[at].max(axis=1), rtol=1e-12)
    assert (got["suggested"].to_numpy() == rs_k.identity_ids[P[at].argmax(axis=1)]).all()
    np.testing.assert_allclose(np.sort(got["given_prob"]), np.sort(P[want, labels[want]]), rtol=1e-12)
    assert len(set(got["video"]) & flipped) >= 0.7 * len(flipped)
    monkeypatch.setattr(li, "DENSE_BUDGET_BYTES", 1 << 30)  # small enough: cleanlab itself
    assert find_label_issues(rs_k).attrs["method"] == li.METHOD_CLEANLAB


def test_planted_noise_in_a_real_knn_run(tiny_demo, tmp_path):
    """Flip some labels of the tiny dataset's train split, train KNN, find them."""
    from core.features.dataset import concat, open_split
    from core.io.formats import read_ground_truth, write_ground_truth
    from core.learn import TrainConfig, fit
    from core.runs import Run, new_run_dir
    from core.runs.label_issues import run_label_issues

    gt = read_ground_truth(tiny_demo / "train_gt.txt")
    labels = dict(gt.labels)
    rng = np.random.default_rng(1)
    names = sorted(labels)
    ids = sorted(set(labels.values()))
    flipped = rng.choice(len(names), 8, replace=False)
    for i in flipped:
        v = names[i]
        labels[v] = ids[(ids.index(labels[v]) + 1 + int(rng.integers(len(ids) - 1))) % len(ids)]
    noisy = tmp_path / "train_gt.txt"
    write_ground_truth(noisy, labels)
    data = concat([open_split(tiny_demo / "face_train.pickle", noisy, split="train"),
                   open_split(tiny_demo / "face_val.pickle", tiny_demo / "val_gt.txt", split="val")])
    cfg = TrainConfig(method="knn", folds=3, views=False)
    run = Run.create(new_run_dir(tmp_path / "runs", "knn"), cfg.to_dict())
    fit(cfg, data, run)
    issues = run_label_issues(run.path)
    planted = {names[i] for i in flipped}
    assert len(set(issues["video"]) & planted) >= 6, issues.head(12)


def test_no_truth_is_a_clear_error():
    rs = scores_from_arrays({"names": np.array(["a"]), "identity_ids": np.array([1, 2]),
                             "scores": np.array([[0.5, 0.5]])})
    with pytest.raises(ValueError, match="no true identities"):
        oof_pred_probs(rs)
