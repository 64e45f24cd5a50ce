"""Where vidid keeps things on disk: the one rule for the cache and the run store.

* cache: ``$VIDID_CACHE``, else ``~/.cache/vidid`` (feature caches, projections, demo data);
* runs: ``$VIDID_RUNS``, else ``<cache>/runs``.

The CLI, the launcher and the dashboard all ask here, so a run started from any of them
lands where the others look.
"""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "VIDID_CACHE"
RUNS_ENV = "VIDID_RUNS"


def cache_root() -> Path:
    """``$VIDID_CACHE`` or ``~/.cache/vidid``.

    >>> import os; os.environ["VIDID_CACHE"] = "/tmp/c"; str(cache_root())
    '/tmp/c'
    """
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "vidid"


def runs_root() -> Path:
    """``$VIDID_RUNS`` or ``<cache_root()>/runs``.

    >>> import os; os.environ.pop("VIDID_RUNS", None) and None; os.environ["VIDID_CACHE"] = "/tmp/c"
    >>> str(runs_root())
    '/tmp/c/runs'
    """
    env = os.environ.get(RUNS_ENV)
    return Path(env).expanduser() if env else cache_root() / "runs"


__all__ = ["CACHE_ENV", "RUNS_ENV", "cache_root", "runs_root"]
