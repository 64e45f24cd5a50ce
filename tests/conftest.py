"""Shared fixtures: the tiny synthetic dataset, generated once per test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


# Keep the feature caches of a test session inside its temp dir, never in ~/.cache.
@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory):
    cache = tmp_path_factory.mktemp("vidid_cache")
    old = os.environ.get("VIDID_CACHE")
    os.environ["VIDID_CACHE"] = str(cache)
    yield cache
    if old is None:
        os.environ.pop("VIDID_CACHE", None)
    else:
        os.environ["VIDID_CACHE"] = old


@pytest.fixture(scope="session")
def tiny_demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Directory holding the ``tiny`` demo preset (seed 0) in the real file formats.

    Treat it as read-only: it is shared by every test of the session.
    """
    from core.synth import generate

    out = tmp_path_factory.mktemp("tiny_demo")
    generate(out, preset="tiny", seed=0)
    return out


@pytest.fixture
def app_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The dashboard on the tiny demo preset, with its runs in a temp dir.

    The app generates the demo into ``$VIDID_CACHE`` (the session's temp dir) on first use.
    """
    monkeypatch.setenv("VIDID_DEMO_PRESET", "tiny")
    monkeypatch.setenv("VIDID_RUNS", str(tmp_path / "runs"))
    return tmp_path
