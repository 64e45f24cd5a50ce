"""core.io.frames: conversion from the pickle layout, selection, columnar storage."""

from __future__ import annotations

import numpy as np
import pytest

from core.errors import DataError
from core.io.frames import (FrameSet, frameset_from_videos, frameset_to_videos, load_frameset,
                         read_frameset_meta, save_frameset)


def _videos(seed: int = 0, n_videos: int = 20, dim: int = 8, dtype=np.float16) -> dict:
    rng = np.random.default_rng(seed)
    out = {}
    for i in range(n_videos):
        n = int(rng.integers(0, 6))
        out[f"V{i:03d}"] = [[str(10 * j), rng.uniform(0, 100, 4).tolist(),
                             float(rng.uniform(0.8, 1)), float(rng.uniform(-30, 200)),
                             rng.standard_normal(dim).astype(dtype)] for j in range(n)]
    return out


def _reference(videos: dict) -> dict:
    """Per-video columns computed frame by frame (independent of the vectorised path)."""
    return {name: dict(feats=[f[4] for f in frames], quality=[f[3] for f in frames],
                       det=[f[2] for f in frames], frame_no=[int(f[0]) for f in frames],
                       bbox=[f[1] for f in frames]) for name, frames in videos.items()}


def test_from_videos_matches_per_frame_reference():
    videos = _videos()
    fs = frameset_from_videos(videos, source="toy.pickle")
    ref = _reference(videos)
    assert fs.names.dtype == object and fs.names.tolist() == list(videos)
    assert fs.offsets.dtype == np.int64 and fs.offsets[0] == 0
    assert fs.lengths.tolist() == [len(v) for v in videos.values()]
    assert fs.n_frames == sum(len(v) for v in videos.values()) and fs.dim == 8
    assert fs.feats.dtype == np.float16
    assert (fs.quality.dtype, fs.det.dtype, fs.frame_no.dtype, fs.bbox.dtype) == (
        np.float32, np.float32, np.int32, np.float32)
    for i, name in enumerate(fs.names):
        sl = slice(fs.offsets[i], fs.offsets[i + 1])
        r = ref[name]
        if r["feats"]:
            np.testing.assert_array_equal(fs.feats[sl], np.stack(r["feats"]))
            np.testing.assert_allclose(fs.bbox[sl], r["bbox"], rtol=1e-6)
        np.testing.assert_allclose(fs.quality[sl], r["quality"], rtol=1e-6)
        np.testing.assert_allclose(fs.det[sl], r["det"], rtol=1e-6)
        assert fs.frame_no[sl].tolist() == r["frame_no"]
        assert fs.index_of(name + ".mp4") == i


def test_names_canonical_and_frame_strings_bytes():
    f = np.ones(3, np.float16)
    fs = frameset_from_videos({b"A.mp4": [[b"007", [0, 0, 1, 1], 1, 5, f]], "B": [],
                               b"C": [[b"frame_0012.jpg", np.arange(4), 0.5, 7, f]]},
                              source="s")
    assert fs.names.tolist() == ["A", "B", "C"]
    assert fs.frame_no.tolist() == [7, 12]
    assert fs.index_of(b"C") == 2
    with pytest.raises(KeyError, match="'D'"):
        fs.index_of("D")


def test_float32_features_stay_float32_and_ints_convert():
    fs = frameset_from_videos(_videos(dtype=np.float32), source="s")
    assert fs.feats.dtype == np.float32
    fs = frameset_from_videos({"a": [["1", [0, 0, 1, 1], 1.0, 5.0, np.arange(3)]]}, source="s")
    assert fs.feats.dtype == np.float32 and fs.feats.tolist() == [[0, 1, 2]]


def test_dim_comes_from_first_non_empty_video_and_all_empty():
    fs = frameset_from_videos({"e": [], "a": [["1", [0, 0, 1, 1], 1.0, 5.0,
                                               np.zeros(5, np.float16)]]}, source="s")
    assert fs.dim == 5
    empty = frameset_from_videos({"e": [], "f": []}, source="s")
    assert empty.n_videos == 2 and empty.n_frames == 0 and empty.feats.shape == (0, 512)
    assert frameset_from_videos({}, source="s").n_videos == 0


