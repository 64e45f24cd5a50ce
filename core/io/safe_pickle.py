"""Restricted unpickling of feature pickles.

:func:`load_pickle_safe` builds only containers, numbers, strings and numpy arrays;
anything else in the file (``os.system``, arbitrary classes, object dtypes, dtypes
with pickled flags or fields) is refused before it can run.
"""

from __future__ import annotations

import codecs
import gc
import os
import pickle
import stat

import numpy as np
from numpy._core.multiarray import _reconstruct as _np_reconstruct
from numpy._core.multiarray import scalar as _np_scalar
from numpy._core.numeric import _frombuffer as _np_frombuffer

from core.errors import DataError

_TEXT_CODECS = frozenset({"latin1", "latin-1", "latin_1", "iso-8859-1", "iso8859-1",
                          "utf-8", "utf8", "utf_8"})


def _latin1_encode(obj: object, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    # Python 3 protocol-2 pickles write bytes as _codecs.encode(str, 'latin1');
    # admit only that (no arbitrary codec machinery such as zlib/rot13/hex).
    if type(obj) is not str or encoding not in _TEXT_CODECS or errors != "strict":
        raise pickle.UnpicklingError(f"_codecs.encode with {type(obj).__name__}/{encoding!r}")
    return codecs.encode(obj, encoding)


_SAFE_KINDS = frozenset("biufcSU")  # numbers and strings; never objects, records, sub-arrays
_PRISTINE: dict[object, np.dtype] = {}  # type string -> dtype built by us (no pickled state)


def _clean_dtype(dt: object) -> np.dtype:
    # A pickled dtype is rebuilt by BUILD/__setstate__, which can set any flags (e.g.
    # "holds Python objects" on a float dtype) or fields: numpy would then read raw
    # bytes as object pointers. Keep only plain number/string dtypes, and use a dtype
    # rebuilt from the type string, so no pickled flag survives.
    if isinstance(dt, np.dtype):
        if dt.fields is not None or dt.subdtype is not None or dt.kind not in _SAFE_KINDS:
            raise pickle.UnpicklingError(f"numpy dtype {dt} (only numbers and strings "
                                         f"are allowed)")
        key: object = dt.str
    elif isinstance(dt, (str, bytes)):
        key = dt
    else:
        raise pickle.UnpicklingError(f"numpy dtype from {type(dt).__name__}")
    clean = _PRISTINE.get(key)
    if clean is None:
        clean = np.dtype(key.decode("latin-1") if isinstance(key, bytes) else key)
        if clean.fields is not None or clean.subdtype is not None or \
                clean.kind not in _SAFE_KINDS:
            raise pickle.UnpicklingError(f"numpy dtype {clean} (only numbers and strings "
                                         f"are allowed)")
        clean = np.dtype(clean.str)
        if len(_PRISTINE) < 1024:  # bounded: a hostile file cannot grow it without limit
            _PRISTINE[key] = clean
    return clean


class _CheckedArray(np.ndarray):
    """Stand-in for ``numpy.ndarray`` while unpickling: its ``__setstate__`` (BUILD)
    cleans the dtype first. Replaced by plain ndarray views after loading."""

    def __new__(cls, *args: object, **kwargs: object) -> "_CheckedArray":
        # numpy never pickles a direct ``ndarray(shape, dtype, buffer)`` call; a file
        # that makes one could build an object array over raw bytes (pointers).
        raise _Refused("numpy.ndarray(...) called directly")

    def __setstate__(self, state: object) -> None:
        if type(state) is not tuple or len(state) not in (4, 5):
            raise pickle.UnpicklingError("bad numpy array state")
        _ndarray_setstate(self, state[:-3] + (_clean_dtype(state[-3]),) + state[-2:])


_ndarray_setstate = np.ndarray.__setstate__


def _safe_reconstruct(subtype: object, shape: object, dtype: object) -> np.ndarray:
    # numpy always pickles arrays as _reconstruct(ndarray, (0,), 'b') + BUILD
    if subtype is not _CheckedArray:
        raise pickle.UnpicklingError(f"numpy _reconstruct of {subtype!r}")
    return _np_reconstruct(_CheckedArray, (0,), _clean_dtype(dtype))


def _safe_scalar(dtype: object, *args: object) -> object:
    return _np_scalar(_clean_dtype(dtype), *args)


def _safe_frombuffer(buf: object, dtype: object, shape: object, order: object) -> np.ndarray:
    return _np_frombuffer(buf, _clean_dtype(dtype), shape, order)


def _allowed_globals() -> dict[tuple[str, str], object]:
    allowed: dict[tuple[str, str], object] = {
        ("numpy", "ndarray"): _CheckedArray,
        ("numpy", "dtype"): np.dtype,  # harmless alone: every use goes through _clean_dtype
        ("_codecs", "encode"): _latin1_encode,
    }
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(module, "_reconstruct")] = _safe_reconstruct
        allowed[(module, "scalar")] = _safe_scalar
    for module in ("numpy.core.numeric", "numpy._core.numeric"):
        allowed[(module, "_frombuffer")] = _safe_frombuffer  # protocol >= 5 arrays
    return allowed


