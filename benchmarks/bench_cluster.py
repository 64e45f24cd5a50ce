"""Benchmark: vidid's NeighborGraph DBSCAN against scikit-learn's DBSCAN.

Prints, for 20k and 60k pooled-like vectors: one scikit-learn DBSCAN call, vidid's graph
build, vidid's time per re-clustering (median over many eps / min_samples values, forest
cached; the first query of each min_samples, which builds its forest, reported apart),
the ratios, and a check that the labels are identical. Then the approximate build at
500k vectors: time, recall against exact range search on a row sample, time per
re-clustering, and (at 60k) cluster agreement of approximate vs exact labels.

The data imitate pooled face features: unit vectors on a low-rank "identity manifold"
plus per-video offsets; recurring people (2 + Poisson(2.5) videos each) and many people
seen once.

Run: ``nice -n 10 python benchmarks/bench_cluster.py [--sizes 20000 60000] [--approx-n 500000]``.
Timings never fail anything; the machine is shared, so read ratios, not absolutes.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.cluster import NeighborGraph  # noqa: E402
from core.cluster.neighbors import graph_recall  # noqa: E402


def pooled_like(n: int, *, dim: int = 512, rank: int = 24, once_share: float = 0.5,
                seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(X, person)``: n unit vectors (float32) and the person behind each."""
    rng = np.random.default_rng(seed)
    basis = (rng.standard_normal((dim, rank)) / np.sqrt(dim)).astype(np.float32)
    shift = rng.standard_normal(rank)
    shift *= 0.5 / np.linalg.norm(shift)
    counts = 2 + rng.poisson(2.5, n)
    counts = counts[np.cumsum(counts) <= n - int(n * once_share)]
    n_once = n - int(counts.sum())
    n_people = n_once + counts.size
    person = np.concatenate([np.arange(n_once), np.repeat(np.arange(n_once, n_people), counts)])
    rng.shuffle(person)

    def unit(x: np.ndarray) -> np.ndarray:
        return x / np.linalg.norm(x, axis=-1, keepdims=True)

    X = np.empty((n, dim), dtype=np.float32)
    centres = unit((rng.standard_normal((n_people, rank)) + shift).astype(np.float32) @ basis.T)
    step = 50_000
    for s in range(0, n, step):
        m = min(step, n - s)
        within = unit(rng.standard_normal((m, rank)).astype(np.float32) @ basis.T)
        noise = unit(rng.standard_normal((m, dim)).astype(np.float32))
        off = unit(0.6 * within + 0.8 * noise) * rng.uniform(0.45, 0.75, (m, 1)).astype(np.float32)
        X[s:s + m] = unit(centres[person[s:s + m]] + off)
    return X, person


def bench_exact(n: int, *, max_eps: float, eps_ref: float, grid_eps, grid_m, seed: int) -> dict:
    from sklearn.cluster import DBSCAN

    X, _ = pooled_like(n, seed=seed)
    t0 = time.perf_counter()
    ref = DBSCAN(eps=eps_ref, min_samples=2).fit_predict(X)
    t_sklearn = time.perf_counter() - t0

    t0 = time.perf_counter()
    graph = NeighborGraph.build(X, max_eps=max_eps, method="exact")
    t_build = time.perf_counter() - t0

    first, cached = [], []
    for m in grid_m:
        t0 = time.perf_counter()
        graph.prepare([m])                  # the spanning forest of this min_samples
        first.append(time.perf_counter() - t0)
        for eps in grid_eps:
            t0 = time.perf_counter()
            graph.dbscan(eps, m)
            cached.append(time.perf_counter() - t0)
    labels = graph.dbscan(eps_ref, 2)
    same = bool(np.array_equal(labels, ref))
    t_query = statistics.median(cached)
    return {"n": n, "pairs": graph.n_edges, "sklearn_s": t_sklearn, "build_s": t_build,
            "query_ms": 1e3 * t_query, "query_p90_ms": 1e3 * float(np.percentile(cached, 90)),
            "first_query_ms": 1e3 * statistics.median(first), "n_queries": len(cached),
            "speedup": t_sklearn / t_query, "build_ratio": t_build / t_sklearn,
            "identical": same, "graph": graph, "X": X, "n_clusters": int(labels.max() + 1)}


