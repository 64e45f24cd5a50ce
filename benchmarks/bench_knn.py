"""Benchmark core.learn.knn.knn_scores against scikit-learn NearestNeighbors (brute, cosine).

The reference is what one writes with scikit-learn: per identity, fit
``NearestNeighbors(metric="cosine", algorithm="brute")`` on that identity's reference
videos and ask for the ``min(k, n_i)`` neighbours of every query. Both get the same
data; the answers are checked equal (to float rounding) before any time is printed.
Medians of ``--repeats`` runs; the ratio is sklearn / vidid (> 1: vidid is faster).

    nice -n 10 python benchmarks/bench_knn.py                  # 20k x 20k, 512-d
    nice -n 10 python benchmarks/bench_knn.py --queries 2000 --refs 2000 --repeats 3

Timing never fails anything: this is not a test.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from core.learn.knn import knn_scores, nearest_labelled  # noqa: E402


def make_data(n_q: int, n_ref: int, dim: int, n_ids: int, seed: int):
    """Unit rows around identity centres; refs get Zipf-like identity sizes (long tail)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_ids, dim)).astype(np.float32)
    p = 1.0 / np.arange(1, n_ids + 1) ** 0.7
    ref_ids = rng.choice(n_ids, size=n_ref, p=p / p.sum()) + 1
    q_ids = rng.integers(1, n_ids + 1, size=n_q)

    def draw(ids):
        X = centres[ids - 1] + 1.5 * rng.normal(size=(len(ids), dim)).astype(np.float32)
        return X / np.linalg.norm(X, axis=1, keepdims=True)

    return draw(q_ids), draw(ref_ids), ref_ids, np.arange(1, n_ids + 1)


def sklearn_scores(Xq, Xref, ref_ids, identity_ids, k, agg="mean"):
    from sklearn.neighbors import NearestNeighbors

    out = np.full((len(Xq), len(identity_ids)), -1.0, dtype=np.float32)
    for c, ident in enumerate(identity_ids):
        R = Xref[ref_ids == ident]
        if len(R) == 0:
            continue
        nn = NearestNeighbors(n_neighbors=min(k, len(R)), metric="cosine", algorithm="brute").fit(R)
        dist, _ = nn.kneighbors(Xq)
        sims = 1.0 - dist
        out[:, c] = {"mean": sims.mean(1), "max": sims.max(1), "sum": sims.sum(1)}[agg]
    return out


def sklearn_global(Xq, Xref, k):
    from sklearn.neighbors import NearestNeighbors

    dist, idx = NearestNeighbors(n_neighbors=k, metric="cosine", algorithm="brute").fit(Xref).kneighbors(Xq)
    return idx, 1.0 - dist


def timed(fn, repeats):
    times, result = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), times, result


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--queries", type=int, default=20_000)
    ap.add_argument("--refs", type=int, default=20_000)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--identities", type=int, default=1_000)
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--sklearn-repeats", type=int, default=None,
                    help="repeats of the (slow) sklearn reference (default: --repeats)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    import threadpoolctl  # noqa: F401  (scikit-learn dependency; report BLAS threads)
    from threadpoolctl import threadpool_info

    blas = ", ".join(f"{i['internal_api']}x{i['num_threads']}" for i in threadpool_info())
    Xq, Xref, ref_ids, identity_ids = make_data(args.queries, args.refs, args.dim, args.identities, args.seed)
    sizes = np.bincount(ref_ids)[1:]
    print(f"knn_scores: {args.queries} queries x {args.refs} refs, dim {args.dim}, "
          f"{args.identities} identities (refs per identity: median {int(np.median(sizes))}, "
          f"max {sizes.max()}), k={args.k}, agg=mean; cpus={os.cpu_count()}, BLAS {blas}")

    t_ours, all_ours, ours = timed(lambda: knn_scores(Xq, Xref, ref_ids, identity_ids, k=args.k), args.repeats)
    t_ref, all_ref, ref = timed(lambda: sklearn_scores(Xq, Xref, ref_ids, identity_ids, args.k),
                                args.sklearn_repeats or args.repeats)
    err = float(np.abs(ours - ref).max())
    assert err < 1e-5, f"answers differ: max abs difference {err}"
    print(f"  same answer: max |vidid - sklearn| = {err:.2e}")
    print(f"  vidid   knn_scores         median {t_ours:8.3f} s  runs {[round(t, 3) for t in all_ours]}")
    print(f"  sklearn NN per identity    median {t_ref:8.3f} s  runs {[round(t, 3) for t in all_ref]}")
    print(f"  ratio sklearn / vidid: {t_ref / t_ours:.2f}x")

    k = 10
    t_ours, all_ours, (idx, sim) = timed(lambda: nearest_labelled(Xq, Xref, k), args.repeats)
    t_ref, all_ref, (ridx, rsim) = timed(lambda: sklearn_global(Xq, Xref, k), args.sklearn_repeats or args.repeats)
    err = float(np.abs(sim - rsim).max())
    assert err < 1e-5, f"answers differ: max abs difference {err}"
    print(f"nearest_labelled k={k}: same answer (max |diff| {err:.2e}, same indices "
          f"{np.mean(idx == ridx):.4%})")
    print(f"  vidid   nearest_labelled   median {t_ours:8.3f} s  runs {[round(t, 3) for t in all_ours]}")
    print(f"  sklearn NN brute cosine    median {t_ref:8.3f} s  runs {[round(t, 3) for t in all_ref]}")
    print(f"  ratio sklearn / vidid: {t_ref / t_ours:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