_ALLOWED = _allowed_globals()


class _Refused(pickle.UnpicklingError):
    pass


class _SafeUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the globals a feature pickle needs."""

    def find_class(self, module: str, name: str) -> object:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise _Refused(f"{module}.{name}") from None


#: Deepest nesting a loaded object may have (feature pickles need 4: dict, frame
#: list, frame, bbox; fold checkpoints a few more).
MAX_DEPTH = 64
#: Slack of the walk budgets below, for small files.
_ITEM_SLACK = 1 << 18
_BYTE_SLACK = 16 << 20


class _TooBig(pickle.UnpicklingError):
    pass


def _plain(obj: object, size: int | None = None) -> object:
    """Replace every _CheckedArray in nested lists/dicts/tuples by a plain ndarray view,
    walking the result as the tree every later reader walks: with a budget.

    A pickle can reference one object many times (its memo), so a small file can
    describe a structure whose walk is exponential (lists of lists sharing one
    another) or one feature array referenced millions of times. Without sharing,
    every container slot costs at least one byte of the file and every array's data
    is stored in it, so the walk is capped at ``4 x size`` slots and ``2 x size``
    array bytes (plus slack), and at :data:`MAX_DEPTH` levels; past that
    :class:`_TooBig` is raised before anything is converted or allocated.
    """
    size = 0 if size is None else int(size)
    budget = [4 * size + _ITEM_SLACK, 2 * size + _BYTE_SLACK]
    return _walk(obj, 0, budget)


def _walk(obj: object, depth: int, budget: list[int]) -> object:
    kind = type(obj)
    if kind is _CheckedArray or kind is np.ndarray:  # converted at an earlier reference
        budget[1] -= obj.nbytes  # type: ignore[union-attr]
        if budget[1] < 0:
            raise _TooBig("its arrays, counted at every reference, exceed twice the file size "
                          "(one array referenced many times?)")
        return obj.view(np.ndarray) if kind is _CheckedArray else obj
    if depth >= MAX_DEPTH:
        raise _TooBig(f"nested deeper than {MAX_DEPTH} levels")
    budget[0] -= len(obj)  # type: ignore[arg-type]
    if budget[0] < 0:
        raise _TooBig("walking it visits far more items than the file holds "
                      "(containers shared many times over?)")
    if kind is list:
        for i, x in enumerate(obj):  # type: ignore[arg-type]
            if type(x) in _CONTAINERS:
                obj[i] = _walk(x, depth + 1, budget)  # type: ignore[index]
    elif kind is dict:
        for k, x in obj.items():  # type: ignore[union-attr]
            if type(k) is tuple:
                _walk(k, depth + 1, budget)
            if type(x) in _CONTAINERS:
                obj[k] = _walk(x, depth + 1, budget)  # type: ignore[index]
    elif kind is tuple:
        return tuple(_walk(x, depth + 1, budget) if type(x) in _CONTAINERS else x
                     for x in obj)  # type: ignore[union-attr]
    return obj


_CONTAINERS = frozenset({list, dict, tuple, _CheckedArray, np.ndarray})


def load_pickle_safe(path: str | os.PathLike) -> object:
    """Unpickle ``path`` allowing only containers, scalars and numpy arrays.

    Python 2 pickles load too (``encoding='bytes'``: py2 ``str`` becomes ``bytes``).
    Admitted globals: ``numpy.ndarray``, ``numpy.dtype``, ``numpy[._]core.multiarray.
    _reconstruct`` / ``.scalar``, ``numpy[._]core.numeric._frombuffer`` (protocol 5)
    and ``_codecs.encode`` (latin-1/utf-8 only: how protocol 2 stores py3 bytes).
    Arrays and scalars may only have plain number or string dtypes: a pickled dtype
    can carry flags or fields that make numpy read raw bytes as object pointers.

    What a file may build is bounded: the walk of the result at most ``4 x size``
    container slots, ``2 x size`` bytes of arrays counted at every reference and
    :data:`MAX_DEPTH` levels; the process may grow at most ``8 x bytes read +
    512 MiB`` while it loads (see :class:`_MeteredReader`).

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    DataError
        Not a regular file (directory, pipe, device), an empty/truncated/corrupt
        file, a pickle that asks for anything else (``os.system``, ``builtins.eval``,
        arbitrary classes ...) or that builds more than its size allows.

    Examples
    --------
    >>> load_pickle_safe("face_val.pickle")  # doctest: +SKIP
    {b'IQIYI_VID_VAL_0000001': [[b'1', [...], 0.99, 57.2, array([...], dtype=float16)]]}
    """
    with open_regular(path, "pickle") as raw:
        size = os.fstat(raw.fileno()).st_size
        fh = _MeteredReader(raw, size)
        gc_was_on = gc.isenabled()
        try:
            # millions of new containers would trigger useless cyclic-GC passes
            gc.disable()
            return _plain(_SafeUnpickler(fh, encoding="bytes").load(), size)
        except _Refused as exc:
            raise DataError(f"{path}: refused to load {str(exc)[:120]!r}: feature pickles may "
                            f"only hold lists, dicts, strings, numbers and numpy arrays") from None
        except _TooBig as exc:
            raise DataError(f"{path}: refused: {exc}") from None
        except (RecursionError, MemoryError):
            raise DataError(f"{path}: refused: builds more than its size allows "
                            f"(nested too deeply or too large)") from None
        except Exception as exc:  # noqa: BLE001 - any failure of a corrupt stream
            if fh.refused is not None:
                raise DataError(f"{path}: refused: {fh.refused}") from None
            what = "empty file" if size == 0 else \
                f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}"
            raise DataError(f"{path}: not a valid pickle ({what})") from None
        finally:
            if gc_was_on:
                gc.enable()


#: Memory the unpickler may add per byte read, and a fixed allowance. Real feature
#: pickles grow ~1.4 bytes per byte while loading (docs/RELIABILITY.md).
_GROWTH_PER_BYTE = 8
_GROWTH_SLACK = 512 << 20


def _resident_bytes() -> int | None:
    try:
        with open("/proc/self/statm", "rb") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


class _MeteredReader:
    """The file as the C unpickler reads it (it prefetches chunks through ``peek`` /
    ``read``), checking at each chunk that the process has not grown by more than
    ``8 x bytes read + 512 MiB``: a small stream of tiny opcodes that builds huge
    nested structures is stopped while it loads, not after. Reads never ask for more
    than the file still holds (a forged length cannot make the reader allocate it)."""

    def __init__(self, fh, size: int) -> None:
        self._fh = fh
        self._left = size
        self._read = 0
        self._start = _resident_bytes()
        self._next_check = 0
        #: the refusal, kept: the C unpickler may swallow an exception raised by a
        #: read (it then sees the end of the file, which stops it just as well)
        self.refused: _TooBig | None = None

    def _account(self, n: int) -> None:
        self._read += n
        self._left -= n
        if self._start is None or self._read < self._next_check:
            return
        self._next_check = self._read + (1 << 20)
        now = _resident_bytes()
        if now is not None and now - self._start > _GROWTH_PER_BYTE * self._read + _GROWTH_SLACK:
            self.refused = _TooBig(f"it builds {(now - self._start) >> 20} MiB of objects from "
                                   f"its first {self._read >> 20} MiB")
            raise self.refused

    def read(self, n: int = -1) -> bytes:
        if self.refused is not None:
            return b""
        n = self._left if n is None or n < 0 else min(n, max(self._left, 0))
        data = self._fh.read(n)
        self._account(len(data))
        return data

    def readinto(self, buf) -> int:
        if self.refused is not None:
            return 0
        view = memoryview(buf).cast("B")
        n = self._fh.readinto(view[:max(self._left, 0)])
        self._account(n or 0)
        return n

    def readline(self, limit: int = -1) -> bytes:
        if self.refused is not None:
            return b""
        limit = self._left if limit is None or limit < 0 else min(limit, max(self._left, 0))
        data = self._fh.readline(limit)
        self._account(len(data))
        return data

    def peek(self, n: int = 0) -> bytes:
        return b"" if self.refused is not None else self._fh.peek(n)


def open_regular(path: str | os.PathLike, what: str, mode: str = "rb"):
    """Open ``path`` for reading, refusing anything but a regular file.

    The file is opened non-blocking and checked with ``fstat`` on the open
    descriptor (no window between the check and the read): a named pipe would
    block forever, ``/dev/zero`` or ``/dev/urandom`` never end, a directory is no file.

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    DataError
        ``path`` is a directory, a pipe, a device, a socket.

    Examples
    --------
    >>> open_regular("/dev/zero", "pickle")
    Traceback (most recent call last):
    core.errors.DataError: /dev/zero: is a character device, expected a regular pickle file
    """
    require_file(path, what)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except IsADirectoryError:
        raise DataError(f"{path}: is a directory, expected a {what} file") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise DataError(f"{path}: is {_kind(st.st_mode)}, expected a regular {what} file")
        os.set_blocking(fd, True)
        return os.fdopen(fd, mode, buffering=1 << 20)
    except BaseException:
        os.close(fd)
        raise


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a named pipe"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def require_file(path: str | os.PathLike, what: str) -> None:
    """Raise unless ``path`` is an existing regular file (``what`` names it in the error).

    Directories, named pipes, devices and sockets are refused without opening them.

    Examples
    --------
    >>> require_file("/", "pickle")
    Traceback (most recent call last):
    core.errors.DataError: /: is a directory, expected a pickle file
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise FileNotFoundError(2, "No such file or directory", str(path)) from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read the {what} file ({exc.strerror or exc})") from None
    except ValueError:  # e.g. an embedded NUL byte
        raise DataError(f"{str(path)[:200]!r}: not a usable {what} file name") from None
    if stat.S_ISDIR(st.st_mode):
        raise DataError(f"{path}: is a directory, expected a {what} file")
    if not stat.S_ISREG(st.st_mode):
        raise DataError(f"{path}: is {_kind(st.st_mode)}, expected a regular {what} file")


