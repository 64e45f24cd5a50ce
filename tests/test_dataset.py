"""LabelledVideos: labels from the ground truth, distractors, empty videos, concat."""

from __future__ import annotations

import numpy as np
import pytest

from core.features.dataset import LabelledVideos, concat, open_split, subset_frames
from core.errors import DataError
from core.io.formats import read_features, read_ground_truth
from core.features.pooling import pool_videos, pool_views
from core.io.frames import FrameSet


def make_frameset(lengths, *, dim=8, seed=0) -> FrameSet:
    rng = np.random.default_rng(seed)
    offsets = np.concatenate(([0], np.cumsum(lengths))).astype(np.int64)
    n = int(offsets[-1])
    return FrameSet(
        names=np.array([f"v{i:04d}" for i in range(len(lengths))], dtype=object),
        offsets=offsets,
        feats=(rng.standard_normal((n, dim)) + 0.5).astype(np.float16),
        quality=rng.uniform(-30, 200, n).astype(np.float32),
        det=rng.uniform(0.5, 1.0, n).astype(np.float32),
        frame_no=np.arange(n, dtype=np.int32),
        bbox=np.zeros((n, 4), np.float32),
        source="mem",
    )


def named(fs, prefix):
    from dataclasses import replace

    return replace(fs, names=np.array([f"{prefix}{i}" for i in range(fs.n_videos)], dtype=object),
                   _index=None)


def test_labels_distractors_and_empty_videos():
    fs = named(make_frameset([3, 0, 4, 5, 0, 2], seed=1), "t")
    lv = open_split(fs, {"t0.mp4": 2, "t2": 1, "t4": 1}, split="train")
    # t1 and t4 have no frames: dropped (t4 even though labelled)
    assert lv.names.tolist() == ["t0", "t2", "t3", "t5"]
    assert lv.ids.tolist() == [2, 1, 0, 0]
    assert lv.labelled_mask.tolist() == [True, True, False, False]
    assert lv.distractor_mask.tolist() == [False, False, True, True]
    assert lv.identities.tolist() == [1, 2]
    assert lv.pooled.empty == ["t1", "t4"]
    assert set(lv.split) == {"train"}
    assert lv.ground_truth() == {1: ["t2"], 2: ["t0"]}
    # frames stay aligned with the rows: views of row i are views of video names[i]
    assert lv.frames.names.tolist() == lv.names.tolist()
    np.testing.assert_array_equal(lv.frames.lengths, [3, 4, 5, 2])
    np.testing.assert_allclose(pool_views(lv.frames)[0], lv.X, atol=1e-7)
    np.testing.assert_array_equal(lv.X, pool_videos(fs).X)


def test_no_ground_truth_means_all_distractors():
    lv = open_split(make_frameset([2, 3]), split="test")
    assert lv.ids.tolist() == [0, 0] and lv.identities.size == 0


def test_ground_truth_video_missing_from_features_is_an_error():
    fs = named(make_frameset([2, 3]), "t")
    with pytest.raises(DataError, match="'ghost'"):
        open_split(fs, {"t0": 1, "ghost.mp4": 2})


def test_subset_frames_gathers_in_order():
    fs = make_frameset([2, 0, 3, 1], seed=4)
    sub = subset_frames(fs, np.array([3, 0, 2]))
    assert sub.names.tolist() == ["v0003", "v0000", "v0002"]
    np.testing.assert_array_equal(sub.offsets, [0, 1, 3, 6])
    np.testing.assert_array_equal(sub.feats, fs.feats[[5, 0, 1, 2, 3, 4]])
    np.testing.assert_array_equal(sub.quality, fs.quality[[5, 0, 1, 2, 3, 4]])


def test_concat_stacks_rows_and_frames():
    a = open_split(named(make_frameset([2, 3], seed=1), "a"), {"a0": 1}, split="train")
    b = open_split(named(make_frameset([0, 4, 1], seed=2), "b"), {"b1": 2}, split="val")
    both = concat([a, b])
    assert isinstance(both, LabelledVideos)
    assert both.names.tolist() == ["a0", "a1", "b1", "b2"]
    assert both.ids.tolist() == [1, 0, 2, 0]
    assert both.split.tolist() == ["train", "train", "val", "val"]
    assert both.pooled.empty == ["b0"]
    np.testing.assert_array_equal(both.frames.lengths, [2, 3, 4, 1])
    np.testing.assert_allclose(pool_videos(both.frames).X, both.X, atol=1e-7)
    assert both.pooled.index_of("b2") == 3
    with pytest.raises(DataError, match="'a0'"):
        concat([a, a])
    c = open_split(named(make_frameset([2], seed=3), "c"), weighting="uniform")
    with pytest.raises(ValueError, match="different options"):
        concat([a, c])


def test_large_frame_concatenation_is_file_backed_and_leaves_no_file(tmp_path, monkeypatch):
    """Above the limit, concat's frames live in an unlinked mapped file: same values, read-only,
    no anonymous copy; a cache folder that cannot be made falls back to memory."""
    import core.features.dataset as ds
    from core.features.dataset import stack_rows

    monkeypatch.setenv("VIDID_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(ds, "FILE_BACKED_BYTES", 0)
    a = open_split(named(make_frameset([2, 3], seed=1), "a"), {"a0": 1}, split="train")
    b = open_split(named(make_frameset([0, 4, 1], seed=2), "b"), {"b1": 2}, split="val")
    both = concat([a, b])
    want = np.concatenate([a.frames.feats, b.frames.feats])
    feats = both.frames.feats
    np.testing.assert_array_equal(feats, want)
    assert type(feats) is np.ndarray and not feats.flags.writeable
    assert isinstance(feats.base, np.memmap)  # mapped, not a copy in memory
    assert list((tmp_path / "cache" / "tmp").iterdir()) == []  # unlinked at once
    np.testing.assert_allclose(pool_videos(both.frames).X, both.X, atol=1e-7)
    # float16 + float32 parts: float32, values kept
    mixed = stack_rows([np.full((2, 3), 0.5, np.float16), np.arange(3, dtype=np.float32)[None]],
                       np.float32, limit=0)
    np.testing.assert_array_equal(mixed, [[0.5] * 3, [0.5] * 3, [0, 1, 2]])
    # the cache root is a file: no temporary folder possible, the concatenation is in memory
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    monkeypatch.setenv("VIDID_CACHE", str(blocker))
    plain = stack_rows([a.frames.feats, b.frames.feats], a.frames.feats.dtype, limit=0)
    np.testing.assert_array_equal(plain, want)
    assert plain.flags.writeable and not isinstance(plain.base, np.memmap)


def test_open_split_on_the_tiny_demo_files(tiny_demo):
    feats, gt_path = tiny_demo / "face_val.pickle", tiny_demo / "val_gt.txt"
    lv = open_split(feats, gt_path, split="val", weighting="quality2")
    fs = read_features(feats)
    gt = read_ground_truth(gt_path)
    nonempty = {n for n, l in zip(fs.names, fs.lengths) if l > 0}
    assert set(lv.names) == nonempty and len(lv.pooled.empty) == fs.n_videos - len(nonempty)
    expected = {v: i for v, i in gt.labels.items() if v in nonempty}
    assert {n: int(i) for n, i in zip(lv.names, lv.ids) if i > 0} == expected
    assert lv.distractor_mask.sum() == len(nonempty) - len(expected) > 0
    np.testing.assert_array_equal(lv.X, pool_videos(fs, weighting="quality2").X)
    default = open_split(feats)
    assert set(default.split) == {"face_val"} and (default.ids == 0).all()
