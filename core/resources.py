"""Memory bounds: how much is free, what a job will need, and refusing what would not fit.

The dashboard and the CLI call :func:`check_fits` before work whose memory grows with
the data (unpickling a feature file, building a neighbour graph) so that a job too big
for the machine is refused with a one-line :class:`~core.errors.DataError` instead of
the process being killed by the kernel's out-of-memory killer mid-way.

* :func:`available_memory_bytes` — ``MemAvailable`` of ``/proc/meminfo``, lowered to
  the headroom of the process's cgroup (``memory.max`` minus the non-reclaimable part
  of ``memory.current``; cgroup v1 ``memory.limit_in_bytes`` too) when one is set.
  No psutil needed.
* :func:`estimate_load_bytes` — peak memory of reading a feature pickle with the safe
  loader and converting it to a :class:`~core.io.frames.FrameSet`:
  ``LOAD_BYTES_PER_PICKLE_BYTE * size + LOAD_OVERHEAD_BYTES``. Both constants were
  measured with ``benchmarks/bench_memory.py`` (peak RSS of a fresh process, see
  ``docs/RELIABILITY.md``): while the file is unpickled every frame exists twice, once
  as Python objects (list, bbox list, floats, a small ndarray: ~1.5 KB per 512-d frame)
  and once in the contiguous arrays (~1 KB per frame); a real pickle spends ~1.7 KB
  per frame, hence a factor a little under 2.
* :func:`estimate_dataset_bytes` — peak memory of holding converted feature files as one
  labelled dataset (``open_split`` of each + ``concat``), what training and the
  dashboard keep: ~1.4 bytes per pickle byte.
* :func:`estimate_cluster_bytes` — peak memory of building the neighbour graph of
  ``n`` pooled vectors with up to ``max_edges`` pairs and running DBSCAN on it.

Examples
--------
>>> need = estimate_load_bytes(2 * 2**30)      # a 2 GiB feature pickle
>>> round(need / 2**30, 1)
3.8
>>> check_fits(need, "reading face_train.pickle", available=64 * 2**30)
68719476736
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from core.errors import DataError

#: Where the kernel reports memory (monkeypatched by the tests).
MEMINFO_PATH = Path("/proc/meminfo")
#: Root of the cgroup file system (v2 unified, or v1 with a ``memory`` controller dir).
CGROUP_ROOT = Path("/sys/fs/cgroup")
#: The process's cgroup membership (``0::/path`` for v2).
SELF_CGROUP_PATH = Path("/proc/self/cgroup")

#: Peak RSS growth per byte of feature pickle while reading it (safe unpickler +
#: conversion to a FrameSet). ``benchmarks/bench_memory.py`` measured growths of 502,
#: 319 and 340 MiB for the 213, 114 and 125 MiB pickles of the ``demo`` preset and of
#: 8876, 4262 and 4312 MiB for the 4766, 2265 and 2292 MiB pickles of ``large``: fits
#: give 1.84 x size + 85-110 MiB; these constants round up so that the estimate covers
#: every measured file.
LOAD_BYTES_PER_PICKLE_BYTE = 1.86
#: Fixed part of that peak: imports and allocator arenas (same measurement).
LOAD_OVERHEAD_BYTES = 128 * 2**20

#: Peak RSS growth per byte of feature pickle when already-converted files are opened
#: as one labelled dataset (``open_split`` of each from its cache + ``concat``: the
#: frames are copied twice). Measured by ``benchmarks/bench_memory.py``: 12233 MiB for
#: the 9323 MiB of pickles of ``large`` (1.31), 609 MiB for the 452 MiB of ``demo`` (1.35).
DATASET_BYTES_PER_PICKLE_BYTE = 1.4

#: Peak bytes per stored undirected pair while the symmetric CSR is built (pair lists,
#: their doubled copies, the lexsort order, the sorted output). Measured in fresh
#: processes: 137-151 B per pair for planted clusters with 2-3M pairs, and 142 B per pair
#: (1,517 MiB growth, vectors and blocks included) for the 11.2M-pair graph of the
#: ``large`` preset's distractors (``benchmarks/bench_memory.py``). The first DBSCAN's
#: spanning forest stays under that peak.
CLUSTER_BYTES_PER_EDGE = 150
#: Bytes per pair of the lists gathered while the blocked products run (int64 row,
#: int64 column, float64 squared distance).
CLUSTER_LIST_BYTES_PER_EDGE = 24
#: Bytes per entry of one block of the blocked matrix product (float32 scores, the
#: boolean screen, slack for the index arrays).
CLUSTER_BLOCK_BYTES_PER_ENTRY = 6
#: Entries per block (``core.cluster.neighbors.build_radius_graph``: rows x n <= 32M).
CLUSTER_BLOCK_ENTRIES = 32_000_000
#: Fixed part: BLAS thread buffers allocated by the first matrix product, scipy temporaries.
CLUSTER_OVERHEAD_BYTES = 96 * 2**20
#: Copies of the (n, dim) float32 vectors alive at once (input and validated copy).
CLUSTER_VECTOR_COPIES = 2

#: Default share of the available memory one job may take.
DEFAULT_FRACTION = 0.8

_GIB = float(2**30)


# --------------------------------------------------------------------------- #
# what is free
# --------------------------------------------------------------------------- #
def _read_meminfo(path: Path | None = None) -> dict[str, int]:
    """``/proc/meminfo`` as ``{field: bytes}`` (``kB`` values converted); {} if unreadable."""
    out: dict[str, int] = {}
    try:
        text = Path(path or MEMINFO_PATH).read_text(encoding="ascii", errors="replace")
    except OSError:
        return out
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if not parts:
            continue
        try:
            value = int(parts[0])
        except ValueError:
            continue
        unit = parts[1].lower() if len(parts) > 1 else ""
        out[key.strip()] = value * 1024 if unit == "kb" else value
    return out


def _read_int(path: Path) -> int | None:
    """An integer file of the cgroup fs; None if absent, unreadable or ``max``."""
    try:
        text = path.read_text(encoding="ascii").strip()
    except OSError:
        return None
    if not text or text == "max":
        return None
    try:
        return int(text.split()[0])
    except ValueError:
        return None


def _inactive_file(stat_path: Path) -> int:
    """Reclaimable page cache of a cgroup (``inactive_file`` of ``memory.stat``)."""
    try:
        lines = stat_path.read_text(encoding="ascii").splitlines()
    except OSError:
        return 0
    for line in lines:
        key, _, value = line.partition(" ")
        if key in ("inactive_file", "total_inactive_file"):
            try:
                return int(value.strip())
            except ValueError:
                return 0
    return 0


def _chain(base: Path, rel: str) -> list[Path]:
    """``base/rel`` and its ancestors up to ``base``."""
    here = base / rel.strip().lstrip("/") if rel.strip().lstrip("/") else base
    out = [here]
    while here != base and base in here.parents:
        here = here.parent
        out.append(here)
    return out


def _cgroup_candidates(root: Path) -> list[tuple[Path, str, str]]:
    """(directory, limit file, usage file) of every cgroup whose memory limit applies.

    From ``/proc/self/cgroup``: the v2 entry (``0::/path``) gives ``root/path`` and its
    ancestors with ``memory.max``/``memory.current``; a v1 ``memory`` entry gives
    ``root/memory/path`` and its ancestors with ``memory.limit_in_bytes``/
    ``memory.usage_in_bytes``. ``root`` and ``root/memory`` themselves are always
    included (inside a container the process's own cgroup is mounted there).
    """
    v2 = ("memory.max", "memory.current")
    v1 = ("memory.limit_in_bytes", "memory.usage_in_bytes")
    found: list[tuple[Path, str, str]] = []
    try:
        lines = SELF_CGROUP_PATH.read_text(encoding="ascii").splitlines()
    except OSError:
        lines = []
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        hier, controllers, rel = parts
        if hier == "0" and controllers == "":
            found += [(d, *v2) for d in _chain(root, rel)]
        elif "memory" in controllers.split(","):
            found += [(d, *v1) for d in _chain(root / "memory", rel)]
    for fallback in ((root, *v2), (root / "memory", *v1)):
        if fallback not in found:
            found.append(fallback)
    return found


def _cgroup_headroom(root: Path | None = None) -> int | None:
    """Bytes the process's cgroups may still allocate; None when no limit is set.

    For the process's cgroup and every ancestor with a limit (the smallest headroom
    wins): ``limit - (usage - inactive_file)``, page cache that can be reclaimed not
    counted as used. v2: ``memory.max``/``memory.current``; v1:
    ``memory.limit_in_bytes``/``memory.usage_in_bytes`` (2**60 or more = unlimited).
    """
    root = Path(root or CGROUP_ROOT)
    best: int | None = None
    for d, limit_file, usage_file in _cgroup_candidates(root):
        limit = _read_int(d / limit_file)
        if limit is None or limit >= 2**60:
            continue
        used = _read_int(d / usage_file) or 0
        used = max(used - _inactive_file(d / "memory.stat"), 0)
        room = max(limit - used, 0)
        best = room if best is None else min(best, room)
    return best


def available_memory_bytes() -> int:
    """Bytes a new allocation can take without swapping or meeting a memory limit.

    ``MemAvailable`` of ``/proc/meminfo`` (kernel >= 3.14; else ``MemFree + Buffers +
    Cached``; without ``/proc`` the free physical pages of ``os.sysconf``), lowered to
    the headroom of the process's cgroup when it has a memory limit (containers).

    Examples
    --------
    >>> available_memory_bytes() > 0
    True
    """
    info = _read_meminfo()
    if "MemAvailable" in info:
        avail = info["MemAvailable"]
    elif "MemFree" in info:
        avail = info["MemFree"] + info.get("Buffers", 0) + info.get("Cached", 0)
    else:
        try:
            avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
            avail = 0
    room = _cgroup_headroom()
    if room is not None:
        avail = min(avail, room)
    return int(max(avail, 0))


# --------------------------------------------------------------------------- #
# what a job needs
# --------------------------------------------------------------------------- #
def estimate_load_bytes(path: str | os.PathLike | int) -> int:
    """Peak memory of reading a feature pickle (safe loader + conversion to a FrameSet).

    Parameters
    ----------
    path : path of the pickle, or its size in bytes.

    Returns
    -------
    int
        ``LOAD_BYTES_PER_PICKLE_BYTE * size + LOAD_OVERHEAD_BYTES``: the peak growth of
        the process's resident memory, measured on the synthetic presets (see the module
        docstring). Reopening a file whose columnar cache exists costs far less (the
        arrays are memory-mapped); this is the cost of the first read.

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    ValueError
        A negative size.

    Examples
    --------
    >>> round(estimate_load_bytes(1_000_000_000) / 1e9, 2)
    1.99
    """
    return int(LOAD_BYTES_PER_PICKLE_BYTE * _size(path)) + LOAD_OVERHEAD_BYTES


def _size(path: str | os.PathLike | int) -> int:
    """Size in bytes of a file, or the size given as an int (>= 0)."""
    if isinstance(path, int) and not isinstance(path, bool):
        if path < 0:
            raise ValueError(f"file size must be >= 0, got {path}")
        return int(path)
    return os.stat(path).st_size


def estimate_dataset_bytes(paths: Iterable[str | os.PathLike | int]) -> int:
    """Peak memory of holding feature files as one labelled dataset (after their first read).

    What ``vidid train`` and the dashboard's ``load_dataset`` hold: every split opened
    with :func:`core.features.dataset.open_split` (from the columnar cache) and concatenated — the
    pooled vectors and, twice during the concatenation, every frame. Add
    :func:`estimate_load_bytes` of the largest file when its cache does not exist yet
    (files are converted one at a time).

    Parameters
    ----------
    paths : feature pickle paths, or their sizes in bytes.

    Returns
    -------
    int
        ``DATASET_BYTES_PER_PICKLE_BYTE * total size + LOAD_OVERHEAD_BYTES``.

    Examples
    --------
    >>> round(estimate_dataset_bytes([5 * 2**30, 2 * 2**30, 2 * 2**30]) / 2**30, 1)
    12.7
    """
    total = sum(_size(p) for p in paths)
    return int(DATASET_BYTES_PER_PICKLE_BYTE * total) + LOAD_OVERHEAD_BYTES


def estimate_cluster_bytes(n: int, max_edges: int, *, dim: int = 512) -> int:
    """Peak memory of building the neighbour graph of ``n`` vectors and one DBSCAN on it.

    The build has two phases that do not overlap: blocked matrix products (one block of
    scores alive, the pairs found so far kept as lists) and the symmetric CSR (the pair
    lists doubled, sorted, copied). The peak is the larger of the two, plus the vectors
    and a fixed overhead.

    Parameters
    ----------
    n : number of pooled vectors (distractor videos).
    max_edges : upper bound on the undirected pairs within ``max_eps`` (the graph's
        ``max_edges`` cap, or an estimate such as ``share_of_pairs * n * (n - 1) / 2``).
    dim : vector dimension.

    Returns
    -------
    int
        ``CLUSTER_VECTOR_COPIES * n * dim * 4 + CLUSTER_OVERHEAD_BYTES +
        max(block + CLUSTER_LIST_BYTES_PER_EDGE * max_edges,
        CLUSTER_BYTES_PER_EDGE * max_edges)``, ``block`` being
        ``CLUSTER_BLOCK_BYTES_PER_ENTRY`` times the entries of one product block.

    Examples
    --------
    >>> round(estimate_cluster_bytes(36_000, 12_000_000) / 2**30, 2)
    1.91
    """
    for value, what in ((n, "n"), (max_edges, "max_edges"), (dim, "dim")):
        if isinstance(value, bool) or int(value) != value or value < 0:
            raise ValueError(f"{what} must be an integer >= 0, got {value!r}")
    n, max_edges, dim = int(n), int(max_edges), int(dim)
    rows = min(n, max(64, min(4096, CLUSTER_BLOCK_ENTRIES // max(n, 1))))
    block = CLUSTER_BLOCK_BYTES_PER_ENTRY * rows * n
    pairs = max(block + CLUSTER_LIST_BYTES_PER_EDGE * max_edges,
                CLUSTER_BYTES_PER_EDGE * max_edges)
    return CLUSTER_VECTOR_COPIES * n * dim * 4 + CLUSTER_OVERHEAD_BYTES + pairs


# --------------------------------------------------------------------------- #
# refusing
# --------------------------------------------------------------------------- #
def format_gib(n_bytes: float) -> str:
    """``n_bytes`` in GiB for messages: one decimal, three under 0.1 GiB.

    Examples
    --------
    >>> format_gib(3 * 2**30), format_gib(2**20)
    ('3.0 GiB', '0.001 GiB')
    """
    v = float(n_bytes) / _GIB
    return f"{v:.1f} GiB" if v >= 0.1 else f"{v:.3f} GiB"


def check_fits(required_bytes: int, what: str, *, fraction: float = DEFAULT_FRACTION,
               available: int | None = None) -> int:
    """Refuse work that would not fit in memory.

    Parameters
    ----------
    required_bytes : estimated peak memory of the work (e.g. :func:`estimate_load_bytes`).
    what : what the work is, for the message (``"reading face_train.pickle"``).
    fraction : share of the available memory the work may take (0 < fraction <= 1);
        the rest is left to the other processes and to the estimate's error.
    available : bytes available; default :func:`available_memory_bytes` (now).

    Returns
    -------
    int
        The available bytes the decision was made against.

    Raises
    ------
    DataError
        ``"not enough memory for WHAT: needs ~X GiB, Y GiB available ..."`` when
        ``required_bytes > fraction * available``.
    ValueError
        ``fraction`` outside (0, 1] or a negative ``required_bytes``.

    Examples
    --------
    >>> check_fits(2**30, "pooling", available=8 * 2**30)
    8589934592
    >>> check_fits(8 * 2**30, "pooling", available=8 * 2**30)
    Traceback (most recent call last):
    core.errors.DataError: not enough memory for pooling: needs ~8.0 GiB, 8.0 GiB available (vidid uses at most 80% of it)
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction!r}")
    if required_bytes < 0:
        raise ValueError(f"required_bytes must be >= 0, got {required_bytes!r}")
    avail = available_memory_bytes() if available is None else int(available)
    if required_bytes > fraction * avail:
        raise DataError(f"not enough memory for {what}: needs ~{format_gib(required_bytes)}, "
                        f"{format_gib(avail)} available (vidid uses at most "
                        f"{fraction:.0%} of it)")
    return avail


__all__ = ["available_memory_bytes", "check_fits", "estimate_cluster_bytes",
           "estimate_dataset_bytes", "estimate_load_bytes", "format_gib"]
