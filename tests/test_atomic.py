"""Atomic writes: all or nothing, and the usual file mode."""

from __future__ import annotations

import os

import pytest

from core.atomic import atomic_open, atomic_write_text


def test_replaces_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    atomic_write_text(target, "new")
    assert target.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_failure_keeps_old_content(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_open(target, "w") as fh:
            fh.write("half")
            raise RuntimeError("crash mid-write")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_mode_follows_umask(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "f.txt", "x")
    finally:
        os.umask(old)
    assert (tmp_path / "f.txt").stat().st_mode & 0o777 == 0o644


def test_refuses_read_mode(tmp_path):
    with pytest.raises(ValueError, match="writing only"):
        with atomic_open(tmp_path / "f", "r"):
            pass


def test_not_durable_skips_fsync_but_still_replaces_atomically(tmp_path, monkeypatch):
    synced: list[int] = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real(fd)))
    target = tmp_path / "state.pt"
    with atomic_open(target, "wb", durable=False) as fh:
        fh.write(b"new")
    assert target.read_bytes() == b"new" and synced == []
    assert [p.name for p in tmp_path.iterdir()] == ["state.pt"]
    with atomic_open(target, "wb") as fh:
        fh.write(b"newer")
    assert target.read_bytes() == b"newer" and len(synced) == 2  # the file, then its folder
