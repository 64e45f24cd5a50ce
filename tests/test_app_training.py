"""Training page (AppTest on the tiny demo): launching starts a real detached process
writing to the run store; a killed run reads interrupted and resumes from the page;
cancel stops a run between epochs; the clustering chosen on the Noise clusters page is
the one the run trains with."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from app_helpers import open_page, tiny_app_env, wait_for_run

from core.runs import Run

PAGE = "app_pages/training.py"


def _submit(at):
    next(b for b in at.button if b.label == "Launch training").click().run()
    assert not at.exception, [e.value for e in at.exception]
    return Path(at.session_state["training_followed"])


@pytest.fixture(scope="module")
def env(tiny_demo, tmp_path_factory):
    with tiny_app_env(tiny_demo, tmp_path_factory.mktemp("training_runs")) as e:
        yield e


def test_page_renders_with_no_runs(env):
    at = open_page(PAGE)
    assert not at.exception, [e.value for e in at.exception]
    assert at.radio(key="training_method").options == ["knn", "nn", "noise"]
    # every modality of the demo is offered and chosen by default
    assert at.multiselect(key="training_modalities").value == ["face", "head", "body", "audio"]
    assert any(b.label == "Launch training" for b in at.button)
    assert any("No runs yet" in i.value for i in at.info)
    # without a clustering chosen on the Noise clusters page: automatic (default) or manual
    options = at.radio(key="training_cluster_source").options
    assert len(options) == 2 and options[0].startswith("Automatic eps")
    assert options[1] == "Set eps / min_samples here"
    # the page says what the defaults are and why, and offers the refit count
    assert any("Defaults chosen across a family" in c.value for c in at.caption)
    assert at.number_input(key="training_refit").value == 2
    assert at.number_input(key="training_batch").value == 0  # 0 = automatic
    # where the networks train: the backend table, local by default (off without Ray)
    assert at.selectbox(key="training_backend").options == ["local", "ray"]
    assert at.selectbox(key="training_backend").value == "local"
    assert at.text_input(key="training_ray_address").value == ""


def test_launch_kill_resume(env):
    at = open_page(PAGE)
    at.radio(key="training_method").set_value("knn")
    at.slider(key="training_folds").set_value(3)
    run_dir = _submit(at)
    assert run_dir.parent == env.runs and "-knn-" in run_dir.name
    cfg = json.loads((run_dir / "config.json").read_text())
    assert cfg["method"] == "knn" and cfg["folds"] == 3
    assert cfg["modalities"] == ["face", "head", "body", "audio"]  # the form's default
    assert [d["split"] for d in cfg["data"]] == ["train", "val"]
    # The training runs in another process: kill it hard, the run must read interrupted.
    pid = Run.open(run_dir).status["pid"]
    assert pid != os.getpid()
    os.kill(pid, signal.SIGKILL)
    wait_for_run(run_dir, lambda r: r.state != "running", timeout=30)
    assert Run.open(run_dir).state == "interrupted"

    at.run()
    assert not at.exception
    table = at.dataframe[0].value
    assert table.loc[table["name"] == run_dir.name, "state"].item() == "interrupted"
    next(b for b in at.button if b.label == "Resume this run").click().run()
    assert not at.exception, [e.value for e in at.exception]
    run = wait_for_run(run_dir, lambda r: r.state not in ("interrupted", "running"))
    assert run.state == "complete", run.status
    at.run()
    table = at.dataframe[0].value
    row = table[table["name"] == run_dir.name].iloc[0]
    assert row["state"] == "complete" and row["mAP"] == pytest.approx(run.summary()["mAP"])
    # knn trains no epochs and clusters nothing: those cells are blank, not defaults
    assert pd.isna(row["epochs"]) and pd.isna(row["min_samples"]) and pd.isna(row["eps"])
    assert "label" in table.columns
    assert any("Complete" in s.value for s in at.success)
    assert len(at.get("plotly_chart")) >= 1  # the runs comparison


def test_chosen_clustering_is_used_and_cancel_stops_the_run(env):
    from core.features.dataset import concat, open_split

    lv = concat([open_split(env.demo / f"face_{s}.pickle", env.demo / f"{s}_gt.txt", split=s)
                 for s in ("train", "val")])
    noise = np.asarray(lv.names)[np.asarray(lv.ids) == 0]
    labels = (np.arange(len(noise)) % 4) - 1  # a planted clustering: -1, 0, 1, 2, -1, ...
    chosen = {"eps": 0.85, "min_samples": 3, "labels": labels, "names": noise}
    at = open_page(PAGE, {"noise_labels": chosen})
    source = at.radio(key="training_cluster_source")
    assert source.options[0].startswith("The clustering chosen on the Noise clusters page (eps 0.85")
    at.radio(key="training_method").set_value("noise")
    at.slider(key="training_folds").set_value(2)
    # a run long enough to cancel on any machine: the form's most epochs, smallest batch
    at.number_input(key="training_epochs").set_value(500)
    at.number_input(key="training_batch").set_value(8)
    run_dir = _submit(at)
    cfg = json.loads((run_dir / "config.json").read_text())
    assert cfg["eps"] == 0.85 and cfg["min_samples"] == 3
    assert cfg["epochs"] == 500 and cfg["batch_size"] == 8

    run = wait_for_run(run_dir, lambda r: len(r.metrics()) >= 1)  # training has started
    stored = np.load(run_dir / "noise_clusters.npz")  # what fit trained with
    got = dict(zip(stored["names"].astype(str), stored["labels"].tolist()))
    assert got == dict(zip(noise.astype(str), labels.tolist()))

    at.run()
    assert not at.exception
    at.button(key="training_cancel").click().run()
    assert not at.exception
    assert (run_dir / "cancel").exists()
    run = wait_for_run(run_dir, lambda r: r.state != "running", timeout=60)
    assert run.state == "cancelled"
    epochs_done = len(run.metrics())
    assert epochs_done < 2 * 500
    at.run()
    assert any("Cancelled" in w.value for w in at.warning)
    table = at.dataframe[0].value
    progress = table.loc[table["name"] == run_dir.name, "progress"].item()
    assert progress < 0.95  # what the completed folds did, never 100 %
    assert any(b.label == "Resume this run" for b in at.button)


def test_launch_rejects_bad_requests_before_starting_anything(env, tmp_path):
    from core.runs.launch import launch_training

    feats, gt = str(env.demo / "face_train.pickle"), str(env.demo / "train_gt.txt")
    with pytest.raises(ValueError, match="unknown training method 'svm'"):
        launch_training([(feats, gt)], {"method": "svm"}, tmp_path)
    with pytest.raises(ValueError, match="folds must be >= 2, got 1"):
        launch_training([(feats, gt)], {"method": "knn", "folds": 1}, tmp_path)
    with pytest.raises(FileNotFoundError):
        launch_training([(str(tmp_path / "missing.pickle"), gt)], {"method": "knn"}, tmp_path)
    with pytest.raises(ValueError, match="no training data"):
        launch_training([], {"method": "knn"}, tmp_path)
    with pytest.raises(ValueError, match=r"expected 2 integer labels \(one per name\), got dtype int64 shape \(3,\)"):
        launch_training([(feats, gt)], {"method": "noise"}, tmp_path,
                        noise_labels={"names": ["a", "b"], "labels": np.array([0, 1, 2])})
    assert list(tmp_path.iterdir()) == []  # no run directory was left behind
