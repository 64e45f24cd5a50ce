"""The network: a linear embedding of pooled video features and an ArcFace head.

nanoGPT style: :class:`ModelConfig` sits beside :class:`VideoNet`, ``forward``
returns ``(logits, loss)`` and a checkpoint stores the config next to the weights.

ArcFace (Deng et al. 2019, the insightface ``easy_margin=False`` formulation)
-----------------------------------------------------------------------------
Weights ``W_j`` and embeddings ``e`` are L2-normalised, so ``cos(theta_j) = W_j . e``.
In training the target logit gets an additive angular margin::

    target = s * cos(theta_y + m)            if theta_y + m <= pi
           = s * (cos(theta_y) - m * sin(m))  otherwise (cos(theta_y) <= cos(pi - m))

The fallback keeps the target logit monotone decreasing in ``theta_y`` past
``pi - m`` (where ``cos(theta + m)`` would turn back up); ``m * sin(m)`` is the
insightface constant ``mm = sin(pi - m) * m``. Other logits are ``s * cos(theta_j)``.
At inference no margin is applied: ``logits = s * cos``.

Importing this module imports torch (it defines ``nn.Module`` subclasses): library
code imports it inside the functions that train or predict.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class ModelConfig:
    """Shape and head options of :class:`VideoNet`.

    Attributes
    ----------
    in_dim : input (pooled feature) dimension, 512 for iQIYI-VID
    emb_dim : embedding dimension
    n_classes : number of output classes (``2C + K`` in noise mode, ``C`` in nn mode)
    s : ArcFace scale
    m : ArcFace additive angular margin (radians)
    batch_norm : BatchNorm1d after the linear embedding
    dropout : dropout probability on the input features (0 disables)
    head_init : standard deviation of the class weights at initialisation (``None``:
        Xavier-uniform, the earlier default). The weights are normalised in the
        forward pass, so under Adam (steps of about ``lr`` per coordinate, whatever
        the weights' scale) a class direction turns at a rate inversely proportional
        to its norm; Xavier's norm depends on the number of classes, a fixed small
        std does not (see docs/RECOGNITION.md)
    modal_dims, fusion, modal_dropout : multimodal input (:mod:`core.learn.fusion`): the
        dimension of each modality's block, ``"gated"`` or ``"concat"``, the training
        modality dropout. Empty for the face-only model (then left out of ``to_dict``)
    head_sample : share of the class centres each training step uses (Partial FC, An et
        al. 2021): every class present in the batch plus a random draw of the others,
        ``ceil(head_sample * n_classes)`` in all. 1.0 (the default, then left out of
        ``to_dict``) uses the full head; below 1 a step over many classes costs about
        that share of the head's products. Inference always scores every class.
    """

    in_dim: int = 512
    emb_dim: int = 512
    n_classes: int = 2
    s: float = 64.0
    m: float = 0.5
    batch_norm: bool = False
    dropout: float = 0.0
    head_init: float | None = None
    modal_dims: tuple[int, ...] = ()
    fusion: str = ""
    modal_dropout: float = 0.0
    head_sample: float = 1.0

    def __post_init__(self) -> None:
        self.modal_dims = tuple(int(d) for d in self.modal_dims)
        if not 0 < float(self.head_sample) <= 1:
            raise ValueError(f"head_sample must be in (0, 1], got {self.head_sample}")

    def to_dict(self) -> dict:
        """Plain-dict form stored in checkpoints (face-only: the same keys as before)."""
        d = asdict(self)
        if not self.modal_dims:
            for key in ("modal_dims", "fusion", "modal_dropout"):
                d.pop(key)
        else:
            d["modal_dims"] = list(self.modal_dims)
        if self.head_sample == 1.0:
            d.pop("head_sample")
        return d


def _margin_target(cos_t: torch.Tensor, *, s: float, m: float) -> torch.Tensor:
    """``s * cos(theta + m)`` with the ``cos(theta) - m sin(m)`` fallback past ``pi - m``."""
    cos_t = cos_t.clamp(-1.0, 1.0)
    # clamp before sqrt: d/dx sqrt(x) is infinite at 0 (cos_t = +-1)
    sin_t = torch.sqrt((1.0 - cos_t * cos_t).clamp_min(1e-12))
    phi = cos_t * math.cos(m) - sin_t * math.sin(m)
    phi = torch.where(cos_t > math.cos(math.pi - m), phi, cos_t - m * math.sin(m))
    return s * phi


def arcface_logits(cos: torch.Tensor, target: torch.Tensor | None, *, s: float, m: float) -> torch.Tensor:
    """ArcFace logits from cosines: margin ``m`` on each row's target class, scale ``s``.

    Parameters
    ----------
    cos : (n, n_classes) cosines between normalised embeddings and class weights
    target : (n,) int64 class per row, or ``None`` for inference (no margin)
    s, m : scale and additive angular margin

    Returns
    -------
    (n, n_classes) logits.

    Examples
    --------
    >>> c = torch.tensor([[1.0, 0.0]])
    >>> arcface_logits(c, torch.tensor([0]), s=2.0, m=0.5)   # 2*cos(0.5), 2*0
    tensor([[1.7552, 0.0000]])
    """
    z = s * cos.clamp(-1.0, 1.0)
    if target is None or m == 0.0:
        return z
    t = target.view(-1, 1)
    return z.scatter(1, t, _margin_target(cos.gather(1, t), s=s, m=m))


class ArcFaceHead(nn.Module):
    """Normalised class weights; ``forward(emb, target)`` gives ArcFace logits."""

    def __init__(self, emb_dim: int, n_classes: int, *, s: float = 64.0, m: float = 0.5,
                 init_std: float | None = None) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_classes, emb_dim))
        if init_std is None:
            nn.init.xavier_uniform_(self.weight)
        else:
            nn.init.normal_(self.weight, std=float(init_std))
        self.s = float(s)
        self.m = float(m)

    def cosine(self, emb: torch.Tensor) -> torch.Tensor:
        """(n, n_classes) cosines between ``emb`` rows and class weights."""
        return F.linear(F.normalize(emb, dim=1), F.normalize(self.weight, dim=1))

    def forward(self, emb: torch.Tensor, target: torch.Tensor | None = None,
                classes: torch.Tensor | None = None) -> torch.Tensor:
        """Logits over every class, or over ``classes`` (sorted indices; Partial FC) with
        ``target`` given as positions in ``classes``."""
        # Same values as arcface_logits(self.cosine(emb), ...), cheaper on a wide head:
        # s scales the (n, d) embeddings instead of the (n, n_classes) cosines, the
        # target cosines come from an (n, d) product rather than a gather of the wide
        # matrix, and the margin is written in place (nothing saved the GEMM's output).
        e = F.normalize(emb, dim=1)
        w = F.normalize(self.weight if classes is None else self.weight[classes], dim=1)
        z = F.linear(self.s * e, w)
        if target is None or self.m == 0.0:
            return z
        cos_t = (e * w[target]).sum(dim=1, keepdim=True)
        return z.scatter_(1, target.view(-1, 1), _margin_target(cos_t, s=self.s, m=self.m))


def sample_classes(target: torch.Tensor, n_classes: int, share: float) -> torch.Tensor:
    """Sorted class indices for one Partial-FC step: every class of ``target`` plus a
    uniform draw (torch's global generator) of others, ``ceil(share * n_classes)`` in all.

    >>> _ = torch.manual_seed(0)
    >>> idx = sample_classes(torch.tensor([7, 2, 7]), 10, 0.4)
    >>> len(idx), bool(torch.isin(torch.tensor([2, 7]), idx).all())
    (4, True)
    """
    pos = torch.unique(target)
    k = max(int(math.ceil(share * n_classes)), len(pos))
    if k >= n_classes:
        return torch.arange(n_classes, device=target.device)
    free = torch.ones(n_classes, dtype=torch.bool, device=target.device)
    free[pos] = False
    rest = torch.nonzero(free).squeeze(1)
    pick = rest[torch.randperm(len(rest), device=target.device)[: k - len(pos)]]
    return torch.cat([pos, pick]).sort().values


class VideoNet(nn.Module):
    """Linear ``in_dim -> emb_dim`` embedding (optionally BN / input dropout) + ArcFace head.

    ``forward(x, target=None, weight=None)`` returns ``(logits, loss)``: with a
    target, logits carry the margin and ``loss`` is the (sample-weighted) mean
    cross-entropy; without one, logits are ``s * cos`` and ``loss`` is ``None``.

    Examples
    --------
    >>> net = VideoNet(ModelConfig(in_dim=4, emb_dim=3, n_classes=2))
    >>> logits, loss = net(torch.randn(5, 4), torch.tensor([0, 1, 0, 1, 0]))
    >>> logits.shape, loss.ndim
    (torch.Size([5, 2]), 0)
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.dropout = nn.Dropout(config.dropout) if config.dropout > 0 else nn.Identity()
        if config.modal_dims:
            from core.learn.fusion import build_embedding

            self.embed = build_embedding(config)
        else:
            self.embed = nn.Linear(config.in_dim, config.emb_dim)
        self.bn = nn.BatchNorm1d(config.emb_dim) if config.batch_norm else nn.Identity()
        self.head = ArcFaceHead(config.emb_dim, config.n_classes, s=config.s, m=config.m,
                                init_std=config.head_init)

    def embedding(self, x: torch.Tensor) -> torch.Tensor:
        """(n, emb_dim) embeddings (not normalised)."""
        if self.config.modal_dims and self.training and self.config.modal_dropout > 0:
            from core.learn.fusion import drop_modalities

            x = drop_modalities(x, self.config.modal_dims, self.config.modal_dropout)
        return self.bn(self.embed(self.dropout(x)))

    def forward(
        self,
        x: torch.Tensor,
        target: torch.Tensor | None = None,
        weight: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        classes = None
        if target is not None and self.training and self.config.head_sample < 1.0:
            # Partial FC: logits over a sample of the classes, targets renumbered into it
            classes = sample_classes(target, self.config.n_classes, self.config.head_sample)
            target = torch.searchsorted(classes, target)
        logits = self.head(self.embedding(x), target, classes)
        if target is None:
            return logits, None
        ce = F.cross_entropy(logits, target, reduction="none")
        loss = ce.mean() if weight is None else (ce * weight).mean()
        return logits, loss

    @torch.no_grad()
    def class_probs(self, x: torch.Tensor, n_first: int, *, s: float | None = None,
                    block: int = 4096, rest_mass: bool = False
                    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Softmax probabilities of the first ``n_first`` classes over *all* classes.

        The same values as ``log_probs(x, s=s).exp()[:, :n_first]`` without holding
        the (n, n_classes) matrix: one product per row block, then in place (max,
        exp, row sum) on that block alone. At the 2019 size (23k classes) this is
        what prediction and each epoch's validation pay for.

        Returns
        -------
        probs : (n, n_first) float32
        rest : (n,) float32 total probability of the other classes, if ``rest_mass``
        """
        scale = self.config.s if s is None else float(s)
        n = x.shape[0]
        probs = torch.empty(n, n_first, dtype=torch.float32, device=x.device)
        rest = torch.empty(n, dtype=torch.float32, device=x.device) if rest_mass else None
        for start, z in self._block_cosines(x, block):
            z.mul_(scale)
            z.sub_(z.amax(dim=1, keepdim=True)).exp_()
            total = z.sum(dim=1, keepdim=True)
            probs[start:start + len(z)] = z[:, :n_first] / total
            if rest is not None:
                rest[start:start + len(z)] = z[:, n_first:].sum(dim=1) / total[:, 0]
        return probs, rest

    @torch.no_grad()
    def predict_class(self, x: torch.Tensor, *, block: int = 4096) -> torch.Tensor:
        """(n,) index of the most probable class (the largest cosine), blocked."""
        out = [cos.argmax(dim=1) for _, cos in self._block_cosines(x, block)]
        return torch.cat(out) if out else torch.empty(0, dtype=torch.long, device=x.device)

    def _block_cosines(self, x: torch.Tensor, block: int):
        """``(start, (b, n_classes) cosines)`` per row block; class weights normalised once."""
        w = F.normalize(self.head.weight, dim=1)
        for start in range(0, x.shape[0], block):
            yield start, F.linear(F.normalize(self.embedding(x[start:start + block]), dim=1), w)

    @torch.no_grad()
    def log_probs(self, x: torch.Tensor, *, s: float | None = None, block: int = 8192) -> torch.Tensor:
        """(n, n_classes) log-softmax of inference logits ``s * cos`` (float32), blocked.

        ``s`` overrides the training scale (an inference temperature).
        """
        scale = self.config.s if s is None else float(s)
        out = []
        for start in range(0, x.shape[0], block):
            cos = self.head.cosine(self.embedding(x[start:start + block]))
            out.append(torch.log_softmax(scale * cos, dim=1))
        if not out:
            return torch.empty(0, self.config.n_classes)
        return torch.cat(out)


def build_model(config: ModelConfig, *, seed: int) -> VideoNet:
    """A freshly initialised :class:`VideoNet`; the same seed gives the same weights.

    >>> a = build_model(ModelConfig(in_dim=4, emb_dim=3, n_classes=2), seed=1)
    >>> b = build_model(ModelConfig(in_dim=4, emb_dim=3, n_classes=2), seed=1)
    >>> bool(torch.equal(a.head.weight, b.head.weight))
    True
    """
    # Weights are drawn on the CPU generator, then moved: same seed, same weights on any device.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return VideoNet(config)


def model_from_checkpoint(model_config: dict, state_dict: dict) -> VideoNet:
    """Rebuild a fold's network from its checkpoint (``meta["model_config"]``, weights), in eval mode."""
    net = VideoNet(ModelConfig(**model_config))
    net.load_state_dict(state_dict)
    net.eval()
    return net
