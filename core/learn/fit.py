"""``fit``: cross-validated training of a run (knn / nn / noise) into the run store."""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from core.learn.ensemble import TopPerIdentity, top_k_per_row
from core.errors import DataError
from core.cluster.clusterers import cluster_distractors
from core.learn.config import (TrainConfig, TrainingCancelled, fold_seed,
                               resolve_device)
from core.learn.scoring import frame_rows_of, score_views, view_stack
from core.learn.folds import random_folds, stratified_folds
from core.learn import fusion
from core.learn.methods import fold_progress, get_method
from core.learn.network import build_checkpoint, fold_split, train_network

ProgressFn = Callable[[float, str], None]

# Keys of the config that may differ between an interrupted run and its resumption.
_RESUME_FREE = ("device", "threads")
_SCORE_BLOCK = 4096  # held-out videos scored at once (out-of-fold scores)


@dataclass
class _Prepared:
    names: np.ndarray
    X: np.ndarray
    ids: np.ndarray
    frames: object
    frame_rows: np.ndarray
    identity_ids: np.ndarray
    class_of: np.ndarray        # (n,) class index of labelled rows, -1 for distractors
    fold: np.ndarray            # (n,) fold, -1 = always trained
    noise_rows: np.ndarray
    clusters: np.ndarray        # (n_noise,) DBSCAN labels of noise_rows (-1 unclustered)
    noise_eps: float = float("nan")  # the DBSCAN eps the clusters came from (nan: given)


def _prepare(config: TrainConfig, data, noise_labels: np.ndarray | None) -> _Prepared:
    names = np.asarray(data.names, dtype=object)
    X = fusion.training_matrix(config, data)
    ids = np.asarray(data.ids, dtype=np.int64)
    if X.ndim != 2 or len(X) != len(names) or ids.shape != (len(names),):
        raise DataError(f"training data: X {X.shape}, ids {ids.shape} and {len(names)} names disagree")
    if (ids < 0).any():
        raise DataError(f"training data: negative identity ID {int(ids.min())}")
    if not np.isfinite(X).all():
        bad = names[np.flatnonzero(~np.isfinite(X).all(axis=1))[0]]
        raise DataError(f"training data: video {bad!r} has a non-finite pooled vector")
    identity_ids = np.unique(ids[ids > 0])
    if len(identity_ids) < 2:
        raise DataError(f"training data: need at least 2 identities, got {len(identity_ids)}")
    lab_rows, noise_rows = np.flatnonzero(ids > 0), np.flatnonzero(ids == 0)
    fold = np.full(len(ids), -1, dtype=np.int64)
    fold[lab_rows] = stratified_folds(ids[lab_rows], config.folds, seed=config.seed)
    fold[noise_rows] = random_folds(len(noise_rows), config.folds, seed=fold_seed(config.seed, 1_000_000))
    held = np.bincount(fold[lab_rows][fold[lab_rows] >= 0], minlength=config.folds)
    if (held == 0).any():
        raise DataError(f"training data: fold {int(np.argmin(held))} holds no labelled video "
                        f"(too few videos per identity for {config.folds} folds)")
    class_of = np.full(len(ids), -1, dtype=np.int64)
    class_of[lab_rows] = np.searchsorted(identity_ids, ids[lab_rows])

    noise_eps = float("nan")
    if not get_method(config.method).noise_classes:
        clusters = np.full(len(noise_rows), -1, dtype=np.int64)
    elif noise_labels is not None:
        nl = np.asarray(noise_labels, dtype=np.int64)
        if nl.shape == (len(ids),):
            nl = nl[noise_rows]
        if nl.shape != (len(noise_rows),):
            raise DataError(f"noise_labels has {nl.shape[0] if nl.ndim else 0} entries, expected "
                            f"{len(noise_rows)} (one per distractor) or {len(ids)} (one per video)")
        clusters = nl
    else:
        Xc, clusterable = fusion.cluster_matrix(config, data)
        if clusterable is None:
            clusters, noise_eps = cluster_distractors(Xc[noise_rows], config.eps, config.min_samples)
        else:  # multimodal: faces where present; the others start on shadow classes
            rows = noise_rows[clusterable[noise_rows]]
            clusters = np.full(len(noise_rows), -1, dtype=np.int64)
            if len(rows):
                c, noise_eps = cluster_distractors(Xc[rows], config.eps, config.min_samples)
                clusters[clusterable[noise_rows]] = c
    frames = getattr(data, "frames", None) if fusion.uses_face_frames(config) else None
    frame_rows = frame_rows_of(frames, names) if frames is not None else np.arange(len(names))
    return _Prepared(names, X, ids, frames, frame_rows, identity_ids, class_of, fold,
                     noise_rows, clusters, noise_eps)


