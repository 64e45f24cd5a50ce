"""Map page (AppTest on the tiny demo, PCA layout to stay fast; UMAP is covered by
tests/test_projection.py)."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from app_helpers import open_page, tiny_app_env

PAGE = "app_pages/map.py"
logging.getLogger("streamlit").setLevel(logging.ERROR)


@pytest.fixture
def app_env(tiny_demo, tmp_path):
    with tiny_app_env(tiny_demo, tmp_path / "runs"):
        yield tmp_path


def _page(**state):
    at = open_page(PAGE, {"map_method": "pca", **state}, timeout=60, home_first=True)
    assert not at.exception
    return at


def _figure(at) -> dict:
    import json

    (chart,) = at.get("plotly_chart")
    return json.loads(chart.proto.spec)


def _decode(v) -> np.ndarray:
    """Plotly JSON arrays may be typed ({"dtype", "bdata"}) or plain lists."""
    if isinstance(v, dict) and "bdata" in v:
        import base64

        return np.frombuffer(base64.b64decode(v["bdata"]), dtype=np.dtype(v["dtype"]))
    return np.asarray(v)


def _loaded():
    from dashboard.cache import datasets as data
    from dashboard.cache import sources

    spec = data.detect_splits(sources.demo_dir("tiny"))
    return spec, data.load_dataset(spec)


def test_noise_map_has_every_distractor_once_by_cluster(app_env):
    at = _page()
    fig = _figure(at)
    spec, lv = _loaded()
    rows = np.concatenate([_decode(t["customdata"]) for t in fig["data"]])
    # The distractors of train+val (the clustering's input), each exactly once.
    split = np.asarray(lv.split)
    expect = np.flatnonzero((lv.ids == 0) & np.isin(split, ["train", "val"]))
    assert sorted(rows.tolist()) == expect.tolist()
    assert fig["data"][0]["name"] == "unclustered" and all(t["type"] == "scattergl"
                                                         for t in fig["data"])
    assert any("suggested clustering" in c.value for c in at.caption)
    # Hover names the video.
    t0 = fig["data"][0]
    assert str(lv.names[int(_decode(t0["customdata"])[0])]) in t0["text"][0]


def test_noise_map_uses_the_chosen_clustering(app_env):
    at = open_page("app_pages/noise_clusters.py", timeout=60, home_first=True)
    at.slider(key="noise_eps").set_value(1.0).run()
    at.button(key="noise_use").click().run()
    k = at.session_state["noise_labels"]["n_clusters"]
    at.session_state["map_method"] = "pca"
    at.switch_page(PAGE).run()
    assert not at.exception
    fig = _figure(at)
    assert len(fig["data"]) == k + 1  # one trace per cluster + unclustered
    assert any("chosen for training" in c.value for c in at.caption)


def test_all_videos_by_split_and_downsampling(app_env, monkeypatch):
    at = _page(map_subset="All videos", map_color="split")
    fig = _figure(at)
    spec, lv = _loaded()
    assert sorted(t["name"] for t in fig["data"]) == ["test", "train", "val"]
    for t in fig["data"]:
        rows = _decode(t["customdata"])
        assert (np.asarray(lv.split)[rows] == t["name"]).all()
    assert sum(len(_decode(t["customdata"])) for t in fig["data"]) == len(lv.names)

    from dashboard.cache import datasets as data
    from dashboard.cache import map as map_cache

    monkeypatch.setattr(map_cache, "MAX_MAP_POINTS", 100)
    at.run()
    assert not at.exception
    assert any(f"random sample of 100 of {len(lv.names):,}" in i.value for i in at.info)
    assert sum(len(_decode(t["customdata"])) for t in _figure(at)["data"]) == 100


def test_outcome_of_a_run_colours_correct_and_wrong(app_env):
    from core.runs import Run, new_run_dir

    spec, lv = _loaded()
    lab = np.flatnonzero(lv.ids > 0)
    identity_ids = np.unique(lv.ids[lab])
    # A finished run whose top-1 prediction is right for even rows, wrong for odd ones.
    true_cls = np.searchsorted(identity_ids, lv.ids[lab])
    wrong = np.arange(len(lab)) % 2 == 1
    top = np.where(wrong, (true_cls + 1) % len(identity_ids), true_cls)
    run = Run.create(new_run_dir(app_env / "runs", "knn"), {"method": "knn", "folds": 2})
    run.save_array("oof", names=lv.names[lab].astype(str), ids=lv.ids[lab],
                   fold=np.zeros(len(lab), np.int64), identity_ids=identity_ids,
                   top_class=top[:, None].astype(np.int32),
                   top_score=np.ones((len(lab), 1), np.float32),
                   noise_prob=np.zeros(len(lab), np.float32))
    run.finish({"mAP": 0.5})

    at = _page(map_subset="All videos", map_color="outcome of a run")
    fig = _figure(at)
    by = {t["name"]: _decode(t["customdata"]) for t in fig["data"]}
    assert len(by["correct"]) == int((~wrong).sum()) and len(by["wrong"]) == int(wrong.sum())
    assert sorted(lv.names[by["wrong"]]) == sorted(lv.names[lab[wrong]])
    assert {"correct", "wrong"} <= set(by) and "not scored" in by  # distractors not in the run


def test_all_videos_by_identity_and_quality(app_env):
    at = _page(map_subset="All videos", map_color="identity")
    spec, lv = _loaded()
    by = {t["name"]: _decode(t["customdata"]) for t in _figure(at)["data"]}
    assert set(by) == {"distractor"} | {f"id {i}" for i in range(1, 21)}  # 20 ≤ 20 traces
    for name, rows in by.items():
        want = 0 if name == "distractor" else int(name.split()[1])
        assert (lv.ids[rows] == want).all()
    at.selectbox(key="map_color").set_value("quality").run()
    assert not at.exception
    (trace,) = _figure(at)["data"]
    rows = _decode(trace["customdata"])
    np.testing.assert_allclose(_decode(trace["marker"]["color"]),
                               lv.pooled.mean_quality[rows], rtol=1e-6)


def test_progress_exception_does_not_leave_tqdm_lock_held(app_env, monkeypatch):
    """Leaving the Map page mid-UMAP makes Streamlit raise from the progress callback,
    which UMAP calls inside tqdm's display (under tqdm's global write lock, released
    without try/finally). The lock must stay free, the map must still be computed and
    memoised, and the exception must reach the caller afterwards."""
    import threading

    import core.features.projection
    from tqdm import tqdm

    from dashboard.cache import datasets as data
    from dashboard.cache import sources
    from dashboard.cache import map as data_map

    calls = []

    def fake_compute(X, *, progress, **kw):  # what _umap does: tqdm writing into the sink
        calls.append(len(X))
        sink = core.features.projection._TqdmSink(progress, 0.3, 0.98)
        for _ in tqdm(range(3), file=sink, bar_format="{n}/{total}", mininterval=0):
            pass
        return np.zeros((len(X), 2), dtype=np.float32)

    monkeypatch.setattr(core.features.projection, "compute_projection", fake_compute)

    class Leave(Exception):
        pass

    def progress(fraction, message):
        raise Leave(message)

    spec = data.detect_splits(sources.demo_dir("tiny"))
    with pytest.raises(Leave):
        data_map.projection(spec, "noise", method="umap", n_neighbors=7, progress=progress)
    locks = tqdm.get_lock().locks  # a threading RLock (and a multiprocessing one)
    got = []

    def probe():  # another thread, since the locks are re-entrant
        for lk in locks:
            ok = lk.acquire(timeout=2)
            got.append(ok)
            if ok:
                lk.release()

    t = threading.Thread(target=probe)
    t.start()
    t.join()
    for lk, ok in zip(locks, got):
        if not ok:  # held by this thread: free it so the rest of the session does not hang
            lk.release()
    assert all(got) and got, "tqdm's write lock was left held"
    rows, xy, total = data_map.projection(spec, "noise", method="umap", n_neighbors=7,
                                          progress=progress)
    assert calls == [len(rows)] and xy.shape == (len(rows), 2)


def test_map_is_drawn_from_any_modality_present(app_env):
    """Only modalities present are offered; a modality's map holds exactly the videos that
    hold it, and the side-by-side map holds the faceless videos too."""
    from dashboard.cache import modal as modal_cache

    at = _page(map_subset="All videos")
    box = at.selectbox(key="map_source")
    assert box.options == ["face features", "head features", "body features", "audio features",
                           "all modalities side by side"]
    spec, _ = _loaded()
    from core.features import concat
    from core.features.modalities import open_multimodal

    assert modal_cache.modalities_of(spec) == ("face", "head", "body", "audio")
    mlv = concat([open_multimodal(s.feats, s.gt, split=s.name) for s in spec.splits])
    for source, expect in (("audio", mlv.modal.has("audio")),
                           ("fused", np.ones(len(mlv.names), bool))):
        at.selectbox(key="map_source").set_value(source).run()
        assert not at.exception, [e.value for e in at.exception]
        rows = np.concatenate([_decode(t["customdata"]) for t in _figure(at)["data"]])
        assert sorted(rows.tolist()) == np.flatnonzero(expect).tolist()
    assert (~mlv.modal.has("face")).any()  # fused draws the faceless videos the face map lacks


def test_face_only_data_offers_no_modality_choice(tiny_demo, tmp_path):
    import shutil

    from app_helpers import open_page as _open
    from dashboard.cache.datasets import detect_splits

    face_only = tmp_path / "face_only"
    face_only.mkdir()
    for f in tiny_demo.glob("*"):
        if f.name.startswith("face_") or f.name.endswith("_gt.txt"):
            shutil.copy(f, face_only / f.name)
    spec = detect_splits(face_only)
    with tiny_app_env(tiny_demo, tmp_path / "runs"):
        at = _open(PAGE, {"map_method": "pca", "map_subset": "All videos", "dataset": spec}, timeout=60)
    assert not at.exception, [e.value for e in at.exception]
    assert not [s for s in at.selectbox if s.key == "map_source"]


def test_selection_csv_download_holds_the_selected_videos(app_env, monkeypatch):
    """The "Selection (CSV)" button serves the selected videos as the table shows them.

    AppTest cannot drag a box on a Plotly chart (nor write its selection state): a
    selection of the map's own points is planted where the chart's select event is read
    (``charts.selected_rows``, whose event mapping tests/test_charts.py covers), and the
    bytes the button hands the browser are caught where Streamlit stores them.
    """
    import io

    import pandas as pd
    from streamlit.runtime.media_file_manager import MediaFileManager

    from dashboard import charts

    at = _page()
    assert not at.get("download_button")  # nothing selected, nothing to download
    rows = np.concatenate([_decode(t["customdata"]) for t in _figure(at)["data"]]).astype(int)
    picked = rows[:: max(1, len(rows) // 7)][:7]
    real_selected_rows = charts.selected_rows
    monkeypatch.setattr(charts, "selected_rows", lambda selection: real_selected_rows(
        {"points": [{"customdata": [int(r)]} for r in picked[::-1]]}))
    served: dict[str, bytes] = {}
    real_add = MediaFileManager.add

    def add(self, data, mimetype, coordinates, file_name=None, **kw):
        served[file_name] = data
        return real_add(self, data, mimetype, coordinates, file_name=file_name, **kw)

    monkeypatch.setattr(MediaFileManager, "add", add)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    (button,) = at.get("download_button")
    assert button.proto.label == "Selection (CSV)"
    csv = pd.read_csv(io.BytesIO(served["map_selection.csv"]), dtype=str)
    spec, lv = _loaded()
    assert csv["video"].tolist() == [str(lv.names[r]) for r in sorted(picked)]  # sorted, once each
    assert list(csv.columns) == ["video", "split", "identity", "faces", "mean quality", "cluster"]
    assert (csv["identity"] == "distractor").all()  # the noise map: distractors only
    (table,) = at.dataframe  # the selection table on the page, minus its links
    shown = table.value
    pd.testing.assert_frame_equal(csv, shown.drop(columns=["review"], errors="ignore").astype(str))
    assert any(f"{len(picked)} selected videos" in h.value for h in at.subheader)
