"""The synthetic dataset: exact file formats, determinism, statistics, planted structure.

Everything is read back with plain ``pickle.load(encoding='bytes')`` and hand-written
parsing, never with vidid's own readers, so these tests check the files against the
format itself.
"""

from __future__ import annotations

import functools
import hashlib
import pickle
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from core.io.pickle_stream import write_features_stream
from core.synth import KINDS, PRESETS, generate, is_demo_dir

SPLITS = ("train", "val", "test")


# --- helpers (independent of core) ----------------------------------------------------
@functools.lru_cache(maxsize=8)
def _load(folder: Path, split: str) -> dict:
    """Plain ``pickle.load``; cached, so treat the result as read-only."""
    with open(folder / f"face_{split}.pickle", "rb") as fh:
        return pickle.load(fh, encoding="bytes")


def _truth(folder: Path) -> dict[str, tuple[str, str, str]]:
    lines = (folder / "truth.tsv").read_text().splitlines()
    assert lines[0] == "video\tsplit\tperson\tkind"
    out = {}
    for line in lines[1:]:
        video, split, person, kind = line.split("\t")
        out[video] = (split, person, kind)
    return out


def _train_gt(folder: Path) -> dict[str, int]:
    out = {}
    for line in (folder / "train_gt.txt").read_text().splitlines():
        video, ident = line.split(" ")
        assert video.endswith(".mp4")
        out[video[:-4]] = int(ident)
    return out


def _id_videos_gt(folder: Path, split: str) -> dict[int, list[str]]:
    out = {}
    for line in (folder / f"{split}_gt.txt").read_text().splitlines():
        ident, *videos = line.split(" ")
        assert int(ident) not in out and videos
        assert all(v.endswith(".mp4") for v in videos)
        out[int(ident)] = [v[:-4] for v in videos]
    return out


def _pool(videos: dict, weighting: str) -> tuple[list[str], np.ndarray]:
    """Weighted mean of raw frame features, L2-normalised; empty videos skipped."""
    names, rows = [], []
    for key, frames in videos.items():
        if not frames:
            continue
        feats = np.array([f[4] for f in frames], np.float32)
        q = np.array([f[3] for f in frames], np.float64)
        w = np.maximum(q, 0) if weighting == "quality" else np.ones(len(q))
        if w.sum() == 0:
            w = np.ones(len(q))
        v = w @ feats
        names.append(key.decode())
        rows.append(v / np.linalg.norm(v))
    return names, np.array(rows)


def _official_map(gt: dict[int, list[str]], ranking: dict[int, list[str]]) -> float:
    """mean over identities of (sum over hits of hits_so_far / rank) / n_gt (top 100)."""
    aps = []
    for ident, videos in gt.items():
        relevant, hits, total = set(videos), 0, 0.0
        for rank, name in enumerate(ranking.get(ident, [])[:100], 1):
            if name in relevant:
                hits += 1
                total += hits / rank
        aps.append(total / len(relevant))
    return float(np.mean(aps))


def _centroid_map(folder: Path, weighting: str, *, distractors: bool) -> float:
    """Nearest-centroid baseline: per identity, rank the videos of a split by cosine to
    the identity's mean train embedding; official mAP, averaged over val and test."""
    truth = _truth(folder)
    labels = _train_gt(folder)
    tn, tx = _pool(_load(folder, "train"), weighting)
    tl = np.array([labels[n] for n in tn])
    maps = []
    for split in ("val", "test"):
        vn, vx = _pool(_load(folder, split), weighting)
        if not distractors:
            keep = np.array([truth[n][2] == "identity" for n in vn])
            vn, vx = [n for n, k in zip(vn, keep) if k], vx[keep]
        gt = _id_videos_gt(folder, split)
        ranking = {}
        for ident in gt:
            c = tx[tl == ident].mean(0)
            order = np.argsort(-(vx @ (c / np.linalg.norm(c))), kind="stable")[:100]
            ranking[ident] = [vn[j] for j in order]
        maps.append(_official_map(gt, ranking))
    return float(np.mean(maps))


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.iterdir()) if p.is_file()}


# --- pickle_stream --------------------------------------------------------------------
def _frame(i: int, rng: np.random.Generator) -> list:
    return [str(i), [1.0, 2.0, 3.5, 4.5], 0.99, float(i), rng.standard_normal(512).astype(np.float16)]