def epochs_from_folds(best_epochs: list[int], max_epochs: int) -> int:
    """Epochs of a refit on every video: the folds' median best epoch count.

    ``best_epochs`` are 0-based; a refit sees about ``folds / (folds - 1)`` times the
    data of a fold model per epoch, but a network converges in about the same number of
    passes, so the count carries over as is.

    >>> epochs_from_folds([3, 5, 11, 6, 7], 12)
    7
    """
    if not best_epochs:
        return max_epochs
    return int(min(max_epochs, max(1, round(float(np.median(best_epochs)) + 1))))


def _check_resumable(config: TrainConfig, payload: dict, k: int, run) -> None:
    saved = dict(payload.get("config", {}))
    now = config.to_dict()
    diff = sorted(key for key in set(saved) | set(now)
                  if key not in _RESUME_FREE and saved.get(key) != now.get(key))
    if diff:
        key = diff[0]
        raise DataError(f"{run.path}: fold {k} was trained with {key}={saved.get(key)!r}, "
                        f"not {now.get(key)!r}; cannot resume with a different config")


def _partial_state(config: TrainConfig, run, k: int, meta: dict, epochs: int,
                   report: ProgressFn, fraction: float) -> dict | None:
    """Fold ``k``'s mid-fold state to continue from, or None to train it from epoch 1.

    A different config refuses the resume (as for a complete fold); a state that cannot
    be read, or that does not fit the fold as prepared now, is dropped with a message.
    """
    try:
        state = run.load_partial(k)
    except DataError as exc:
        state, why = None, str(exc)
    else:
        if state is None:
            return None
        _check_resumable(config, state, k, run)
        why = _partial_mismatch(state, meta, epochs)
        if why:
            why = f"{run.path}: fold {k}'s mid-fold state {why}"
    if why:
        report(fraction, f"{why}; fold {k} restarts from epoch 1")
        run.discard_partial(k)
        run.set_status(message=f"{why}; fold {k} restarted from epoch 1")
        return None
    return state


def _partial_mismatch(state: dict, meta: dict, epochs: int) -> str:
    """Why a loaded mid-fold state cannot continue this fold ('' when it can)."""
    saved = state.get("meta") if isinstance(state.get("meta"), dict) else {}
    for key in ("model_config", "n_train", "n_dynamic", "n_clusters", "batch_size"):
        if saved.get(key) != meta[key]:
            return f"was saved with {key}={saved.get(key)!r}, the fold now has {meta[key]!r}"
    if state["epochs"] != epochs or not state["epochs_done"] < epochs:
        return f"holds {state['epochs_done']} of {state['epochs']} epochs, the fold trains {epochs}"
    need = ("model", "optimizer", "labels", "best_state", "best_labels", "best_val_map",
            "best_epoch", "history", "rng_numpy", "rng_torch")
    missing = [key for key in need if key not in state]
    if missing:
        return f"lacks {', '.join(missing)}"
    if len(state["labels"]) != meta["n_train"] or len(state["history"]) != state["epochs_done"]:
        return "is inconsistent (labels or history of the wrong length)"
    from core.learn.model import ModelConfig, build_model

    want = {name: tuple(t.shape) for name, t in
            build_model(ModelConfig(**meta["model_config"]), seed=0).state_dict().items()}
    for key in ("model", "best_state"):
        got = state[key]
        if not isinstance(got, dict) or {n: tuple(getattr(t, "shape", ())) for n, t in got.items()} != want:
            return f"holds {key} weights of another shape"
    return ""


def _phase(config: TrainConfig, k: int, epochs: int, refits: int) -> str:
    if k < config.folds:
        return f"fold {k + 1}/{config.folds}"
    return f"refit {k - config.folds + 1}/{refits} ({epochs} epochs)"


