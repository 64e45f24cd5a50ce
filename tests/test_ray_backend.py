"""``--backend ray`` (core.learn.backends) against ``--backend local`` on the tiny demo:
the same fold checkpoints byte for byte, the same out-of-fold arrays and submission;
cancel and resume under Ray; one-line errors when Ray or its cluster is missing.

One local Ray instance (2 CPUs) serves the whole module. Without Ray installed the
tests that need it skip, unless ``VIDID_REQUIRE_RAY=1`` (CI) makes them fail.
"""

from __future__ import annotations

import hashlib
import os
import socket
from pathlib import Path

import numpy as np
import pytest

from core.cli import main
from core.runs import Run

# Small enough for a few seconds a run, large enough to hold every step of the method
# (DBSCAN classes, shadow relabelling, augmentation, a refit after the folds). The
# promise is for the same thread count (a Ray task's default is 1, local's every core).
OPTIONS = ("--method", "noise", "--folds", "2", "--epochs", "2", "--refit", "1",
           "--seed", "5", "--device", "cpu", "--modalities", "face", "--threads", "1")


def _ray_or_skip():
    if os.environ.get("VIDID_REQUIRE_RAY") == "1":
        import ray  # noqa: F401  (CI installs the test extra: a missing Ray is a failure)

        return
    else:
        pytest.importorskip("ray", reason="Ray is not installed (pip install 'vidid[ray]')")


def _train_args(d: Path, out: Path, *extra: str) -> list[str]:
    return ["train", "--data", str(d / "face_train.pickle"), str(d / "train_gt.txt"),
            "--data", str(d / "face_val.pickle"), str(d / "val_gt.txt"),
            "--out", str(out), "--quiet", *OPTIONS, *extra]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nobody listens once it is closed


@pytest.fixture(scope="module")
def ray_backend():
    """A local Ray instance for the module (started like ``--backend ray`` starts one)."""
    _ray_or_skip()
    from core.learn.backends import RayBackend

    backend = RayBackend.connect(num_cpus=2)
    try:
        yield backend
    finally:
        backend.close()


