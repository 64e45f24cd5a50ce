"""Weighted, L2-normalised means of ranges of a frame array, without a per-range loop.

Frames are streamed in row chunks (bounded memory, float16 accumulated in float32
through :mod:`core.features.half_float`) and summed per segment by a sparse
(segments x frames) weight-matrix product. :mod:`core.features.pooling` builds per-video
vectors, views and augmentations on top of this.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from core.features.half_float import half_to_scaled_float32

ProgressFn = Callable[[float, str], None]

# Frames per chunk: 2048 x 512 float32 = 4 MiB, small enough to stay in cache
# between the float16 -> float32 cast and the segment sum (measured best).
_CHUNK_FRAMES = 2048


def segment_sums(
    feats: np.ndarray,
    weights: np.ndarray,
    lengths: np.ndarray,
    idx: np.ndarray | None = None,
    base: int = 0,
    progress: ProgressFn | None = None,
) -> np.ndarray:
    """Weighted sums over consecutive runs of a frame stream, float32 (m, d).

    The stream is ``feats[base:base + lengths.sum()]`` (``idx is None``) or
    ``feats[idx]``; segment ``j`` is the next ``lengths[j]`` frames of it. A
    segment whose weights sum to 0 is summed unweighted (uniform fallback); an
    empty segment gives a row of zeros.

    Examples
    --------
    >>> segment_sums(np.ones((3, 2), np.float16), np.array([1., 2., 0.]), np.array([2, 1])).tolist()
    [[3.0, 3.0], [1.0, 1.0]]
    """
    from scipy.sparse import csr_matrix

    m = len(lengths)
    d = feats.shape[1]
    out = np.zeros((m, d), dtype=np.float32)
    pos = np.concatenate(([0], np.cumsum(lengths, dtype=np.int64)))
    total = int(pos[-1])
    j0 = last = 0
    while j0 < m:
        # Largest j1 with pos[j1] - pos[j0] <= chunk, at least one segment further.
        j1 = int(np.searchsorted(pos, pos[j0] + _CHUNK_FRAMES, side="right")) - 1
        j1 = min(max(j1, j0 + 1), m)
        p0, p1 = int(pos[j0]), int(pos[j1])
        if p1 > p0:
            if idx is None:
                rows = feats[base + p0 : base + p1]
                w = np.array(weights[base + p0 : base + p1], dtype=np.float32)
            else:
                sel = idx[p0:p1]
                rows = feats[sel]
                w = weights[sel].astype(np.float32)
            seg_len = lengths[j0:j1]
            indptr = pos[j0 : j1 + 1] - p0
            cw = np.concatenate(([0.0], np.cumsum(w, dtype=np.float64)))
            zero = (cw[indptr[1:]] - cw[indptr[:-1]] <= 0) & (seg_len > 0)
            if zero.any():
                w[np.repeat(zero, seg_len)] = 1.0
            # (segments x frames) sparse weight matrix times the frame block: one
            # pass over the rows; measured ~30x faster per chunk than np.add.reduceat
            # along axis 0.
            M = csr_matrix((w, np.arange(p1 - p0), indptr), shape=(j1 - j0, p1 - p0))
            if rows.dtype == np.float16:
                block, scale = half_to_scaled_float32(rows)
            else:
                block, scale = rows.astype(np.float32, copy=False), 1.0
            sums = M @ block
            if scale != 1.0:
                sums *= np.float32(scale)
            out[j0:j1] = sums
        j0 = j1
        if progress is not None and total and (p1 - last >= total // 100 or j0 == m):
            last = p1
            progress(p1 / total, f"{j1}/{m} segments")
    return out


def _normalise_rows(x: np.ndarray) -> np.ndarray:
    # squares summed in float64: rows of large float32 sums cannot overflow to inf
    norms = np.sqrt(np.einsum("ij,ij->i", x, x, dtype=np.float64))
    np.divide(x, norms[:, None], out=x, where=norms[:, None] > 0, casting="unsafe")
    return x


def pool_stream(
    feats: np.ndarray,
    weights: np.ndarray,
    lengths: np.ndarray,
    idx: np.ndarray | None = None,
    base: int = 0,
    progress: ProgressFn | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Unit-row weighted means of consecutive runs of a frame stream, and which were non-empty.

    The stream and segments are as in :func:`segment_sums`; inputs are assumed valid
    (:func:`pool_segments` is the checked entry point).

    Examples
    --------
    >>> X, ok = pool_stream(np.eye(3, dtype=np.float16), np.ones(3), np.array([2, 0, 1]))
    >>> np.round(X.astype(float), 3).tolist(), ok.tolist()
    ([[0.707, 0.707, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 1.0]], [True, False, True])
    """
    x = segment_sums(feats, weights, lengths, idx=idx, base=base, progress=progress)
    return _normalise_rows(x), lengths > 0