# --- for torch checkpoints (core.runs.run.Run.load_fold) ---------------------------------

def torch_safe_globals() -> list:
    """numpy types a fold checkpoint may hold besides tensors (``torch.load(weights_only=True)``).

    ``numpy.ndarray`` and numpy's ``_reconstruct`` / ``scalar`` resolve to the guarded
    stand-ins of this module: the real ``ndarray`` would be callable as
    ``ndarray(shape, dtype('O'), raw bytes)``, an object array over file bytes.
    """
    allowed: list = [(_CheckedArray, "numpy.ndarray"), np.dtype]
    for mod_name in ("numpy._core.multiarray", "numpy.core.multiarray"):
        allowed += [(_safe_reconstruct, f"{mod_name}._reconstruct"),
                    (_safe_scalar, f"{mod_name}.scalar")]
    allowed += [getattr(np.dtypes, n) for n in getattr(np.dtypes, "__all__", ())
                if n != "ObjectDType"]
    return allowed


class PickleTooBig(pickle.UnpicklingError):
    """A loaded structure whose walk would exceed its budget (see :func:`plain_arrays`)."""


def plain_arrays(obj: object, size: int | None = None) -> object:
    """``obj`` with every guarded stand-in array (nested in lists/dicts/tuples) a plain ndarray.

    ``size`` (the file's bytes) bounds the walk as for a features pickle; a structure
    past the budget raises :class:`PickleTooBig`.
    """
    try:
        return _plain(obj, size)
    except _TooBig as exc:
        raise PickleTooBig(str(exc)) from None


__all__ = ["MAX_DEPTH", "PickleTooBig", "load_pickle_safe", "open_regular", "plain_arrays", "require_file",
           "torch_safe_globals"]