@pytest.fixture(scope="module")
def local_run(tiny_demo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ray_backend") / "local"
    assert main(_train_args(tiny_demo, out, "--backend", "local")) == 0
    return out


@pytest.fixture(scope="module")
def ray_run(ray_backend, tiny_demo: Path, local_run: Path) -> Path:
    out = local_run.parent / "ray"
    assert main(_train_args(tiny_demo, out, "--backend", "ray")) == 0  # uses the module's Ray
    return out


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _assert_same_result(a: Path, b: Path) -> None:
    import torch

    ra, rb = Run.open(a), Run.open(b)
    assert ra.completed_folds() == rb.completed_folds() == [0, 1, 2]  # 2 folds + 1 refit
    for k in ra.completed_folds():
        assert _sha256(a / f"fold_{k}.pt") == _sha256(b / f"fold_{k}.pt"), f"fold {k}"
        fa, fb = ra.load_fold(k), rb.load_fold(k)
        assert fa["state_dict"].keys() == fb["state_dict"].keys()
        assert all(torch.equal(fa["state_dict"][n], fb["state_dict"][n]) for n in fa["state_dict"])
    oa, ob = ra.load_array("oof"), rb.load_array("oof")
    assert sorted(oa) == sorted(ob)
    for key in oa:
        np.testing.assert_array_equal(oa[key], ob[key])
    assert ra.summary()["mAP"] == rb.summary()["mAP"]


def test_ray_equals_local(local_run: Path, ray_run: Path, tiny_demo: Path, tmp_path: Path):
    _assert_same_result(local_run, ray_run)
    subs = []
    for run in (local_run, ray_run):
        subs.append(tmp_path / f"{run.name}.txt")
        assert main(["predict", str(run), str(tiny_demo / "face_test.pickle"),
                     "--out", str(subs[-1]), "--quiet"]) == 0
    assert subs[0].read_bytes() == subs[1].read_bytes()


def test_run_records_its_backend(local_run: Path, ray_run: Path):
    assert Run.open(local_run).config()["backend"] == "local"
    ray = Run.open(ray_run)
    assert ray.config()["backend"] == "ray" and "ray_address" not in ray.config()
    assert ray.summary()["backend"] == "ray" and ray.status["backend"] == "ray"
    # every epoch of every network reached the driver's metrics, once
    rows = ray.metrics()
    assert sorted(zip(rows["fold"], rows["epoch"])) == [(k, e) for k in (0, 1, 2) for e in (0, 1)]


def test_cancel_then_resume_under_ray(ray_backend, local_run: Path, tiny_demo: Path, tmp_path: Path):
    """The cancel flag set at the first epoch: the run ends cancelled; resumed (on Ray)
    it completes with the result of the uninterrupted local run."""
    from core.features import dataset
    from core.learn import TrainConfig, fit

    cfg_doc = Run.open(local_run).config()
    config = TrainConfig.from_dict(cfg_doc)
    data = dataset.concat([dataset.open_split(e["feats"], e["gt"], split=e["split"])
                           for e in cfg_doc["data"]])
    run = Run.create(tmp_path / "cancelled", {**cfg_doc, "backend": "ray"})

    def cancel_at_first_epoch(fraction: float, message: str = "") -> None:
        if " epoch " in message:
            run.request_cancel()

    summary = fit(config, data, run, backend=ray_backend, progress=cancel_at_first_epoch)
    assert summary["state"] == "cancelled"
    assert Run.open(run.path).state == "cancelled"
    assert 2 not in run.completed_folds()  # the refit never started

    resumed = Run.resume(run.path)
    summary = fit(config, data, resumed, backend=ray_backend, resume=True)
    assert summary["backend"] == "ray" and resumed.state == "complete"
    _assert_same_result(local_run, run.path)


def test_local_cut_mid_fold_resumes_under_ray(ray_backend, local_run: Path, tmp_path: Path):
    """A local run cancelled inside fold 1 (its mid-fold state on disk) resumed on Ray:
    that fold continues on the driver from its state, the rest on Ray; same result."""
    from core.features import dataset
    from core.learn import TrainConfig, fit

    cfg_doc = Run.open(local_run).config()
    config = TrainConfig.from_dict(cfg_doc)
    data = dataset.concat([dataset.open_split(e["feats"], e["gt"], split=e["split"])
                           for e in cfg_doc["data"]])
    run = Run.create(tmp_path / "cut", cfg_doc)

    def cancel_in_fold_1(fraction: float, message: str = "") -> None:
        if message.startswith("fold 2/2 epoch 1/"):
            run.request_cancel()

    assert fit(config, data, run, progress=cancel_in_fold_1)["state"] == "cancelled"
    assert run.completed_folds() == [0] and run.partial_info()["fold"] == 1
    resumed = Run.resume(run.path)
    messages = []
    fit(config, data, resumed, backend=ray_backend, resume=True,
        progress=lambda f, m="": messages.append(m))
    assert any("continues at epoch 2/2" in m for m in messages)
    _assert_same_result(local_run, run.path)
    rows = resumed.metrics()
    assert sorted(zip(rows["fold"], rows["epoch"])) == [(k, e) for k in (0, 1, 2) for e in (0, 1)]


def test_unreachable_address_is_one_line_before_a_run_exists(tiny_demo: Path, tmp_path: Path, capsys):
    _ray_or_skip()
    address = f"127.0.0.1:{_closed_port()}"
    out = tmp_path / "run"
    assert main(_train_args(tiny_demo, out, "--backend", "ray", "--ray-address", address)) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("vidid train: error: --ray-address") and "cannot reach" in err
    assert "\n" not in err and not out.exists()
    # so does the dashboard's launcher
    from core.runs.launch import launch_training

    with pytest.raises(ValueError, match="cannot reach"):
        launch_training([(tiny_demo / "face_val.pickle", tiny_demo / "val_gt.txt")],
                        {"method": "knn"}, tmp_path / "runs", backend="ray", ray_address=address)
    assert not (tmp_path / "runs").exists() or not os.listdir(tmp_path / "runs")


def test_missing_ray_is_one_line(tiny_demo: Path, tmp_path: Path, capsys, monkeypatch):
    import core.learn.backends as backends

    monkeypatch.setattr(backends, "ray_available", lambda: False)
    assert main(_train_args(tiny_demo, tmp_path / "run", "--backend", "ray")) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("vidid train: error: backend 'ray' needs Ray, which is not installed here: "
                   "pip install 'vidid[ray]'")
    assert not (tmp_path / "run").exists()


def test_address_without_ray_backend_is_refused(tiny_demo: Path, tmp_path: Path, capsys):
    assert main(_train_args(tiny_demo, tmp_path / "run", "--ray-address", "10.0.0.1:6379")) == 2
    assert "is for the ray backend" in capsys.readouterr().err
