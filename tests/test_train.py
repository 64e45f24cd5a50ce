"""Noise-aware training: relabelling rule, ramp, folds, ensembles, fit / predict end to end."""

from __future__ import annotations

import numpy as np
import pytest

from core.learn.ensemble import TopPerIdentity, fold_weights, top_k_per_row
from core.errors import DataError
from core.learn.metrics import rank_videos
from core.learn.noise_labels import (compact_clusters, noise_targets, random_shadow_labels,
                               relabel_noise, shadow_weight)
from core.learn.folds import random_folds, stratified_folds

# --------------------------------------------------------------------- relabelling rule


def test_relabel_toy_example():
    # C = 3 identities (0..2), K = 2 clusters (3, 4), shadows 5..7
    pred = np.array([0, 2, 1, 3, 4, 5, 7, 6])
    out = relabel_noise(pred, n_identities=3, n_clusters=2)
    # identity l -> shadow C + K + l; cluster and shadow predictions kept
    assert out.tolist() == [5, 7, 6, 3, 4, 5, 7, 6]


def test_relabel_without_clusters_and_range_check():
    assert relabel_noise(np.array([1, 0, 2, 3]), 2, 0).tolist() == [3, 2, 2, 3]
    with pytest.raises(DataError, match="outside 0..4"):
        relabel_noise(np.array([5]), 2, 1)


def test_noise_targets_and_random_shadows():
    targets, dynamic = noise_targets(np.array([-1, 0, 1, -1, 0]), n_identities=4)
    assert targets.tolist() == [-1, 4, 5, -1, 4]
    assert dynamic.tolist() == [True, False, False, True, False]
    shadows = random_shadow_labels(1000, 4, 2, rng=np.random.default_rng(1))
    assert set(shadows.tolist()) == {6, 7, 8, 9}  # C + K .. 2C + K - 1, all reached


def test_compact_clusters_keeps_grouping():
    cl, K = compact_clusters(np.array([7, -1, 3, 7, 9, 3]))
    assert K == 3 and cl.tolist() == [0, -1, 1, 0, 2, 1]
    assert compact_clusters(np.array([-1, -1]))[1] == 0


def test_shadow_weight_ramp():
    w = [shadow_weight(e, 11) for e in range(11)]
    assert w[0] == pytest.approx(0.1) and w[-1] == pytest.approx(0.6)
    np.testing.assert_allclose(np.diff(w), 0.05)  # linear
    assert shadow_weight(0, 1) == 0.1
    assert shadow_weight(3, 4, start=0.2, end=0.8) == pytest.approx(0.8)
    with pytest.raises(ValueError):
        shadow_weight(4, 4)


# --------------------------------------------------------------------- folds


@pytest.mark.filterwarnings("ignore:The least populated class")
def test_stratified_folds_match_sklearn_stratification():
    from sklearn.model_selection import StratifiedKFold

    rng = np.random.default_rng(0)
    ids = np.repeat(np.arange(1, 31), rng.integers(2, 14, 30))
    folds = stratified_folds(ids, 5, seed=3)
    sk = np.empty(len(ids), int)
    for k, (_, test) in enumerate(StratifiedKFold(5, shuffle=True, random_state=0).split(ids, ids)):
        sk[test] = k
    for i in np.unique(ids):
        mine = np.bincount(folds[ids == i], minlength=5)
        ref = np.bincount(sk[ids == i], minlength=5)
        assert mine.max() - mine.min() <= 1
        assert sorted(mine) == sorted(ref)  # same per-fold counts as sklearn's split
    sizes = np.bincount(folds)
    assert sizes.max() - sizes.min() <= 0.1 * sizes.mean()
    # every identity stays trainable in every fold
    for k in range(5):
        assert set(ids[folds != k]) == set(ids)


def test_stratified_folds_singletons_always_train():
    ids = np.array([1, 1, 1, 2, 3, 3])
    folds = stratified_folds(ids, 4, seed=0)
    assert folds[3] == -1 and (folds[ids != 2] >= 0).all()
    assert np.array_equal(folds, stratified_folds(ids, 4, seed=0))  # deterministic
    with pytest.raises(DataError):
        stratified_folds(ids, 1)