@pytest.mark.parametrize("batch_size", [1, 3, 1000])
def test_stream_equals_plain_pickle(tmp_path: Path, batch_size: int) -> None:
    rng = np.random.default_rng(0)
    shared = _frame(7, rng)  # the same object in many videos and batches: memo reuse
    videos = {f"V{i}": [shared, *[_frame(j, rng) for j in range(i % 4)], shared] for i in range(10)}
    videos["EMPTY"] = []
    path = tmp_path / "f.pickle"
    assert write_features_stream(path, videos.items(), batch_size=batch_size) == 11
    with open(path, "rb") as fh:
        got = pickle.load(fh, encoding="bytes")
    assert list(got) == [k.encode() for k in videos]
    for key, frames in videos.items():
        back = got[key.encode()]
        assert len(back) == len(frames)
        for a, b in zip(back, frames):
            assert a[:4] == b[:4]
            assert a[4].dtype == np.float16 and np.array_equal(a[4], b[4])
    # Byte-level: a protocol-2 pickle of one dict.
    raw = path.read_bytes()
    assert raw[:3] == b"\x80\x02}" and raw[-1:] == b"."


def test_stream_key_styles(tmp_path: Path) -> None:
    items = [("A", []), ("B.mp4", [])]
    write_features_stream(tmp_path / "s.pickle", items, bytes_keys=False, suffix=True)
    with open(tmp_path / "s.pickle", "rb") as fh:
        assert list(pickle.load(fh)) == ["A.mp4", "B.mp4"]
    write_features_stream(tmp_path / "b.pickle", items)
    with open(tmp_path / "b.pickle", "rb") as fh:
        assert list(pickle.load(fh, encoding="bytes")) == [b"A", b"B"]


def test_stream_rejects_duplicates_and_leaves_nothing(tmp_path: Path) -> None:
    path = tmp_path / "d.pickle"
    with pytest.raises(ValueError, match="'A' written twice"):
        write_features_stream(path, [("A", []), ("A.mp4", [])])
    with pytest.raises(TypeError, match="frames must be a list"):
        write_features_stream(path, [("A", ())])
    assert list(tmp_path.iterdir()) == []  # no target, no temp file


# --- formats --------------------------------------------------------------------------
def test_files_and_formats(tiny_demo: Path) -> None:
    names = {p.name for p in tiny_demo.iterdir()}
    assert {f"face_{s}.pickle" for s in SPLITS} | {f"{s}_gt.txt" for s in SPLITS} \
        | {"truth.tsv", "README.txt"} <= names
    assert "SYNTHETIC" in (tiny_demo / "README.txt").read_text()
    assert is_demo_dir(tiny_demo)
    truth = _truth(tiny_demo)
    seen = set()
    for split in SPLITS:
        videos = _load(tiny_demo, split)
        assert isinstance(videos, dict) and videos
        prefix = f"IQIYI_VID_{split.upper()}_"
        for key, frames in videos.items():
            assert isinstance(key, bytes) and not key.endswith(b".mp4")
            name = key.decode()
            assert name.startswith(prefix) and len(name) == len(prefix) + 7
            assert truth[name][0] == split
            assert isinstance(frames, list)
            previous = -1
            for frame in frames:
                assert isinstance(frame, list) and len(frame) == 5
                frame_str, bbox, det, quality, feat = frame
                assert isinstance(frame_str, str) and int(frame_str) >= previous
                previous = int(frame_str)
                assert isinstance(bbox, list) and len(bbox) == 4
                assert all(isinstance(x, (int, float)) for x in bbox)
                assert bbox[0] < bbox[2] and bbox[1] < bbox[3]
                assert isinstance(det, float) and isinstance(quality, float)
                assert isinstance(feat, np.ndarray)
                assert feat.dtype == np.float16 and feat.shape == (512,)
            seen.add(name)
    assert seen == set(truth)  # truth.tsv covers every video, nothing more


def test_ground_truth_matches_truth(tiny_demo: Path) -> None:
    truth = _truth(tiny_demo)
    train = _train_gt(tiny_demo)
    assert set(train) == {v for v, t in truth.items() if t[0] == "train"}  # fully labelled
    assert all(truth[v] == ("train", f"id{i}", "identity") for v, i in train.items())
    identities = set(train.values())
    assert identities == set(range(1, PRESETS["tiny"].n_identities + 1))
    for split in ("val", "test"):
        gt = _id_videos_gt(tiny_demo, split)
        assert set(gt) == identities  # known identities appear in every split
        in_gt = {v for vs in gt.values() for v in vs}
        for ident, videos in gt.items():
            assert all(truth[v] == (split, f"id{ident}", "identity") for v in videos)
        # Distractors: in the features, absent from the ground truth, never "identity".
        distractors = set(_load(tiny_demo, split)) - {v.encode() for v in in_gt}
        kinds = {truth[v.decode()][2] for v in distractors}
        assert kinds == set(KINDS) - {"identity"}
        share = len(distractors) / len(_load(tiny_demo, split))
        assert abs(share - 0.375) < 0.01, share


