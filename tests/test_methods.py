"""core.learn.methods: one registry of training methods, read by every place that offers one.

The newcomer test: a toy method (cosine to each identity's centroid) is one scorer plus one
``register_method`` line, and then TrainConfig, fit, predict, the CLI's choices and the
launcher all accept it.
"""

from __future__ import annotations

import numpy as np
import pytest

from core.learn.methods import Method, get_method, method_names, register_method, unregister_method


def centroid_scores(config, reference, X):
    """Toy method: cosine of each video to the mean of each identity's reference videos."""
    X_ref, ids_ref, identity_ids = reference
    cent = np.stack([X_ref[ids_ref == i].mean(axis=0) for i in identity_ids])
    cent /= np.linalg.norm(cent, axis=1, keepdims=True)
    return (X @ cent.T).astype(np.float32)


@pytest.fixture
def toy_method():
    method = register_method(Method("centroid", "cosine to identity centroids", "centroids",
                                    scorer=centroid_scores))
    yield method
    unregister_method("centroid")


def test_builtin_methods_and_clear_error():
    assert method_names() == ("knn", "nn", "noise")
    assert not get_method("knn").trains_network and get_method("nn").trains_network
    assert get_method("nn").n_classes(5, 3) == 5 and get_method("noise").n_classes(5, 3) == 13
    with pytest.raises(ValueError, match="unknown training method 'svm'; choose one of knn, nn, noise"):
        get_method("svm")
    with pytest.raises(ValueError, match="already registered"):
        register_method(get_method("knn"))


def test_a_toy_method_is_one_scorer_and_one_registry_line(toy_method, tiny_demo, tmp_path):
    from core.cli import build_parser
    from core.features.dataset import open_split
    from core.io.formats import read_features
    from core.learn import TrainConfig, fit
    from core.runs import predict_scores
    from core.runs import Run, new_run_dir

    # every reader of the registry now offers it
    assert "centroid" in method_names()
    args = build_parser().parse_args(["train", "--data", "a", "b", "--method", "centroid"])
    assert args.method == "centroid"
    config = TrainConfig(method="centroid", folds=2)

    data = open_split(tiny_demo / "face_train.pickle", tiny_demo / "train_gt.txt", split="train")
    run = Run.create(new_run_dir(tmp_path, "centroid"), config.to_dict())
    summary = fit(config, data, run)
    assert run.state == "complete" and summary["method"] == "centroid"
    assert 0.5 < summary["mAP"] <= 1.0           # centroids recognise the planted identities
    names, scores, ids = predict_scores(run.path, read_features(tiny_demo / "face_val.pickle"))
    assert scores.shape == (len(names), len(ids)) and np.isfinite(scores).all()


def test_unknown_method_is_refused_everywhere(tiny_demo, tmp_path):
    from core.learn import TrainConfig
    from core.runs.launch import launch_training

    with pytest.raises(ValueError, match="unknown method 'centroid'"):
        TrainConfig(method="centroid")
    with pytest.raises(ValueError, match="unknown training method 'centroid'"):
        launch_training([(tiny_demo / "face_train.pickle", tiny_demo / "train_gt.txt")],
                        {"method": "centroid"}, tmp_path)
