"""The planted structure of the head, body and audio features of the synthetic data.

Honest about each modality's weakness (see the knobs of :class:`core.synth.Preset`):

* **head**: a person's head centre is partly their face centre (so lookalikes look
  alike from behind too) and partly their own; videos scatter widely around it
  (haircut, hats, angle) and frames are noisy: correlated with the person, weaker
  than a face. Frames weighted by a detection score. Faceless videos usually still
  show a head (the back of it, a profile the face detector missed).
* **body**: clothes change from video to video, so a video's body vector sits far
  from the person's body centre; weak, but not nothing.
* **audio**: the person's voice for most videos, music or silence (a few shared
  centres, the same for everybody) for a sizeable share, missing for some.
* Centres of every modality are crowded on a low-rank manifold, like the faces, and
  strangers (distractors) have their own head, body and voice.

Randomness comes from generators of their own (``[seed, 6, ...]``), so the face files
of a seed do not change when these files are written.
"""

from __future__ import annotations

import numpy as np

from core.synth.model import DIM, RANK

HEAD_FROM_FACE = 0.6            # share of the head centre that is the face centre
MANIFOLD_SHIFT = 1.0            # crowding of each modality's centres
MUSIC_CENTRES = 6               # shared audio centres of music and silence
FEAT_NORM = 20.0                # norm of the written vectors (not normalised, as shipped)


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.sqrt(np.einsum("...i,...i->...", x, x))[..., None]


def _manifold(n: int, rng: np.random.Generator) -> np.ndarray:
    basis = rng.standard_normal((DIM, RANK)) / np.sqrt(DIM)
    shift = rng.standard_normal(RANK)
    shift *= MANIFOLD_SHIFT / np.linalg.norm(shift)
    return _unit((rng.standard_normal((n, RANK)) + shift) @ basis.T).astype(np.float32)


def make_modal_people(people: dict, rng: np.random.Generator) -> dict:
    """Head, body and voice centres of every person, and the music/silence centres."""
    n = len(people["kind"])
    own_head = _manifold(n, rng)
    head = _unit(HEAD_FROM_FACE * people["centre"] + np.sqrt(1 - HEAD_FROM_FACE ** 2) * own_head)
    return {"head": head.astype(np.float32), "body": _manifold(n, rng),
            "voice": _manifold(n, rng), "music": _manifold(MUSIC_CENTRES, rng)}


