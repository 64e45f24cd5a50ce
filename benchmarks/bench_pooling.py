"""Pooling speed: vectorised ``pool_videos`` vs the original per-video loop vs one pass.

Three ways to pool a random ragged dataset (float16 512-d frames, ~30 per video):

* ``vectorised``  — ``core.features.pooling.pool_videos`` on the contiguous FrameSet;
* ``python loop`` — the original code's way over the pickle layout
  (``name -> [[frame_str, bbox, det, quality, feat], ...]``): per video build the
  frame matrix and weights with ``np.array`` and average;
* ``one pass``    — ``feats.sum(0)`` over the frame array (NumPy casts float16 on
  the way, which is what makes it slow);
* ``raw read``    — summing the raw uint16 bits: the memory-bandwidth floor.

Prints the median of several runs of each and the ratios. Not a test: never fails
on timing. Run it niced on a shared machine::

    nice -n 10 python benchmarks/bench_pooling.py            # demo size and 50k videos
    nice -n 10 python benchmarks/bench_pooling.py --quick    # demo size only
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from core.io.frames import FrameSet
from core.features.pooling import pool_videos


def random_frameset(n_videos: int, *, mean_frames: float = 30.0, dim: int = 512,
                    seed: int = 0) -> FrameSet:
    """Ragged lognormal lengths (long tail, ~1 % empty), float16 features."""
    rng = np.random.default_rng(seed)
    lengths = np.minimum(rng.lognormal(np.log(mean_frames) - 0.45, 0.95, n_videos), 600)
    lengths = np.round(lengths).astype(np.int64)
    lengths[rng.random(n_videos) < 0.01] = 0
    offsets = np.concatenate(([0], np.cumsum(lengths)))
    n = int(offsets[-1])
    feats = np.empty((n, dim), np.float16)
    for a in range(0, n, 100_000):  # draw in pieces: no float64 copy of everything
        b = min(n, a + 100_000)
        feats[a:b] = rng.standard_normal((b - a, dim), dtype=np.float32)
    return FrameSet(
        names=np.array([f"IQIYI_VID_BENCH_{i:07d}" for i in range(n_videos)], dtype=object),
        offsets=offsets, feats=feats,
        quality=rng.uniform(-30, 200, n).astype(np.float32),
        det=rng.uniform(0.8, 1.0, n).astype(np.float32),
        frame_no=np.arange(n, dtype=np.int32), bbox=np.zeros((n, 4), np.float32),
    )


def pickle_layout(fs: FrameSet) -> dict[str, list]:
    """The real file's in-memory layout; feature rows are views (no data copy)."""
    q, det = fs.quality.tolist(), fs.det.tolist()
    out = {}
    for i, name in enumerate(fs.names):
        a, b = int(fs.offsets[i]), int(fs.offsets[i + 1])
        out[name] = [[str(k), [0.0, 0.0, 1.0, 1.0], det[k], q[k], fs.feats[k]] for k in range(a, b)]
    return out


def loop_pool(videos: dict[str, list]) -> dict[str, np.ndarray]:
    """The original per-video loop (quality weights, L2 norm)."""
    out = {}
    for name, frames in videos.items():
        if not frames:
            continue
        feats = np.array([f[4] for f in frames], dtype=np.float32)
        w = np.maximum(np.array([f[3] for f in frames], dtype=np.float32), 0)
        if w.sum() <= 0:
            w = np.ones(len(frames), np.float32)
        m = (feats * w[:, None]).sum(0) / w.sum()
        out[name] = m / np.linalg.norm(m)
    return out


def median_time(fn, runs: int) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def bench(n_videos: int, runs: int, loop_runs: int) -> None:
    fs = random_frameset(n_videos)
    print(f"\n{n_videos} videos, {fs.n_frames} frames ({fs.n_frames / n_videos:.1f}/video), "
          f"float16 x {fs.dim} = {fs.feats.nbytes / 2**20:.0f} MiB")
    pv = pool_videos(fs)  # warm-up + correctness check against the loop
    videos = pickle_layout(fs)
    ref = loop_pool(videos)
    err = np.abs(pv.X - np.array([ref[n] for n in pv.names])).max()
    print(f"  max |vectorised - loop| = {err:.2e}")
    t_vec = median_time(lambda: pool_videos(fs), runs)
    t_loop = median_time(lambda: loop_pool(videos), loop_runs)
    t_pass = median_time(lambda: fs.feats.sum(axis=0, dtype=np.float32), runs)
    t_read = median_time(lambda: fs.feats.view(np.uint16).sum(axis=0, dtype=np.uint32), runs)
    print(f"  vectorised pool_videos : {t_vec * 1e3:8.1f} ms (median of {runs})")
    print(f"  per-video python loop  : {t_loop * 1e3:8.1f} ms (median of {loop_runs})")
    print(f"  one pass feats.sum(0)  : {t_pass * 1e3:8.1f} ms (median of {runs})")
    print(f"  raw read (uint16 sum)  : {t_read * 1e3:8.1f} ms (median of {runs})")
    print(f"  loop / vectorised = {t_loop / t_vec:5.1f}x   "
          f"vectorised / one pass = {t_vec / t_pass:4.2f}x   "
          f"vectorised / raw read = {t_vec / t_read:4.2f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="demo size only")
    ap.add_argument("--large", type=int, default=50_000, help="videos of the large case")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--loop-runs", type=int, default=3)
    args = ap.parse_args()
    bench(10_000, args.runs, args.loop_runs)
    if not args.quick:
        bench(args.large, args.runs, args.loop_runs)


if __name__ == "__main__":
    main()
