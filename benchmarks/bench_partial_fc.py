"""How much a training step of a wide ArcFace head costs, full vs Partial FC.

One step (forward, backward, Adam) of ``core.learn.model.VideoNet`` at the 2019 set's
shape: 512-d pooled features, a 512-d embedding, batch 512, and a head of ``--classes``
classes (about 10k identities + their shadow classes + noise clusters: ~25k), with the
full head and with ``head_sample`` shares of it (Partial FC). Prints steps/s, samples/s
and the ratio to the full head measured in the same run (median of ``--repeat`` timings
of ``--steps`` steps each). Not a test.

    python benchmarks/bench_partial_fc.py                    # 25,000 classes, CPU/CUDA
    python benchmarks/bench_partial_fc.py --classes 5000 --shares 0.1,0.5
"""

from __future__ import annotations

import argparse
import statistics
import time


def time_steps(share: float, *, classes: int, batch: int, steps: int, device: str) -> float:
    import torch

    from core.learn.model import ModelConfig, build_model
    from core.learn.loop import make_optimizer

    net = build_model(ModelConfig(in_dim=512, emb_dim=512, n_classes=classes, head_init=0.01,
                                  head_sample=share), seed=0).to(device)
    net.train()
    opt = make_optimizer(net, lr=1e-3, weight_decay=0.0)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 512, generator=g).to(device)
    # a batch of ~batch distinct classes, as a shuffled epoch over many identities gives
    y = torch.randint(0, classes, (batch,), generator=g).to(device)
    def run(n: int) -> float:
        t0 = time.perf_counter()
        for _ in range(n):
            _, loss = net(x, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        return time.perf_counter() - t0

    run(2)  # warm-up
    return run(steps) / steps


def main(argv: list[str] | None = None) -> None:
    import torch

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--classes", type=int, default=25_000)
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--shares", default="0.05,0.1,0.25")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    shares = [1.0] + [float(s) for s in args.shares.split(",")]
    print(f"{args.classes} classes, batch {args.batch}, {args.device}, {args.threads} thread(s); "
          f"median of {args.repeat} x {args.steps} steps")
    med = {}
    for _ in range(args.repeat):  # interleaved: a noisy machine hits every share alike
        for s in shares:
            med.setdefault(s, []).append(time_steps(s, classes=args.classes, batch=args.batch,
                                                    steps=args.steps, device=args.device))
    base = statistics.median(med[1.0])
    print(f"{'head_sample':>11s} {'ms/step':>8s} {'samples/s':>10s} {'vs full':>8s}")
    for s in shares:
        t = statistics.median(med[s])
        print(f"{s:11g} {1000 * t:8.1f} {args.batch / t:10.0f} {base / t:7.2f}x")


if __name__ == "__main__":
    main()
