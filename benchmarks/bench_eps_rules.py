"""Which automatic-eps rule finds the recurring strangers best? (replayed on eps sweeps)

For every setting and seed of the generalisation family (``bench_generalise.SETTINGS``),
the pooled train + val distractors are swept over eps = 0.05, 0.10, ... up to the
k-distance knee (min_samples 2) with their true persons, and each candidate rule's pick
is scored by the adjusted Rand index against the truth (``core.cluster.report.eps_sweep``).
The product rule (``core.cluster.eps_choice.choose_eps``) is one of the candidates, so a
change to it is measured against the alternatives in the same run. Not a test.

    nice python benchmarks/bench_eps_rules.py               # 12 settings x 2 seeds
    nice python benchmarks/bench_eps_rules.py --only real,sparse --seeds 1
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_generalise as family  # noqa: E402  (the settings and their data)
from bench_noise_clusters import truth_of  # noqa: E402

Rule = Callable[[pd.DataFrame], float]


def most_clusters(sw: pd.DataFrame) -> float:
    """The first version: the most clusters, ties to the larger eps."""
    return float(sw.loc[sw["n_clusters"] == sw["n_clusters"].max(), "eps"].max())


def step_back(growth: float) -> Rule:
    def rule(sw: pd.DataFrame) -> float:
        share = sw["largest_share"].to_numpy()
        i = int(np.flatnonzero(sw["eps"].to_numpy() == most_clusters(sw))[0])
        while i > 0 and share[i - 1] > 0 and share[i] >= growth * share[i - 1]:
            i -= 1
        return float(sw["eps"].iloc[i])
    return rule


def smallest_with(frac: float) -> Rule:
    return lambda sw: float(sw.loc[sw["n_clusters"] >= frac * sw["n_clusters"].max(), "eps"].min())


def plateau_middle(frac: float) -> Rule:
    def rule(sw: pd.DataFrame) -> float:
        ok = sw.loc[sw["n_clusters"] >= frac * sw["n_clusters"].max(), "eps"].to_numpy()
        mid = (ok.min() + ok.max()) / 2
        return float(ok[np.argmin(np.abs(ok - mid))])
    return rule


def main(argv: list[str] | None = None) -> None:
    from core.cluster import NeighborGraph
    from core.cluster.eps_choice import EPS_STEP, choose_eps, k_distance_knee
    from core.cluster.report import eps_sweep
    from core.features import concat, open_split

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", default=None)
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--cache", default=None)
    args = ap.parse_args(argv)
    rules: dict[str, Rule] = {
        "product (choose_eps)": lambda sw: choose_eps(sw, float("inf")),
        "most clusters": most_clusters,
        "step back 1.5x": step_back(1.5), "step back 2x": step_back(2.0),
        "step back 3x": step_back(3.0),
        "smallest with 95%": smallest_with(0.95), "plateau middle 80%": plateau_middle(0.8),
    }
    cache = Path(args.cache or os.environ.get("VIDID_CACHE") or Path.home() / ".cache" / "vidid")
    names = args.only.split(",") if args.only else list(family.SETTINGS)
    rows = []
    for seed in range(args.seeds):
        for name in names:
            folder = family.data_dir(name, seed, cache)
            data = concat([open_split(folder / "face_train.pickle", folder / "train_gt.txt", split="train"),
                           open_split(folder / "face_val.pickle", folder / "val_gt.txt", split="val")])
            noise = np.flatnonzero(data.ids == 0)
            X = np.ascontiguousarray(data.X[noise], dtype=np.float32)
            truth = truth_of(folder)
            _, persons = np.unique([truth[str(n)] for n in data.names[noise]], return_inverse=True)
            knee = k_distance_knee(X, 2)
            grid = np.round(np.arange(EPS_STEP, knee + 1e-9, EPS_STEP), 6)
            sw = eps_sweep(NeighborGraph.build(X, max_eps=float(grid[-1])), grid, 2, truth=persons)
            row = {"data": f"{name}/{seed}", "best": sw["ari"].max()}
            for rname, rule in rules.items():
                e = rule(sw)
                row[rname] = float(sw.loc[np.isclose(sw["eps"], e), "ari"].iloc[0])
            rows.append(row)
            print("  " + "  ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}"
                                   for k, v in row.items()), flush=True)
    df = pd.DataFrame(rows)
    print(f"\nARI over {len(df)} data sets (best possible on the grid: mean {df['best'].mean():.3f})")
    for rname in rules:
        print(f"  {rname:22s} mean {df[rname].mean():.3f}  worst {df[rname].min():.3f}")


if __name__ == "__main__":
    main()
