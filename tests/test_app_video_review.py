"""Video review page (AppTest on the tiny demo): useful without a run, preselected by a
shared link (?video=&run=), numbers checked against brute-force numpy."""

from __future__ import annotations

import json
import shutil
from types import SimpleNamespace

import numpy as np
import pytest
from app_helpers import make_knn_run, open_page, tiny_app_env

PAGE = "app_pages/video_review.py"


def _unit(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    return a / np.linalg.norm(a, axis=-1, keepdims=True)


@pytest.fixture(scope="module")
def env(tiny_demo, tmp_path_factory):
    from core.features.dataset import concat, open_split

    with tiny_app_env(tiny_demo, tmp_path_factory.mktemp("review_runs")) as e:
        # An independent load of every split (the page loads the same files through data.py).
        e.lv = concat([open_split(e.demo / f"face_{s}.pickle", e.demo / f"{s}_gt.txt", split=s)
                       for s in ("train", "val", "test")])
        yield e


@pytest.fixture(scope="module")
def knn_run(env):
    path, summary = make_knn_run(env.demo, env.runs)
    return SimpleNamespace(path=path, summary=summary)


def test_without_a_run_shows_frames_and_neighbours(env):
    video = next(v for v, i in zip(env.lv.names, env.lv.ids) if i > 0 and str(v).startswith("IQIYI_VID_VAL"))
    at = open_page(PAGE, query={"video": video})
    assert not at.exception, [e.value for e in at.exception]
    assert at.selectbox(key="review_video").value == video
    assert at.selectbox(key="review_run").value == "(no run)"
    assert any("No run chosen" in i.value for i in at.info)
    assert len(at.get("plotly_chart")) == 3  # frame scores, frame similarity, top classes

    # nearest labelled videos = brute-force cosine among the labelled videos (self excluded)
    near = at.dataframe[0].value
    lv = env.lv
    row = int(np.flatnonzero(lv.names == video)[0])
    lab = np.flatnonzero((lv.ids > 0) & (np.arange(len(lv.names)) != row))
    sims = _unit(lv.X[lab]) @ _unit(lv.X[row])
    best = lab[np.argsort(-sims, kind="stable")[:10]]
    assert near["video"].tolist() == lv.names[best].tolist()
    assert near["cosine"].to_numpy() == pytest.approx(np.sort(sims)[::-1][:10], abs=1e-5)
    assert near["identity"].tolist() == lv.ids[best].tolist()

    # prediction without a run: the nearest identity centre (mean of labelled pooled vectors)
    ids = np.unique(lv.ids[lv.ids > 0])
    centres = _unit(np.stack([lv.X[lv.ids == i].mean(axis=0) for i in ids]))
    expected = int(ids[np.argmax(centres @ _unit(lv.X[row]))])
    nearest = next(m for m in at.metric if m.label == "nearest identity centre")
    assert nearest.value == str(expected)  # no run, no prediction: no "wrong" either
    assert not any(m.label == "predicted identity" for m in at.metric)


def test_a_distractor_without_a_run_is_never_called_wrong(env):
    video = next(v for v, i in zip(env.lv.names, env.lv.ids) if i == 0)
    at = open_page(PAGE, query={"video": video})
    assert not at.exception, [e.value for e in at.exception]
    assert next(m for m in at.metric if m.label == "true identity").value == "distractor"
    texts = [m.value for m in at.metric] + [e.value for e in at.error] + [c.value for c in at.caption]
    assert not any("wrong" in str(t) for t in texts)
    assert not any(m.proto.delta for m in at.metric)  # no arrows


def test_link_preselects_video_and_run(env, knn_run):
    oof = np.load(knn_run.path / "oof.npz")
    pred = oof["identity_ids"][np.maximum(oof["top_class"][:, 0], 0)]
    wrong = np.flatnonzero((oof["top_class"][:, 0] >= 0) & (oof["ids"] > 0) & (pred != oof["ids"]))
    assert len(wrong), "the tiny demo should hold at least one misclassified labelled video"
    r = int(wrong[0])
    video, true_id, pred_id = str(oof["names"][r]), int(oof["ids"][r]), int(pred[r])
    at = open_page(PAGE, query={"video": video, "run": knn_run.path.name})
    assert not at.exception, [e.value for e in at.exception]
    assert at.selectbox(key="review_video").value == video
    assert at.selectbox(key="review_run").value == knn_run.path.name
    assert next(m for m in at.metric if m.label == "predicted identity").value == f"{pred_id} · wrong"
    assert next(m for m in at.metric if m.label == "true identity").value == str(true_id)
    assert not any(m.proto.delta for m in at.metric)  # no meaningless arrows
    (why,) = [e.value for e in at.error if "margin" in e.value]  # the explanation
    assert f"Predicted identity {pred_id}" in why and f"true identity {true_id}" in why

    # frame similarities to the true and predicted centres, checked frame by frame
    sim = next(json.loads(el.proto.spec) for el in at.get("plotly_chart")
               if "cosine similarity" in el.proto.spec)
    names = [t["name"] for t in sim["data"]]
    assert names == [f"true identity {true_id}", f"predicted identity {pred_id}"]
    lv = env.lv
    row = int(np.flatnonzero(lv.names == video)[0])
    feats = np.asarray(lv.frames.feats[lv.frames.offsets[row]:lv.frames.offsets[row + 1]], np.float64)
    for trace, ident in zip(sim["data"], (true_id, pred_id)):
        centre = _unit(lv.X[lv.ids == ident].mean(axis=0))
        expected = _unit(feats) @ centre
        got = trace["y"] if isinstance(trace["y"], list) else None
        if got is None:  # plotly may ship arrays base64-encoded
            import base64

            got = np.frombuffer(base64.b64decode(trace["y"]["bdata"]), dtype=trace["y"]["dtype"])
        assert np.asarray(got, float) == pytest.approx(expected, abs=1e-3)

    # with a run and no link, the page opens on a video the run got wrong
    first = open_page(PAGE)
    assert not first.exception
    assert first.selectbox(key="review_video").value in set(oof["names"][wrong].astype(str))

    # choosing "misclassified by the run" lists exactly the run's wrong labelled videos
    at.radio(key="review_filter").set_value("misclassified by the run").run()
    assert not at.exception
    wrong_names = set(oof["names"][wrong].astype(str))
    options = set(at.selectbox(key="review_video").options)
    assert options <= wrong_names | set(oof["names"][(oof["ids"] == 0) & (oof["top_class"][:, 0] >= 0)].astype(str))
    assert wrong_names <= options


def test_unknown_video_in_link_warns(env):
    at = open_page(PAGE, query={"video": "NO_SUCH_VIDEO"})
    assert not at.exception
    assert any("NO_SUCH_VIDEO" in w.value for w in at.warning)


def test_video_file_is_shown_when_the_videos_folder_holds_it(env, tmp_path):
    from dashboard.cache.datasets import detect_splits

    folder = tmp_path / "data"
    shutil.copytree(env.demo, folder)
    (folder / "videos").mkdir()
    video = str(env.lv.names[0])
    (folder / "videos" / f"{video}.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42")  # a stand-in file
    spec = detect_splits(folder)
    assert spec.videos_dir
    at = open_page(PAGE, {"dataset": spec}, query={"video": video})
    assert not at.exception, [e.value for e in at.exception]
    assert len(at.get("video")) == 1
    at2 = open_page(PAGE, {"dataset": spec}, query={"video": str(env.lv.names[1])})
    assert len(at2.get("video")) == 0 and any("No file" in c.value for c in at2.caption)
