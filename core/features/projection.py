"""2-d maps of pooled video vectors (UMAP or PCA), cached on disk.

``compute_projection(X, method="umap")`` lays out the rows of ``X`` in the plane. A
UMAP of tens of thousands of videos takes minutes, so results are cached on disk,
keyed by a hash of the data and every parameter that changes the result (and the
umap-learn version); a second call with the same inputs reads the file in
milliseconds. Writes are atomic, so two processes computing the same map at once
never leave a torn file. ``umap`` (and its numba compilation) is imported only when a
UMAP is actually computed.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
from pathlib import Path
from typing import Callable

import numpy as np

from core.atomic import atomic_write_bytes

ProgressFn = Callable[[float, str], None]

CACHE_VERSION = 1
# UMAP needs a few points to build its neighbour graph; fewer are laid out by PCA.
MIN_UMAP_POINTS = 5


def _check_params(X: np.ndarray, n_neighbors: int, min_dist: float, seed: int) -> np.ndarray:
    X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"projection needs a 2-d array (videos x dims), got shape {X.shape}")
    if not np.issubdtype(X.dtype, np.number):
        raise TypeError(f"projection needs numbers, got dtype {X.dtype}")
    X = np.ascontiguousarray(X, dtype=np.float32)
    if X.size and not np.isfinite(X).all():
        bad = int(np.flatnonzero(~np.isfinite(X).all(axis=1))[0])
        raise ValueError(f"projection input row {bad} holds NaN or inf")
    if isinstance(n_neighbors, bool) or not isinstance(n_neighbors, (int, np.integer)) \
            or n_neighbors < 2:
        raise ValueError(f"n_neighbors must be an integer >= 2, got {n_neighbors!r}")
    if not (0.0 <= float(min_dist) <= 1.0):
        raise ValueError(f"min_dist must be in [0, 1], got {min_dist!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return X


def _pca(X: np.ndarray, *, seed: int, progress: ProgressFn, **_: object) -> np.ndarray:
    n, d = X.shape
    out = np.zeros((n, 2), dtype=np.float32)
    if n < 2 or d == 0:
        return out
    from sklearn.decomposition import PCA

    progress(0.1, "PCA")
    k = min(2, n, d)
    out[:, :k] = PCA(n_components=k, random_state=seed).fit_transform(X)
    return out


class _TqdmSink(io.TextIOBase):
    """A file for tqdm to write ``n/total`` into; forwards each update as progress."""

    _RE = re.compile(r"(\d+)/(\d+)")

    def __init__(self, progress: ProgressFn, start: float, stop: float) -> None:
        self._progress, self._start, self._stop = progress, start, stop

    def write(self, s: str) -> int:
        matches = self._RE.findall(s)
        if matches:
            n, total = (int(v) for v in matches[-1])
            if total > 0:
                frac = self._start + (self._stop - self._start) * min(n / total, 1.0)
                self._progress(frac, f"UMAP layout: epoch {n}/{total}")
        return len(s)

    def flush(self) -> None:  # tqdm flushes after every write
        pass


def _umap(X: np.ndarray, *, n_neighbors: int, min_dist: float, seed: int,
          progress: ProgressFn) -> np.ndarray:
    n = X.shape[0]
    if n < MIN_UMAP_POINTS:
        return _pca(X, seed=seed, progress=progress)
    import warnings

    progress(0.05, "UMAP: loading umap-learn")
    import umap  # heavy: numba compilation on first use

    progress(0.1, f"UMAP: nearest neighbours of {n} videos")
    sink = _TqdmSink(progress, 0.3, 0.98)
    reducer = umap.UMAP(
        n_components=2, n_neighbors=int(min(n_neighbors, n - 1)), min_dist=float(min_dist),
        metric="cosine", random_state=int(seed), init="spectral" if n > 20 else "random",
        tqdm_kwds={"disable": False, "file": sink, "bar_format": "{n}/{total}",
                   "mininterval": 0.25},
    )
    with warnings.catch_warnings():
        # random_state makes UMAP single-threaded; that is the price of a reproducible map.
        warnings.filterwarnings("ignore", message=".*n_jobs.*")
        warnings.filterwarnings("ignore", message=".*random_state.*")
        warnings.filterwarnings("ignore", category=UserWarning, module="umap")
        emb = reducer.fit_transform(X)
    return np.asarray(emb, dtype=np.float32)


_METHODS: dict[str, Callable[..., np.ndarray]] = {"umap": _umap, "pca": _pca}
METHODS = tuple(_METHODS)


def default_cache_dir() -> Path:
    """``$VIDID_CACHE/projections`` or ``~/.cache/vidid/projections``."""
    from core.paths import cache_root

    return cache_root() / "projections"


def projection_key(X: np.ndarray, *, method: str, n_neighbors: int, min_dist: float,
                   seed: int) -> str:
    """The cache key of a projection: a hash of the data, the parameters and versions.

    >>> a = projection_key(np.eye(3, dtype=np.float32), method="pca", n_neighbors=15,
    ...                    min_dist=0.1, seed=0)
    >>> a == projection_key(np.eye(3, dtype=np.float32), method="pca", n_neighbors=15,
    ...                     min_dist=0.1, seed=1)
    False
    """
    X = np.ascontiguousarray(X, dtype=np.float32)
    h = hashlib.sha256()
    h.update(np.asarray(X.shape, dtype=np.int64).tobytes())
    h.update(memoryview(X).cast("B"))
    params = {"method": method, "seed": int(seed), "v": CACHE_VERSION}
    if method == "umap":
        params.update(n_neighbors=int(n_neighbors), min_dist=round(float(min_dist), 6),
                      umap=_umap_version())
    h.update(json.dumps(params, sort_keys=True).encode())
    return h.hexdigest()[:32]


def _umap_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("umap-learn")
    except PackageNotFoundError:  # pragma: no cover - umap is a dependency
        return "missing"


def compute_projection(
    X: np.ndarray,
    *,
    method: str = "umap",
    n_neighbors: int = 15,
    min_dist: float = 0.1,
    seed: int = 0,
    cache: bool = True,
    cache_dir: str | os.PathLike | None = None,
    progress: ProgressFn | None = None,
) -> np.ndarray:
    """Lay out the rows of ``X`` in 2-d, reading / writing an on-disk cache.

    Parameters
    ----------
    X : (n, d) array
        Pooled video vectors (unit rows; UMAP uses the cosine metric).
    method : {"umap", "pca"}
        UMAP (umap-learn) for the neighbourhood structure; PCA as a fast linear view.
    n_neighbors, min_dist : UMAP parameters (ignored by PCA).
    seed : int
        Random state: same inputs and seed, same map.
    cache : bool
        Read and write the on-disk cache.
    cache_dir : path, optional
        Default :func:`default_cache_dir`.
    progress : callable(fraction, message), optional
        Reports cache lookup, UMAP stages and layout epochs.

    Returns
    -------
    (n, 2) float32 array.

    Raises
    ------
    ValueError
        Unknown method (the message lists the options), bad parameters, NaN input.

    Examples
    --------
    >>> xy = compute_projection(np.eye(4, dtype=np.float32), method="pca", cache=False)
    >>> xy.shape
    (4, 2)
    """
    if method not in _METHODS:
        raise ValueError(f"unknown projection method {method!r}; choose one of "
                         f"{', '.join(METHODS)}")
    X = _check_params(X, n_neighbors, min_dist, seed)
    report = progress or (lambda fraction, message="": None)
    report(0.0, "looking for a cached map")
    path = None
    if cache:
        key = projection_key(X, method=method, n_neighbors=n_neighbors, min_dist=min_dist,
                             seed=seed)
        path = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        path = path / f"{method}-{key}.npy"
        cached = _read_cached(path, len(X))
        if cached is not None:
            report(1.0, "read from cache")
            return cached
    xy = _METHODS[method](X, n_neighbors=n_neighbors, min_dist=min_dist, seed=seed,
                          progress=report)
    if path is not None:
        buf = io.BytesIO()
        np.save(buf, xy, allow_pickle=False)
        atomic_write_bytes(path, buf.getvalue())
    report(1.0, "done")
    return xy


def _read_cached(path: Path, n: int) -> np.ndarray | None:
    try:
        xy = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None  # missing or unreadable: recompute (and overwrite atomically)
    if xy.shape != (n, 2) or xy.dtype != np.float32:
        return None
    return xy
