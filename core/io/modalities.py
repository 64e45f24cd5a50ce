"""The other modalities of the 2019 set: head, body and audio feature pickles.

Same keys, same Python-2 pickles as the face files, other frame layouts:

* head  ``head_{split}.pickle``:  ``name -> [[frame_str, bbox, det_score, feat], ...]``
* body  ``body_{split}.pickle``:  ``name -> [[frame_str, bbox, feat], ...]``
* audio ``audio_{split}.pickle``: ``name -> feat`` (one vector per video; a video may be missing)

Every modality is read into a :class:`~core.io.frames.FrameSet`, so pooling, views and
the columnar cache work the same way for all of them. Columns a layout lacks are
filled so that the face pooling rules give the documented weights: a head frame's
``quality`` column holds its detection score (pooling by ``quality`` weights head frames
by detection score), body and audio frames get quality and detection 1 (uniform), an
audio vector is one frame numbered 0 with an empty box.

:func:`sibling_paths` finds the modality files beside a face pickle
(``face_val.pickle`` -> ``head_val.pickle`` ...; ``face_train_v2.pickle`` ->
``head_train.pickle`` or ``head_train_v2.pickle``).
"""

from __future__ import annotations

import glob
import hashlib
import os
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Callable, Mapping

import numpy as np

from core.errors import DataError
from core.io.frame_fields import (bbox_column, feature_matrix, frame_number_column,
                                  score_column)
from core.io.frames import (FrameSet, claim_name, load_frameset, object_array, read_frameset_meta,
                            save_frameset)
from core.io.safe_pickle import load_pickle_safe, require_file
from core.paths import cache_root

ProgressFn = Callable[[float, str], None]

#: Every modality, in the order their blocks are stacked (face first).
MODALITIES = ("face", "head", "body", "audio")
#: Fields of one frame per framed modality (face: see core.io.frames).
FRAME_LAYOUTS = {
    "face": "[frame_str, bbox, det_score, quality_score, feat]",
    "head": "[frame_str, bbox, det_score, feat]",
    "body": "[frame_str, bbox, feat]",
}
#: Bump when what a modality FrameSet holds changes (part of the cache key).
CACHE_VERSION = 1


def check_modalities(modalities) -> tuple[str, ...]:
    """``modalities`` as a tuple in canonical order, checked.

    Examples
    --------
    >>> check_modalities("audio,face")
    ('face', 'audio')
    >>> check_modalities(["face", "smell"])
    Traceback (most recent call last):
    ValueError: unknown modality 'smell'; choose from face, head, body, audio
    """
    items = modalities.split(",") if isinstance(modalities, str) else list(modalities)
    items = [str(m).strip() for m in items if str(m).strip()]
    for m in items:
        if m not in MODALITIES:
            raise ValueError(f"unknown modality {m!r}; choose from {', '.join(MODALITIES)}")
    if not items:
        raise ValueError("no modality given; choose from " + ", ".join(MODALITIES))
    return tuple(m for m in MODALITIES if m in items)


def sibling_paths(face_path: str | os.PathLike) -> dict[str, Path]:
    """The modality files beside ``face_path`` that exist (``face`` itself included).

    The ``face_`` prefix of the file name is swapped for each modality's; a ``_v2``
    before the extension may be present on either side.

    Examples
    --------
    >>> sibling_paths("/data/face_train_v2.pickle")  # doctest: +SKIP
    {'face': PosixPath('/data/face_train_v2.pickle'), 'head': PosixPath('/data/head_train.pickle'), ...}
    """
    path = Path(face_path)
    out = {"face": path}
    name = path.name
    if not name.startswith("face_"):
        return out
    stem, ext = os.path.splitext(name[len("face_"):])
    stems = [stem, stem[:-3]] if stem.endswith("_v2") else [stem, stem + "_v2"]
    for m in MODALITIES[1:]:
        for s in stems:
            cand = path.with_name(f"{m}_{s}{ext}")
            if cand.is_file():
                out[m] = cand
                break
    return out


