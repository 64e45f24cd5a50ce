"""Explaining a prediction (core/runs/explain.py): the out-of-fold margin and noise mass,
and every output class of the fold model (identities, noise clusters, shadow classes);
Video review shows them for a wrong video of a noise-aware run."""

from __future__ import annotations

import numpy as np
import pytest
from app_helpers import open_page, tiny_app_env

from core.runs.explain import class_names, explain_prediction, pulling_classes
from core.runs.oof import load_out_of_fold


@pytest.fixture(scope="module")
def noise_run(tiny_demo, tmp_path_factory):
    from core.features.dataset import concat, open_split
    from core.learn import TrainConfig, fit
    from core.runs import Run, new_run_dir

    runs = tmp_path_factory.mktemp("explain_runs")
    pairs = [("train", tiny_demo / "face_train.pickle", tiny_demo / "train_gt.txt"),
             ("val", tiny_demo / "face_val.pickle", tiny_demo / "val_gt.txt")]
    data = concat([open_split(f, g, split=s) for s, f, g in pairs])
    cfg = TrainConfig(method="noise", folds=2, epochs=3, views=False, refit=0, eps=0.9, min_samples=2)
    run = Run.create(new_run_dir(runs, "noise"), {**cfg.to_dict(), "data": [
        {"split": s, "feats": str(f), "gt": str(g)} for s, f, g in pairs]})
    fit(cfg, data, run)
    return run.path, data


def test_margin_is_predicted_minus_true_score(noise_run):
    path, _ = noise_run
    rs = load_out_of_fold(path)
    pred, score = rs.predicted()
    for r in np.flatnonzero(rs.scored & (rs.truth > 0))[:40]:
        e = explain_prediction(rs, rs.names[r])
        assert e.predicted == pred[r] and e.predicted_score == pytest.approx(score[r])
        assert e.noise_mass is None or e.noise_mass == pytest.approx(rs.noise_prob[r])
        ids = rs.identity_ids[rs.classes[r][rs.classes[r] >= 0]]
        if e.true_score is not None:
            assert ids[e.true_rank - 1] == e.true
            assert e.margin == pytest.approx(e.predicted_score - e.true_score)
        assert e.wrong == (pred[r] != rs.truth[r])
        assert str(e.true) in e.sentence()


def test_pulling_classes_cover_every_output_class(noise_run):
    path, data = noise_run
    rs = load_out_of_fold(path)
    r = int(np.flatnonzero(rs.scored & (rs.truth > 0))[0])
    row = int(np.flatnonzero(np.asarray(data.names) == rs.names[r])[0])
    full = pulling_classes(path, np.asarray(data.X)[row], int(rs.fold[r]), top=10_000)
    assert full["probability"].sum() == pytest.approx(1.0, abs=1e-4)
    C = rs.n_identities
    assert (full["kind"] == "identity").sum() == C and (full["kind"] == "shadow class").sum() == C
    assert full["probability"].is_monotonic_decreasing
    assert pulling_classes(path, np.asarray(data.X)[row], -1) is None


def test_class_layout():
    labels, kinds = class_names(np.array([1, 2, 3]), 2, 8)
    assert labels[3:5] == ["noise cluster 0", "noise cluster 1"]
    assert labels[5:] == ["shadow of identity 1", "shadow of identity 2", "shadow of identity 3"]
    assert kinds.count("identity") == 3


def test_video_review_explains_a_wrong_video(tiny_demo, noise_run, tmp_path):
    path, _ = noise_run
    rs = load_out_of_fold(path)
    wrong = np.flatnonzero(rs.wrong())
    if not len(wrong):
        pytest.skip("the short noise run got every labelled video right")
    video = str(rs.names[wrong[0]])
    with tiny_app_env(tiny_demo, path.parent):
        at = open_page("app_pages/video_review.py", query={"video": video, "run": path.name})
        assert not at.exception, [e.value for e in at.exception]
        assert any("margin" in e.value for e in at.error)
        assert any("Which classes pulled it" in m.value for m in at.markdown)


def test_pulling_classes_of_a_multimodal_run_faceless_video_included(tiny_demo, tmp_path):
    """A multimodal network reads the video's modalities; a faceless video is explained too,
    and a face vector alone (no ``modal``) is refused rather than fed to the wrong input."""
    from core.features import concat
    from core.features.modalities import open_multimodal
    from core.learn import TrainConfig, fit
    from core.runs import Run, new_run_dir

    pairs = [(s, tiny_demo / f"face_{s}.pickle", tiny_demo / f"{s}_gt.txt") for s in ("train", "val")]
    data = concat([open_multimodal(f, g, split=s) for s, f, g in pairs])
    cfg = TrainConfig(method="nn", folds=2, epochs=2, views=False, refit=0)
    run = Run.create(new_run_dir(tmp_path, "nn"), {**cfg.to_dict(), "data": [
        {"split": s, "feats": str(f), "gt": str(g)} for s, f, g in pairs]})
    fit(cfg, data, run)
    rs = load_out_of_fold(run.path)
    faceless = np.flatnonzero(~data.modal.has("face"))
    assert faceless.size
    row = int(faceless[0])
    r = rs.row_of(str(data.names[row]))
    got = pulling_classes(run.path, None, int(rs.fold[r]), top=10_000, modal=data.modal.select(np.array([row])))
    assert got["probability"].sum() == pytest.approx(1.0, abs=1e-4)
    assert pulling_classes(run.path, np.asarray(data.X)[row], int(rs.fold[r])) is None
