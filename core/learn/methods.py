"""The one registry of training methods: name -> how a run of that method fits and scores.

Every place that offers or checks a method reads this table: ``TrainConfig``, the
CLI's ``--method`` choices, the launcher, the dashboard's Training form and
prediction. Adding a method is one module (its scorer, or nothing new when it is a
variant of the network) plus one :func:`register_method` call below.

Two kinds of method exist:

* **network** methods (``nn``, ``noise``) train an ArcFace network per fold
  (:mod:`core.learn.loop`); ``noise_classes`` adds the DBSCAN noise clusters and the
  dynamic shadow classes of the distractors (:mod:`core.learn.noise_labels`);
* **reference** methods (``knn``) train nothing: ``scorer(config, reference, X)``
  scores pooled vectors ``X`` against ``reference = (X_ref, ids_ref, identity_ids)``,
  the labelled training videos of the fold (all labelled videos at prediction time).

No torch import here: the CLI and the dashboard read the table cheaply.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

#: ``scorer(config, (X_ref, ids_ref, identity_ids), X) -> (n, C) float32 scores``
Scorer = Callable[[Any, tuple[np.ndarray, np.ndarray, np.ndarray], np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Method:
    """How runs of one training method fit and score.

    Attributes
    ----------
    name : the ``TrainConfig.method`` value
    summary : one line for menus (CLI help, the dashboard)
    caption : a few words for the dashboard's radio button
    scorer : reference methods: the scoring function; ``None`` for network methods
    noise_classes : network methods: add noise-cluster and shadow classes
    """

    name: str
    summary: str
    caption: str
    scorer: Scorer | None = None
    noise_classes: bool = False

    @property
    def trains_network(self) -> bool:
        """True when each fold trains an ArcFace network (no ``scorer``)."""
        return self.scorer is None

    def n_classes(self, n_identities: int, n_clusters: int) -> int:
        """Output classes of the network: ``C``, or ``2C + K`` with noise classes."""
        return 2 * n_identities + n_clusters if self.noise_classes else n_identities


_REGISTRY: dict[str, Method] = {}


def register_method(method: Method) -> Method:
    """Add ``method`` to the registry (its name must be new); return it.

    >>> register_method(METHODS_TABLE["knn"])
    Traceback (most recent call last):
    ValueError: training method 'knn' is already registered
    """
    if not isinstance(method, Method):
        raise TypeError(f"expected a Method, got {type(method).__name__}")
    if method.name in _REGISTRY:
        raise ValueError(f"training method {method.name!r} is already registered")
    _REGISTRY[method.name] = method
    return method


def unregister_method(name: str) -> None:
    """Remove a method added by :func:`register_method` (tests, plug-ins)."""
    _REGISTRY.pop(name, None)


def method_names() -> tuple[str, ...]:
    """Registered method names, in registration order.

    >>> method_names()[:3]
    ('knn', 'nn', 'noise')
    """
    return tuple(_REGISTRY)


def get_method(name: object) -> Method:
    """The registered :class:`Method` called ``name``; ``ValueError`` lists the options.

    >>> get_method("noise").n_classes(10, 3)
    23
    >>> get_method("svm")
    Traceback (most recent call last):
    ValueError: unknown training method 'svm'; choose one of knn, nn, noise
    """
    try:
        return _REGISTRY[name]  # type: ignore[index]
    except (KeyError, TypeError):
        raise ValueError(f"unknown training method {name!r}; choose one of "
                         f"{', '.join(_REGISTRY)}") from None


def _knn_scorer(config: Any, reference: tuple[np.ndarray, np.ndarray, np.ndarray],
                X: np.ndarray) -> np.ndarray:
    from core.learn.knn import knn_scores

    if getattr(config, "modal_dims", None):  # multimodal: per-modality scores fused late
        from core.learn.fusion import late_knn_scores

        return late_knn_scores(config, reference, X)
    X_ref, ids_ref, identity_ids = reference
    return knn_scores(X, X_ref, ids_ref, identity_ids, k=config.knn_k, agg=config.knn_agg)


def fold_progress(config: dict, completed: list[int], partial: dict | None = None) -> float:
    """Share of a run's work done by its ``completed`` folds (and refits): 0..0.95.

    What a cancelled or resuming run shows instead of the 100 % of its last report.
    ``partial`` (``{"fold", "epochs_done", "epochs"}``, as :meth:`Run.partial_info`
    gives it) adds the epochs of a fold cut short whose mid-fold state was kept.

    >>> fold_progress({"method": "nn", "folds": 3, "refit": 1}, [0, 1])
    0.475
    >>> fold_progress({"method": "nn", "folds": 3, "refit": 1}, [0, 1],
    ...               {"fold": 2, "epochs_done": 2, "epochs": 4})
    0.59375
    """
    folds = int(config.get("folds") or 0)
    try:
        network = get_method(config.get("method")).trains_network
    except ValueError:
        network = True
    refit = int(config.get("refit") or 0) if network else 0
    total = folds + refit
    if total <= 0:
        return 0.0
    done = float(min(len(completed), total))
    if partial and partial.get("fold") not in completed and done < total:
        try:
            done += min(max(float(partial["epochs_done"]) / float(partial["epochs"]), 0.0), 1.0)
        except (KeyError, TypeError, ValueError, ZeroDivisionError):
            pass  # a status written by hand: the completed folds alone
    return round(0.95 * done / total, 6)


# ----------------------------------------------------------------------- the registry
register_method(Method("knn", "cosine KNN baseline on pooled features", "KNN baseline (seconds)",
                       scorer=_knn_scorer))
register_method(Method("nn", "linear embedding + ArcFace head over the identities", "ArcFace network"))
register_method(Method("noise", "the same network with DBSCAN noise clusters and dynamic shadow "
                       "classes for the distractors (the 5th-place method)", "noise-aware network",
                       noise_classes=True))

#: The registry itself (read-only view by convention): name -> :class:`Method`.
METHODS_TABLE = _REGISTRY

__all__ = ["METHODS_TABLE", "Method", "Scorer", "fold_progress", "get_method", "method_names", "register_method",
           "unregister_method"]