# --- determinism ----------------------------------------------------------------------
def test_deterministic_per_seed(tmp_path: Path, tiny_demo: Path) -> None:
    generate(tmp_path / "a", preset="tiny", seed=0)
    generate(tmp_path / "b", preset="tiny", seed=1)
    same, other = _digest(tmp_path / "a"), _digest(tmp_path / "b")
    assert same == _digest(tiny_demo)
    assert set(same) == set(other)
    assert all(same[name] != other[name] for name in same)


# --- statistics -----------------------------------------------------------------------
def test_statistics_look_real(tiny_demo: Path) -> None:
    frames = [f for s in SPLITS for fr in _load(tiny_demo, s).values() for f in fr]
    lengths = np.array([len(fr) for s in SPLITS for fr in _load(tiny_demo, s).values()])
    q = np.array([f[3] for f in frames])
    det = np.array([f[2] for f in frames])
    norm = np.array([np.linalg.norm(f[4].astype(np.float32)) for f in frames])
    assert q.min() >= -30 and q.max() <= 200 and q.min() < 0 and q.max() > 120
    assert 0.55 < np.mean((q >= 40) & (q <= 120)) < 0.9
    assert np.mean(det >= 0.9) > 0.85 and det.max() < 1
    assert 10 < lengths.mean() < 20 and lengths.max() >= 60  # long tail
    assert 0 < np.mean(lengths == 0) < 0.03  # a few empty videos
    assert norm.min() > 2 and not np.allclose(norm, 1, atol=0.1)  # not normalised
    # Norm tracks quality (rank correlation computed by hand).
    rq, rn = np.argsort(np.argsort(q)), np.argsort(np.argsort(norm))
    assert np.corrcoef(rq, rn)[0, 1] > 0.8


def test_demo_is_shaped_like_the_real_2019_set(tmp_path: Path) -> None:
    """The realistic demo's ratios stay within the real set's: ~5.8 train videos per
    identity (median 4-8, long tail), 37.5 % distractors in val/test, ~30 faces per
    video, a few empty videos. Same knobs as the demo preset, fewer identities."""
    from core.synth import PRESETS, make_preset

    demo = PRESETS["demo"]
    assert PRESETS["large"].train_per_id == demo.train_per_id  # large is realistic too
    generate(tmp_path, preset=make_preset("demo", n_identities=120), seed=3)
    train = _train_gt(tmp_path)
    per_id = np.bincount(list(train.values()))[1:]
    assert 4 <= np.median(per_id) <= 8 and 4.5 <= per_id.mean() <= 7.5
    assert per_id.max() >= 2.5 * np.median(per_id) and per_id.min() >= 1  # long tail
    for split in ("val", "test"):
        videos = _load(tmp_path, split)
        labelled = sum(len(v) for v in _id_videos_gt(tmp_path, split).values())
        assert abs(1 - labelled / len(videos) - 0.375) < 0.02
        assert 2.5 <= labelled / len(per_id) <= 6.5
    lengths = np.array([len(fr) for s in SPLITS for fr in _load(tmp_path, s).values()])
    assert 25 <= lengths[lengths > 0].mean() <= 35
    assert 0 < np.mean(lengths == 0) < 0.03
    q = np.array([f[3] for s in ("val",) for fr in _load(tmp_path, s).values() for f in fr])
    assert q.min() >= -30 and 65 <= q.mean() <= 95


# --- planted structure ----------------------------------------------------------------
def test_identities_crowded_and_lookalikes_close(tiny_demo: Path) -> None:
    truth = _truth(tiny_demo)
    labels = _train_gt(tiny_demo)
    tn, tx = _pool(_load(tiny_demo, "train"), "quality")
    tl = np.array([labels[n] for n in tn])
    means = np.array([tx[tl == i].mean(0) for i in sorted(set(tl))])
    means /= np.linalg.norm(means, axis=1, keepdims=True)
    sim = means @ means.T
    np.fill_diagonal(sim, -1)
    assert np.median(sim.max(1)) > 0.25  # not orthogonal: random 512-d would give ~0.1
    # A lookalike's pooled videos sit closer to some known identity than a recurring
    # stranger's do.
    pooled = {}
    for split in ("val", "test"):
        names, x = _pool(_load(tiny_demo, split), "quality")
        pooled.update(zip(names, x))
    by_person = defaultdict(list)
    for name, vec in pooled.items():
        by_person[truth[name][1:]].append(vec)
    closest = defaultdict(list)
    for (person, kind), vecs in by_person.items():
        closest[kind].append((np.mean(vecs, 0) @ means.T).max())
    assert np.median(closest["lookalike"]) > np.median(closest["stranger_recurring"]) + 0.1
    # Recurring strangers recur across val and test.
    splits = defaultdict(set)
    for name, (split, person, kind) in truth.items():
        if kind in ("stranger_recurring", "lookalike"):
            splits[person].add(split)
    assert sum(s == {"val", "test"} for s in splits.values()) >= 5


