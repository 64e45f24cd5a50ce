"""Named numpy columns in an uncompressed ``.npz``, memory-mapped on reading.

``np.load`` of an ``.npz`` reads every member into memory; here a member stored
uncompressed is located inside the zip and memory-mapped copy-on-write, so opening
a large file costs O(number of columns). Beside the columns the file holds a
``str -> str`` mapping of metadata. :mod:`core.io.frames` stores a FrameSet this way.
"""

from __future__ import annotations

import os
import zipfile
from typing import Mapping, Sequence

import numpy as np

from core.atomic import atomic_open
from core.errors import DataError

_META_KEYS = "meta_keys"
_META_VALUES = "meta_values"


def write_npz_columns(path: str | os.PathLike, columns: Mapping[str, np.ndarray],
                      meta: Mapping[str, str]) -> None:
    """Write ``columns`` and the ``meta`` strings to ``path`` as an uncompressed ``.npz`` (atomic).

    Examples
    --------
    >>> import tempfile
    >>> path = tempfile.mkdtemp() + "/c.npz"
    >>> write_npz_columns(path, {"x": np.arange(3)}, {"kind": "toy"})
    >>> arrays, meta = read_npz_columns(path, ["x"])
    >>> arrays["x"].tolist(), meta
    ([0, 1, 2], {'kind': 'toy'})
    """
    clash = {_META_KEYS, _META_VALUES} & set(columns)
    if clash:
        raise ValueError(f"{path}: column name {min(clash)!r} is reserved for the metadata")
    arrays = dict(columns)
    arrays[_META_KEYS] = np.array(list(meta), dtype=str)
    arrays[_META_VALUES] = np.array(list(meta.values()), dtype=str)
    with atomic_open(path, "wb") as fh:
        np.savez(fh, **arrays)


def read_npz_columns(path: str | os.PathLike, columns: Sequence[str], *, mmap: bool = True,
                     what: str = "columns") -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """``(arrays, meta)`` of a file written by :func:`write_npz_columns`.

    Reads only ``columns`` (none: just the metadata). With ``mmap=True`` uncompressed
    members of at least 64 KiB are memory-mapped copy-on-write; object arrays are
    refused. ``what`` names the kind of file in error messages.

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    DataError
        A directory, a corrupt or truncated file, a missing column.
    """
    from core.io.safe_pickle import require_file

    require_file(path, f"{what} .npz")
    wanted = (_META_KEYS, _META_VALUES, *columns)
    arrays: dict[str, np.ndarray] = {}
    try:
        with open(path, "rb") as raw, zipfile.ZipFile(raw) as zf:
            members = {info.filename: info for info in zf.infolist()}
            for key in wanted:
                info = members.get(key + ".npy")
                if info is None:
                    raise DataError(f"{path}: not a {what} file: no column {key!r}")
                arrays[key] = _read_member(path, raw, zf, info, mmap=mmap)
    except DataError:
        raise
    except Exception as exc:  # noqa: BLE001 - zipfile/numpy raise many types on corrupt files
        raise DataError(f"{path}: not a valid {what} file "
                        f"({type(exc).__name__}: {' '.join(str(exc).split())[:200]})") from None
    meta = dict(zip(arrays.pop(_META_KEYS).tolist(), arrays.pop(_META_VALUES).tolist()))
    return arrays, meta


def _read_member(path, raw, zf: zipfile.ZipFile, info: zipfile.ZipInfo, *,
                 mmap: bool) -> np.ndarray:
    fmt = np.lib.format
    if mmap and info.compress_type == zipfile.ZIP_STORED:
        # Locate the member's bytes: local header (30 bytes + name + extra) then .npy.
        raw.seek(info.header_offset)
        local = raw.read(30)
        if len(local) != 30 or local[:4] != b"PK\x03\x04":
            raise DataError(f"{path}: corrupt zip member {info.filename!r}")
        start = info.header_offset + 30 + int.from_bytes(local[26:28], "little") \
            + int.from_bytes(local[28:30], "little")
        raw.seek(start)
        version = fmt.read_magic(raw)
        if version not in ((1, 0), (2, 0)):
            raise DataError(f"{path}: column {info.filename!r}: .npy version {version}")
        read_header = fmt.read_array_header_1_0 if version == (1, 0) else \
            fmt.read_array_header_2_0
        shape, fortran, dtype = read_header(raw)
        if dtype.hasobject:
            raise DataError(f"{path}: column {info.filename!r} holds Python objects")
        data_at = raw.tell()
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if data_at - start + nbytes != info.file_size:
            raise DataError(f"{path}: column {info.filename!r} has the wrong size")
        if nbytes >= 1 << 16:
            mm = np.memmap(raw, dtype=dtype, mode="c", offset=data_at, shape=shape,
                           order="F" if fortran else "C")
            return np.asarray(mm)
    with zf.open(info) as member:
        return fmt.read_array(member, allow_pickle=False)


__all__ = ["read_npz_columns", "write_npz_columns"]