# --------------------------------------------------------------------------- #
# reading
# --------------------------------------------------------------------------- #
def read_modality(path: str | os.PathLike, modality: str, *, cache: bool = True,
                  cache_dir: str | os.PathLike | None = None,
                  progress: ProgressFn | None = None) -> FrameSet:
    """Read one modality's pickle as a validated FrameSet, through the columnar cache.

    ``face`` is :func:`core.io.formats.read_features`.

    Raises
    ------
    DataError
        One line naming the file, the video (and frame) and the bad value.

    Examples
    --------
    >>> fs = read_modality("head_val.pickle", "head")  # doctest: +SKIP
    >>> fs.quality[:3]  # the detection scores  # doctest: +SKIP
    """
    if modality == "face":
        from core.io.formats import read_features

        return read_features(path, cache=cache, cache_dir=cache_dir, progress=progress)
    check_modalities([modality])
    report = progress or (lambda f, m="": None)
    require_file(path, f"{modality} features")
    entry = _cache_entry(path, modality, cache_dir) if cache else None
    if entry is not None and entry[0].exists():
        try:
            if read_frameset_meta(entry[0]).get("cache_key") == entry[1]:
                report(1.0, "loaded from cache")
                return replace(load_frameset(entry[0]), source=str(path))
        except Exception:  # noqa: BLE001 - a corrupt or foreign entry is rebuilt below
            pass
    report(0.0, f"unpickling {os.path.basename(path)}")
    videos = load_pickle_safe(path)
    report(0.5, "converting")
    fs = modality_frameset(videos, modality, source=str(path))
    del videos
    if entry is not None:
        try:
            save_frameset(fs, entry[0], meta={"cache_key": entry[1]})
            prefix = entry[0].name.rsplit("-", 1)[0] + "-"
            for old in entry[0].parent.glob(glob.escape(prefix) + "*.npz"):
                if old != entry[0]:
                    old.unlink(missing_ok=True)
        except OSError as exc:
            warnings.warn(f"could not write the feature cache {entry[0]}: {exc}", stacklevel=2)
    report(1.0, "done")
    return fs


def _cache_entry(path, modality: str, cache_dir) -> tuple[Path, str]:
    p = Path(path).resolve()
    st = p.stat()
    root = Path(cache_dir) if cache_dir else cache_root()
    where = hashlib.sha256(f"{modality}:{p}".encode("utf-8", "surrogateescape")).hexdigest()[:16]
    key = f"{modality}-v{CACHE_VERSION}:{p}:{st.st_size}:{st.st_mtime_ns}"
    version = hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()[:16]
    return root / f"{modality}-{p.stem[:40]}-{where}-{version}.npz", key