def test_random_folds_balanced_permutation():
    f = random_folds(103, 5, seed=2)
    assert np.bincount(f).tolist() == [21, 21, 21, 20, 20]
    assert not np.array_equal(f, random_folds(103, 5, seed=3))


# --------------------------------------------------------------------- ensemble helpers


def test_top_per_identity_blocks_equal_dense_ranking():
    rng = np.random.default_rng(0)
    S = rng.random((500, 7)).astype(np.float32)
    names = np.array([f"v{i}" for i in range(500)], dtype=object)
    ids = np.arange(10, 17)
    acc = TopPerIdentity(7, top=100)
    for a in range(0, 500, 64):
        acc.update(S[a:a + 64], np.arange(a, min(a + 64, 500)))
    assert acc.ranking(names, ids) == rank_videos(S, names, ids, top=100)


def test_top_per_identity_ties_keep_lower_rows_whatever_the_block_order():
    # regression: the partition kept an arbitrary row among scores tied at the cut
    rng = np.random.default_rng(3)
    S = rng.integers(0, 4, size=(300, 5)).astype(np.float32)  # heavy ties everywhere
    names = np.array([f"v{i}" for i in range(300)], dtype=object)
    ids = np.arange(1, 6)
    order = rng.permutation(300)  # blocks arrive out of row order (like CV folds)
    acc = TopPerIdentity(5, top=20)
    for a in range(0, 300, 37):
        rows = np.sort(order[a:a + 37])
        acc.update(S[rows], rows)
    assert acc.ranking(names, ids) == rank_videos(S, names, ids, top=20)
    acc = TopPerIdentity(1, top=2)
    acc.update(np.array([[1.0], [0.5]]), np.array([2, 3]))
    acc.update(np.array([[1.0], [1.0]]), np.array([0, 1]))
    assert acc.ranking(np.array(list("abcd"), dtype=object), [7]) == {7: ["a", "b"]}


def test_top_k_per_row_and_fold_weights():
    S = np.array([[0.1, 0.9, 0.5, 0.3], [0.8, 0.2, 0.6, 0.7]])
    idx, val = top_k_per_row(S, 3)
    assert idx.tolist() == [[1, 2, 3], [0, 3, 2]]
    np.testing.assert_allclose(val, [[0.9, 0.5, 0.3], [0.8, 0.7, 0.6]], rtol=1e-6)
    np.testing.assert_allclose(fold_weights([0.2, 0.6], "sum"), [0.5, 0.5])
    np.testing.assert_allclose(fold_weights([0.2, 0.6], "map_weighted"), [0.25, 0.75])
    with pytest.raises(ValueError, match="unknown ensemble"):
        fold_weights([1.0], "median")


# --------------------------------------------------------------------- fit / predict


@pytest.fixture(scope="module")
def tiny_data(tiny_demo):
    from core.features.dataset import concat, open_split

    train = open_split(tiny_demo / "face_train.pickle", tiny_demo / "train_gt.txt", split="train")
    val = open_split(tiny_demo / "face_val.pickle", tiny_demo / "val_gt.txt", split="val")
    return concat([train, val])


def _fit(tmp_path, data, name, **kw):
    from core.runs import Run
    from core.learn import TrainConfig, fit

    cfg = TrainConfig(**{"folds": 3, "epochs": 4, "eps": 0.8, "batch_size": 64, **kw})
    run = Run.create(tmp_path / name, cfg.to_dict())
    return run, cfg, fit(cfg, data, run)


@pytest.fixture(scope="module")
def noise_run(tiny_data, tmp_path_factory):
    return _fit(tmp_path_factory.mktemp("runs"), tiny_data, "noise")


def test_config_validation():
    from core.learn import TrainConfig

    with pytest.raises(ValueError, match="unknown method"):
        TrainConfig(method="svm")
    with pytest.raises(ValueError, match="folds"):
        TrainConfig(folds=1)
    assert TrainConfig.from_dict({**TrainConfig(epochs=3).to_dict(), "data": []}).epochs == 3


