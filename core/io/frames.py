"""The in-memory dataset: every frame of every video in contiguous arrays.

Video ``i`` owns frames ``offsets[i]:offsets[i+1]`` of ``feats``, ``quality``,
``det``, ``frame_no`` and ``bbox``. No per-video Python objects on hot paths.

This module also converts the real pickle layout (``dict name -> list of frames``)
to a :class:`FrameSet` and back (the per-field checks are :mod:`core.io.frame_fields`),
and stores a FrameSet as a columnar ``.npz`` whose arrays are memory-mapped on
reopening (:mod:`core.io.npz_columns`; the feature cache of
:func:`core.io.formats.read_features`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from core.errors import DataError
from core.io.frame_fields import (
    DEFAULT_DIM,
    bbox_column,
    feature_matrix,
    frame_number_column,
    score_column,
)
from core.io.names import canonical_name
from core.io.npz_columns import read_npz_columns, write_npz_columns

ProgressFn = Callable[[float, str], None]

#: Quality scores run from about -30 to 200; anything beyond this is corrupt data.
MAX_ABS_QUALITY = 1e4
#: Bumped whenever the ``.npz`` layout written by :func:`save_frameset` changes.
NPZ_VERSION = 1

_COLUMNS = ("names", "offsets", "feats", "quality", "det", "frame_no", "bbox")


@dataclass(frozen=True, eq=False)
class FrameSet:
    """All frames of a set of videos, ragged by ``offsets``.

    Attributes
    ----------
    names : (n_videos,) ndarray of str (object dtype), canonical names (no ``.mp4``)
    offsets : (n_videos + 1,) int64, ``offsets[0] == 0``, non-decreasing
    feats : (n_frames, dim) float16 (as shipped) or float32, *not* normalised
    quality : (n_frames,) float32 quality scores
    det : (n_frames,) float32 detection scores
    frame_no : (n_frames,) int32 frame numbers (parsed from ``frame_str``)
    bbox : (n_frames, 4) float32 ``[x1, y1, x2, y2]``
    source : str, where the data came from (a path), for error messages

    Examples
    --------
    >>> fs = frameset_from_videos({"v": [["1", [0, 0, 9, 9], 0.99, 50.0,
    ...                                    np.ones(4, np.float16)]]}, source="toy")
    >>> fs.n_videos, fs.n_frames, fs.dim, fs.index_of("v.mp4")
    (1, 1, 4, 0)
    """

    names: np.ndarray
    offsets: np.ndarray
    feats: np.ndarray
    quality: np.ndarray
    det: np.ndarray
    frame_no: np.ndarray
    bbox: np.ndarray
    source: str = ""
    _index: dict = field(default=None, repr=False, compare=False)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        # O(1) shape checks: a FrameSet with misaligned columns is a bug, caught here.
        n = len(self.names)
        shape = np.shape(self.offsets)
        if shape != (n + 1,):
            raise ValueError(f"{self.source or 'frame set'}: offsets has shape {shape}, "
                             f"expected ({n + 1},) for {n} videos")
        n_frames = int(self.offsets[-1])
        for col in ("quality", "det", "frame_no"):
            if np.shape(getattr(self, col)) != (n_frames,):
                raise ValueError(f"{self.source or 'frame set'}: {col} has shape "
                                 f"{np.shape(getattr(self, col))}, expected ({n_frames},)")
        if np.ndim(self.feats) != 2 or np.shape(self.feats)[0] != n_frames:
            raise ValueError(f"{self.source or 'frame set'}: feats has shape "
                             f"{np.shape(self.feats)}, expected ({n_frames}, dim)")
        if np.shape(self.bbox) != (n_frames, 4):
            raise ValueError(f"{self.source or 'frame set'}: bbox has shape "
                             f"{np.shape(self.bbox)}, expected ({n_frames}, 4)")

    @property
    def n_videos(self) -> int:
        return len(self.names)

    @property
    def n_frames(self) -> int:
        return int(self.offsets[-1])

    @property
    def dim(self) -> int:
        return int(self.feats.shape[1])

    @property
    def lengths(self) -> np.ndarray:
        """Frames per video, (n_videos,) int64."""
        return np.diff(self.offsets)

    def index_of(self, name: str) -> int:
        """Row of the video called ``name`` (canonical or with ``.mp4``)."""
        if self._index is None:
            object.__setattr__(self, "_index", {n: i for i, n in enumerate(self.names)})
        try:
            return self._index[canonical_name(name)]
        except KeyError:
            raise KeyError(f"{self.source or 'frame set'}: no video named {name!r}") from None

    def select(self, rows: Sequence[int] | np.ndarray) -> "FrameSet":
        """A new FrameSet holding videos ``rows`` (in that order), frames copied.

        Examples
        --------
        >>> fs = frameset_from_videos({"a": [], "b": [["3", [0, 0, 1, 1], 1.0, 9.0,
        ...                             np.zeros(2, np.float16)]]}, source="toy")
        >>> sub = fs.select([1]); list(sub.names), sub.n_frames
        (['b'], 1)
        """
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        starts, lengths = self.offsets[:-1][rows], np.diff(self.offsets)[rows]
        offsets = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        # frame index of every selected frame: start of its video + position inside it
        idx = np.repeat(starts - offsets[:-1], lengths) + np.arange(offsets[-1])
        return FrameSet(names=self.names[rows], offsets=offsets, feats=self.feats[idx],
                        quality=self.quality[idx], det=self.det[idx],
                        frame_no=self.frame_no[idx], bbox=self.bbox[idx], source=self.source)


# --------------------------------------------------------------------------- #
# dict of frame lists (the pickle layout) -> FrameSet
# --------------------------------------------------------------------------- #
def frameset_from_videos(videos: dict, *, source: str,
                         progress: ProgressFn | None = None) -> FrameSet:
    """Validate the real layout ``{name: [[frame_str, bbox, det, quality, feat], ...]}``.

    Names are canonicalised (``bytes`` decoded, ``.mp4`` dropped); the feature
    dimension is that of the first frame, and float16 features stay float16
    (anything else numeric becomes float32).

    Parameters
    ----------
    videos : dict
        Video name (str or bytes, with or without ``.mp4``) -> list of frames.
    source : str
        Where the data came from; every error message starts with it.
    progress : callable, optional
        ``progress(fraction, message)``.

    Raises
    ------
    DataError
        Naming the video and frame: wrong arity, feature of the wrong shape or
        type, non-finite value, absurd quality, two names equal once canonical.

    Examples
    --------
    >>> feat = np.arange(3, dtype=np.float16)
    >>> fs = frameset_from_videos({b"v1": [[b"7", [1, 2, 3, 4], 0.9, 60.0, feat]],
    ...                            "v2.mp4": []}, source="x.pickle")
    >>> list(fs.names), fs.offsets.tolist(), fs.feats.dtype, fs.frame_no.tolist()
    (['v1', 'v2'], [0, 1, 1], dtype('float16'), [7])
    """
    where = source or "<videos>"
    if not isinstance(videos, dict):
        raise DataError(f"{where}: expected a dict of video name -> list of frames, "
                        f"got {type(videos).__name__}")
    report = progress or (lambda f, m="": None)
    names: list[str] = []
    raw_of: dict[str, object] = {}
    lengths = np.zeros(len(videos), dtype=np.int64)
    flat: list = []
    for i, (raw, frames) in enumerate(videos.items()):
        name = claim_name(raw, where, raw_of)
        if not isinstance(frames, (list, tuple)):
            raise DataError(f"{where}: video {name!r}: frames must be a list, "
                            f"got {type(frames).__name__}")
        names.append(name)
        lengths[i] = len(frames)
        flat.extend(frames)
    offsets = np.zeros(len(names) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    report(0.2, "checking frames")

    def at(j: int) -> str:
        v = int(np.searchsorted(offsets, j, side="right")) - 1
        return f"{where}: video {names[v]!r} frame {j - int(offsets[v])}"

    if not set(map(type, flat)) <= {list, tuple}:
        j = next(j for j, f in enumerate(flat) if not isinstance(f, (list, tuple)))
        raise DataError(f"{at(j)}: a frame must be a list "
                        f"[frame_str, bbox, det_score, quality_score, feat], "
                        f"got {type(flat[j]).__name__}")
    if set(map(len, flat)) - {5}:
        j = next(j for j, f in enumerate(flat) if len(f) != 5)
        raise DataError(f"{at(j)}: a frame must have 5 fields "
                        f"[frame_str, bbox, det_score, quality_score, feat], got {len(flat[j])}")
    n_frames = len(flat)
    cols = list(zip(*flat)) if n_frames else [()] * 5
    del flat
    feats = feature_matrix(cols[4], at, n_frames)
    report(0.7, "checking scores")
    det = score_column(cols[2], "detection score", at)
    quality = score_column(cols[3], "quality score", at)
    bad = np.flatnonzero(np.abs(quality) > MAX_ABS_QUALITY)
    if len(bad):
        raise DataError(f"{at(int(bad[0]))}: quality score {quality[bad[0]]:g} is out of "
                        f"range (|quality| > {MAX_ABS_QUALITY:g})")
    bbox = bbox_column(cols[1], at, n_frames)
    frame_no = frame_number_column(cols[0], at)
    report(1.0, "done")
    return FrameSet(names=object_array(names), offsets=offsets, feats=feats,
                    quality=quality, det=det, frame_no=frame_no, bbox=bbox, source=str(source))


def claim_name(raw: object, where: str, seen: dict[str, object]) -> str:
    """:func:`checked_name` of ``raw``, recorded in ``seen`` (name -> raw key); DataError
    when another key of the same file decodes to the same name."""
    name = checked_name(raw, where)
    if name in seen:
        raise DataError(f"{where}: videos {seen[name]!r} and {raw!r} are the same "
                        f"video {name!r} once decoded and stripped of '.mp4'")
    seen[name] = raw
    return name


def checked_name(raw: object, where: str) -> str:
    """A video name from a file, canonical (no ``.mp4``), or DataError naming ``where``."""
    try:
        name = canonical_name(raw)  # type: ignore[arg-type]
    except (TypeError, UnicodeDecodeError) as exc:
        raise DataError(f"{where}: bad video name {raw!r}: {exc}") from None
    if not name or len(name.split()) != 1 or name != name.strip():
        raise DataError(f"{where}: bad video name {raw!r}: empty or contains whitespace")
    return name


def object_array(items: list) -> np.ndarray:
    """A 1-d object array of ``items`` (strings stay strings, never a 2-d char array)."""
    out = np.empty(len(items), dtype=object)
    out[:] = items
    return out


# --------------------------------------------------------------------------- #
# FrameSet -> dict of frame lists
# --------------------------------------------------------------------------- #
def frameset_to_videos(fs: FrameSet) -> dict[str, list]:
    """The real pickle layout of ``fs``: ``{name: [[frame_str, bbox, det, quality, feat]]}``.

    Examples
    --------
    >>> fs = frameset_from_videos({"v": [["5", [0, 0, 2, 2], 0.5, 40.0,
    ...                                    np.ones(2, np.float16)]]}, source="toy")
    >>> frameset_to_videos(fs)["v"][0][:4]
    ['5', [0.0, 0.0, 2.0, 2.0], 0.5, 40.0]
    """
    frame_str = [str(int(x)) for x in fs.frame_no.tolist()]
    bbox, det, quality = fs.bbox.tolist(), fs.det.tolist(), fs.quality.tolist()
    feats = np.ascontiguousarray(fs.feats)
    frames = [[frame_str[j], bbox[j], det[j], quality[j], feats[j].copy()]
              for j in range(fs.n_frames)]
    off = fs.offsets.tolist()
    return {str(name): frames[off[i]:off[i + 1]] for i, name in enumerate(fs.names)}


# --------------------------------------------------------------------------- #
# columnar .npz storage
# --------------------------------------------------------------------------- #
def save_frameset(fs: FrameSet, path: str | os.PathLike, *,
                  meta: dict[str, str] | None = None) -> None:
    """Write ``fs`` to ``path`` as an uncompressed ``.npz`` (atomic).

    Names are stored as a unicode array; ``meta`` (str -> str) is stored beside the
    columns and returned by :func:`read_frameset_meta`.

    Examples
    --------
    >>> save_frameset(fs, "/tmp/fs.npz")  # doctest: +SKIP
    >>> load_frameset("/tmp/fs.npz").n_frames  # doctest: +SKIP
    """
    names = np.array([str(n) for n in fs.names], dtype=str) if fs.n_videos else \
        np.zeros(0, dtype="<U1")
    meta = {"npz_version": str(NPZ_VERSION), "source": fs.source, **(meta or {})}
    arrays = {"names": names, "offsets": np.asarray(fs.offsets, np.int64),
              "feats": np.ascontiguousarray(fs.feats),
              "quality": np.asarray(fs.quality, np.float32),
              "det": np.asarray(fs.det, np.float32),
              "frame_no": np.asarray(fs.frame_no, np.int32),
              "bbox": np.asarray(fs.bbox, np.float32)}
    write_npz_columns(path, arrays, meta)


def load_frameset(path: str | os.PathLike, *, mmap: bool = True) -> FrameSet:
    """Open a FrameSet written by :func:`save_frameset`.

    With ``mmap=True`` the numeric columns are memory-mapped copy-on-write (opening
    costs O(number of videos), not O(file size)); ``mmap=False`` reads them.

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    DataError
        The file is not a FrameSet ``.npz`` (corrupt, truncated, wrong version).
    """
    arrays, meta = _read_npz(path, mmap=mmap)
    try:
        names = arrays["names"].astype(object) if arrays["names"].size else \
            np.empty(0, dtype=object)
        return FrameSet(names=names, offsets=arrays["offsets"], feats=arrays["feats"],
                        quality=arrays["quality"], det=arrays["det"],
                        frame_no=arrays["frame_no"], bbox=arrays["bbox"],
                        source=meta.get("source", str(path)))
    except (ValueError, IndexError) as exc:
        raise DataError(f"{path}: not a valid frame set: {exc}") from None


def read_frameset_meta(path: str | os.PathLike) -> dict[str, str]:
    """The ``meta`` mapping stored by :func:`save_frameset` (cheap: no column is read)."""
    return _read_npz(path, mmap=True, only_meta=True)[1]


def _read_npz(path: str | os.PathLike, *, mmap: bool,
              only_meta: bool = False) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    arrays, meta = read_npz_columns(path, () if only_meta else _COLUMNS, mmap=mmap,
                                    what="frame set")
    if meta.get("npz_version") != str(NPZ_VERSION):
        raise DataError(f"{path}: frame set version {meta.get('npz_version')!r}, "
                        f"expected {NPZ_VERSION}")
    return arrays, meta


__all__ = ["DEFAULT_DIM", "MAX_ABS_QUALITY", "NPZ_VERSION", "FrameSet", "claim_name", "frameset_from_videos",
           "frameset_to_videos", "load_frameset", "read_frameset_meta", "save_frameset"]
