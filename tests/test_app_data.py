"""Data page (AppTest on the tiny demo), dataset detection and the upload path."""

from __future__ import annotations

import logging
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from app_helpers import APP

from core.errors import DataError

logging.getLogger("streamlit").setLevel(logging.ERROR)




def _app():
    from streamlit.testing.v1 import AppTest

    return AppTest.from_file(APP, default_timeout=60)


def _metrics(at) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def _open_folder(at, folder: Path):
    at.radio(key="data_source").set_value("Folder on this machine").run()
    at.text_input(key="data_folder").input(str(folder)).run()
    at.button(key="data_open_folder").click().run()
    return at


def test_data_page_shows_demo_counts(app_env):
    at = _app().run()
    assert not at.exception
    from dashboard.cache import datasets as data
    from dashboard.cache import sources
    from dashboard.cache import noise as noise_cache, stats as stats_cache

    demo = sources.demo_dir("tiny")
    truth = pd.read_csv(demo / "truth.tsv", sep="\t")
    from core.io.formats import read_features

    lengths = np.concatenate([read_features(demo / f"face_{s}.pickle").lengths
                              for s in ("train", "val", "test")])
    m = _metrics(at)
    assert m["Videos"] == f"{len(truth):,}"
    assert m["Identities"] == "20"
    assert m["Distractors"] == f"{int((truth['kind'] != 'identity').sum()):,}"
    assert m["Frames"] == f"{int(lengths.sum()):,}"
    assert m["Empty videos"] == str(int((lengths == 0).sum()))
    # Histograms + the pooling comparison with its KNN mAP on val.
    assert len(at.get("plotly_chart")) == 5
    assert float(m["Default (quality) 5-NN val mAP"]) > 0.5
    assert at.session_state["dataset"].kind == "demo"
    # Modality coverage: every modality file of the demo, faceless videos counted.
    cov = next(d.value for d in at.dataframe if "faceless" in d.value.columns)
    assert cov["split"].tolist() == ["train", "val", "test"]
    assert (cov[["face", "head", "body", "audio"]] > 0).all().all()
    assert cov["faceless"].sum() == (lengths == 0).sum()


def test_knn_check_samples_a_large_val_split(app_env, monkeypatch):
    """Above MAX_KNN_QUERIES val videos, the 5-NN check ranks a seeded sample (same for every
    option), says so, and scores the official mAP of that sample against an independent count."""
    from dashboard.cache import datasets as data
    from dashboard.cache import sources
    from dashboard.cache import stats as stats_cache
    from core.learn.knn import knn_scores
    from core.learn.metrics import mean_average_precision, rank_videos

    monkeypatch.setattr(stats_cache, "MAX_KNN_QUERIES", 40)
    at = _app().run()
    assert not at.exception
    assert any("seeded sample of 40 of the" in c.value for c in at.caption)
    spec = sources.demo_spec()
    train, val = data.load_split(spec, "train"), data.load_split(spec, "val")
    rows = np.sort(np.random.default_rng(0).choice(len(val.names), 40, replace=False))
    ids = np.unique(train.ids[train.ids > 0])
    S = knn_scores(val.X[rows], train.X, train.ids, ids, k=5)
    gt: dict = {}
    for r in rows:
        if val.ids[r] > 0:
            gt.setdefault(int(val.ids[r]), []).append(val.names[r])
    want = mean_average_precision(gt, rank_videos(S, val.names[rows], ids))
    assert float(_metrics(at)["Default (quality) 5-NN val mAP"]) == pytest.approx(want, abs=5e-5)


def test_folder_without_files_shows_error_and_keeps_dataset(app_env, tmp_path):
    at = _app().run()
    before = _metrics(at)["Videos"]
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("nothing here")
    _open_folder(at, tmp_path / "empty")
    assert not at.exception
    assert any("no iQIYI-VID feature files" in e.value for e in at.error)
    assert _metrics(at)["Videos"] == before
    assert at.session_state["dataset"].kind == "demo"
    # Still usable: a missing folder is reported the same way.
    _open_folder(at, tmp_path / "does-not-exist")
    assert any("no such folder" in e.value for e in at.error) and not at.exception


def test_corrupt_pickle_shows_error(app_env, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "face_val.pickle").write_bytes(b"\x80\x02}q\x00(X\x03\x00\x00\x00abc")  # truncated
    (bad / "val_gt.txt").write_text("1 A.mp4\n")
    at = _open_folder(_app().run(), bad)
    assert not at.exception
    (msg,) = [e.value for e in at.error]
    assert "face_val.pickle" in msg and "not a valid pickle" in msg
    assert at.session_state["dataset"].kind == "demo"


