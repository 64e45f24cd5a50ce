"""Whether a process is alive on this host, robust to zombies and pid reuse (Linux ``/proc``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def process_start_ticks(pid: int) -> int | None:
    """Start time of process ``pid`` in clock ticks since boot (Linux), to detect pid reuse.

    None where it cannot be read (no such process, no ``/proc``).

    Examples
    --------
    >>> isinstance(process_start_ticks(os.getpid()), int)
    True
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 2 (comm) may hold spaces and parentheses: split after its last ')'.
    fields = stat[stat.rfind(")") + 2:].split()
    try:
        return int(fields[19])  # field 22 overall
    except (IndexError, ValueError):
        return None


def _process_is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    fields = stat[stat.rfind(")") + 2:].split()
    return bool(fields) and fields[0] in ("Z", "X")


def pid_alive(pid: Any, start_ticks: Any = None) -> bool:
    """Whether process ``pid`` runs on this host (and is the same process, if known).

    Examples
    --------
    >>> pid_alive(os.getpid())
    True
    """
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by somebody else
    except OSError:
        return False
    if _process_is_zombie(pid):
        return False
    if isinstance(start_ticks, int):
        now_ticks = process_start_ticks(pid)
        if now_ticks is not None and now_ticks != start_ticks:
            return False  # the pid was reused by another process
    return True


__all__ = ["pid_alive", "process_start_ticks"]
