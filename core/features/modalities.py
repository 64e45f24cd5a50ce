"""Pooling of every modality and the multimodal labelled dataset.

One pooled block per modality, row-aligned with the videos, plus a presence mask:

* face: the face pooling options (quality weights by default, thresholds, views);
* head: frames weighted by their detection score (the ``quality`` column of a head
  FrameSet holds it, see :mod:`core.io.modalities`);
* body: uniform mean of the frames (clothes change between videos; no score exists);
* audio: the one vector as is (L2-normalised).

A video missing from a modality, or with an empty list there, gets a zero row and
``present[:, m] = False``. :func:`open_multimodal` keeps a video when *any* chosen
modality holds it, so faceless videos are scored too; with ``("face",)`` it is
exactly :func:`core.features.dataset.open_split`.
"""

from __future__ import annotations

import os
from typing import Callable, Mapping, Sequence

import numpy as np

from core.errors import DataError
from core.io.frames import FrameSet
from core.io.modalities import MODALITIES, check_modalities, read_modality, sibling_paths
from core.features.modal_features import ModalFeatures, concat_modal
from core.features.pooled_videos import PooledVideos
from core.features.pooling import pool_videos

ProgressFn = Callable[[float, str], None]


def pool_modality(fs: FrameSet, modality: str, **face_opts) -> PooledVideos:
    """Pool one modality's FrameSet with that modality's rule (see the module docstring).

    ``face_opts`` (``weighting``, ``min_quality``, ``min_det``) apply to faces only.
    """
    if modality == "face":
        return pool_videos(fs, **face_opts)
    # head: the quality column holds the detection score; body and audio: all ones.
    return pool_videos(fs, weighting="quality" if modality == "head" else "uniform")


