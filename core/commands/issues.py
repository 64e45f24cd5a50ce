"""``vidid issues``: labelled videos whose identity is probably wrong (cleanlab)."""

from __future__ import annotations

import argparse

DESCRIPTION = (
    "Rank the labelled videos of a run whose ground-truth identity is probably wrong: "
    "cleanlab's find_label_issues (confident learning) over the run's out-of-fold "
    "probabilities (what each video looks like to a model that never saw its label). "
    "One line per video, most suspicious first: the video, its given identity, the "
    "identity the run suggests, their probabilities and the label quality (lower is "
    "more suspicious)."
)


def register(subparsers) -> None:
    p = subparsers.add_parser("issues", help="probable label errors of a run (cleanlab)",
                              description=DESCRIPTION)
    p.add_argument("run_dir", metavar="RUN_DIR", help="a complete run directory (oof.npz)")
    p.add_argument("--top", type=int, default=50, metavar="N",
                   help="print at most N videos (default 50; 0 = all)")
    p.add_argument("--csv", default=None, metavar="OUT.csv", help="also write the full table as CSV")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from core.errors import DataError
    from core.runs.label_issues import run_label_issues

    if args.top < 0:
        raise DataError(f"--top must be >= 0, got {args.top}")
    issues = run_label_issues(args.run_dir)
    if args.csv:
        from core.atomic import atomic_write_text

        atomic_write_text(args.csv, issues.to_csv(index=False))
    how = ("" if issues.attrs.get("method") != "predicted_neq_given" else
           " (run too large for cleanlab's dense matrix: most probable identity != given one)")
    print(f"{len(issues)} labelled video(s) probably mislabelled{how}")
    shown = issues if args.top == 0 else issues.head(args.top)
    for r in shown.itertuples():
        print(f"{r.video}\tgiven {r.given} ({r.given_prob:.3f})\tsuggested {r.suggested} "
              f"({r.suggested_prob:.3f})\tquality {r.quality:.3f}")
    return 0
