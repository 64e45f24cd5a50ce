"""The dashboard's one caching layer: which dataset is active, and cached loads of it.

Pages never cache anything themselves; they call these functions with plain values
(widget values are passed in as arguments, never read inside a cached function).
Heavy objects (loaded splits, the neighbour graph) live in ``st.cache_resource`` and are
shared read-only by every session: their arrays are frozen (``writeable=False``) so a
page cannot mutate what another tab sees. Small derived tables live in ``st.cache_data``.

Cache keys carry a fingerprint of the files (size + mtime), so editing a file on disk
reloads it. Everything that is not Streamlit-specific (finding the splits of a folder,
reading ``truth.tsv``) is a plain function and is unit-tested without a running app.

Contract (docs/ARCHITECTURE.md): ``DatasetSpec``, ``SplitFiles``, ``active_dataset``,
``load_split``, ``load_dataset``, ``runs_root``; session keys ``dataset`` and
``noise_labels``.

Layout: this module holds the dataset selection, loading and its memory checks; where
a dataset comes from (the demo, uploads) is :mod:`dashboard.cache.sources`, the spec
itself :mod:`dashboard.dataset_spec` (plain Python), the page-specific caches
:mod:`dashboard.cache.stats` (Data page), :mod:`dashboard.cache.noise` (Noise
clusters), :mod:`dashboard.cache.map` (Map), and the run store's reads
:mod:`dashboard.cache.runs`. Pages import the module they need.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

import numpy as np
import pandas as pd
import streamlit as st

from core.errors import DataError, short_message
from core.paths import cache_root, runs_root  # the one rule of where things live
from dashboard.cache.sources import demo_spec
from dashboard.dataset_spec import (
    SPLIT_ORDER,
    DatasetSpec,
    SplitFiles,
    detect_splits,
    files_fingerprint,
)

if TYPE_CHECKING:  # pragma: no cover - typing only
    from core.features.dataset import LabelledVideos

# Session-state keys shared across pages (page-only keys are prefixed by their page).
KEY_DATASET = "dataset"
KEY_NOISE_LABELS = "noise_labels"


# --------------------------------------------------------------------------- the active dataset

def active_dataset() -> DatasetSpec:
    """The dataset every page works on: ``st.session_state["dataset"]``, default the demo."""
    spec = st.session_state.get(KEY_DATASET)
    if spec is None:
        spec = demo_spec()
        st.session_state.setdefault(KEY_DATASET, spec)
    return spec


def activate(spec: DatasetSpec) -> "LabelledVideos":
    """Load ``spec`` fully and make it the active dataset.

    Raises whatever loading raises (``DataError``/``TypeError``/``OSError``) *before*
    touching the session, so on bad input the previous dataset stays active.
    """
    lv = load_dataset(spec)
    if st.session_state.get(KEY_DATASET) != spec:
        st.session_state[KEY_DATASET] = spec
        # A clustering chosen on another dataset means nothing here.
        st.session_state.pop(KEY_NOISE_LABELS, None)
    return lv


#: What a page catches around user-driven loads: shown as one line, never a traceback.
USER_ERRORS: tuple[type[BaseException], ...] = (DataError, ValueError, TypeError, OSError)


def friendly_error(exc: BaseException) -> str:
    """The one-line message shown for a user mistake.

    >>> friendly_error(FileNotFoundError(2, "No such file or directory", "/x/face_val.pickle"))
    '/x/face_val.pickle: no such file'
    """
    if isinstance(exc, FileNotFoundError) and exc.filename:
        text = f"{exc.filename}: no such file"
    elif isinstance(exc, PermissionError) and exc.filename:
        text = f"{exc.filename}: permission denied"
    else:
        text = " ".join(str(exc).split()) or type(exc).__name__
    # an upload is named as the user named it, never by the folder it was saved in
    uploads = re.escape(str(cache_root() / "uploads")) + r"/[0-9a-f]{16}/"
    return short_message(re.sub(uploads, "", text))


# --------------------------------------------------------------------------- loading


def _freeze_labelled(lv: "LabelledVideos") -> "LabelledVideos":
    for name in ("X", "ids", "names", "split"):
        a = getattr(lv, name, None)
        if isinstance(a, np.ndarray):
            try:
                a.flags.writeable = False
            except ValueError:  # a view of a read-only buffer is already read-only
                pass
    return lv


def _open_split(sf: SplitFiles, weighting: str, min_quality: float | None,
                min_det: float | None) -> "LabelledVideos":
    from core.features.dataset import open_split

    return open_split(sf.feats, sf.gt, split=sf.name, weighting=weighting,
                      min_quality=min_quality, min_det=min_det)


def feature_cached(path: str | os.PathLike) -> bool:
    """Whether the columnar cache of a feature pickle exists (reopening it is cheap).

    >>> feature_cached("/nonexistent/face_val.pickle")
    False
    """
    from core.io.formats import feature_cache_file

    try:
        return feature_cache_file(path, None).is_file()
    except OSError:
        return False


def estimate_load_memory(paths: Iterable[str | os.PathLike]) -> int:
    """Peak bytes of loading feature pickles as one dataset, as :func:`load_dataset` does.

    The files are opened one after another, in order, then concatenated: the peak is the
    largest of (a) opening file ``k`` while files ``0..k-1`` are held (their
    ``core.resources.estimate_dataset_bytes`` share, conservative) — a first read
    (``core.resources.estimate_load_bytes``) when the file has no columnar cache yet —
    and (b) holding them all (``estimate_dataset_bytes``).

    >>> import tempfile, pathlib
    >>> from core.resources import estimate_load_bytes
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "face_val.pickle"
    >>> _ = f.write_bytes(b"x" * 2**20)
    >>> estimate_load_memory([f]) == estimate_load_bytes(f)   # never read: a first read
    True
    """
    from core.resources import (
        DATASET_BYTES_PER_PICKLE_BYTE,
        LOAD_OVERHEAD_BYTES,
        estimate_dataset_bytes,
        estimate_load_bytes,
    )

    paths = list(paths)
    sizes = [os.stat(p).st_size for p in paths]
    peak, held = estimate_dataset_bytes(sizes), 0
    for path, size in zip(paths, sizes):
        opening = (estimate_dataset_bytes([size]) if feature_cached(path)
                   else estimate_load_bytes(size)) - LOAD_OVERHEAD_BYTES
        peak = max(peak, int(DATASET_BYTES_PER_PICKLE_BYTE * held) + opening
                   + LOAD_OVERHEAD_BYTES)
        held += size
    return peak


def check_load_fits(spec: DatasetSpec, split_names: Iterable[str] | None = None) -> int:
    """Refuse (``DataError``, with a message) loading splits that would not fit in memory.

    Called before a first read (a cache miss of :func:`load_split` / :func:`load_dataset`);
    ``split_names`` default: every split of ``spec``. Returns the available bytes.
    """
    from core.resources import check_fits

    wanted = list(spec.split_names if split_names is None else split_names)
    files = [sf.feats for sf in spec.splits if sf.name in wanted]
    names = ", ".join(Path(f).name for f in files)
    return check_fits(estimate_load_memory(files), f"loading {names} of {spec.name}")


@st.cache_resource(max_entries=12, show_spinner="Loading and pooling the split…")
def _load_split_cached(spec: DatasetSpec, split_name: str, weighting: str,
                       min_quality: float | None, min_det: float | None,
                       fingerprint: tuple) -> "LabelledVideos":
    sf = spec.split(split_name)
    if sf is None:
        raise DataError(f"{spec.root}: dataset has no split {split_name!r} "
                        f"(splits: {', '.join(spec.split_names)})")
    check_load_fits(spec, [split_name])
    return _freeze_labelled(_open_split(sf, weighting, min_quality, min_det))


def load_split(spec: DatasetSpec, split_name: str, weighting: str = "quality", *,
               min_quality: float | None = None, min_det: float | None = None) -> "LabelledVideos":
    """One split read, validated and pooled (shared, read-only, cached per file state)."""
    return _load_split_cached(spec, split_name, weighting, min_quality, min_det,
                              files_fingerprint(spec))


@st.cache_resource(max_entries=4, show_spinner="Loading the dataset…")
def _load_dataset_cached(spec: DatasetSpec, weighting: str, min_quality: float | None,
                         min_det: float | None, fingerprint: tuple) -> "LabelledVideos":
    from core.features.dataset import concat

    check_load_fits(spec)  # before any split is read: refuse the whole load at once
    parts = [load_split(spec, s.name, weighting, min_quality=min_quality, min_det=min_det)
             for s in spec.splits]
    lv = parts[0] if len(parts) == 1 else concat(parts)
    return _freeze_labelled(lv)


def load_dataset(spec: DatasetSpec, weighting: str = "quality", *,
                 min_quality: float | None = None,
                 min_det: float | None = None) -> "LabelledVideos":
    """All splits of ``spec`` concatenated (train, val, test order)."""
    return _load_dataset_cached(spec, weighting, min_quality, min_det, files_fingerprint(spec))


@st.cache_data(max_entries=8, show_spinner=False)
def _truth_cached(path: str, fingerprint: tuple) -> pd.DataFrame:
    return read_truth(path)


def read_truth(path: str | os.PathLike) -> pd.DataFrame:
    """Read ``truth.tsv`` (``video split person kind``), names canonical, indexed by video.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "truth.tsv"
    >>> _ = p.write_text("video\\tsplit\\tperson\\tkind\\nA.mp4\\ttrain\\tid3\\tidentity\\n")
    >>> str(read_truth(p).loc["A", "person"])
    'id3'
    """
    from core.io.names import canonical_name

    try:
        df = pd.read_csv(path, sep="\t", dtype={"video": str})
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read truth table: {exc}") from None
    missing = {"video", "person"} - set(df.columns)
    if missing:
        raise DataError(f"{path}: truth table lacks column(s) {', '.join(sorted(missing))}")
    df["video"] = [canonical_name(v) for v in df["video"]]
    return df.set_index("video")


def load_truth(spec: DatasetSpec) -> pd.DataFrame | None:
    """The true person of every video (synthetic data only), or None."""
    if not spec.truth:
        return None
    return _truth_cached(spec.truth, files_fingerprint(spec))


def labelled_ids(lv: "LabelledVideos", spec: DatasetSpec) -> np.ndarray:
    """Bool mask of the videos whose split has ground truth (their ``ids`` mean something)."""
    return np.isin(np.asarray(lv.split), spec.labelled_splits)


def noise_rows(spec: DatasetSpec) -> np.ndarray:
    """Rows (into ``load_dataset(spec)``) of the distractors the noise clustering works on.

    The training distractors: videos of the train/val splits that their ground truth
    does not name (test distractors stay unseen, as in training). If those splits hold
    none, the distractors of any labelled split; with no ground truth at all, every video.
    """
    return _noise_rows_cached(spec, files_fingerprint(spec))


@st.cache_data(max_entries=8, show_spinner=False)
def _noise_rows_cached(spec: DatasetSpec, fingerprint: tuple) -> np.ndarray:
    lv = load_dataset(spec)
    split = np.asarray(lv.split)
    distractor = np.asarray(lv.ids) == 0
    if not spec.labelled_splits:
        return np.arange(len(lv.names))
    train_val = [s for s in spec.labelled_splits if s in ("train", "val")]
    rows = np.flatnonzero(np.isin(split, train_val) & distractor)
    if rows.size == 0:
        rows = np.flatnonzero(np.isin(split, spec.labelled_splits) & distractor)
    return rows


REVIEW_PAGE = "app_pages/video_review.py"


def review_page() -> str | None:
    """The Video review page's path (relative to the app script) if it exists, else None.

    Pages link to it with ``st.page_link(review_page(), query_params={"video": NAME})``.
    """
    return REVIEW_PAGE if (Path(__file__).parents[1] / REVIEW_PAGE).is_file() else None


__all__ = ["DatasetSpec", "KEY_DATASET", "KEY_NOISE_LABELS", "REVIEW_PAGE", "SPLIT_ORDER",
           "SplitFiles", "USER_ERRORS", "activate", "active_dataset", "cache_root",
           "check_load_fits", "detect_splits", "estimate_load_memory", "feature_cached",
           "files_fingerprint", "friendly_error", "labelled_ids", "load_dataset", "load_split",
           "load_truth", "noise_rows", "read_truth", "review_page", "runs_root"]
