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