def fit(config: TrainConfig, data, run, *, progress: ProgressFn | None = None,
        resume: bool = False, noise_labels: np.ndarray | None = None, backend=None) -> dict:
    """Train ``config.folds`` cross-validated models of ``data`` into ``run``.

    Parameters
    ----------
    config : TrainConfig
    data : core.features.dataset.LabelledVideos (``names``, ``X``, ``ids`` with 0 = distractor,
        ``frames`` row-aligned, used for test-time views and noise augmentation)
    run : core.runs.Run, created (or resumed) by the caller
    progress : callable(fraction, message), optional
    resume : reuse the folds already complete in ``run`` (their config must match), and
        continue a fold cut short from its mid-fold state (``fold_K.partial.pt``, saved
        after every epoch) at its next epoch, with the result of an uninterrupted run
    noise_labels : DBSCAN labels of the distractors (one per distractor in row order,
        or one per video) to use instead of clustering inside ``fit``
    backend : None (train every network here, one after the other) or an open backend of
        :func:`core.learn.backends.open_backend` (e.g. Ray: the folds at once, then the
        refits); the run store is written here either way, with the same results

    Returns
    -------
    dict
        The summary written to the run (``mAP`` = out-of-fold mAP, ``fold_val_map``,
        ``best_epochs``, ``seconds`` ...), or ``{"state": "cancelled", ...}`` when the
        run's cancel flag stopped it between epochs.

    Examples
    --------
    >>> from core.runs import Run, new_run_dir  # doctest: +SKIP
    >>> run = Run.create(new_run_dir(None, "noise"), TrainConfig().to_dict())  # doctest: +SKIP
    >>> fit(TrainConfig(epochs=10), open_split("face_val.pickle", "val_gt.txt"), run)["mAP"]  # doctest: +SKIP
    0.87
    """
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    import torch

    report = progress or (lambda f, m="": None)
    # Deterministic kernels: free on the CPU, cheap for these small GEMMs on CUDA.
    was_deterministic = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    old_threads = torch.get_num_threads()
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    try:
        return _fit(config, data, run, report, resume, noise_labels, backend)
    except TrainingCancelled as exc:
        run.mark_cancelled(str(exc))
        # the share of work actually done (the run table must not read 100 %)
        report(fold_progress(config.to_dict(), run.completed_folds(), run.partial_info()),
               f"cancelled: {exc}")
        return {"state": "cancelled", "message": str(exc), "completed_folds": run.completed_folds()}
    except KeyboardInterrupt:
        run.interrupt("interrupted (Ctrl-C); resume to finish")
        raise
    except BaseException as exc:
        run.fail(f"{type(exc).__name__}: {exc}")
        raise
    finally:
        torch.use_deterministic_algorithms(was_deterministic)
        torch.set_num_threads(old_threads)


