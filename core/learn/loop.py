"""One fold of network training: the epoch loop, relabelling, validation, best epoch.

Reads top to bottom like nanoGPT's ``train.py``: the whole training set is one
tensor on the device, indices are shuffled per epoch, no DataLoader. After every
epoch the dynamically labelled noise samples take the model's prediction
(:func:`core.learn.noise_labels.relabel_noise`) and the fold's held-out videos are
ranked per identity and scored with the official mAP; the best epoch's weights win.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from core.learn.metrics import mean_average_precision, rank_videos
from core.learn.model import ModelConfig, VideoNet, build_model
from core.learn.noise_labels import relabel_noise, shadow_weight
from core.learn.config import TrainingCancelled


@dataclass
class FoldData:
    """Everything one fold trains and validates on (device tensors + numpy views).

    ``y`` holds class indices in ``0..n_classes-1``; ``dynamic`` marks the
    unclustered noise samples whose label changes after every epoch.
    """

    X: torch.Tensor            # (n_train, d) float32, on device
    y: np.ndarray              # (n_train,) int64
    dynamic: np.ndarray        # (n_train,) bool
    n_identities: int
    n_clusters: int
    n_classes: int
    X_val: torch.Tensor        # (n_val, d)
    val_names: np.ndarray      # (n_val,) canonical names (labelled + distractors)
    val_gt: dict[int, list[str]]
    identity_ids: np.ndarray   # (C,) 1-based IDs of the identity classes
    history: list[dict] = field(default_factory=list)


@dataclass
class FoldResult:
    state_dict: dict
    model_config: ModelConfig
    best_epoch: int
    val_map: float
    history: list[dict]
    final_labels: np.ndarray


def identity_scores(net: VideoNet, X: torch.Tensor, n_identities: int, *,
                    score_s: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Softmax probability of every identity class over *all* classes, and the noise mass.

    Returns
    -------
    scores : (n, C) float32, ``p(identity c | video)``
    noise : (n,) float32, total probability of the noise classes (0 without them)
    """
    net.eval()
    logp = net.log_probs(X, s=score_s)
    p = logp.exp()
    scores = p[:, :n_identities]
    noise = p[:, n_identities:].sum(dim=1)
    return scores.cpu().numpy().astype(np.float32), noise.cpu().numpy().astype(np.float32)


def validation_map(scores: np.ndarray, names: np.ndarray, gt: dict[int, list[str]],
                   identity_ids: np.ndarray) -> float:
    """Official mAP of ranking ``names`` by ``scores`` against the held-out ground truth."""
    if not gt:
        return float("nan")
    ranking = rank_videos(scores, names, identity_ids, top=100)
    return float(mean_average_precision(gt, ranking))


def make_optimizer(net: VideoNet, *, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """Adam; the fused kernel where this torch has it (3x faster steps on a wide head)."""
    try:
        return torch.optim.Adam(net.parameters(), lr=lr, weight_decay=weight_decay, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.Adam(net.parameters(), lr=lr, weight_decay=weight_decay)


def train_fold(
    data: FoldData,
    *,
    model_config: ModelConfig,
    epochs: int,
    batch_size: int,
    lr: float,
    weight_decay: float,
    shadow_weights: tuple[float, float],
    score_s: float | None,
    seed: int,
    rng: np.random.Generator,
    on_epoch: Callable[[dict], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> FoldResult:
    """Train one fold; return the weights of the epoch with the best validation mAP.

    ``on_epoch(row)`` receives ``{"epoch", "loss", "val_map", "time", "relabelled",
    "shadow_weight"}`` after every epoch; ``should_stop()`` is checked between epochs
    and raises :class:`TrainingCancelled` when true.
    """
    device = data.X.device
    net = build_model(model_config, seed=seed).to(device)
    opt = make_optimizer(net, lr=lr, weight_decay=weight_decay)
    C, K = data.n_identities, data.n_clusters
    n = data.X.shape[0]
    y = data.y.copy()
    dyn_rows = np.flatnonzero(data.dynamic)
    y_t = torch.as_tensor(y, device=device)
    best = (-math.inf, -1, None)
    history: list[dict] = []
    for epoch in range(epochs):
        t0 = time.perf_counter()
        w_dyn = shadow_weight(epoch, epochs, start=shadow_weights[0], end=shadow_weights[1])
        weight = torch.ones(n, device=device)
        if len(dyn_rows):
            weight[torch.as_tensor(dyn_rows, device=device)] = w_dyn
        net.train()
        perm = torch.as_tensor(rng.permutation(n), device=device)
        total, seen = 0.0, 0
        for start in range(0, n, batch_size):
            idx = perm[start:start + batch_size]
            if len(idx) < 2 and model_config.batch_norm:
                continue  # BatchNorm cannot train on a single sample
            _, loss = net(data.X[idx], y_t[idx], weight[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
            seen += len(idx)

        changed = 0
        if len(dyn_rows):
            net.eval()
            with torch.no_grad():
                pred = net.log_probs(data.X[torch.as_tensor(dyn_rows, device=device)]).argmax(1)
            new = relabel_noise(pred.cpu().numpy(), C, K)
            changed = int((new != y[dyn_rows]).sum())
            y[dyn_rows] = new
            y_t = torch.as_tensor(y, device=device)

        if data.val_gt:
            scores, _ = identity_scores(net, data.X_val, C, score_s=score_s)
            val_map = validation_map(scores, data.val_names, data.val_gt, data.identity_ids)
        else:
            val_map = float("nan")  # a refit on every video: nothing held out
        row = {"epoch": epoch, "loss": total / max(seen, 1), "val_map": val_map,
               "time": time.perf_counter() - t0, "relabelled": changed, "shadow_weight": w_dyn}
        history.append(row)
        # With a validation set the best epoch wins; without one, the last.
        if val_map > best[0] or best[2] is None or (not data.val_gt and epoch == epochs - 1):
            best = (val_map, epoch, (copy.deepcopy(net.state_dict()), y.copy()))
        if on_epoch is not None:
            on_epoch(row)
        if should_stop is not None and epoch < epochs - 1 and should_stop():
            raise TrainingCancelled(f"cancelled after epoch {epoch + 1}")

    val_map, best_epoch, (state, labels) = best
    state = {k: v.detach().cpu() for k, v in state.items()}
    return FoldResult(state_dict=state, model_config=model_config, best_epoch=best_epoch,
                      val_map=float(val_map), history=history, final_labels=labels)
