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

    >>> cache_root().name in ("vidid", os.path.basename(os.environ.get(CACHE_ENV, "")))
    True
    """
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "vidid"


def runs_root() -> Path:
    """``$VIDID_RUNS`` or ``<cache_root()>/runs``.

    >>> runs_root() == Path(os.environ[RUNS_ENV]).expanduser() if RUNS_ENV in os.environ else runs_root() == cache_root() / "runs"
    True
    """
    env = os.environ.get(RUNS_ENV)
    return Path(env).expanduser() if env else cache_root() / "runs"


__all__ = ["CACHE_ENV", "RUNS_ENV", "cache_root", "runs_root"]