def _fit(config: TrainConfig, data, run, report: ProgressFn, resume: bool,
         noise_labels: np.ndarray | None, backend=None) -> dict:
    from core.learn.metrics import per_identity_ap
    from core.learn.model import model_from_checkpoint
    from core.learn.loop import validation_map

    t_start = time.perf_counter()
    device = resolve_device(config.device)
    config = fusion.resolve_config(config, data)
    run.heartbeat(0.0, "prepare")
    report(0.0, "preparing folds")
    p = _prepare(config, data, noise_labels)
    C, n = len(p.identity_ids), len(p.names)
    done = set(run.completed_folds()) if resume else set()
    knn_ref = None
    method = get_method(config.method)
    if not method.trains_network:
        lab = p.ids > 0
        run.save_array("knn_reference", X=p.X[lab], ids=p.ids[lab], names=p.names[lab])
    if method.noise_classes:
        run.save_array("noise_clusters", names=p.names[p.noise_rows], labels=p.clusters,
                       fold=p.fold[p.noise_rows], eps=np.float64(p.noise_eps))

    kstore = min(config.top_k_store, C)
    oof_idx = np.full((n, kstore), -1, dtype=np.int32)
    oof_val = np.zeros((n, kstore), dtype=np.float32)
    oof_noise = np.zeros(n, dtype=np.float32)
    top = TopPerIdentity(C, top=100)
    fold_maps, best_epochs, n_clusters = [], [], []

    refit_planned = config.refit if method.trains_network else 0
    n_steps = (config.folds + refit_planned) * (config.epochs if method.trains_network else 1)

    def record_epoch(k: int, row: dict, step: int, epochs: int, phase: str) -> None:
        run.append_metric({"fold": k, **row})
        run.heartbeat(0.95 * min(1.0, step / n_steps), phase)
        val = "" if np.isnan(row["val_map"]) else f" val mAP {row['val_map']:.4f}"
        report(0.95 * min(1.0, step / n_steps),
               f"{phase} epoch {row['epoch'] + 1}/{epochs} loss {row['loss']:.3f}{val}")

    def network(k: int, epochs: int, step0: int, phase: str) -> dict:
        """Train fold (or refit) ``k``'s network here, save it and return its payload;
        on resume it continues from the fold's mid-fold state, after every epoch it
        saves one."""
        fraction = 0.95 * min(1.0, step0 / n_steps)

        def start_from(meta: dict) -> dict | None:
            start = _partial_state(config, run, k, meta, epochs, report, fraction) if resume else None
            if start is not None:
                report(0.95 * min(1.0, (step0 + start["epochs_done"]) / n_steps),
                       f"{phase}: continues at epoch {start['epochs_done'] + 1}/{epochs} (resume)")
            return start

        payload, info = train_network(
            config, p, k, epochs, device=device, should_stop=run.cancel_requested,
            on_epoch=lambda row: record_epoch(k, row, step0 + row["epoch"] + 1, epochs, phase),
            start_from=start_from,
            on_state=lambda meta, state: run.save_partial(k, {"config": config.to_dict(),
                                                              "meta": meta, **state}))
        run.save_fold(k, payload, info)
        return payload

    def remote_networks(ks: list[int], epochs: int, step0: int) -> dict[int, dict]:
        """Train networks ``ks`` at once on ``backend`` (core.learn.backends); the driver,
        this process, records their epochs as they arrive and saves each one it gets."""
        steps = itertools.count(step0 + 1)

        def should_stop() -> bool:  # polled while the workers train: the driver is alive
            run.heartbeat()
            return run.cancel_requested()

        return backend.train_networks(
            config, p, ks, epochs, should_stop=should_stop,
            on_epoch=lambda k, row: record_epoch(k, row, next(steps), epochs,
                                                 _phase(config, k, epochs, refit_planned)),
            on_done=run.save_fold)

    # Networks trained by a backend (every pending fold at once), reused by the loops below.
    # A network cut short by a local session (its mid-fold state on disk) continues here.
    remote: dict[int, dict] = {}
    mid = (run.partial_info() or {}).get("fold") if resume else None
    if backend is not None and method.trains_network:
        remote = remote_networks([k for k in range(config.folds) if k not in done and k != mid],
                                 config.epochs, len(done & set(range(config.folds))) * config.epochs)

    for k in range(config.folds):
        tr_lab, val_rows, val_gt = fold_split(p, k, config.folds)
        phase = _phase(config, k, config.epochs, refit_planned)
        if not method.trains_network:
            knn_ref = (p.X[tr_lab], p.ids[tr_lab], p.identity_ids)

        if k in done:
            payload = run.load_fold(k)
            _check_resumable(config, payload, k, run)
            report(0.95 * (k + 1) / (config.folds + refit_planned), f"{phase}: loaded (resume)")
        elif not method.trains_network:
            V = p.X[val_rows][None]
            s, _ = score_views(config, None, V, C, device=device, knn_ref=knn_ref)
            vm = validation_map(s, p.names[val_rows], val_gt, p.identity_ids)
            payload = build_checkpoint(config, k, {}, -1, vm, {"method": config.method,
                                  "identity_ids": p.identity_ids.tolist(), "n_clusters": 0})
            run.save_fold(k, payload, {"val_map": vm, "best_epoch": -1})
            run.append_metric({"fold": k, "epoch": 0, "loss": float("nan"), "val_map": vm, "time": 0.0})
        elif k in remote:
            payload = remote[k]
        else:
            payload = network(k, config.epochs, k * config.epochs, phase)

        # Out-of-fold scores from the saved fold model (identical on resume).
        model = None
        if method.trains_network:
            model = model_from_checkpoint(payload["meta"]["model_config"], payload["state_dict"]).to(device)
        # In row blocks: at the 2019 size a fold's held-out videos x 10k identities x 4
        # views, scored at once, held ~9 GiB beside the training data (the run's peak).
        for b in range(0, len(val_rows), _SCORE_BLOCK):
            rows = val_rows[b:b + _SCORE_BLOCK]
            V = view_stack(config, p.X[rows], p.frames, p.frame_rows[rows], config.views)
            s, z = score_views(config, model, V, C, device=device, knn_ref=knn_ref)
            idx, val = top_k_per_row(s, kstore)
            oof_idx[rows], oof_val[rows], oof_noise[rows] = idx, val, z
            top.update(s, rows)
        fold_maps.append(float(payload["val_map"]))
        best_epochs.append(int(payload["best_epoch"]))
        n_clusters.append(int(payload["meta"].get("n_clusters", 0)))
        if run.cancel_requested() and (k < config.folds - 1 or refit_planned):
            raise TrainingCancelled(f"cancelled after fold {k + 1}")

    # Refit: the folds chose how long to train; now train on every video (nothing held
    # out), which matters most when identities have only a handful of videos each.
    refit_epochs = epochs_from_folds(best_epochs, config.epochs) if refit_planned else 0
    refits = [config.folds + j for j in range(refit_planned)]
    if backend is not None and refits:
        remote.update(remote_networks([k for k in refits if k not in done and k != mid], refit_epochs,
                                      config.folds * config.epochs + len(done & set(refits)) * refit_epochs))
    for j in range(refit_planned):
        k = config.folds + j
        phase = _phase(config, k, refit_epochs, refit_planned)
        if k in done:
            _check_resumable(config, run.load_fold(k), k, run)
            report(0.95 * (k + 1) / (config.folds + refit_planned), f"{phase}: loaded (resume)")
            continue
        if k not in remote:
            network(k, refit_epochs, config.folds * config.epochs + j * refit_epochs, phase)
        if run.cancel_requested() and j < refit_planned - 1:
            raise TrainingCancelled(f"cancelled after refit {j + 1}")

    run.heartbeat(0.97, "out-of-fold scores")
    ranking = top.ranking(p.names, p.identity_ids)
    held = p.fold >= 0
    gt_all: dict[int, list[str]] = {}
    for i, name in zip(p.ids[held & (p.ids > 0)].tolist(), p.names[held & (p.ids > 0)].tolist()):
        gt_all.setdefault(i, []).append(name)
    aps = per_identity_ap(gt_all, ranking)
    oof_map = float(np.mean(list(aps.values()))) if aps else float("nan")
    run.save_array("oof", names=p.names, ids=p.ids, fold=p.fold, identity_ids=p.identity_ids,
                   top_class=oof_idx, top_score=oof_val, noise_prob=oof_noise)
    run.save_json("per_identity_ap", {str(i): a for i, a in aps.items()})
    summary = {
        "method": config.method, **({"modalities": list(config.modalities)}
                                    if fusion.is_multimodal(config) else {}), "mAP": oof_map, "oof_map": oof_map,
        "fold_val_map": fold_maps, "mean_fold_val_map": float(np.mean(fold_maps)),
        "best_epochs": best_epochs, "n_clusters": n_clusters,
        "n_identities": C, "n_videos": n, "n_labelled": int((p.ids > 0).sum()),
        "n_distractors": int(len(p.noise_rows)),
        "n_clustered_distractors": int((p.clusters >= 0).sum()),
        "noise_eps": None if np.isnan(p.noise_eps) else round(float(p.noise_eps), 6),
        "refit_models": refit_planned, "refit_epochs": refit_epochs,
        "resumed_folds": sorted(done), "device": device,
        "backend": "local" if backend is None else backend.name,
        "seconds": round(time.perf_counter() - t_start, 3),
    }
    run.finish(summary)
    report(1.0, f"done: out-of-fold mAP {oof_map:.4f}")
    return summary
