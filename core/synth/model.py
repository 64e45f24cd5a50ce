"""The planted structure of the synthetic data: people, the plan of videos, their frames.

:func:`core.synth.generate` draws the people (:func:`make_people`), decides who is
in which video of which split (:func:`plan_videos`) and renders the frames of a
chunk of videos in the real layout (:func:`render_chunk`); the constants below are
the knobs of that structure (see :mod:`core.synth` for what each one mimics).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover - typing only
    from core.synth.generator import Preset

DIM = 512

# --- the planted structure (see the module docstring) ---------------------------------
# People.
RANK = 32                       # dimension of the manifold identity centres live on
CENTRE_SHIFT = 1.0              # common shift in manifold space: crowds the centres
# (The lookalikes' cosine to their twin, the share of hard videos and their offset,
# the distractor mix, the frame-noise multiplier and the share of empty videos are
# knobs of each preset: :class:`core.synth.Preset`.)
# Videos: the offset (pose, lighting) from the person's unit centre.
VIDEO_OFFSET = (0.5, 0.8)       # offset norm, uniform range
MANIFOLD_OFFSET = 0.4           # part of the offset lying in the identity manifold
FRAMES_SIGMA = 0.95             # faces per video: lognormal with this sigma
# Frames: quality ~ N(video base ~ N(BASE_QUALITY, 18), 22), except "bad" frames ~ U(-30, 40);
# the mix gives a mean near 80, as in the real 2019 set.
BASE_QUALITY = 95.0
BAD_SHARE = (0.6, 3.0)          # Beta(a, b): share of bad frames per video (mean 1/6)
BAD_MID, BAD_WIDTH = 35.0, 8.0  # quality where frames turn bad (logistic), how sharply
FRAME_NOISE = (0.5, 1.5)        # frame noise norm: all frames, extra for bad frames
GENERIC_PULL = 0.95             # how far the worst frames drift to the average face...
BAD_DRIFT = 2.0                 # ... plus a per-video drift of this relative size
LOW_QUALITY = 35.0              # frames under this quality may show the intruder...
WRONG_PERSON = (0.03, 0.09)     # ... this share of them (uniform per video)
NORM = (12.0, 0.06)             # feature norm ~ NORM[0] + NORM[1] * max(quality, 0)
# Distractors: recurring ones appear 2 + Poisson(2.5) times.
RECUR_EXTRA = 2.5
# Videos per identity: median * popularity (lognormal, per identity) * this jitter.
COUNT_JITTER = 0.25


# --- people ---------------------------------------------------------------------------
def _norm(x: np.ndarray) -> np.ndarray:
    # einsum: several times faster than np.linalg.norm(axis=-1) on float32 rows.
    return np.sqrt(np.einsum("...i,...i->...", x, x))


def _unit(x: np.ndarray) -> np.ndarray:
    return x / _norm(x)[..., None]


def make_people(cfg: Preset, n_distr: int, rng: np.random.Generator) -> dict:
    """Identity and stranger centres, kinds and video counts (summing to ``n_distr``)."""
    basis = rng.standard_normal((DIM, RANK)) / np.sqrt(DIM)
    shift = rng.standard_normal(RANK)
    shift *= CENTRE_SHIFT / np.linalg.norm(shift)

    def manifold(n: int) -> np.ndarray:
        return _unit((rng.standard_normal((n, RANK)) + shift) @ basis.T)

    C = cfg.n_identities
    # Recurring strangers and lookalikes first, then strangers seen once fill up to
    # exactly n_distr videos.
    def recurrences(n_videos: float) -> np.ndarray:
        if n_videos < 2:
            return np.zeros(0, dtype=np.int64)
        counts = 2 + rng.poisson(RECUR_EXTRA, max(1, int(n_videos / 2)))
        keep = np.cumsum(counts) <= max(n_videos, 2)
        keep[0] = True
        return counts[keep]

    look_recur = recurrences(n_distr * cfg.lookalike_share)
    rec_recur = recurrences(n_distr * (1 - cfg.once_share - cfg.lookalike_share))
    n_look, n_rec = len(look_recur), len(rec_recur)
    n_once = n_distr - int(look_recur.sum()) - int(rec_recur.sum())
    if n_once < 0:
        raise ValueError(f"preset too small for its distractors ({n_distr} videos)")

    centres = [manifold(C), manifold(n_once), manifold(n_rec)]
    # Lookalikes: rotate a known identity's centre by a set angle within the manifold.
    # Distinct twins where possible: two lookalikes of one identity would sit close
    # to each other too, and chain their clusters.
    twin_of = rng.choice(C, n_look, replace=n_look > C)
    base = centres[0][twin_of]
    direction = manifold(n_look)
    direction = _unit(direction - (direction * base).sum(1, keepdims=True) * base)
    cos = rng.uniform(*cfg.lookalike_cos, n_look)[:, None]
    centres.append(cos * base + np.sqrt(1 - cos ** 2) * direction)

    kind = np.repeat(np.arange(4, dtype=np.int8), [C, n_once, n_rec, n_look])
    n_people = len(kind)
    recur = np.concatenate([np.zeros(C, np.int64), np.ones(n_once, np.int64),
                            rec_recur, look_recur])
    identity_id = np.zeros(n_people, np.int64)
    identity_id[:C] = np.arange(1, C + 1)
    # Blurry, tiny or turned-away faces all look alike: low-quality frames drift
    # towards the "average face" (the shared shift of the manifold).
    generic = _unit(shift @ basis.T)
    return {"centre": np.concatenate(centres).astype(np.float32), "kind": kind,
            "basis": basis.astype(np.float32), "generic": generic.astype(np.float32),
            "recur": recur, "identity_id": identity_id}


def identity_videos(cfg: Preset, rng: np.random.Generator) -> list[np.ndarray]:
    """Videos per known identity in each split (at least one everywhere).

    ``median * popularity * jitter`` rounded, where the popularity is lognormal with
    sigma ``cfg.per_id_spread`` and shared by the splits: a long tail, like the real
    set's (a few identities with dozens of videos, most with a handful).
    """
    C = cfg.n_identities
    popularity = rng.lognormal(0.0, cfg.per_id_spread, C) if cfg.per_id_spread > 0 else np.ones(C)
    out = []
    for median in (cfg.train_per_id, cfg.val_per_id, cfg.test_per_id):
        jitter = rng.lognormal(0.0, COUNT_JITTER, C)
        out.append(np.maximum(1, np.rint(median * popularity * jitter)).astype(np.int64))
    return out


def distractor_targets(cfg: Preset, id_videos: list[np.ndarray]) -> tuple[int, int]:
    """Distractor videos in val and test so they make ``distractor_share`` of each."""
    ratio = cfg.distractor_share / (1 - cfg.distractor_share)
    return (int(round(id_videos[1].sum() * ratio)), int(round(id_videos[2].sum() * ratio)))


def plan_videos(cfg: Preset, people: dict, id_videos: list[np.ndarray],
                 targets: tuple[int, int], rng: np.random.Generator) -> dict:
    """Who is in each video, in which split, with how many faces; split order shuffled."""
    C = cfg.n_identities
    kind = people["kind"]
    ids = np.arange(C)
    person, split = [], []
    for s, k in enumerate(id_videos):
        person.append(np.repeat(ids, k))
        split.append(np.full(k.sum(), s, np.int8))
    # Distractors: each stranger's videos go to val or test at random, in the exact
    # numbers that make the distractor share of each split.
    strangers = np.flatnonzero(kind > 0)
    d_person = np.repeat(strangers, people["recur"][strangers])
    slots = np.repeat(np.array([1, 2], np.int8), targets)
    assert len(slots) == len(d_person)
    person.append(d_person)
    split.append(rng.permutation(slots))
    person = np.concatenate(person)
    split = np.concatenate(split)
    # Shuffle within split so names leak nothing; stable by split.
    order = np.lexsort((rng.random(len(person)), split))
    person, split = person[order], split[order]
    n = len(person)

    median = cfg.mean_frames * np.exp(-FRAMES_SIGMA ** 2 / 2)
    n_frames = np.clip(np.rint(rng.lognormal(np.log(median), FRAMES_SIGMA, n)), 1,
                       cfg.max_frames).astype(np.int64)
    n_frames[rng.random(n) < cfg.empty_share] = 0

    # Intruder: another person shown in a few of the video's low-quality frames.
    n_people = len(kind)
    intruder = rng.integers(0, n_people - 1, n)
    intruder += intruder >= person  # never the video's own person
    return {
        "person": person,
        "split": split,
        "kind": kind[person],
        "n_frames": n_frames,
        "intruder": intruder,
        "offset_norm": np.where(rng.random(n) < cfg.hard_share, rng.uniform(*cfg.hard_offset, n),
                                rng.uniform(*VIDEO_OFFSET, n)),
        "frame_noise": np.full(n, cfg.frame_noise, np.float32),
        "base_quality": rng.normal(BASE_QUALITY, 18.0, n),
        "bad_share": rng.beta(*BAD_SHARE, n),
        "wrong_share": rng.uniform(*WRONG_PERSON, n),
    }


# --- frames ---------------------------------------------------------------------------
def render_chunk(plan: dict, people: dict, rows: np.ndarray,
                  rng: np.random.Generator) -> list[list]:
    """Frame lists (the real layout) of the videos ``rows`` of the plan, vectorised."""
    m = len(rows)
    lengths = plan["n_frames"][rows]
    nf = int(lengths.sum())
    vid = np.repeat(np.arange(m), lengths)              # chunk-local video of each frame
    starts = np.concatenate(([0], np.cumsum(lengths)))

    centre = people["centre"]
    video_dir = _shot(centre[plan["person"][rows]], plan["offset_norm"][rows], people, rng)
    # The intruder is shot under its own conditions.
    intr_dir = _shot(centre[plan["intruder"][rows]], plan["offset_norm"][rows], people, rng)

    # Quality: most frames around the video's base, a share of bad frames far below.
    bad = rng.random(nf) < plan["bad_share"][rows][vid]
    q = plan["base_quality"][rows][vid] + rng.normal(0.0, 22.0, nf)
    q[bad] = rng.uniform(-30.0, 40.0, bad.sum())
    q = np.clip(q, -30.0, 200.0)
    low = q < LOW_QUALITY
    wrong = low & (rng.random(nf) < plan["wrong_share"][rows][vid])

    # Noise and the pull towards the average face grow steeply as quality drops
    # (logistic steps around q = BAD_MID).
    step = 1.0 / (1.0 + np.exp((q - BAD_MID) / BAD_WIDTH))
    sigma = (FRAME_NOISE[0] + FRAME_NOISE[1] * step) * plan["frame_noise"][rows][vid]
    pull = (GENERIC_PULL * step).astype(np.float32)
    # Where bad frames drift to: the average face, plus a direction of the video's
    # own (its blur, its lighting) that does not average out over its frames.
    drift = _unit(people["generic"]
                  + BAD_DRIFT * _unit(rng.standard_normal((m, DIM), dtype=np.float32)))
    # feat = (1 - pull) * person + pull * drift + noise, built in place (the chunk's
    # largest arrays).
    feat = rng.standard_normal((nf, DIM), dtype=np.float32)
    feat *= (sigma / np.sqrt(DIM)).astype(np.float32)[:, None]
    person = video_dir[vid]
    person[wrong] = intr_dir[vid[wrong]]
    person *= (1 - pull)[:, None]
    feat += person
    del person
    pulled = np.flatnonzero(pull > 1e-3)  # the pull is negligible on good frames
    feat[pulled] += pull[pulled, None] * drift[vid[pulled]]
    norm = (NORM[0] + NORM[1] * np.maximum(q, 0.0)) * rng.lognormal(0.0, 0.06, nf)
    feat *= (norm / _norm(feat)).astype(np.float32)[:, None]
    feat = feat.astype(np.float16)

    det = np.where(low, 1.0 - rng.exponential(0.06, nf), 1.0 - rng.exponential(0.008, nf))
    det = np.clip(det, 0.3, 0.99999)

    # Frame numbers: a start per video, then gaps >= 0 (0 = two faces in one frame).
    # Empty videos own no frame (their start may be nf), so index by non-empty ones.
    firsts = starts[:-1][lengths > 0]
    gaps = rng.geometric(0.3, nf) - 1
    gaps[firsts] = rng.integers(0, 60, len(firsts))
    csum = np.cumsum(gaps)
    frame_no = csum - np.repeat(csum[firsts] - gaps[firsts], lengths[lengths > 0])

    # Boxes: a track per video in a 1280x720 frame; bad faces are smaller.
    cx = rng.uniform(250, 1030, m)[vid] + rng.normal(0, 12, nf)
    cy = rng.uniform(180, 520, m)[vid] + rng.normal(0, 8, nf)
    w = rng.lognormal(np.log(110), 0.35, m)[vid] * rng.lognormal(0, 0.08, nf)
    w[bad] *= 0.55
    h = 1.25 * w
    bbox = np.round(np.stack([np.maximum(cx - w / 2, 0), np.maximum(cy - h / 2, 0),
                              np.minimum(cx + w / 2, 1280), np.minimum(cy + h / 2, 720)], 1), 1)

    frames = [list(t) for t in zip(map(str, frame_no.tolist()), bbox.tolist(),
                                   np.round(det, 5).tolist(), np.round(q, 4).tolist(),
                                   list(feat))]
    return [frames[a:b] for a, b in zip(starts[:-1].tolist(), starts[1:].tolist())]


def _shot(centre: np.ndarray, offset_norm: np.ndarray, people: dict,
          rng: np.random.Generator) -> np.ndarray:
    """Unit directions of videos of people at ``centre``: pose/lighting offsets.

    Part of the offset lies in the identity manifold, so a video drifts towards
    other people, not just away from its own centre.
    """
    m = len(centre)
    within = _unit(rng.standard_normal((m, RANK), dtype=np.float32) @ people["basis"].T)
    anywhere = _unit(rng.standard_normal((m, DIM), dtype=np.float32))
    offset = MANIFOLD_OFFSET * within + np.sqrt(1 - MANIFOLD_OFFSET ** 2) * anywhere
    return _unit(centre + offset_norm[:, None].astype(np.float32) * offset)


__all__ = ["DIM", "distractor_targets", "identity_videos", "make_people", "plan_videos",
           "render_chunk"]
