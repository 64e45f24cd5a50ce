"""What saving the mid-fold state after every epoch costs, on the ``tiny`` demo preset.

Trains the same run twice in this process, once as shipped (``fold_K.partial.pt``
written after every epoch but a fold's last) and once with :meth:`core.runs.Run.save_partial`
replaced by a no-op, and prints the time of each save (torch.save + fsync + rename and
the status update), the training time per epoch and their ratio. Not a test: never fails
on numbers. Run it niced on a shared machine::

    nice -n 10 python benchmarks/bench_resume_state.py                    # tiny, noise, 5 epochs
    nice -n 10 python benchmarks/bench_resume_state.py --method nn --epochs 8
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--method", default="noise")
    ap.add_argument("--folds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from core.features.dataset import concat, open_split
    from core.learn import TrainConfig, fit
    from core.runs import Run
    from core.synth import generate

    root = Path(tempfile.mkdtemp(prefix="bench_resume_"))
    generate(root / "data", preset=args.preset, seed=0)
    d = root / "data"
    data = concat([open_split(d / "face_train.pickle", d / "train_gt.txt", split="train"),
                   open_split(d / "face_val.pickle", d / "val_gt.txt", split="val")])
    cfg = TrainConfig(method=args.method, folds=args.folds, epochs=args.epochs, seed=1)

    saves: list[float] = []
    sizes: list[int] = []
    shipped = Run.save_partial

    def timed(self, k, state):
        t = time.perf_counter()
        shipped(self, k, state)
        saves.append(time.perf_counter() - t)
        sizes.append((self.path / f"fold_{k}.partial.pt").stat().st_size)

    def fit_once(name: str) -> tuple[float, float]:
        run = Run.create(root / name, cfg.to_dict())
        t = time.perf_counter()
        fit(cfg, data, run)
        wall = time.perf_counter() - t
        m = run.metrics()
        return wall, float(m["time"].mean()) if len(m) else float("nan")

    Run.save_partial = lambda self, k, state: None  # the reference: no mid-fold state
    fit_once("warmup")
    wall_off, epoch_off = fit_once("off")
    Run.save_partial = timed
    try:
        wall_on, epoch_on = fit_once("on")
    finally:
        Run.save_partial = shipped
    n_epochs = len(Run.open(root / "on").metrics())
    mean_save = sum(saves) / max(len(saves), 1)
    print(f"{args.preset}/{args.method}: {args.folds} folds x {args.epochs} epochs + refits, "
          f"{n_epochs} epochs in all, {len(saves)} mid-fold saves of {max(sizes or [0]) / 1e6:.2f} MB")
    print(f"one save: mean {1e3 * mean_save:.1f} ms, max {1e3 * max(saves or [0]):.1f} ms; "
          f"one epoch trains in {1e3 * epoch_off:.1f} ms (without saves)")
    print(f"overhead per epoch {1e3 * sum(saves) / n_epochs:.1f} ms = "
          f"{sum(saves) / n_epochs / epoch_off:.2f}x an epoch's training; "
          f"whole run {wall_on:.2f} s with vs {wall_off:.2f} s without ({wall_on / wall_off:.3f}x)")


if __name__ == "__main__":
    main()
