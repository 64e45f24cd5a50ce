"""``vidid evaluate``: the official iQIYI-VID mAP of a submission file."""

from __future__ import annotations

import argparse

DESCRIPTION = (
    "Score a submission (lines 'ID V1.mp4 V2.mp4 ...', at most 100 videos, best first) "
    "against a ground-truth file (either layout) with the official mAP: duplicates "
    "in a line are dropped (first kept) and then more than 100 videos is an error, AP "
    "is divided by the identity's full ground-truth count, identities without a line "
    "score 0, IDs are compared as integers (07 is 7) and lines for IDs not in the "
    "ground truth (0 included) are ignored. Deliberately more forgiving than the "
    "official script: a video name matches with or without one '.mp4' (X is X.mp4; "
    "only one suffix is ever stripped, never two: X.mp4.mp4 is not X.mp4), and any "
    "run of spaces or tabs separates names. Deliberately stricter: a second line for "
    "the same identity is refused (the official script keeps the last one)."
)


def register(subparsers) -> None:
    p = subparsers.add_parser("evaluate", help="official mAP of a submission",
                              description=DESCRIPTION)
    p.add_argument("gt", metavar="GT", help="ground-truth file")
    p.add_argument("submission", metavar="SUBMISSION", help="submission file")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object {mAP, per_identity, n_identities, ...}")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json

    import numpy as np

    from core.learn.metrics import evaluate_files

    res = evaluate_files(args.gt, args.submission)
    if args.json:
        out = dict(res, per_identity={str(k): v for k, v in res["per_identity"].items()})
        print(json.dumps(out))
        return 0
    aps = np.array(list(res["per_identity"].values()))
    line = (f"mAP {res['mAP']:.4f} over {res['n_identities']} identities "
            f"(AP median {np.median(aps):.4f}, {int((aps == 1).sum())} perfect, "
            f"{int((aps == 0).sum())} zero; {res['n_missing']} without a line")
    if res["n_unknown_identities"]:
        line += f"; {res['n_unknown_identities']} lines for identities not in the ground truth ignored"
    print(line + ")")
    return 0
