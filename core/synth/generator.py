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
from core.io.pickle_stream import write_features_stream
from core.synth.model import (
    DIM,
    distractor_targets,
    identity_videos,
    make_people,
    plan_videos,
    render_chunk,
)

ProgressFn = Callable[[float, str], None]

SPLITS = ("train", "val", "test")
KINDS = ("identity", "stranger_once", "stranger_recurring", "lookalike")
README_HEAD = "vidid demo dataset"
_SPLIT_PREFIX = {"train": "IQIYI_VID_TRAIN", "val": "IQIYI_VID_VAL", "test": "IQIYI_VID_TEST"}


@dataclass(frozen=True)
class Preset:
    """Size and shape of a synthetic dataset.

    Attributes
    ----------
    n_identities : int
        Known identities (IDs 1..n_identities).
    train_per_id, val_per_id, test_per_id : float
        Mean videos per identity in each split (at least 1 each; the extra count is
        Poisson).
    mean_frames : float
        Mean faces per video (lognormal, long tail), before empty videos.
    max_frames : int
        Cap on faces per video.
    chunk_videos : int
        Videos generated (and held in memory) at a time.
    distractor_share : float
        Share of val/test videos that are distractors (not in the ground truth).
    """

    n_identities: int
    train_per_id: float
    val_per_id: float
    test_per_id: float
    mean_frames: float
    max_frames: int
    chunk_videos: int = 2000
    distractor_share: float = 0.375


PRESETS: dict[str, Preset] = {
    "tiny": Preset(n_identities=20, train_per_id=9, val_per_id=4, test_per_id=4,
                   mean_frames=15, max_frames=200),
    "demo": Preset(n_identities=400, train_per_id=11, val_per_id=4, test_per_id=4,
                   mean_frames=30, max_frames=600),
    "large": Preset(n_identities=10_000, train_per_id=10, val_per_id=3, test_per_id=3,
                    mean_frames=30, max_frames=800, chunk_videos=1000),
}

def generate(
    out_dir: str | os.PathLike,
    *,
    preset: str = "demo",
    seed: int = 0,
    progress: ProgressFn | None = None,
) -> dict:
    """Write a synthetic iQIYI-VID-like dataset into ``out_dir``.

    Parameters
    ----------
    out_dir : str or PathLike
        Output folder (created if missing); existing files of the same names are
        replaced atomically.
    preset : {"tiny", "demo", "large"}
        Size; see ``PRESETS``.
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
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    cfg = PRESETS[preset]
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
    total = len(plan["person"])
    done = 0
    summary: dict = {"preset": preset, "seed": int(seed), "out_dir": str(out),
                     "n_identities": cfg.n_identities,
                     "n_strangers": int(len(people["kind"]) - cfg.n_identities)}
    for s, split in enumerate(SPLITS):
        rows = np.flatnonzero(plan["split"] == s)
        names = _video_names(split, len(rows))
        counter = {"frames": 0, "empty": 0}

        def items(rows=rows, names=names, s=s, counter=counter) -> Iterator[tuple[str, list]]:
            nonlocal done
            for c, start in enumerate(range(0, len(rows), cfg.chunk_videos)):
                chunk = rows[start:start + cfg.chunk_videos]
                rng = np.random.default_rng([seed, 3, s, c])
                lists = render_chunk(plan, people, chunk, rng)
                for name, frames in zip(names[start:start + len(chunk)], lists):
                    counter["frames"] += len(frames)
                    counter["empty"] += not frames
                    yield name, frames
                done += len(chunk)
                report(done / total, f"{split}: {start + len(chunk)}/{len(rows)} videos")

        write_features_stream(out / f"face_{split}.pickle", items())
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
        "  train_gt.txt (VIDEO.mp4 ID), val_gt.txt, test_gt.txt (ID V1.mp4 V2.mp4 ...)\n"
        "  truth.tsv  who is really in every video (distractors included): "
        "video, split, person (idN known / sNNNNN stranger), kind\n"
        "Videos in face_val/face_test but not in the ground truth are distractors.\n"
    )


__all__ = ["DIM", "KINDS", "PRESETS", "README_HEAD", "SPLITS", "Preset", "generate", "is_demo_dir"]
