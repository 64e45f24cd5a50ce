"""Re-unpickling a feature file vs reopening its columnar cache.

Builds feature pickles with random float16 features (ragged video lengths, mean
``--frames`` per video), then times, on each:

* ``unpickle``   safe unpickling (``load_pickle_safe``) + validation/conversion
                 (``frameset_from_videos``), what a cache miss costs;
* ``plain``      ``pickle.load(encoding='bytes')`` alone, the unsafe floor, for reference
                 (with the cyclic GC on, and off as ``load_pickle_safe`` runs it);
* ``reopen``     ``read_features`` on a warm cache (stat + key check + memory map);
* ``reopen+read`` the same and then touching every feature (a copy of ``feats``), since a
                 memory map defers the disk reads to first use;
* ``npz(no mmap)`` ``load_frameset(mmap=False)``: reading every column eagerly.

Medians of ``--repeats`` runs; ratios are against ``unpickle`` measured in the same run.

    nice -n 10 python benchmarks/bench_cache.py            # 10k x 30 and 50k x 6
    nice -n 10 python benchmarks/bench_cache.py --quick    # small, for a smoke run
"""

from __future__ import annotations

import argparse
import gc
import os
import pickle
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.io.formats import read_features, write_features  # noqa: E402
from core.io.safe_pickle import load_pickle_safe  # noqa: E402
from core.io.frames import frameset_from_videos, load_frameset  # noqa: E402


def make_videos(n_videos: int, mean_frames: float, dim: int, seed: int) -> dict[str, list]:
    """Random videos in the real layout; lengths geometric (long tail), some empty."""
    rng = np.random.default_rng(seed)
    lengths = rng.geometric(1.0 / (mean_frames + 1), size=n_videos) - 1
    feats = rng.standard_normal((int(lengths.sum()), dim), dtype=np.float32).astype(np.float16)
    quality = rng.uniform(-30, 200, len(feats))
    det = rng.uniform(0.9, 1.0, len(feats))
    videos, k = {}, 0
    for i, n in enumerate(lengths.tolist()):
        videos[f"IQIYI_VID_BENCH_{i:07d}"] = [
            [str(j + 1), [10.0, 20.0, 110.0, 140.0], float(det[k + j]), float(quality[k + j]),
             feats[k + j]] for j in range(n)]
        k += n
    return videos


def timed(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        out = None
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def bench(name: str, n_videos: int, mean_frames: float, dim: int, repeats: int,
          workdir: Path) -> None:
    videos = make_videos(n_videos, mean_frames, dim, seed=0)
    path = workdir / f"{name}.pickle"
    t0 = time.perf_counter()
    write_features(path, videos)
    t_write = time.perf_counter() - t0
    n_frames = sum(len(v) for v in videos.values())
    del videos
    cache = workdir / f"cache_{name}"
    read_features(path, cache_dir=cache)  # build the cache once
    entry = next(cache.glob("*.npz"))
    print(f"\n== {name}: {n_videos} videos, {n_frames} frames, dim {dim}; pickle "
          f"{path.stat().st_size / 1e6:.0f} MB (written in {t_write:.1f} s), cache "
          f"{entry.stat().st_size / 1e6:.0f} MB")

    def unpickle():
        return frameset_from_videos(load_pickle_safe(path), source=str(path))

    def plain():
        with open(path, "rb") as fh:
            return pickle.load(fh, encoding="bytes")

    def plain_nogc():  # load_pickle_safe turns the cyclic GC off while it runs; so here
        gc.disable()
        try:
            return plain()
        finally:
            gc.enable()

    t_safe_load, _ = timed(lambda: load_pickle_safe(path), repeats)
    t_unpickle, fs_ref = timed(unpickle, repeats)
    t_plain, _ = timed(plain, repeats)
    t_plain_nogc, _ = timed(plain_nogc, repeats)
    t_reopen, fs = timed(lambda: read_features(path, cache_dir=cache), 3 * repeats)
    t_touch, _ = timed(lambda: np.array(read_features(path, cache_dir=cache).feats),
                       3 * repeats)
    t_eager, _ = timed(lambda: load_frameset(entry, mmap=False), 3 * repeats)
    assert np.array_equal(fs.feats, fs_ref.feats) and fs.names.tolist() == fs_ref.names.tolist()
    rows = [("unpickle (safe load + convert)", t_unpickle),
            ("  of which safe load", t_safe_load),
            ("plain pickle.load (unsafe)", t_plain),
            ("plain pickle.load, GC off", t_plain_nogc),
            ("reopen cache (mmap)", t_reopen),
            ("reopen cache + read all feats", t_touch),
            ("npz without mmap", t_eager)]
    for label, t in rows:
        print(f"  {label:32s} {t * 1e3:10.1f} ms   unpickle/this = {t_unpickle / t:9.1f}x")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--quick", action="store_true", help="small datasets (smoke run)")
    args = parser.parse_args(argv)
    sets = ([("small", 1000, 10), ("many_small", 5000, 3)] if args.quick else
            [("10k_x_30", 10_000, 30), ("50k_x_6", 50_000, 6)])
    with tempfile.TemporaryDirectory(prefix="vidid_bench_") as tmp:
        for name, n_videos, frames in sets:
            bench(name, n_videos, frames, args.dim, args.repeats, Path(tmp))
    print(f"\n(python {sys.version.split()[0]}, numpy {np.__version__}, pid {os.getpid()})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