def test_to_videos_round_trip():
    videos = _videos(seed=3)
    back = frameset_to_videos(frameset_from_videos(videos, source="s"))
    assert list(back) == list(videos)
    for name, frames in videos.items():
        for g, w in zip(back[name], frames, strict=True):
            assert g[0] == w[0] and g[3] == pytest.approx(w[3], rel=1e-6)
            np.testing.assert_array_equal(g[4], w[4])
            assert g[4].dtype == np.float16


def test_select_matches_rebuilding_from_subset():
    videos = _videos(seed=4)
    fs = frameset_from_videos(videos, source="s")
    rows = [5, 0, 5, 19, 2]
    sub = fs.select(rows)
    names = list(videos)
    # reference: build a frame set from just those videos (duplicates renamed)
    ref = frameset_from_videos({f"{names[r]}_{k}": videos[names[r]] for k, r in enumerate(rows)},
                               source="s")
    assert sub.names.tolist() == [names[r] for r in rows]
    np.testing.assert_array_equal(sub.offsets, ref.offsets)
    for col in ("feats", "quality", "det", "frame_no", "bbox"):
        np.testing.assert_array_equal(getattr(sub, col), getattr(ref, col))


def test_post_init_rejects_misaligned_columns():
    fs = frameset_from_videos(_videos(seed=5), source="s")
    with pytest.raises(ValueError, match="quality"):
        FrameSet(fs.names, fs.offsets, fs.feats, fs.quality[:-1], fs.det, fs.frame_no, fs.bbox)
    with pytest.raises(ValueError, match="offsets"):
        FrameSet(fs.names[:-1], fs.offsets, fs.feats, fs.quality, fs.det, fs.frame_no, fs.bbox)


@pytest.mark.parametrize("mmap", [True, False])
def test_save_load_round_trip(tmp_path, mmap):
    rng = np.random.default_rng(1)
    # large enough that feats is memory-mapped (>= 64 KiB)
    videos = {f"V{i}": [[str(j), [1, 2, 3, 4], 0.9, float(j), rng.standard_normal(512)
                         .astype(np.float16)] for j in range(20)] for i in range(10)}
    videos["empty"] = []
    fs = frameset_from_videos(videos, source="orig.pickle")
    path = tmp_path / "fs.npz"
    save_frameset(fs, path, meta={"k": "v"})
    back = load_frameset(path, mmap=mmap)
    assert back.source == "orig.pickle" and back.names.dtype == object
    assert back.names.tolist() == fs.names.tolist()
    assert isinstance(back.names[0], str)
    for col in ("offsets", "feats", "quality", "det", "frame_no", "bbox"):
        a, b = getattr(back, col), getattr(fs, col)
        assert type(a) is np.ndarray and a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    back.feats[0, 0] = 99  # copy-on-write: writable, file untouched
    assert load_frameset(path).feats[0, 0] == fs.feats[0, 0]
    assert read_frameset_meta(path)["k"] == "v"
    with np.load(path) as z:  # a plain .npz, names as unicode
        assert z["names"].dtype.kind == "U"


def test_load_frameset_bad_files(tmp_path):
    fs = frameset_from_videos(_videos(seed=6), source="s")
    path = tmp_path / "fs.npz"
    save_frameset(fs, path)
    data = path.read_bytes()
    (tmp_path / "trunc.npz").write_bytes(data[: len(data) // 2])
    (tmp_path / "junk.npz").write_bytes(b"not a zip at all")
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    for name in ("trunc.npz", "junk.npz", "other.npz"):
        with pytest.raises(DataError, match=name):
            load_frameset(tmp_path / name)
    with pytest.raises(FileNotFoundError):
        load_frameset(tmp_path / "missing.npz")
