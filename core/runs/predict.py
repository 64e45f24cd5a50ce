"""Prediction with a complete run: fold ensemble x test-time views, ranking, submission."""

from __future__ import annotations

import os
from typing import Callable, Iterator, Sequence

import numpy as np

from core.learn.ensemble import TopPerIdentity, fold_weights
from core.errors import DataError
from core.io.frames import FrameSet
from core.learn.config import TrainConfig, resolve_device
from core.learn.methods import get_method
from core.learn.scoring import pool_opts, score_views, view_stack

ProgressFn = Callable[[float, str], None]

_BLOCK = 4096  # videos scored at once: bounds memory at (views x block x 2C+K)


class _Ensemble:
    """The fold models of a complete run, loaded once."""

    def __init__(self, run_dir: str | os.PathLike, folds: Sequence[int] | None = None) -> None:
        from core.runs.run import Run

        run = Run.open(run_dir)
        state = run.state
        if state != "complete":
            raise DataError(f"{run.path}: run is {state}, not complete; cannot predict with it")
        available = run.completed_folds()
        if folds is None:
            # The refit models (trained on every video) when the run has them, else
            # the cross-validated fold models.
            n_folds = int(run.config().get("folds", 0) or 0)
            refits = [k for k in available if k >= n_folds] if n_folds else []
            chosen = refits or list(available)
        else:
            chosen = [int(k) for k in folds]
        missing = sorted(set(chosen) - set(available))
        if missing or not chosen:
            raise DataError(f"{run.path}: fold(s) {missing or chosen} not available "
                            f"(complete folds: {available})")
        self.run = run
        self.payloads = [run.load_fold(k) for k in chosen]
        self.config = TrainConfig.from_dict(self.payloads[0]["config"])
        self.identity_ids = np.asarray(self.payloads[0]["meta"]["identity_ids"], dtype=np.int64)
        # Predict wherever we are: a run trained on CUDA still predicts on a CPU-only host.
        self.device = "cpu" if self.config.device == "cpu" else resolve_device("auto")
        refit = any(p["meta"].get("refit") for p in self.payloads)
        self.weights = fold_weights([p["val_map"] for p in self.payloads],
                                    "sum" if refit else self.config.ensemble)
        self.models: list = []
        self.knn_ref = None
        if not get_method(self.config.method).trains_network:
            ref = run.load_array("knn_reference")
            self.knn_ref = (ref["X"], ref["ids"], self.identity_ids)
            self.weights = np.ones(1)  # one reference set: all labelled videos
        else:
            from core.learn.model import model_from_checkpoint

            self.models = [model_from_checkpoint(p["meta"]["model_config"], p["state_dict"]).to(self.device)
                           for p in self.payloads]

    def score_blocks(self, frames: FrameSet, *, views: bool | None,
                     progress: ProgressFn | None) -> tuple[np.ndarray, Iterator[tuple[np.ndarray, np.ndarray]]]:
        """Names of the scored (non-empty) videos and an iterator of (rows, scores) blocks."""
        from core.features.pooling import pool_videos
        from core.learn.fusion import is_multimodal, uses_face_frames

        cfg = self.config
        use_views = cfg.views if views is None else bool(views)
        report = progress or (lambda f, m="": None)
        report(0.0, "pooling")
        if is_multimodal(cfg):
            # multimodal: the face file's siblings, pooled and stacked as in training
            data = self.multimodal_data(frames)
            names, X_in = data.names, data.modal.input_matrix(cfg.modalities)
            frames = data.frames if uses_face_frames(cfg) else None
            rows_in_frames = np.arange(len(names))
        else:
            pv = pool_videos(frames, **pool_opts(cfg))
            names, X_in = pv.names, pv.X
            rows_in_frames = np.flatnonzero(np.diff(np.asarray(frames.offsets)) > 0)
        if X_in.shape[1:] != (self._in_dim(),):
            raise DataError(f"{getattr(frames, 'source', '') or 'features'}: features have "
                            f"{X_in.shape[1]} values, the run was trained on {self._in_dim()}")
        n = len(names)

        def blocks() -> Iterator[tuple[np.ndarray, np.ndarray]]:
            for start in range(0, n, _BLOCK):
                rows = np.arange(start, min(start + _BLOCK, n))
                V = view_stack(cfg, X_in[rows], frames, rows_in_frames[rows], use_views)
                if self.knn_ref is not None:
                    total, _ = score_views(cfg, None, V, len(self.identity_ids), device=self.device,
                                            knn_ref=self.knn_ref)
                else:
                    total = None
                    for w, model in zip(self.weights, self.models):
                        s, _ = score_views(cfg, model, V, len(self.identity_ids), device=self.device)
                        total = w * s if total is None else total + w * s
                report(min(1.0, (start + len(rows)) / max(n, 1)), f"{start + len(rows)}/{n} videos")
                yield rows, total.astype(np.float32)

        return names, blocks()

    def multimodal_data(self, source):
        """The videos of a face pickle (or a FrameSet read from one) with the run's modalities."""
        from core.features.modalities import open_multimodal

        path = source.source if isinstance(source, FrameSet) else str(source)
        if not path or not os.path.isfile(path):
            raise DataError(f"{self.run.path}: the run uses {', '.join(self.config.modalities)}; "
                            "give the face pickle's path so its sibling files can be found")
        return open_multimodal(path, None, modalities=self.config.modalities, **pool_opts(self.config))

    def _in_dim(self) -> int:
        if self.knn_ref is not None:
            return int(self.knn_ref[0].shape[1])
        return int(self.payloads[0]["meta"]["model_config"]["in_dim"])


