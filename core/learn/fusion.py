"""Multimodal recognition: which modalities a run uses, its input matrix, fusion, late KNN.

The network's input is one matrix per video (:meth:`core.features.modalities.ModalFeatures.input_matrix`):
the pooled block of each chosen modality (zeros where a video lacks it) side by side,
then one presence column per modality. Two ways to embed it (``TrainConfig.fusion``):

* ``"concat"`` (default): early concatenation, as the 2019 winner did: one linear
  layer over the whole row (the presence columns act as per-modality biases);
* ``"gated"``: a linear projection per modality, each scaled by a learned gate
  ``sigmoid(a_m . x_m + b_m)`` computed from that modality's own vector (music or a
  blurred face can switch itself down) and by its presence, summed.

Measured on the ``multi`` demo (docs/MULTIMODAL.md): modality dropout is what
matters (+1.5 points over the winner's plain concatenation); with it, the gate is no
better than concatenation, so concatenation is the default.

Either way training drops each present modality of a sample with probability
``modal_dropout`` (never all of them), so a video without a face, or with only
audio, is a case the network has seen. With ``modalities=("face",)`` nothing here
runs: the input is the pooled face matrix and the model is the face-only one, so
face-only runs are unchanged byte for byte.

The identity / DBSCAN-noise / shadow classes are the same; noise clusters are found
on the faces of the distractors that have one (faceless distractors start on shadow
classes), see :func:`cluster_matrix`.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from core.errors import DataError

FUSIONS = ("gated", "concat")
#: Late-fusion weights of the KNN baseline per modality (faces are trusted most).
KNN_WEIGHTS = {"face": 1.0, "head": 0.5, "body": 0.25, "audio": 0.5}


def is_multimodal(config) -> bool:
    """True when ``config`` uses more (or other) than the face."""
    mods = getattr(config, "modalities", None)
    return mods is not None and tuple(mods) != ("face",)


def resolve_config(config, data):
    """``config`` with ``modalities`` (``None``: every one ``data`` holds) and their dims set.

    Raises
    ------
    DataError
        A chosen modality the data does not hold.
    """
    modal = getattr(data, "modal", None)
    held = modal.modalities if modal is not None else ("face",)
    mods = held if config.modalities is None else tuple(config.modalities)
    missing = [m for m in mods if m not in held]
    if missing:
        raise DataError(f"training data: no {', '.join(missing)} features (the data holds "
                        f"{', '.join(held)}); give --modalities {','.join(held)} or add the files")
    if mods == ("face",):
        if modal is not None and not modal.has("face").all():
            raise DataError("training data: face-only training on data holding faceless videos; "
                            "open it with modalities=('face',) (core.features.open_split)")
        return replace(config, modalities=("face",), modal_dims=None)
    dims = tuple(int(modal.blocks[m].shape[1]) for m in mods)
    return replace(config, modalities=mods, modal_dims=dims)


def training_matrix(config, data) -> np.ndarray:
    """The rows the network (or KNN) sees: pooled faces, or the multimodal input matrix."""
    if not is_multimodal(config):
        return np.ascontiguousarray(data.X, dtype=np.float32)
    return data.modal.input_matrix(config.modalities)


def cluster_matrix(config, data) -> tuple[np.ndarray, np.ndarray | None]:
    """(vectors DBSCAN clusters the distractors on, rows that may be clustered or None).

    Faces where present (measured against the fused input: docs/MULTIMODAL.md); a run
    without faces clusters its first modality.
    """
    if not is_multimodal(config):
        return np.ascontiguousarray(data.X, dtype=np.float32), None
    first = config.modalities[0]
    return data.modal.blocks[first], data.modal.has(first)


def uses_face_frames(config) -> bool:
    """Whether test-time views and noise augmentation (face frames) apply."""
    return not is_multimodal(config) or config.modalities[0] == "face"


def widen_face_rows(config, X_face: np.ndarray) -> np.ndarray:
    """Face-only vectors (augmented noise) as input rows: other modalities absent."""
    if not is_multimodal(config):
        return X_face
    dims = config.modal_dims
    out = np.zeros((len(X_face), sum(dims) + len(dims)), dtype=np.float32)
    out[:, :dims[0]] = X_face
    out[:, sum(dims)] = 1.0
    return out


def split_input(X: np.ndarray, dims) -> tuple[list[np.ndarray], np.ndarray]:
    """The blocks and the (n, M) presence of an input matrix (numpy or torch).

    >>> blocks, present = split_input(np.arange(7.0)[None], (2, 3))
    >>> [b.tolist() for b in blocks], present.tolist()
    ([[[0.0, 1.0]], [[2.0, 3.0, 4.0]]], [[5.0, 6.0]])
    """
    out, off = [], 0
    for d in dims:
        out.append(X[:, off:off + d])
        off += d
    return out, X[:, off:off + len(dims)]


def model_options(config) -> dict:
    """Extra :class:`core.learn.model.ModelConfig` options of a multimodal run (else none)."""
    if not is_multimodal(config):
        return {}
    return {"modal_dims": tuple(config.modal_dims), "fusion": config.fusion,
            "modal_dropout": float(config.modal_dropout)}


# ----------------------------------------------------------------------------- KNN
def late_knn_scores(config, reference, X: np.ndarray) -> np.ndarray:
    """KNN scores per modality, fused late: the weighted mean over the modalities a query has.

    Each modality's query rows are compared with the reference videos holding that
    modality; weights are :data:`KNN_WEIGHTS`, renormalised over the query's modalities.
    """
    from core.learn.knn import knn_scores

    X_ref, ids_ref, identity_ids = reference[:3]
    dims = config.modal_dims
    q_blocks, q_present = split_input(X, dims)
    r_blocks, r_present = split_input(X_ref, dims)
    total = np.zeros((len(X), len(identity_ids)), dtype=np.float32)
    weight = np.zeros(len(X), dtype=np.float32)
    for j, m in enumerate(config.modalities):
        q = q_present[:, j] > 0.5
        r = r_present[:, j] > 0.5
        if not q.any() or not r.any():
            continue
        s = knn_scores(np.ascontiguousarray(q_blocks[j][q]), np.ascontiguousarray(r_blocks[j][r]),
                       ids_ref[r], identity_ids, k=config.knn_k, agg=config.knn_agg)
        w = KNN_WEIGHTS.get(m, 0.5)
        total[q] += w * s
        weight[q] += w
    return total / np.maximum(weight, 1e-12)[:, None]


# ----------------------------------------------------------------------------- network
def _torch_modules():
    import torch
    from torch import nn

    class GatedFusion(nn.Module):
        """Per-modality projections, gated by each modality's own vector and its presence."""

        def __init__(self, dims: tuple[int, ...], emb_dim: int) -> None:
            super().__init__()
            self.dims = tuple(int(d) for d in dims)
            self.proj = nn.ModuleList(nn.Linear(d, emb_dim) for d in self.dims)
            self.gate = nn.ModuleList(nn.Linear(d, 1) for d in self.dims)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            blocks, present = split_input(x, self.dims)
            out = None
            for j, xm in enumerate(blocks):
                g = torch.sigmoid(self.gate[j](xm)) * present[:, j:j + 1]
                term = g * self.proj[j](xm)
                out = term if out is None else out + term
            return out

    return GatedFusion


