"""Training options (:class:`TrainConfig`), the device and fold seeds.

No torch import at module level: the dashboard builds configs without paying for it.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, fields
from typing import Callable

import numpy as np

from core.learn.ensemble import ENSEMBLES
from core.learn.methods import method_names

ProgressFn = Callable[[float, str], None]



#: Options of multimodal runs, left out of a face-only config's dict.
_MULTIMODAL_KEYS = ("modalities", "modal_dims", "fusion", "modal_dropout")


class TrainingCancelled(Exception):
    """Raised between epochs when the run's cancel flag is set."""


@dataclass
class TrainConfig:
    """Every option of a training run (stored in the run and in each checkpoint).

    Attributes
    ----------
    method : a registered training method (:mod:`core.learn.methods`: "knn" | "nn" | "noise")
    folds : cross-validation folds (>= 2)
    epochs : most epochs of a fold model; the epoch with the best validation mAP wins
    batch_size : ``None`` (default) = :func:`auto_batch_size`, about 16 optimiser steps
        per epoch whatever the data's size (a fixed 256 gave a few-hundred-video set one
        step an epoch: an untrained network)
    lr, weight_decay : Adam
    s, m : ArcFace scale and margin; emb_dim, batch_norm, dropout : the embedding
    head_init : std of the class weights at initialisation (default 0.01; ``None`` =
        Xavier). The weights are normalised in the forward pass, so under Adam a class
        direction turns at a rate inversely proportional to its norm: Xavier's norm
        grows as the number of classes falls, a fixed small std turns every head
        equally fast (docs/RECOGNITION.md)
    refit : networks trained on *every* labelled video and distractor after the folds,
        for the folds' median best epoch count (default 2). Prediction ensembles the
        fold models and the refits; with 3-6 videos per identity, holding out a fold
        costs a fold model a large share of its identity's videos
    score_s : inference scale of the scores (None = ``s``). At s=64 the softmax of a
        confident video is exactly 1.0 in float32, so true videos and look-alike
        distractors tie and fall back to file order; 32 keeps them apart (demo: +0.3
        mAP points for a single model, see benchmarks/bench_ablation.py)
    eps, min_samples : DBSCAN of the distractors (noise mode); ``eps=None`` (default)
        picks it from the data (core.cluster.eps_choice: the most clusters at or below the
        k-distance knee, before the largest cluster doubles). The original 1.2 suits real face features but merges the
        crowded synthetic distractors into one cluster (demo: 0.9837 vs 0.9906 mAP)
    weighting, min_quality, min_det : pooling options (views, augmentation, predict)
    augment, n_join, n_cut : extra noise videos per fold (None = a quarter of the
        fold's training distractors each)
    shadow_weight_start, shadow_weight_end : loss-weight ramp of dynamic noise
    ensemble : "sum" | "map_weighted"; views : test-time views (max over views)
    knn_k, knn_agg : KNN baseline options
    seed, device ("auto" = CUDA when present), top_k_store (classes kept per video)
    modalities : the modalities the run uses (core.io.modalities.MODALITIES); None = every
        one the data holds; ("face",) is the face-only method, unchanged.
        modal_dims: their dimensions (set by fit); fusion: "concat" | "gated" and
        modal_dropout: training modality dropout (core.learn.fusion)
    threads : CPU threads of torch while training (None = torch's default, all cores).
        Measured on 2 cores, demo noise run: 13-16 s with 2 threads vs 22-27 s with 1
        at load ~2; but when the cores are heavily oversubscribed, busy-waiting OpenMP
        threads stall (a demo nn run took 373 s with 2 threads at load ~6 vs 57 s with
        1 at load ~10): use 1 on a crowded machine. Same scores either way here.
    """

    method: str = "noise"
    folds: int = 5
    epochs: int = 12
    batch_size: int | None = None
    lr: float = 1e-3
    weight_decay: float = 0.0
    s: float = 64.0
    m: float = 0.5
    emb_dim: int = 512
    batch_norm: bool = False
    dropout: float = 0.0
    head_init: float | None = 0.01
    score_s: float | None = 32.0
    eps: float | None = None
    min_samples: int = 2
    weighting: str = "quality"
    min_quality: float | None = None
    min_det: float | None = None
    augment: bool = True
    n_join: int | None = None
    n_cut: int | None = None
    shadow_weight_start: float = 0.1
    shadow_weight_end: float = 0.6
    ensemble: str = "sum"
    views: bool = True
    knn_k: int = 5
    knn_agg: str = "mean"
    seed: int = 0
    device: str = "auto"
    top_k_store: int = 20
    threads: int | None = None
    refit: int = 2
    modalities: tuple[str, ...] | None = None
    modal_dims: tuple[int, ...] | None = None
    fusion: str = "concat"
    modal_dropout: float = 0.2

    def __post_init__(self) -> None:
        if self.method not in method_names():
            raise ValueError(f"unknown method {self.method!r}; choose one of {', '.join(method_names())}")
        if self.ensemble not in ENSEMBLES:
            raise ValueError(f"unknown ensemble {self.ensemble!r}; choose one of {', '.join(ENSEMBLES)}")
        for name in ("folds",):
            if getattr(self, name) < 2:
                raise ValueError(f"{name} must be >= 2, got {getattr(self, name)}")
        if self.batch_size is not None and self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1 or None (automatic), got {self.batch_size}")
        for name in ("epochs", "emb_dim", "min_samples", "knn_k", "top_k_store"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.refit < 0:
            raise ValueError(f"refit must be >= 0, got {self.refit}")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads must be >= 1 or None, got {self.threads}")
        if not self.lr > 0 or not self.s > 0:
            raise ValueError(f"lr and s must be > 0, got {self.lr}, {self.s}")
        if self.eps is not None and not (math.isfinite(self.eps) and self.eps > 0):
            raise ValueError(f"eps must be > 0 (or None for automatic), got {self.eps}")
        if not 0 <= self.m < math.pi / 2:
            raise ValueError(f"margin m must be in [0, pi/2), got {self.m}")
        if self.modalities is not None:
            from core.io.modalities import check_modalities

            self.modalities = check_modalities(self.modalities)
        if self.modal_dims is not None:
            self.modal_dims = tuple(int(d) for d in self.modal_dims)
        if self.fusion not in ("gated", "concat"):
            raise ValueError(f"unknown fusion {self.fusion!r}; choose one of gated, concat")
        if not 0 <= self.modal_dropout < 1:
            raise ValueError(f"modal_dropout must be in [0, 1), got {self.modal_dropout}")
        if self.device not in ("auto", "cpu") and not self.device.startswith("cuda"):
            raise ValueError(f"device must be 'auto', 'cpu' or 'cuda[:N]', got {self.device!r}")

    def to_dict(self) -> dict:
        """Plain dict (JSON-able). A face-only config leaves the multimodal keys out, so
        its checkpoints are those of the face-only code, byte for byte."""
        d = asdict(self)
        if self.modalities is None or tuple(self.modalities) == ("face",):
            for key in _MULTIMODAL_KEYS:
                d.pop(key)
        else:
            d["modalities"] = list(self.modalities)
            d["modal_dims"] = None if self.modal_dims is None else list(self.modal_dims)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        """Build from a dict, ignoring keys that are not options (e.g. ``data``)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


# ----------------------------------------------------------------------------- helpers

def auto_batch_size(n_train: int) -> int:
    """Batch size for ``n_train`` training samples: about 16 steps per epoch.

    The power of two nearest ``n_train / 16``, within 32..512. A fixed batch makes the
    number of optimiser steps per epoch a property of the data's size: 256 gives a
    few-hundred-video dataset one or two steps an epoch (a network that has barely
    moved after 12 epochs) and a 2019-size one hundreds. With this rule every dataset
    gets about 16 steps per epoch, up to the 512 that keeps large sets fast.

    >>> auto_batch_size(300), auto_batch_size(4500), auto_batch_size(200_000)
    (32, 256, 512)
    """
    n = max(int(n_train), 1)
    return int(min(512, max(32, 2 ** round(math.log2(n / 16)) if n >= 16 else 32)))


def resolve_device(device: str = "auto") -> str:
    """``"cuda"`` when asked for ``"auto"`` and CUDA is present, else ``"cpu"``."""
    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        # cuBLAS needs this for deterministic matmuls; must be set before its first use.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r} requested but CUDA is not available")
    return device


def fold_seed(seed: int, fold: int) -> int:
    """Independent 32-bit seed of one fold (same for a resumed run); ``seed, fold >= 0``."""
    return int(np.random.SeedSequence([int(seed), int(fold)]).generate_state(1)[0])
