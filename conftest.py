"""Doctest collection (``--doctest-modules`` over core/ and dashboard/, see pyproject.toml).

The dashboard's pages and entry point are Streamlit scripts that run on import: they
are tested through AppTest (tests/test_app_*.py), never imported here. Doctests run
with the cache (and so the run store) in a temp dir, never in ~/.cache/vidid.
"""

from __future__ import annotations

import os

import pytest

collect_ignore = ["dashboard/streamlit_app.py", "dashboard/app_pages", "benchmarks", "build"]


@pytest.fixture(autouse=True, scope="session")
def _doctest_dirs(tmp_path_factory: pytest.TempPathFactory):
    old = os.environ.get("VIDID_CACHE")
    os.environ["VIDID_CACHE"] = str(tmp_path_factory.mktemp("doctest_cache"))  # runs: <cache>/runs
    yield
    if old is None:
        os.environ.pop("VIDID_CACHE", None)
    else:
        os.environ["VIDID_CACHE"] = old
