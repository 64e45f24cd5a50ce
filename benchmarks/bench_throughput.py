"""Training throughput of the ArcFace network at the original head size, vs the matmul bound.

One training step of :class:`core.learn.model.VideoNet` (what ``core.learn.loop`` runs per
batch: forward with margin, weighted cross-entropy, backward, Adam step) on random
pooled vectors, for a 13,559-class head (the original 2018 solution: 2C + K classes)
with batch 512, 512 -> 512 embedding. Beside it, in the same run, the six matrix
multiplies such a step cannot avoid (forward, grad-input and grad-weight of the
embedding and of the head) timed alone with ``torch.mm``: their FLOPs over their time
is this machine's GEMM rate, and ``batch / their time`` the samples/s bound. The
ratio says how much of a step is spent outside matmuls (normalisation, softmax,
margin, Adam over the 7M head weights).

Interleaved repeats (step, GEMMs, step, ...): medians, best times and the median
per-repeat ratio; never fails on timing. Run it niced on a shared machine::

    nice -n 10 python benchmarks/bench_throughput.py
    nice -n 10 python benchmarks/bench_throughput.py --classes 2000 --batch 256 --repeats 3
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch


def _timer(fn, inner: int):
    fn()  # warm-up (allocations, thread pool)

    def once() -> float:
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        return (time.perf_counter() - t0) / inner

    return once


def train_step(n_classes: int, batch: int, dim: int, emb: int):
    """One training step of VideoNet + Adam, exactly as ``core.learn.loop`` runs it."""
    from core.learn.model import ModelConfig, build_model
    from core.learn.loop import make_optimizer

    net = build_model(ModelConfig(in_dim=dim, emb_dim=emb, n_classes=n_classes), seed=0)
    opt = make_optimizer(net, lr=1e-3, weight_decay=0.0)
    g = torch.Generator().manual_seed(0)
    x = torch.nn.functional.normalize(torch.randn(batch, dim, generator=g), dim=1)
    y = torch.randint(0, n_classes, (batch,), generator=g)
    w = torch.ones(batch)

    def step() -> None:
        _, loss = net(x, y, w)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def gemms(n_classes: int, batch: int, dim: int, emb: int):
    """The six GEMMs of one step (forward + both backward products) and their FLOPs."""
    g = torch.Generator().manual_seed(1)
    x, W1 = torch.randn(batch, dim, generator=g), torch.randn(emb, dim, generator=g)
    e, W2 = torch.randn(batch, emb, generator=g), torch.randn(n_classes, emb, generator=g)
    gl, ge = torch.randn(batch, n_classes, generator=g), torch.randn(batch, emb, generator=g)

    def run() -> None:
        torch.mm(x, W1.T)      # embedding forward      (B x d) (d x E)
        torch.mm(e, W2.T)      # head forward           (B x E) (E x N)
        torch.mm(gl, W2)       # head grad-input        (B x N) (N x E)
        torch.mm(gl.T, e)      # head grad-weight       (N x B) (B x E)
        torch.mm(ge, W1)       # embedding grad-input   (B x E) (E x d)
        torch.mm(ge.T, x)      # embedding grad-weight  (E x B) (B x d)

    return run, 2.0 * batch * (3 * dim * emb + 3 * emb * n_classes)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--classes", type=int, default=13_559)
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--emb", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--inner", type=int, default=3, help="steps per timed repeat")
    args = ap.parse_args(argv)

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; head {args.classes} classes, "
          f"batch {args.batch}, {args.dim}->{args.emb}; {args.repeats} interleaved repeats x {args.inner} steps")
    shape = (args.classes, args.batch, args.dim, args.emb)
    t_step = _timer(train_step(*shape), args.inner)
    mm, flops = gemms(*shape)
    t_mm = _timer(mm, args.inner)
    # Interleave: on a shared machine the load changes between measurements, so each
    # repeat times both back to back and the ratio is taken per repeat.
    steps, mms = [], []
    for _ in range(args.repeats):
        steps.append(t_step())
        mms.append(t_mm())
    ratios = [b / a for a, b in zip(steps, mms)]
    print(f"{'':34s} {'ms/step med':>11s} {'(min)':>7s} {'samples/s med':>13s} {'(best)':>7s}")
    for name, ts in (("training step (VideoNet + Adam)", steps), ("matmul bound (6 GEMMs alone)", mms)):
        med, best = statistics.median(ts), min(ts)
        print(f"{name:34s} {1e3 * med:11.1f} {1e3 * best:7.1f} {args.batch / med:13.0f} {args.batch / best:7.0f}")
    print(f"GEMM rate {flops / statistics.median(mms) / 1e9:.1f} GFLOP/s median, {flops / min(mms) / 1e9:.1f} best "
          f"({flops / 1e9:.2f} GFLOP per step); training reaches {statistics.median(ratios):.0%} of the "
          f"matmul bound (median of per-repeat ratios; best times: {min(mms) / min(steps):.0%})")


if __name__ == "__main__":
    main()