def test_noise_training_beats_chance_on_tiny(noise_run, tiny_demo, tmp_path):
    from core.io.formats import read_ground_truth
    from core.learn.metrics import evaluate_files
    from core.runs import predict_submission

    run, cfg, summary = noise_run
    assert run.state == "complete"
    # the cross-validated folds, then the refit on every video (checkpoint index `folds`)
    assert sorted(run.completed_folds()) == [0, 1, 2, 3, 4]
    assert run.fold_info(3)["refit"] and run.fold_info(4)["refit"] and not run.fold_info(0)["refit"]
    assert summary["n_clusters"] and max(summary["n_clusters"]) > 0  # noise classes in play
    assert summary["refit_models"] == cfg.refit == 2 and 1 <= summary["refit_epochs"] <= cfg.epochs
    m = run.metrics()
    folds, refit = m[m["fold"] < cfg.folds], m[m["fold"] >= cfg.folds]
    assert len(folds) == cfg.folds * cfg.epochs and folds["val_map"].between(0, 1).all()
    assert len(refit) == 2 * summary["refit_epochs"] and refit["val_map"].isna().all()
    sub = tmp_path / "sub.txt"
    ranking = predict_submission(run.path, tiny_demo / "face_test.pickle", sub)
    gt = read_ground_truth(tiny_demo / "test_gt.txt")
    assert set(ranking) == set(gt.identities)
    result = evaluate_files(tiny_demo / "test_gt.txt", sub)
    # chance: ~4 relevant videos among ~100+ test videos -> mAP well under 0.1
    assert result["mAP"] > 0.7, result["mAP"]
    assert summary["mAP"] > 0.7


def test_out_of_fold_scores_are_bounded_and_complete(noise_run, tiny_data):
    run, cfg, _ = noise_run
    oof = run.load_array("oof")
    n = len(tiny_data.names)
    assert oof["top_class"].shape == (n, min(cfg.top_k_store, len(oof["identity_ids"])))
    held = oof["fold"] >= 0
    assert held[tiny_data.ids == 0].all()  # every distractor scored out of fold
    assert (oof["top_class"][held] >= 0).all()
    assert np.all(np.diff(oof["top_score"][held], axis=1) <= 0)  # best first
    ap = run.load_json("per_identity_ap")
    assert set(map(int, ap)) <= set(oof["identity_ids"].tolist())
    ck = run.load_fold(0)
    assert ck["config"] == cfg.to_dict() and "model_config" in ck["meta"]


def test_same_seed_same_scores_and_resume_equals_uninterrupted(noise_run, tiny_data, tiny_demo, tmp_path):
    from core.io.formats import read_features
    from core.runs import Run
    from core.learn import fit
    from core.runs import predict_scores

    run1, cfg, s1 = noise_run
    run2, _, s2 = _fit(tmp_path, tiny_data, "again")
    fs = read_features(tiny_demo / "face_test.pickle")
    n1, S1, i1 = predict_scores(run1.path, fs)
    n2, S2, i2 = predict_scores(run2.path, fs)
    assert np.array_equal(n1, n2) and np.array_equal(i1, i2)
    assert np.array_equal(S1, S2)
    assert s1["mAP"] == s2["mAP"]

    # Interrupt run2 after fold 0: drop the later folds and the refits, then resume.
    for k in (1, 2, 3, 4):
        (run2.path / f"fold_{k}.done.json").unlink()
        (run2.path / f"fold_{k}.pt").unlink()
    (run2.path / "summary.json").unlink()
    Run(run2.path).interrupt("simulated crash")
    resumed = Run.resume(run2.path)
    s3 = fit(cfg, tiny_data, resumed, resume=True)
    assert s3["resumed_folds"] == [0]
    _, S3, _ = predict_scores(run2.path, fs)
    assert np.array_equal(S1, S3)
    assert np.array_equal(run1.load_array("oof")["top_score"], resumed.load_array("oof")["top_score"])


