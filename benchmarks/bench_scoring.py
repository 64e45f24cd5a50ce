"""How much scoring videos against a wide head costs: the streamed softmax vs the full one.

Prediction, each epoch's validation and the out-of-fold scores all need, per video, the
softmax probability of every *identity* class over *all* classes (identities, their
shadow classes and the noise clusters: ~23,000 at the 2019 size). Two ways, timed on
the same network and the same videos in one run:

* **reference**: ``log_probs(x).exp()[:, :C]``, the full (n, classes) log-softmax,
  exponentiated and sliced (what vidid did before ``VideoNet.class_probs``);
* **class_probs**: one product per row block, max / exp / row sum in place on the block,
  only the C identity columns kept.

Prints the median time of ``--repeat`` timings, videos/s, the ratio, the largest
absolute difference of the two results, and the size of the largest temporary each
holds. Not a test.

    python benchmarks/bench_scoring.py                      # 10,000 identities, 8,192 videos
    python benchmarks/bench_scoring.py --identities 2000 --videos 20000
"""

from __future__ import annotations

import argparse
import statistics
import time


def main(argv: list[str] | None = None) -> None:
    import torch

    from core.learn.model import ModelConfig, build_model

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--identities", type=int, default=10_000)
    ap.add_argument("--clusters", type=int, default=3_365, help="noise classes (2019 size: ~3,400)")
    ap.add_argument("--videos", type=int, default=8_192)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    C = args.identities
    classes = 2 * C + args.clusters
    net = build_model(ModelConfig(in_dim=512, emb_dim=512, n_classes=classes, head_init=0.01),
                      seed=0).eval()
    x = torch.randn(args.videos, 512, generator=torch.Generator().manual_seed(0))

    def reference() -> torch.Tensor:
        return net.log_probs(x, s=32.0).exp()[:, :C]

    def streamed() -> torch.Tensor:
        return net.class_probs(x, C, s=32.0)[0]

    times: dict[str, list[float]] = {"reference": [], "class_probs": []}
    out = {}
    for _ in range(args.repeat):  # interleaved, so load changes hit both alike
        for name, fn in (("reference", reference), ("class_probs", streamed)):
            t0 = time.perf_counter()
            out[name] = fn()
            times[name].append(time.perf_counter() - t0)
    diff = float((out["reference"] - out["class_probs"]).abs().max())
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"{args.videos} videos x {classes} classes ({C} identities), {args.threads} thread(s), "
          f"median of {args.repeat}")
    print(f"{'':12} {'s':>8} {'videos/s':>10} {'largest temporary':>18}")
    temp = {"reference": 4 * args.videos * classes, "class_probs": 4 * min(args.videos, 4096) * classes}
    for k in ("reference", "class_probs"):
        print(f"{k:12} {med[k]:8.2f} {args.videos / med[k]:10.0f} {temp[k] / 2**20:15.0f} MiB")
    print(f"ratio reference / class_probs: {med['reference'] / med['class_probs']:.2f}x; "
          f"largest difference {diff:.2e}")


if __name__ == "__main__":
    main()
