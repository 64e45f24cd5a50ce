"""Does the automatic DBSCAN eps find the recurring strangers of realistic data?

For each setting of the generalisation family (``bench_generalise.SETTINGS``), the
pooled distractors of train + val (what ``vidid train`` clusters) are clustered by
DBSCAN at the automatic eps (``core.cluster.auto_dbscan``, the product default)
and at fixed eps 0.9, 1.0, 1.1 and 1.2 (the original solution's value), with
min_samples 2 (the original's) and 3. Each clustering is scored against the
generator's truth (``truth.tsv``: who is really in each video) with scikit-learn's
adjusted Rand index (unclustered videos as singletons), purity (share of clustered
videos whose cluster's majority person is theirs) and recall (share of the videos of
recurring strangers that landed in a cluster). Not a test: never fails on numbers.

    nice python benchmarks/bench_noise_clusters.py            # every setting, seed 0
    nice python benchmarks/bench_noise_clusters.py --only real,sparse
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_generalise as family  # noqa: E402  (the settings and their data)

FIXED = (0.9, 1.0, 1.1, 1.2)


def truth_of(folder: Path) -> dict[str, str]:
    lines = (folder / "truth.tsv").read_text().splitlines()[1:]
    return {v: p for v, _s, p, _k in (line.split("\t") for line in lines)}


def scores(labels: np.ndarray, persons: np.ndarray) -> tuple[float, float, float, int]:
    """(ARI with singletons, purity, recall of recurring videos, clusters)."""
    from sklearn.metrics import adjusted_rand_score

    single = labels.copy()
    free = single < 0
    single[free] = single.max(initial=-1) + 1 + np.arange(free.sum())
    ari = adjusted_rand_score(persons, single)
    clustered = labels >= 0
    if clustered.any():
        right = 0
        for c in np.unique(labels[clustered]):
            right += Counter(persons[labels == c]).most_common(1)[0][1]
        pur = right / clustered.sum()
    else:
        pur = float("nan")
    counts = Counter(persons)
    recurring = np.array([counts[p] >= 2 for p in persons])
    rec = float(clustered[recurring].mean()) if recurring.any() else float("nan")
    return float(ari), float(pur), rec, int(len(np.unique(labels[clustered])))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cache", default=None)
    args = ap.parse_args(argv)

    from core.cluster import NeighborGraph
    from core.features import concat, open_split
    from core.cluster import auto_dbscan

    names = args.only.split(",") if args.only else list(family.SETTINGS)
    cache = Path(args.cache or os.environ.get("VIDID_CACHE") or Path.home() / ".cache" / "vidid")
    print(f"{'setting':16s} {'n':>5s} {'recur':>5s} {'ms':>2s} {'eps':>6s} {'ARI':>6s} "
          f"{'purity':>6s} {'recall':>6s} {'clusters':>8s}")
    summary: dict[str, list[float]] = {}
    for name in names:
        folder = family.data_dir(name, args.seed, cache)
        data = concat([open_split(folder / "face_train.pickle", folder / "train_gt.txt", split="train"),
                       open_split(folder / "face_val.pickle", folder / "val_gt.txt", split="val")])
        noise = np.flatnonzero(data.ids == 0)
        X = np.ascontiguousarray(data.X[noise], dtype=np.float32)
        truth = truth_of(folder)
        persons = np.array([truth[str(n)] for n in data.names[noise]])
        n_recur = int(sum(c for c in Counter(persons).values() if c >= 2))
        graph = NeighborGraph.build(X, max_eps=max(FIXED))
        for ms in (2, 3):
            eps, labels = auto_dbscan(X, ms)
            rows = [("auto", eps, labels)] + [(f"{e}", e, np.asarray(graph.dbscan(e, ms))) for e in FIXED]
            for tag, e, lab in rows:
                ari, pur, rec, k = scores(np.asarray(lab, dtype=np.int64), persons)
                summary.setdefault(f"{tag} ms={ms}", []).append(ari)
                print(f"{name:16s} {len(X):5d} {n_recur:5d} {ms:2d} "
                      f"{('auto ' if tag == 'auto' else '') + f'{e:.3f}':>6s} {ari:6.3f} "
                      f"{pur:6.3f} {rec:6.3f} {k:8d}", flush=True)
    print("\nmean ARI over the settings:")
    for tag, v in summary.items():
        print(f"  {tag:12s} {np.mean(v):.3f} (worst {np.min(v):.3f})")


if __name__ == "__main__":
    main()