def _cancel_on(run, *prefixes: str, log: list | None = None):
    """A progress callback that asks ``run`` to stop when a message starts with a prefix."""
    def progress(fraction: float, message: str) -> None:
        if log is not None:
            log.append(message)
        if message.startswith(prefixes):
            run.request_cancel()
    return progress


def _assert_same_run(want, got) -> None:
    """Fold checkpoints (weights bit for bit), metric rows and out-of-fold scores agree."""
    import torch

    assert got.state == "complete" and got.completed_folds() == want.completed_folds()
    for k in want.completed_folds():
        a, b = want.load_fold(k), got.load_fold(k)
        assert a["best_epoch"] == b["best_epoch"], k
        np.testing.assert_array_equal(a["val_map"], b["val_map"])  # nan for a refit
        assert a["state_dict"].keys() == b["state_dict"].keys()
        for name, tensor in a["state_dict"].items():
            assert torch.equal(tensor, b["state_dict"][name]), (k, name)
    cols = ["fold", "epoch", "loss", "val_map", "relabelled", "shadow_weight"]
    assert want.metrics()[cols].equals(got.metrics()[cols])
    oa, ob = want.load_array("oof"), got.load_array("oof")
    for key in oa:
        np.testing.assert_array_equal(oa[key], ob[key], err_msg=key)
    assert want.load_json("per_identity_ap") == got.load_json("per_identity_ap")
    assert want.summary()["mAP"] == got.summary()["mAP"]


def test_cancel_inside_folds_and_refits_resumes_at_the_next_epoch(noise_run, tiny_data, tmp_path):
    """Cancelled after epoch 2 of fold 2, resumed, cancelled again inside the last refit,
    resumed: the run equals the uninterrupted one, and no finished epoch is trained twice."""
    from core.runs import Run
    from core.learn import fit

    ref, cfg, summary = noise_run
    run = Run.create(tmp_path / "cut", cfg.to_dict())
    out = fit(cfg, tiny_data, run, progress=_cancel_on(run, "fold 2/3 epoch 2/"))
    assert out["state"] == "cancelled" and run.completed_folds() == [0]
    assert run.load_partial(1)["epochs_done"] == 2 and len(run.metrics()) == cfg.epochs + 2
    # the runs table: one fold and half of the next, of 3 folds + 2 refits
    assert run.partial_info() == {"fold": 1, "epochs_done": 2, "epochs": cfg.epochs}

    refit_cut = f"refit 2/2 ({summary['refit_epochs']} epochs) epoch 1/"
    log: list[str] = []
    run = Run.resume(run.path)
    out = fit(cfg, tiny_data, run, resume=True, progress=_cancel_on(run, refit_cut, log=log))
    assert "fold 2/3: continues at epoch 3/4 (resume)" in log
    assert not any(m.startswith(("fold 2/3 epoch 1/", "fold 2/3 epoch 2/")) for m in log)
    if summary["refit_epochs"] > 1:  # else the refit has no epoch to stop after
        assert out["state"] == "cancelled" and run.completed_folds() == [0, 1, 2, 3]
        assert run.load_partial(4)["epochs_done"] == 1
        run = Run.resume(run.path)
        out = fit(cfg, tiny_data, run, resume=True)
    assert out["resumed_folds"] and not list(run.path.glob("*.partial.pt"))
    _assert_same_run(ref, run)


