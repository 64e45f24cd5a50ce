"""What vidid keeps on disk under the cache, how big it is, and clearing it.

The cache (:func:`core.paths.cache_root`) holds generated demo datasets
(``demo-*``), uploaded files (``uploads/``), columnar feature caches and projections
(everything else) and, unless ``$VIDID_RUNS`` moves them, the runs (``runs/``).
:func:`cache_usage` measures each part; :func:`clear_cache` removes one part.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pandas as pd

from core.errors import DataError
from core.paths import cache_root, runs_root

#: Parts :func:`clear_cache` can remove (runs are deleted one by one, never here).
CLEARABLE = ("uploads", "feature caches", "demo data")


def folder_bytes(path: str | os.PathLike) -> int:
    """Total size of the files under ``path`` (0 if it does not exist).

    >>> folder_bytes("/nonexistent")
    0
    """
    total = 0
    for dirpath, _, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(dirpath, f)).st_size
            except OSError:
                pass
    return total


def _parts(root: Path) -> dict[str, list[Path]]:
    runs = runs_root()
    parts: dict[str, list[Path]] = {k: [] for k in ("demo data", "uploads", "feature caches", "runs")}
    if not root.is_dir():
        return parts
    for p in root.iterdir():
        if p.name.startswith("demo-") or p.name.startswith(".demo-"):
            parts["demo data"].append(p)
        elif p.name == "uploads":
            parts["uploads"].append(p)
        elif p.resolve() == runs.resolve():
            parts["runs"].append(p)
        else:
            parts["feature caches"].append(p)
    return parts


def cache_usage(root: str | os.PathLike | None = None) -> pd.DataFrame:
    """One row per part of the cache: ``part``, ``bytes``, ``items``, ``where``.

    >>> int(cache_usage("/nonexistent")["bytes"].sum())
    0
    """
    root = Path(root) if root is not None else cache_root()
    rows = [{"part": part, "bytes": sum(folder_bytes(p) if p.is_dir() else p.stat().st_size for p in paths),
             "items": len(paths), "where": str(root)}
            for part, paths in _parts(root).items()]
    return pd.DataFrame(rows, columns=["part", "bytes", "items", "where"])


def clear_cache(part: str, root: str | os.PathLike | None = None, *,
                keep: tuple[str | os.PathLike, ...] = ()) -> int:
    """Remove one part of the cache (see :data:`CLEARABLE`); return the bytes freed.

    ``keep`` lists folders not to remove (the dataset in use).

    >>> clear_cache("runs")  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    core.errors.DataError: cannot clear 'runs'; choose one of uploads, feature caches, demo data
    """
    if part not in CLEARABLE:
        raise DataError(f"cannot clear {part!r}; choose one of {', '.join(CLEARABLE)}")
    root = Path(root) if root is not None else cache_root()
    kept = {Path(k).resolve() for k in keep}
    freed = 0
    for p in _parts(root)[part]:
        if p.resolve() in kept or any(k.is_relative_to(p.resolve()) for k in kept):
            if part == "uploads":  # keep the active upload, remove the others
                for q in p.iterdir():
                    if q.resolve() not in kept and not any(k.is_relative_to(q.resolve()) for k in kept):
                        freed += folder_bytes(q) if q.is_dir() else q.stat().st_size
                        shutil.rmtree(q, ignore_errors=True) if q.is_dir() else q.unlink(missing_ok=True)
            continue
        freed += folder_bytes(p) if p.is_dir() else p.stat().st_size
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
    return freed


def human_bytes(n: float) -> str:
    """``1536`` -> ``'1.5 KB'``.

    >>> human_bytes(0), human_bytes(1536), human_bytes(5e8)
    ('0 B', '1.5 KB', '476.8 MB')
    """
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"  # pragma: no cover


__all__ = ["CLEARABLE", "cache_usage", "clear_cache", "folder_bytes", "human_bytes"]