def aligned_frames(fs: FrameSet, names: np.ndarray) -> FrameSet:
    """``fs`` re-ordered to ``names``; a name ``fs`` lacks becomes a video with no frames.

    Examples
    --------
    >>> from core.io.frames import frameset_from_videos
    >>> fs = frameset_from_videos({"a": [["1", [0, 0, 1, 1], 1.0, 50.0, np.ones(2, np.float16)]]},
    ...                           source="toy")
    >>> al = aligned_frames(fs, np.array(["b", "a"], dtype=object))
    >>> al.offsets.tolist(), al.n_frames
    ([0, 0, 1], 1)
    """
    index = {n: i for i, n in enumerate(fs.names)}
    src = np.fromiter((index.get(n, -1) for n in names), dtype=np.int64, count=len(names))
    lengths = np.where(src >= 0, np.diff(np.asarray(fs.offsets))[np.maximum(src, 0)], 0)
    if len(fs.names) == 0:
        lengths = np.zeros(len(names), dtype=np.int64)
    offsets = np.zeros(len(names) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    starts = np.asarray(fs.offsets, dtype=np.int64)[np.maximum(src, 0)] if len(fs.names) else \
        np.zeros(len(names), np.int64)
    idx = np.repeat(starts - offsets[:-1], lengths) + np.arange(int(offsets[-1]))
    return FrameSet(names=np.asarray(names, dtype=object), offsets=offsets, feats=fs.feats[idx],
                    quality=fs.quality[idx], det=fs.det[idx], frame_no=fs.frame_no[idx],
                    bbox=fs.bbox[idx], source=fs.source)


def find_modalities(face_path: str | os.PathLike) -> tuple[str, ...]:
    """The modalities whose files sit beside ``face_path`` (always ``face`` first)."""
    return tuple(m for m in MODALITIES if m in sibling_paths(face_path))


def open_multimodal(
    face_path: str | os.PathLike,
    gt=None,
    *,
    modalities: Sequence[str] | str | None = None,
    paths: Mapping[str, str | os.PathLike] | None = None,
    split: str = "",
    progress: ProgressFn | None = None,
    **pool_opts,
):
    """One split with every chosen modality: a LabelledVideos whose ``modal`` holds the blocks.

    Parameters
    ----------
    face_path : the face pickle; other modalities are its siblings (:func:`sibling_paths`)
        unless ``paths`` names them
    gt : as for :func:`core.features.dataset.open_split`
    modalities : the modalities to use (default: every one found beside ``face_path``)
    paths : modality -> file, overriding the sibling search
    **pool_opts : face pooling options

    Returns
    -------
    LabelledVideos
        ``X`` the face block (zeros for faceless videos), ``frames`` the face frames
        row-aligned (faceless videos own no frame), ``modal`` the :class:`ModalFeatures`.
        A video no chosen modality holds is left out (listed in ``pooled.empty``).

    Examples
    --------
    >>> lv = open_multimodal("face_val.pickle", "val_gt.txt")  # doctest: +SKIP
    >>> lv.modal.modalities, lv.modal.present.mean(0)  # doctest: +SKIP
    (('face', 'head', 'body', 'audio'), array([0.92, 0.97, 0.9, 0.85]))
    """
    from core.features.dataset import LabelledVideos, open_split
    from core.io.formats import GroundTruth, check_ground_truth, read_ground_truth

    report = progress or (lambda f, m="": None)
    found = {m: os.fspath(p) for m, p in (paths or sibling_paths(face_path)).items()}
    found.setdefault("face", os.fspath(face_path))
    mods = tuple(m for m in MODALITIES if m in found) if modalities is None \
        else check_modalities(modalities)
    for m in mods:
        if m not in found:
            raise DataError(f"{face_path}: no {m} features beside it (looked for "
                            f"{m}_{os.path.basename(str(face_path))[len('face_'):]})")
    if not split:
        split = os.path.splitext(os.path.basename(str(face_path)))[0]
    if mods == ("face",):
        return open_split(face_path, gt, split=split, progress=progress, **pool_opts)
    sets: dict[str, FrameSet] = {}
    for i, m in enumerate(mods):
        sets[m] = read_modality(found[m], m, progress=lambda f, msg="", i=i: report(
            0.6 * (i + f) / len(mods), f"{m}: {msg}"))
    # Rows: face file order, then videos only other modalities hold.
    order: dict[str, None] = {}
    for m in mods:
        order.update(dict.fromkeys(sets[m].names.tolist()))
    all_names = np.empty(len(order), dtype=object)
    all_names[:] = list(order)
    report(0.6, "pooling")
    blocks, present = {}, np.zeros((len(all_names), len(mods)), dtype=bool)
    face_pv = None
    for j, m in enumerate(mods):
        pv = pool_modality(sets[m], m, **pool_opts)
        if m == "face":
            face_pv = pv
        pos = {n: i for i, n in enumerate(all_names)}
        rows = np.fromiter((pos[n] for n in pv.names), dtype=np.int64, count=len(pv.names))
        block = np.zeros((len(all_names), pv.X.shape[1]), dtype=np.float32)
        block[rows] = pv.X
        blocks[m] = block
        present[rows, j] = True
    keep = present.any(axis=1)
    names = all_names[keep]
    modal = ModalFeatures(mods, {m: b[keep] for m, b in blocks.items()}, present[keep])
    if gt is None:
        labels: dict[str, int] = {}
    else:
        if isinstance(gt, (str, os.PathLike)):
            gt = read_ground_truth(gt)
        labels, gt_path = _labels(gt)
        if "face" in mods:  # every labelled video is in the face file (maybe without a face)
            check_ground_truth(GroundTruth(labels, gt_path), all_names, features_path=str(face_path))
    ids = np.fromiter((labels.get(n, 0) for n in names), dtype=np.int64, count=len(names))
    if "face" in mods:
        frames = aligned_frames(sets["face"], names)
        X = modal.blocks["face"]
        n_frames = np.diff(np.asarray(frames.offsets))
        csum = np.concatenate(([0.0], np.cumsum(np.asarray(frames.quality, np.float64))))
        q = csum[frames.offsets[1:]] - csum[frames.offsets[:-1]]
        mean_q = np.where(n_frames > 0, q / np.maximum(n_frames, 1), 0.0).astype(np.float32)
        options = dict(face_pv.options)
    else:  # no face at all: the first modality stands in (no views, no augmentation)
        first = mods[0]
        frames = aligned_frames(sets[first], names)
        X = modal.blocks[first]
        n_frames = np.diff(np.asarray(frames.offsets))
        mean_q = np.zeros(len(names), np.float32)
        options = {"weighting": "uniform", "min_quality": None, "min_det": None}
    options["modalities"] = ",".join(mods)
    pooled = PooledVideos(names=names, X=X, n_frames=n_frames, mean_quality=mean_q,
                          empty=[str(n) for n in all_names[~keep]], options=options)
    report(1.0, "done")
    return LabelledVideos(names=names, X=X, ids=ids,
                          split=np.full(len(names), split, dtype=object), frames=frames,
                          pooled=pooled, modal=modal)


def modality_coverage(face_path: str | os.PathLike) -> dict[str, int]:
    """Videos per modality beside one face pickle, and the faceless ones.

    Returns ``{"videos": n, "face": ..., "head": ..., "body": ..., "audio": ...,
    "faceless": ...}``: a modality counts the videos it holds at least one frame (or
    the vector) of, ``-1`` when its file is absent; ``faceless`` counts videos with no
    face frame that another modality holds.

    Examples
    --------
    >>> modality_coverage("face_val.pickle")  # doctest: +SKIP
    {'videos': 2960, 'face': 2717, 'head': 2812, 'body': 2725, 'audio': 2723, 'faceless': 243}
    """
    found = sibling_paths(face_path)
    held: dict[str, set] = {}
    for m in MODALITIES:
        if m in found:
            fs = read_modality(found[m], m)
            held[m] = set(np.asarray(fs.names)[np.diff(np.asarray(fs.offsets)) > 0].tolist())
            held.setdefault("_all", set()).update(fs.names.tolist())
    out = {"videos": len(held.get("_all", ()))}
    for m in MODALITIES:
        out[m] = len(held[m]) if m in held else -1
    others = set().union(*(held[m] for m in MODALITIES[1:] if m in held))
    out["faceless"] = len(others - held.get("face", set()))
    return out


def _labels(gt) -> tuple[dict[str, int], str]:
    from core.io.names import canonical_name

    if hasattr(gt, "labels"):
        return {canonical_name(v): int(i) for v, i in gt.labels.items()}, str(getattr(gt, "path", ""))
    if isinstance(gt, Mapping):
        return {canonical_name(v): int(i) for v, i in gt.items()}, "ground truth"
    raise TypeError(f"gt must be a path, a GroundTruth or dict[video, id], got {type(gt).__name__}")


__all__ = ["ModalFeatures", "aligned_frames", "concat_modal", "find_modalities",
           "modality_coverage",
           "open_multimodal", "pool_modality"]
