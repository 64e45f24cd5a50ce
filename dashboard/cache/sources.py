"""Where a dataset comes from: the generated demo data and uploaded files.

The demo is generated once per preset into ``<cache>/demo-<preset>-seed0``
(:func:`generate_demo`, safe for concurrent sessions; :func:`ensure_demo` shows a
progress bar on the page); uploads are written into ``<cache>/uploads/<hash>`` and
opened like any other folder, with the safe loader.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Callable, Iterable

import streamlit as st

from core.errors import DataError
from core.paths import cache_root
from dashboard.dataset_spec import DatasetSpec, detect_splits

ProgressFn = Callable[[float, str], None]

PRESET_ENV = "VIDID_DEMO_PRESET"
DEFAULT_PRESET = "demo"


def demo_preset() -> str:
    """The demo preset: ``$VIDID_DEMO_PRESET`` or ``"demo"``."""
    return os.environ.get(PRESET_ENV) or DEFAULT_PRESET


def demo_dir(preset: str | None = None, seed: int = 0) -> Path:
    return cache_root() / f"demo-{preset or demo_preset()}-seed{seed}"


_DEMO_LOCK = threading.Lock()


def generate_demo(preset: str, seed: int = 0, *, progress: ProgressFn | None = None) -> Path:
    """Generate the demo data once into ``demo_dir(preset)``; safe for concurrent sessions.

    Generation happens in a temporary folder beside the target which is renamed into
    place at the end, so a half-written demo is never picked up (a crash leaves only a
    temporary folder, removed by the next attempt's cleanup).
    """
    from core.synth import generate

    target = demo_dir(preset, seed)
    with _DEMO_LOCK:
        if target.is_dir():
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        try:
            generate(tmp, preset=preset, seed=seed, progress=progress)
            try:
                os.replace(tmp, target)
            except OSError:
                if not target.is_dir():  # another process won the race: keep theirs
                    raise
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return target


def ensure_demo(preset: str | None = None) -> Path:
    """The demo dataset folder, generated on first use with a progress bar on the page."""
    preset = preset or demo_preset()
    target = demo_dir(preset)
    if target.is_dir():
        return target
    bar = st.progress(0.0, text=f"Generating the '{preset}' demo dataset (first launch only)…")

    def progress(fraction: float, message: str = "") -> None:
        bar.progress(min(max(float(fraction), 0.0), 1.0),
                     text=f"Generating the '{preset}' demo dataset: {message}")

    try:
        return generate_demo(preset, progress=progress)
    finally:
        bar.empty()


def demo_spec(preset: str | None = None) -> DatasetSpec:
    """The spec of the (generated on demand) demo dataset."""
    preset = preset or demo_preset()
    spec = detect_splits(ensure_demo(preset), name=f"demo ({preset})")
    return DatasetSpec(spec.name, spec.root, spec.splits, spec.truth, spec.videos_dir, kind="demo")


_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def save_uploads(files: Iterable[tuple[str, bytes]], *, root: Path | None = None) -> Path:
    """Write uploaded files into a fresh folder keyed by their content; return the folder.

    Only the base name of each upload is kept (no path traversal), and nothing is
    unpickled here: the folder is then opened with the safe loader like any other.
    """
    files = list(files)
    if not files:
        raise DataError("no files uploaded")
    h = hashlib.sha256()
    for name, data in sorted(files):
        h.update(name.encode())
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    folder = (root or cache_root() / "uploads") / h.hexdigest()[:16]
    from core.atomic import atomic_write_bytes

    for name, data in files:
        safe = _SAFE_NAME.sub("_", Path(name).name).lstrip(".") or "upload"
        atomic_write_bytes(folder / safe, data)
    return folder


__all__ = ["DEFAULT_PRESET", "PRESET_ENV", "demo_dir", "demo_preset", "demo_spec", "ensure_demo",
           "generate_demo", "save_uploads"]
