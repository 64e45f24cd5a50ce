"""The real iQIYI-VID files: feature pickles, ground truth, submissions.

* Feature pickles are loaded with the restricted unpickler of
  :mod:`core.io.safe_pickle` (:func:`load_pickle_safe`) that builds
  only containers, numbers, strings and numpy arrays; anything else in the file is
  refused before it can run. :func:`read_features` caches the
  validated :class:`~core.io.frames.FrameSet` as a columnar ``.npz`` so reopening a
  file costs a memory map instead of an unpickle.
* Ground truth comes in two layouts, ``VIDEO.mp4 ID`` (train) and
  ``ID VIDEO1.mp4 VIDEO2.mp4 ...`` (val/test); :func:`read_ground_truth` detects which.
* Submissions are ``ID V1.mp4 V2.mp4 ...`` lines of at most 100 videos.

Every error names the file (and the line or video) and the bad value.
"""

from __future__ import annotations

import glob
import hashlib
import os
import pickle
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterable, Literal, Mapping, Sequence

import numpy as np

from core.atomic import atomic_open, atomic_write_text
from core.errors import DataError
from core.io.frames import (
    FrameSet,
    frameset_from_videos,
    load_frameset,
    read_frameset_meta,
    save_frameset,
)
from core.io.names import canonical_name, official_name
from core.io.safe_pickle import load_pickle_safe, open_regular, require_file
from core.paths import cache_root

ProgressFn = Callable[[float, str], None]
Layout = Literal["video_id", "id_videos"]

#: Most videos a submission line may hold (official rule).
MAX_PER_LINE = 100
#: Largest identity ID (IDs are stored as int64).
MAX_ID = 2**63 - 1
#: Part of the cache key: bump when conversion/validation changes what a FrameSet holds.
CACHE_VERSION = 1


# --------------------------------------------------------------------------- #
# feature files
# --------------------------------------------------------------------------- #
def read_features(path: str | os.PathLike, *, cache: bool = True,
                  cache_dir: str | os.PathLike | None = None,
                  progress: ProgressFn | None = None) -> FrameSet:
    """Read a feature pickle as a validated :class:`FrameSet`, through a cache.

    The cache is a columnar ``.npz`` under ``cache_dir`` (default ``$VIDID_CACHE``
    or ``~/.cache/vidid``) keyed by the file's absolute path, size and mtime; a
    stale or corrupt entry is rebuilt, and an unwritable cache is only a warning.

    Examples
    --------
    >>> fs = read_features("face_val.pickle")  # doctest: +SKIP
    >>> fs.n_videos, fs.dim  # doctest: +SKIP
    (1000, 512)
    """
    report = progress or (lambda f, m="": None)
    require_file(path, "features")
    entry = _cache_entry(path, cache_dir) if cache else None
    if entry is not None and entry[0].exists():
        try:
            if read_frameset_meta(entry[0]).get("cache_key") == entry[1]:
                fs = load_frameset(entry[0])
                report(1.0, "loaded from cache")
                return replace(fs, source=str(path))
        except Exception:  # noqa: BLE001 - a corrupt or foreign entry is rebuilt below
            pass
    report(0.0, f"unpickling {os.path.basename(path)}")
    videos = load_pickle_safe(path)
    report(0.5, "converting")
    fs = frameset_from_videos(videos, source=str(path),
                              progress=lambda f, m="": report(0.5 + 0.45 * f, m))
    del videos
    if entry is not None:
        _write_cache(fs, entry)
    report(1.0, "done")
    return fs


def feature_cache_file(path: str | os.PathLike, cache_dir=None) -> Path:
    """The columnar cache file :func:`read_features` uses for ``path`` (may not exist yet)."""
    return _cache_entry(path, cache_dir)[0]


def _cache_entry(path: str | os.PathLike, cache_dir) -> tuple[Path, str]:
    p = Path(path).resolve()
    st = p.stat()
    root = Path(cache_dir) if cache_dir else cache_root()
    where = hashlib.sha256(str(p).encode("utf-8", "surrogateescape")).hexdigest()[:16]
    key = f"v{CACHE_VERSION}:{p}:{st.st_size}:{st.st_mtime_ns}"
    version = hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()[:16]
    return root / f"{p.stem[:40]}-{where}-{version}.npz", key


