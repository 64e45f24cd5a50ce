"""core.io.formats: safe pickles (incl. a hand-built Python 2 stream), cache, GT, submissions."""

from __future__ import annotations

import os
import pickle
import struct
import time

import numpy as np
import pytest

from core.errors import DataError
from core.io import load_pickle_safe
from core.io.formats import (GroundTruth, check_ground_truth, read_features,
                          read_ground_truth, read_submission, write_features,
                          write_ground_truth, write_submission)
from core.io.frames import frameset_to_videos

RNG = np.random.default_rng(7)


def _videos(n_videos: int = 6, dim: int = 16, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    out = {}
    for i in range(n_videos):
        n = int(rng.integers(0, 5)) if i else 3  # first video non-empty, some empty
        out[f"VID_{i:04d}"] = [
            [str(3 * j + 1), [float(j), 2.0, 30.0 + j, 40.0], float(rng.uniform(0.9, 1)),
             float(rng.uniform(-30, 200)), rng.standard_normal(dim).astype(np.float16)]
            for j in range(n)]
    return out


def _assert_same_videos(got: dict, want: dict) -> None:
    assert list(got) == list(want)
    for name in want:
        assert len(got[name]) == len(want[name])
        for g, w in zip(got[name], want[name]):
            assert g[0] == w[0]
            np.testing.assert_allclose(g[1], w[1])
            assert g[2] == pytest.approx(w[2], rel=1e-6)
            assert g[3] == pytest.approx(w[3], rel=1e-6)
            assert g[4].dtype == np.float16
            np.testing.assert_array_equal(g[4], w[4])


# --------------------------------------------------------------------------- #
# a Python 2 protocol-2 pickle written opcode by opcode
# --------------------------------------------------------------------------- #
def _sbs(b: bytes) -> bytes:  # SHORT_BINSTRING (py2 str)
    assert len(b) < 256
    return b"U" + bytes([len(b)]) + b


def _py2_str(b: bytes) -> bytes:  # SHORT_BINSTRING or BINSTRING, as py2 chose
    return _sbs(b) if len(b) < 256 else b"T" + struct.pack("<i", len(b)) + b


def _py2_int(n: int) -> bytes:  # BININT1 or BININT2
    return b"K" + bytes([n]) if n < 256 else b"M" + struct.pack("<H", n)


def _py2_dtype(code: bytes, memo: dict) -> bytes:
    if code in memo:
        return b"h" + bytes([memo[code]])  # BINGET
    memo[code] = len(memo) + 1
    return (b"cnumpy\ndtype\n" + _sbs(code) + b"K\x00K\x01\x87R"
            + b"(K\x03" + _sbs(b"<") + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"
            + b"q" + bytes([memo[code]]))  # BINPUT


def _py2_array(a: np.ndarray, memo: dict) -> bytes:
    return (b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85"
            + _sbs(b"b") + b"\x87R"
            + b"(K\x01" + _py2_int(a.shape[0]) + b"\x85"
            + _py2_dtype(a.dtype.str[1:].encode(), memo)
            + b"\x89" + _py2_str(a.tobytes()) + b"tb")


def _py2_scalar(x: np.float32, memo: dict) -> bytes:
    return (b"cnumpy.core.multiarray\nscalar\n" + _py2_dtype(b"f4", memo)
            + _sbs(np.float32(x).tobytes()) + b"\x86R")


def _py2_pickle(videos: dict) -> bytes:
    """dict {bytes: [[bytes, [floats], float, np.float32, f16 array]]} as Python 2 wrote it."""
    memo: dict = {}
    out = [b"\x80\x02}(" ]
    for key, frames in videos.items():
        out.append(_sbs(key) if isinstance(key, bytes) else
                   b"X" + struct.pack("<I", len(key.encode())) + key.encode())
        out.append(b"](")
        for frame_str, bbox, det, quality, feat in frames:
            out.append(b"](" + _sbs(frame_str) + b"](" +
                       b"".join(b"G" + struct.pack(">d", v) for v in bbox) + b"e"
                       + b"G" + struct.pack(">d", det) + _py2_scalar(quality, memo)
                       + _py2_array(feat, memo) + b"e")
        out.append(b"e")
    out.append(b"u.")
    return b"".join(out)


@pytest.mark.parametrize("dim", [100, 512])  # 200 bytes: SHORT_BINSTRING, 1024: BINSTRING
def test_hand_written_python2_pickle_loads(tmp_path, dim):
    feats = RNG.standard_normal((3, dim)).astype(np.float16)
    box = [1.0, 2.0, 3.0, 4.0]
    raw = {b"IQIYI_VID_VAL_0000001": [[b"12", box, 0.99, np.float32(57.5), feats[0]],
                                      [b"15", [5.0, 6.0, 7.0, 8.0], 0.95, np.float32(-3.25),
                                       feats[1]]],
           b"IQIYI_VID_VAL_0000002.mp4": [],
           "IQIYI_VID_VAL_0000003": [[b"4", [0.0, 0.0, 1.0, 1.0], 0.5, np.float32(120.0),
                                      feats[2]]]}
    path = tmp_path / "py2.pickle"
    path.write_bytes(_py2_pickle(raw))

    loaded = load_pickle_safe(path)
    assert list(loaded) == [b"IQIYI_VID_VAL_0000001", b"IQIYI_VID_VAL_0000002.mp4",
                            "IQIYI_VID_VAL_0000003"]
    first = loaded[b"IQIYI_VID_VAL_0000001"][0]
    assert first[0] == b"12" and first[2] == 0.99 and first[3] == np.float32(57.5)
    assert first[4].dtype == np.float16 and first[4].shape == (dim,)
    np.testing.assert_array_equal(first[4], feats[0])

    fs = read_features(path, cache_dir=tmp_path / "cache")
    assert fs.names.tolist() == ["IQIYI_VID_VAL_0000001", "IQIYI_VID_VAL_0000002",
                                 "IQIYI_VID_VAL_0000003"]
    assert fs.offsets.tolist() == [0, 2, 2, 3]
    assert fs.frame_no.tolist() == [12, 15, 4]
    assert fs.quality.tolist() == [57.5, -3.25, 120.0]
    np.testing.assert_allclose(fs.det, [0.99, 0.95, 0.5], rtol=1e-6)
    np.testing.assert_array_equal(fs.bbox[1], [5, 6, 7, 8])
    assert fs.feats.dtype == np.float16
    np.testing.assert_array_equal(fs.feats, feats)


# --------------------------------------------------------------------------- #
# malicious pickles
# --------------------------------------------------------------------------- #
class _Payload:
    def __init__(self, func, args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _malicious(kind: str, marker) -> object:
    import subprocess

    cmd = f"touch {marker}"
    return {
        "os.system": _Payload(os.system, (cmd,)),
        "subprocess": _Payload(subprocess.call, (["touch", str(marker)],)),
        "eval": _Payload(eval, (f"open({str(marker)!r}, 'w').close()",)),
    }[kind]


@pytest.mark.parametrize("kind,refused", [("os.system", "posix.system"),
                                          ("subprocess", ".call"),  # py2 name: commands.call
                                          ("eval", "eval")])  # py2 name: __builtin__.eval
@pytest.mark.parametrize("protocol", [2, 4])
def test_malicious_pickle_is_refused_and_does_not_run(tmp_path, kind, refused, protocol):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pickle"
    # the payload hides inside an otherwise valid features dict
    path.write_bytes(pickle.dumps({b"v": [[b"1", [0, 0, 1, 1], 0.9, 50.0,
                                           _malicious(kind, marker)]]}, protocol=protocol))
    with pytest.raises(DataError) as info:
        load_pickle_safe(path)
    assert str(path) in str(info.value) and refused in str(info.value)
    with pytest.raises(DataError):
        read_features(path, cache_dir=tmp_path / "cache")
    assert not marker.exists()
    # control: the same file really is dangerous for a plain unpickler
    pickle.loads(path.read_bytes())
    assert marker.exists()


def test_object_array_from_raw_bytes_is_refused(tmp_path):
    # dtype 'O' with raw bytes as data would turn 8 bytes into a PyObject pointer
    good = b"\x80\x02" + _py2_array(np.array([7], dtype="<i8"), {}) + b"."
    path = tmp_path / "objarr.pickle"
    path.write_bytes(good)
    assert load_pickle_safe(path).tolist() == [7]  # control: the stream is well formed
    path.write_bytes(good.replace(_sbs(b"i8"), _sbs(b"O8")))
    with pytest.raises(DataError, match="objarr.pickle"):
        load_pickle_safe(path)


def test_tampered_dtype_flags_are_dropped(tmp_path):
    # BUILD on a float dtype may set the "holds objects" flag (0x3f); numpy would then
    # treat the 8 data bytes as a PyObject pointer (a segfault when the array is used
    # or freed). The loader rebuilds the dtype from its type string instead.
    good = b"\x80\x02" + _py2_array(np.array([7], dtype="<i8"), {}) + b"."
    assert good.count(b"K\x00tbq") == 1
    path = tmp_path / "flags.pickle"
    path.write_bytes(good.replace(b"K\x00tbq", b"K\x3ftbq"))
    out = load_pickle_safe(path)
    assert type(out) is np.ndarray and not out.dtype.hasobject and out.tolist() == [7]


@pytest.mark.parametrize("stream,refused", [
    # _reconstruct of something other than ndarray (here: a dtype)
    (b"\x80\x02cnumpy.core.multiarray\n_reconstruct\ncnumpy\ndtype\nK\x00\x85U\x01b\x87R.",
     "_reconstruct"),
    # an object-dtype numpy scalar built from raw bytes
    (b"\x80\x02cnumpy.core.multiarray\nscalar\ncnumpy\ndtype\nU\x02O8K\x00K\x01\x87R"
     b"U\x08AAAAAAAA\x86R.", "dtype object"),
])
def test_numpy_globals_cannot_build_objects(tmp_path, stream, refused):
    path = tmp_path / "np.pickle"
    path.write_bytes(stream)
    with pytest.raises(DataError, match=refused):
        load_pickle_safe(path)


def test_direct_ndarray_call_is_refused(tmp_path):
    # numpy.ndarray((2,), dtype('O'), 16 raw bytes) called directly (REDUCE): an object
    # array whose pointers are file bytes; it segfaulted the loader's caller (regression)
    stream = (b"\x80\x02cnumpy\nndarray\nK\x02\x85cnumpy\ndtype\nU\x02%sK\x00K\x01\x87R"
              b"U\x10" + b"A" * 16 + b"\x87R.")
    control = pickle.loads(stream % b"i8", encoding="bytes")  # the stream is well formed
    assert control.tolist() == [int.from_bytes(b"A" * 8, "little")] * 2
    for code in (b"O8", b"i8"):  # numpy never pickles a direct call: refuse any
        path = tmp_path / "ndarray.pickle"
        path.write_bytes(stream % code)
        with pytest.raises(DataError, match="refused.*numpy.ndarray"):
            load_pickle_safe(path)


def test_codecs_encode_only_latin1(tmp_path):
    # _codecs.encode is admitted for py3 protocol-2 bytes, not as a general codec hook
    path = tmp_path / "codec.pickle"
    path.write_bytes(b"\x80\x02c_codecs\nencode\nX\x03\x00\x00\x00abcX\x05\x00\x00\x00rot13\x86R.")
    with pytest.raises(DataError, match="codec.pickle"):
        load_pickle_safe(path)


# --------------------------------------------------------------------------- #
# features: round trip and cache
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_python3_pickles_of_every_protocol_load(tmp_path, protocol):
    videos = _videos(seed=protocol)
    path = tmp_path / "f.pickle"
    path.write_bytes(pickle.dumps({k.encode(): v for k, v in videos.items()}, protocol=protocol))
    _assert_same_videos(frameset_to_videos(read_features(path, cache=False)), videos)


def test_numpy_frombuffer_refuses_object_dtype(tmp_path):
    # protocol 5 admits numpy's _frombuffer; it must not become a way to build objects
    # _frombuffer(8 raw bytes, dtype(code), shape (1,), 'C'): with 'O8' the bytes would
    # be read as a PyObject pointer
    stream = (b"\x80\x05cnumpy._core.numeric\n_frombuffer\n(C\x08AAAAAAAAcnumpy\ndtype\n"
              b"X\x02\x00\x00\x00%s\x85RK\x01\x85X\x01\x00\x00\x00CtR.")
    path = tmp_path / "obj.pickle"
    path.write_bytes(stream % b"i8")  # control: the stream itself is well formed
    assert load_pickle_safe(path).tolist() == [int.from_bytes(b"A" * 8, "little")]
    path.write_bytes(stream % b"O8")
    with pytest.raises(DataError, match="obj.pickle.*dtype object"):
        load_pickle_safe(path)


@pytest.mark.parametrize("bytes_keys", [True, False])
def test_write_read_features_round_trip(tmp_path, bytes_keys):
    videos = _videos()
    path = tmp_path / "f.pickle"
    write_features(path, videos, bytes_keys=bytes_keys)
    raw = load_pickle_safe(path)
    assert all(isinstance(k, bytes if bytes_keys else str) for k in raw)
    fs = read_features(path, cache=False)
    assert fs.source == str(path)
    _assert_same_videos(frameset_to_videos(fs), videos)


def test_read_features_cache_hit_invalidation_and_corruption(tmp_path):
    videos = _videos(seed=1)
    path, cache = tmp_path / "f.pickle", tmp_path / "cache"
    write_features(path, videos)
    first = read_features(path, cache_dir=cache)
    entries = list(cache.glob("*.npz"))
    assert len(entries) == 1

    # a hit never unpickles: make the pickle unreadable but keep size and mtime
    st = path.stat()
    data = path.read_bytes()
    path.write_bytes(b"\x00" * len(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    hit = read_features(path, cache_dir=cache)
    np.testing.assert_array_equal(hit.feats, first.feats)
    assert hit.names.tolist() == first.names.tolist() and hit.source == str(path)
    np.testing.assert_array_equal(hit.offsets, first.offsets)

    # a new mtime invalidates: the zeros now fail to unpickle
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    with pytest.raises(DataError, match="f.pickle"):
        read_features(path, cache_dir=cache)

    # new content -> new entry, the old one is dropped
    videos2 = _videos(seed=2)
    write_features(path, videos2)
    os.utime(path, ns=(time.time_ns(), st.st_mtime_ns + 2 * 10**9))
    second = read_features(path, cache_dir=cache)
    _assert_same_videos(frameset_to_videos(second), videos2)
    entries = list(cache.glob("*.npz"))
    assert len(entries) == 1

    # a corrupt entry is ignored and rebuilt
    entries[0].write_bytes(b"garbage")
    again = read_features(path, cache_dir=cache)
    _assert_same_videos(frameset_to_videos(again), videos2)
    assert entries[0].stat().st_size > 100


def test_stale_entries_dropped_even_with_glob_characters_in_name(tmp_path):
    path, cache = tmp_path / "f[1]*.pickle", tmp_path / "cache"
    write_features(path, _videos(seed=3))
    read_features(path, cache_dir=cache)
    os.utime(path, ns=(time.time_ns(), path.stat().st_mtime_ns + 10**9))
    read_features(path, cache_dir=cache)
    assert len(list(cache.iterdir())) == 1


def test_read_features_uses_env_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("VIDID_CACHE", str(tmp_path / "envcache"))
    path = tmp_path / "f.pickle"
    write_features(path, _videos())
    read_features(path)
    assert len(list((tmp_path / "envcache").glob("*.npz"))) == 1


def test_read_features_unwritable_cache_warns(tmp_path):
    path = tmp_path / "f.pickle"
    write_features(path, _videos())
    blocker = tmp_path / "file_not_dir"
    blocker.write_text("x")
    with pytest.warns(UserWarning, match="feature cache"):
        fs = read_features(path, cache_dir=blocker / "sub")
    assert fs.n_videos == 6


def test_missing_and_directory(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        read_features(tmp_path / "nope.pickle")
    assert "nope.pickle" in str(info.value)
    with pytest.raises(DataError, match="is a directory"):
        read_features(tmp_path)


# --------------------------------------------------------------------------- #
# ground truth
# --------------------------------------------------------------------------- #
def test_ground_truth_both_layouts_agree(tmp_path):
    labels = {"A": 3, "B": 1, "C": 3, "D": 2}
    for layout in ("video_id", "id_videos"):
        path = tmp_path / f"{layout}.txt"
        write_ground_truth(path, labels, layout=layout)
        gt = read_ground_truth(path)
        assert gt.layout == layout and gt.labels == labels and gt.path == str(path)
        assert gt.identities == [1, 2, 3]
        assert gt.by_identity() == {1: ["B"], 2: ["D"], 3: ["A", "C"]}
    assert (tmp_path / "video_id.txt").read_text() == "A.mp4 3\nB.mp4 1\nC.mp4 3\nD.mp4 2\n"
    assert (tmp_path / "id_videos.txt").read_text() == "1 B.mp4\n2 D.mp4\n3 A.mp4 C.mp4\n"


def test_ground_truth_tolerates_crlf_blank_lines_trailing_space(tmp_path):
    path = tmp_path / "gt.txt"
    path.write_bytes(b"\r\n12 x.mp4 y.mp4  \r\n\r\n   \r\n7 z.mp4\t\r\n")
    gt = read_ground_truth(path)
    assert gt.layout == "id_videos" and gt.labels == {"x": 12, "y": 12, "z": 7}
    path.write_bytes(b"\xef\xbb\xbfx.mp4 4\r\ny 4 \n")
    assert read_ground_truth(path).labels == {"x": 4, "y": 4}
    # a single 'ID VIDEO' line is the id_videos layout
    path.write_text("5 v.mp4\n")
    assert read_ground_truth(path).layout == "id_videos"


def test_check_ground_truth(tmp_path):
    gt = GroundTruth({f"v{i}": 1 for i in range(8)}, "gt.txt", "video_id")
    check_ground_truth(gt, [f"v{i}.mp4" for i in range(10)], features_path="f.pickle")
    with pytest.raises(DataError) as info:
        check_ground_truth(gt, ["v0", "v1"], features_path="f.pickle")
    msg = str(info.value)
    assert "gt.txt" in msg and "6 of 8" in msg and "'v2'" in msg and "f.pickle" in msg
    assert "'v7'" not in msg  # only the first few are named


# --------------------------------------------------------------------------- #
# submissions
# --------------------------------------------------------------------------- #
def test_submission_round_trip_and_official_text(tmp_path):
    ranking = {3: ["c", "a.mp4", "c"], 1: [f"v{i}" for i in range(100)], 2: []}
    path = tmp_path / "sub.txt"
    write_submission(path, ranking)
    lines = path.read_text().splitlines()
    assert lines[0].startswith("1 v0.mp4 v1.mp4") and len(lines[0].split()) == 101
    assert lines[1] == "2" and lines[2] == "3 c.mp4 a.mp4 c.mp4"
    got = read_submission(path)
    assert list(got) == [1, 2, 3]
    assert got[3] == ["c", "a", "c"]  # duplicates kept, canonical names, file order
    assert got[1] == [f"v{i}" for i in range(100)]


def test_writers_refuse_names_that_would_split_a_line(tmp_path):
    with pytest.raises(DataError, match="'a b'"):
        write_submission(tmp_path / "s.txt", {1: ["ok", "a b"]})
    with pytest.raises(DataError, match="empty"):
        write_ground_truth(tmp_path / "g.txt", {"": 1})
    assert not (tmp_path / "s.txt").exists() and not (tmp_path / "g.txt").exists()


def test_write_submission_refuses_more_than_100(tmp_path):
    with pytest.raises(DataError, match="101 videos"):
        write_submission(tmp_path / "s.txt", {1: [f"v{i}" for i in range(101)]})
    assert not (tmp_path / "s.txt").exists()
