"""Atomic file writes: write to a temporary file beside the target, fsync, rename.

A reader never sees a half-written file, and a crash mid-write leaves the old
file (if any) untouched. :func:`create_exclusive` is the same for a file that must
not exist yet (hard link instead of rename: of two writers, one wins).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
from pathlib import Path
from typing import IO, Iterator


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb", *, durable: bool = True,
                **kwargs) -> Iterator[IO]:
    """Open a temporary file for writing that replaces ``path`` on clean exit.

    ``durable=False`` skips the fsyncs: a killed process still leaves the old file or
    the new one, but after a power loss the file may read empty. Only for files whose
    loss is harmless and which are rewritten often (a run's mid-fold state: about
    10 ms an epoch saved).

    Examples
    --------
    >>> with atomic_open("/tmp/x.txt", "w") as fh:  # doctest: +SKIP
    ...     fh.write("hello")
    """
    if "r" in mode or "a" in mode:
        raise ValueError(f"atomic_open is for writing only, got mode {mode!r}")
    path = Path(path)
    _refuse_special(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp creates 0600; give the file the mode a plain open() would.
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, mode, **kwargs) as fh:
            yield fh
            fh.flush()
            if durable:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
        if durable:
            _fsync_dir(path.parent)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and (exc.filename is None or exc.filename == tmp):
            # a failed write (a full disk) names the file meant, not our temporary
            raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from None
        raise


def _refuse_special(path: Path) -> None:
    # The rename would replace a device or a pipe by a plain file (as root, --out
    # /dev/null would destroy /dev/null): only regular files are ever replaced.
    import stat

    try:
        mode = os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(21, "Is a directory", str(path))
    if not stat.S_ISREG(mode):
        from core.errors import DataError

        raise DataError(f"{path}: is not a regular file (a device, pipe or socket); "
                        f"refusing to replace it")


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_open(path, "wb") as fh:
        fh.write(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_open(path, "w", encoding="utf-8") as fh:
        fh.write(text)


def create_exclusive(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically, failing with FileExistsError if it exists.

    The claim of a directory by one writer: of two processes creating the same file,
    exactly one succeeds, and the file it leaves is whole.

    Examples
    --------
    >>> create_exclusive("/tmp/claim.json", "{}")  # doctest: +SKIP
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.link(tmp, path)  # atomic and exclusive: fails if path exists
    except OSError as exc:
        if exc.filename is None or exc.filename == str(tmp):
            # a failed write (a full disk) names the file meant, not our temporary
            raise type(exc)(exc.errno, exc.strerror or str(exc), str(path)) from None
        raise
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def _umask() -> int:
    # Linux shows the umask in /proc without changing it; elsewhere fall back to the
    # set-and-restore idiom (a brief window in which another thread's files get 0).
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_dir(directory: Path) -> None:
    # Make the rename itself durable; not supported everywhere, so best effort.
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
