"""The GPU path, measured: training samples/s against the device's matmul bound, and the
eps-graph build time at the seed's noise-clustering size.

Two parts, one run of a few minutes, on CUDA when present (else the CPU):

1. **training**: one step of :class:`core.learn.model.VideoNet` + Adam (what
   ``core.learn.loop`` runs per batch) at the original head size (13,559 classes =
   2C + K of the 2018 solution, batch 512, 512 -> 512), timed on the device, beside
   the six GEMMs such a step cannot avoid (forward, grad-input and grad-weight of the
   embedding and of the head) timed alone: ``batch / their time`` is the samples/s
   bound, the ratio the share of a step spent in matmuls. A large square GEMM gives
   the device's peak float32 rate for reference.
2. **eps-graph**: :class:`core.cluster.NeighborGraph` of ``--n`` pooled-like unit
   vectors (benchmarks/bench_cluster.py's data) at the k-distance knee, the radius
   training's automatic eps builds it at (:func:`core.cluster.eps_choice.auto_dbscan`);
   the approximate build also prints its recall on a row sample. Default ``--n``:
   564,000 (the augmented distractors the seed clustered) on CUDA, 20,000 on the CPU.

Medians of interleaved repeats, CUDA synchronised around every timing; it never fails
on timing. ``nice -n 10 python benchmarks/bench_gpu.py [--device cpu] [--n 20000]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_cluster import pooled_like  # noqa: E402

#: Default eps-graph size per device: the seed's 564k vectors need the GPU's speed.
DEFAULT_N = {"cuda": 564_000, "cpu": 20_000}


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _timer(fn, device: str, *, min_s: float = 0.2):
    """A function timing ``fn`` (seconds per call), with as many calls per timing as
    fill ``min_s`` (calibrated once, after a warm-up)."""
    fn()
    _sync(device)
    t0 = time.perf_counter()
    fn()
    _sync(device)
    inner = max(1, int(min_s / max(time.perf_counter() - t0, 1e-6)))

    def once() -> float:
        _sync(device)
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        _sync(device)
        return (time.perf_counter() - t0) / inner

    return once


def train_step(n_classes: int, batch: int, dim: int, emb: int, device: str):
    """One training step of VideoNet + Adam on ``device``, as ``core.learn.loop`` runs it."""
    from core.learn.loop import make_optimizer
    from core.learn.model import ModelConfig, build_model

    net = build_model(ModelConfig(in_dim=dim, emb_dim=emb, n_classes=n_classes), seed=0).to(device)
    opt = make_optimizer(net, lr=1e-3, weight_decay=0.0)
    g = torch.Generator().manual_seed(0)
    x = torch.nn.functional.normalize(torch.randn(batch, dim, generator=g), dim=1).to(device)
    y = torch.randint(0, n_classes, (batch,), generator=g).to(device)
    w = torch.ones(batch, device=device)

    def step() -> None:
        _, loss = net(x, y, w)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def step_gemms(n_classes: int, batch: int, dim: int, emb: int, device: str):
    """The six GEMMs of one step, and their FLOPs."""
    g = torch.Generator().manual_seed(1)

    def rand(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g).to(device)

    x, W1, e, W2 = rand(batch, dim), rand(emb, dim), rand(batch, emb), rand(n_classes, emb)
    gl, ge = rand(batch, n_classes), rand(batch, emb)

    def run() -> None:
        torch.mm(x, W1.T)      # embedding forward
        torch.mm(e, W2.T)      # head forward
        torch.mm(gl, W2)       # head grad-input
        torch.mm(gl.T, e)      # head grad-weight
        torch.mm(ge, W1)       # embedding grad-input
        torch.mm(ge.T, x)      # embedding grad-weight

    return run, 2.0 * batch * (3 * dim * emb + 3 * emb * n_classes)


def peak_gemm(size: int, device: str):
    g = torch.Generator().manual_seed(2)
    a = torch.randn(size, size, generator=g).to(device)
    b = torch.randn(size, size, generator=g).to(device)
    return (lambda: torch.mm(a, b)), 2.0 * size ** 3


def bench_training(args: argparse.Namespace, device: str) -> None:
    step = _timer(train_step(args.classes, args.batch, args.dim, args.emb, device), device)
    run, flops = step_gemms(args.classes, args.batch, args.dim, args.emb, device)
    gemm = _timer(run, device)
    peak_fn, peak_flops = peak_gemm(args.peak_size, device)
    peak = _timer(peak_fn, device)
    steps, gemms, peaks = [], [], []
    for _ in range(args.repeats):  # interleaved: a busy neighbour slows all three alike
        steps.append(step())
        gemms.append(gemm())
        peaks.append(peak())
    t_step, t_gemm, t_peak = (statistics.median(v) for v in (steps, gemms, peaks))
    ratio = statistics.median(s / g for s, g in zip(steps, gemms))
    print(f"training step, {args.classes} classes, batch {args.batch}, {args.dim} -> {args.emb} "
          f"({args.repeats} repeats, medians)")
    print(f"  peak float32 GEMM ({args.peak_size}^3):  {peak_flops / t_peak / 1e12:8.3f} TFLOP/s")
    print(f"  the step's six GEMMs alone:      {flops / t_gemm / 1e12:8.3f} TFLOP/s, "
          f"{t_gemm * 1e3:8.2f} ms -> bound {args.batch / t_gemm:10,.0f} samples/s")
    print(f"  full step (VideoNet + Adam):               {t_step * 1e3:8.2f} ms -> "
          f"{args.batch / t_step:10,.0f} samples/s")
    print(f"  step / GEMMs: {ratio:.2f}x  (1.00 = every step is its matmuls)")


def bench_graph(args: argparse.Namespace, device: str) -> None:
    from core.cluster import NeighborGraph
    from core.cluster.eps_choice import k_distance_knee
    from core.cluster.neighbors import graph_recall

    n = args.n or DEFAULT_N["cuda" if device.startswith("cuda") else "cpu"]
    t0 = time.perf_counter()
    X, _ = pooled_like(n, dim=args.dim, seed=0)
    print(f"eps-graph of {n:,} pooled-like vectors ({args.dim}-d; data made in "
          f"{time.perf_counter() - t0:.1f} s)")
    t0 = time.perf_counter()
    knee = k_distance_knee(X, 2)
    t_knee = time.perf_counter() - t0
    t0 = time.perf_counter()
    graph = NeighborGraph.build(X, max_eps=knee, method=args.method)
    t_build = time.perf_counter() - t0
    print(f"  k-distance knee (min_samples 2): {knee:.3f} in {t_knee:8.2f} s")
    print(f"  NeighborGraph.build(method={args.method!r}) at the knee: {t_build:8.2f} s, "
          f"{graph.n_edges:,} edges")
    print(f"  knee + build: {t_knee + t_build:.2f} s")
    if args.recall_sample and (args.method == "approx" or args.method == "auto" and n > 100_000):
        t0 = time.perf_counter()
        recall = graph_recall(graph.graph, X, sample=args.recall_sample)
        print(f"  recall on {args.recall_sample} rows vs exact range search: {recall:.4f} "
              f"({time.perf_counter() - t0:.1f} s)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda[:N]")
    parser.add_argument("--classes", type=int, default=13_559)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--emb", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--peak-size", type=int, default=None,
                        help="side of the square peak GEMM (default 8192 on CUDA, 1024 on the CPU)")
    parser.add_argument("--n", type=int, default=None,
                        help="eps-graph vectors (default 564000 on CUDA, 20000 on the CPU)")
    parser.add_argument("--method", choices=("auto", "exact", "approx"), default="auto",
                        help="NeighborGraph build method (auto: exact for small n, else approximate)")
    parser.add_argument("--recall-sample", type=int, default=500,
                        help="rows to check an approximate graph on (0: skip)")
    parser.add_argument("--skip", choices=("training", "graph"), action="append", default=[])
    args = parser.parse_args(argv)

    from core.learn.config import resolve_device

    device = resolve_device(args.device)
    if args.peak_size is None:
        args.peak_size = 8192 if device.startswith("cuda") else 1024
    name = torch.cuda.get_device_name(device) if device.startswith("cuda") else \
        f"CPU, {torch.get_num_threads()} torch threads"
    print(f"device: {device} ({name}); torch {torch.__version__}; TF32 matmul "
          f"{'on' if torch.backends.cuda.matmul.allow_tf32 else 'off'}")
    if "training" not in args.skip:
        bench_training(args, device)
    if "graph" not in args.skip:
        bench_graph(args, device)


if __name__ == "__main__":
    main()