def test_quality_pooling_beats_plain_mean(tiny_demo: Path) -> None:
    quality = _centroid_map(tiny_demo, "quality", distractors=True)
    uniform = _centroid_map(tiny_demo, "uniform", distractors=True)
    assert quality > uniform + 0.005, (quality, uniform)


def test_distractors_cost_the_nearest_neighbour_baseline(tiny_demo: Path) -> None:
    with_d = _centroid_map(tiny_demo, "quality", distractors=True)
    without = _centroid_map(tiny_demo, "quality", distractors=False)
    # (0.954 vs 0.931 on the realistic tiny preset, 5 training videos per identity)
    assert without > with_d + 0.015, (without, with_d)
    assert 0.6 < with_d < 0.98  # hard, not hopeless


def test_recurring_strangers_are_clusterable(tiny_demo: Path) -> None:
    from sklearn.cluster import DBSCAN

    truth = _truth(tiny_demo)
    names, xs = [], []
    for split in ("val", "test"):
        n, x = _pool(_load(tiny_demo, split), "quality")
        names += n
        xs.append(x)
    x = np.vstack(xs)
    noise = np.array([truth[n][2] != "identity" for n in names])
    person = np.array([truth[n][1] for n in names])[noise]
    labels = DBSCAN(eps=1.0, min_samples=2).fit_predict(x[noise])
    iu = np.triu_indices(len(person), 1)
    same = (person[:, None] == person[None])[iu]
    together = ((labels[:, None] == labels[None]) & (labels[:, None] >= 0))[iu]
    precision = (same & together).sum() / together.sum()
    recall = (same & together).sum() / same.sum()
    assert precision > 0.8 and recall > 0.5, (precision, recall)


def test_chunks_ending_in_or_made_of_empty_videos() -> None:
    # Regression: an empty video last in a chunk used to index past the frames.
    from core.synth import model as synth_model

    cfg = PRESETS["tiny"]
    rng = np.random.default_rng(0)
    id_videos = synth_model.identity_videos(cfg, rng)
    targets = synth_model.distractor_targets(cfg, id_videos)
    people = synth_model.make_people(cfg, sum(targets), rng)
    plan = synth_model.plan_videos(cfg, people, id_videos, targets, rng)
    plan["n_frames"][:6] = [3, 0, 2, 0, 0, 0]
    lists = synth_model.render_chunk(plan, people, np.arange(4), np.random.default_rng(1))
    assert [len(frames) for frames in lists] == [3, 0, 2, 0]
    for frames in lists:
        numbers = [int(f[0]) for f in frames]
        assert numbers == sorted(numbers)
    assert synth_model.render_chunk(plan, people, np.arange(3, 6), rng) == [[], [], []]


# --- API and CLI ----------------------------------------------------------------------
def test_generate_rejects_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown preset 'huge'"):
        generate(tmp_path, preset="huge")
    with pytest.raises(ValueError, match="seed"):
        generate(tmp_path, preset="tiny", seed=-1)


def test_generate_reports_progress_and_summary(tmp_path: Path) -> None:
    calls = []
    summary = generate(tmp_path, preset="tiny", seed=5, progress=lambda f, m="": calls.append(f))
    assert calls[0] == 0.0 and calls[-1] == 1.0 and calls == sorted(calls)
    for split in SPLITS:
        videos = _load(tmp_path, split)
        assert summary[split]["videos"] == len(videos)
        assert summary[split]["frames"] == sum(len(v) for v in videos.values())
    assert sum(summary["kinds"].values()) == sum(summary[s]["videos"] for s in SPLITS)


def test_cli_writes_and_refuses_foreign_folders(tmp_path: Path, capsys) -> None:
    from core.cli import main

    out = tmp_path / "demo"
    assert main(["demo", str(out), "--preset", "tiny", "--seed", "2"]) == 0
    assert "wrote" in capsys.readouterr().out
    assert (out / "face_test.pickle").is_file() and (out / "test_gt.txt").is_file()
    assert main(["demo", str(out), "--preset", "tiny", "--seed", "2"]) == 0  # rerun is fine

    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "face_val.pickle").write_bytes(b"precious")
    (foreign / "README.txt").write_text("my own notes\n")
    assert main(["demo", str(foreign), "--preset", "tiny"]) == 2
    assert "refusing" in capsys.readouterr().err
    assert (foreign / "face_val.pickle").read_bytes() == b"precious"
