"""``vidid predict``: rank new videos per identity with a complete run; write a submission."""

from __future__ import annotations

import argparse

DESCRIPTION = (
    "Score every video of FEATS with the ensemble of a complete run (its fold models "
    "and the networks refit on every video; test-time "
    "views as the run was trained, unless --views/--no-views) and write the official "
    "submission: one line 'ID V1.mp4 V2.mp4 ...' per identity of the training data, at "
    "most 100 videos, best first. Refuses a run that is not complete. With --gt, also "
    "prints the official mAP of the submission."
)


def register(subparsers) -> None:
    p = subparsers.add_parser("predict", help="write a submission with a trained run",
                              description=DESCRIPTION)
    p.add_argument("run_dir", metavar="RUN_DIR", help="a complete run directory")
    p.add_argument("feats", metavar="FEATS", help="feature pickle of the videos to rank")
    p.add_argument("--out", metavar="SUBMISSION", required=True, help="submission file to write")
    views = p.add_mutually_exclusive_group()
    views.add_argument("--views", dest="views", action="store_true", default=None,
                       help="use test-time views (max over full, drop head, drop tail, middle)")
    views.add_argument("--no-views", dest="views", action="store_false",
                       help="score the full video only")
    p.add_argument("--gt", metavar="GT", default=None,
                   help="ground truth of FEATS: print the submission's official mAP")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import os
    import sys

    from core.errors import DataError
    from core.progress import null_progress, tqdm_progress
    from core.runs import Run

    run_ = Run.open(args.run_dir)
    state = run_.state
    if state != "complete":
        hint = (f"; finish it with 'vidid train --resume {run_.path}'"
                if state in ("interrupted", "failed", "cancelled") else "")
        raise DataError(f"{run_.path}: run is {state}, not complete; cannot predict with it{hint}")
    from core.commands import refuse_output_inside, refuse_overwriting_inputs
    from core.io.safe_pickle import require_file

    require_file(args.feats, "features")
    if os.path.isdir(args.out):
        raise IsADirectoryError(21, "Is a directory", args.out)
    refuse_overwriting_inputs(args.out, [args.feats, args.gt])
    refuse_output_inside(args.out, str(run_.path), "run directory")
    gt = None
    if args.gt:  # read (and validate) the ground truth before anything is written
        from core.io.formats import read_ground_truth

        gt = read_ground_truth(args.gt)
    from core.runs.predict import predict_submission

    progress, close = (null_progress, None) if args.quiet else tqdm_progress("predict")
    try:
        ranking = predict_submission(run_.path, args.feats, args.out, views=args.views,
                                     progress=progress)
    finally:
        if close:
            close()
    n_videos = len({v for vids in ranking.values() for v in vids})
    mods = run_.config().get("modalities") or ["face"]
    line = f"{args.out}: {len(ranking)} identities, {n_videos} distinct videos ranked"
    if list(mods) != ["face"]:
        line += f" from {', '.join(mods)}"
    if gt is not None:  # scored from the file as written, exactly as `vidid evaluate`
        from core.learn.metrics import evaluate_files

        line += f"; mAP {evaluate_files(args.gt, args.out)['mAP']:.4f} against {args.gt}"
    print(line)
    return 0
