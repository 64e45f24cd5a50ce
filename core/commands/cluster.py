"""``vidid cluster``: DBSCAN of the distractor videos of one or more feature files."""

from __future__ import annotations

import argparse

from core.commands import MAX_COUNT, MAX_RADIUS, bounded_float, bounded_int

DESCRIPTION = (
    "Cluster the distractor videos (videos absent from the ground truth; every video "
    "when no ground truth is given) with DBSCAN over their pooled, L2-normalised face "
    "features (default quality-weighted pooling). Labels are identical to "
    "scikit-learn's DBSCAN (euclidean, eps inclusive, min_samples counting the video "
    "itself). Writes 'video<TAB>cluster' lines (-1 = unclustered) and prints a one-line "
    "summary; --sweep also prints clusters / unclustered share / largest cluster over a "
    "grid of eps (and ARI / purity with --truth) and the k-distance knee."
)


def register(subparsers) -> None:
    p = subparsers.add_parser("cluster", help="DBSCAN noise clusters of distractor videos",
                              description=DESCRIPTION)
    p.add_argument("feats", nargs="+", metavar="FEATS",
                   help="feature pickle(s) (face_*.pickle); several are clustered together "
                        "(recurring strangers cross splits); give --gt after them")
    p.add_argument("--gt", nargs="+", default=None, metavar="GT",
                   help="ground truth of each FEATS, in the same order (videos it names are "
                        "not clustered)")
    p.add_argument("--eps", type=bounded_float(MAX_RADIUS), default=None, metavar="E",
                   help="DBSCAN radius (euclidean distance between unit vectors, inclusive); "
                        "default: chosen automatically as training and the dashboard choose it "
                        "(most clusters below the k-distance knee)")
    p.add_argument("--min-samples", type=bounded_int(MAX_COUNT), required=True, metavar="M",
                   help="points within eps (the video itself included) that make a core point")
    p.add_argument("--out", required=True, metavar="LABELS.tsv",
                   help="output: one 'video<TAB>cluster' line per distractor video")
    p.add_argument("--max-eps", type=bounded_float(MAX_RADIUS), default=None, metavar="X",
                   help="radius of the neighbour graph (default: eps, or 1.25 x eps with "
                        "--sweep); the sweep runs up to it")
    p.add_argument("--sweep", action="store_true",
                   help="print the eps table (16 values up to --max-eps) and the knee")
    p.add_argument("--truth", default=None, metavar="TRUTH.tsv",
                   help="tab-separated file with 'video' and 'person' columns (the demo's "
                        "truth.tsv): adds ARI and purity to the summary and the sweep")
    p.add_argument("--method", default="auto", choices=("auto", "exact", "approx"),
                   help="neighbour graph: exact, approximate (faiss HNSW) or auto "
                        "(exact below 100k videos)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import time

    import numpy as np

    from core.atomic import atomic_open
    from core.cluster import NeighborGraph
    from core.cluster.report import clustering_ari, eps_sweep, purity, suggest_eps
    from core.features.dataset import open_split
    from core.errors import DataError
    from core.progress import tqdm_progress

    from core.commands import refuse_overwriting_inputs

    t0 = time.perf_counter()
    refuse_overwriting_inputs(args.out, [*args.feats, *(args.gt or []), args.truth])
    if args.gt is not None and len(args.gt) != len(args.feats):
        raise ValueError(f"--gt names {len(args.gt)} file(s) for {len(args.feats)} FEATS; "
                         f"give one ground truth per feature file, in the same order")
    if args.eps is not None and (not np.isfinite(args.eps) or args.eps <= 0):
        raise ValueError(f"--eps must be a number > 0, got {args.eps}")
    if args.min_samples < 1:
        raise ValueError(f"--min-samples must be >= 1, got {args.min_samples}")
    max_eps = args.max_eps
    if args.eps is not None:
        if max_eps is None:
            max_eps = args.eps * (1.25 if args.sweep else 1.0)
        if max_eps < args.eps:
            raise ValueError(f"--max-eps {max_eps:g} is below --eps {args.eps:g}")
    elif max_eps is not None and max_eps <= 0:
        raise ValueError(f"--max-eps must be a number > 0, got {max_eps}")

    names, blocks = [], []
    for i, feats in enumerate(args.feats):
        gt = args.gt[i] if args.gt is not None else None
        progress, close = tqdm_progress(f"pooling {feats}", disable=args.quiet or None)
        try:
            lv = open_split(feats, gt, progress=progress)
        finally:
            close()
        keep = lv.distractor_mask
        names.append(np.asarray(lv.names, dtype=object)[keep])
        blocks.append(lv.X[keep])
    names_all = np.concatenate(names)
    if len(set(names_all.tolist())) != names_all.size:
        raise DataError("the same video name occurs in several FEATS files; cluster them separately")
    n_total = sum(b.shape[0] for b in blocks)
    if n_total == 0:
        raise DataError(f"{', '.join(args.feats)}: no distractor videos to cluster "
                        f"(every non-empty video is in the ground truth)")
    X = np.concatenate(blocks)

    truth = None
    if args.truth is not None:
        truth = _read_truth(args.truth, names_all)

    knee = None
    if args.eps is None:  # the one eps rule of training and the Noise clusters page
        from core.cluster.eps_choice import EPS_STEP, k_distance_knee

        knee = k_distance_knee(X, args.min_samples)
        if max_eps is None:
            max_eps = max(knee, EPS_STEP) * (1.25 if args.sweep else 1.0)
    progress, close = tqdm_progress("neighbour graph", disable=args.quiet or None)
    try:
        graph = NeighborGraph.build(X, max_eps=max_eps, method=args.method, progress=progress)
    finally:
        close()
    if args.eps is None:
        from core.cluster.eps_choice import eps_on_graph

        args.eps = eps_on_graph(graph, knee, args.min_samples)
        print(f"eps chosen automatically: {args.eps:.4g} (k-distance knee {knee:.4g}; "
              f"give --eps to set it)")
    labels = graph.dbscan(args.eps, args.min_samples)

    with atomic_open(args.out, "w", encoding="utf-8") as fh:
        fh.write("".join(f"{n}\t{c}\n" for n, c in zip(names_all.tolist(), labels.tolist())))

    if args.sweep:
        grid = np.unique(np.concatenate([np.linspace(0.5 * max_eps, max_eps, 16), [args.eps]]))
        table = eps_sweep(graph, grid, args.min_samples, truth=truth)
        if truth is None:
            table = table.drop(columns=["ari", "purity"])
        knee = suggest_eps(graph, args.min_samples)
        print(f"eps sweep (min_samples={args.min_samples}, {X.shape[0]} videos); "
              f"k-distance knee: eps = {knee:.3f}")
        print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))

    sizes = np.bincount(labels[labels >= 0]) if (labels >= 0).any() else np.zeros(0, int)
    extra = ""
    if truth is not None:
        extra = (f", ARI {clustering_ari(labels, truth):.3f}"
                 f", purity {purity(labels, truth):.3f}")
    print(f"clustered {X.shape[0]} distractor videos: {sizes.size} clusters, "
          f"{int((labels < 0).sum())} unclustered ({(labels < 0).mean():.1%}), largest "
          f"{int(sizes.max()) if sizes.size else 0}{extra}; eps={args.eps:g} "
          f"min_samples={args.min_samples} ({graph.method} graph, {graph.n_edges} pairs "
          f"within {max_eps:g}) -> {args.out} [{time.perf_counter() - t0:.1f} s]")
    return 0


def _read_truth(path: str, names) -> "object":
    """True person per video from a tab-separated file with 'video' and 'person' columns."""
    import numpy as np
    import pandas as pd

    from core.errors import DataError
    from core.io.names import canonical_name

    from core.io.safe_pickle import require_file

    require_file(path, "truth")
    table = pd.read_csv(path, sep="\t", dtype=str)
    missing = {"video", "person"} - set(table.columns)
    if missing:
        raise DataError(f"{path}: needs columns 'video' and 'person', missing {sorted(missing)}")
    person = dict(zip((canonical_name(v) for v in table["video"]), table["person"]))
    absent = [n for n in names if n not in person]
    if absent:
        raise DataError(f"{path}: no person for video {absent[0]!r} ({len(absent)} videos missing)")
    return np.asarray([person[n] for n in names], dtype=object)