def _write_cache(fs: FrameSet, entry: tuple[Path, str]) -> None:
    file, key = entry
    try:
        save_frameset(fs, file, meta={"cache_key": key})
        # drop entries of older versions of the same file
        prefix = file.name.rsplit("-", 1)[0] + "-"
        for old in file.parent.glob(glob.escape(prefix) + "*.npz"):
            if old != file:
                old.unlink(missing_ok=True)
    except OSError as exc:
        warnings.warn(f"could not write the feature cache {file}: {exc}", stacklevel=3)


def write_features(path: str | os.PathLike, videos: Mapping[str, list], *,
                   bytes_keys: bool = True, protocol: int = 2) -> None:
    """Write ``videos`` in the real layout (atomic).

    ``videos`` maps name -> ``[[frame_str, bbox, det, quality, feat_f16], ...]``;
    keys are written as ``bytes`` when ``bytes_keys`` (like the shipped files).

    Examples
    --------
    >>> feat = np.zeros(512, np.float16)
    >>> frame = ["1", [0, 0, 9, 9], 0.99, 60.0, feat]
    >>> write_features("/tmp/f.pickle", {"v": [frame]})  # doctest: +SKIP
    """
    def key(name: object) -> object:
        if bytes_keys and isinstance(name, str):
            return name.encode("utf-8")
        return name

    if protocol == 2:
        try:
            from core.io.pickle_stream import write_features_stream
        except ImportError:
            write_features_stream = None
        if write_features_stream is not None:
            write_features_stream(path, iter(videos.items()), bytes_keys=bytes_keys)
            return
    data = {key(name): frames for name, frames in videos.items()}
    with atomic_open(path, "wb") as fh:
        pickle.dump(data, fh, protocol=protocol)


# --------------------------------------------------------------------------- #
# ground truth
# --------------------------------------------------------------------------- #
@dataclass
class GroundTruth:
    """Labels of a ground-truth file.

    Attributes
    ----------
    labels : dict canonical video name -> 1-based identity ID (file order)
    path : the file it came from
    layout : ``"video_id"`` (``VIDEO.mp4 ID``) or ``"id_videos"`` (``ID V1.mp4 ...``)

    Examples
    --------
    >>> gt = GroundTruth({"a": 2, "b": 1, "c": 2}, "gt.txt", "video_id")
    >>> gt.identities, gt.by_identity()
    ([1, 2], {1: ['b'], 2: ['a', 'c']})
    """

    labels: dict[str, int]
    path: str = ""
    layout: Layout = "video_id"

    @property
    def identities(self) -> list[int]:
        """Sorted identity IDs."""
        return sorted(set(self.labels.values()))

    def by_identity(self) -> dict[int, list[str]]:
        """Identity ID -> its videos (file order), IDs ascending."""
        out: dict[int, list[str]] = {i: [] for i in self.identities}
        for video, ident in self.labels.items():
            out[ident].append(video)
        return out