def ranges_index(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenation of ``arange(s, s + l)`` for every (s, l), vectorised.

    Examples
    --------
    >>> ranges_index(np.array([5, 0]), np.array([2, 3])).tolist()
    [5, 6, 0, 1, 2]
    """
    total = int(lengths.sum())
    seg_first = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    return np.repeat(starts - seg_first, lengths) + np.arange(total, dtype=np.int64)


def pool_segments(
    feats: np.ndarray,
    weights: np.ndarray,
    starts: np.ndarray,
    ends: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Weighted, L2-normalised means of frame ranges ``feats[starts[j]:ends[j]]``.

    Parameters
    ----------
    feats : (n_frames, d) float16 or float32
    weights : (n_frames,) non-negative weights
    starts, ends : (m,) int arrays, ``0 <= starts <= ends <= n_frames``; ranges may
        overlap and come in any order.

    Returns
    -------
    X : (m, d) float32
        Unit rows (zero weight total → uniform mean); empty range → zeros.
    valid : (m,) bool
        False for empty ranges.

    Examples
    --------
    >>> f = np.array([[1., 0.], [0., 1.], [0., 1.]])
    >>> X, ok = pool_segments(f, np.array([3., 1., 1.]), np.array([0, 1, 3]), np.array([2, 3, 3]))
    >>> np.round(X.astype(float), 3).tolist(), ok.tolist()
    ([[0.949, 0.316], [0.0, 1.0], [0.0, 0.0]], [True, True, False])
    """
    feats = np.asarray(feats)
    weights = np.asarray(weights)
    starts = np.asarray(starts, dtype=np.int64)
    ends = np.asarray(ends, dtype=np.int64)
    if feats.ndim != 2:
        raise ValueError(f"feats must be 2-D (n_frames, dim), got shape {feats.shape}")
    if weights.shape != (len(feats),):
        raise ValueError(f"weights has shape {weights.shape}, expected ({len(feats)},)")
    if starts.shape != ends.shape or starts.ndim != 1:
        raise ValueError(f"starts {starts.shape} and ends {ends.shape} must be equal 1-D shapes")
    if len(starts) and (starts.min() < 0 or ends.max() > len(feats) or (ends < starts).any()):
        raise ValueError(f"segments must satisfy 0 <= start <= end <= {len(feats)}")
    if len(weights) and weights.min() < 0:
        raise ValueError(f"weights must be non-negative, got {weights.min()}")
    lengths = ends - starts
    if len(starts) == 0:
        return np.zeros((0, feats.shape[1]), np.float32), np.zeros(0, bool)
    if np.array_equal(starts[1:], ends[:-1]):  # consecutive ranges: no gather
        return pool_stream(feats, weights, lengths, base=int(starts[0]))
    return pool_stream(feats, weights, lengths, idx=ranges_index(starts, lengths))


__all__ = ["pool_segments", "pool_stream", "ranges_index", "segment_sums"]