def _spread(centre: np.ndarray, offset: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Unit directions ``centre + offset * random unit`` (per row)."""
    noise = _unit(rng.standard_normal(centre.shape, dtype=np.float32))
    return _unit(centre + offset[:, None].astype(np.float32) * noise)


def _frames(dirs: np.ndarray, lengths: np.ndarray, noise: float,
            rng: np.random.Generator) -> np.ndarray:
    """float16 frame features around each video's direction (``lengths`` frames each)."""
    vid = np.repeat(np.arange(len(dirs)), lengths)
    feat = rng.standard_normal((len(vid), DIM), dtype=np.float32) * (noise / np.sqrt(DIM))
    feat += dirs[vid]
    feat *= (FEAT_NORM * rng.lognormal(0.0, 0.1, len(vid)) /
             np.sqrt(np.einsum("ij,ij->i", feat, feat))).astype(np.float32)[:, None]
    return feat.astype(np.float16)


def render_modalities(cfg, plan: dict, mpeople: dict, rows: np.ndarray,
                      rng: np.random.Generator) -> dict[str, list]:
    """Head frame lists, body frame lists and audio vectors (or None) of videos ``rows``."""
    m = len(rows)
    person = plan["person"][rows]
    n_face = plan["n_frames"][rows]

    # head: where the face was seen, and usually where it was not
    n_head = np.where(n_face > 0, n_face,
                      np.clip(np.rint(rng.lognormal(np.log(cfg.mean_frames / 2), 0.8, m)), 1,
                              cfg.max_frames)).astype(np.int64)
    n_head[rng.random(m) < cfg.head_missing_share] = 0
    head_dir = _spread(mpeople["head"][person], rng.uniform(*cfg.head_offset, m), rng)
    head_feat = _frames(head_dir, n_head, cfg.head_noise, rng)
    det = np.clip(1.0 - rng.exponential(0.05, len(head_feat)), 0.3, 0.99999)

    # body: clothes change between videos
    n_body = np.clip(np.rint(rng.lognormal(np.log(10), 0.8, m)), 1, cfg.max_frames).astype(np.int64)
    n_body[rng.random(m) < cfg.body_missing_share] = 0
    body_dir = _spread(mpeople["body"][person], rng.uniform(*cfg.body_offset, m), rng)
    body_feat = _frames(body_dir, n_body, cfg.body_noise, rng)

    # audio: voice, music / silence, or missing
    u = rng.random(m)
    music = u < cfg.audio_music_share
    missing = (u >= cfg.audio_music_share) & (u < cfg.audio_music_share + cfg.audio_missing_share)
    centre = mpeople["voice"][person].copy()
    centre[music] = mpeople["music"][rng.integers(0, MUSIC_CENTRES, int(music.sum()))]
    offset = np.where(music, 0.5, rng.uniform(*cfg.voice_offset, m))
    audio_dir = _spread(centre, offset, rng)
    audio = (audio_dir * FEAT_NORM).astype(np.float16)

    def box(n: int, scale: float) -> list:
        cx, cy = rng.uniform(200, 1080, n), rng.uniform(150, 570, n)
        w = rng.lognormal(np.log(scale), 0.3, n)
        return np.round(np.stack([np.maximum(cx - w / 2, 0), np.maximum(cy - w / 2, 0),
                                  np.minimum(cx + w / 2, 1280),
                                  np.minimum(cy + 1.2 * w, 720)], 1), 1).tolist()

    def lists(feat: np.ndarray, lengths: np.ndarray, scores: np.ndarray | None,
              scale: float) -> list[list]:
        starts = np.concatenate(([0], np.cumsum(lengths)))
        boxes = box(len(feat), scale)
        frame_no = [str(j) for j in (np.arange(len(feat)) - np.repeat(starts[:-1], lengths)).tolist()]
        if scores is None:
            frames = [[f, b, x] for f, b, x in zip(frame_no, boxes, list(feat))]
        else:
            frames = [[f, b, s, x] for f, b, s, x in zip(frame_no, boxes,
                                                        np.round(scores, 5).tolist(), list(feat))]
        return [frames[a:b] for a, b in zip(starts[:-1].tolist(), starts[1:].tolist())]

    return {"head": lists(head_feat, n_head, det, 150.0),
            "body": lists(body_feat, n_body, None, 300.0),
            "audio": [None if missing[i] else audio[i] for i in range(m)]}


def degrade_faces(cfg, plan: dict, rng: np.random.Generator) -> dict:
    """Faceless and low-quality-face videos (``cfg.faceless_share``, ``cfg.lowface_share``).

    Changes the plan only when a share is above 0, so presets without them keep their
    face files byte for byte.
    """
    n = len(plan["person"])
    kind = np.zeros(n, np.int8)  # 0 ordinary, 1 faceless, 2 low-quality face
    if cfg.faceless_share <= 0 and cfg.lowface_share <= 0:
        kind[plan["n_frames"] == 0] = 1
        return {**plan, "face_kind": kind}
    u = rng.random(n)
    faceless = u < cfg.faceless_share
    low = (~faceless) & (u < cfg.faceless_share + cfg.lowface_share)
    plan = dict(plan)
    plan["n_frames"] = np.where(faceless, 0, plan["n_frames"])
    plan["frame_noise"] = np.where(low, plan["frame_noise"] * cfg.lowface_noise,
                                   plan["frame_noise"]).astype(np.float32)
    plan["base_quality"] = np.where(low, plan["base_quality"] - 45.0, plan["base_quality"])
    kind[plan["n_frames"] == 0] = 1
    kind[low & (plan["n_frames"] > 0)] = 2
    plan["face_kind"] = kind
    return plan


__all__ = ["degrade_faces", "make_modal_people", "render_modalities"]
