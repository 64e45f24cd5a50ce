"""Synthetic iQIYI-VID-like data: the built-in demo dataset.

``generate(out_dir, preset=..., seed=...)`` writes the real file formats
(``face_{train,val,test}.pickle`` and ``{train,val,test}_gt.txt``) plus ``truth.tsv``
(who is really in every video, distractors included) and a ``README.txt`` saying the
data are synthetic.

The planted structure mirrors what makes the real task hard:

* **Identities are crowded.** Person centres live on a low-dimensional manifold
  (``normalise(B @ z + shift)``, ``B`` a random ``(512, RANK)`` basis), so nearest
  identities have cosine ~0.5-0.7, not ~0 as random 512-d directions would.
* **Videos differ.** Each video adds its own offset (pose, lighting) to its person's
  centre, so videos of one person are similar but not identical.
* **Frames are noisy, and bad frames are worse.** Frame quality runs from -30 to 200
  (mostly 40-120); low-quality frames get much more noise, and a few of them show
  another person (an "intruder" fixed per video). Feature norms track quality, as in
  the real (un-normalised) features. Quality-weighted pooling beats the plain mean.
* **Distractors.** 37.5 % of val/test videos are not in the ground truth: strangers
  seen once, strangers recurring across videos and across val and test (clusterable
  by DBSCAN), and recurring *lookalikes* of known identities (cosine ~0.75-0.85 to
  the identity's centre). They cost a nearest-neighbour baseline several mAP points.

Generation is vectorised per chunk of videos and streamed to disk, so the ``large``
preset (2019 scale) runs in bounded memory. The structure itself (people, the plan
of videos, frame rendering and their constants) is :mod:`core.synth.model`; this
module holds the presets, :func:`generate` and the files.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from core.atomic import atomic_open, atomic_write_text
from core.io.names import official_name
from core.io.modalities import write_modality
from core.io.pickle_stream import write_features_stream
from core.synth.model import (
    DIM,
    distractor_targets,
    identity_videos,
    make_people,
    plan_videos,
    render_chunk,
)
from core.synth.modalities import degrade_faces, make_modal_people, render_modalities

ProgressFn = Callable[[float, str], None]

SPLITS = ("train", "val", "test")
KINDS = ("identity", "stranger_once", "stranger_recurring", "lookalike")
README_HEAD = "vidid demo dataset"
_SPLIT_PREFIX = {"train": "IQIYI_VID_TRAIN", "val": "IQIYI_VID_VAL", "test": "IQIYI_VID_TEST"}


@dataclass(frozen=True)
class Preset:
    """Size and shape of a synthetic dataset: every knob of the planted structure.

    The defaults mirror the real iQIYI-VID 2019 set (about 5.8 training videos per
    identity with a long tail, about 4.5 labelled val videos per identity, 37.5 % of
    val/test videos distractors, about 30 faces per video, quality from -30 with mean
    about 80, detection scores mostly above 0.9).

    Attributes
    ----------
    n_identities : int
        Known identities (IDs 1..n_identities).
    train_per_id, val_per_id, test_per_id : float
        *Median* videos per identity in each split (at least 1 each). Counts follow a
        long tail: ``median * popularity * jitter``, with a lognormal popularity per
        identity shared by the splits (a famous person is in many videos everywhere).
    per_id_spread : float
        Lognormal sigma of the popularity: 0 gives every identity the median, 0.5
        gives a tail to about 3x the median.
    mean_frames : float
        Mean faces per video (lognormal, long tail), before empty videos.
    max_frames : int
        Cap on faces per video.
    chunk_videos : int
        Videos generated (and held in memory) at a time.
    distractor_share : float
        Share of val/test videos that are distractors (not in the ground truth).
    hard_share : float
        Share of videos shot in hard conditions (profile, make-up, darkness): their
        direction lies far from the person's centre.
    hard_offset : (float, float)
        Offset norm range of hard videos (ordinary videos: ``VIDEO_OFFSET``); 1.0 is
        as far from the centre as the centre is from the origin.
    once_share : float
        Share of distractor videos showing strangers seen once.
    lookalike_share : float
        Share of distractor videos showing recurring *lookalikes* of known identities;
        the rest (``1 - once_share - lookalike_share``) are recurring strangers.
    lookalike_cos : (float, float)
        Cosine range between a lookalike's centre and its twin's (higher = harder).
    frame_noise : float
        Multiplier of the per-frame noise (1 = the default ``FRAME_NOISE``).
    empty_share : float
        Share of videos with no detected face.
    modalities : bool
        Also write ``head_*``, ``body_*`` and ``audio_*`` files (:mod:`core.synth.modalities`;
        drawn from generators of their own: the face files do not change).
    faceless_share : float
        Extra share of videos whose face list is empty while other modalities show
        the person (changes the face files when above 0).
    lowface_share, lowface_noise : float
        Share of videos whose faces are blurred (frame noise times ``lowface_noise``,
        quality 45 lower): only the other modalities reveal who it is.
    head_offset, head_noise, head_missing_share : head spread per video, frame
        noise, share of videos without a head.
    body_offset, body_noise, body_missing_share : the same for bodies (clothes).
    voice_offset : spread of a person's voice between videos.
    audio_music_share, audio_missing_share : share of videos whose audio is music
        or silence, and without audio.
    """

    n_identities: int
    train_per_id: float = 5.0
    val_per_id: float = 4.0
    test_per_id: float = 4.0
    per_id_spread: float = 0.45
    mean_frames: float = 30.0
    max_frames: int = 600
    chunk_videos: int = 2000
    distractor_share: float = 0.375
    hard_share: float = 0.3
    hard_offset: tuple[float, float] = (1.0, 1.8)
    once_share: float = 0.40
    lookalike_share: float = 0.35
    lookalike_cos: tuple[float, float] = (0.75, 0.85)
    frame_noise: float = 1.0
    empty_share: float = 0.01
    modalities: bool = True
    faceless_share: float = 0.0
    lowface_share: float = 0.0
    lowface_noise: float = 6.0
    head_offset: tuple[float, float] = (2.8, 3.6)
    head_noise: float = 1.0
    head_missing_share: float = 0.05
    body_offset: tuple[float, float] = (3.4, 4.4)
    body_noise: float = 0.8
    body_missing_share: float = 0.08
    voice_offset: tuple[float, float] = (0.5, 0.9)
    audio_music_share: float = 0.25
    audio_missing_share: float = 0.08

    def __post_init__(self) -> None:
        checks = {
            "n_identities": self.n_identities >= 2,
            "train_per_id": self.train_per_id >= 1,
            "val_per_id": self.val_per_id >= 1,
            "test_per_id": self.test_per_id >= 1,
            "per_id_spread": 0 <= self.per_id_spread <= 3,
            "mean_frames": self.mean_frames >= 1,
            "max_frames": self.max_frames >= 1,
            "chunk_videos": self.chunk_videos >= 1,
            "distractor_share": 0 <= self.distractor_share < 1,
            "hard_share": 0 <= self.hard_share <= 1,
            "hard_offset": 0 <= self.hard_offset[0] <= self.hard_offset[1],
            "once_share": 0 <= self.once_share <= 1,
            "lookalike_share": 0 <= self.lookalike_share <= 1 - self.once_share,
            "lookalike_cos": -1 < self.lookalike_cos[0] <= self.lookalike_cos[1] < 1,
            "frame_noise": 0 <= self.frame_noise <= 10,
            "empty_share": 0 <= self.empty_share < 1,
            "faceless_share": 0 <= self.faceless_share < 1,
            "lowface_share": 0 <= self.lowface_share <= 1 - self.faceless_share,
            "lowface_noise": 0 <= self.lowface_noise <= 50,
            "head_offset": 0 <= self.head_offset[0] <= self.head_offset[1],
            "body_offset": 0 <= self.body_offset[0] <= self.body_offset[1],
            "voice_offset": 0 <= self.voice_offset[0] <= self.voice_offset[1],
            "head_missing_share": 0 <= self.head_missing_share <= 1,
            "body_missing_share": 0 <= self.body_missing_share <= 1,
            "audio_music_share": 0 <= self.audio_music_share <= 1 - self.audio_missing_share,
            "audio_missing_share": 0 <= self.audio_missing_share <= 1,
        }
        for name, ok in checks.items():
            if not ok:
                raise ValueError(f"synthetic data: {name}={getattr(self, name)!r} is out of range")


#: ``demo`` and ``large`` are shaped like the real 2019 set (about 5.8 training videos
#: per identity); ``rich`` is the earlier demo, twice as rich per identity (11 training
#: videos) and kept for comparison; ``tiny`` is for tests and quick looks.
PRESETS: dict[str, Preset] = {
    "tiny": Preset(n_identities=20, train_per_id=5, val_per_id=4, test_per_id=4,
                   mean_frames=15, max_frames=200),
    "demo": Preset(n_identities=400),
    "rich": Preset(n_identities=400, train_per_id=11, val_per_id=4, test_per_id=4,
                   per_id_spread=0.0),
    "large": Preset(n_identities=10_000, max_frames=800, chunk_videos=1000),
    # the demo with 8 % faceless and 10 % blurred-face videos: where other modalities matter
    "multi": Preset(n_identities=400, faceless_share=0.08, lowface_share=0.10),
}


def make_preset(base: str | Preset = "demo", **knobs) -> Preset:
    """A preset with some knobs changed, e.g. ``make_preset("demo", train_per_id=3)``.

    Examples
    --------
    >>> make_preset("demo", n_identities=100, hard_share=0.5).hard_share
    0.5
    >>> make_preset("demo", colour=1)
    Traceback (most recent call last):
    ...
    ValueError: unknown synthetic-data knob 'colour'; knobs: n_identities, train_per_id, val_per_id, test_per_id, per_id_spread, mean_frames, max_frames, chunk_videos, distractor_share, hard_share, hard_offset, once_share, lookalike_share, lookalike_cos, frame_noise, empty_share, modalities, faceless_share, lowface_share, lowface_noise, head_offset, head_noise, head_missing_share, body_offset, body_noise, body_missing_share, voice_offset, audio_music_share, audio_missing_share
    """
    from dataclasses import fields, replace

    cfg = PRESETS[base] if isinstance(base, str) else base
    names = [f.name for f in fields(Preset)]
    for key in knobs:
        if key not in names:
            raise ValueError(f"unknown synthetic-data knob {key!r}; knobs: {', '.join(names)}")
    for key in ("hard_offset", "lookalike_cos", "head_offset", "body_offset", "voice_offset"):
        if key in knobs:
            knobs[key] = tuple(float(v) for v in knobs[key])
    return replace(cfg, **knobs)

def generate(
    out_dir: str | os.PathLike,
    *,
    preset: str | Preset = "demo",
    seed: int = 0,
    progress: ProgressFn | None = None,
) -> dict:
    """Write a synthetic iQIYI-VID-like dataset into ``out_dir``.

    Parameters
    ----------
    out_dir : str or PathLike
        Output folder (created if missing); existing files of the same names are
        replaced atomically.
    preset : {"tiny", "demo", "rich", "large"} or Preset
        A preset name (see ``PRESETS``) or a :class:`Preset` (see :func:`make_preset`).
    seed : int
        Same seed, same files (byte for byte).
    progress : callable(fraction, message), optional
        Called as generation proceeds.

    Returns
    -------
    dict
        Summary: preset, seed, out_dir, n_identities, n_strangers, seconds, and per
        split ``videos``, ``gt_videos``, ``distractors``, ``frames``, ``empty``, plus
        ``kinds`` (videos per kind over all splits).

    Examples
    --------
    >>> import tempfile
    >>> summary = generate(tempfile.mkdtemp(), preset="tiny", seed=0)  # doctest: +SKIP
    >>> summary["val"]["distractors"] / summary["val"]["videos"]  # doctest: +SKIP
    0.375
    """
    if isinstance(preset, Preset):
        cfg, preset = preset, "custom"
    elif preset in PRESETS:
        cfg = PRESETS[preset]
    else:
        raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    report = progress or (lambda fraction, message="": None)
    t0 = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    # The marker first: a half-written folder is still recognisably ours.
    atomic_write_text(out / "README.txt", _readme(preset, seed, cfg))

    report(0.0, "planning")
    rng = np.random.default_rng([seed, 1])
    id_videos = identity_videos(cfg, rng)
    targets = distractor_targets(cfg, id_videos)
    people = make_people(cfg, sum(targets), rng)
    plan = plan_videos(cfg, people, id_videos, targets, np.random.default_rng([seed, 2]))
    plan = degrade_faces(cfg, plan, np.random.default_rng([seed, 5]))
    mpeople = make_modal_people(people, np.random.default_rng([seed, 6])) if cfg.modalities else None
    total = len(plan["person"])
    done = 0
    summary: dict = {"preset": preset, "seed": int(seed), "out_dir": str(out),
                     "n_identities": cfg.n_identities,
                     "n_strangers": int(len(people["kind"]) - cfg.n_identities)}
    for s, split in enumerate(SPLITS):
        rows = np.flatnonzero(plan["split"] == s)
        names = _video_names(split, len(rows))
        counter = {"frames": 0, "empty": 0}
        side: dict[str, list] = {"head": [], "body": [], "audio": []}

        def items(rows=rows, names=names, s=s, counter=counter) -> Iterator[tuple[str, list]]:
            nonlocal done
            for c, start in enumerate(range(0, len(rows), cfg.chunk_videos)):
                chunk = rows[start:start + cfg.chunk_videos]
                rng = np.random.default_rng([seed, 3, s, c])
                lists = render_chunk(plan, people, chunk, rng)
                chunk_names = names[start:start + len(chunk)]
                if mpeople is not None:
                    other = render_modalities(cfg, plan, mpeople, chunk,
                                              np.random.default_rng([seed, 6, s, c]))
                    for m in side:
                        side[m].extend(zip(chunk_names, other[m]))
                for name, frames in zip(chunk_names, lists):
                    counter["frames"] += len(frames)
                    counter["empty"] += not frames
                    yield name, frames
                done += len(chunk)
                report(done / total, f"{split}: {start + len(chunk)}/{len(rows)} videos")

        write_features_stream(out / f"face_{split}.pickle", items())
        if mpeople is not None:
            write_features_stream(out / f"head_{split}.pickle", iter(side["head"]))
            write_features_stream(out / f"body_{split}.pickle", iter(side["body"]))
            write_modality(out / f"audio_{split}.pickle", "audio",
                           {n: a for n, a in side["audio"] if a is not None})
            counter["faceless"] = int((plan["face_kind"][rows] == 1).sum())
            counter["low_quality_face"] = int((plan["face_kind"][rows] == 2).sum())
            counter["audio"] = sum(a is not None for _, a in side["audio"])
        is_gt = plan["kind"][rows] == 0
        ids = people["identity_id"][plan["person"][rows]]
        if split == "train":
            text = "".join(f"{official_name(n)} {i}\n" for n, i in zip(names, ids))
        else:
            text = _id_videos_text(names[is_gt], ids[is_gt])
        atomic_write_text(out / f"{split}_gt.txt", text)
        summary[split] = {"videos": int(len(rows)), "gt_videos": int(is_gt.sum()),
                          "distractors": int((~is_gt).sum()), **counter}

    _write_truth(out / "truth.tsv", plan, people)
    if mpeople is not None:
        _write_face_kinds(out / "face_kind.tsv", plan)
    kinds = np.bincount(plan["kind"], minlength=len(KINDS))
    summary["kinds"] = {k: int(n) for k, n in zip(KINDS, kinds)}
    summary["seconds"] = round(time.perf_counter() - t0, 3)
    report(1.0, "done")
    return summary


# --- files ----------------------------------------------------------------------------
def _video_names(split: str, n: int) -> np.ndarray:
    prefix = _SPLIT_PREFIX[split]
    return np.array([f"{prefix}_{i:07d}" for i in range(1, n + 1)], dtype=object)


def _id_videos_text(names: np.ndarray, ids: np.ndarray) -> str:
    order = np.lexsort((names.astype(str), ids))
    names, ids = names[order], ids[order]
    cuts = np.flatnonzero(np.diff(ids)) + 1
    lines = []
    for group_ids, group in zip(np.split(ids, cuts), np.split(names, cuts)):
        if len(group):
            lines.append(f"{group_ids[0]} " + " ".join(official_name(n) for n in group))
    return "".join(line + "\n" for line in lines)


def _write_truth(path: Path, plan: dict, people: dict) -> None:
    n_known = int((people["kind"] == 0).sum())
    with atomic_open(path, "w", encoding="utf-8") as fh:
        fh.write("video\tsplit\tperson\tkind\n")
        for s, split in enumerate(SPLITS):
            rows = np.flatnonzero(plan["split"] == s)
            names = _video_names(split, len(rows))
            for name, p in zip(names, plan["person"][rows].tolist()):
                k = int(people["kind"][p])
                person = f"id{people['identity_id'][p]}" if k == 0 else f"s{p - n_known:05d}"
                fh.write(f"{name}\t{split}\t{person}\t{KINDS[k]}\n")


FACE_KINDS = ("ordinary", "faceless", "low_quality")


def _write_face_kinds(path: Path, plan: dict) -> None:
    """``video split face`` lines: which videos have no face or a blurred one."""
    with atomic_open(path, "w", encoding="utf-8") as fh:
        fh.write("video\tsplit\tface\n")
        for s, split in enumerate(SPLITS):
            rows = np.flatnonzero(plan["split"] == s)
            for name, k in zip(_video_names(split, len(rows)), plan["face_kind"][rows].tolist()):
                fh.write(f"{name}\t{split}\t{FACE_KINDS[k]}\n")


def is_demo_dir(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a folder written by ``generate`` (holds its README.txt).

    Examples
    --------
    >>> is_demo_dir("/nonexistent")
    False
    """
    readme = Path(path) / "README.txt"
    try:
        with open(readme, encoding="utf-8", errors="replace") as fh:
            return fh.readline().startswith(README_HEAD)
    except OSError:
        return False


def _readme(preset: str, seed: int, cfg: Preset) -> str:
    return (
        f"{README_HEAD} - SYNTHETIC DATA, not real iQIYI-VID features.\n"
        f"Generated by `vidid demo` (core.synth.generate), preset={preset!r}, seed={seed}.\n"
        f"Parameters: {asdict(cfg)}\n\n"
        "Files, in the real iQIYI-VID 2019 formats:\n"
        "  face_train.pickle, face_val.pickle, face_test.pickle  per-frame face features\n"
        "  head_*.pickle, body_*.pickle, audio_*.pickle  the other modalities "
        "(2019 layouts), when generated\n"
        "  train_gt.txt (VIDEO.mp4 ID), val_gt.txt, test_gt.txt (ID V1.mp4 V2.mp4 ...)\n"
        "  truth.tsv  who is really in every video (distractors included): "
        "video, split, person (idN known / sNNNNN stranger), kind\n"
        "Videos in face_val/face_test but not in the ground truth are distractors.\n"
    )


__all__ = ["DIM", "KINDS", "PRESETS", "README_HEAD", "SPLITS", "Preset", "generate", "is_demo_dir",
           "make_preset"]
