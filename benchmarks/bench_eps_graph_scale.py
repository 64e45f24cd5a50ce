"""The noise clustering's eps-graph over every distractor of real-format files, exact and approximate.

Reads the given face pickles (iQIYI-VID format; the columnar cache makes a second read
fast), pools every distractor video (a video its split's ground truth does not name) as
training pools it, and optionally adds augmented distractors (joins of two short videos
and cuts of long ones, ``core.features.pooling.augment_noise``) up to ``--augment-to``
vectors, the size of the original solution's clustering (about 564,000). Then:

* the k-distance knee and the automatic eps (``core.cluster.eps_choice``) of the real
  distractors, on the exact graph;
* the exact graph at that radius (when at most ``--exact-max`` vectors) and the
  approximate one (faiss k-means cells): build time, pairs, and process peak memory;
* the approximate graph's recall against exact range search on a row sample, at the
  radius and at the eps;
* DBSCAN at the eps on both graphs: clusters, and the agreement (ARI) of the approximate
  labels with the exact ones, and of each with the generator's truth (``--truth``).

Prints one table. Not a test; timings are this machine's, at its load.

    python benchmarks/bench_eps_graph_scale.py --feats large/face_{train,val,test}.pickle \
        --gt large/{train,val,test}_gt.txt --truth large/truth.tsv --augment-to 564000
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def peak_gib() -> float:
    """This process's peak resident memory so far, GiB (Linux: ru_maxrss is in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def distractors(feats: list[str], gts: list[str], *, augment_to: int, seed: int):
    """(X real distractors, names, X augmented extra) pooled as training pools them."""
    from core.features.pooling import augment_noise, pool_videos
    from core.io.formats import read_features, read_ground_truth

    rng = np.random.default_rng(seed)
    blocks, names, sources = [], [], []
    for path, gt_path in zip(feats, gts):
        fs = read_features(path)
        known = set(read_ground_truth(gt_path).labels)
        pv = pool_videos(fs)
        keep = np.array([n not in known for n in pv.names])
        blocks.append(pv.X[keep])
        names.extend(pv.names[keep].tolist())
        # pooled rows are the non-empty videos, in file order
        rows = np.flatnonzero(np.diff(np.asarray(fs.offsets)) > 0)[keep]
        sources.append((fs, rows))
    X = np.concatenate(blocks)
    extra = []
    need = max(0, augment_to - len(X))
    for i, (fs, rows) in enumerate(sources):
        share = need // len(sources) + (1 if i < need % len(sources) else 0)
        if share:
            Xa, _ = augment_noise(fs, rows, rng=rng, n_join=share // 2, n_cut=share - share // 2)
            extra.append(Xa)
    X_aug = np.concatenate(extra) if extra else np.zeros((0, X.shape[1]), np.float32)
    return X, np.asarray(names, dtype=object), X_aug


def main(argv: list[str] | None = None) -> int:
    from sklearn.metrics import adjusted_rand_score

    from core.cluster import NeighborGraph
    from core.cluster.eps_choice import eps_on_graph, k_distance_knee
    from core.cluster.neighbors import graph_recall
    from core.cluster.report import clustering_ari

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--feats", nargs="+", required=True, help="face pickles")
    ap.add_argument("--gt", nargs="+", required=True, help="their ground truths, same order")
    ap.add_argument("--truth", default=None, help="the generator's truth.tsv (video, split, person)")
    ap.add_argument("--augment-to", type=int, default=0, help="add augmented distractors up to N vectors")
    ap.add_argument("--exact-max", type=int, default=200_000, help="skip the exact graph above N vectors")
    ap.add_argument("--min-samples", type=int, default=2)
    ap.add_argument("--recall-rows", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if len(args.feats) != len(args.gt):
        ap.error("give one --gt per --feats file")

    rows: list[tuple[str, str]] = []

    def note(what: str, value: str) -> None:
        rows.append((what, value))
        print(f"{what:<58} {value}", flush=True)

    t0 = time.perf_counter()
    X, names, X_aug = distractors(args.feats, args.gt, augment_to=args.augment_to, seed=args.seed)
    note("read + pool distractors (+ augmentation)",
         f"{time.perf_counter() - t0:.1f} s; {len(X)} real + {len(X_aug)} augmented; peak {peak_gib():.1f} GiB")

    t0 = time.perf_counter()
    knee = k_distance_knee(X, args.min_samples)
    note("k-distance knee of the real distractors (exact)", f"{knee:.3f} in {time.perf_counter() - t0:.1f} s")
    t0 = time.perf_counter()
    g_real = NeighborGraph.build(X, max_eps=knee, method="exact")
    eps = eps_on_graph(g_real, knee, args.min_samples)
    lab_real = np.asarray(g_real.dbscan(eps, args.min_samples))
    note("exact graph of the real distractors + automatic eps",
         f"{time.perf_counter() - t0:.1f} s; {g_real.n_edges} pairs; eps {eps:.2f}; "
         f"{lab_real.max() + 1} clusters of {(lab_real >= 0).sum()} videos")
    truth = None
    if args.truth:
        import pandas as pd

        t = pd.read_csv(args.truth, sep="\t", dtype=str).set_index("video")["person"]
        person = t.reindex([str(n) for n in names])
        if person.notna().all():
            truth = person.to_numpy()
            note("ARI vs truth, real distractors, exact graph at eps", f"{clustering_ari(lab_real, truth):.3f}")

    Xall = np.concatenate([X, X_aug]) if len(X_aug) else X
    n = len(Xall)
    results = {}
    for method in ("exact", "approx"):
        if method == "exact" and n > args.exact_max:
            note(f"exact graph, {n} vectors", f"skipped (> --exact-max {args.exact_max})")
            continue
        t0 = time.perf_counter()
        g = NeighborGraph.build(Xall, max_eps=knee, method=method)
        build = time.perf_counter() - t0
        t0 = time.perf_counter()
        lab = np.asarray(g.dbscan(eps, args.min_samples))
        results[method] = (g, lab)
        note(f"{method} graph, {n} vectors, radius {knee:.3f}",
             f"build {build:.1f} s; {g.n_edges} pairs; DBSCAN at eps {time.perf_counter() - t0:.1f} s; "
             f"{lab.max() + 1} clusters, the largest {np.bincount(lab[lab >= 0]).max(initial=0)}; "
             f"peak {peak_gib():.1f} GiB")
        if truth is not None:
            # augmented joins pool two people into one vector: they bridge clusters
            note(f"  ARI vs truth on the real distractors ({method}, augmented included)",
                 f"{clustering_ari(lab[:len(X)], truth):.3f}")
    if "approx" in results:
        g, lab = results["approx"]
        t0 = time.perf_counter()
        rec = graph_recall(g.graph, Xall, sample=args.recall_rows, seed=args.seed, radii=(eps,))
        note("approx recall vs exact range search (row sample)",
             f"{rec['recall']:.4f} at the radius, {rec[f'recall@{eps:g}']:.4f} at eps "
             f"({rec['n_rows']} rows, {rec['n_true_pairs']} true pairs, {time.perf_counter() - t0:.1f} s)")
        if "exact" in results:
            note("ARI approx vs exact labels at eps",
                 f"{adjusted_rand_score(results['exact'][1], lab):.4f}")
    print("\n| step | result |\n|---|---|")
    for what, value in rows:
        print(f"| {what.strip()} | {value} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