def modality_frameset(videos: object, modality: str, *, source: str) -> FrameSet:
    """Validate one modality's layout and convert it to a :class:`FrameSet`.

    Examples
    --------
    >>> f = np.ones(3, np.float16)
    >>> fs = modality_frameset({b"v1": [["4", [0, 0, 5, 5], 0.8, f]], "v2.mp4": []},
    ...                        "head", source="head_x.pickle")
    >>> list(fs.names), fs.offsets.tolist(), fs.quality.tolist()
    (['v1', 'v2'], [0, 1, 1], [0.800000011920929])
    >>> modality_frameset({"v": [["4", [0, 0, 5, 5], f]]}, "head", source="head_x.pickle")
    Traceback (most recent call last):
    core.errors.DataError: head_x.pickle: video 'v' frame 0: a head frame must have 4 fields [frame_str, bbox, det_score, feat], got 3
    >>> modality_frameset({"v": np.ones(2, np.float16)}, "audio", source="a.pickle").feats.shape
    (1, 2)
    """
    where = source or f"<{modality}>"
    if modality not in MODALITIES[1:]:
        raise ValueError(f"modality_frameset reads head, body or audio, not {modality!r}")
    if not isinstance(videos, dict):
        raise DataError(f"{where}: expected a dict of video name -> "
                        f"{'feature vector' if modality == 'audio' else 'list of frames'}, "
                        f"got {type(videos).__name__}")
    names: list[str] = []
    seen: dict[str, object] = {}
    lengths = np.zeros(len(videos), dtype=np.int64)
    flat: list = []
    for i, (raw, value) in enumerate(videos.items()):
        name = claim_name(raw, where, seen)
        names.append(name)
        if modality == "audio":
            if isinstance(value, (list, tuple)) and len(value) == 0:
                continue  # no audio for this video
            if not isinstance(value, np.ndarray):
                raise DataError(f"{where}: video {name!r}: audio feature is a "
                                f"{type(value).__name__}, expected a numpy array")
            lengths[i] = 1
            flat.append(value)
            continue
        if not isinstance(value, (list, tuple)):
            raise DataError(f"{where}: video {name!r}: frames must be a list, "
                            f"got {type(value).__name__}")
        lengths[i] = len(value)
        flat.extend(value)
    offsets = np.zeros(len(names) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    n = len(flat)

    def at(j: int) -> str:
        v = int(np.searchsorted(offsets, j, side="right")) - 1
        if modality == "audio":
            return f"{where}: video {names[v]!r}"
        return f"{where}: video {names[v]!r} frame {j - int(offsets[v])}"

    if modality == "audio":
        feats = feature_matrix(tuple(flat), at, n)
        ones = np.ones(n, dtype=np.float32)
        return FrameSet(names=object_array(names), offsets=offsets, feats=feats,
                        quality=ones, det=ones.copy(), frame_no=np.zeros(n, np.int32),
                        bbox=np.zeros((n, 4), np.float32), source=str(source))
    n_fields = 4 if modality == "head" else 3
    layout = FRAME_LAYOUTS[modality]
    bad = next((j for j, f in enumerate(flat) if not isinstance(f, (list, tuple))), None)
    if bad is not None:
        raise DataError(f"{at(bad)}: a {modality} frame must be a list {layout}, "
                        f"got {type(flat[bad]).__name__}")
    if set(map(len, flat)) - {n_fields}:
        j = next(j for j, f in enumerate(flat) if len(f) != n_fields)
        raise DataError(f"{at(j)}: a {modality} frame must have {n_fields} fields {layout}, "
                        f"got {len(flat[j])}")
    cols = list(zip(*flat)) if n else [()] * n_fields
    del flat
    feats = feature_matrix(cols[-1], at, n)
    if modality == "head":
        det = score_column(cols[2], "detection score", at)
        quality = det.copy()
    else:
        det = np.ones(n, dtype=np.float32)
        quality = det.copy()
    return FrameSet(names=object_array(names), offsets=offsets, feats=feats,
                    quality=quality, det=det, frame_no=frame_number_column(cols[0], at),
                    bbox=bbox_column(cols[1], at, n), source=str(source))


# --------------------------------------------------------------------------- #
# writing (the synthetic data, tests)
# --------------------------------------------------------------------------- #
def write_modality(path: str | os.PathLike, modality: str, videos: Mapping[str, object], *,
                   bytes_keys: bool = True, protocol: int = 2) -> None:
    """Write ``videos`` in ``modality``'s real layout (atomic, protocol 2, bytes keys).

    Examples
    --------
    >>> write_modality("/tmp/audio_x.pickle", "audio", {"v": np.zeros(4, np.float16)})  # doctest: +SKIP
    """
    import pickle

    from core.atomic import atomic_open

    if modality not in MODALITIES:
        check_modalities([modality])
    data = {(k.encode("utf-8") if bytes_keys and isinstance(k, str) else k): v
            for k, v in videos.items()}
    with atomic_open(path, "wb") as fh:
        pickle.dump(data, fh, protocol=protocol)


__all__ = ["CACHE_VERSION", "FRAME_LAYOUTS", "MODALITIES", "check_modalities",
           "modality_frameset", "read_modality", "sibling_paths", "write_modality"]
