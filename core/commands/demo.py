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
            "(who is really in every video) and README.txt. Shaped like the real 2019 "
            "set: about 5 training videos per identity (median, long tail), 37.5% of "
            "val/test videos distractors. Presets: tiny (20 identities, ~400 videos, "
            "seconds), demo (400 identities, ~8k videos, under a minute), rich (the "
            "earlier demo, 11 training videos per identity), large (2019 scale, 10k "
            "identities, ~200k videos, several GB, many minutes). Every knob of the "
            "planted structure can be changed with --knob (see core.synth.Preset). "
            "OUT_DIR must be empty, new, or a previous vidid demo folder."
        ),
    )
    parser.add_argument("out_dir", metavar="OUT_DIR", help="folder to write into")
    parser.add_argument("--preset", default="demo", choices=("tiny", "demo", "rich", "large"),
                        help="dataset size and shape (default: demo)")
    parser.add_argument("--knob", action="append", default=[], metavar="NAME=VALUE",
                        help="change one knob of the preset, e.g. --knob train_per_id=3 "
                             "--knob hard_share=0.5 --knob lookalike_cos=0.8,0.9 (repeatable); "
                             "knobs: n_identities, train_per_id, val_per_id, test_per_id, "
                             "per_id_spread, mean_frames, max_frames, distractor_share, "
                             "hard_share, hard_offset, once_share, lookalike_share, "
                             "lookalike_cos, frame_noise, empty_share")
    from core.commands import MAX_SEED, bounded_int

    parser.add_argument("--seed", type=bounded_int(MAX_SEED), default=0,
                        help="random seed; the same seed writes the same files (default: 0)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Generate the dataset; refuse to write into a foreign non-empty folder."""
    from core.errors import DataError
    from core.progress import tqdm_progress
    from core.synth import generate, is_demo_dir, make_preset

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
    preset = make_preset(args.preset, **_knobs(args.knob)) if args.knob else args.preset
    progress, close = tqdm_progress(f"vidid demo ({args.preset})")
    try:
        summary = generate(out, preset=preset, seed=args.seed, progress=progress)
    finally:
        close()
    parts = [f"{split} {summary[split]['videos']} videos "
             f"({summary[split]['distractors']} distractors, {summary[split]['frames']} faces)"
             for split in ("train", "val", "test")]
    print(f"wrote {out}: preset {args.preset}, seed {args.seed}, "
          f"{summary['n_identities']} identities; " + "; ".join(parts)
          + f" in {summary['seconds']:.1f} s")
    return 0


def _knobs(items: list[str]) -> dict:
    """``["train_per_id=3", "lookalike_cos=0.8,0.9"]`` -> knob values (numbers, pairs)."""
    from core.errors import DataError

    out: dict = {}
    for item in items:
        name, sep, text = item.partition("=")
        try:
            if not sep:
                raise ValueError
            values = [float(v) for v in text.split(",")]
            if not all(abs(v) < 1e9 for v in values):  # also refuses nan and inf
                raise ValueError
        except ValueError:
            raise DataError(f"--knob {item!r}: expected NAME=NUMBER or NAME=NUMBER,NUMBER") from None
        value = values[0] if len(values) == 1 else tuple(values)
        if name in ("n_identities", "max_frames", "chunk_videos") and isinstance(value, float):
            if value != int(value):
                raise DataError(f"--knob {item!r}: {name} must be a whole number")
            value = int(value)
        out[name.strip()] = value
    return out
