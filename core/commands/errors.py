"""``vidid errors``: the error report of a run, from its out-of-fold predictions."""

from __future__ import annotations

import argparse

DESCRIPTION = (
    "Print where a trained run goes wrong, from its out-of-fold predictions (the same "
    "analysis as the dashboard's Errors page): how many labelled videos it gets right "
    "and wrong (a video is wrong when its top prediction, noise included, is not its "
    "identity), then the identities of lowest AP with their missed videos and who "
    "took them."
)


def register(subparsers) -> None:
    p = subparsers.add_parser("errors", help="error report of a run", description=DESCRIPTION)
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory with out-of-fold scores")
    p.add_argument("--worst", type=int, default=5, metavar="N",
                   help="identities of lowest AP to detail (default 5)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from core.errors import DataError
    from core.learn.metrics import per_identity_ap
    from core.runs import Run
    from core.runs.oof import load_out_of_fold, missed_videos, rankings, stealers

    if args.worst < 0:
        raise DataError(f"--worst must be >= 0, got {args.worst}")
    run = Run.open(args.run_dir)
    rs = load_out_of_fold(run.path)
    if rs is None:
        raise DataError(f"{run.path}: no out-of-fold scores (oof.npz); is the run complete?")
    if rs.truth is None:
        raise DataError(f"{run.path}/oof.npz: holds no true identities ('ids')")
    outcome = rs.outcomes()
    counts = {k: int((outcome == k).sum()) for k in ("correct", "wrong", "distractor", "not scored")}
    labelled = counts["correct"] + counts["wrong"]
    share = counts["correct"] / labelled if labelled else float("nan")
    print(f"{run.path.name}: {labelled} labelled videos scored, {counts['correct']} correct "
          f"({share:.1%}), {counts['wrong']} wrong; {counts['distractor']} distractors; "
          f"{counts['not scored']} not scored")
    truth = rs.truth_map()
    by_id: dict[int, list[str]] = {}
    for name, ok in zip(rs.names.tolist(), rs.scored.tolist()):
        if ok and truth.get(name, 0) > 0:
            by_id.setdefault(truth[name], []).append(name)
    stored = run.load_json("per_identity_ap") if (run.path / "per_identity_ap.json").exists() else None
    aps = ({int(k): float(v) for k, v in stored.items()} if isinstance(stored, dict)
           else per_identity_ap(by_id, rankings(rs)))  # the AP behind the run's mAP when stored
    for identity, ap in sorted(aps.items(), key=lambda kv: (kv[1], kv[0]))[:args.worst]:
        missed = missed_videos(rs, truth, identity)
        took = stealers(rs, truth, identity)
        who = ", ".join(f"{r.label} ({r.videos})" for r in took.itertuples()) or "-"
        print(f"identity {identity}: AP {ap:.4f}, {len(by_id.get(identity, []))} videos, "
              f"{len(missed)} outside its top 100; wrongly predicted as: {who}")
    return 0
