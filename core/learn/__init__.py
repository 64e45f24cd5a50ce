"""Noise-aware training with cross-validation, fold ensembles and prediction.

``fit`` runs the protocol of the 5th-place iQIYI-VID 2018 solution on pooled videos:

1. identities -> classes ``0..C-1``; labelled videos split into stratified folds,
   distractors (``ids == 0``) into random folds;
2. ``noise`` mode: DBSCAN over the distractors gives ``K`` noise-cluster classes and
   ``C`` shadow classes are added (:mod:`core.learn.noise_labels`); optional extra
   distractors from :func:`core.features.pooling.augment_noise`;
3. per fold (seeded by ``(seed, fold)``, so a resumed run equals an uninterrupted
   one): train (:func:`core.learn.loop.train_fold`), keep the best epoch by the
   official mAP on the fold's held-out labelled + distractor videos, save the
   checkpoint, score the held-out videos (out-of-fold scores, test-time views);
4. the out-of-fold ranking gives the run's mAP and per-identity AP.

Prediction with the fold models of a complete run (``predict_scores`` /
``predict_submission``) reads the run store, so it is :mod:`core.runs.predict`. Every method is an entry of :mod:`core.learn.methods` (``knn``
scores against the labelled videos with :mod:`core.learn.knn`; ``nn`` and ``noise``
train networks); the distractors' clustering is :mod:`core.cluster.clusterers`.
"""

from __future__ import annotations

from core.cluster.clusterers import cluster_distractors
from core.learn.config import (TrainConfig, TrainingCancelled,
                               fold_seed, resolve_device)
from core.learn.fit import fit
from core.learn.methods import Method, get_method, method_names, register_method, unregister_method

__all__ = ["Method", "TrainConfig", "TrainingCancelled", "cluster_distractors", "fit",
           "fold_seed", "get_method", "method_names",
           "register_method", "resolve_device", "unregister_method"]
