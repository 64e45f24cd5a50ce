"""Errors page: the analysis in core.runs.oof against independent references, and
the page itself (AppTest) with no run and with a real KNN run of the tiny demo."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
from app_helpers import make_knn_run, open_page, tiny_app_env, wait_for_run

from core.learn.metrics import per_identity_ap, rank_videos
from core.runs import oof as run_data

PAGE = "app_pages/errors.py"


# ----------------------------------------------------------------------------- helpers

def _dense(rs: run_data.OutOfFold) -> np.ndarray:
    S = np.full((len(rs.names), rs.n_identities), -np.inf)
    rows, slots = np.nonzero(rs.classes >= 0)
    S[rows, rs.classes[rows, slots]] = rs.scores[rows, slots]
    return S


@pytest.fixture(scope="module")
def env(tiny_demo, tmp_path_factory):
    with tiny_app_env(tiny_demo, tmp_path_factory.mktemp("errors_runs")) as e:
        yield e


@pytest.fixture(scope="module")
def knn_run(env):
    path, summary = make_knn_run(env.demo, env.runs)
    return SimpleNamespace(path=path, summary=summary)


# ----------------------------------------------------------------------------- plain functions

def _toy() -> run_data.OutOfFold:
    # 5 videos, identities 10 and 20; "d" is a distractor, "e" never held out.
    return run_data.scores_from_arrays({
        "names": np.array(["a", "b", "c", "d", "e"]),
        "identity_ids": np.array([10, 20]),
        "ids": np.array([10, 10, 20, 0, 20]),
        "top_class": np.array([[0, 1], [1, 0], [1, 0], [0, 1], [-1, -1]]),
        "top_score": np.array([[.9, .1], [.6, .4], [.8, .2], [.7, .3], [0, 0]]),
        "noise_prob": np.array([0, 0, 0, .9, 0]),
        "fold": np.array([0, 1, 0, 1, -1]),
    })


def test_identity_table_marks_hits_intruders_and_distractors():
    rs = _toy()
    t = run_data.identity_table(rs, rs.truth_map(), 10)
    # scores for identity 10: a .9, d .7, b .4, c .2  (hand-computed)
    assert t["video"].tolist() == ["a", "d", "b", "c"]
    assert t["kind"].tolist() == ["hit", "distractor", "hit", "other identity"]
    assert t["rank"].tolist() == [1, 2, 3, 4]


def test_predicted_noise_wins_when_noise_mass_is_larger():
    pred, score = _toy().predicted()
    assert pred.tolist() == [10, 20, 20, 0, -1]
    assert score[3] == pytest.approx(0.9)


def test_stealers_and_missed_videos():
    rs = _toy()
    truth = rs.truth_map()
    st_ = run_data.stealers(rs, truth, 10)
    assert st_.values.tolist() == [["identity 20", "identity", 1]]  # b is taken by 20
    assert run_data.stealers(rs, truth, 20).empty  # c is right, e is not scored
    missed = run_data.missed_videos(rs, truth, 20)  # e: never scored
    assert missed["video"].tolist() == ["e"] and missed["predicted"].tolist() == ["not scored"]
    noise = run_data.stealers(rs, {"d": 10}, 10, {"d": 4})
    assert noise.values.tolist() == [["noise cluster 4", "noise cluster", 1]]


def test_intruder_sources_group_by_noise_cluster():
    rs = _toy()
    t = run_data.identity_table(rs, rs.truth_map(), 10)
    # d (rank 2) sits above the hit b (rank 3) and costs AP; c (rank 4) is below the last hit
    assert t["costs_ap"].tolist() == [False, True, False, False]
    assert run_data.intruder_sources(t, {"d": 3}).values.tolist() == [["noise cluster 3", "noise cluster", 1]]
    assert run_data.intruder_sources(t, None).values.tolist() == [["distractors", "distractor", 1]]
    # when a ground-truth video is not ranked at all, every intruder of the top 100 costs AP
    t2 = run_data.identity_table(rs, {**rs.truth_map(), "zz": 10}, 10)
    assert t2["costs_ap"].tolist() == [False, True, False, True]
    assert run_data.intruder_sources(t2, None)["label"].tolist() == ["distractors", "identity 20"]


def test_rankings_match_rank_videos_on_dense_scores():
    rng = np.random.default_rng(0)
    n, C, k = 300, 12, 5
    S = rng.random((n, C)).astype(np.float32)
    idx = np.argsort(-S, axis=1)[:, :k]
    rs = run_data.scores_from_arrays({"names": np.array([f"v{i}" for i in range(n)]),
                                      "identity_ids": np.arange(1, C + 1) * 3,
                                      "top_class": idx, "top_score": np.take_along_axis(S, idx, 1)})
    got = run_data.rankings(rs, top=100)
    dense = _dense(rs)
    ref = rank_videos(np.where(np.isfinite(dense), dense, -1e9), rs.names, rs.identity_ids, top=100)
    for i, vids in ref.items():
        finite = [v for v in vids if np.isfinite(dense[int(v[1:]), (i // 3) - 1])]
        assert got[i] == finite


def test_nearest_noise_cluster_is_the_cluster_of_the_nearest_clustered_distractor():
    rng = np.random.default_rng(1)
    Xn = rng.normal(size=(40, 8))
    labels = rng.integers(-1, 4, size=40)
    Xq = rng.normal(size=(6, 8))
    got = run_data.nearest_noise_cluster(Xq, Xn, labels)
    unit = lambda a: a / np.linalg.norm(a, axis=1, keepdims=True)  # noqa: E731
    sims = unit(Xq) @ unit(Xn).T
    sims[:, labels < 0] = -np.inf
    assert got.tolist() == labels[np.argmax(sims, axis=1)].tolist()


def test_score_file_errors_name_the_file():
    from core.errors import DataError

    with pytest.raises(DataError, match="oof.npz: score file lacks"):
        run_data.scores_from_arrays({"names": np.array(["a"])})
    with pytest.raises(DataError, match="class index 5"):
        run_data.scores_from_arrays({"names": np.array(["a"]), "identity_ids": np.array([1]),
                                     "top_class": np.array([[5]]), "top_score": np.array([[1.0]])})


# ----------------------------------------------------------------------------- the page

def test_page_without_a_run_trains_the_baseline_on_request(env, tmp_path, monkeypatch):
    from core.runs import Run

    monkeypatch.setenv("VIDID_RUNS", str(tmp_path))  # an empty store of its own
    at = open_page(PAGE)
    assert not at.exception
    assert any("No finished run" in i.value for i in at.info)
    next(b for b in at.button if b.label == "Train the KNN baseline now").click().run()
    assert not at.exception, [e.value for e in at.exception]
    (run_dir,) = list(tmp_path.iterdir())
    wait_for_run(run_dir, lambda r: r.state != "running")
    assert Run.open(run_dir).state == "complete"
    at.run()  # the page now reviews the new run
    assert not at.exception
    assert at.selectbox(key="errors_run").value == run_dir.name
    assert len(at.dataframe) >= 2  # per-identity AP and the ranked list


def test_page_with_a_knn_run(env, knn_run):
    at = open_page(PAGE)
    assert not at.exception, [e.value for e in at.exception]
    run_name = knn_run.path.name
    assert at.selectbox(key="errors_run").value == run_name
    assert at.query_params["run"] == run_name
    shown_map = next(m for m in at.metric if m.label.startswith("mAP"))
    assert shown_map.value == f"{knn_run.summary['mAP']:.4f}"

    # The per-identity table is the trainer's per_identity_ap.json, worst first.
    stored = {int(k): v for k, v in json.loads((knn_run.path / "per_identity_ap.json").read_text()).items()}
    ap_table = at.dataframe[0].value
    assert ap_table["identity"].tolist() == sorted(stored, key=lambda i: (stored[i], i))
    # ...and it agrees with the AP recomputed from the stored scores (C <= top_k_store here).
    rs = run_data.scores_from_arrays(dict(np.load(knn_run.path / "oof.npz")))
    gt = {}
    for v, i, ok in zip(rs.names, rs.truth, rs.scored):
        if ok and i > 0:
            gt.setdefault(int(i), []).append(v)
    recomputed = per_identity_ap(gt, run_data.rankings(rs))
    assert recomputed == pytest.approx(stored)

    # The worst identity is preselected; its ranked list matches a dense re-ranking.
    worst = ap_table["identity"].iloc[0]
    assert at.selectbox(key=f"errors_identity_box_{knn_run.path.name}").value == worst
    ranked = at.dataframe[1].value
    dense = _dense(rs)[:, int(np.flatnonzero(rs.identity_ids == worst)[0])]
    order = [i for i in np.argsort(-dense, kind="stable") if np.isfinite(dense[i])][:100]
    assert ranked["video"].tolist() == rs.names[order].tolist()
    kinds = np.where(rs.truth[order] == worst, "hit", np.where(rs.truth[order] == 0, "distractor",
                                                               "other identity"))
    assert ranked["kind"].tolist() == kinds.tolist()


def test_search_and_identity_choice(env, knn_run):
    at = open_page(PAGE, query={"run": knn_run.path.name})
    ids = at.dataframe[0].value["identity"].tolist()
    target = ids[-1]  # the best identity
    at.text_input(key="errors_search").input(str(target)).run()
    assert not at.exception
    filtered = at.dataframe[0].value["identity"].tolist()
    truth = run_data.scores_from_arrays(dict(np.load(knn_run.path / "oof.npz"))).truth_map()
    owners = {i for v, i in truth.items() if str(target) in v}  # identities of matching videos
    assert target in filtered and set(filtered) == ({target} | owners) - {0}
    box = f"errors_identity_box_{knn_run.path.name}"
    assert at.selectbox(key=box).value in filtered
    at.selectbox(key=box).select(target).run()
    assert not at.exception
    assert any(m.value == f"Identity {target}" for m in at.subheader)
    # a video of the ranked list opens in Video review with the run preselected
    assert at.dataframe[1].value["rank"].tolist()[:3] == [1, 2, 3]


def test_unknown_run_in_link_falls_back(env, knn_run):
    at = open_page(PAGE, query={"run": "no-such-run"})
    assert not at.exception
    assert at.selectbox(key="errors_run").value == knn_run.path.name


def test_switching_runs_redraws_the_identity_box_and_offers_downloads(env, knn_run):
    import time

    time.sleep(1.1)
    other, _ = make_knn_run(env.demo, env.runs, folds=2)
    at = open_page(PAGE, query={"run": knn_run.path.name})
    assert not at.exception, [e.value for e in at.exception]
    at.selectbox(key="errors_run").select(other.name).run()
    assert not at.exception, [e.value for e in at.exception]
    ap = at.dataframe[0].value
    box = at.selectbox(key=f"errors_identity_box_{other.name}")  # a fresh box for the new run
    identity = box.value
    want = float(ap.loc[ap["identity"] == identity, "AP"].iloc[0])
    assert box.format_func(identity) == f"identity {identity} (AP {want:.3f})"
    labels = [d.proto.label for d in at.get("download_button")]
    assert {"Per-identity AP (CSV)", "Ranked list (CSV)", "Missed videos (CSV)"} <= set(labels)
    assert not any("NaN" in str(v) for v in at.dataframe[1].value.get("rank", []))
    intruders = next(m for m in at.metric if m.label == "intruders")
    assert " of " in intruders.value  # "94 of 100", not a bare count
    assert any(e.label == "Probably mislabelled videos (cleanlab)" for e in at.expander)
