"""One fold of network training: the epoch loop, relabelling, validation, best epoch.

Reads top to bottom like nanoGPT's ``train.py``: the whole training set is one
tensor on the device, indices are shuffled per epoch, no DataLoader. After every
epoch the dynamically labelled noise samples take the model's prediction
(:func:`core.learn.noise_labels.relabel_noise`) and the fold's held-out videos are
ranked per identity and scored with the official mAP; the best epoch's weights win.

After every epoch but the last, ``on_state`` receives the fold's whole state
(:func:`fold_state`: weights, optimiser, labels, best so far, history, RNGs); given
back as ``resume_from``, training continues with the next epoch exactly as if it had
never stopped.
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
    scores, noise = net.class_probs(X, n_identities, s=score_s, rest_mass=True)
    return scores.cpu().numpy(), noise.cpu().numpy()


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
    on_state: Callable[[dict], None] | None = None,
    resume_from: dict | None = None,
) -> FoldResult:
    """Train one fold; return the weights of the epoch with the best validation mAP.

    ``on_epoch(row)`` receives ``{"epoch", "loss", "val_map", "time", "relabelled",
    "shadow_weight"}`` after every epoch; then ``on_state(state)`` (every epoch but the
    last) receives the :func:`fold_state` to save; ``should_stop()`` is checked between
    epochs and raises :class:`TrainingCancelled` when true. ``resume_from``, such a state
    of this very fold (same data, config and ``rng`` seed; the caller checks), continues
    training from its next epoch with the same result as an uninterrupted fold.
    """
    device = data.X.device
    net = build_model(model_config, seed=seed).to(device)
    opt = make_optimizer(net, lr=lr, weight_decay=weight_decay)
    C, K = data.n_identities, data.n_clusters
    n = data.X.shape[0]
    y = data.y.copy()
    dyn_rows = np.flatnonzero(data.dynamic)
    best = (-math.inf, -1, None)
    history: list[dict] = []
    first = 0
    if resume_from is not None:
        first, y, best, history = _restore(resume_from, net, opt, rng, device)
    y_t = torch.as_tensor(y, device=device)
    for epoch in range(first, epochs):
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
                pred = net.predict_class(data.X[torch.as_tensor(dyn_rows, device=device)])
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
        if on_state is not None and epoch < epochs - 1:  # after the last, the fold's checkpoint
            on_state(fold_state(net, opt, rng, epoch=epoch, epochs=epochs, labels=y, best=best,
                                history=history))
        if should_stop is not None and epoch < epochs - 1 and should_stop():
            raise TrainingCancelled(f"cancelled after epoch {epoch + 1}")

    val_map, best_epoch, (state, labels) = best
    state = {k: v.detach().cpu() for k, v in state.items()}
    return FoldResult(state_dict=state, model_config=model_config, best_epoch=best_epoch,
                      val_map=float(val_map), history=history, final_labels=labels)


def fold_state(net: VideoNet, opt: torch.optim.Optimizer, rng: np.random.Generator, *,
               epoch: int, epochs: int, labels: np.ndarray, best: tuple, history: list[dict]) -> dict:
    """Everything :func:`train_fold` needs to continue after ``epoch`` (0-based), as plain values.

    Tensors stay where they are (``torch.save`` copies them out); the RNG states are
    the numpy generator's ``bit_generator.state`` and torch's CPU (and CUDA) state,
    which dropout draws from.
    """
    best_map, best_epoch, (best_state, best_labels) = best
    where = next(net.parameters()).device
    return {
        "epochs_done": epoch + 1, "epochs": int(epochs),
        "model": net.state_dict(), "optimizer": opt.state_dict(),
        "labels": torch.from_numpy(labels.copy()),
        "best_val_map": float(best_map), "best_epoch": int(best_epoch),
        "best_state": best_state, "best_labels": torch.from_numpy(best_labels.copy()),
        "history": [dict(r) for r in history],
        "rng_numpy": rng.bit_generator.state, "rng_torch": torch.get_rng_state(),
        "rng_cuda": torch.cuda.get_rng_state(where) if where.type == "cuda" else None,
    }


def _restore(state: dict, net: VideoNet, opt: torch.optim.Optimizer, rng: np.random.Generator,
             device: torch.device) -> tuple[int, np.ndarray, tuple, list[dict]]:
    # the inverse of fold_state: (first epoch to train, labels, best, history)
    net.load_state_dict(state["model"])
    opt.load_state_dict(state["optimizer"])
    rng.bit_generator.state = state["rng_numpy"]
    torch.set_rng_state(state["rng_torch"].cpu())
    if state.get("rng_cuda") is not None and device.type == "cuda":
        torch.cuda.set_rng_state(state["rng_cuda"].cpu(), device)
    best_state = {k: v.to(device) for k, v in state["best_state"].items()}
    best = (float(state["best_val_map"]), int(state["best_epoch"]),
            (best_state, _numpy(state["best_labels"])))
    return int(state["epochs_done"]), _numpy(state["labels"]), best, [dict(r) for r in state["history"]]


def _numpy(a) -> np.ndarray:
    return a.numpy().copy() if isinstance(a, torch.Tensor) else np.array(a, copy=True)