def test_ground_truth_naming_unknown_video_shows_error(app_env, tmp_path, tiny_demo):
    folder = tmp_path / "gt"
    folder.mkdir()
    shutil.copy(tiny_demo / "face_val.pickle", folder)
    (folder / "val_gt.txt").write_text("1 IQIYI_VID_VAL_9999999.mp4\n")
    at = _open_folder(_app().run(), folder)
    assert not at.exception
    (msg,) = [e.value for e in at.error]
    assert "IQIYI_VID_VAL_9999999" in msg and "val_gt.txt" in msg


def test_valid_folder_becomes_active(app_env, tmp_path, tiny_demo):
    folder = tmp_path / "real"
    folder.mkdir()
    for f in ("face_val.pickle", "val_gt.txt"):
        shutil.copy(tiny_demo / f, folder)
    at = _open_folder(_app().run(), folder)
    assert not at.exception and not at.error
    truth = pd.read_csv(tiny_demo / "truth.tsv", sep="\t")
    val = truth[truth["split"] == "val"]
    m = _metrics(at)
    assert m["Videos"] == f"{len(val):,}"
    assert m["Identities"] == str(val.loc[val["kind"] == "identity", "person"].nunique())
    assert at.session_state["dataset"].root == str(folder.resolve())
    assert any("Now using" in s.value for s in at.success)
    assert any("Dataset: **real**" in c.value for c in at.sidebar.caption)


def test_work_that_would_not_fit_in_memory_is_refused_with_a_message(app_env, tmp_path,
                                                                     tiny_demo, monkeypatch):
    """Issue 6, promise 5: too little memory -> a message, never a crash; usable after."""
    import core.resources

    folder = tmp_path / "big"
    folder.mkdir()
    for f in ("face_val.pickle", "val_gt.txt"):
        shutil.copy(tiny_demo / f, folder)
    at = _app().run()
    before = _metrics(at)["Videos"]
    monkeypatch.setattr(core.resources, "available_memory_bytes", lambda: 2**20)  # 1 MiB
    _open_folder(at, folder)
    assert not at.exception
    (msg,) = [e.value for e in at.error]
    assert "not enough memory" in msg and "face_val.pickle" in msg and "GiB" in msg
    assert at.session_state["dataset"].kind == "demo" and _metrics(at)["Videos"] == before
    # Memory back: the same folder opens (the refusal was not cached).
    monkeypatch.setattr(core.resources, "available_memory_bytes", lambda: 64 * 2**30)
    _open_folder(at, folder)
    assert not at.exception and not at.error
    assert at.session_state["dataset"].root == str(folder.resolve())
    # The neighbour graph of its distractors is refused the same way on Noise clusters.
    monkeypatch.setattr(core.resources, "available_memory_bytes", lambda: 2**20)
    at.switch_page("app_pages/noise_clusters.py").run()
    assert not at.exception
    assert any("not enough memory" in e.value and "neighbour graph" in e.value
               for e in at.error)
    monkeypatch.setattr(core.resources, "available_memory_bytes", lambda: 64 * 2**30)
    at.run()
    assert not at.exception and not at.error
    assert [m for m in at.metric if m.label == "N clusters"]


def test_memory_estimates_of_the_dashboard(tmp_path, monkeypatch):
    import core.resources
    from core.resources import (
        estimate_cluster_bytes,
        estimate_dataset_bytes,
        estimate_load_bytes,
    )
    from dashboard.cache import datasets as data
    from dashboard.cache import noise as noise_cache, stats as stats_cache

    mib = 2**20
    f = tmp_path / "face_train.pickle"
    f.write_bytes(b"\0" * 100 * mib)
    g = tmp_path / "face_val.pickle"
    g.write_bytes(b"\0" * 80 * mib)
    # Never read: a first read (conversion, 1.86 bytes a pickle byte) is the peak.
    assert not data.feature_cached(f)
    assert data.estimate_load_memory([f]) == estimate_load_bytes(f)
    # Two files in order: reading the second while the first is held (1.4 x 100 MiB
    # + 1.86 x 80 MiB = 288.8 MiB) beats reading the first (186 MiB) and holding both
    # (252 MiB); plus the fixed 128 MiB.
    expect = int(1.4 * 100 * mib) + int(1.86 * 80 * mib) + 128 * mib
    assert abs(data.estimate_load_memory([f, g]) - expect) <= 1
    assert data.estimate_load_memory([f, g]) > estimate_dataset_bytes([f, g])
    monkeypatch.setattr(core.resources, "available_memory_bytes", lambda: 2**30)
    noise_cache.check_graph_fits(1000)  # 1000 vectors, 499,500 pairs: ~0.2 GiB of 1 GiB
    with pytest.raises(DataError, match="neighbour graph of 30,000 distractors"):
        noise_cache.check_graph_fits(30_000)  # capped at GRAPH_MAX_EDGES pairs: > 1 GiB
    assert estimate_cluster_bytes(30_000, noise_cache.GRAPH_MAX_EDGES) > 0.8 * 2**30
    # The edge cap is sane: its peak (~150 B a pair) stays near a gigabyte.
    assert 0.5 * 2**30 < estimate_cluster_bytes(30_000, noise_cache.GRAPH_MAX_EDGES) < 2 * 2**30


