"""Scoring shared by fit and predict: pooling options, test-time view stacks, scores over views.

No torch import at module level (torch and the network loop are imported by :func:`score_views`).
"""

from __future__ import annotations

import numpy as np

from core.io.frames import FrameSet
from core.learn.config import TrainConfig


def frame_rows_of(frames: FrameSet, names: np.ndarray) -> np.ndarray:
    """Row in ``frames`` of each name (identity when the orders agree)."""
    if len(frames.names) == len(names) and np.array_equal(np.asarray(frames.names, dtype=object), names):
        return np.arange(len(names))
    return np.fromiter((frames.index_of(n) for n in names), dtype=np.int64, count=len(names))


def pool_opts(config: TrainConfig) -> dict:
    """The pooling options of ``config`` as keyword arguments of :func:`core.features.pooling.pool_videos`."""
    return {"weighting": config.weighting, "min_quality": config.min_quality, "min_det": config.min_det}


def view_stack(config: TrainConfig, X: np.ndarray, frames: FrameSet | None,
                rows: np.ndarray, use_views: bool) -> np.ndarray:
    """(n_views, n, d): the pooled vectors, plus the other test-time views if asked."""
    if not use_views or frames is None:
        return X[None]
    from core.features.pooling import pool_views

    V = pool_views(frames, rows=rows, **pool_opts(config))
    if V.shape[2] != X.shape[1]:
        # multimodal input: the views change the face block (first) only
        full = np.repeat(X[None], V.shape[0], axis=0)
        full[:, :, :V.shape[2]] = V
        V = full
    V[0] = X  # the "full" view is the pooled vector itself
    return V


# ----------------------------------------------------------------------------- scoring

def score_views(config: TrainConfig, model, V: np.ndarray, n_ids: int, *, device: str,
                 knn_ref: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Scores (n, C) and noise mass (n,), max over the views of ``V`` (n_views, n, d)."""
    import torch

    from core.learn.loop import identity_scores

    best, noise = None, None
    for v in range(V.shape[0]):
        if knn_ref is not None:
            from core.learn.methods import get_method

            s = get_method(config.method).scorer(config, knn_ref, V[v])
            z = np.zeros(len(s), np.float32)
        else:
            Xv = torch.as_tensor(np.ascontiguousarray(V[v]), device=device)
            s, z = identity_scores(model, Xv, n_ids, score_s=config.score_s)
        best = s if best is None else np.maximum(best, s, out=best)
        noise = z if noise is None else np.minimum(noise, z, out=noise)
    return best, noise
