"""Cached multimodal reads: the active dataset with every modality, and what each one says.

Part of the caching layer :mod:`dashboard.cache` (built on :mod:`dashboard.cache.datasets`).
:func:`load_dataset` there is the face dataset every page draws frames from; here
:func:`modal_dataset` opens the same splits with the head / body / audio files found
beside their face pickles (``core.features.modalities.open_multimodal``), so faceless
videos are rows too. Its face frames are dropped (the face dataset holds them): only
the pooled blocks, the presence mask and the pooled face quality are kept.
The analysis is :mod:`core.runs.evidence`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Sequence

import numpy as np
import pandas as pd
import streamlit as st

from core.errors import DataError
from core.io.names import canonical_name
from dashboard.cache.datasets import labelled_ids
from dashboard.dataset_spec import DatasetSpec, files_fingerprint

if TYPE_CHECKING:  # pragma: no cover
    from core.features.dataset import LabelledVideos

#: What the Map can be drawn from: one modality's pooled vectors, or all of them side by side.
FUSED_SOURCE = "fused"


def modalities_of(spec: DatasetSpec) -> tuple[str, ...]:
    """The modalities found beside *every* split's face pickle (face first).

    >>> modalities_of(DatasetSpec("x", "/nonexistent", ()))
    ('face',)
    """
    from core.features.modalities import find_modalities
    from core.io.modalities import MODALITIES

    found = [set(find_modalities(s.feats)) for s in spec.splits]
    common = set.intersection(*found) if found else {"face"}
    return tuple(m for m in MODALITIES if m in common or m == "face")


def _fingerprint(spec: DatasetSpec) -> tuple:
    from core.io.modalities import sibling_paths

    files = sorted(str(p) for s in spec.splits for p in sibling_paths(s.feats).values())
    return files_fingerprint(spec), tuple((f, *_stat(f)) for f in files)


def _stat(path: str) -> tuple[int, int]:
    import os

    try:
        s = os.stat(path)
        return s.st_size, s.st_mtime_ns
    except OSError:
        return -1, -1


@st.cache_resource(max_entries=2, show_spinner="Loading every modality of the dataset…")
def _modal_cached(spec: DatasetSpec, modalities: tuple[str, ...], fingerprint: tuple) -> "LabelledVideos":
    from core.features.dataset import concat
    from core.features.modalities import open_multimodal
    from core.io.modalities import sibling_paths
    from core.resources import check_fits
    from dashboard.cache.datasets import estimate_load_memory

    files = [str(p) for s in spec.splits for m, p in sibling_paths(s.feats).items() if m in modalities]
    check_fits(estimate_load_memory(files), f"loading every modality of {spec.name}")
    parts = [open_multimodal(s.feats, s.gt, modalities=modalities, split=s.name) for s in spec.splits]
    lv = replace(concat(parts), frames=None)  # the face dataset holds the frames
    for a in (lv.X, lv.ids, lv.names, lv.split, lv.modal.present, *lv.modal.blocks.values(),
              lv.pooled.mean_quality, lv.pooled.n_frames):
        if isinstance(a, np.ndarray):
            a.flags.writeable = False
    return lv


def modal_dataset(spec: DatasetSpec) -> "LabelledVideos | None":
    """Every split of ``spec`` with all its modalities (shared, read-only), or None when
    no split has head / body / audio files beside its face pickle."""
    mods = modalities_of(spec)
    if mods == ("face",):
        return None
    return _modal_cached(spec, mods, _fingerprint(spec))


@st.cache_data(max_entries=16, show_spinner=False)
def _conditions_cached(spec: DatasetSpec, fingerprint: tuple, low_quality: float) -> pd.DataFrame:
    from core.runs.evidence import face_condition

    lv = modal_dataset(spec)
    mods = np.asarray(lv.modal.modalities)
    present = np.asarray(lv.modal.present)
    held = ["+".join(mods[p]) for p in present]
    return pd.DataFrame({
        "video": np.asarray(lv.names).astype(str),
        "split": np.asarray(lv.split).astype(str),
        "condition": face_condition(lv.modal.has("face"), lv.pooled.mean_quality,
                                    low_quality=low_quality),
        "face quality": np.asarray(lv.pooled.mean_quality, np.float64).round(1),
        "modalities": held}).set_index("video")


def face_conditions(spec: DatasetSpec, low_quality: float) -> pd.DataFrame | None:
    """Per video of the multimodal dataset: ``split``, ``condition`` (face / low-quality
    face / no face, :func:`core.runs.evidence.face_condition`), ``face quality``,
    ``modalities`` held; None for face-only data."""
    if modal_dataset(spec) is None:
        return None
    return _conditions_cached(spec, _fingerprint(spec), float(low_quality))


@st.cache_data(max_entries=128, show_spinner="Asking each modality…")
def _evidence_cached(spec: DatasetSpec, fingerprint: tuple, videos: tuple[str, ...],
                     k: int) -> pd.DataFrame:
    from core.runs.evidence import modality_evidence

    lv = modal_dataset(spec)
    names = np.asarray(lv.names).astype(str)
    index = {n: i for i, n in enumerate(names.tolist())}
    rows = [index[v] for v in videos if v in index]
    reference = np.flatnonzero((np.asarray(lv.ids) > 0) & labelled_ids(lv, spec))
    return modality_evidence(lv.modal, np.asarray(lv.ids), rows, reference=reference, k=k,
                             names=names)


def modality_evidence(spec: DatasetSpec, videos: Sequence[str], k: int = 5) -> pd.DataFrame | None:
    """What each modality alone says about ``videos`` (:func:`core.runs.evidence.modality_evidence`,
    compared with every labelled video of the dataset), or None for face-only data."""
    if modal_dataset(spec) is None:
        return None
    if not videos:
        raise DataError("no video to explain")
    return _evidence_cached(spec, _fingerprint(spec), tuple(canonical_name(v) for v in videos),
                            int(k)).copy()


def map_sources(spec: DatasetSpec) -> list[str]:
    """What the Map can be drawn from: ``face``, each other modality present, and
    :data:`FUSED_SOURCE` when there is more than one."""
    mods = list(modalities_of(spec))
    return mods + ([FUSED_SOURCE] if len(mods) > 1 else [])


@st.cache_data(max_entries=8, show_spinner=False)
def _source_cached(spec: DatasetSpec, fingerprint: tuple, source: str) -> tuple[np.ndarray, np.ndarray]:
    from core.learn.fusion import KNN_WEIGHTS

    lv = modal_dataset(spec)
    if source == FUSED_SOURCE:
        X = lv.modal.concatenated(KNN_WEIGHTS)
        rows = np.flatnonzero(np.asarray(lv.modal.present).any(axis=1))
    else:
        rows = np.flatnonzero(lv.modal.has(source))
        X = np.asarray(lv.modal.blocks[source])
    return rows, np.ascontiguousarray(X[rows], dtype=np.float32)


def source_vectors(spec: DatasetSpec, source: str) -> tuple[np.ndarray, np.ndarray]:
    """``(rows of modal_dataset(spec) holding the source, their vectors)`` for the Map.

    Raises ``DataError`` for a source the dataset does not hold.
    """
    if source not in map_sources(spec) or source == "face" and modal_dataset(spec) is None:
        raise DataError(f"{spec.name}: no {source} features to draw (it holds "
                        f"{', '.join(map_sources(spec))})")
    return _source_cached(spec, _fingerprint(spec), source)


__all__ = ["FUSED_SOURCE", "face_conditions", "map_sources", "modal_dataset",
           "modalities_of", "modality_evidence", "source_vectors"]