def predict_scores(run_dir: str | os.PathLike, frames: FrameSet, *, views: bool | None = None,
                   folds: Sequence[int] | None = None, progress: ProgressFn | None = None
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ensembled identity scores of every non-empty video of ``frames``.

    Parameters
    ----------
    run_dir : a complete run
    frames : the videos to score (e.g. ``read_features("face_test.pickle")``)
    views : test-time views (max over views per class); default: the run's config
    folds : fold models to use (default all); ``[0]`` gives a single model
    progress : callable(fraction, message), optional

    Returns
    -------
    names : (n,) canonical names of the scored videos (empty videos are skipped)
    scores : (n, C) float32, fold-weighted mean of each model's softmax probability
    identity_ids : (C,) identity ID of each column

    Examples
    --------
    >>> names, S, ids = predict_scores(run_dir, read_features("face_test.pickle"))  # doctest: +SKIP
    >>> S.shape == (len(names), len(ids))  # doctest: +SKIP
    True
    """
    ens = _Ensemble(run_dir, folds)
    names, blocks = ens.score_blocks(frames, views=views, progress=progress)
    C = len(ens.identity_ids)
    scores = np.empty((len(names), C), dtype=np.float32)
    for rows, s in blocks:
        scores[rows] = s
    return names, scores, ens.identity_ids


def predict_submission(run_dir: str | os.PathLike, feats_path: str | os.PathLike | FrameSet,
                       out_path: str | os.PathLike, *, views: bool | None = None,
                       folds: Sequence[int] | None = None,
                       progress: ProgressFn | None = None) -> dict[int, list[str]]:
    """Rank the videos of ``feats_path`` per identity (top 100) and write a submission.

    Memory stays bounded: scores are folded block by block into the running top 100
    per identity, never held as one (n, C) matrix.

    Returns
    -------
    dict ``{identity ID: [video names, best first]}`` as written.

    Examples
    --------
    >>> sub = predict_submission(run_dir, "face_test.pickle", "submission.txt")  # doctest: +SKIP
    """
    from core.io.formats import read_features, write_submission

    ens = _Ensemble(run_dir, folds)
    from core.learn.fusion import is_multimodal

    if is_multimodal(ens.config) and not isinstance(feats_path, FrameSet):
        frames = feats_path  # read with its siblings by score_blocks
    else:
        frames = feats_path if isinstance(feats_path, FrameSet) else read_features(feats_path)
    names, blocks = ens.score_blocks(frames, views=views, progress=progress)
    top = TopPerIdentity(len(ens.identity_ids), top=100)
    for rows, s in blocks:
        top.update(s, rows)
    ranking = top.ranking(names, ens.identity_ids)
    write_submission(out_path, ranking)
    return ranking