def _read_lines(path: str | os.PathLike, what: str) -> list[tuple[int, list[str]]]:
    """(line number, tokens) of the non-blank lines of a UTF-8 text file."""
    with open_regular(path, what) as fh:  # never a pipe, a device or a directory
        data = fh.read()
    out = []
    for no, raw in enumerate(data.splitlines(), start=1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DataError(f"{path}: line {no}: not UTF-8 text ({exc.reason} at byte "
                            f"{exc.start})") from None
        tokens = line.lstrip("\ufeff").split()
        if tokens:
            out.append((no, tokens))
    return out


def _as_id(token: str, path, no: int) -> int:
    try:
        ident = int(token)
    except ValueError:
        raise DataError(f"{path}: line {no}: identity ID {_short(token)!r} is not an "
                        f"integer") from None
    if ident < 1:
        raise DataError(f"{path}: line {no}: identity ID {_short(token)} must be >= 1")
    if ident > MAX_ID:
        raise DataError(f"{path}: line {no}: identity ID {_short(token)} is out of range "
                        f"(at most {MAX_ID})")
    return ident


def _name(token: str, path, no: int) -> str:
    name = canonical_name(token)
    if not name or _is_int(name):
        raise DataError(f"{path}: line {no}: {_short(token)!r} is not a video name")
    return name


def _official_token(name: str, path) -> str:
    """``name`` as written in official text files; refuses names that would split."""
    text = official_name(name)
    if len(text.split()) != 1 or text != text.strip() or text == ".mp4":
        raise DataError(f"{path}: video name {name!r} is empty or contains whitespace")
    return text


def _is_int(token: str) -> bool:
    try:
        int(token)
    except ValueError:
        return False
    return True


def read_ground_truth(path: str | os.PathLike) -> GroundTruth:
    """Read a ground-truth file in either layout (detected per file).

    ``VIDEO.mp4 ID`` lines (train) or ``ID VIDEO1.mp4 VIDEO2.mp4 ...`` lines
    (val/test); blank lines, trailing whitespace and CRLF are fine.

    Raises
    ------
    DataError
        Naming the file and line: malformed line, non-integer or < 1 ID, a video
        under two identities, lines of both layouts, no line at all.

    Examples
    --------
    >>> read_ground_truth("val_gt.txt").by_identity()  # doctest: +SKIP
    {1: ['IQIYI_VID_VAL_0000012', ...], ...}
    """
    lines = _read_lines(path, "ground truth")
    if not lines:
        raise DataError(f"{path}: empty ground-truth file")
    labels: dict[str, int] = {}
    line_of: dict[str, int] = {}
    layout: Layout | None = None
    for no, tokens in lines:
        if len(tokens) < 2:
            raise DataError(f"{path}: line {no}: expected 'VIDEO.mp4 ID' or "
                            f"'ID VIDEO.mp4 ...', got {_short(' '.join(tokens), 80)!r}")
        first_int = _is_int(tokens[0])
        if layout == "video_id" and not first_int and len(tokens) != 2:
            raise DataError(f"{path}: line {no}: expected 'VIDEO.mp4 ID', got "
                            f"{' '.join(tokens)[:80]!r}")
        this: Layout = "id_videos" if first_int or len(tokens) > 2 else "video_id"
        if layout is None:
            layout = this
        elif this != layout:
            raise DataError(f"{path}: line {no}: {' '.join(tokens)[:80]!r} is in the "
                            f"'{this}' layout but earlier lines use the '{layout}' layout")
        if layout == "video_id":
            pairs = [(_name(tokens[0], path, no), _as_id(tokens[1], path, no))]
        else:
            ident = _as_id(tokens[0], path, no)
            pairs = [(_name(t, path, no), ident) for t in tokens[1:]]
        for video, ident in pairs:
            old = labels.setdefault(video, ident)
            if old != ident:
                raise DataError(f"{path}: line {no}: video {_short(video)!r} is under identity "
                                f"{ident} but line {line_of[video]} puts it under {old}")
            line_of.setdefault(video, no)
    return GroundTruth(labels=labels, path=str(path), layout=layout or "video_id")


def write_ground_truth(path: str | os.PathLike, labels: Mapping[str, int], *,
                       layout: Layout = "video_id") -> None:
    """Write ``labels`` (video -> ID) as a ground-truth file (atomic).

    Examples
    --------
    >>> write_ground_truth("/tmp/gt.txt", {"a": 1, "b": 1}, layout="id_videos")  # doctest: +SKIP
    >>> open("/tmp/gt.txt").read()  # doctest: +SKIP
    '1 a.mp4 b.mp4\\n'
    """
    for video, ident in labels.items():
        if isinstance(ident, bool) or not isinstance(ident, (int, np.integer)) or ident < 1:
            raise DataError(f"{path}: video {video!r}: identity ID {ident!r} is not an int >= 1")
    if layout == "video_id":
        text = "".join(f"{_official_token(v, path)} {int(i)}\n" for v, i in labels.items())
    elif layout == "id_videos":
        gt = GroundTruth({canonical_name(v): int(i) for v, i in labels.items()}, str(path))
        text = "".join(f"{i} {' '.join(_official_token(v, path) for v in vs)}\n"
                       for i, vs in gt.by_identity().items())
    else:
        raise ValueError(f"layout must be 'video_id' or 'id_videos', got {layout!r}")
    atomic_write_text(path, text)


def check_ground_truth(gt: GroundTruth, names: Iterable[str], *,
                       features_path: str | os.PathLike) -> None:
    """Raise DataError if videos of ``gt`` are missing from the features ``names``.

    Examples
    --------
    >>> check_ground_truth(GroundTruth({"a": 1}, "gt.txt"), ["a", "b"], features_path="f")
    >>> check_ground_truth(GroundTruth({"z": 1}, "gt.txt"), ["a"], features_path="f")
    Traceback (most recent call last):
    core.errors.DataError: gt.txt: 1 of 1 ground-truth videos are not in f: 'z'
    """
    present = {canonical_name(n) for n in names}
    missing = [v for v in gt.labels if v not in present]
    if missing:
        shown = ", ".join(repr(v) for v in missing[:5]) + (", ..." if len(missing) > 5 else "")
        raise DataError(f"{gt.path}: {len(missing)} of {len(gt.labels)} ground-truth videos "
                        f"are not in {features_path}: {shown}")


# --------------------------------------------------------------------------- #
# submissions
# --------------------------------------------------------------------------- #
def read_submission(path: str | os.PathLike, *,
                    identities: Iterable[int] | None = None) -> dict[int, list[str]]:
    """Read ``ID V1.mp4 V2.mp4 ...`` lines: identity ID -> canonical names in file order.

    IDs are read as integers (``07`` is identity 7, as the official script compares
    them); duplicates within a line are kept (the metric drops them).

    Parameters
    ----------
    identities : iterable of int, optional
        The ground truth's identities. Lines for any other ID are ignored without
        further checks, as the official script ignores them; they are returned
        unchecked (so callers can count them) unless they repeat an earlier line.

    Raises
    ------
    DataError
        Naming file and line: non-integer ID, a second line for the same
        identity, more than 100 distinct videos on a line (duplicates are allowed
        and dropped by the metric, first kept).

    Examples
    --------
    >>> read_submission("submission.txt")  # doctest: +SKIP
    {1: ['IQIYI_VID_TEST_0000003', ...], ...}
    """
    known = None if identities is None else {int(i) for i in identities}
    out: dict[int, list[str]] = {}
    line_of: dict[int, int] = {}
    for no, tokens in _read_lines(path, "submission"):
        ident = _submission_id(tokens[0], path, no)
        if known is not None and ident not in known:
            out.setdefault(ident, [canonical_name(t) for t in tokens[1:]])
            continue  # the official script ignores the line: so do we
        if ident in line_of:
            raise DataError(f"{path}: line {no}: identity {ident} already has a line "
                            f"(line {line_of[ident]})")
        videos = [_name(t, path, no) for t in tokens[1:]]
        # The official rule drops duplicates first (first kept), then allows 100.
        n_distinct = len(dict.fromkeys(videos))
        if n_distinct > MAX_PER_LINE:
            raise DataError(f"{path}: line {no}: identity {ident} lists {n_distinct} videos "
                            f"(after dropping duplicates), at most {MAX_PER_LINE} are allowed")
        out[ident] = videos
        line_of[ident] = no
    return out


def _submission_id(token: str, path, no: int) -> int:
    try:
        return int(token)
    except ValueError:
        raise DataError(f"{path}: line {no}: identity ID {_short(token)!r} is not an "
                        f"integer") from None


def _short(text: str, limit: int = 60) -> str:
    """``text`` cut to ``limit`` characters (error messages stay one short line)."""
    return text if len(text) <= limit else f"{text[:limit - 20]}...({len(text)} chars)"


def write_submission(path: str | os.PathLike, ranking: Mapping[int, Sequence[str]]) -> None:
    """Write a submission (atomic): one ``ID V1.mp4 ...`` line per identity, IDs ascending.

    Examples
    --------
    >>> write_submission("/tmp/sub.txt", {2: ["b", "a.mp4"], 1: ["c"]})  # doctest: +SKIP
    >>> open("/tmp/sub.txt").read()  # doctest: +SKIP
    '1 c.mp4\\n2 b.mp4 a.mp4\\n'
    """
    lines = []
    for ident in sorted(ranking):
        videos = list(ranking[ident])
        if isinstance(ident, bool) or not isinstance(ident, (int, np.integer)) or ident < 1:
            raise DataError(f"{path}: identity ID {ident!r} is not an int >= 1")
        if len(videos) > MAX_PER_LINE:
            raise DataError(f"{path}: identity {ident}: {len(videos)} videos, at most "
                            f"{MAX_PER_LINE} are allowed on a line")
        lines.append(" ".join([str(int(ident))] + [_official_token(v, path) for v in videos])
                     + "\n")
    atomic_write_text(path, "".join(lines))


__all__ = [
    "MAX_PER_LINE",
    "GroundTruth",
    "check_ground_truth",
    "feature_cache_file",
    "read_features",
    "read_ground_truth",
    "read_submission",
    "write_features",
    "write_ground_truth",
    "write_submission",
]
