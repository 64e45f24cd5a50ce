"""``vidid pool``: pool a feature pickle into one unit vector per video (Parquet)."""

from __future__ import annotations

import argparse

from core.commands import finite_float

DESCRIPTION = (
    "Pool the per-frame face features of every video into one L2-normalised vector "
    "(quality-weighted mean of the frame features) and write them to a Parquet file "
    "(columns name, x, n_frames, mean_quality). Videos without frames are skipped "
    "and reported."
)


def register(subparsers) -> None:
    p = subparsers.add_parser("pool", help="pool frame features into one vector per video",
                              description=DESCRIPTION)
    p.add_argument("feats", metavar="FEATS", help="feature pickle (iQIYI-VID face_*.pickle)")
    p.add_argument("--out", required=True, metavar="FILE.parquet", help="output Parquet file")
    p.add_argument("--weighting", default="quality", choices=("quality", "quality2", "uniform"),
                   help="frame weights: max(q,0), max(q,0)**2 or 1 (default: quality)")
    p.add_argument("--min-quality", type=finite_float, default=None, metavar="Q",
                   help="ignore frames with quality < Q (all frames count if none pass)")
    p.add_argument("--min-det", type=finite_float, default=None, metavar="D",
                   help="ignore frames with detection score < D (all count if none pass)")
    p.add_argument("--no-cache", action="store_true", help="do not use the feature cache")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import time

    from core.io.formats import read_features
    from core.features import pool_videos, save_pooled
    from core.progress import tqdm_progress

    from core.commands import refuse_overwriting_inputs

    refuse_overwriting_inputs(args.out, [args.feats])
    t0 = time.perf_counter()
    progress, close = tqdm_progress("reading", disable=args.quiet or None)
    try:
        fs = read_features(args.feats, cache=not args.no_cache, progress=progress)
    finally:
        close()
    progress, close = tqdm_progress("pooling", disable=args.quiet or None)
    try:
        pv = pool_videos(fs, weighting=args.weighting, min_quality=args.min_quality,
                         min_det=args.min_det, progress=progress)
    finally:
        close()
    save_pooled(pv, args.out)
    skipped = ""
    if pv.empty:
        shown = ", ".join(pv.empty[:3]) + (", ..." if len(pv.empty) > 3 else "")
        skipped = f" ({shown})"
    print(f"pooled {len(pv)} videos x {pv.X.shape[1]} ({args.weighting}) from {fs.n_frames} "
          f"frames -> {args.out}; skipped {len(pv.empty)} empty video"
          f"{'' if len(pv.empty) == 1 else 's'}{skipped} [{time.perf_counter() - t0:.1f} s]")
    return 0
