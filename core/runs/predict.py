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
            # A complete run has every fold and every refit (docs/RECOGNITION.md): one
            # deleted or half-written is damage, never "predict with fewer" without a word.
            n_folds = run.config().get("folds")
            if isinstance(n_folds, bool) or not isinstance(n_folds, int) or n_folds < 1:
                raise DataError(f"{run.path}/config.json: 'folds' is {n_folds!r}, not a count")
            n_refit = (run.summary() or {}).get("refit_models", 0)
            if isinstance(n_refit, bool) or not isinstance(n_refit, int) or n_refit < 0:
                raise DataError(f"{run.path}/summary.json: 'refit_models' is {n_refit!r}, not a count")
            expected = list(range(n_folds + n_refit))
            if available != expected:
                lost = sorted(set(expected) - set(available))
                raise DataError(f"{run.path}: run is damaged: fold(s) {lost or available} of "
                                f"{n_folds} folds + {n_refit} refits missing or incomplete "
                                f"(fold_K.pt + fold_K.done.json)")
        # Default: every model of the run, the cross-validated folds and the refits on
        # every video alike (docs/RECOGNITION.md: the ensemble of both beat either).
        chosen = list(available) if folds is None else [int(k) for k in folds]
        missing = sorted(set(chosen) - set(available))
        if missing or not chosen:
            raise DataError(f"{run.path}: fold(s) {missing or chosen} not available "
                            f"(complete folds: {available})")
        self.run = run
        self.payloads = [run.load_fold(k) for k in chosen]
        self.identity_ids = _check_payloads(run, chosen, self.payloads)
        self.config = TrainConfig.from_dict(self.payloads[0]["config"])
        # Predict wherever we are: a run trained on CUDA still predicts on a CPU-only host.
        self.device = "cpu" if self.config.device == "cpu" else resolve_device("auto")
        # A refit model has no held-out score: it weighs as much as the mean fold model.
        maps = np.array([p["val_map"] for p in self.payloads], dtype=np.float64)
        if np.isnan(maps).any():
            known = maps[~np.isnan(maps)]
            maps[np.isnan(maps)] = known.mean() if len(known) else 1.0
        self.weights = fold_weights(maps.tolist(), self.config.ensemble)
        self.models: list = []
        self.knn_ref = None
        if not get_method(self.config.method).trains_network:
            ref = run.load_array("knn_reference")
            X, ids = ref.get("X"), ref.get("ids")
            where = f"{run.path}/knn_reference.npz"
            if X is None or ids is None or X.ndim != 2 or ids.shape != (X.shape[0],):
                raise DataError(f"{where}: expected arrays X (n, d) and ids (n,)")
            if not np.issubdtype(X.dtype, np.floating) or not np.isfinite(X).all():
                raise DataError(f"{where}: X holds NaN, inf or non-numbers")
            if not np.isin(ids, self.identity_ids).all():
                raise DataError(f"{where}: ids name identities absent from the run's identity list")
            self.knn_ref = (X, ids, self.identity_ids)
            self.weights = np.ones(1)  # one reference set: all labelled videos
        else:
            from core.learn.model import model_from_checkpoint

            self.models = []
            for k, p in zip(chosen, self.payloads):
                try:
                    net = model_from_checkpoint(p["meta"]["model_config"], p["state_dict"])
                except (RuntimeError, TypeError, ValueError, KeyError) as exc:
                    raise DataError(f"{run.path}/fold_{k}.pt: weights do not fit the model: "
                                    f"{' '.join(str(exc).split())[:160]}") from None
                self.models.append(net.to(self.device))

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
                        s *= np.float32(w)
                        total = s if total is None else np.add(total, s, out=total)
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


def _check_payloads(run, chosen: Sequence[int], payloads: list[dict]) -> np.ndarray:
    """The identity IDs shared by every fold; DataError naming the fold file otherwise.

    Refuses what would give an empty or wrong submission: missing entries, NaN or
    inf weights or validation mAP, an identity list that is not the same in every
    fold, or that does not match the model's number of classes.
    """
    import torch

    first = None
    for k, p in zip(chosen, payloads):
        where = f"{run.path}/fold_{k}.pt"
        for key in ("config", "state_dict", "meta", "val_map"):
            if key not in p:
                raise DataError(f"{where}: checkpoint has no {key!r} entry")
        meta, state = p["meta"], p["state_dict"]
        if not isinstance(meta, dict) or not isinstance(state, dict) or not isinstance(p["config"], dict):
            raise DataError(f"{where}: checkpoint entries 'config', 'meta', 'state_dict' must be dicts")
        raw = meta.get("identity_ids")
        try:
            ids = np.asarray(raw, dtype=np.int64)
        except (TypeError, ValueError, OverflowError):
            raise DataError(f"{where}: identity list is not a list of integers") from None
        if ids.ndim != 1 or ids.size == 0 or (ids < 1).any() or len(np.unique(ids)) != ids.size:
            raise DataError(f"{where}: identity list must be distinct integers >= 1, "
                            f"got {ids.size} entries")
        if first is None:
            first = ids
        elif not np.array_equal(ids, first):
            raise DataError(f"{where}: identity list ({ids.size} identities) differs from "
                            f"fold {chosen[0]}'s ({first.size})")
        val = p["val_map"]
        refit = bool(meta.get("refit")) if isinstance(meta, dict) else False
        # A refit model trained on every video has nothing held out: its val_map is NaN.
        if (isinstance(val, bool) or not isinstance(val, (int, float))
                or not (np.isfinite(val) or (refit and np.isnan(val)))):
            raise DataError(f"{where}: val_map is {val!r}, not a finite number")
        for name, t in state.items():
            if not isinstance(t, torch.Tensor):
                raise DataError(f"{where}: weight {str(name)[:60]!r} is not a tensor")
            if t.is_floating_point() and not bool(torch.isfinite(t).all()):
                raise DataError(f"{where}: weight {str(name)[:60]!r} holds NaN or inf")
        mc = meta.get("model_config")
        if _trains_network(meta.get("method", "knn")):
            if not isinstance(mc, dict) or not isinstance(mc.get("n_classes"), int):
                raise DataError(f"{where}: no model_config with n_classes")
            C, K = ids.size, meta.get("n_clusters", 0)
            want = C if meta.get("method") == "nn" else 2 * C + (K if isinstance(K, int) else -10**9)
            if mc["n_classes"] != want:
                raise DataError(f"{where}: the model has {mc['n_classes']} classes but the identity "
                                f"list holds {C} identities ({meta.get('method')}: expected {want})")
    assert first is not None
    return first


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


def _trains_network(method: object) -> bool:
    """Whether a checkpoint of this method must hold a network (registry; unknown: yes)."""
    try:
        return bool(get_method(str(method)).trains_network)
    except ValueError:
        return True
