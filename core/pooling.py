"""Pooling: one unit vector per video from its ragged frame features.

A video's embedding is the weighted mean of its frame features (weights from face
quality), then L2-normalised. Everything works on whole segments at once: frames
are streamed in row chunks (bounded memory, float16 accumulated in float32) and
summed per segment by a sparse (segments x frames) weight-matrix product — no
per-video Python loop.

Also here: the test-time views of a video (:func:`pool_views`), extra noise videos
made by joining / cutting real ones (:func:`augment_noise`) and the Parquet store of
pooled vectors (:func:`save_pooled` / :func:`load_pooled`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from core.errors import DataError
from core.frames import FrameSet

ProgressFn = Callable[[float, str], None]

WEIGHTINGS = ("quality", "quality2", "uniform")
VIEWS = ("full", "drop_head", "drop_tail", "middle")

# Frames per chunk: 2048 x 512 float32 = 4 MiB, small enough to stay in cache
# between the float16 -> float32 cast and the segment sum (measured best).
_CHUNK_FRAMES = 2048


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


# --------------------------------------------------------------------------- segment sums


_HALF_SCALE = 2.0**112  # float32 view of float16 bits shifted by 13 is value / 2**112
_HALF_MASK = np.int32(-0x70002000)  # 0x8FFFE000: the sign bit and the 15 shifted magnitude bits
_HALF_LIMIT = 2.0**-96  # |scaled value| >= this only for float16 inf / NaN


def _half_to_scaled_float32(h: np.ndarray) -> tuple[np.ndarray, float]:
    """Fast float16 -> float32 cast up to a power-of-two scale: ``(block, scale)``.

    ``block * scale`` equals ``h.astype(np.float32)`` exactly for every finite
    float16 (subnormals included). NumPy's own cast runs at ~1.3 ns per value here
    (no F16C path) and dominated pooling; this is three integer passes: sign-extend
    the 16 bits to int32, shift left by 13 (mantissa and exponent land in float32
    position, the exponent left un-rebiased, i.e. the value times 2**-112), mask
    the sign bit and the 15 magnitude bits. The scale is applied to the (much
    smaller) segment sums instead. Blocks holding inf/NaN use NumPy's cast.
    """
    bits = h.view(np.int16).astype(np.int32)
    np.left_shift(bits, 13, out=bits)
    np.bitwise_and(bits, _HALF_MASK, out=bits)
    block = bits.view(np.float32)
    if block.size and (block.max() >= _HALF_LIMIT or block.min() <= -_HALF_LIMIT):
        return h.astype(np.float32), 1.0
    return block, _HALF_SCALE


def _segment_sums(
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
                block, scale = _half_to_scaled_float32(rows)
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
    norms = np.sqrt(np.einsum("ij,ij->i", x, x))
    np.divide(x, norms[:, None], out=x, where=norms[:, None] > 0)
    return x


def _pool_stream(feats, weights, lengths, idx=None, base=0, progress=None):
    x = _segment_sums(feats, weights, lengths, idx=idx, base=base, progress=progress)
    return _normalise_rows(x), lengths > 0


def _ranges_index(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenation of ``arange(s, s + l)`` for every (s, l), vectorised."""
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
        return _pool_stream(feats, weights, lengths, base=int(starts[0]))
    return _pool_stream(feats, weights, lengths, idx=_ranges_index(starts, lengths))


# --------------------------------------------------------------------------- videos


@dataclass(eq=False)
class PooledVideos:
    """One L2-normalised vector per non-empty video.

    Attributes
    ----------
    names : (n,) object array of canonical names
    X : (n, d) float32 unit rows
    n_frames : (n,) int64 frames per video
    mean_quality : (n,) float32 mean raw quality score per video
    empty : list of str, videos with no frames (skipped)
    options : dict, the pooling options used (weighting, thresholds)
    """

    names: np.ndarray
    X: np.ndarray
    n_frames: np.ndarray
    mean_quality: np.ndarray
    empty: list[str] = field(default_factory=list)
    options: dict = field(default_factory=dict)
    _index: dict | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.names)

    def index_of(self, name: str) -> int:
        """Row of the video ``name`` (canonical or with ``.mp4``)."""
        from core.names import canonical_name

        if self._index is None:
            self._index = {n: i for i, n in enumerate(self.names)}
        try:
            return self._index[canonical_name(name)]
        except KeyError:
            raise KeyError(f"pooled videos: no video named {name!r}") from None


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
    X, valid = _pool_stream(fs.feats, w, lengths, progress=progress)
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
    idx = _ranges_index(starts, seg_l)
    item_of_seg = np.repeat(np.arange(len(per_item)), per_item)
    item_len = np.bincount(item_of_seg, weights=seg_l, minlength=len(per_item)).astype(np.int64)
    w = frame_weights(fs.quality, fs.det, offsets, **opts)
    X, _ = _pool_stream(fs.feats, w, item_len, idx=idx)
    return X, sources


# --------------------------------------------------------------------------- storage


def save_pooled(pv: PooledVideos, path: str | os.PathLike) -> None:
    """Write pooled vectors to Parquet (atomically).

    Columns: ``name`` (string), ``x`` (fixed-size list of float32), ``n_frames``,
    ``mean_quality``; the skipped empty videos and the options go in the schema
    metadata.

    Examples
    --------
    >>> save_pooled(pv, "val_pooled.parquet")  # doctest: +SKIP
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    from core.atomic import atomic_open

    X = np.ascontiguousarray(pv.X, dtype=np.float32)
    n, d = X.shape
    x_col = pa.FixedSizeListArray.from_arrays(pa.array(X.reshape(-1)), d)
    table = pa.table(
        {
            "name": pa.array([str(s) for s in pv.names], type=pa.string()),
            "x": x_col,
            "n_frames": pa.array(np.asarray(pv.n_frames, np.int64)),
            "mean_quality": pa.array(np.asarray(pv.mean_quality, np.float32)),
        }
    )
    meta = {"vidid": json.dumps({"empty": list(pv.empty), "options": pv.options, "dim": d})}
    table = table.replace_schema_metadata(meta)
    with atomic_open(path, "wb") as fh:
        pq.write_table(table, fh, compression="none")


def load_pooled(path: str | os.PathLike) -> PooledVideos:
    """Read pooled vectors written by :func:`save_pooled`.

    Examples
    --------
    >>> pv = load_pooled("val_pooled.parquet")  # doctest: +SKIP
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except pa.ArrowInvalid as exc:
        raise DataError(f"{path}: not a Parquet file of pooled vectors ({exc})") from None
    raw = (table.schema.metadata or {}).get(b"vidid")
    missing = {"name", "x", "n_frames", "mean_quality"} - set(table.column_names)
    if raw is None or missing:
        raise DataError(f"{path}: not a vidid pooled file (missing {sorted(missing) or 'metadata'})")
    meta = json.loads(raw)
    d = int(meta["dim"])
    x = table.column("x").combine_chunks()
    values = x.flatten().to_numpy(zero_copy_only=False) if len(x) else np.zeros(0, np.float32)
    return PooledVideos(
        names=np.asarray(table.column("name").to_numpy(zero_copy_only=False), dtype=object),
        X=np.asarray(values, dtype=np.float32).reshape(len(x), d),
        n_frames=table.column("n_frames").to_numpy().astype(np.int64),
        mean_quality=table.column("mean_quality").to_numpy().astype(np.float32),
        empty=list(meta.get("empty", [])),
        options=dict(meta.get("options", {})),
    )
