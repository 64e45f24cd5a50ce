"""Pooled vectors: the :class:`PooledVideos` container and its Parquet store.

:mod:`core.features.pooling` makes them; :mod:`core.features` exports them.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

import numpy as np

from core.errors import DataError


@dataclass(eq=False)
class PooledVideos:
    """One L2-normalised vector per non-empty video.

    Attributes
    ----------
    names : (n,) object array of canonical names
    X : (n, d) float32 unit rows
    n_frames : (n,) int64 frames per video
    mean_quality : (n,) float32 mean raw quality score per video
    empty : list of str, videos with no frames (skipped)
    options : dict, the pooling options used (weighting, thresholds)
    """

    names: np.ndarray
    X: np.ndarray
    n_frames: np.ndarray
    mean_quality: np.ndarray
    empty: list[str] = field(default_factory=list)
    options: dict = field(default_factory=dict)
    _index: dict | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.names)

    def index_of(self, name: str) -> int:
        """Row of the video ``name`` (canonical or with ``.mp4``)."""
        from core.io.names import canonical_name

        if self._index is None:
            self._index = {n: i for i, n in enumerate(self.names)}
        try:
            return self._index[canonical_name(name)]
        except KeyError:
            raise KeyError(f"pooled videos: no video named {name!r}") from None


def save_pooled(pv: PooledVideos, path: str | os.PathLike) -> None:
    """Write pooled vectors to Parquet (atomically).

    Columns: ``name`` (string), ``x`` (fixed-size list of float32), ``n_frames``,
    ``mean_quality``; the skipped empty videos and the options go in the schema
    metadata.

    Examples
    --------
    >>> save_pooled(pv, "val_pooled.parquet")  # doctest: +SKIP
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    from core.atomic import atomic_open

    X = np.ascontiguousarray(pv.X, dtype=np.float32)
    n, d = X.shape
    x_col = pa.FixedSizeListArray.from_arrays(pa.array(X.reshape(-1)), d)
    table = pa.table(
        {
            "name": pa.array([str(s) for s in pv.names], type=pa.string()),
            "x": x_col,
            "n_frames": pa.array(np.asarray(pv.n_frames, np.int64)),
            "mean_quality": pa.array(np.asarray(pv.mean_quality, np.float32)),
        }
    )
    meta = {"vidid": json.dumps({"empty": list(pv.empty), "options": pv.options, "dim": d})}
    table = table.replace_schema_metadata(meta)
    with atomic_open(path, "wb") as fh:
        pq.write_table(table, fh, compression="none")


def load_pooled(path: str | os.PathLike) -> PooledVideos:
    """Read pooled vectors written by :func:`save_pooled`.

    Examples
    --------
    >>> pv = load_pooled("val_pooled.parquet")  # doctest: +SKIP
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except pa.ArrowInvalid as exc:
        raise DataError(f"{path}: not a Parquet file of pooled vectors ({exc})") from None
    raw = (table.schema.metadata or {}).get(b"vidid")
    missing = {"name", "x", "n_frames", "mean_quality"} - set(table.column_names)
    if raw is None or missing:
        raise DataError(f"{path}: not a vidid pooled file (missing {sorted(missing) or 'metadata'})")
    meta = json.loads(raw)
    d = int(meta["dim"])
    x = table.column("x").combine_chunks()
    values = x.flatten().to_numpy(zero_copy_only=False) if len(x) else np.zeros(0, np.float32)
    return PooledVideos(
        names=np.asarray(table.column("name").to_numpy(zero_copy_only=False), dtype=object),
        X=np.asarray(values, dtype=np.float32).reshape(len(x), d),
        n_frames=table.column("n_frames").to_numpy().astype(np.int64),
        mean_quality=table.column("mean_quality").to_numpy().astype(np.float32),
        empty=list(meta.get("empty", [])),
        options=dict(meta.get("options", {})),
    )


__all__ = ["PooledVideos", "load_pooled", "save_pooled"]
