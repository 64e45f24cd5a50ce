"""``vidid train``: cross-validated training (knn / nn / noise) into a run directory."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from core.commands import MAX_COUNT, MAX_LR, MAX_RADIUS, MAX_SEED, bounded_float, bounded_int, finite_float

DESCRIPTION = (
    "Train a video recognition run on one or more (features, ground truth) pairs: "
    "'knn' (cosine KNN baseline), 'nn' (ArcFace network on identities) or 'noise' (the "
    "noise-aware network: DBSCAN noise clusters + dynamic shadow classes). In each "
    "--data pair a video present in FEATS but absent from GT is a distractor; GT '-' "
    "makes every video of FEATS a distractor. Stratified K-fold cross-validation; the "
    "run directory keeps config, per-epoch metrics, fold checkpoints and out-of-fold "
    "scores. Ctrl-C leaves the run 'interrupted'; finish it with --resume RUN_DIR "
    "(completed folds are kept, the same seed gives the same result)."
)

# CLI option -> TrainConfig field. Defaults are None so that only options the user
# gave override the defaults (new run) or the stored config (resume).
_OPTIONS = {
    "method": "method", "folds": "folds", "epochs": "epochs", "eps": "eps",
    "min_samples": "min_samples", "seed": "seed", "batch_size": "batch_size", "lr": "lr",
    "ensemble": "ensemble", "weighting": "weighting", "min_quality": "min_quality",
    "min_det": "min_det", "knn_k": "knn_k", "knn_agg": "knn_agg", "device": "device",
    "refit": "refit", "fusion": "fusion", "head_sample": "head_sample", "threads": "threads",
}
# Options that may change when resuming (core.learn.fit checks the others per fold).
_RESUME_FREE = ("device", "threads")


def register(subparsers) -> None:
    from core.learn.config import (
        TrainConfig,  # light (no torch): the defaults shown in --help
    )
    from core.learn.backends import BACKENDS, backend_names
    from core.learn.methods import method_names

    D = TrainConfig()
    p = subparsers.add_parser("train", help="train a run (knn, nn or noise)", description=DESCRIPTION)
    p.add_argument("--data", nargs=2, action="append", metavar=("FEATS", "GT"), default=None,
                   help="a feature pickle and its ground truth (either layout, or '-' for none); "
                        "repeat for several splits (e.g. train and val)")
    p.add_argument("--method", choices=method_names(), default=None,
                   help=f"training method (default {D.method})")
    p.add_argument("--out", metavar="RUN_DIR", default=None,
                   help="run directory to create (must not hold a run); default: a new "
                        "directory under $VIDID_RUNS, else $VIDID_CACHE/runs, else ~/.cache/vidid/runs")
    p.add_argument("--resume", nargs="?", const=True, default=None, metavar="RUN_DIR",
                   help="finish an interrupted run (RUN_DIR, or the one given by --out); "
                        "data and options come from the run")
    g = p.add_argument_group("training options (default in brackets)")
    g.add_argument("--folds", type=bounded_int(1000), default=None, metavar="K", help=f"cross-validation folds ({D.folds})")
    g.add_argument("--epochs", type=bounded_int(10**6), default=None, metavar="N", help=f"most epochs per fold; "
                   f"the best epoch by validation mAP wins ({D.epochs})")
    g.add_argument("--refit", type=bounded_int(100), default=None, metavar="R",
                   help="networks trained on every video after the folds, for the folds' median "
                        f"best epoch count, ensembled with the fold models (0: none) ({D.refit})")
    g.add_argument("--eps", type=bounded_float(MAX_RADIUS), default=None, metavar="E", help="DBSCAN eps of the noise clusters (default: chosen from the data: the most "
                   "clusters at or below the knee of the k-distance curve)")
    g.add_argument("--min-samples", type=bounded_int(MAX_COUNT), default=None, metavar="M", help=f"DBSCAN min_samples ({D.min_samples})")
    g.add_argument("--seed", type=bounded_int(MAX_SEED), default=None, metavar="S", help=f"random seed ({D.seed})")
    g.add_argument("--batch-size", type=bounded_int(MAX_COUNT), default=None, metavar="B", help="batch size (default: automatic, about 16 steps per epoch: the power of two "
                        "nearest a sixteenth of the training samples, within 32..512)")
    g.add_argument("--head-sample", type=bounded_float(1.0), default=None, metavar="F",
                   help="share of the class centres each training step uses (Partial FC), for "
                        f"heads of tens of thousands of classes; 1 = the full head ({D.head_sample:g})")
    g.add_argument("--lr", type=bounded_float(MAX_LR), default=None, metavar="LR", help=f"Adam learning rate ({D.lr:g})")
    g.add_argument("--no-augment", action="store_true", help="no join/cut noise augmentation")
    g.add_argument("--no-views", action="store_true", help="no test-time views (full video only)")
    g.add_argument("--ensemble", choices=("sum", "map_weighted"), default=None,
                   help=f"how fold models are combined ({D.ensemble})")
    g.add_argument("--weighting", choices=("quality", "quality2", "uniform"), default=None,
                   help=f"frame weights of pooling ({D.weighting})")
    g.add_argument("--min-quality", type=finite_float, default=None, help="drop frames under this quality")
    g.add_argument("--min-det", type=finite_float, default=None, help="drop frames under this detection score")
    g.add_argument("--knn-k", type=bounded_int(10**6), default=None, metavar="K", help=f"knn: neighbours per identity ({D.knn_k})")
    g.add_argument("--knn-agg", choices=("mean", "max", "sum"), default=None, help=f"knn: aggregation ({D.knn_agg})")
    g.add_argument("--modalities", default=None, metavar="LIST",
                   help="modalities to use, e.g. face,head,body,audio (their files sit beside each "
                        "face pickle: face_val.pickle -> head_val.pickle ...); default: every "
                        "modality found for every --data pair; 'face' is the face-only method")
    g.add_argument("--fusion", choices=("gated", "concat"), default=None,
                   help=f"how modalities are combined by the network ({D.fusion})")
    g.add_argument("--device", default=None, help=f"auto (CUDA when present), cpu, cuda[:N] ({D.device})")
    g.add_argument("--threads", type=bounded_int(4096), default=None, metavar="T",
                   help="torch CPU threads per network (default: all cores for --backend local, "
                        "1 per Ray task). The same seed and threads give byte-identical "
                        "checkpoints on either backend; CPU matrix products split over another "
                        "number of threads may round differently")
    g.add_argument("--quiet", action="store_true", help="no progress bars")
    b = p.add_argument_group("where the networks train")
    b.add_argument("--backend", choices=backend_names(), default=None,
                   help="; ".join(f"{k}: {v}" for k, v in BACKENDS.items())
                        + " (default local; a resumed run keeps its own unless given)")
    b.add_argument("--ray-address", default=None, metavar="ADDRESS",
                   help="with --backend ray: the cluster's head (HOST:PORT, ray://HOST:PORT or "
                        "auto); default: a local Ray instance started for the run. This process "
                        "stays the driver: it reads the data and writes the run directory")
    p.set_defaults(func=run)


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    out = {field: getattr(args, opt) for opt, field in _OPTIONS.items() if getattr(args, opt) is not None}
    if args.no_augment:
        out["augment"] = False
    if args.no_views:
        out["views"] = False
    return out


def _check_device(device: str) -> None:
    """Refuse a CUDA device that is not there before any run directory exists (a
    failed run left at --out would block the retry with the same --out)."""
    if device.startswith("cuda"):
        import torch

        from core.learn.config import resolve_device

        resolve_device(device)
        index = device.partition(":")[2]
        if index and (not index.isdigit() or int(index) >= torch.cuda.device_count()):
            raise ValueError(f"--device {device!r}: no such CUDA device "
                             f"({torch.cuda.device_count()} present)")


def _data_entries(pairs: list[list[str]]) -> list[dict]:
    entries = []
    for feats, gt in pairs:
        feats = os.path.abspath(feats)
        gt = None if gt in ("-", "") else os.path.abspath(gt)
        for path in (feats, gt):
            if path is not None and not os.path.exists(path):
                raise FileNotFoundError(2, "No such file or directory", path)
            if path is not None and os.path.isdir(path):
                raise IsADirectoryError(21, "Is a directory", path)
        entries.append({"split": os.path.splitext(os.path.basename(feats))[0], "feats": feats, "gt": gt,
                        "fingerprint": [_fingerprint(p) for p in (feats, gt)]})
    return entries


def _fingerprint(path: str | None) -> list[int] | None:
    if path is None:
        return None
    st = os.stat(path)
    return [int(st.st_size), int(st.st_mtime_ns)]


def _check_unchanged(entries: list[dict], run_path) -> None:
    for e in entries:
        fp = e.get("fingerprint")
        if not fp:
            continue  # started by the dashboard: no fingerprint kept
        for path, old in zip((e["feats"], e.get("gt")), fp):
            if path is None or old is None:
                continue
            if not os.path.exists(path):
                raise FileNotFoundError(2, "No such file or directory", path)
            if _fingerprint(path) != old:
                raise ValueError(f"{path}: changed since run {run_path} started "
                                 "(size or modification time); cannot resume on different data")


def _load_data(entries: list[dict], cfg: dict, progress) -> Any:
    from core.features import dataset

    pool_opts = {k: cfg[k] for k in ("weighting", "min_quality", "min_det") if k in cfg}
    mods = tuple(cfg.get("modalities") or ("face",))
    parts = []
    for i, e in enumerate(entries):
        def part_progress(f: float, m: str = "", i: int = i) -> None:
            progress((i + f) / len(entries), f"{e['split']}: {m}" if m else e["split"])

        if mods != ("face",):
            from core.features.modalities import open_multimodal

            parts.append(open_multimodal(e["feats"], e.get("gt"), modalities=mods,
                                         split=e.get("split", ""), progress=part_progress,
                                         **pool_opts))
            continue
        parts.append(dataset.open_split(e["feats"], e.get("gt"), split=e.get("split", ""),
                                        progress=part_progress, **pool_opts))
    return parts[0] if len(parts) == 1 else dataset.concat(parts)


def _plan_new_run(args: argparse.Namespace):
    """Check options and the output directory; the run itself is created only
    once the data has loaded, so a data mistake leaves nothing behind."""
    from core import runs
    from core.learn import TrainConfig

    if not args.data:
        raise ValueError("no training data: give at least one --data FEATS GT")
    cfg = TrainConfig(**_overrides(args))  # validates every option
    _check_device(cfg.device)
    entries = _data_entries(args.data)
    cfg, args.modalities_note = _with_modalities(cfg, args.modalities, entries)
    doc = cfg.to_dict()
    doc["data"] = entries
    args.backend_choice = _backend_choice(args, None)
    doc.update(args.backend_choice)
    if args.out is None:
        path = runs.new_run_dir(runs.default_runs_root(), cfg.method)
    else:
        path = os.path.abspath(args.out)
        if os.path.isdir(path) and os.listdir(path) and not os.path.exists(os.path.join(path, runs.CONFIG)):
            raise ValueError(f"{path}: directory exists and is not empty; choose a new --out")
        if os.path.exists(os.path.join(path, runs.CONFIG)):
            state = runs.Run.open(path).state
            hint = "" if state == "complete" else f"; finish it with 'vidid train --resume {path}'"
            raise ValueError(f"{path}: already holds a {state} run{hint}")
    return path, doc, cfg, entries


def _with_modalities(cfg, requested: str | None, entries: list[dict]):
    """(``cfg`` with the modalities to use, a line saying which): those asked for (their
    files must exist beside every face pickle), else every modality found beside every one."""
    from dataclasses import replace

    from core.errors import DataError
    from core.io.modalities import MODALITIES, check_modalities, sibling_paths

    found = {e["feats"]: sibling_paths(e["feats"]) for e in entries}
    common = tuple(m for m in MODALITIES if all(m in f for f in found.values()))
    if requested is None:
        mods = common
        how = "found beside every --data file" if len(mods) > 1 else "no other modality found"
    else:
        mods = check_modalities(requested)
        for feats, f in found.items():
            missing = [m for m in mods if m not in f]
            if missing:
                raise DataError(f"{feats}: no {missing[0]} features beside it (looked for "
                                f"{missing[0]}_*.pickle by swapping the 'face_' prefix)")
        how = "--modalities"
    args_note = f"modalities: {', '.join(mods)} ({how})"
    return replace(cfg, modalities=mods), args_note


def _check_trainable(data, entries: list[dict], cfg=None) -> None:
    import numpy as np

    from core.errors import DataError

    n_ids = len(np.unique(np.asarray(data.ids)[np.asarray(data.ids) > 0]))
    if n_ids < 2:
        files = ", ".join(f"{e['feats']} + {e.get('gt') or '(no ground truth)'}" for e in entries)
        raise DataError(f"{files}: got {n_ids} labelled identities with frames, training needs at least 2 identities")
    if cfg is not None:
        # The fold split training will use: refuse a folds count that leaves a fold without
        # a labelled video now, before a run directory exists (a failed run left at --out
        # would block re-running with a fixed --folds).
        from core.learn.folds import stratified_folds

        ids = np.asarray(data.ids)
        lab = ids[ids > 0]
        fold = stratified_folds(lab, cfg.folds, seed=cfg.seed)
        held = np.bincount(fold[fold >= 0], minlength=cfg.folds)
        if (held == 0).any():
            raise DataError(f"--folds {cfg.folds}: fold {int(np.argmin(held))} would hold no "
                            f"labelled video ({len(lab)} labelled videos); use fewer folds")


def _resume_run(args: argparse.Namespace):
    from core import runs
    from core.learn import TrainConfig

    target = args.out if args.resume is True else args.resume
    if target is None:
        raise ValueError("--resume needs a run directory (--resume RUN_DIR)")
    if args.out is not None and args.resume is not True and os.path.abspath(args.out) != os.path.abspath(args.resume):
        raise ValueError(f"--resume {args.resume} and --out {args.out} name different runs")
    if args.data:
        raise ValueError("--resume takes its data from the run; do not give --data")
    existing = runs.Run.open(target)
    stored = existing.config()
    for field, value in _overrides(args).items():
        if field not in _RESUME_FREE and stored.get(field) != value:
            raise ValueError(f"{existing.path}: run was started with {field}={stored.get(field)!r}, "
                             f"not {value!r}; a resumed run keeps its options")
    entries = stored.get("data")
    if not isinstance(entries, list) or not entries:
        raise ValueError(f"{existing.path}/config.json: no 'data' entries; cannot resume")
    args.backend_choice = _backend_choice(args, stored)
    _check_unchanged(entries, existing.path)
    cfg = TrainConfig.from_dict({**stored, **{k: v for k, v in _overrides(args).items() if k in _RESUME_FREE}})
    _check_device(cfg.device)
    run = runs.Run.resume(target)  # refuses complete / live runs, cleans partial files
    return run, cfg, entries


def _backend_choice(args: argparse.Namespace, stored: dict | None) -> dict:
    """``{"backend": ...[, "ray_address": ...]}`` of this run, checked (Ray importable, the
    address answering). A resumed run keeps the backend it was started with unless
    ``--backend`` is given: the backend never changes the result."""
    from core.learn.backends import check_backend

    stored = stored or {}
    name = args.backend or stored.get("backend", "local")
    address = args.ray_address
    if address is None and args.backend is None and name == "ray":
        address = stored.get("ray_address")
    check_backend(name, address)
    choice = {"backend": name}
    if address:
        choice["ray_address"] = address
    return choice


def _stored_noise_labels(run_, data):
    """A clustering chosen in the dashboard (``noise_labels.npz``: names, labels),
    aligned to the distractors of ``data`` (-1 where unknown); None if the run has none."""
    import numpy as np

    if not run_.has("noise_labels.npz"):
        return None
    stored = run_.load_array("noise_labels")
    lookup = dict(zip(stored["names"].tolist(), stored["labels"].tolist()))
    noise = np.asarray(data.names)[np.asarray(data.ids) == 0]
    return np.fromiter((lookup.get(str(n), -1) for n in noise), dtype=np.int64, count=len(noise))


def _beating(run_, bar, phase: str | None = None, *, lines: bool = False):
    """A progress callback that also keeps the run's heartbeat fresh (throttled).

    With ``lines``, each epoch's message (fold, epoch, loss, val mAP) is also printed
    as a line of its own above the bar, so the terminal keeps the history.
    """
    def progress(fraction: float, message: str = "") -> None:
        bar(fraction, message)
        if lines and " epoch " in f" {message} ":
            from tqdm.auto import tqdm

            tqdm.write(message, file=sys.stderr)
        if phase is not None:
            run_.heartbeat(None, phase)
        else:
            run_.heartbeat(fraction, message or None)

    return progress


def run(args: argparse.Namespace) -> int:
    import signal
    import sys
    import threading

    from core import runs
    from core.progress import null_progress, tqdm_progress

    resume = args.resume is not None
    if resume:
        run_, cfg, entries = _resume_run(args)
        data = None
    else:
        # Load (and validate) the data before a run directory exists.
        path, doc, cfg, entries = _plan_new_run(args)
        bar, close = (null_progress, None) if args.quiet else tqdm_progress("load")
        try:
            data = _load_data(entries, cfg.to_dict(), bar)
        finally:
            if close:
                close()
        _check_trainable(data, entries, cfg)
        run_ = runs.Run.create(path, doc)
    print(f"{'resuming' if resume else 'run'} {run_.path} ({cfg.method}, {cfg.folds} folds)",
          file=sys.stderr)
    if getattr(args, "modalities_note", None):  # said once the data has loaded
        print(args.modalities_note, file=sys.stderr)
    elif resume and cfg.modalities:
        print(f"modalities: {', '.join(cfg.modalities)} (from the run)", file=sys.stderr)

    def on_sigterm(signum, frame):  # a kill from the dashboard or a scheduler: like Ctrl-C
        raise KeyboardInterrupt

    main_thread = threading.current_thread() is threading.main_thread()
    old_term = signal.signal(signal.SIGTERM, on_sigterm) if main_thread else None
    close = None
    try:
        if data is None:
            bar, close = (null_progress, None) if args.quiet else tqdm_progress("load")
            run_.heartbeat(0.0, "loading data")
            data = _load_data(entries, cfg.to_dict(), _beating(run_, bar, phase="loading data"))
            if close:
                close()
        from core import learn as train
        from core.learn.backends import open_backend

        choice = args.backend_choice
        # this session's backend (a resumed run may change it; config.json keeps the first)
        run_.set_status(backend=choice["backend"], ray_address=choice.get("ray_address"))
        with open_backend(choice["backend"], choice.get("ray_address")) as backend:
            if main_thread:  # ray.init puts in its own SIGTERM handler (exit 15): ours again
                signal.signal(signal.SIGTERM, on_sigterm)
            bar, close = (null_progress, None) if args.quiet else tqdm_progress(f"train {cfg.method}")
            summary = train.fit(cfg, data, run_, progress=_beating(run_, bar, lines=not args.quiet),
                                resume=resume, backend=backend,
                                noise_labels=_stored_noise_labels(run_, data))
    except KeyboardInterrupt:
        if run_.state == "running":
            run_.interrupt("interrupted (Ctrl-C); resume to finish")
        print(f"vidid train: interrupted; finish it with 'vidid train --resume {run_.path}'",
              file=sys.stderr)
        return 130
    except BaseException as exc:
        if run_.state == "running":
            run_.fail(f"{type(exc).__name__}: {exc}")
        raise
    finally:
        if close:
            close()
        if main_thread:
            signal.signal(signal.SIGTERM, old_term)
    if summary.get("state") == "cancelled":
        print(f"vidid train: {run_.path}: {summary.get('message', 'cancelled')}", file=sys.stderr)
        return 1
    folds = ", ".join(f"{m:.4f}" for m in summary.get("fold_val_map", []))
    if summary.get("noise_eps") is not None:
        print(f"noise clusters: eps {summary['noise_eps']:g}, {summary.get('n_clustered_distractors')} "
              f"of {summary.get('n_distractors')} distractors clustered", file=sys.stderr)
    print(f"{run_.path}: out-of-fold mAP {summary['mAP']:.4f} (fold val mAP {folds}) "
          f"in {summary.get('seconds', float('nan')):.1f} s")
    return 0
