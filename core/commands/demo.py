"""``vidid demo OUT_DIR``: write the built-in synthetic dataset."""

from __future__ import annotations

import argparse
from pathlib import Path

def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``demo`` subcommand to the ``vidid`` parser."""
    parser = subparsers.add_parser(
        "demo",
        help="write a synthetic iQIYI-VID-like dataset",
        description=(
            "Write a synthetic dataset in the real iQIYI-VID formats into OUT_DIR: "
            "face_{train,val,test}.pickle, {train,val,test}_gt.txt, plus truth.tsv "
            "(who is really in every video) and README.txt. 37.5% of val/test videos "
            "are distractors. Presets: tiny (~20 identities, ~400 videos, seconds), "
            "demo (~400 identities, ~10k videos, under a minute), large (2019 scale, "
            "~10k identities, ~200k videos, several GB, many minutes). OUT_DIR must be "
            "empty, new, or a previous vidid demo folder."
        ),
    )
    parser.add_argument("out_dir", metavar="OUT_DIR", help="folder to write into")
    parser.add_argument("--preset", default="demo", choices=("tiny", "demo", "large"),
                        help="dataset size (default: demo)")
    from core.commands import MAX_SEED, bounded_int

    parser.add_argument("--seed", type=bounded_int(MAX_SEED), default=0,
                        help="random seed; the same seed writes the same files (default: 0)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Generate the dataset; refuse to write into a foreign non-empty folder."""
    from core.errors import DataError
    from core.progress import tqdm_progress
    from core.synth import generate, is_demo_dir

    out = Path(args.out_dir)
    if out.exists() and not out.is_dir():
        raise DataError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not is_demo_dir(out):
        raise DataError(
            f"{out}: folder is not empty and is not a vidid demo folder (no vidid README.txt); "
            "refusing to overwrite it - choose an empty or new folder"
        )
    if args.seed < 0:
        raise DataError(f"--seed must be >= 0, got {args.seed}")
    progress, close = tqdm_progress(f"vidid demo ({args.preset})")
    try:
        summary = generate(out, preset=args.preset, seed=args.seed, progress=progress)
    finally:
        close()
    parts = [f"{split} {summary[split]['videos']} videos "
             f"({summary[split]['distractors']} distractors, {summary[split]['frames']} faces)"
             for split in ("train", "val", "test")]
    print(f"wrote {out}: preset {args.preset}, seed {args.seed}, "
          f"{summary['n_identities']} identities; " + "; ".join(parts)
          + f" in {summary['seconds']:.1f} s")
    return 0
