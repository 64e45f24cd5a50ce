"""The run pages on a multimodal run (faceless videos in its out-of-fold scores)."""

from __future__ import annotations

import pytest
from app_helpers import open_page, tiny_app_env

from core.runs import Run


@pytest.fixture(scope="module")
def env(tiny_demo, tmp_path_factory):
    with tiny_app_env(tiny_demo, tmp_path_factory.mktemp("runs")) as e:
        yield e


@pytest.fixture(scope="module")
def multimodal_run(env):
    from core.features import concat
    from core.features.modalities import open_multimodal
    from core.learn import TrainConfig, fit
    from core.runs import new_run_dir

    cfg = TrainConfig(method="knn", folds=2, views=False)
    data = concat([open_multimodal(env.demo / f"face_{s}.pickle", env.demo / f"{s}_gt.txt", split=s)
                   for s in ("train", "val")])
    assert (~data.modal.has("face")).any()  # faceless videos are in
    run = Run.create(new_run_dir(env.runs, "knn"), {**cfg.to_dict(), "data": [
        {"split": s, "feats": str(env.demo / f"face_{s}.pickle"), "gt": str(env.demo / f"{s}_gt.txt")}
        for s in ("train", "val")]})
    fit(cfg, data, run)
    return run


@pytest.mark.parametrize("page", ["app_pages/errors.py", "app_pages/video_review.py",
                                  "app_pages/training.py"])
def test_run_pages_open_a_multimodal_run(multimodal_run, page) -> None:
    at = open_page(page, query={"run": multimodal_run.path.name})
    assert not at.exception, [e.value for e in at.exception]


def _faceless(env) -> list[str]:
    from core.features.modalities import open_multimodal

    lv = open_multimodal(env.demo / "face_val.pickle", env.demo / "val_gt.txt", split="val")
    import numpy as np

    return [str(n) for n in np.asarray(lv.names)[~lv.modal.has("face") & (lv.ids > 0)]]


def _frame_with(at, column: str):
    found = [d.value for d in at.dataframe if column in d.value.columns]
    assert found, f"no table with a {column!r} column"
    return found[0]


def test_errors_filters_faceless_and_low_quality_videos(multimodal_run) -> None:
    at = open_page("app_pages/errors.py", query={"run": multimodal_run.path.name})
    assert not at.exception, [e.value for e in at.exception]
    assert at.radio(key="errors_face_filter").value == "no face"
    assert at.dataframe(key="errors_face_table").value["video"].tolist()  # the faceless video
    agreement = _frame_with(at, "points to the true identity")
    assert agreement["modality"].tolist() == ["face", "head", "body", "audio", "all (late fusion)"]
    evidence = _frame_with(at, "nearest video")
    assert not evidence[evidence["modality"] == "face"]["present"].any()  # a faceless video
    assert evidence[evidence["modality"] != "face"]["present"].any()
    at.radio(key="errors_face_filter").set_value("low-quality face")
    at.number_input(key="errors_low_quality").set_value(90.0)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    table = at.dataframe(key="errors_face_table").value
    assert len(table) and (table["face quality"] < 90).all()
    assert [t for t in at.caption if "below 90" in t.value]


@pytest.mark.parametrize("with_run", [True, False])
def test_video_review_shows_each_modality_of_a_faceless_video(env, multimodal_run, with_run) -> None:
    video = _faceless(env)[0]
    query = {"video": video, **({"run": multimodal_run.path.name} if with_run else {})}
    at = open_page("app_pages/video_review.py", query=query)
    assert not at.exception, [e.value for e in at.exception]
    assert at.selectbox(key="review_video").value == video
    assert "no face" in at.radio(key="review_filter").options
    evidence = _frame_with(at, "nearest video")
    assert evidence["modality"].tolist() == ["face", "head", "body", "audio", "all (late fusion)"]
    assert not evidence["present"].iloc[0] and evidence["present"].iloc[1:].any()
    assert abs(evidence[evidence["modality"].isin(["head", "body", "audio"])]["weight"].sum() - 1) < 0.01
    assert [i for i in at.info if "No face frame" in i.value]