def test_mid_fold_resume_restores_dropout_rng_and_survives_a_bad_state(tiny_data, tmp_path):
    """Dropout (torch RNG) and BatchNorm buffers resume bit for bit; a changed config is
    refused by name; a torn mid-fold state restarts its fold, with a message."""
    from dataclasses import replace

    from core.runs import Run
    from core.learn import fit

    ref, cfg, _ = _fit(tmp_path, tiny_data, "ref", method="nn", folds=2, epochs=3, refit=0,
                       dropout=0.3, batch_norm=True)
    run = Run.create(tmp_path / "cut", cfg.to_dict())
    assert fit(cfg, tiny_data, run, progress=_cancel_on(run, "fold 1/2 epoch 1/"))["state"] == "cancelled"
    assert run.load_partial(0)["epochs_done"] == 1

    run = Run.resume(run.path)
    with pytest.raises(DataError, match="fold 0 was trained with lr=0.001, not 0.002"):
        fit(replace(cfg, lr=0.002), tiny_data, run, resume=True)
    assert run.state == "failed" and (run.path / "fold_0.partial.pt").exists()

    run = Run.resume(run.path)
    (run.path / "fold_0.partial.pt").write_bytes(b"not a torch file")
    log: list[str] = []
    out = fit(cfg, tiny_data, run, resume=True, progress=_cancel_on(run, "fold 2/2 epoch 2/", log=log))
    assert any("fold_0.partial.pt: cannot load mid-fold state" in m and "fold 0 restarts from epoch 1" in m
               for m in log), log
    assert "fold 1/2 epoch 1/3" in " ".join(log)  # trained from the start
    assert out["state"] == "cancelled" and run.load_partial(1)["epochs_done"] == 2
    run = Run.resume(run.path)
    fit(cfg, tiny_data, run, resume=True)
    _assert_same_run(ref, run)


def test_nn_and_knn_through_the_same_interface(tiny_data, tiny_demo, tmp_path):
    from core.io.formats import read_features
    from core.runs import predict_scores

    fs = read_features(tiny_demo / "face_test.pickle")
    for method in ("nn", "knn"):
        run, cfg, summary = _fit(tmp_path, tiny_data, method, method=method, epochs=3)
        assert run.state == "complete" and summary["mAP"] > 0.7, (method, summary["mAP"])
        names, S, ids = predict_scores(run.path, fs, views=False)
        assert S.shape == (len(names), len(ids)) and np.isfinite(S).all()


def test_single_fold_model_and_views_change_scores(noise_run, tiny_demo):
    from core.io.formats import read_features
    from core.runs import predict_scores

    run, _, _ = noise_run
    fs = read_features(tiny_demo / "face_test.pickle")
    _, full, _ = predict_scores(run.path, fs, views=False)
    _, one, _ = predict_scores(run.path, fs, views=False, folds=[0])
    _, viewed, _ = predict_scores(run.path, fs, views=True)
    assert not np.array_equal(full, one)
    assert (viewed >= full - 1e-6).all() or not np.array_equal(viewed, full)
    with pytest.raises(DataError, match="not available"):
        predict_scores(run.path, fs, folds=[7])


def test_cancel_between_epochs(tiny_data, tmp_path):
    from core.runs import Run
    from core.learn import TrainConfig, fit

    cfg = TrainConfig(method="nn", folds=2, epochs=5)
    run = Run.create(tmp_path / "cancel", cfg.to_dict())
    run.request_cancel()
    out = fit(cfg, tiny_data, run)
    assert out["state"] == "cancelled" and run.state == "cancelled"
    assert run.completed_folds() == [] and run.summary() is None
    assert len(run.metrics()) == 1  # stopped after the first epoch
    with pytest.raises(DataError, match="cancelled, not complete"):
        from core.runs import predict_scores

        predict_scores(run.path, tiny_data.frames)


def test_bad_input_fails_the_run(tiny_data, tmp_path):
    from dataclasses import replace

    from core.runs import Run
    from core.learn import TrainConfig, fit

    cfg = TrainConfig(method="noise", folds=2, epochs=1)
    run = Run.create(tmp_path / "bad", cfg.to_dict())
    with pytest.raises(DataError, match="noise_labels has 3 entries"):
        fit(cfg, tiny_data, run, noise_labels=np.array([0, 1, -1]))
    assert run.state == "failed"
    one_id = replace(tiny_data, ids=np.where(tiny_data.ids > 0, 1, 0))
    run2 = Run.create(tmp_path / "bad2", cfg.to_dict())
    with pytest.raises(DataError, match="at least 2 identities"):
        fit(cfg, one_id, run2)
