"""Labelled videos: pooled vectors, identity labels and the frames behind them.

A split is one feature file plus (optionally) its ground truth. Every video of the
features that the ground truth does not name is a distractor (``ids == 0``); with no
ground truth every video is a distractor. Videos without frames cannot be pooled:
they are left out (and listed in ``pooled.empty``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import Callable, Mapping, Sequence

import numpy as np

from core.errors import DataError
from core.io.frames import FrameSet
from core.io.names import canonical_name
from core.features.modal_features import concat_modal
from core.features.pooled_videos import PooledVideos
from core.features.pooling import pool_videos

ProgressFn = Callable[[float, str], None]


@dataclass(eq=False)
class LabelledVideos:
    """Pooled, labelled videos of one or more splits; row ``i`` is one video everywhere.

    Attributes
    ----------
    names : (n,) object array of canonical names
    X : (n, d) float32 unit rows (``pooled.X``)
    ids : (n,) int64, 1-based identity ID, 0 = distractor
    split : (n,) str array, the split each video came from
    frames : FrameSet whose video ``i`` is row ``i`` here (for views / augmentation)
    pooled : PooledVideos (names, X, n_frames, mean_quality, skipped ``empty``)
    modal : ModalFeatures (:mod:`core.features.modalities`) of multimodal data: every
        modality's pooled block and presence mask, row-aligned; None for faces only
    """

    names: np.ndarray
    X: np.ndarray
    ids: np.ndarray
    split: np.ndarray
    frames: FrameSet
    pooled: PooledVideos
    modal: object = None

    def __len__(self) -> int:
        return len(self.names)

    @property
    def labelled_mask(self) -> np.ndarray:
        """True for videos of a known identity."""
        return self.ids > 0

    @property
    def distractor_mask(self) -> np.ndarray:
        """True for distractors (noise) videos."""
        return self.ids == 0

    @property
    def identities(self) -> np.ndarray:
        """Sorted identity IDs present, int64."""
        return np.unique(self.ids[self.ids > 0])

    def ground_truth(self, mask: np.ndarray | None = None) -> dict[int, list[str]]:
        """``{identity: [videos]}`` of the labelled videos (optionally under ``mask``).

        Examples
        --------
        >>> lv.ground_truth(lv.split == "val")  # doctest: +SKIP
        {1: ['IQIYI_VID_VAL_0000003', ...], ...}
        """
        keep = self.ids > 0 if mask is None else (self.ids > 0) & np.asarray(mask, bool)
        rows = np.flatnonzero(keep)
        rows = rows[np.argsort(self.ids[rows], kind="stable")]
        out: dict[int, list[str]] = {}
        for i, v in zip(self.ids[rows].tolist(), self.names[rows].tolist()):
            out.setdefault(i, []).append(v)
        return out


def subset_frames(fs: FrameSet, rows: np.ndarray) -> FrameSet:
    """The videos ``rows`` of ``fs`` (in that order) as a new FrameSet.

    Zero-copy when ``rows`` only drops empty videos; otherwise frames are gathered.

    Examples
    --------
    >>> subset_frames(fs, np.array([2, 0])).names.tolist()  # doctest: +SKIP
    ['v2', 'v0']
    """
    rows = np.asarray(rows, dtype=np.int64)
    offsets = np.asarray(fs.offsets, dtype=np.int64)
    lengths = offsets[rows + 1] - offsets[rows]
    new_offsets = np.concatenate(([0], np.cumsum(lengths))).astype(np.int64)
    starts = offsets[rows]
    if np.array_equal(starts[1:], starts[:-1] + lengths[:-1]) and len(rows):
        a, b = int(starts[0]), int(starts[0] + lengths.sum())
        sel: slice | np.ndarray = slice(a, b)
    else:
        first = new_offsets[:-1]
        sel = np.repeat(starts - first, lengths) + np.arange(int(lengths.sum()), dtype=np.int64)
    return replace(
        fs,
        names=np.asarray(fs.names, dtype=object)[rows],
        offsets=new_offsets,
        feats=fs.feats[sel],
        quality=fs.quality[sel],
        det=fs.det[sel],
        frame_no=fs.frame_no[sel],
        bbox=fs.bbox[sel],
        _index=None,
    )


def _labels_of(gt) -> tuple[dict[str, int], str]:
    if hasattr(gt, "labels"):
        return {canonical_name(v): int(i) for v, i in gt.labels.items()}, str(getattr(gt, "path", ""))
    if isinstance(gt, Mapping):
        return {canonical_name(v): int(i) for v, i in gt.items()}, "ground truth"
    raise TypeError(f"gt must be a path, a GroundTruth or dict[video, id], got {type(gt).__name__}")


def open_split(
    feats: str | os.PathLike | FrameSet,
    gt: str | os.PathLike | Mapping[str, int] | None = None,
    *,
    split: str = "",
    progress: ProgressFn | None = None,
    **pool_opts,
) -> LabelledVideos:
    """Read (or take) one split's features and ground truth, pool, label.

    Parameters
    ----------
    feats : path of a feature pickle, or a FrameSet
    gt : path of a ground-truth file (either layout), a GroundTruth, a
        ``{video: id}`` dict, or None (every video is a distractor)
    split : str
        Split name stored per video (default: the file's stem, e.g. ``face_val``).
    progress : callable(fraction, message), optional
    **pool_opts
        ``weighting``, ``min_quality``, ``min_det`` for :func:`core.features.pooling.pool_videos`.

    Raises
    ------
    DataError
        If the ground truth names a video absent from the features (names the file
        and the video).

    Examples
    --------
    >>> lv = open_split("face_val.pickle", "val_gt.txt", split="val")  # doctest: +SKIP
    >>> lv.X.shape, lv.distractor_mask.mean()  # doctest: +SKIP
    ((1000, 512), 0.375)
    """
    from core.io.formats import GroundTruth, check_ground_truth, read_features, read_ground_truth

    report = progress or (lambda f, m="": None)
    if isinstance(feats, FrameSet):
        fs = feats
        feats_path = fs.source or "features"
    else:
        feats_path = str(feats)
        fs = read_features(feats, progress=lambda f, m="": report(0.6 * f, m))
    if gt is None:
        labels: dict[str, int] = {}
    else:
        if isinstance(gt, (str, os.PathLike)):
            gt = read_ground_truth(gt)
        labels, gt_path = _labels_of(gt)
        check_ground_truth(GroundTruth(labels, gt_path), fs.names, features_path=feats_path)
    report(0.6, "pooling")
    pv = pool_videos(fs, progress=lambda f, m="": report(0.6 + 0.4 * f, m), **pool_opts)
    rows = np.flatnonzero(np.diff(np.asarray(fs.offsets)) > 0)
    frames = fs if len(rows) == fs.n_videos else subset_frames(fs, rows)
    ids = np.fromiter((labels.get(n, 0) for n in pv.names), dtype=np.int64, count=len(pv.names))
    if not split:
        split = os.path.splitext(os.path.basename(feats_path))[0]
    report(1.0, "done")
    return LabelledVideos(
        names=pv.names,
        X=pv.X,
        ids=ids,
        split=np.full(len(pv.names), split, dtype=object),
        frames=frames,
        pooled=pv,
    )


#: Frame features concatenated above this size go to a mapped temporary file, not to
#: anonymous memory (:func:`stack_rows`).
FILE_BACKED_BYTES = 256 << 20


def stack_rows(arrays: Sequence[np.ndarray], dtype, *, limit: int | None = None) -> np.ndarray:
    """``np.concatenate(arrays)`` as ``dtype``; above ``limit`` bytes, backed by a file.

    The parts are usually memory-mapped columnar caches (file pages the kernel can drop
    and read again). A plain concatenation turns them into anonymous memory: at the 2019
    size, the frames of train + val + test are 6.3 GiB that can never be paged out. Above
    ``limit`` (default :data:`FILE_BACKED_BYTES`), the result is written into a temporary
    file under ``cache_root()/tmp`` instead and mapped read-only. The file is unlinked at
    once, so its space returns to the disk when the array is freed, or when the process
    ends, even if it is killed. Space is reserved first (``posix_fallocate``), so a full disk
    raises no SIGBUS while the file is filled. If the file cannot be made, the
    concatenation is in memory, as before.

    >>> stack_rows([np.ones((2, 3), np.float16), np.zeros((1, 3), np.float16)], np.float16, limit=0).shape
    (3, 3)
    """
    import tempfile

    from core.paths import cache_root

    dtype = np.dtype(dtype)
    dim = arrays[0].shape[1]
    total = sum(a.shape[0] for a in arrays)
    nbytes = total * dim * dtype.itemsize
    if nbytes <= (FILE_BACKED_BYTES if limit is None else limit) or nbytes == 0:
        return np.concatenate([np.asarray(a, dtype=dtype) for a in arrays])
    try:
        folder = cache_root() / "tmp"
        folder.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix="frames-", suffix=".bin", dir=folder)
        try:
            os.posix_fallocate(fd, 0, nbytes)
            out = np.memmap(name, dtype=dtype, mode="r+", shape=(total, dim))
        finally:
            os.close(fd)
            os.unlink(name)
    except OSError:
        return np.concatenate([np.asarray(a, dtype=dtype) for a in arrays])
    pos, step = 0, max(1, (64 << 20) // max(1, dim * dtype.itemsize))  # 64 MiB at a time
    for a in arrays:
        for i in range(0, a.shape[0], step):
            chunk = a[i:i + step]
            out[pos:pos + len(chunk)] = chunk
            pos += len(chunk)
    out.flush()
    out = out.view(np.ndarray)  # a plain array (slices and ufuncs stay ndarrays); keeps the map
    out.flags.writeable = False
    return out


def _concat_frames(parts: Sequence[FrameSet]) -> FrameSet:
    offsets = [np.asarray(parts[0].offsets, dtype=np.int64)]
    shift = offsets[0][-1]
    for fs in parts[1:]:
        offsets.append(np.asarray(fs.offsets[1:], dtype=np.int64) + shift)
        shift += fs.offsets[-1]
    feats_dtype = np.result_type(*[fs.feats.dtype for fs in parts])
    return FrameSet(
        names=np.concatenate([np.asarray(fs.names, dtype=object) for fs in parts]),
        offsets=np.concatenate(offsets),
        feats=stack_rows([fs.feats for fs in parts], feats_dtype),
        quality=np.concatenate([fs.quality for fs in parts]),
        det=np.concatenate([fs.det for fs in parts]),
        frame_no=np.concatenate([fs.frame_no for fs in parts]),
        bbox=np.concatenate([fs.bbox for fs in parts]),
        source="+".join(fs.source for fs in parts if fs.source),
    )


def concat(parts: Sequence[LabelledVideos]) -> LabelledVideos:
    """Stack several splits into one LabelledVideos (rows in order of ``parts``).

    Raises
    ------
    DataError
        If a video name occurs in two parts, or the feature dimensions differ.
    ValueError
        If the parts were pooled with different options.

    Examples
    --------
    >>> both = concat([train, val])  # doctest: +SKIP
    >>> (both.split == "val").sum() == len(val)  # doctest: +SKIP
    True
    """
    parts = list(parts)
    if not parts:
        raise ValueError("concat needs at least one LabelledVideos")
    if len(parts) == 1:
        return parts[0]
    dims = {p.X.shape[1] for p in parts}
    if len(dims) > 1:
        raise DataError(f"cannot concatenate splits of different feature dimensions {sorted(dims)}")
    opts = [p.pooled.options for p in parts]
    if any(o != opts[0] for o in opts[1:]):
        raise ValueError(f"cannot concatenate splits pooled with different options: {opts}")
    names = np.concatenate([p.names for p in parts])
    uniq, counts = np.unique(names.astype(str), return_counts=True)
    if (counts > 1).any():
        dup = uniq[counts > 1]
        raise DataError(
            f"video {dup[0]!r} occurs in more than one split "
            f"({len(dup)} duplicate name{'s' if len(dup) > 1 else ''})"
        )
    pooled = PooledVideos(
        names=names,
        X=np.concatenate([p.X for p in parts]),
        n_frames=np.concatenate([p.pooled.n_frames for p in parts]),
        mean_quality=np.concatenate([p.pooled.mean_quality for p in parts]),
        empty=[e for p in parts for e in p.pooled.empty],
        options=dict(parts[0].pooled.options),
    )
    modal = None
    if any(p.modal is not None for p in parts):
        if any(p.modal is None for p in parts):
            raise ValueError("cannot concatenate multimodal splits with face-only ones")
        modal = concat_modal([p.modal for p in parts])
    return LabelledVideos(
        names=names,
        X=pooled.X,
        ids=np.concatenate([p.ids for p in parts]),
        split=np.concatenate([p.split for p in parts]),
        frames=_concat_frames([p.frames for p in parts]),
        pooled=pooled,
        modal=modal,
    )
