"""Write an iQIYI-VID feature pickle incrementally, one batch of videos at a time.

The real files are one protocol-2 pickle of a dict ``video -> list of frames``. Writing
such a dict with ``pickle.dump`` needs the whole dict in memory; for the ``large``
synthetic preset (several GB) that is not an option. A pickled dict is, opcode by
opcode, ``PROTO 2``, ``EMPTY_DICT``, then groups of ``MARK key value ... SETITEMS``
and finally ``STOP`` — so the same byte stream can be produced batch by batch:
we write the header and ``STOP`` ourselves and let a fresh ``pickle.Pickler`` pickle
each batch as a dict, keeping only its ``MARK ... SETITEMS`` groups (which apply to
the dict on top of the unpickler's stack, i.e. ours).

Each batch starts a fresh memo. Memo slots of an earlier batch may be overwritten
by a later one, which is valid: a batch only ever ``GET``s what it ``PUT`` itself.
The result loads with a plain ``pickle.load(fh, encoding="bytes")``.
"""

from __future__ import annotations

import io
import os
import pickle
from typing import Iterable

from core.atomic import atomic_open
from core.io.names import canonical_name, official_name

_PROTOCOL = 2
# A fresh protocol-2 Pickler dumping a dict writes PROTO 2, EMPTY_DICT, BINPUT 0.
_BATCH_HEADER = pickle.PROTO + bytes([_PROTOCOL]) + pickle.EMPTY_DICT + pickle.BINPUT + b"\x00"


def write_features_stream(
    path: str | os.PathLike,
    items: Iterable[tuple[str, list]],
    *,
    bytes_keys: bool = True,
    suffix: bool = False,
    batch_size: int = 256,
) -> int:
    """Write ``(video_name, frames)`` pairs as one pickled dict, streaming, atomically.

    Parameters
    ----------
    path : str or PathLike
        Output file; replaced atomically (temp file + fsync + rename).
    items : iterable of (str, list)
        Video name and its frame list ``[[frame_str, bbox, det, quality, feat], ...]``;
        consumed lazily, so a generator keeps memory bounded.
    bytes_keys : bool
        Write keys as ``bytes`` (as the real Python 2 files load with
        ``encoding='bytes'``); ``False`` writes ``str`` keys.
    suffix : bool
        Keys end in ``.mp4`` (2018 style) when True, bare (2019 style) when False.
    batch_size : int
        Videos pickled per ``MARK ... SETITEMS`` group batch.

    Returns
    -------
    int
        Number of videos written.

    Raises
    ------
    TypeError
        A frame list that is not a list.
    ValueError
        The same video name twice (a dict cannot hold it; the file would silently
        keep only the last one).

    Examples
    --------
    >>> import numpy as np, pickle, tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "f.pickle")
    >>> frame = ["1", [0.0, 0.0, 9.0, 9.0], 0.99, 80.0, np.zeros(512, np.float16)]
    >>> write_features_stream(p, [("V1", [frame]), ("V2", [])])
    2
    >>> sorted(pickle.load(open(p, "rb"), encoding="bytes"))
    [b'V1', b'V2']
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    seen: set[str] = set()
    n = 0
    with atomic_open(path, "wb") as fh:
        fh.write(pickle.PROTO + bytes([_PROTOCOL]) + pickle.EMPTY_DICT)
        batch: dict = {}
        for name, frames in items:
            canon = canonical_name(name)
            if canon in seen:
                raise ValueError(f"{os.fspath(path)}: video {canon!r} written twice")
            seen.add(canon)
            if not isinstance(frames, list):
                raise TypeError(
                    f"{os.fspath(path)}: video {canon!r}: frames must be a list, "
                    f"got {type(frames).__name__}"
                )
            key: str | bytes = official_name(canon) if suffix else canon
            if bytes_keys:
                key = key.encode("utf-8")
            batch[key] = frames
            n += 1
            if len(batch) >= batch_size:
                fh.write(_pickle_batch(batch))
                batch = {}
        if batch:
            fh.write(_pickle_batch(batch))
        fh.write(pickle.STOP)
    return n


def _pickle_batch(batch: dict) -> memoryview:
    """The ``MARK key value ... SETITEMS`` groups of ``batch`` pickled as a dict."""
    buf = io.BytesIO()
    pickle.Pickler(buf, protocol=_PROTOCOL).dump(batch)
    data = buf.getbuffer()  # no copy: a batch can be tens of MB
    # Guard the byte layout we rely on; a Python that pickles differently fails loudly.
    head, tail = bytes(data[:len(_BATCH_HEADER)]), bytes(data[-1:])
    if head != _BATCH_HEADER or tail != pickle.STOP:
        raise RuntimeError(f"unexpected pickle layout for a dict: {head!r}...{tail!r}")
    return data[len(_BATCH_HEADER):-1]
