"""One network of a run (fold ``k`` or a refit): its training set, its training, its checkpoint.

Pure: nothing here writes the run store or reads anything but its arguments (and torch's
settings), so the same function trains a network in ``fit``'s process and in a Ray worker
(:mod:`core.learn.backends`) with the same bytes for the same seed and thread count.
"""

from __future__ import annotations

import json
import time
from typing import Callable

import numpy as np

from core.learn import fusion
from core.learn.config import TrainConfig, auto_batch_size, fold_seed
from core.learn.methods import get_method
from core.learn.noise_labels import compact_clusters, noise_targets, random_shadow_labels
from core.learn.scoring import pool_opts


def fold_split(p, k: int, folds: int) -> tuple[np.ndarray, np.ndarray, dict]:
    """(labelled training rows, held-out rows, held-out ground truth) of network ``k``:
    fold ``k`` holds its rows out; a refit (``k >= folds``) trains on every labelled video."""
    if k >= folds:
        return np.flatnonzero(p.ids > 0), np.zeros(0, dtype=np.int64), {}
    val_rows = np.flatnonzero(p.fold == k)
    lab_val = val_rows[p.ids[val_rows] > 0]
    val_gt: dict[int, list[str]] = {}
    for i, name in zip(p.ids[lab_val].tolist(), p.names[lab_val].tolist()):
        val_gt.setdefault(i, []).append(name)
    return np.flatnonzero((p.ids > 0) & (p.fold != k)), val_rows, val_gt


