"""The official mAP on hand-computed cases, sklearn, Hypothesis invariants; ranking; confusions."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import average_precision_score

from core.errors import DataError
from core.io.formats import GroundTruth, write_ground_truth
from core.learn.metrics import (
    average_precision,
    confusions,
    evaluate_files,
    mean_average_precision,
    per_identity_ap,
    rank_videos,
)

# --------------------------------------------------------------------------- hand-computed


def test_partial_hits():
    # hits at ranks 1 and 3 of 3 relevant: (1/1 + 2/3) / 3
    assert average_precision(["a", "x", "b"], {"a", "b", "c"}) == pytest.approx((1 + 2 / 3) / 3)
    # hits at ranks 2 and 4: (1/2 + 2/4) / 2
    assert average_precision(["x", "a", "y", "b"], ["a", "b"]) == pytest.approx(0.5)
    assert average_precision(["x", "y"], ["a"]) == 0.0
    assert average_precision([], ["a"]) == 0.0


def test_duplicates_are_dropped_keeping_the_first():
    assert average_precision(["a", "a", "b"], {"a", "b"}) == 1.0
    # the repeated wrong video does not push the hit down: hit at rank 2 -> 1/2
    assert average_precision(["x", "x", "x", "a"], {"a"}) == pytest.approx(0.5)
    # a repeated correct video counts once
    assert average_precision(["a", "x", "a"], {"a", "b"}) == pytest.approx(0.5)
    # names with and without .mp4 are the same video
    assert average_precision(["a.mp4", "a", "b"], {"a", "b.mp4"}) == 1.0


def test_more_than_100_distinct_videos_rejected():
    line = [f"v{i}" for i in range(101)]
    with pytest.raises(DataError, match="101"):
        average_precision(line, {"v0"})
    with pytest.raises(DataError, match="identity 7: 101"):
        per_identity_ap({7: ["v0"]}, {7: line})
    # lines of identities outside the ground truth are ignored, unchecked (official)
    assert per_identity_ap({7: ["v0"]}, {8: line}) == {7: 0.0}
    # 101 entries with one duplicate are 100 distinct videos: fine
    assert average_precision(line[:100] + ["v0"], {"v0"}) == 1.0


def test_denominator_is_the_full_ground_truth_count_not_capped():
    relevant = [f"v{i}" for i in range(150)]
    assert average_precision(relevant[:100], relevant) == pytest.approx(100 / 150)
    assert average_precision(["v0"], ["v0"], n_relevant=4) == 0.25


def test_missing_and_unknown_identities():
    gt = {1: ["a", "b"], 2: ["c"], 3: ["d"]}
    sub = {1: ["a", "x", "b"], 2: ["c"], 99: ["d"]}  # 3 missing, 99 unknown
    aps = per_identity_ap(gt, sub)
    assert aps == pytest.approx({1: (1 + 2 / 3) / 2, 2: 1.0, 3: 0.0})
    assert mean_average_precision(gt, sub) == pytest.approx(((1 + 2 / 3) / 2 + 1) / 3)


def test_ground_truth_object_and_dict_agree():
    gt = GroundTruth({"a": 1, "b": 1, "c": 2}, "gt.txt", "video_id")
    sub = {1: ["b", "c"], 2: ["c.mp4"]}
    assert per_identity_ap(gt, sub) == per_identity_ap({1: ["a", "b"], 2: ["c"]}, sub) == {1: 0.5, 2: 1.0}


def test_empty_ground_truth_is_an_error():
    with pytest.raises(DataError, match="no identities"):
        mean_average_precision({}, {1: ["a"]})


def test_sklearn_agrees_when_every_relevant_video_is_ranked():
    rng = np.random.default_rng(0)
    for _ in range(20):
        n = int(rng.integers(5, 100))
        y = rng.random(n) < 0.3
        y[rng.integers(n)] = True
        ranked = [f"v{i}" for i in range(n)]  # rank i <-> score n - i
        relevant = {f"v{i}" for i in np.flatnonzero(y)}
        assert average_precision(ranked, relevant) == pytest.approx(
            average_precision_score(y, np.arange(n, 0, -1)))


def test_evaluate_files(tmp_path):
    write_ground_truth(tmp_path / "gt.txt", {"a": 1, "b": 1, "c": 2, "d": 3}, layout="id_videos")
    (tmp_path / "sub.txt").write_text("1 a.mp4 x.mp4 a.mp4 b.mp4\n2 c.mp4\n5 d.mp4\n")
    res = evaluate_files(tmp_path / "gt.txt", tmp_path / "sub.txt")
    assert res["per_identity"] == pytest.approx({1: (1 + 2 / 3) / 2, 2: 1.0, 3: 0.0})
    assert res["mAP"] == pytest.approx(((1 + 2 / 3) / 2 + 1) / 3)
    assert (res["n_identities"], res["n_missing"], res["n_unknown_identities"]) == (3, 1, 1)


# --------------------------------------------------------------------------- invariants

names_st = st.lists(st.sampled_from([f"v{i}" for i in range(30)]), max_size=40)


@settings(max_examples=100, deadline=None)
@given(gt_videos=st.lists(st.sets(st.sampled_from([f"v{i}" for i in range(30)]), min_size=1), min_size=1, max_size=5),
       lines=st.lists(names_st, min_size=0, max_size=5))
def test_map_is_between_0_and_1_and_perfect_is_1(gt_videos, lines):
    gt = {i + 1: sorted(v) for i, v in enumerate(gt_videos)}
    sub = {i + 1: line for i, line in enumerate(lines)}
    m = mean_average_precision(gt, sub)
    assert 0.0 <= m <= 1.0
    assert mean_average_precision(gt, gt) == 1.0
    # the perfect lines shuffled among nothing else are still perfect
    assert mean_average_precision(gt, {i: list(reversed(v)) for i, v in gt.items()}) == 1.0


@settings(max_examples=100, deadline=None)
@given(relevant=st.sets(st.sampled_from([f"v{i}" for i in range(20)]), min_size=1),
       line=names_st, extra=st.lists(st.sampled_from([f"w{i}" for i in range(20)]), max_size=20))
def test_wrong_videos_after_the_last_hit_change_nothing(relevant, line, extra):
    base = average_precision(line, relevant)
    assert average_precision(line + extra, relevant) == pytest.approx(base)
    # ... and wrong videos in front never help
    assert average_precision(extra + line, relevant) <= base + 1e-12


@settings(max_examples=100, deadline=None)
@given(relevant=st.sets(st.sampled_from([f"v{i}" for i in range(10)]), min_size=1),
       line=st.lists(st.sampled_from([f"v{i}" for i in range(10)] + ["x", "y", "z"]), unique=True),
       data=st.data())
def test_moving_a_hit_up_never_lowers_ap(relevant, line, data):
    hits = [k for k, v in enumerate(line) if v in relevant and k > 0]
    if not hits:
        return
    k = data.draw(st.sampled_from(hits))
    swapped = list(line)
    swapped[k - 1], swapped[k] = swapped[k], swapped[k - 1]
    assert average_precision(swapped, relevant) >= average_precision(line, relevant) - 1e-12


# --------------------------------------------------------------------------- ranking


def reference_rank(S, names, ids, top):
    out = {}
    for c, i in enumerate(ids):
        order = np.lexsort((np.arange(len(names)), -S[:, c]))  # by score desc, then row
        out[i] = [names[j] for j in order[:top]]
    return out


@pytest.mark.parametrize("n, C, top, block", [(300, 12, 100, 1 << 22), (300, 12, 7, 600),
                                              (40, 5, 100, 1 << 22), (1, 3, 100, 1)])
def test_rank_videos_matches_argsort_with_ties(n, C, top, block):
    rng = np.random.default_rng(n + C)
    S = rng.integers(0, 4, size=(n, C)).astype(np.float32)  # many ties
    S[:, 0] = rng.random(n)  # and one column without
    names = [f"v{i}" for i in range(n)]
    ids = list(range(101, 101 + C))
    got = rank_videos(S, names, ids, top=top, block_elements=block)
    assert got == reference_rank(S, names, ids, top)


def test_rank_videos_rejects_bad_input():
    with pytest.raises(ValueError, match="NaN"):
        rank_videos(np.array([[np.nan]]), ["a"], [1])
    with pytest.raises(ValueError, match="do not match"):
        rank_videos(np.zeros((2, 2)), ["a"], [1, 2])
    with pytest.raises(ValueError, match="duplicates"):
        rank_videos(np.zeros((2, 2)), ["a", "b"], [1, 1])


def test_rank_then_score_perfect_scores():
    rng = np.random.default_rng(3)
    ids = rng.integers(0, 6, 500)  # 0 = distractor
    names = [f"v{i}" for i in range(500)]
    S = np.eye(6)[ids][:, 1:] + 0.01 * rng.random((500, 5))
    ranking = rank_videos(S, names, [1, 2, 3, 4, 5])
    gt = {i: [n for n, j in zip(names, ids) if j == i] for i in range(1, 6)}
    # each identity has ~83 videos < 100: all ranked first -> perfect
    assert mean_average_precision(gt, ranking) == 1.0


# --------------------------------------------------------------------------- confusions


def test_confusions_lists_intruders_with_their_identity():
    gt = {1: ["a", "b"], 2: ["c"], 3: ["e"]}
    sub = {1: ["a", "c", "z", "b", "c"], 2: ["c"], 9: ["q"]}
    df = confusions(gt, sub, {"a": 1, "b": 1, "c": 2, "e": 3})
    assert df.to_dict("list") == {
        "identity": [1, 1], "rank": [2, 3], "video": ["c", "z"], "true_identity": [2, 0],
        "ap": [pytest.approx((1 + 2 / 4) / 2)] * 2,
    }
    assert list(confusions(gt, {}, {}).columns) == ["identity", "rank", "video", "true_identity", "ap"]


def test_file_line_with_duplicates_counts_distinct_videos(tmp_path):
    """101 entries of which one is a duplicate: 100 distinct, accepted like the API."""
    from core.io.formats import read_submission

    videos = [f"v{i}.mp4" for i in range(100)] + ["v0.mp4"]
    path = tmp_path / "sub.txt"
    path.write_text("1 " + " ".join(videos) + "\n")
    sub = read_submission(path)
    assert len(sub[1]) == 101
    gt = {1: ["v0", "v5"]}
    assert mean_average_precision(gt, sub) == pytest.approx((1 / 1 + 2 / 6) / 2)
