"""core.runs.evidence: the face-condition rule and what each modality alone says."""

from __future__ import annotations

import numpy as np
import pytest

from core.features.modal_features import ModalFeatures
from core.runs.evidence import (FUSED, condition_outcomes, face_condition, modality_agreement,
                                modality_evidence)
from core.runs.oof import scores_from_arrays


def _unit(rng, n, d=16):
    x = rng.normal(size=(n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _planted(seed: int = 0):
    """6 identities x 5 videos: faces and audio near the person's centre; video 0 of each
    identity is faceless, and its audio is the only clue. Body is pure noise."""
    rng = np.random.default_rng(seed)
    C, per = 6, 5
    ids = np.repeat(np.arange(1, C + 1), per)
    face_c, audio_c = _unit(rng, C), _unit(rng, C)
    n = len(ids)
    face = face_c[ids - 1] + 0.2 * _unit(rng, n)
    audio = audio_c[ids - 1] + 0.2 * _unit(rng, n)
    body = _unit(rng, n)
    norm = lambda x: (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)  # noqa: E731
    present = np.ones((n, 3), bool)
    faceless = np.arange(0, n, per)
    present[faceless, 0] = False
    face = norm(face)
    face[faceless] = 0
    mf = ModalFeatures(("face", "body", "audio"), {"face": face, "body": norm(body),
                                                   "audio": norm(audio)}, present)
    return mf, ids, faceless


def test_face_condition_rule_and_bad_threshold() -> None:
    got = face_condition(np.array([True, True, True, False]), np.array([40.0, 39.9, -5.0, 90.0]),
                         low_quality=40.0)
    assert got.tolist() == ["face", "low-quality face", "low-quality face", "no face"]
    with pytest.raises(ValueError, match="nan"):
        face_condition(np.array([True]), np.array([1.0]), low_quality=float("nan"))
    with pytest.raises(ValueError, match="shape"):
        face_condition(np.array([True, False]), np.array([1.0]))


def test_planted_audio_names_the_faceless_videos() -> None:
    mf, ids, faceless = _planted()
    ev = modality_evidence(mf, ids, faceless, k=2)
    assert len(ev) == len(faceless) * 4  # three modalities + the fused row per video
    face = ev[ev["modality"] == "face"]
    assert not face["present"].any() and (face["weight"] == 0).all() and face["points to"].isna().all()
    audio = ev[ev["modality"] == "audio"]
    assert audio["agrees"].all() and (audio["true rank"] == 1).all()
    fused = ev[ev["modality"] == FUSED]
    assert fused["agrees"].all()
    # weights renormalised over the video's modalities: body 0.25 / (0.25 + 0.5)
    assert np.allclose(ev[ev["modality"] == "body"]["weight"], 1 / 3, atol=1e-3)
    assert ev["nearest video"].ne("").sum() == 2 * len(faceless)


def test_a_video_is_never_its_own_neighbour() -> None:
    mf, ids, _ = _planted()
    ev = modality_evidence(mf, ids, [1, 2], k=1, names=np.array([f"v{i}" for i in range(len(ids))]))
    assert (ev["nearest video"] != ev["video"]).all()
    assert (ev.loc[ev["modality"] != FUSED, "cosine"] < 0.9999).all()


def test_agreement_over_an_identity_and_input_not_modified() -> None:
    mf, ids, _ = _planted()
    before = {m: b.copy() for m, b in mf.blocks.items()}
    ev = modality_evidence(mf, ids, np.flatnonzero(ids == 2), k=2)
    agg = modality_agreement(ev)
    assert agg["modality"].tolist() == ["face", "body", "audio", FUSED]
    assert agg.set_index("modality").loc["face", "videos"] == 4  # one of five is faceless
    assert agg.set_index("modality").loc["audio", "share"] == 1.0
    assert all(np.array_equal(before[m], mf.blocks[m]) for m in before)


def test_bad_rows_and_k() -> None:
    mf, ids, _ = _planted()
    with pytest.raises(ValueError, match="outside"):
        modality_evidence(mf, ids, [len(ids)])
    with pytest.raises(ValueError, match="k must"):
        modality_evidence(mf, ids, [0], k=0)


def test_condition_outcomes_ranks_in_own_line() -> None:
    rs = scores_from_arrays({"names": np.array(["a", "b", "c"]), "identity_ids": np.array([1, 2]),
                             "ids": np.array([1, 1, 0]),
                             "scores": np.array([[.9, .1], [.3, .7], [.5, .5]])})
    out = condition_outcomes(rs, {"a": 1, "b": 1, "c": 0}, ["c", "b", "zz"])
    assert out["video"].tolist() == ["c", "b"]  # a video the run never scored is left out
    assert out["rank in own line"].isna().tolist() == [True, False]
    assert out.loc[out["video"] == "b", "rank in own line"].item() == 3.0