def build_embedding(config):
    """The embedding layer of a :class:`core.learn.model.ModelConfig` with modalities."""
    from torch import nn

    if config.fusion == "gated":
        return _torch_modules()(tuple(config.modal_dims), config.emb_dim)
    if config.fusion == "concat":
        return nn.Linear(config.in_dim, config.emb_dim)
    raise ValueError(f"unknown fusion {config.fusion!r}; choose one of {', '.join(FUSIONS)}")


def drop_modalities(x, dims, p: float):
    """Training-time modality dropout: each present modality of a row is zeroed with
    probability ``p`` (block and presence column), never every modality of a row."""
    import torch

    if p <= 0:
        return x
    blocks, present = split_input(x, dims)
    keep = (torch.rand(present.shape, device=x.device) >= p).to(x.dtype) * present
    none = keep.sum(dim=1, keepdim=True) == 0
    keep = torch.where(none, present, keep)
    cols = torch.repeat_interleave(keep, torch.as_tensor(dims, device=x.device), dim=1)
    return torch.cat([x[:, :sum(dims)] * cols, keep], dim=1)


__all__ = ["FUSIONS", "KNN_WEIGHTS", "build_embedding", "cluster_matrix", "drop_modalities",
           "is_multimodal", "late_knn_scores", "model_options", "resolve_config",
           "split_input", "training_matrix", "uses_face_frames", "widen_face_rows"]
