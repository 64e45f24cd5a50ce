"""The in-memory dataset: every frame of every video in contiguous arrays.

Video ``i`` owns frames ``offsets[i]:offsets[i+1]`` of ``feats``, ``quality``,
``det``, ``frame_no`` and ``bbox``. No per-video Python objects on hot paths.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True, eq=False)
class FrameSet:
    """All frames of a set of videos, ragged by ``offsets``.

    Attributes
    ----------
    names : (n_videos,) ndarray of str (object dtype), canonical names (no ``.mp4``)
    offsets : (n_videos + 1,) int64, ``offsets[0] == 0``, non-decreasing
    feats : (n_frames, dim) float16 (as shipped) or float32, *not* normalised
    quality : (n_frames,) float32 quality scores
    det : (n_frames,) float32 detection scores
    frame_no : (n_frames,) int32 frame numbers (parsed from ``frame_str``)
    bbox : (n_frames, 4) float32 ``[x1, y1, x2, y2]``
    source : str, where the data came from (a path), for error messages
    """

    names: np.ndarray
    offsets: np.ndarray
    feats: np.ndarray
    quality: np.ndarray
    det: np.ndarray
    frame_no: np.ndarray
    bbox: np.ndarray
    source: str = ""
    _index: dict = field(default=None, repr=False, compare=False)  # type: ignore[assignment]

    @property
    def n_videos(self) -> int:
        return len(self.names)

    @property
    def n_frames(self) -> int:
        return int(self.offsets[-1])

    @property
    def dim(self) -> int:
        return int(self.feats.shape[1])

    @property
    def lengths(self) -> np.ndarray:
        """Frames per video, (n_videos,) int64."""
        return np.diff(self.offsets)

    def index_of(self, name: str) -> int:
        """Row of the video called ``name`` (canonical or with ``.mp4``)."""
        from core.names import canonical_name

        if self._index is None:
            object.__setattr__(self, "_index", {n: i for i, n in enumerate(self.names)})
        try:
            return self._index[canonical_name(name)]
        except KeyError:
            raise KeyError(f"{self.source or 'frame set'}: no video named {name!r}") from None