def bench_approx(n: int, *, max_eps: float, grid_eps, grid_m, seed: int, sample: int) -> dict:
    X, person = pooled_like(n, seed=seed)
    t0 = time.perf_counter()
    graph = NeighborGraph.build(X, max_eps=max_eps, method="approx")
    t_build = time.perf_counter() - t0
    t0 = time.perf_counter()
    rec = graph_recall(graph.graph, X, sample=sample, seed=seed, radii=(0.7, 0.8))
    t_recall = time.perf_counter() - t0
    cached, first = [], []
    for m in grid_m:
        t0 = time.perf_counter()
        graph.prepare([m])
        first.append(time.perf_counter() - t0)
        for eps in grid_eps:
            t0 = time.perf_counter()
            graph.dbscan(eps, m)
            cached.append(time.perf_counter() - t0)
    return {"n": n, "pairs": graph.n_edges, "build_s": t_build, "recall": rec["recall"],
            "recall_07": rec["recall@0.7"], "recall_08": rec["recall@0.8"],
            "recall_rows": rec["n_rows"], "true_pairs": rec["n_true_pairs"],
            "recall_s": t_recall, "query_ms": 1e3 * statistics.median(cached),
            "first_query_ms": 1e3 * statistics.median(first)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[20_000, 60_000])
    parser.add_argument("--approx-n", type=int, default=500_000, help="0 skips the approximate run")
    parser.add_argument("--max-eps", type=float, default=0.9)
    parser.add_argument("--eps", type=float, default=0.8, help="eps of the scikit-learn call")
    parser.add_argument("--dense-max-eps", type=float, default=1.0,
                        help="also build the last size's graph at this radius (more pairs); 0 skips")
    parser.add_argument("--recall-rows", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    grid_eps = list(np.linspace(0.5, args.max_eps, 16))
    grid_m = [2, 3, 4, 5, 6, 8, 12]
    print(f"vidid cluster benchmark: max_eps={args.max_eps}, sklearn eps={args.eps}, "
          f"re-clustering grid {len(grid_eps)} eps x min_samples {grid_m}")
    last = None
    for n in args.sizes:
        r = bench_exact(n, max_eps=args.max_eps, eps_ref=args.eps, grid_eps=grid_eps,
                        grid_m=grid_m, seed=args.seed)
        print(f"n={n:>7}: sklearn DBSCAN {r['sklearn_s']:7.2f} s | vidid build {r['build_s']:6.2f} s "
              f"({r['build_ratio']:.2f}x sklearn, {r['pairs']} pairs) | re-cluster median "
              f"{r['query_ms']:.2f} ms (p90 {r['query_p90_ms']:.2f} ms, {r['n_queries']} queries; "
              f"forest per new min_samples {r['first_query_ms']:.0f} ms) | speed-up "
              f"{r['speedup']:,.0f}x | labels identical to sklearn: {r['identical']} "
              f"({r['n_clusters']} clusters)")
        last = r
    if last is not None:
        approx = NeighborGraph.build(last["X"], max_eps=args.max_eps, method="approx")
        from sklearn.metrics import adjusted_rand_score

        aris = [adjusted_rand_score(last["graph"].dbscan(e, m), approx.dbscan(e, m))
                for e in (0.7, 0.8) for m in (2, 4)]
        ex, ap = last["graph"].graph, approx.graph
        print(f"n={last['n']:>7}: approximate graph {approx.build_seconds:.2f} s, pair recall "
              f"{ap.n_edges / max(ex.n_edges, 1):.3f} (all rows: {ap.n_edges} of {ex.n_edges} "
              f"pairs); ARI of approximate vs exact labels (eps 0.7/0.8 x min_samples 2/4): "
              f"min {min(aris):.3f}")
    if last is not None and args.dense_max_eps:
        X = last["X"]
        t0 = time.perf_counter()
        dense = NeighborGraph.build(X, max_eps=args.dense_max_eps, method="exact")
        t_dense = time.perf_counter() - t0
        grid = list(np.linspace(0.5, args.dense_max_eps, 16))
        first, cached = [], []
        for m in grid_m:
            t0 = time.perf_counter()
            dense.prepare([m])
            first.append(time.perf_counter() - t0)
            for eps in grid:
                t0 = time.perf_counter()
                dense.dbscan(eps, m)
                cached.append(time.perf_counter() - t0)
        print(f"n={last['n']:>7}: denser graph at max_eps={args.dense_max_eps}: build {t_dense:.1f} s "
              f"({dense.n_edges} pairs) | re-cluster median {1e3 * statistics.median(cached):.2f} ms "
              f"(p90 {1e3 * float(np.percentile(cached, 90)):.2f} ms) | forest per new min_samples "
              f"{1e3 * statistics.median(first):.0f} ms")
    if args.approx_n:
        a = bench_approx(args.approx_n, max_eps=args.max_eps, grid_eps=grid_eps, grid_m=grid_m,
                         seed=args.seed, sample=args.recall_rows)
        print(f"n={a['n']:>7}: approximate build {a['build_s']:.1f} s ({a['pairs']} pairs) | recall "
              f"{a['recall']:.3f} of the pairs within max_eps (within 0.8: {a['recall_08']:.3f}, "
              f"within 0.7: {a['recall_07']:.3f}) against exact range search of "
              f"{a['recall_rows']} random rows ({a['true_pairs']} true pairs, {a['recall_s']:.1f} s) "
              f"| re-cluster median {a['query_ms']:.1f} ms (forest per min_samples "
              f"{a['first_query_ms']:.0f} ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
