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
``ensure_demo``, ``load_split``, ``load_dataset``, ``runs_root``; session keys
``dataset`` and ``noise_labels``.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Sequence

import numpy as np
import pandas as pd
import streamlit as st

from core.errors import DataError

if TYPE_CHECKING:  # pragma: no cover - typing only
    from core.dataset import LabelledVideos

ProgressFn = Callable[[float, str], None]

SPLIT_ORDER = ("train", "val", "test")
PRESET_ENV = "VIDID_DEMO_PRESET"
DEFAULT_PRESET = "demo"
# Session-state keys shared across pages (page-only keys are prefixed by their page).
KEY_DATASET = "dataset"
KEY_NOISE_LABELS = "noise_labels"


# --------------------------------------------------------------------------- the spec


@dataclass(frozen=True)
class SplitFiles:
    """The files of one split: features pickle and (optional) ground truth."""

    name: str
    feats: str
    gt: str | None = None


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset the dashboard can open: a folder and the files of each split.

    Examples
    --------
    >>> train = SplitFiles("train", "/d/face_train.pickle", "/d/train_gt.txt")
    >>> spec = DatasetSpec("x", "/d", (train,))
    >>> spec.split("train").gt, spec.split("test")
    ('/d/train_gt.txt', None)
    """

    name: str
    root: str
    splits: tuple[SplitFiles, ...]
    truth: str | None = None
    videos_dir: str | None = None
    kind: str = field(default="folder", compare=False)

    def split(self, name: str) -> SplitFiles | None:
        """The split called ``name``, or None."""
        for s in self.splits:
            if s.name == name:
                return s
        return None

    @property
    def split_names(self) -> list[str]:
        return [s.name for s in self.splits]

    @property
    def train_pairs(self) -> list[tuple[str, str | None]]:
        """``(feats, gt)`` of the train and val splits (those that exist)."""
        return [(s.feats, s.gt) for s in self.splits if s.name in ("train", "val")]

    @property
    def eval_pair(self) -> tuple[str, str | None] | None:
        """``(feats, gt)`` of the test split, or None."""
        s = self.split("test")
        return None if s is None else (s.feats, s.gt)

    @property
    def labelled_splits(self) -> list[str]:
        """Names of the splits that have a ground-truth file."""
        return [s.name for s in self.splits if s.gt]


# --------------------------------------------------------------------------- folders


_FEATS_RE = re.compile(r"^(?:face_)?(?P<split>train|val|test)(?P<rest>[\w.-]*)\.(?:pickle|pkl)$",
                       re.I)


def _split_of_feats(filename: str) -> str | None:
    m = _FEATS_RE.match(filename)
    return m.group("split").lower() if m else None


def _gt_candidates(split: str, feats_name: str) -> list[str]:
    rest = _FEATS_RE.match(feats_name).group("rest")  # e.g. "_v2"
    names = [f"{split}{rest}_gt.txt", f"{split}_gt{rest}.txt", f"{split}_gt.txt",
             f"{split}{rest}.txt", f"{split}.txt", f"gt_{split}.txt"]
    seen: list[str] = []
    for n in names:
        if n not in seen:
            seen.append(n)
    return seen


def detect_splits(folder: str | os.PathLike, *, name: str | None = None) -> DatasetSpec:
    """Find the iQIYI-VID files of a folder and group them into splits by file name.

    Features are ``face_<split>*.pickle`` (``face_train_v2.pickle``, ``face_val.pickle``,
    ``face_test.pickle`` …); ground truth ``<split>_gt.txt`` (2019) or ``<split>.txt``
    (2018). A split without a ground-truth file is unlabelled (test). ``truth.tsv`` (the
    synthetic data's true persons) and a ``videos/`` folder are picked up when present.

    Raises
    ------
    DataError
        The folder does not exist or holds no feature pickle of a known split.

    Examples
    --------
    >>> detect_splits("/nonexistent")  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    DataError: /nonexistent: no such folder
    """
    root = Path(os.path.expanduser(str(folder))).resolve()
    if not root.is_dir():
        raise DataError(f"{root}: no such folder")
    files = {p.name: p for p in root.iterdir() if p.is_file()}
    found: dict[str, SplitFiles] = {}
    for fname in sorted(files):
        split = _split_of_feats(fname)
        if split is None:
            continue
        if split in found:
            raise DataError(
                f"{root}: two feature files for split {split!r}: "
                f"{Path(found[split].feats).name} and {fname}"
            )
        gt = next((files[c] for c in _gt_candidates(split, fname) if c in files), None)
        found[split] = SplitFiles(split, str(files[fname]), str(gt) if gt else None)
    if not found:
        pickles = [n for n in files if n.endswith((".pickle", ".pkl"))]
        hint = (f" (found {', '.join(sorted(pickles)[:3])}: name them face_train/val/test*.pickle)"
                if pickles else "")
        raise DataError(
            f"{root}: no iQIYI-VID feature files (face_train*.pickle, face_val*.pickle, "
            f"face_test*.pickle){hint}"
        )
    splits = tuple(found[s] for s in SPLIT_ORDER if s in found)
    truth = files.get("truth.tsv")
    videos = root / "videos"
    return DatasetSpec(
        name=name or root.name,
        root=str(root),
        splits=splits,
        truth=str(truth) if truth else None,
        videos_dir=str(videos) if videos.is_dir() else None,
    )


def _fingerprint(spec: DatasetSpec) -> tuple:
    """(path, size, mtime) of every file of the spec: part of every cache key."""
    out = []
    paths = [p for s in spec.splits for p in (s.feats, s.gt) if p]
    if spec.truth:
        paths.append(spec.truth)
    for p in paths:
        try:
            st_ = os.stat(p)
            out.append((p, st_.st_size, st_.st_mtime_ns))
        except OSError:
            out.append((p, -1, -1))
    return tuple(out)


# --------------------------------------------------------------------------- folders on disk


def cache_root() -> Path:
    """``$VIDID_CACHE`` or ``~/.cache/vidid``."""
    env = os.environ.get("VIDID_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "vidid"


def runs_root() -> Path:
    """``$VIDID_RUNS`` or ``<cache>/runs`` (the run store read by the Training/Errors pages)."""
    env = os.environ.get("VIDID_RUNS")
    return Path(env) if env else cache_root() / "runs"


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


#: What a page catches around user-driven loads: shown as one line, never a traceback.
USER_ERRORS: tuple[type[BaseException], ...] = (DataError, ValueError, TypeError, OSError)


def friendly_error(exc: BaseException) -> str:
    """The one-line message shown for a user mistake.

    >>> friendly_error(FileNotFoundError(2, "No such file or directory", "/x/face_val.pickle"))
    '/x/face_val.pickle: no such file'
    """
    if isinstance(exc, FileNotFoundError) and exc.filename:
        return f"{exc.filename}: no such file"
    if isinstance(exc, PermissionError) and exc.filename:
        return f"{exc.filename}: permission denied"
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


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
    from core.dataset import open_split

    return open_split(sf.feats, sf.gt, split=sf.name, weighting=weighting,
                      min_quality=min_quality, min_det=min_det)


@st.cache_resource(max_entries=12, show_spinner="Loading and pooling the split…")
def _load_split_cached(spec: DatasetSpec, split_name: str, weighting: str,
                       min_quality: float | None, min_det: float | None,
                       fingerprint: tuple) -> "LabelledVideos":
    sf = spec.split(split_name)
    if sf is None:
        raise DataError(f"{spec.root}: dataset has no split {split_name!r} "
                        f"(splits: {', '.join(spec.split_names)})")
    return _freeze_labelled(_open_split(sf, weighting, min_quality, min_det))


def load_split(spec: DatasetSpec, split_name: str, weighting: str = "quality", *,
               min_quality: float | None = None, min_det: float | None = None) -> "LabelledVideos":
    """One split read, validated and pooled (shared, read-only, cached per file state)."""
    return _load_split_cached(spec, split_name, weighting, min_quality, min_det,
                              _fingerprint(spec))


@st.cache_resource(max_entries=4, show_spinner="Loading the dataset…")
def _load_dataset_cached(spec: DatasetSpec, weighting: str, min_quality: float | None,
                         min_det: float | None, fingerprint: tuple) -> "LabelledVideos":
    from core.dataset import concat

    parts = [load_split(spec, s.name, weighting, min_quality=min_quality, min_det=min_det)
             for s in spec.splits]
    lv = parts[0] if len(parts) == 1 else concat(parts)
    return _freeze_labelled(lv)


def load_dataset(spec: DatasetSpec, weighting: str = "quality", *,
                 min_quality: float | None = None,
                 min_det: float | None = None) -> "LabelledVideos":
    """All splits of ``spec`` concatenated (train, val, test order)."""
    return _load_dataset_cached(spec, weighting, min_quality, min_det, _fingerprint(spec))


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
    from core.names import canonical_name

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
    return _truth_cached(spec.truth, _fingerprint(spec))


def labelled_ids(lv: "LabelledVideos", spec: DatasetSpec) -> np.ndarray:
    """Bool mask of the videos whose split has ground truth (their ``ids`` mean something)."""
    return np.isin(np.asarray(lv.split), spec.labelled_splits)


def noise_rows(spec: DatasetSpec) -> np.ndarray:
    """Rows (into ``load_dataset(spec)``) of the distractors the noise clustering works on.

    The training distractors: videos of the train/val splits that their ground truth
    does not name (test distractors stay unseen, as in training). If those splits hold
    none, the distractors of any labelled split; with no ground truth at all, every video.
    """
    return _noise_rows_cached(spec, _fingerprint(spec))


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


# --------------------------------------------------------------------------- Data page


@st.cache_data(max_entries=8, show_spinner="Counting…")
def _stats_cached(spec: DatasetSpec, fingerprint: tuple, sample: int) -> dict:
    lv = load_dataset(spec)
    fs = lv.frames
    split = np.asarray(lv.split)
    ids = np.asarray(lv.ids)
    labelled = labelled_ids(lv, spec)
    # Empty videos are not pooled (so not in ``lv``) but still count as videos and,
    # when their ground truth does not name them, as distractors.
    n_empty, empty_distr = {}, {}
    for s in spec.splits:
        empty = load_split(spec, s.name).pooled.empty
        n_empty[s.name] = len(empty)
        if s.gt:
            from core.formats import read_ground_truth

            named = read_ground_truth(s.gt).labels
            empty_distr[s.name] = sum(1 for e in empty if e not in named)
    per_split = []
    for s in spec.splits:
        m = split == s.name
        per_split.append({
            "split": s.name, "videos": int(m.sum()) + n_empty[s.name],
            "labelled": int((m & (ids > 0)).sum()),
            "distractors": int((m & (ids == 0)).sum()) + empty_distr[s.name] if s.gt else None,
            "identities": int(np.unique(ids[m & (ids > 0)]).size),
            "frames": int(np.asarray(fs.lengths)[m].sum()),
            "empty videos": n_empty[s.name],
            "ground truth": Path(s.gt).name if s.gt else "—",
        })
    # Frame-level histograms read a seeded sample: bounded cost at any scale.
    rng = np.random.default_rng(0)
    nf = fs.n_frames
    take = np.sort(rng.choice(nf, size=sample, replace=False)) if nf > sample else slice(None)
    vids_per_id = np.bincount(ids[ids > 0]) if (ids > 0).any() else np.zeros(1, int)
    vids_per_id = vids_per_id[vids_per_id > 0]
    return {
        "videos": int(len(lv.names)) + sum(n_empty.values()),
        "identities": int(np.unique(ids[ids > 0]).size),
        "distractors": int((labelled & (ids == 0)).sum()) + sum(empty_distr.values()),
        "unlabelled": int((~labelled).sum()),
        "frames": int(nf),
        "empty": int(sum(n_empty.values())),
        "per_split": pd.DataFrame(per_split),
        "frames_per_video": np.asarray(fs.lengths).astype(np.int32),
        "quality": np.asarray(fs.quality[take], dtype=np.float32),
        "det": np.asarray(fs.det[take], dtype=np.float32),
        "sampled": bool(nf > sample),
        "videos_per_identity": pd.Series(vids_per_id).value_counts().sort_index(),
        "dim": int(lv.X.shape[1]),
    }


def dataset_stats(spec: DatasetSpec, *, sample: int = 200_000) -> dict:
    """Counts and histogram inputs of the dataset (frame scores sampled beyond ``sample``)."""
    return _stats_cached(spec, _fingerprint(spec), sample)


@st.cache_data(max_entries=16, show_spinner="Pooling with these options…")
def _pooling_effect_cached(spec: DatasetSpec, fingerprint: tuple, options: tuple) -> dict:
    from core.pooling import pool_videos

    base = load_dataset(spec)
    fs = base.frames
    cosines: dict[str, np.ndarray] = {}
    maps: dict[str, float] = {}
    have_knn = _knn_pair(spec) is not None
    if have_knn:
        maps["quality (default)"] = _knn_map(spec, "quality", None, None)
    for weighting, min_quality, min_det in options:
        label = _option_label(weighting, min_quality, min_det)
        pv = pool_videos(fs, weighting=weighting, min_quality=min_quality, min_det=min_det)
        cosines[label] = np.einsum("ij,ij->i", pv.X, base.X).astype(np.float32)
        if have_knn:
            maps[label] = _knn_map(spec, weighting, min_quality, min_det)
    return {"cosines": cosines, "map": maps}


def _option_label(weighting: str, min_quality: float | None, min_det: float | None) -> str:
    parts = [weighting]
    if min_quality is not None:
        parts.append(f"q>={min_quality:g}")
    if min_det is not None:
        parts.append(f"det>={min_det:g}")
    return ", ".join(parts)


def _knn_pair(spec: DatasetSpec) -> tuple[str, str] | None:
    """(reference, query) split names for the quick KNN check: train vs val, if labelled."""
    names = spec.labelled_splits
    if "train" in names and "val" in names:
        return "train", "val"
    return None


def _knn_map(spec: DatasetSpec, weighting: str, min_quality: float | None,
             min_det: float | None) -> float:
    from core.knn import knn_scores
    from core.metrics import mean_average_precision, rank_videos

    ref_name, q_name = _knn_pair(spec)  # type: ignore[misc]
    ref = load_split(spec, ref_name, weighting, min_quality=min_quality, min_det=min_det)
    q = load_split(spec, q_name, weighting, min_quality=min_quality, min_det=min_det)
    identity_ids = np.unique(np.asarray(ref.ids)[np.asarray(ref.ids) > 0])
    S = knn_scores(q.X, ref.X, ref.ids, identity_ids, k=5)
    gt = q.ground_truth()
    ranking = rank_videos(S, q.names, identity_ids)
    return float(mean_average_precision(gt, ranking))


def pooling_effect(spec: DatasetSpec, options: Sequence[tuple[str, float | None, float | None]]
                   ) -> dict:
    """What other pooling options change, against the default quality weighting.

    For each ``(weighting, min_quality, min_det)``: the cosine of every video's pooled
    vector to its default one, and — when train and val are labelled — the mAP of a
    5-NN baseline ranking val by train (the default's mAP under "quality (default)").
    """
    return _pooling_effect_cached(spec, _fingerprint(spec), tuple(tuple(o) for o in options))


# --------------------------------------------------------------------------- Noise clusters

#: The largest radius the neighbour graph is built to (unit vectors: distances in [0, 2];
#: the original solution clustered at 1.2).
MAX_EPS = 1.5
#: Edge budget of the graph: ~16 bytes an edge, so 4M edges ≈ 64 MB plus the forests.
GRAPH_EDGE_BUDGET = 4_000_000
#: Never build below this radius, whatever the budget says (the slider needs room).
MIN_GRAPH_EPS = 0.8


def graph_radius(X: np.ndarray, *, budget: int = GRAPH_EDGE_BUDGET, ceiling: float = MAX_EPS,
                 floor: float = MIN_GRAPH_EPS, sample: int = 1000, seed: int = 0) -> float:
    """The radius to build the neighbour graph at so that it holds about ``budget`` pairs.

    Small sets get the full ``ceiling``; for large ones the radius is the distance
    quantile (estimated on a seeded sample of pairs) at which ``budget`` of the
    ``n (n - 1) / 2`` pairs fall inside, clipped to ``[floor, ceiling]``. This keeps
    memory bounded at any scale while leaving eps all the room that matters.

    >>> graph_radius(np.eye(4, dtype=np.float32))
    1.5
    """
    X = np.asarray(X, dtype=np.float32)
    n = len(X)
    pairs = n * (n - 1) / 2
    if pairs <= budget:
        return float(ceiling)
    rng = np.random.default_rng(seed)
    a = X[rng.choice(n, size=min(sample, n), replace=False)]
    b = X[rng.choice(n, size=min(20 * sample, n), replace=False)]
    d = np.sqrt(np.maximum(2.0 - 2.0 * (a @ b.T), 0.0)).ravel()
    d = d[d > 1e-6]  # a point and itself
    r = float(np.quantile(d, budget / pairs)) if d.size else float(ceiling)
    return float(np.clip(np.floor(r * 100) / 100, floor, ceiling))


@st.cache_resource(max_entries=4, show_spinner="Building the neighbour graph of the distractors…")
def _graph_cached(spec: DatasetSpec, fingerprint: tuple, max_eps: float | None):
    from core.cluster import NeighborGraph

    lv = load_dataset(spec)
    X = np.asarray(lv.X)[noise_rows(spec)]
    radius = graph_radius(X) if max_eps is None else max_eps
    return NeighborGraph.build(X, max_eps=radius)


def noise_graph(spec: DatasetSpec, max_eps: float | None = None):
    """The ``NeighborGraph`` of the distractors (built once per dataset, shared).

    ``max_eps`` default: :func:`graph_radius` (1.5 unless the set is large).
    """
    return _graph_cached(spec, _fingerprint(spec), None if max_eps is None else float(max_eps))


def cluster_noise(spec: DatasetSpec, eps: float, min_samples: int) -> np.ndarray:
    """DBSCAN labels of the distractors (milliseconds: a query on the cached graph)."""
    return noise_graph(spec).dbscan(float(eps), int(min_samples))


@st.cache_data(max_entries=32, show_spinner=False)
def _kdist_cached(spec: DatasetSpec, fingerprint: tuple, k: int) -> tuple[np.ndarray, float]:
    from core.cluster_report import suggest_eps

    g = noise_graph(spec)
    curve = g.k_distance(k) if g.n_points else np.zeros(0)
    knee = suggest_eps(g, k) if g.n_points >= 3 else float("nan")
    return curve, knee


def k_distance(spec: DatasetSpec, k: int) -> tuple[np.ndarray, float]:
    """Sorted ``k``-distance curve of the distractors and its knee (the suggested eps)."""
    return _kdist_cached(spec, _fingerprint(spec), int(k))


def eps_grid(max_eps: float, step: float = 0.05, start: float = 0.05) -> np.ndarray:
    """The eps values of the sweep: ``start, start + step, …`` up to ``max_eps``."""
    return np.round(np.arange(start, max_eps + 1e-9, step), 2)


def choose_eps(sweep: pd.DataFrame, knee: float, *, fallback: float = 1.2) -> float:
    """The default eps: the most clusters the sweep finds, at or below the knee.

    The knee of the k-distance curve alone often sits where clusters have already
    merged into one giant component (a k-distance curve of distractors rises slowly,
    then sharply); the number of clusters peaks before that. Ties go to the larger eps
    (more videos clustered). Without clusters anywhere: the knee, else ``fallback``.

    >>> sw = pd.DataFrame({"eps": [0.8, 0.9, 1.0, 1.1], "n_clusters": [2, 5, 5, 1]})
    >>> choose_eps(sw, knee=1.05), choose_eps(sw, knee=0.85)
    (1.0, 0.8)
    """
    below = sweep[sweep["eps"] <= knee + 1e-9] if np.isfinite(knee) else sweep
    if below.empty or below["n_clusters"].max() <= 0:
        return float(round(knee, 2)) if np.isfinite(knee) else fallback
    best = below["n_clusters"].max()
    return float(below.loc[below["n_clusters"] == best, "eps"].max())


def default_eps(spec: DatasetSpec, min_samples: int = 2) -> float:
    """Default eps for the Noise clusters page: :func:`choose_eps` on the cached sweep."""
    g = noise_graph(spec)
    _, knee = k_distance(spec, min_samples)
    sweep = eps_sweep(spec, min_samples, eps_grid(g.max_eps))
    return float(np.clip(choose_eps(sweep, knee), 0.05, g.max_eps))


def noise_truth(spec: DatasetSpec) -> np.ndarray | None:
    """True person of every distractor (from ``truth.tsv``), or None when unknown."""
    truth = load_truth(spec)
    if truth is None:
        return None
    names = np.asarray(load_dataset(spec).names)[noise_rows(spec)]
    person = truth["person"].reindex(names)
    if person.isna().any():
        return None
    return person.astype(str).to_numpy()


@st.cache_data(max_entries=16, show_spinner="Sweeping eps…")
def _sweep_cached(spec: DatasetSpec, fingerprint: tuple, min_samples: int,
                  eps_values: tuple) -> pd.DataFrame:
    from core.cluster_report import eps_sweep

    df = eps_sweep(noise_graph(spec), eps_values, min_samples, truth=noise_truth(spec))
    n = noise_graph(spec).n_points
    return df.assign(unclustered_share=df["unclustered_frac"],
                     largest=(df["largest_share"] * n).round().astype(int))


def eps_sweep(spec: DatasetSpec, min_samples: int, eps_values: Sequence[float]) -> pd.DataFrame:
    """Clusters / unclustered share / largest cluster (and ARI, purity) over ``eps_values``."""
    return _sweep_cached(spec, _fingerprint(spec), int(min_samples),
                         tuple(round(float(e), 4) for e in eps_values))


@st.cache_data(max_entries=8, show_spinner=False)
def _centroids_cached(spec: DatasetSpec, fingerprint: tuple) -> tuple[np.ndarray, np.ndarray]:
    lv = load_dataset(spec)
    ids = np.asarray(lv.ids)
    lab = ids > 0
    uniq, inv = np.unique(ids[lab], return_inverse=True)
    sums = np.zeros((len(uniq), lv.X.shape[1]), dtype=np.float64)
    np.add.at(sums, inv, np.asarray(lv.X)[lab])
    norms = np.linalg.norm(sums, axis=1, keepdims=True)
    return (sums / np.maximum(norms, 1e-12)).astype(np.float32), uniq


def identity_centroids(spec: DatasetSpec) -> tuple[np.ndarray, np.ndarray]:
    """(unit mean vector per known identity, identity IDs)."""
    return _centroids_cached(spec, _fingerprint(spec))


@st.cache_data(max_entries=8, show_spinner=False)
def _self_sim_cached(spec: DatasetSpec, fingerprint: tuple, quantile: float) -> float:
    lv = load_dataset(spec)
    ids = np.asarray(lv.ids)
    lab = np.flatnonzero(ids > 0)
    if lab.size == 0:
        return float("nan")
    cents, uniq = identity_centroids(spec)
    own = cents[np.searchsorted(uniq, ids[lab])]
    sims = np.einsum("ij,ij->i", np.asarray(lv.X)[lab], own)
    return float(np.quantile(sims, quantile))


def identity_self_similarity(spec: DatasetSpec, quantile: float = 0.25) -> float:
    """The ``quantile`` of the cosine between a labelled video and its identity's mean.

    A noise cluster whose members are on average at least this similar to a known
    identity sits *on* that identity: a likely ground-truth error (or a lookalike).
    """
    return _self_sim_cached(spec, _fingerprint(spec), float(quantile))


@st.cache_data(max_entries=64, show_spinner=False)
def _summary_cached(spec: DatasetSpec, fingerprint: tuple, eps: float,
                    min_samples: int) -> pd.DataFrame:
    from core.cluster_report import summarize_clusters

    rows = noise_rows(spec)
    lv = load_dataset(spec)
    labels = cluster_noise(spec, eps, min_samples)
    cents, ids = identity_centroids(spec)
    return summarize_clusters(np.asarray(lv.X)[rows], labels,
                              identity_X=cents if len(ids) else None,
                              identity_ids=ids if len(ids) else None,
                              names=list(np.asarray(lv.names)[rows]))


def cluster_summary(spec: DatasetSpec, eps: float, min_samples: int) -> pd.DataFrame:
    """One row per noise cluster at (eps, min_samples), largest first (see
    ``core.cluster_report.summarize_clusters``)."""
    return _summary_cached(spec, _fingerprint(spec), round(float(eps), 4), int(min_samples))


# --------------------------------------------------------------------------- Map

#: Beyond this many points the map shows a seeded random sample.
MAX_MAP_POINTS = 100_000


@st.cache_data(max_entries=16, show_spinner=False)
def _map_rows_cached(spec: DatasetSpec, fingerprint: tuple, subset: str,
                     max_points: int) -> tuple[np.ndarray, int]:
    if subset == "noise":
        rows = noise_rows(spec)
    elif subset == "all":
        rows = np.arange(len(load_dataset(spec).names))
    else:
        raise ValueError(f"unknown map subset {subset!r}; choose noise or all")
    total = len(rows)
    if total > max_points:
        rng = np.random.default_rng(0)
        rows = np.sort(rng.choice(rows, size=max_points, replace=False))
    return rows, total


def map_rows(spec: DatasetSpec, subset: str, max_points: int = MAX_MAP_POINTS
             ) -> tuple[np.ndarray, int]:
    """Rows of ``load_dataset(spec)`` drawn on the map, and how many there were in all."""
    return _map_rows_cached(spec, _fingerprint(spec), subset, int(max_points))


@st.cache_resource(show_spinner=False)
def _projection_memo() -> dict:
    # Shared across sessions; values are read-only arrays, guarded by the lock below.
    return {}


_MEMO_LOCK = threading.Lock()
_MEMO_MAX = 8
_KEY_LOCKS: dict[tuple, threading.Lock] = {}


def projection(spec: DatasetSpec, subset: str, *, method: str = "umap", n_neighbors: int = 15,
               min_dist: float = 0.1, seed: int = 0, max_points: int = MAX_MAP_POINTS,
               progress: ProgressFn | None = None) -> tuple[np.ndarray, np.ndarray, int]:
    """2-d map of the ``subset`` ("noise" or "all") videos: ``(rows, xy, total)``.

    Held in memory once computed and on disk by ``core.projection`` (keyed by the data
    and parameters), so only the first request for a map pays; ``progress`` is called
    only while computing.
    """
    from core.projection import compute_projection

    rows, total = map_rows(spec, subset, max_points)
    key = (spec, _fingerprint(spec), subset, int(max_points), method, int(n_neighbors),
           round(float(min_dist), 6), int(seed))
    memo = _projection_memo()
    with _MEMO_LOCK:
        xy = memo.get(key)
        # One computation per map: a second tab asking for the same one waits for it.
        key_lock = _KEY_LOCKS.setdefault(key, threading.Lock())
    if xy is None:
        with key_lock:
            with _MEMO_LOCK:
                xy = memo.get(key)
            if xy is None:
                X = np.asarray(load_dataset(spec).X)[rows]
                xy = compute_projection(X, method=method, n_neighbors=n_neighbors,
                                        min_dist=min_dist, seed=seed,
                                        cache_dir=cache_root() / "projections",
                                        progress=progress)
                xy.flags.writeable = False
                with _MEMO_LOCK:
                    if len(memo) >= _MEMO_MAX:
                        old = next(iter(memo))
                        memo.pop(old)
                        _KEY_LOCKS.pop(old, None)
                    memo[key] = xy
    return rows, xy, total


REVIEW_PAGE = "app_pages/video_review.py"


def review_page() -> str | None:
    """The Video review page's path (relative to the app script) if it exists, else None.

    Pages link to it with ``st.page_link(review_page(), query_params={"video": NAME})``.
    """
    return REVIEW_PAGE if (Path(__file__).parent / REVIEW_PAGE).is_file() else None


# --------------------------------------------------------------------------- runs


@st.cache_data(ttl=5, show_spinner=False)
def list_runs(root: str) -> pd.DataFrame:
    """The run store's table (re-read every few seconds)."""
    from core.runs import list_runs as _list

    return _list(root)


@st.cache_data(max_entries=8, show_spinner=False)
def _correctness_cached(run_path: str, mtime: float) -> pd.DataFrame:
    from core.runs import Run

    oof = Run.open(run_path).load_array("oof")
    ids = oof["ids"].astype(np.int64)
    identity_ids = oof["identity_ids"].astype(np.int64)
    top = oof["top_class"][:, 0] if oof["top_class"].ndim == 2 else oof["top_class"]
    pred = np.where(top >= 0, identity_ids[np.clip(top, 0, None)], 0)
    scored = (top >= 0) & (oof["fold"] >= 0 if "fold" in oof else True)
    outcome = np.where(~scored, "not scored",
                       np.where(ids == 0, "distractor", np.where(pred == ids, "correct", "wrong")))
    return pd.DataFrame({"outcome": outcome, "predicted": pred, "true": ids},
                        index=pd.Index(oof["names"].astype(str), name="video"))


def run_correctness(run_path: str | os.PathLike) -> pd.DataFrame:
    """Per video of a finished run: ``outcome`` (correct / wrong / distractor / not scored),
    ``predicted`` and ``true`` identity, from its out-of-fold top-1 prediction."""
    p = Path(run_path) / "oof.npz"
    return _correctness_cached(str(run_path), p.stat().st_mtime)
