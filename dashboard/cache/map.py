"""Cached data of the Map page: which rows are drawn, and their 2-d projection.

Part of the caching layer :mod:`dashboard.cache` (built on :mod:`dashboard.cache.datasets`).
"""

from __future__ import annotations

import threading

import numpy as np
import streamlit as st

from core.paths import cache_root
from core.progress import ProgressFn
from dashboard.cache.datasets import load_dataset, noise_rows
from dashboard.cache.modal import source_vectors
from dashboard.dataset_spec import DatasetSpec, files_fingerprint

#: Beyond this many points the map shows a seeded random sample.
MAX_MAP_POINTS = 100_000


@st.cache_data(max_entries=16, show_spinner=False)
def _map_rows_cached(spec: DatasetSpec, fingerprint: tuple, subset: str,
                     max_points: int, source: str = "face") -> tuple[np.ndarray, int]:
    if source != "face":
        if subset != "all":
            raise ValueError(f"the {subset!r} map is drawn from faces only, not {source!r}")
        rows = source_vectors(spec, source)[0]
    elif subset == "noise":
        rows = noise_rows(spec)
    elif subset == "all":
        rows = np.arange(len(load_dataset(spec).names))
    else:
        raise ValueError(f"unknown map subset {subset!r}; choose noise or all")
    total = len(rows)
    if total > max_points:
        rng = np.random.default_rng(0)
        rows = np.sort(rng.choice(rows, size=max_points, replace=False))
    return rows, total


def map_rows(spec: DatasetSpec, subset: str, max_points: int = MAX_MAP_POINTS, *,
             source: str = "face") -> tuple[np.ndarray, int]:
    """Rows drawn on the map, and how many there were in all.

    Rows of ``load_dataset(spec)`` for ``source="face"``; for another modality or
    ``"fused"`` (every video, then only with ``subset="all"``), rows of
    :func:`dashboard.cache.modal.modal_dataset` holding it.
    """
    return _map_rows_cached(spec, files_fingerprint(spec), subset, int(max_points), source)


@st.cache_resource(show_spinner=False)
def _projection_memo() -> dict:
    # Shared across sessions; values are read-only arrays, guarded by the lock below.
    return {}


_MEMO_LOCK = threading.Lock()
_MEMO_MAX = 8
_KEY_LOCKS: dict[tuple, threading.Lock] = {}


def projection(spec: DatasetSpec, subset: str, *, method: str = "umap", n_neighbors: int = 15,
               min_dist: float = 0.1, seed: int = 0, max_points: int = MAX_MAP_POINTS,
               progress: ProgressFn | None = None, source: str = "face"
               ) -> tuple[np.ndarray, np.ndarray, int]:
    """2-d map of the ``subset`` ("noise" or "all") videos: ``(rows, xy, total)``.

    ``source``: the pooled vectors drawn (``face``, ``head``, ``body``, ``audio`` or
    ``fused``, :func:`dashboard.cache.modal.map_sources`); rows as in :func:`map_rows`.

    Held in memory once computed and on disk by ``core.features.projection`` (keyed by the data
    and parameters), so only the first request for a map pays; ``progress`` is called
    only while computing.
    """
    from core.features.projection import compute_projection

    rows, total = map_rows(spec, subset, max_points, source=source)
    key = (spec, files_fingerprint(spec), subset, int(max_points), method, int(n_neighbors),
           round(float(min_dist), 6), int(seed), source)
    memo = _projection_memo()
    with _MEMO_LOCK:
        xy = memo.get(key)
        # One computation per map: a second tab asking for the same one waits for it.
        key_lock = _KEY_LOCKS.setdefault(key, threading.Lock())
    if xy is None:
        with key_lock:
            with _MEMO_LOCK:
                xy = memo.get(key)
            if xy is None:
                if source == "face":
                    X = np.asarray(load_dataset(spec).X)[rows]
                else:
                    src_rows, src_X = source_vectors(spec, source)
                    X = src_X[np.searchsorted(src_rows, rows)]
                # UMAP reports progress from inside tqdm's display, under tqdm's global
                # write lock, which tqdm releases without try/finally: an exception from
                # the callback (Streamlit's rerun/stop when the user leaves the page)
                # would leave that lock held and hang every later map of the server.
                # So the callback never raises: the first exception is kept, the map is
                # finished (and cached), then the exception is raised.
                deferred: list[BaseException] = []

                def safe_progress(fraction: float, message: str) -> None:
                    if progress is None or deferred:
                        return
                    try:
                        progress(fraction, message)
                    except BaseException as exc:  # noqa: BLE001 - re-raised below
                        deferred.append(exc)

                xy = compute_projection(X, method=method, n_neighbors=n_neighbors,
                                        min_dist=min_dist, seed=seed,
                                        cache_dir=cache_root() / "projections",
                                        progress=safe_progress)
                xy.flags.writeable = False
                with _MEMO_LOCK:
                    if len(memo) >= _MEMO_MAX:
                        old = next(iter(memo))
                        memo.pop(old)
                        _KEY_LOCKS.pop(old, None)
                    memo[key] = xy
                if deferred:
                    raise deferred[0]
    return rows, xy, total


__all__ = ["MAX_MAP_POINTS", "map_rows", "projection"]
