"""Cached tables of the Data page: split statistics and the effect of pooling options.

Part of the caching layer :mod:`dashboard.cache` (built on :mod:`dashboard.cache.datasets`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import streamlit as st

from dashboard.cache.datasets import labelled_ids, load_dataset, load_split
from dashboard.dataset_spec import DatasetSpec, files_fingerprint


@st.cache_data(max_entries=8, show_spinner="Counting…")
def _stats_cached(spec: DatasetSpec, fingerprint: tuple, sample: int) -> dict:
    lv = load_dataset(spec)
    fs = lv.frames
    split = np.asarray(lv.split)
    ids = np.asarray(lv.ids)
    labelled = labelled_ids(lv, spec)
    # Empty videos are not pooled (so not in ``lv``) but still count as videos and,
    # when their ground truth does not name them, as distractors.
    n_empty, empty_distr = {}, {}
    for s in spec.splits:
        empty = load_split(spec, s.name).pooled.empty
        n_empty[s.name] = len(empty)
        if s.gt:
            from core.io.formats import read_ground_truth

            named = read_ground_truth(s.gt).labels
            empty_distr[s.name] = sum(1 for e in empty if e not in named)
    per_split = []
    for s in spec.splits:
        m = split == s.name
        per_split.append({
            "split": s.name, "videos": int(m.sum()) + n_empty[s.name],
            # Labelled empty videos count too, as empty distractors do below.
            "labelled": int((m & (ids > 0)).sum())
            + (n_empty[s.name] - empty_distr[s.name] if s.gt else 0),
            "distractors": int((m & (ids == 0)).sum()) + empty_distr[s.name] if s.gt else None,
            "identities": int(np.unique(ids[m & (ids > 0)]).size),
            "frames": int(np.asarray(fs.lengths)[m].sum()),
            "empty videos": n_empty[s.name],
            "ground truth": Path(s.gt).name if s.gt else "—",
        })
    # Frame-level histograms read a seeded sample: bounded cost at any scale.
    rng = np.random.default_rng(0)
    nf = fs.n_frames
    take = np.sort(rng.choice(nf, size=sample, replace=False)) if nf > sample else slice(None)
    vids_per_id = np.bincount(ids[ids > 0]) if (ids > 0).any() else np.zeros(1, int)
    vids_per_id = vids_per_id[vids_per_id > 0]
    return {
        "videos": int(len(lv.names)) + sum(n_empty.values()),
        "identities": int(np.unique(ids[ids > 0]).size),
        "distractors": int((labelled & (ids == 0)).sum()) + sum(empty_distr.values()),
        "unlabelled": int((~labelled).sum()),
        "frames": int(nf),
        "empty": int(sum(n_empty.values())),
        "per_split": pd.DataFrame(per_split),
        "frames_per_video": np.asarray(fs.lengths).astype(np.int32),
        "quality": np.asarray(fs.quality[take], dtype=np.float32),
        "det": np.asarray(fs.det[take], dtype=np.float32),
        "sampled": bool(nf > sample),
        "videos_per_identity": pd.Series(vids_per_id).value_counts().sort_index(),
        "dim": int(lv.X.shape[1]),
    }


def dataset_stats(spec: DatasetSpec, *, sample: int = 200_000) -> dict:
    """Counts and histogram inputs of the dataset (frame scores sampled beyond ``sample``)."""
    return _stats_cached(spec, files_fingerprint(spec), sample)


@st.cache_data(max_entries=16, show_spinner="Pooling with these options…")
def _pooling_effect_cached(spec: DatasetSpec, fingerprint: tuple, options: tuple,
                           limit: int) -> dict:
    from core.features.pooling import pool_videos

    base = load_dataset(spec)
    fs = base.frames
    cosines: dict[str, np.ndarray] = {}
    maps: dict[str, float] = {}
    have_knn = _knn_pair(spec) is not None
    if have_knn:
        maps["quality (default)"] = _knn_map(spec, "quality", None, None, limit)
    for weighting, min_quality, min_det in options:
        label = _option_label(weighting, min_quality, min_det)
        pv = pool_videos(fs, weighting=weighting, min_quality=min_quality, min_det=min_det)
        cosines[label] = np.einsum("ij,ij->i", pv.X, base.X).astype(np.float32)
        if have_knn:
            maps[label] = _knn_map(spec, weighting, min_quality, min_det, limit)
    n_val = len(load_split(spec, _knn_pair(spec)[1]).names) if have_knn else 0  # type: ignore[index]
    return {"cosines": cosines, "map": maps, "knn_queries": (min(n_val, limit), n_val)}


def _option_label(weighting: str, min_quality: float | None, min_det: float | None) -> str:
    parts = [weighting]
    if min_quality is not None:
        parts.append(f"q>={min_quality:g}")
    if min_det is not None:
        parts.append(f"det>={min_det:g}")
    return ", ".join(parts)


def _knn_pair(spec: DatasetSpec) -> tuple[str, str] | None:
    """(reference, query) split names for the quick KNN check: train vs val, if labelled."""
    names = spec.labelled_splits
    if "train" in names and "val" in names:
        return "train", "val"
    return None


def _knn_map(spec: DatasetSpec, weighting: str, min_quality: float | None,
             min_det: float | None, limit: int) -> float:
    from core.learn.knn import knn_scores
    from core.learn.metrics import mean_average_precision, rank_videos

    ref_name, q_name = _knn_pair(spec)  # type: ignore[misc]
    ref = load_split(spec, ref_name, weighting, min_quality=min_quality, min_det=min_det)
    q = load_split(spec, q_name, weighting, min_quality=min_quality, min_det=min_det)
    identity_ids = np.unique(np.asarray(ref.ids)[np.asarray(ref.ids) > 0])
    rows = knn_query_rows(len(q.names), limit)
    S = knn_scores(q.X[rows], ref.X, ref.ids, identity_ids, k=5)
    mask = np.zeros(len(q.names), bool)
    mask[rows] = True
    gt = q.ground_truth(mask)
    ranking = rank_videos(S, q.names[rows], identity_ids)
    return float(mean_average_precision(gt, ranking))


#: Most val videos the Data page's 5-NN check ranks (a seeded sample above it). At the
#: 2019 size all 72,638 val videos against 10,000 identities took minutes per pooling option.
MAX_KNN_QUERIES = 5_000


def knn_query_rows(n: int, limit: int | None = None) -> np.ndarray:
    """Rows of the val split the 5-NN check ranks: all, or a seeded sample of ``limit``.

    >>> knn_query_rows(3).tolist(), knn_query_rows(9, 4).tolist()  # the sample is sorted and seeded
    ([0, 1, 2], [2, 4, 5, 7])
    """
    limit = MAX_KNN_QUERIES if limit is None else limit
    if n <= limit:
        return np.arange(n)
    return np.sort(np.random.default_rng(0).choice(n, size=limit, replace=False))


def pooling_effect(spec: DatasetSpec, options: Sequence[tuple[str, float | None, float | None]]
                   ) -> dict:
    """What other pooling options change, against the default quality weighting.

    For each ``(weighting, min_quality, min_det)``: the cosine of every video's pooled
    vector to its default one, and — when train and val are labelled — the mAP of a
    5-NN baseline ranking val by train (the default's mAP under "quality (default)").
    """
    return _pooling_effect_cached(spec, files_fingerprint(spec), tuple(tuple(o) for o in options),
                                  MAX_KNN_QUERIES)


__all__ = ["dataset_stats", "pooling_effect"]


@st.cache_data(max_entries=8, show_spinner="Counting modalities…")
def _coverage_cached(spec: DatasetSpec, fingerprint: tuple) -> pd.DataFrame:
    from core.features.modalities import modality_coverage

    rows = []
    for s in spec.splits:
        cov = modality_coverage(s.feats)
        rows.append({"split": s.name, **{k: (v if v >= 0 else None) for k, v in cov.items()}})
    return pd.DataFrame(rows)


def modality_coverage(spec: DatasetSpec) -> pd.DataFrame:
    """Per split: videos, videos holding each modality (None: no file), faceless videos."""
    return _coverage_cached(spec, files_fingerprint(spec))

