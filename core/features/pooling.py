"""Pooling: one unit vector per video from its ragged frame features.

A video's embedding is the weighted mean of its frame features (weights from face
quality), then L2-normalised. Everything works on whole segments at once
(:mod:`core.features.segment_means`: frames streamed in row chunks, summed per segment
by a sparse weight-matrix product) — no per-video Python loop.

Also here: the test-time views of a video (:func:`pool_views`) and extra noise videos
made by joining / cutting real ones (:func:`augment_noise`). Elsewhere in
:mod:`core.features` (which exports them all): the checked range means
``pool_segments`` (:mod:`core.features.segment_means`), the result type
``PooledVideos`` and its Parquet store ``save_pooled`` / ``load_pooled``
(:mod:`core.features.pooled_videos`), and the fast float16 cast
(:mod:`core.features.half_float`).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from core.io.frames import FrameSet
from core.features.pooled_videos import PooledVideos
from core.features.segment_means import pool_segments, pool_stream, ranges_index

ProgressFn = Callable[[float, str], None]

WEIGHTINGS = ("quality", "quality2", "uniform")
VIEWS = ("full", "drop_head", "drop_tail", "middle")



# --------------------------------------------------------------------------- weights


def _weight_quality(q: np.ndarray) -> np.ndarray:
    return np.maximum(q, 0, dtype=np.float32)


def _weight_quality2(q: np.ndarray) -> np.ndarray:
    w = np.maximum(q, 0, dtype=np.float32)
    return np.square(w, out=w)


def _weight_uniform(q: np.ndarray) -> np.ndarray:
    return np.ones(len(q), dtype=np.float32)


_WEIGHT_FUNCS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "quality": _weight_quality,
    "quality2": _weight_quality2,
    "uniform": _weight_uniform,
}


def _check_weighting(weighting: str) -> None:
    if weighting not in _WEIGHT_FUNCS:
        raise ValueError(
            f"unknown weighting {weighting!r}; choose one of {', '.join(WEIGHTINGS)}"
        )


def frame_weights(
    quality: np.ndarray,
    det: np.ndarray,
    offsets: np.ndarray,
    *,
    weighting: str = "quality",
    min_quality: float | None = None,
    min_det: float | None = None,
) -> np.ndarray:
    """Per-frame pooling weights.

    Parameters
    ----------
    quality, det : (n_frames,) arrays
        Quality and detection score of every frame.
    offsets : (n_videos + 1,) int array
        Video ``i`` owns frames ``offsets[i]:offsets[i+1]``.
    weighting : {"quality", "quality2", "uniform"}
        ``max(q, 0)``, ``max(q, 0) ** 2`` or 1.
    min_quality, min_det : float, optional
        Frames with ``quality < min_quality`` or ``det < min_det`` get weight 0 —
        unless no frame of their video passes, in which case all its frames keep
        their weight.

    Returns
    -------
    (n_frames,) float32, non-negative.

    Examples
    --------
    >>> frame_weights(np.array([10., -5., 30.]), np.ones(3), np.array([0, 2, 3]),
    ...               min_quality=20).tolist()
    [10.0, 0.0, 30.0]
    """
    _check_weighting(weighting)
    for label, value in (("min_quality", min_quality), ("min_det", min_det)):
        if value is not None and not np.isfinite(value):
            raise ValueError(f"{label} must be a finite number, got {value!r}")
    quality = np.asarray(quality)
    offsets = np.asarray(offsets, dtype=np.int64)
    w = _WEIGHT_FUNCS[weighting](quality)
    if min_quality is None and min_det is None:
        return w
    passes = np.ones(len(quality), dtype=bool)
    if min_quality is not None:
        passes &= quality >= min_quality
    if min_det is not None:
        passes &= np.asarray(det) >= min_det
    # Passing frames per video from a cumulative count (safe for empty videos).
    csum = np.concatenate(([0], np.cumsum(passes, dtype=np.int64)))
    n_pass = csum[offsets[1:]] - csum[offsets[:-1]]
    lengths = np.diff(offsets)
    none_pass = np.repeat(n_pass == 0, lengths)
    w[~(passes | none_pass)] = 0.0
    return w


# --------------------------------------------------------------------------- videos


def _pool_options(weighting: str, min_quality: float | None, min_det: float | None) -> dict:
    _check_weighting(weighting)
    return {"weighting": weighting, "min_quality": min_quality, "min_det": min_det}


def pool_videos(
    fs: FrameSet,
    *,
    weighting: str = "quality",
    min_quality: float | None = None,
    min_det: float | None = None,
    progress: ProgressFn | None = None,
) -> PooledVideos:
    """Pool every video of ``fs`` into one unit vector.

    Videos without frames are skipped and listed in ``empty``.

    Parameters
    ----------
    fs : FrameSet
    weighting, min_quality, min_det
        See :func:`frame_weights`.
    progress : callable(fraction, message), optional

    Examples
    --------
    >>> pv = pool_videos(fs)  # doctest: +SKIP
    >>> pv.X.shape, pv.empty  # doctest: +SKIP
    ((10000, 512), [])
    """
    opts = _pool_options(weighting, min_quality, min_det)
    offsets = np.asarray(fs.offsets, dtype=np.int64)
    w = frame_weights(fs.quality, fs.det, offsets, **opts)
    lengths = np.diff(offsets)
    X, valid = pool_stream(fs.feats, w, lengths, progress=progress)
    # Empty videos own no frames, so consecutive valid starts delimit the videos.
    quality = np.asarray(fs.quality, np.float64)
    qsum = np.add.reduceat(quality, offsets[:-1][valid]) if valid.any() else np.zeros(0)
    names = np.asarray(fs.names, dtype=object)
    return PooledVideos(
        names=names[valid],
        X=X[valid] if not valid.all() else X,
        n_frames=lengths[valid],
        mean_quality=(qsum / np.maximum(lengths[valid], 1)).astype(np.float32),
        empty=[str(n) for n in names[~valid]],
        options=opts,
    )


def _view_bounds(starts: np.ndarray, lengths: np.ndarray, view: str, n_folds: int):
    fold = lengths // n_folds
    ends = starts + lengths
    if view == "full":
        s, e = starts, ends
    elif view == "drop_head":
        s, e = starts + fold, ends
    elif view == "drop_tail":
        s, e = starts, ends - fold
    elif view == "middle":
        s, e = starts + fold, ends - fold
    else:
        raise ValueError(f"unknown view {view!r}; choose one of {', '.join(VIEWS)}")
    empty = e <= s
    return np.where(empty, starts, s), np.where(empty, ends, e)


def pool_views(
    fs: FrameSet,
    *,
    rows: np.ndarray | None = None,
    n_folds: int = 4,
    weighting: str = "quality",
    min_quality: float | None = None,
    min_det: float | None = None,
) -> np.ndarray:
    """Pooled vectors of the test-time views of videos, ``(len(VIEWS), n, d)``.

    With ``fold = n_frames // n_folds``: ``full`` is every frame, ``drop_head``
    ``frames[fold:]``, ``drop_tail`` ``frames[:n - fold]``, ``middle``
    ``frames[fold:n - fold]``; a view that would be empty falls back to the full
    video. Weights (and threshold fallbacks) are those of the whole video; a view
    whose weights sum to 0 is averaged uniformly. Empty videos give zero rows.

    Parameters
    ----------
    fs : FrameSet
    rows : int array, optional
        Videos (rows of ``fs``) to pool; default all.
    n_folds : int
        Number of folds a video is cut into (>= 2).

    Examples
    --------
    >>> V = pool_views(fs, rows=np.array([0, 5]))  # doctest: +SKIP
    >>> V.shape  # doctest: +SKIP
    (4, 2, 512)
    """
    if n_folds < 2:
        raise ValueError(f"n_folds must be >= 2, got {n_folds}")
    opts = _pool_options(weighting, min_quality, min_det)
    offsets = np.asarray(fs.offsets, dtype=np.int64)
    rows = np.arange(fs.n_videos) if rows is None else np.asarray(rows, dtype=np.int64)
    w = frame_weights(fs.quality, fs.det, offsets, **opts)
    starts, lengths = offsets[rows], offsets[rows + 1] - offsets[rows]
    out = np.empty((len(VIEWS), len(rows), fs.dim), dtype=np.float32)
    for v, view in enumerate(VIEWS):
        s, e = _view_bounds(starts, lengths, view, n_folds)
        out[v] = pool_segments(fs.feats, w, s, e)[0]
    return out


def augment_noise(
    fs: FrameSet,
    rows: np.ndarray,
    *,
    rng: np.random.Generator,
    n_join: int,
    n_cut: int,
    short_max: int = 50,
    cut_fraction: tuple[float, float] = (0.3, 0.7),
    weighting: str = "quality",
    min_quality: float | None = None,
    min_det: float | None = None,
) -> tuple[np.ndarray, list[str]]:
    """Extra distractor vectors made from real noise videos.

    ``n_join`` vectors each pool two distinct short noise videos (``0 < n_frames <
    short_max``) as one video; ``n_cut`` vectors each pool a random contiguous piece
    (``cut_fraction`` of its length) of a long noise video (``>= short_max``
    frames). With fewer than two short (or no long) videos among ``rows``, fewer
    vectors are made — the provenance list says what each row is.

    Returns
    -------
    X_aug : (n_made, d) float32 unit rows
    sources : list of str, ``"join:A+B"`` or ``"cut:A[start:end]"`` (frame indices
        within video A)

    Examples
    --------
    >>> X, src = augment_noise(fs, noise_rows, rng=np.random.default_rng(0),
    ...                        n_join=100, n_cut=100)  # doctest: +SKIP
    >>> src[0]  # doctest: +SKIP
    'join:IQIYI_VID_TRAIN_0001+IQIYI_VID_TRAIN_0042'
    """
    opts = _pool_options(weighting, min_quality, min_det)
    if n_join < 0 or n_cut < 0:
        raise ValueError(f"n_join and n_cut must be >= 0, got {n_join}, {n_cut}")
    lo, hi = cut_fraction
    if not 0 < lo <= hi <= 1:
        raise ValueError(f"cut_fraction must satisfy 0 < lo <= hi <= 1, got {cut_fraction}")
    offsets = np.asarray(fs.offsets, dtype=np.int64)
    rows = np.asarray(rows, dtype=np.int64)
    lengths = offsets[rows + 1] - offsets[rows]
    short = rows[(lengths > 0) & (lengths < short_max)]
    long_ = rows[lengths >= short_max]
    names = fs.names

    seg_starts: list[np.ndarray] = []
    seg_lens: list[np.ndarray] = []
    sources: list[str] = []
    parts_per_item: list[np.ndarray] = []
    if n_join and len(short) >= 2:
        a = rng.choice(short, size=n_join)
        b = rng.choice(short, size=n_join)
        same = a == b
        while same.any():  # redraw partners equal to their first video
            b[same] = rng.choice(short, size=int(same.sum()))
            same = a == b
        # Segment list interleaved A0, B0, A1, B1, ... each item = 2 segments.
        pair = np.stack([a, b], axis=1).ravel()
        seg_starts.append(offsets[pair])
        seg_lens.append(offsets[pair + 1] - offsets[pair])
        parts_per_item.append(np.full(n_join, 2))
        sources += [f"join:{names[i]}+{names[j]}" for i, j in zip(a, b)]
    if n_cut and len(long_):
        c = rng.choice(long_, size=n_cut)
        n = offsets[c + 1] - offsets[c]
        frac = rng.uniform(lo, hi, size=n_cut)
        piece = np.clip(np.round(frac * n).astype(np.int64), 1, n)
        start = (rng.random(n_cut) * (n - piece + 1)).astype(np.int64)
        seg_starts.append(offsets[c] + start)
        seg_lens.append(piece)
        parts_per_item.append(np.ones(n_cut, dtype=np.int64))
        sources += [f"cut:{names[i]}[{s}:{s + p}]" for i, s, p in zip(c, start, piece)]
    if not sources:
        return np.zeros((0, fs.dim), np.float32), []

    starts = np.concatenate(seg_starts)
    seg_l = np.concatenate(seg_lens)
    per_item = np.concatenate(parts_per_item)
    # Each item is the concatenation of its segments' frames: one gathered stream.
    idx = ranges_index(starts, seg_l)
    item_of_seg = np.repeat(np.arange(len(per_item)), per_item)
    item_len = np.bincount(item_of_seg, weights=seg_l, minlength=len(per_item)).astype(np.int64)
    w = frame_weights(fs.quality, fs.det, offsets, **opts)
    X, _ = pool_stream(fs.feats, w, item_len, idx=idx)
    return X, sources


__all__ = ["VIEWS", "WEIGHTINGS", "augment_noise", "frame_weights", "pool_videos", "pool_views"]
