"""The multimodal block of a labelled dataset: one pooled matrix per modality + presence.

Plain arrays, no per-video objects; :mod:`core.features.modalities` fills it and
:mod:`core.features.dataset` stacks it across splits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from core.errors import DataError
from core.io.modalities import check_modalities


@dataclass(eq=False)
class ModalFeatures:
    """Pooled blocks of several modalities, row ``i`` = video ``i`` of the dataset.

    Attributes
    ----------
    modalities : the modalities held, canonical order (face first)
    blocks : modality -> (n, d_m) float32, unit rows where present, zeros elsewhere
    present : (n, M) bool, column ``j`` is ``modalities[j]``

    Examples
    --------
    >>> mf = ModalFeatures(("face", "audio"), {"face": np.eye(2, dtype=np.float32),
    ...                    "audio": np.zeros((2, 3), np.float32)}, np.array([[1, 0], [1, 1]], bool))
    >>> mf.input_matrix().shape, mf.dims
    ((2, 7), (2, 3))
    """

    modalities: tuple[str, ...]
    blocks: dict[str, np.ndarray]
    present: np.ndarray

    @property
    def dims(self) -> tuple[int, ...]:
        """Feature dimension of each modality's block."""
        return tuple(int(self.blocks[m].shape[1]) for m in self.modalities)

    def has(self, modality: str) -> np.ndarray:
        """(n,) bool: which videos hold ``modality``."""
        return self.present[:, self.modalities.index(modality)]

    def input_matrix(self, modalities: Sequence[str] | None = None) -> np.ndarray:
        """The network's input: the chosen blocks side by side, then their presence columns.

        Layout (:func:`core.learn.fusion.split_input` reads it back): ``[X_m1 | X_m2 |
        ... | present_m1, present_m2, ...]`` in canonical modality order.
        """
        mods = self.modalities if modalities is None else check_modalities(modalities)
        missing = [m for m in mods if m not in self.modalities]
        if missing:
            raise DataError(f"the data holds no {', '.join(missing)} features "
                            f"(it holds {', '.join(self.modalities)})")
        cols = [self.modalities.index(m) for m in mods]
        return np.ascontiguousarray(np.concatenate(
            [self.blocks[m] for m in mods] + [self.present[:, cols].astype(np.float32)], axis=1),
            dtype=np.float32)

    def concatenated(self, weights: Mapping[str, float] | None = None) -> np.ndarray:
        """One unit vector per video: the blocks side by side, block ``m`` scaled by ``sqrt(w_m)``.

        The dot product of two such rows is the weighted mean cosine over the modalities
        both videos hold (up to each row's normalisation), so a map or a nearest-neighbour
        search over it sees every modality at once. Default weights: 1 each. A video
        holding no modality is a zero row.

        >>> mf = ModalFeatures(("face", "audio"), {"face": np.eye(2, dtype=np.float32),
        ...                    "audio": np.eye(2, dtype=np.float32)}, np.ones((2, 2), bool))
        >>> np.round(mf.concatenated({"face": 1.0, "audio": 0.0})[0], 3).tolist()
        [1.0, 0.0, 0.0, 0.0]
        """
        w = {m: float((weights or {}).get(m, 1.0)) for m in self.modalities}
        bad = [f"{m}={v}" for m, v in w.items() if not (v >= 0 and np.isfinite(v))]
        if bad:
            raise ValueError(f"modality weights must be finite and >= 0, got {', '.join(bad)}")
        out = np.concatenate([np.sqrt(w[m]) * np.asarray(self.blocks[m], np.float32)
                              for m in self.modalities], axis=1)
        norm = np.linalg.norm(out, axis=1, keepdims=True)
        return np.ascontiguousarray(out / np.where(norm > 0, norm, 1.0), dtype=np.float32)

    def select(self, rows: np.ndarray) -> "ModalFeatures":
        """The videos ``rows`` (in that order)."""
        return ModalFeatures(self.modalities, {m: b[rows] for m, b in self.blocks.items()},
                             self.present[rows])


def concat_modal(parts: Sequence[ModalFeatures]) -> ModalFeatures:
    """Stack the blocks of several splits (same modalities and dimensions)."""
    first = parts[0]
    for p in parts[1:]:
        if p.modalities != first.modalities or p.dims != first.dims:
            raise DataError(f"cannot concatenate splits with different modalities "
                            f"{first.modalities}{first.dims} and {p.modalities}{p.dims}")
    return ModalFeatures(first.modalities,
                         {m: np.concatenate([p.blocks[m] for p in parts]) for m in first.modalities},
                         np.concatenate([p.present for p in parts]))


__all__ = ["ModalFeatures", "concat_modal"]
