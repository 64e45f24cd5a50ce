"""What a dataset is to the dashboard, and how one is found in a folder.

:class:`DatasetSpec` (a folder and the files of each split) is the contract every
page codes against; :func:`detect_splits` builds one from file names and
:func:`files_fingerprint` keys the caches on the files' size and mtime. Plain Python
(no Streamlit); :mod:`dashboard.cache.datasets` offers them to the pages (its contract).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from core.errors import DataError

SPLIT_ORDER = ("train", "val", "test")


# --------------------------------------------------------------------------- the spec


@dataclass(frozen=True)
class SplitFiles:
    """The files of one split: features pickle and (optional) ground truth."""

    name: str
    feats: str
    gt: str | None = None


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset the dashboard can open: a folder and the files of each split.

    Examples
    --------
    >>> train = SplitFiles("train", "/d/face_train.pickle", "/d/train_gt.txt")
    >>> spec = DatasetSpec("x", "/d", (train,))
    >>> spec.split("train").gt, spec.split("test")
    ('/d/train_gt.txt', None)
    """

    name: str
    root: str
    splits: tuple[SplitFiles, ...]
    truth: str | None = None
    videos_dir: str | None = None
    kind: str = field(default="folder", compare=False)

    def split(self, name: str) -> SplitFiles | None:
        """The split called ``name``, or None."""
        for s in self.splits:
            if s.name == name:
                return s
        return None

    @property
    def split_names(self) -> list[str]:
        return [s.name for s in self.splits]

    @property
    def train_pairs(self) -> list[tuple[str, str | None]]:
        """``(feats, gt)`` of the train and val splits (those that exist)."""
        return [(s.feats, s.gt) for s in self.splits if s.name in ("train", "val")]

    @property
    def eval_pair(self) -> tuple[str, str | None] | None:
        """``(feats, gt)`` of the test split, or None."""
        s = self.split("test")
        return None if s is None else (s.feats, s.gt)

    @property
    def labelled_splits(self) -> list[str]:
        """Names of the splits that have a ground-truth file."""
        return [s.name for s in self.splits if s.gt]


# --------------------------------------------------------------------------- folders


_FEATS_RE = re.compile(r"^(?:face_)?(?P<split>train|val|test)(?P<rest>[\w.-]*)\.(?:pickle|pkl)$",
                       re.I)


def _split_of_feats(filename: str) -> str | None:
    m = _FEATS_RE.match(filename)
    return m.group("split").lower() if m else None


def _gt_candidates(split: str, feats_name: str) -> list[str]:
    rest = _FEATS_RE.match(feats_name).group("rest")  # e.g. "_v2"
    names = [f"{split}{rest}_gt.txt", f"{split}_gt{rest}.txt", f"{split}_gt.txt",
             f"{split}{rest}.txt", f"{split}.txt", f"gt_{split}.txt"]
    seen: list[str] = []
    for n in names:
        if n not in seen:
            seen.append(n)
    return seen


def detect_splits(folder: str | os.PathLike, *, name: str | None = None) -> DatasetSpec:
    """Find the iQIYI-VID files of a folder and group them into splits by file name.

    Features are ``face_<split>*.pickle`` (``face_train_v2.pickle``, ``face_val.pickle``,
    ``face_test.pickle`` …); ground truth ``<split>_gt.txt`` (2019) or ``<split>.txt``
    (2018). A split without a ground-truth file is unlabelled (test). ``truth.tsv`` (the
    synthetic data's true persons) and a ``videos/`` folder are picked up when present.

    Raises
    ------
    DataError
        The folder does not exist or holds no feature pickle of a known split.

    Examples
    --------
    >>> detect_splits("/nonexistent")  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    DataError: /nonexistent: no such folder
    """
    root = Path(os.path.expanduser(str(folder))).resolve()
    if not root.is_dir():
        raise DataError(f"{root}: no such folder")
    files = {p.name: p for p in root.iterdir() if p.is_file()}
    found: dict[str, SplitFiles] = {}
    for fname in sorted(files):
        split = _split_of_feats(fname)
        if split is None:
            continue
        if split in found:
            raise DataError(
                f"{root}: two feature files for split {split!r}: "
                f"{Path(found[split].feats).name} and {fname}"
            )
        gt = next((files[c] for c in _gt_candidates(split, fname) if c in files), None)
        found[split] = SplitFiles(split, str(files[fname]), str(gt) if gt else None)
    if not found:
        pickles = [n for n in files if n.endswith((".pickle", ".pkl"))]
        hint = (f" (found {', '.join(sorted(pickles)[:3])}: name them face_train/val/test*.pickle)"
                if pickles else "")
        raise DataError(
            f"{root}: no iQIYI-VID feature files (face_train*.pickle, face_val*.pickle, "
            f"face_test*.pickle){hint}"
        )
    splits = tuple(found[s] for s in SPLIT_ORDER if s in found)
    truth = files.get("truth.tsv")
    videos = root / "videos"
    return DatasetSpec(
        name=name or root.name,
        root=str(root),
        splits=splits,
        truth=str(truth) if truth else None,
        videos_dir=str(videos) if videos.is_dir() else None,
    )


def files_fingerprint(spec: DatasetSpec) -> tuple:
    """(path, size, mtime_ns) of every file of the spec: part of every cache key.

    Examples
    --------
    >>> files_fingerprint(DatasetSpec("x", "/nonexistent", (SplitFiles("val", "/nonexistent/v.pickle"),)))
    (('/nonexistent/v.pickle', -1, -1),)
    """
    out = []
    paths = [p for s in spec.splits for p in (s.feats, s.gt) if p]
    if spec.truth:
        paths.append(spec.truth)
    for p in paths:
        try:
            st_ = os.stat(p)
            out.append((p, st_.st_size, st_.st_mtime_ns))
        except OSError:
            out.append((p, -1, -1))
    return tuple(out)


__all__ = ["SPLIT_ORDER", "DatasetSpec", "SplitFiles", "detect_splits", "files_fingerprint"]
