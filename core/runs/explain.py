"""Why a run predicted what it did for one video: margin, noise mass, the classes that pulled it.

:func:`explain_prediction` reads the run's out-of-fold scores (:class:`OutOfFold`, the
one rule of what a video was predicted as): the predicted and the true identity's
scores and the margin between them, the true identity's rank, the noise mass.
:func:`pulling_classes` re-scores the video with the fold model that held it out and
names every output class: identities, noise clusters (``C..C+K-1``) and shadow
classes (``C+K..2C+K-1``, the shadow of identity ``l`` at ``C+K+l``).
Video review shows both.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import pandas as pd

from core.runs.oof import OutOfFold


@dataclass(frozen=True)
class Explanation:
    """What the run's out-of-fold scores say about one video.

    ``predicted`` is the identity (0 = noise wins); ``true_score`` is None when the
    true identity is not among the video's stored top classes (then ``true_below`` is
    the lowest stored score, an upper bound); ``margin`` = predicted score minus the
    true identity's score (or its bound).
    """

    video: str
    true: int
    predicted: int
    predicted_score: float
    true_score: float | None
    true_rank: int | None
    true_below: float | None
    noise_mass: float | None
    margin: float | None
    fold: int | None

    @property
    def wrong(self) -> bool:
        return self.true > 0 and self.predicted != self.true

    def sentence(self) -> str:
        """The explanation in one or two plain sentences.

        >>> Explanation("v", 3, 5, 0.6, 0.25, 2, None, 0.1, 0.35, 1).sentence()
        'Predicted identity 5 (score 0.600) over the true identity 3 (score 0.250, rank 2 among the identities): a margin of 0.350. Noise mass 0.100.'
        """
        pred = "noise" if self.predicted == 0 else f"identity {self.predicted}"
        if self.true <= 0:
            head = f"A distractor; the run's top prediction is {pred} (score {self.predicted_score:.3f})."
        elif self.true_score is not None:
            verdict = "over" if self.wrong else "as"
            head = (f"Predicted {pred} (score {self.predicted_score:.3f}) {verdict} the true identity "
                    f"{self.true} (score {self.true_score:.3f}, rank {self.true_rank} among the identities)")
            head += f": a margin of {self.margin:.3f}." if self.wrong else "."
        else:
            head = (f"Predicted {pred} (score {self.predicted_score:.3f}); the true identity {self.true} "
                    f"is not even among the stored top classes (score below {self.true_below:.3f}): "
                    f"a margin above {self.margin:.3f}.")
        if self.noise_mass is not None:
            head += f" Noise mass {self.noise_mass:.3f}."
        return head


def explain_prediction(rs: OutOfFold, video: str, true: int | None = None) -> Explanation | None:
    """The out-of-fold story of ``video`` (None if the run did not score it).

    Examples
    --------
    >>> from core.runs.oof import scores_from_arrays
    >>> rs = scores_from_arrays({"names": np.array(["a"]), "identity_ids": np.array([3, 5, 7]),
    ...     "ids": np.array([3]), "top_class": np.array([[1, 0]]), "top_score": np.array([[.6, .25]]),
    ...     "noise_prob": np.array([.1])})
    >>> e = explain_prediction(rs, "a")
    >>> e.predicted, e.true_rank, round(e.margin, 2), e.wrong
    (5, 2, 0.35, True)
    """
    r = rs.row_of(video)
    if r is None or not rs.scored[r]:
        return None
    pred, score = rs.predicted()
    t = int(rs.truth[r]) if true is None and rs.truth is not None else int(true or 0)
    ok = rs.classes[r] >= 0
    ids = rs.identity_ids[rs.classes[r][ok]]
    vals = rs.scores[r][ok].astype(float)
    hit = np.flatnonzero(ids == t)
    true_score = float(vals[hit[0]]) if t > 0 and len(hit) else None
    true_rank = int(hit[0]) + 1 if t > 0 and len(hit) else None
    true_below = float(vals.min()) if t > 0 and not len(hit) and len(vals) else None
    p_score = float(score[r])
    ref = true_score if true_score is not None else true_below
    margin = None if t <= 0 or ref is None else p_score - ref
    noise = None if rs.noise_prob is None else float(rs.noise_prob[r])
    fold = None if rs.fold is None else int(rs.fold[r])
    return Explanation(str(rs.names[r]), t, int(pred[r]), p_score, true_score, true_rank, true_below,
                       noise if noise else None, margin, fold)


def class_names(identity_ids: np.ndarray, n_clusters: int, n_classes: int) -> tuple[list[str], list[str]]:
    """Label and kind of every output class of a network.

    >>> class_names(np.array([4, 9]), 1, 5)
    (['identity 4', 'identity 9', 'noise cluster 0', 'shadow of identity 4', 'shadow of identity 9'], ['identity', 'identity', 'noise cluster', 'shadow class', 'shadow class'])
    """
    C = len(identity_ids)
    labels, kinds = [], []
    for c in range(n_classes):
        if c < C:
            labels.append(f"identity {int(identity_ids[c])}")
            kinds.append("identity")
        elif c < C + n_clusters:
            labels.append(f"noise cluster {c - C}")
            kinds.append("noise cluster")
        else:
            labels.append(f"shadow of identity {int(identity_ids[(c - C - n_clusters) % C])}")
            kinds.append("shadow class")
    return labels, kinds


def pulling_classes(run_dir: str | os.PathLike, pooled: np.ndarray | None, fold: int, *,
                    top: int = 10, modal=None) -> pd.DataFrame | None:
    """Probability of the ``top`` classes of the fold model that held the video out.

    Parameters
    ----------
    run_dir : a run with fold checkpoints
    pooled : (d,) the video's pooled face vector (the pooling the run trained with); None
        for a video without a face
    fold : the fold that held the video out (``OutOfFold.fold``)
    modal : the video's :class:`~core.features.modal_features.ModalFeatures` (one row), needed
        by a multimodal run: its input is built from the modalities the run used

    Returns
    -------
    DataFrame ``label``, ``kind`` (identity / noise cluster / shadow class), ``probability``,
    best first; None for a reference method (no network), a missing fold, or a
    multimodal run without ``modal`` (or a face-only run without ``pooled``).
    """
    import torch

    from core.learn.config import TrainConfig
    from core.learn.fusion import is_multimodal
    from core.learn.methods import get_method
    from core.learn.model import model_from_checkpoint
    from core.runs.run import Run

    run = Run.open(run_dir)
    if fold is None or fold < 0 or fold not in run.completed_folds():
        return None
    payload = run.load_fold(fold)
    cfg = TrainConfig.from_dict(payload["config"])
    if not get_method(cfg.method).trains_network:
        return None
    if is_multimodal(cfg):
        held = () if modal is None else modal.modalities
        if any(m not in held for m in cfg.modalities) or cfg.modal_dims and tuple(
                int(modal.blocks[m].shape[1]) for m in cfg.modalities) != tuple(cfg.modal_dims):
            return None
        x_in = modal.input_matrix(cfg.modalities)[:1]
    elif pooled is None:
        return None
    else:
        x_in = np.array(pooled, dtype=np.float32)[None]  # a copy: writable
    meta = payload["meta"]
    model = model_from_checkpoint(meta["model_config"], payload["state_dict"]).to("cpu")
    model.eval()
    with torch.no_grad():
        x = torch.from_numpy(np.array(x_in, dtype=np.float32))
        p = model.log_probs(x, s=cfg.score_s).exp()[0].numpy()
    labels, kinds = class_names(np.asarray(meta["identity_ids"]), int(meta.get("n_clusters", 0)), len(p))
    order = np.argsort(-p, kind="stable")[:top]
    return pd.DataFrame({"label": [labels[i] for i in order], "kind": [kinds[i] for i in order],
                         "probability": p[order].astype(float)})


__all__ = ["Explanation", "class_names", "explain_prediction", "pulling_classes"]
