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


def estimate_demo_bytes(preset: str) -> int:
    """Rough size on disk of a demo preset: its feature pickles plus their columnar caches.

    >>> 2e8 < estimate_demo_bytes("demo") < 1e9
    True
    """
    from core.synth import PRESETS

    p = PRESETS[preset]
    keep = max(1e-3, 1.0 - p.distractor_share)
    videos = p.n_identities * (p.train_per_id + (p.val_per_id + p.test_per_id) / keep)
    return int(videos * p.mean_frames * 512 * 4 * 1.2)


class DemoJob:
    """One background generation of a demo preset, shared by every session and page.

    Started once (:func:`start_demo`); the page that started it can go away — the
    thread goes on, and any page shows its progress (:func:`ensure_demo`).
    """

    def __init__(self, preset: str) -> None:
        self.preset = preset
        self.fraction = 0.0
        self.message = "starting"
        self.error: BaseException | None = None
        self.path: Path | None = None
        self.thread = threading.Thread(target=self._run, name=f"vidid-demo-{preset}", daemon=True)

    def _run(self) -> None:
        def progress(fraction: float, message: str = "") -> None:
            self.fraction, self.message = min(max(float(fraction), 0.0), 1.0), message

        try:
            self.path = generate_demo(self.preset, progress=progress)
        except BaseException as exc:  # shown by the page that waits
            self.error = exc

    @property
    def running(self) -> bool:
        return self.thread.is_alive()


_JOBS: dict[str, DemoJob] = {}
_JOBS_LOCK = threading.Lock()


def start_demo(preset: str | None = None) -> DemoJob | None:
    """Start generating ``preset`` in the background (once); None if it is already there."""
    preset = preset or demo_preset()
    target = demo_dir(preset)
    with _JOBS_LOCK:
        if target.is_dir():
            return None
        job = _JOBS.get(str(target))  # keyed by where it writes: the cache may move
        if job is None or not job.running:
            job = _JOBS[str(target)] = DemoJob(preset)
            job.thread.start()
        return job


def ensure_demo(preset: str | None = None, *, poll: float = 0.25) -> Path:
    """The demo dataset folder; on first use it is generated in the background while the
    page shows the progress (leaving the page does not stop or restart it)."""
    import time

    preset = preset or demo_preset()
    job = start_demo(preset)
    if job is None:
        return demo_dir(preset)
    where = demo_dir(preset).parent
    box = st.empty()
    with box.container():
        bar = st.progress(0.0, text=f"Generating the '{preset}' demo dataset (first launch only)…")
        st.caption(f"First launch: the demo writes about {_human(estimate_demo_bytes(preset))} "
                   f"into `{where}` (set VIDID_CACHE to put it elsewhere; clear it on the Data "
                   f"page under Storage).")
    try:
        while job.running:
            bar.progress(job.fraction, text=f"Generating the '{preset}' demo dataset "
                                            f"(first launch only): {job.message}")
            time.sleep(poll)
    finally:
        box.empty()
    if job.error is not None:
        raise job.error
    return demo_dir(preset)


def _human(n: float) -> str:
    from core.storage import human_bytes

    return human_bytes(n)


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
    safe_names = [_SAFE_NAME.sub("_", Path(name).name).lstrip(".") or "upload" for name, _ in files]
    dupes = sorted({n for n in safe_names if safe_names.count(n) > 1})
    if dupes:
        raise DataError(f"several uploaded files are named {', '.join(dupes)}: keep one of each "
                        f"(remove the others) and load again")
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


def without_folder(message: str, folder: str | os.PathLike) -> str:
    """A message about uploaded files, without the internal upload folder's path.

    >>> without_folder("/c/uploads/ab12/face_val.pickle: not a pickle", "/c/uploads/ab12")
    'face_val.pickle: not a pickle'
    """
    return message.replace(os.fspath(folder) + os.sep, "").replace(os.fspath(folder), "the upload")


__all__ = ["DEFAULT_PRESET", "PRESET_ENV", "DemoJob", "demo_dir", "demo_preset", "demo_spec",
           "ensure_demo", "estimate_demo_bytes", "generate_demo", "save_uploads", "start_demo",
           "without_folder"]
