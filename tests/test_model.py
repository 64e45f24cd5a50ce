"""The ArcFace network: logits against hand-computed values, loss, determinism."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from core.learn.model import ArcFaceHead, ModelConfig, VideoNet, arcface_logits, build_model, model_from_checkpoint


def test_arcface_logits_hand_computed():
    # theta_0 = acos(0.8); cos(theta_0 + 0.5) = 0.8 cos 0.5 - 0.6 sin 0.5
    cos = torch.tensor([[0.8, 0.6, -0.2]])
    out = arcface_logits(cos, torch.tensor([0]), s=10.0, m=0.5)
    target = 0.8 * 0.8775825619 - 0.6 * 0.4794255386  # = 0.4144...
    expected = torch.tensor([[10 * target, 6.0, -2.0]])
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-5)


def test_arcface_fallback_past_pi_minus_m():
    # cos(theta) = -0.95 < cos(pi - 0.5) = -0.8776: target = cos(theta) - m sin(m)
    cos = torch.tensor([[-0.95, 0.1]])
    out = arcface_logits(cos, torch.tensor([0]), s=2.0, m=0.5)
    expected = torch.tensor([[2 * (-0.95 - 0.5 * math.sin(0.5)), 0.2]])
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-6)


def test_arcface_target_logit_decreases_with_angle():
    # The "easy_margin=False" formulation is monotone in theta over [0, pi].
    theta = torch.linspace(0, math.pi, 181)
    cos = torch.cos(theta)[:, None]
    out = arcface_logits(cos, torch.zeros(181, dtype=torch.long), s=1.0, m=0.5)[:, 0]
    assert (out[1:] <= out[:-1] + 1e-6).all()


def test_inference_logits_have_no_margin():
    cos = torch.tensor([[0.3, -0.4], [0.9, 0.1]])
    torch.testing.assert_close(arcface_logits(cos, None, s=64.0, m=0.5), 64 * cos)
    torch.testing.assert_close(arcface_logits(cos, torch.tensor([0, 1]), s=64.0, m=0.0), 64 * cos)


def test_head_cosines_are_normalised():
    head = ArcFaceHead(4, 3, s=1.0, m=0.0)
    emb = torch.randn(5, 4) * 7
    ref = F.normalize(emb, dim=1) @ F.normalize(head.weight, dim=1).T
    torch.testing.assert_close(head(emb), ref)
    assert head(emb).abs().max() <= 1 + 1e-6


def test_forward_loss_is_weighted_cross_entropy():
    net = build_model(ModelConfig(in_dim=6, emb_dim=5, n_classes=4, s=8.0, m=0.3), seed=0)
    x, y = torch.randn(7, 6), torch.tensor([0, 1, 2, 3, 0, 1, 2])
    w = torch.tensor([1.0, 0.1, 1.0, 0.5, 1.0, 1.0, 0.2])
    logits, loss = net(x, y, w)
    # reference: log-softmax by hand
    logp = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    ce = -logp[torch.arange(7), y]
    torch.testing.assert_close(loss, (ce * w).mean())
    _, unweighted = net(x, y)
    torch.testing.assert_close(unweighted, ce.mean())
    logits_inf, none = net(x)
    assert none is None
    cos = net.head.cosine(net.embedding(x))
    torch.testing.assert_close(logits_inf, 8.0 * cos)


def test_gradient_finite_when_embedding_equals_class_weight():
    net = build_model(ModelConfig(in_dim=3, emb_dim=3, n_classes=2), seed=0)
    with torch.no_grad():
        net.embed.weight.copy_(torch.eye(3))
        net.embed.bias.zero_()
        x = net.head.weight[:1].clone()  # cos(theta_0) == 1 exactly
    _, loss = net(x, torch.tensor([0]))
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in net.parameters())


def test_log_probs_match_softmax_and_scale_override():
    net = build_model(ModelConfig(in_dim=4, emb_dim=4, n_classes=5, s=16.0), seed=3)
    x = torch.randn(10, 4)
    cos = net.head.cosine(net.embedding(x))
    torch.testing.assert_close(net.log_probs(x, block=3), torch.log_softmax(16 * cos, 1))
    torch.testing.assert_close(net.log_probs(x, s=2.0), torch.log_softmax(2 * cos, 1))


def test_class_probs_match_softmax_blocked_and_extreme():
    """Blocked in-place softmax == softmax of the full logits, head columns and rest mass."""
    net = build_model(ModelConfig(in_dim=6, emb_dim=5, n_classes=9, s=64.0), seed=4)
    x = torch.randn(11, 6)
    full = torch.softmax(64 * net.head.cosine(net.embedding(x)), 1)
    for block in (1, 4, 64):
        p, rest = net.class_probs(x, 4, block=block, rest_mass=True)
        torch.testing.assert_close(p, full[:, :4])
        torch.testing.assert_close(rest, full[:, 4:].sum(1))
    p, rest = net.class_probs(x, 9, s=2.0)
    torch.testing.assert_close(p, torch.softmax(2 * net.head.cosine(net.embedding(x)), 1))
    assert rest is None
    # the largest cosine wins, whatever the scale; an empty input gives empty outputs
    assert torch.equal(net.predict_class(x, block=3), full.argmax(1))
    p, rest = net.class_probs(torch.empty(0, 6), 4, rest_mass=True)
    assert p.shape == (0, 4) and rest.shape == (0,) and net.predict_class(torch.empty(0, 6)).shape == (0,)


def test_same_seed_same_weights_and_checkpoint_round_trip():
    cfg = ModelConfig(in_dim=8, emb_dim=4, n_classes=3, batch_norm=True, dropout=0.1)
    a, b, c = build_model(cfg, seed=5), build_model(cfg, seed=5), build_model(cfg, seed=6)
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(va, vb), k
    assert not torch.equal(a.head.weight, c.head.weight)
    back = model_from_checkpoint(cfg.to_dict(), a.state_dict())
    x = torch.randn(4, 8)
    a.eval()
    torch.testing.assert_close(back(x)[0], a(x)[0])
    assert not back.training


def test_bad_target_shape_raises():
    with pytest.raises(RuntimeError):
        arcface_logits(torch.zeros(2, 3), torch.tensor([0, 1, 2]), s=1.0, m=0.5)


def test_forward_shapes_numpy_free():
    net = VideoNet(ModelConfig(in_dim=512, emb_dim=32, n_classes=7))
    logits, loss = net(torch.from_numpy(np.random.default_rng(0).standard_normal((3, 512)).astype(np.float32)),
                       torch.tensor([6, 0, 3]))
    assert logits.shape == (3, 7) and loss.ndim == 0 and torch.isfinite(loss)


def test_fast_head_equals_reference_logits_and_gradients():
    torch.manual_seed(0)
    head = ArcFaceHead(6, 9, s=30.0, m=0.5)
    emb = torch.randn(8, 6, requires_grad=True)
    target = torch.randint(0, 9, (8,))
    fast = head(emb, target)
    ref = arcface_logits(head.cosine(emb), target, s=30.0, m=0.5)
    torch.testing.assert_close(fast, ref, rtol=1e-5, atol=1e-4)
    g_fast = torch.autograd.grad(F.cross_entropy(fast, target), (emb, head.weight))
    g_ref = torch.autograd.grad(F.cross_entropy(ref, target), (emb, head.weight))
    for a, b in zip(g_fast, g_ref):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_partial_fc_uses_the_batch_classes_and_a_share_of_the_others():
    """Partial FC: the loss over the sampled classes equals the ArcFace cross-entropy
    computed by hand on those classes; classes outside the sample get no gradient;
    a share that covers every class is the full head."""
    import torch.nn.functional as F

    from core.learn.model import ModelConfig, VideoNet, arcface_logits, build_model, sample_classes

    torch.manual_seed(0)
    x, y = torch.randn(16, 8), torch.randint(0, 40, (16,))
    full = build_model(ModelConfig(in_dim=8, emb_dim=6, n_classes=40, head_init=0.01), seed=3)
    part = build_model(ModelConfig(in_dim=8, emb_dim=6, n_classes=40, head_init=0.01,
                                   head_sample=0.25), seed=3)
    part.train()
    torch.manual_seed(7)
    _, loss = part(x, y)
    loss.backward()
    torch.manual_seed(7)
    idx = sample_classes(y, 40, 0.25)
    assert len(idx) == max(10, len(torch.unique(y))) and torch.isin(y, idx).all()
    with torch.no_grad():
        cos = F.normalize(part.embedding(x), dim=1) @ F.normalize(part.head.weight[idx], dim=1).T
        t = torch.searchsorted(idx, y)
        ref = F.cross_entropy(arcface_logits(cos, t, s=64.0, m=0.5), t)
    assert torch.allclose(loss, ref, atol=1e-5)
    unsampled = torch.ones(40, dtype=torch.bool)
    unsampled[idx] = False
    assert (part.head.weight.grad[unsampled] == 0).all()
    assert (part.head.weight.grad[idx].abs().sum(dim=1) > 0).any()
    # inference scores every class, whatever the training share
    part.eval()
    assert part(x)[0].shape == (16, 40)
    # a share covering every class: the full head's loss exactly
    every = VideoNet(ModelConfig(in_dim=8, emb_dim=6, n_classes=40, head_init=0.01, head_sample=1.0))
    every.load_state_dict(full.state_dict())
    every.config.head_sample = 0.999  # ceil(0.999 * 40) = 40: all classes, sorted
    full.train(), every.train()
    assert torch.allclose(full(x, y)[1], every(x, y)[1], atol=1e-6)
    # the full head's config (and checkpoints) do not change
    assert "head_sample" not in ModelConfig().to_dict()
