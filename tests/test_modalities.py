"""Head, body and audio files: round trips, bad input, sibling discovery, pooling, the dataset."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from core.errors import DataError
from core.features.modalities import aligned_frames, open_multimodal, pool_modality
from core.features.dataset import open_split
from core.io.modalities import (check_modalities, modality_frameset, read_modality,
                                sibling_paths, write_modality)


def _f(dim: int = 8, value: float = 1.0) -> np.ndarray:
    return np.full(dim, value, np.float16)


def _py2_pickle(path: Path, data: dict) -> None:
    """Like the shipped files: protocol 2, bytes keys."""
    with open(path, "wb") as fh:
        pickle.dump({(k.encode() if isinstance(k, str) else k): v for k, v in data.items()},
                    fh, protocol=2)


# --------------------------------------------------------------------------- round trips
@pytest.mark.parametrize("modality", ["head", "body", "audio"])
def test_round_trip_bytes_keys_mp4_names_empty_and_missing(tmp_path, modality) -> None:
    rng = np.random.default_rng(0)
    feats = [rng.standard_normal(16).astype(np.float16) for _ in range(3)]
    if modality == "head":
        videos = {"a.mp4": [["3", [0, 0, 4, 4], 0.9, feats[0]], ["5", [1, 1, 5, 5], 0.5, feats[1]]],
                  "b": [], "c": [["1", [0, 0, 1, 1], 0.99, feats[2]]]}
    elif modality == "body":
        videos = {"a.mp4": [["3", [0, 0, 4, 4], feats[0]], ["5", [1, 1, 5, 5], feats[1]]],
                  "b": [], "c": [["1", [0, 0, 1, 1], feats[2]]]}
    else:  # "b" is missing: a video may lack audio
        videos = {"a.mp4": feats[0], "c": feats[2]}
    path = tmp_path / f"{modality}_val.pickle"
    _py2_pickle(path, videos)
    for cache in (False, True, True):  # the second cached read comes from the .npz
        fs = read_modality(path, modality, cache=cache, cache_dir=tmp_path / "cache")
        want = ["a", "b", "c"] if modality != "audio" else ["a", "c"]
        assert fs.names.tolist() == want
        assert fs.dim == 16 and fs.feats.dtype == np.float16
        np.testing.assert_array_equal(fs.feats[0], feats[0])
        np.testing.assert_array_equal(fs.feats[-1], feats[2])
        if modality == "head":
            assert fs.offsets.tolist() == [0, 2, 2, 3]
            np.testing.assert_allclose(fs.quality, [0.9, 0.5, 0.99], rtol=1e-6)  # det scores
            assert fs.frame_no.tolist() == [3, 5, 1]
        elif modality == "body":
            assert fs.offsets.tolist() == [0, 2, 2, 3]
            assert (fs.quality == 1).all()
        else:
            assert fs.offsets.tolist() == [0, 1, 2]
    assert list((tmp_path / "cache").glob(f"{modality}-*.npz"))


def test_write_modality_writes_the_real_layout(tmp_path) -> None:
    path = tmp_path / "audio_x.pickle"
    write_modality(path, "audio", {"v1": _f(4)})
    with open(path, "rb") as fh:
        raw = pickle.load(fh, encoding="bytes")
    assert list(raw) == [b"v1"] and raw[b"v1"].dtype == np.float16


@pytest.mark.parametrize("modality,videos,message", [
    ("head", {"v1": [["1", [0, 0, 1, 1], 0.9, _f(8)], ["2", [0, 0, 1, 1], 0.9, _f(6)]]},
     "head_val.pickle: video 'v1' frame 1: feature has 6 values, expected 8"),
    ("head", {"v1": [["1", [0, 0, 1, 1], _f(8)]]},
     "head_val.pickle: video 'v1' frame 0: a head frame must have 4 fields"),
    ("head", {"v1": [["1", [0, 0, 1, 1], "x", _f(8)]]},
     "head_val.pickle: video 'v1' frame 0: detection score must be a number"),
    ("body", {"v1": [["1", [0, 0, 1, 1], 0.9, _f(8)]]},
     "body_val.pickle: video 'v1' frame 0: a body frame must have 3 fields"),
    ("body", {"v2": [["1", [0, 0, 1], _f(8)]]},
     "body_val.pickle: video 'v2' frame 0: bbox must be 4 numbers"),
    ("audio", {"v1": _f(8), "v2": _f(4)}, "audio_val.pickle: video 'v2': feature has 4 values"),
    ("audio", {"v1": [1.0, 2.0]}, "audio_val.pickle: video 'v1': audio feature is a list"),
    ("audio", {"v1": np.array([1.0, np.inf], np.float16)}, "audio_val.pickle: video 'v1': "
                                                           "feature holds a non-finite value"),
])
def test_bad_input_is_one_line_naming_the_file_and_video(tmp_path, modality, videos, message) -> None:
    path = tmp_path / f"{modality}_val.pickle"
    _py2_pickle(path, videos)
    with pytest.raises(DataError) as err:
        read_modality(path, modality, cache=False)
    assert message in str(err.value) and "\n" not in str(err.value)
    assert str(err.value).startswith(str(path))


def test_refuses_code_in_a_modality_pickle(tmp_path) -> None:
    path = tmp_path / "body_val.pickle"
    path.write_bytes(b"cos\nsystem\n(S'echo hi'\ntR.")
    with pytest.raises(DataError, match="refused"):
        read_modality(path, "body", cache=False)


def test_not_a_dict_and_unknown_modality(tmp_path) -> None:
    with pytest.raises(DataError, match="expected a dict"):
        modality_frameset([1, 2], "audio", source="audio_x.pickle")
    with pytest.raises(ValueError, match="unknown modality 'smell'"):
        check_modalities("face,smell")


def test_sibling_paths(tmp_path) -> None:
    for name in ("face_val.pickle", "head_val.pickle", "audio_val_v2.pickle",
                 "face_train_v2.pickle", "head_train.pickle", "body_train_v2.pickle"):
        (tmp_path / name).write_bytes(b"")
    val = sibling_paths(tmp_path / "face_val.pickle")
    assert {m: p.name for m, p in val.items()} == {
        "face": "face_val.pickle", "head": "head_val.pickle", "audio": "audio_val_v2.pickle"}
    train = sibling_paths(tmp_path / "face_train_v2.pickle")
    assert {m: p.name for m, p in train.items()} == {
        "face": "face_train_v2.pickle", "head": "head_train.pickle", "body": "body_train_v2.pickle"}
    assert set(sibling_paths(tmp_path / "other.pickle")) == {"face"}


# --------------------------------------------------------------------------- pooling
def test_head_frames_are_weighted_by_detection_score() -> None:
    a, b = np.array([1, 0], np.float16), np.array([0, 1], np.float16)
    fs = modality_frameset({"v": [["1", [0, 0, 1, 1], 0.9, a], ["2", [0, 0, 1, 1], 0.3, b]]},
                           "head", source="head_x")
    x = pool_modality(fs, "head").X[0]
    np.testing.assert_allclose(x, np.array([0.9, 0.3]) / np.hypot(0.9, 0.3), rtol=1e-3)
    body = modality_frameset({"v": [["1", [0, 0, 1, 1], a], ["2", [0, 0, 1, 1], b]]},
                             "body", source="body_x")
    np.testing.assert_allclose(pool_modality(body, "body").X[0], [0.7071, 0.7071], rtol=1e-3)


def test_aligned_frames_gives_missing_videos_no_frame() -> None:
    fs = modality_frameset({"a": [["1", [0, 0, 1, 1], 0.5, _f(2)]],
                            "b": [["1", [0, 0, 1, 1], 0.7, _f(2, 2)]]}, "head", source="h")
    al = aligned_frames(fs, np.array(["b", "z", "a"], dtype=object))
    assert al.offsets.tolist() == [0, 1, 1, 2]
    np.testing.assert_allclose(al.quality, [0.7, 0.5])


# --------------------------------------------------------------------------- the dataset
def test_open_multimodal_keeps_faceless_videos(tiny_demo) -> None:
    face = open_split(tiny_demo / "face_test.pickle", tiny_demo / "test_gt.txt")
    lv = open_multimodal(tiny_demo / "face_test.pickle", tiny_demo / "test_gt.txt")
    assert lv.modal.modalities == ("face", "head", "body", "audio")
    assert len(lv) > len(face)  # the faceless videos are in
    faceless = ~lv.modal.has("face")
    assert set(lv.names[faceless]) == set(face.pooled.empty)
    assert (lv.X[faceless] == 0).all() and (lv.frames.lengths[faceless] == 0).all()
    # row-aligned: the face block of a video with a face is its face-only pooled vector
    rows = np.flatnonzero(~faceless)
    np.testing.assert_array_equal(lv.X[rows], face.X)
    assert lv.names[rows].tolist() == face.names.tolist()
    assert lv.modal.input_matrix().shape == (len(lv), 4 * 512 + 4)
    # ("face",) is the face-only dataset itself
    only = open_multimodal(tiny_demo / "face_test.pickle", tiny_demo / "test_gt.txt",
                           modalities="face")
    assert only.modal is None and only.names.tolist() == face.names.tolist()


def test_open_multimodal_names_a_missing_modality(tmp_path, tiny_demo) -> None:
    face = tmp_path / "face_val.pickle"
    face.write_bytes((tiny_demo / "face_val.pickle").read_bytes())
    with pytest.raises(DataError, match="no head features beside it"):
        open_multimodal(face, None, modalities="face,head")
