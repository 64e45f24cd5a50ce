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


def _plain(obj: object) -> object:
    """Replace every _CheckedArray in nested lists/dicts/tuples by a plain ndarray view."""
    kind = type(obj)
    if kind is _CheckedArray:
        return obj.view(np.ndarray)
    if kind is list:
        for i, x in enumerate(obj):
            if type(x) in _CONTAINERS:
                obj[i] = _plain(x)
    elif kind is dict:
        for k, x in obj.items():
            if type(x) in _CONTAINERS:
                obj[k] = _plain(x)
    elif kind is tuple:
        return tuple(_plain(x) if type(x) in _CONTAINERS else x for x in obj)
    return obj


_CONTAINERS = frozenset({list, dict, tuple, _CheckedArray})


def load_pickle_safe(path: str | os.PathLike) -> object:
    """Unpickle ``path`` allowing only containers, scalars and numpy arrays.

    Python 2 pickles load too (``encoding='bytes'``: py2 ``str`` becomes ``bytes``).
    Admitted globals: ``numpy.ndarray``, ``numpy.dtype``, ``numpy[._]core.multiarray.
    _reconstruct`` / ``.scalar``, ``numpy[._]core.numeric._frombuffer`` (protocol 5)
    and ``_codecs.encode`` (latin-1/utf-8 only: how protocol 2 stores py3 bytes).
    Arrays and scalars may only have plain number or string dtypes: a pickled dtype
    can carry flags or fields that make numpy read raw bytes as object pointers.

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    DataError
        A directory, an empty/truncated/corrupt file, or a pickle that asks for
        anything else (``os.system``, ``builtins.eval``, arbitrary classes ...).

    Examples
    --------
    >>> load_pickle_safe("face_val.pickle")  # doctest: +SKIP
    {b'IQIYI_VID_VAL_0000001': [[b'1', [...], 0.99, 57.2, array([...], dtype=float16)]]}
    """
    require_file(path, "pickle")
    gc_was_on = gc.isenabled()
    with open(path, "rb") as fh:
        try:
            # millions of new containers would trigger useless cyclic-GC passes
            gc.disable()
            return _plain(_SafeUnpickler(fh, encoding="bytes").load())
        except _Refused as exc:
            raise DataError(f"{path}: refused to load {str(exc)!r}: feature pickles may "
                            f"only hold lists, dicts, strings, numbers and numpy arrays") from None
        except RecursionError:
            raise DataError(f"{path}: not a feature pickle: nested too deeply") from None
        except Exception as exc:  # noqa: BLE001 - any failure of a corrupt stream
            what = "empty file" if os.path.getsize(path) == 0 else \
                f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}"
            raise DataError(f"{path}: not a valid pickle ({what})") from None
        finally:
            if gc_was_on:
                gc.enable()


def require_file(path: str | os.PathLike, what: str) -> None:
    """Raise unless ``path`` is an existing non-directory (``what`` names it in the error).

    Examples
    --------
    >>> require_file("/", "pickle")
    Traceback (most recent call last):
    core.errors.DataError: /: is a directory, expected a pickle file
    """
    if os.path.isdir(path):
        raise DataError(f"{path}: is a directory, expected a {what} file")
    if not os.path.exists(path):
        raise FileNotFoundError(2, "No such file or directory", str(path))


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


def plain_arrays(obj: object) -> object:
    """``obj`` with every guarded stand-in array (nested in lists/dicts/tuples) a plain ndarray."""
    return _plain(obj)


__all__ = ["load_pickle_safe", "plain_arrays", "require_file", "torch_safe_globals"]