def _noise_training_set(config: TrainConfig, p, k: int, rng: np.random.Generator):
    """(X, y, dynamic, K) of the fold's training distractors (plus augmentation)."""
    C = len(p.identity_ids)
    in_train = p.fold[p.noise_rows] != k
    rows = p.noise_rows[in_train]
    cl, K = compact_clusters(p.clusters[in_train])
    y, dynamic = noise_targets(cl, C)
    y[dynamic] = random_shadow_labels(int(dynamic.sum()), C, K, rng=rng)
    X = p.X[rows]
    # augmentation joins and cuts face frames: distractors without a face take no part
    framed = rows if p.frames is None or not fusion.is_multimodal(config) else \
        rows[np.diff(np.asarray(p.frames.offsets))[p.frame_rows[rows]] > 0]
    if config.augment and p.frames is not None and len(framed) >= 2:
        from core.features.pooling import augment_noise

        n_default = max(1, len(rows) // 4)
        n_join = n_default if config.n_join is None else config.n_join
        n_cut = n_default if config.n_cut is None else config.n_cut
        X_aug, sources = augment_noise(p.frames, p.frame_rows[framed], rng=rng, n_join=n_join,
                                       n_cut=n_cut, **pool_opts(config))
        X_aug = fusion.widen_face_rows(config, X_aug)
        if len(sources):
            # A cut piece shows the same person as its source: inherit a cluster class.
            label_of = {str(p.names[r]): (int(t), bool(d)) for r, t, d in zip(rows, y, dynamic)}
            y_aug = np.empty(len(sources), dtype=np.int64)
            dyn_aug = np.ones(len(sources), dtype=bool)
            for i, src in enumerate(sources):
                if src.startswith("cut:"):
                    t, d = label_of.get(src[4:src.rindex("[")], (-1, True))
                    if not d:
                        y_aug[i], dyn_aug[i] = t, False
            y_aug[dyn_aug] = random_shadow_labels(int(dyn_aug.sum()), C, K, rng=rng)
            X = np.concatenate([X, X_aug])
            y = np.concatenate([y, y_aug])
            dynamic = np.concatenate([dynamic, dyn_aug])
    return X, y, dynamic, K


def build_checkpoint(config: TrainConfig, k: int, state_dict: dict, best_epoch: int, val_map: float,
                     meta: dict) -> dict:
    """The checkpoint of network ``k`` as ``Run.save_fold`` stores it (carries its config)."""
    # Plain values through JSON: fresh objects, so torch.save's bytes do not depend on
    # where they came from (an interned "cpu" shared with torch's own device tag pickles
    # as a back-reference), and a Ray worker's checkpoint is the local one byte for byte.
    return {"config": json.loads(json.dumps(config.to_dict())), "state_dict": state_dict, "fold": k,
            "best_epoch": int(best_epoch), "val_map": float(val_map), "meta": json.loads(json.dumps(meta))}


def train_network(config: TrainConfig, p, k: int, epochs: int, *, device: str,
                  on_epoch: Callable[[dict], None] | None = None,
                  should_stop: Callable[[], bool] | None = None,
                  start_from: Callable[[dict], dict | None] | None = None,
                  on_state: Callable[[dict, dict], None] | None = None) -> tuple[dict, dict]:
    """Train network ``k`` of a run: fold ``k`` (``k < config.folds``) or a refit on every video.

    ``p`` is the run's prepared data (``core.learn.fit``: vectors, labels, folds, noise
    clusters, frames).

    Writes nothing and reads no global state but torch's: seeded by
    ``fold_seed(config.seed, k)``, so any process with the same torch build, thread
    count, deterministic setting and device gives the same bytes (a Ray worker of
    :mod:`core.learn.backends` runs this very function). ``start_from(meta)`` may
    return a mid-fold state to continue from (``meta`` as in the checkpoint);
    ``on_state(meta, state)`` receives the state after every epoch but the last
    (:func:`core.learn.loop.train_fold`).

    Returns
    -------
    (payload, info) : the checkpoint for ``Run.save_fold`` and its ``.done`` marker's info
    """
    import torch

    from core.learn.loop import FoldData, train_fold
    from core.learn.model import ModelConfig

    method = get_method(config.method)
    C = len(p.identity_ids)
    tr_lab, val_rows, val_gt = fold_split(p, k, config.folds)
    seed = fold_seed(config.seed, k)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    X_tr, y_tr, dyn = p.X[tr_lab], p.class_of[tr_lab], np.zeros(len(tr_lab), bool)
    K = 0
    if method.noise_classes:
        Xn, yn, dn, K = _noise_training_set(config, p, k, rng)
        X_tr, y_tr, dyn = (np.concatenate([X_tr, Xn]), np.concatenate([y_tr, yn]),
                           np.concatenate([dyn, dn]))
    n_classes = method.n_classes(C, K)
    mc = ModelConfig(in_dim=p.X.shape[1], emb_dim=config.emb_dim, n_classes=n_classes,
                     s=config.s, m=config.m, batch_norm=config.batch_norm,
                     dropout=config.dropout, head_init=config.head_init,
                     head_sample=config.head_sample, **fusion.model_options(config))
    fd = FoldData(X=torch.as_tensor(X_tr, device=device), y=y_tr, dynamic=dyn,
                  n_identities=C, n_clusters=K, n_classes=n_classes,
                  X_val=torch.as_tensor(p.X[val_rows], device=device),
                  val_names=p.names[val_rows], val_gt=val_gt, identity_ids=p.identity_ids)
    t_fold = time.perf_counter()
    batch = config.batch_size or auto_batch_size(len(X_tr))
    refit = k >= config.folds
    meta = {"method": config.method, "model_config": mc.to_dict(),
            "identity_ids": p.identity_ids.tolist(), "n_clusters": K,
            "n_train": int(len(X_tr)), "n_dynamic": int(dyn.sum()), "refit": refit,
            "batch_size": batch}
    res = train_fold(fd, model_config=mc, epochs=epochs, batch_size=batch,
                     lr=config.lr, weight_decay=config.weight_decay,
                     shadow_weights=(config.shadow_weight_start, config.shadow_weight_end),
                     score_s=config.score_s, seed=seed, rng=rng, on_epoch=on_epoch,
                     should_stop=should_stop,
                     on_state=None if on_state is None else (lambda state: on_state(meta, state)),
                     resume_from=None if start_from is None else start_from(meta))
    payload = build_checkpoint(config, k, res.state_dict, res.best_epoch, res.val_map, meta)
    info = {"val_map": res.val_map, "best_epoch": res.best_epoch,
            "seconds": round(time.perf_counter() - t_fold, 3), "n_clusters": K, "refit": refit}
    return payload, info
