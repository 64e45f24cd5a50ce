"""Multimodal recognition: fusion model, face-only exactness, planted faceless videos."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from core.learn.config import TrainConfig
from core.learn.fusion import drop_modalities, split_input
from core.learn.model import ModelConfig, VideoNet, build_model


def test_face_only_configs_keep_their_keys() -> None:
    keys = set(TrainConfig().to_dict())
    assert not keys & {"modalities", "modal_dims", "fusion", "modal_dropout"}
    assert set(TrainConfig(modalities="face").to_dict()) == keys
    d = TrainConfig(modalities="audio,face", modal_dims=(512, 512)).to_dict()
    assert d["modalities"] == ["face", "audio"] and d["modal_dims"] == [512, 512]
    assert TrainConfig.from_dict(d).modalities == ("face", "audio")
    assert "modal_dims" not in ModelConfig().to_dict()
    with pytest.raises(ValueError, match="unknown fusion"):
        TrainConfig(fusion="late")


@pytest.mark.parametrize("fusion", ["gated", "concat"])
def test_fused_model_shapes_and_missing_modalities(fusion) -> None:
    cfg = ModelConfig(in_dim=4 + 3 + 2, emb_dim=5, n_classes=3, modal_dims=(4, 3), fusion=fusion,
                      modal_dropout=0.5)
    net = build_model(cfg, seed=0)
    x = torch.randn(6, 9)
    x[:, 7:] = 1.0
    x[0, :4] = 0
    x[0, 7] = 0  # no face
    logits, loss = net(x, torch.tensor([0, 1, 2, 0, 1, 2]))
    assert logits.shape == (6, 3) and torch.isfinite(loss)
    net.eval()
    assert torch.isfinite(net.log_probs(x)).all()
    again = VideoNet(ModelConfig(**cfg.to_dict()))  # the checkpoint's dict rebuilds it
    again.load_state_dict(net.state_dict())


def test_modality_dropout_never_drops_every_modality() -> None:
    torch.manual_seed(0)
    x = torch.ones(500, 5 + 2)
    x[:250, 6] = 0  # only the first modality present
    out = drop_modalities(x, (3, 2), 0.9)
    blocks, present = split_input(out, (3, 2))
    assert (present.sum(1) >= 1).all()
    assert (present[:250, 0] == 1).all()  # a lone modality is never dropped
    assert (blocks[0] == present[:, :1]).all()  # a dropped block is zeroed
    assert 0 < present[250:].sum() < 500


def test_face_only_config_refuses_faceless_rows(tiny_demo) -> None:
    from core.errors import DataError
    from core.features.modalities import open_multimodal
    from core.learn.fusion import resolve_config

    lv = open_multimodal(tiny_demo / "face_train.pickle", tiny_demo / "train_gt.txt")
    assert resolve_config(TrainConfig(), lv).modal_dims == (512, 512, 512, 512)
    with pytest.raises(DataError, match="faceless videos"):
        resolve_config(TrainConfig(modalities="face"), lv)
    with pytest.raises(DataError, match="no audio"):
        resolve_config(TrainConfig(modalities="audio"),
                       open_multimodal(tiny_demo / "face_train.pickle", modalities="face,head"))


# ----------------------------------------------------------------------------- planted
@pytest.fixture(scope="module")
def degraded_demo(tmp_path_factory) -> Path:
    """Tiny data where 15 % of videos have no face and 15 % a blurred one."""
    from core.synth import generate, make_preset

    out = tmp_path_factory.mktemp("degraded")
    generate(out, preset=make_preset("tiny", faceless_share=0.15, lowface_share=0.15), seed=0)
    return out


def _kinds(folder: Path) -> dict[str, str]:
    lines = (folder / "face_kind.tsv").read_text().splitlines()[1:]
    return {v: k for v, _, k in (line.split("\t") for line in lines)}


def _train_and_predict(folder: Path, tmp: Path, name: str, modalities: str) -> dict[int, list[str]]:
    from core.features import concat
    from core.features.modalities import open_multimodal
    from core.learn import fit
    from core.runs import Run
    from core.runs.predict import predict_submission

    cfg = TrainConfig(folds=2, epochs=6, threads=1, modalities=modalities, batch_size=64)
    data = concat([open_multimodal(folder / f"face_{s}.pickle", folder / f"{s}_gt.txt",
                                   modalities=modalities, split=s) for s in ("train", "val")])
    run = Run.create(tmp / name, cfg.to_dict())
    fit(cfg, data, run)
    return predict_submission(tmp / name, folder / "face_test.pickle", tmp / f"{name}.txt")


def test_faceless_videos_are_ranked_and_fusion_beats_face_only(degraded_demo, tmp_path) -> None:
    from core.io import read_ground_truth
    from core.learn.metrics import mean_average_precision

    gt = read_ground_truth(degraded_demo / "test_gt.txt")
    kinds = _kinds(degraded_demo)
    faceless = [v for v in gt.labels if kinds[v] == "faceless"]
    blurred = [v for v in gt.labels if kinds[v] == "low_quality"]
    assert len(faceless) >= 5 and len(blurred) >= 5
    face = _train_and_predict(degraded_demo, tmp_path, "face", "face")
    fused = _train_and_predict(degraded_demo, tmp_path, "all", "face,head,body,audio")

    def in_own_line(sub, videos):
        return sum(v in sub.get(gt.labels[v], [])[:10] for v in videos)

    assert in_own_line(face, faceless) == 0  # face-only cannot rank a faceless video
    assert in_own_line(fused, faceless) >= 0.6 * len(faceless)
    assert in_own_line(fused, blurred) > in_own_line(face, blurred)
    by_id = gt.by_identity()
    assert mean_average_precision(by_id, fused) > mean_average_precision(by_id, face) + 0.05


# ----------------------------------------------------------------------------- CLI
def test_cli_modalities_face_is_the_face_only_run(tiny_demo, tmp_path, capsys) -> None:
    """`--modalities face` beside sibling files = a run on face files alone, byte for byte."""
    from core.cli import main

    alone = tmp_path / "alone"
    alone.mkdir()
    for f in ("face_train.pickle", "train_gt.txt", "face_test.pickle"):
        shutil.copy(tiny_demo / f, alone / f)
    common = ["--folds", "2", "--epochs", "2", "--quiet"]
    assert main(["train", "--data", str(alone / "face_train.pickle"), str(alone / "train_gt.txt"),
                 "--out", str(tmp_path / "a"), *common]) == 0
    assert "modalities: face (no other modality found)" in capsys.readouterr().err
    assert main(["train", "--data", str(tiny_demo / "face_train.pickle"),
                 str(tiny_demo / "train_gt.txt"), "--modalities", "face",
                 "--out", str(tmp_path / "b"), *common]) == 0
    folds = sorted(p.name for p in (tmp_path / "a").glob("fold_*.pt"))
    assert folds == sorted(p.name for p in (tmp_path / "b").glob("fold_*.pt")) and folds
    for f in folds:
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes()
    for run, src in (("a", alone), ("b", tiny_demo)):
        assert main(["predict", str(tmp_path / run), str(src / "face_test.pickle"),
                     "--out", str(tmp_path / f"{run}.txt"), "--quiet"]) == 0
    assert (tmp_path / "a.txt").read_bytes() == (tmp_path / "b.txt").read_bytes()


def test_cli_default_uses_every_modality_and_predict_finds_siblings(tiny_demo, tmp_path, capsys) -> None:
    from core.cli import main
    from core.runs import Run

    assert main(["train", "--data", str(tiny_demo / "face_train.pickle"),
                 str(tiny_demo / "train_gt.txt"), "--method", "knn", "--folds", "2",
                 "--out", str(tmp_path / "r"), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "modalities: face, head, body, audio (found beside every --data file)" in err
    assert Run.open(tmp_path / "r").config()["modalities"] == ["face", "head", "body", "audio"]
    assert main(["predict", str(tmp_path / "r"), str(tiny_demo / "face_test.pickle"),
                 "--out", str(tmp_path / "s.txt"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "from face, head, body, audio" in out
    n_test = len(open_multimodal_names(tiny_demo))
    ranked = {v for line in (tmp_path / "s.txt").read_text().splitlines() for v in line.split()[1:]}
    assert len(ranked) == n_test  # faceless test videos too


def open_multimodal_names(folder: Path) -> np.ndarray:
    from core.features.modalities import open_multimodal

    return open_multimodal(folder / "face_test.pickle").names


def test_cli_missing_modality_is_one_clear_line(tiny_demo, tmp_path, capsys) -> None:
    from core.cli import main

    alone = tmp_path / "alone"
    alone.mkdir()
    for f in ("face_train.pickle", "train_gt.txt"):
        shutil.copy(tiny_demo / f, alone / f)
    code = main(["train", "--data", str(alone / "face_train.pickle"), str(alone / "train_gt.txt"),
                 "--modalities", "face,audio", "--out", str(tmp_path / "x"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "no audio features beside it" in err and "Traceback" not in err
    assert not (tmp_path / "x").exists()
