"""The recognition recipe on sparse data: planted structure, an independent baseline.

A tiny dataset shaped like the real set at its sparsest (3 training videos per identity
median, 37.5 % distractors with recurring look-alikes, hard clips) must be ranked
better by the noise-aware method with the product defaults than by a plain network
written independently of vidid (the generalisation benchmark's: linear + ArcFace,
trained once on every labelled video), and noise > nn > knn. The recipe this guards
(class weights N(0, 0.01), automatic batch size, refits on every video ensembled with
the folds) is measured across a family of data in docs/RECOGNITION.md; the older
defaults (Xavier head, batch 256, fold models only) lose this test.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import bench_generalise as bench  # noqa: E402  (its independent baseline and metric)

SEEDS = (1, 2)


@pytest.fixture(scope="module")
def sparse_sets(tmp_path_factory):
    from core.synth import generate, make_preset

    preset = make_preset("tiny", n_identities=40, train_per_id=3, val_per_id=3, test_per_id=3,
                         hard_share=0.4)
    out = []
    for seed in SEEDS:
        folder = tmp_path_factory.mktemp(f"sparse{seed}")
        generate(folder, preset=preset, seed=seed)
        out.append(folder)
    return out


def _vidid_map(folder: Path, tmp: Path, **config) -> float:
    from core.features import concat, open_split
    from core.learn import TrainConfig, fit
    from core.runs import Run, predict_submission

    data = concat([open_split(folder / "face_train.pickle", folder / "train_gt.txt", split="train"),
                   open_split(folder / "face_val.pickle", folder / "val_gt.txt", split="val")])
    cfg = TrainConfig(threads=1, **config)
    run = Run.create(tmp / f"{folder.name}-{config.get('method', 'noise')}", cfg.to_dict())
    fit(cfg, data, run)
    ranking = predict_submission(run.path, folder / "face_test.pickle", run.path / "sub.txt")
    gt = bench._by_identity(bench.read_gt(folder / "test_gt.txt"))
    return bench.official_map(gt, ranking)


@pytest.mark.slow
def test_noise_aware_beats_an_independent_plain_network_on_sparse_data(sparse_sets, tmp_path):
    import torch

    torch.set_num_threads(1)
    rows = []
    for folder in sparse_sets:
        rows.append({"base": bench.run_baseline(folder, 20),
                     **{m: _vidid_map(folder, tmp_path, method=m) for m in ("knn", "nn", "noise")}})
    mean = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
    # Measured: noise 0.9581 / 0.9644 vs baseline 0.9468 / 0.9546 (+1.0 point on average).
    assert mean["noise"] >= mean["base"] + 0.005, rows
    assert all(r["noise"] > r["base"] for r in rows), rows
    assert mean["noise"] > mean["nn"] > mean["knn"], rows


def test_benchmark_criterion_reads_the_issue_rule():
    """The family table's verdict: +1 point, or half the room left under 2 points; noise > nn > knn."""
    row = {"ceiling": 0.99, "base": 0.95, "knn": 0.90, "nn": 0.955, "noise": 0.961}
    assert bench.criterion(row, ["knn", "nn", "noise"]) == (pytest.approx(0.011), True)
    assert not bench.criterion({**row, "noise": 0.959}, ["knn", "nn", "noise"])[1]  # +0.9 point
    near = {"ceiling": 0.99, "base": 0.984, "knn": 0.95, "nn": 0.983, "noise": 0.9871}
    assert bench.criterion(near, ["knn", "nn", "noise"])[1]            # 3.1 of the 6 points left
    assert not bench.criterion({**near, "noise": 0.9869}, ["knn", "nn", "noise"])[1]
    assert not bench.criterion({**row, "nn": 0.90}, ["knn", "nn", "noise"])[1]  # nn = knn
    assert bench.criterion({**row, "nn": 0.90}, ["noise"])[1]          # order only with all three


def test_benchmark_seed_lists():
    assert bench._seeds(None, quick=False) == [0, 1] and bench._seeds(None, quick=True) == [0]
    assert bench._seeds("3", quick=False) == [0, 1, 2]
    assert bench._seeds("2,3", quick=True) == [2, 3]
    assert bench._seeds("2,", quick=False) == [2]
    for bad in ("x", "1,1", "-1,2", "0"):
        with pytest.raises(SystemExit, match="--seeds"):
            bench._seeds(bad, quick=False)


def test_benchmark_merge_files_are_checked_first(tmp_path):
    good = tmp_path / "rows.json"
    good.write_text('[{"setting": "real", "seed": 2, "noise": 0.98}]')
    assert bench._read_merge(str(good))[0]["seed"] == 2
    for name, text in (("list.json", '[{"seed": 1}]'), ("dict.json", '{"a": 1}'), ("bad.json", "[{")):
        (tmp_path / name).write_text(text)
        with pytest.raises(SystemExit, match=f"--merge .*{name}"):
            bench._read_merge(str(tmp_path / name))
    with pytest.raises(SystemExit, match="No such file"):
        bench._read_merge(str(tmp_path / "missing.json"))