# ---------------------------------------------------------------- detection (no app)


def _touch(folder: Path, *names: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for n in names:
        (folder / n).write_bytes(b"")


def test_detect_splits_2019_and_2018_layouts(tmp_path):
    from dashboard.cache.datasets import detect_splits

    _touch(tmp_path / "y2019", "face_train_v2.pickle", "face_val_v2.pickle", "face_test.pickle",
           "train_gt.txt", "val_gt.txt", "readme.md")
    spec = detect_splits(tmp_path / "y2019")
    assert spec.split_names == ["train", "val", "test"]
    assert Path(spec.split("train").gt).name == "train_gt.txt"
    assert Path(spec.split("val").feats).name == "face_val_v2.pickle"
    assert spec.split("test").gt is None and spec.labelled_splits == ["train", "val"]
    assert [Path(f).name for f, _ in spec.train_pairs] == ["face_train_v2.pickle",
                                                           "face_val_v2.pickle"]
    assert Path(spec.eval_pair[0]).name == "face_test.pickle" and spec.eval_pair[1] is None

    _touch(tmp_path / "y2018", "face_train.pickle", "face_val.pickle", "train.txt", "val.txt")
    spec = detect_splits(tmp_path / "y2018")
    assert [Path(s.gt).name for s in spec.splits] == ["train.txt", "val.txt"]
    assert spec.eval_pair is None and spec.truth is None


def test_detect_splits_errors(tmp_path):
    from dashboard.cache.datasets import detect_splits

    _touch(tmp_path / "odd", "features.pickle")
    with pytest.raises(DataError, match="no iQIYI-VID feature files.*features.pickle"):
        detect_splits(tmp_path / "odd")
    _touch(tmp_path / "two", "face_val.pickle", "face_val_v2.pickle")
    with pytest.raises(DataError, match="two feature files for split 'val'"):
        detect_splits(tmp_path / "two")
    with pytest.raises(DataError, match="no such folder"):
        detect_splits(tmp_path / "missing")


class _Evil:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_uploaded_pickle_is_loaded_only_with_the_safe_loader(tmp_path, monkeypatch):
    """An upload that would run a command on load is refused and the command never runs."""
    from dashboard.cache import datasets as data
    from dashboard.cache import sources
    from dashboard.cache import noise as noise_cache, stats as stats_cache

    monkeypatch.setenv("VIDID_CACHE", str(tmp_path / "cache"))
    marker = tmp_path / "pwned"
    payload = pickle.dumps({b"V1": [[b"1", [0, 0, 1, 1], 0.9, 50.0, _Evil(str(marker))]]},
                           protocol=2)
    folder = sources.save_uploads([("face_val.pickle", payload),
                                ("../../val_gt.txt", b"1 V1.mp4\n")])
    assert sorted(p.name for p in folder.iterdir()) == ["face_val.pickle", "val_gt.txt"]
    assert folder.parent == tmp_path / "cache" / "uploads"  # no path traversal
    spec = data.detect_splits(folder, name="upload")
    with pytest.raises(DataError, match="refused to load '(posix|os).system'") as info:
        data.load_split(spec, "val")
    assert not marker.exists()
    # the message names the upload as the user named it, not the internal folder
    shown = data.friendly_error(info.value)
    assert shown.startswith("face_val.pickle: refused") and str(folder) not in shown
    # Same content, same folder (uploads are keyed by content).
    assert sources.save_uploads([("face_val.pickle", payload),
                              ("../../val_gt.txt", b"1 V1.mp4\n")]) == folder
    with pytest.raises(DataError, match="no files"):
        sources.save_uploads([])


def test_read_truth_and_friendly_error(tmp_path):
    from dashboard.cache.datasets import friendly_error, read_truth

    p = tmp_path / "truth.tsv"
    p.write_text("video\tsplit\tperson\tkind\n"
                 "A.mp4\tval\tid3\tidentity\nB\tval\ts00001\tlookalike\n")
    t = read_truth(p)
    assert t.loc["A", "person"] == "id3" and t.loc["B", "kind"] == "lookalike"
    p.write_text("video\tsplit\n")
    with pytest.raises(DataError, match="lacks column.*person"):
        read_truth(p)
    assert friendly_error(FileNotFoundError(2, "x", "/d/face_val.pickle")) == \
        "/d/face_val.pickle: no such file"
    assert friendly_error(DataError("f.txt: line 3:\n bad")) == "f.txt: line 3: bad"
    long = friendly_error(DataError("f.txt: line 3: " + "x" * 5_000_000))
    assert long.startswith("f.txt: line 3: xxx") and len(long) <= 400


def test_shared_loaded_arrays_are_read_only(tiny_demo):
    """Cached datasets are shared by all sessions: a page cannot mutate them."""
    from dashboard.cache import datasets as data
    from dashboard.cache import noise as noise_cache, stats as stats_cache

    lv = data.load_dataset(data.detect_splits(tiny_demo))
    for arr in (lv.X, lv.ids, lv.names):
        assert not arr.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        lv.X[0, 0] = 1.0


def test_split_table_counts_labelled_empty_videos(tiny_demo):
    """Per split, labelled + distractors = videos: a ground-truth video without faces is
    still labelled (the tiny demo has empty videos both named and not named in its GT)."""
    from core.io.formats import read_features, read_ground_truth
    from dashboard.cache import datasets as data
    from dashboard.cache import noise as noise_cache, stats as stats_cache

    table = stats_cache.dataset_stats(data.detect_splits(tiny_demo))["per_split"].set_index("split")
    n_named_empty = 0
    for s in ("train", "val", "test"):
        fs = read_features(tiny_demo / f"face_{s}.pickle")
        named = read_ground_truth(tiny_demo / f"{s}_gt.txt").labels
        names = np.asarray(fs.names).astype(str)
        empty = set(names[np.asarray(fs.lengths) == 0].tolist())
        n_named_empty += len(empty & set(named))
        assert table.loc[s, "labelled"] == len(named)
        assert table.loc[s, "distractors"] == len(names) - len(named)
        assert table.loc[s, "labelled"] + table.loc[s, "distractors"] == table.loc[s, "videos"]
    assert n_named_empty > 0  # the case this test is about is really there


def test_duplicate_upload_names_are_refused_naming_them(tmp_path, monkeypatch):
    from dashboard.cache import sources

    monkeypatch.setenv("VIDID_CACHE", str(tmp_path / "cache"))
    with pytest.raises(DataError, match="several uploaded files are named face_val.pickle"):
        sources.save_uploads([("face_val.pickle", b"good"), ("dir/face_val.pickle", b"garbage"),
                              ("val_gt.txt", b"1 V1.mp4\n")])
    assert not (tmp_path / "cache" / "uploads").exists()  # nothing written


def test_upload_errors_never_show_the_hashed_folder(tmp_path):
    from dashboard.cache import sources

    folder = tmp_path / "uploads" / "0123456789abcdef"
    msg = f"{folder}/face_val.pickle: not a pickle (read 4 bytes)"
    assert sources.without_folder(msg, folder) == "face_val.pickle: not a pickle (read 4 bytes)"


def test_storage_section_measures_and_clears(app_env):
    from core.storage import cache_usage
    from dashboard.cache import sources

    at = _app().run()
    assert not at.exception
    assert [e for e in at.expander if e.label.startswith("Storage: ")]
    usage = cache_usage()
    assert usage.set_index("part").loc["demo data", "bytes"] > 0
    # uploads: an unused upload is cleared, the demo in use is kept
    unused = sources.save_uploads([("face_val.pickle", b"x"), ("val_gt.txt", b"1 a.mp4\n")])
    at.button(key="data_clear_uploads").click().run()
    assert not at.exception and not unused.exists()
    at.button(key="data_clear_demo_data").click().run()
    assert not at.exception
    assert sources.demo_dir("tiny").is_dir()  # the active dataset is never removed


def test_demo_is_generated_once_in_the_background(tmp_path, monkeypatch):
    """Two callers (two pages, two sessions) share one generation; it outlives its caller."""
    from dashboard.cache import sources

    monkeypatch.setenv("VIDID_CACHE", str(tmp_path / "cache"))
    job = sources.start_demo("tiny")
    assert job is not None and sources.start_demo("tiny") is job  # the same job, not a second one
    job.thread.join(120)
    assert job.error is None and job.path == sources.demo_dir("tiny")
    assert sources.start_demo("tiny") is None  # already there
    assert sources.ensure_demo("tiny") == sources.demo_dir("tiny")
    assert not [p for p in (tmp_path / "cache").iterdir() if p.name.startswith(".demo-")]
