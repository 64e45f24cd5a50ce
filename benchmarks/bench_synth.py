"""Benchmark the synthetic dataset: generation time per preset and the streaming writer.

Run: ``nice -n 10 python benchmarks/bench_synth.py [--presets tiny demo] [--repeat 3]``

Prints medians; the streaming writer is compared with a plain ``pickle.dump`` of the
same dict measured in the same run (the reference). Never fails on timing.
"""

from __future__ import annotations

import argparse
import os
import pickle
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from core.io.pickle_stream import write_features_stream
from core.synth import generate


def _median_seconds(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench_writer(tmp: Path, repeat: int, n_videos: int = 1000, n_frames: int = 30) -> None:
    rng = np.random.default_rng(0)
    feats = rng.standard_normal((n_videos * n_frames, 512)).astype(np.float16)
    videos = {f"V{i:07d}".encode(): [[str(j), [1.0, 2.0, 3.0, 4.0], 0.99, 80.0,
                                      feats[i * n_frames + j]] for j in range(n_frames)]
              for i in range(n_videos)}

    def plain() -> None:
        with open(tmp / "plain.pickle", "wb") as fh:
            pickle.dump(videos, fh, protocol=2)
            fh.flush()
            os.fsync(fh.fileno())

    def stream() -> None:
        write_features_stream(tmp / "stream.pickle", ((k.decode(), v) for k, v in videos.items()))

    ref = _median_seconds(plain, repeat)
    got = _median_seconds(stream, repeat)
    size = (tmp / "stream.pickle").stat().st_size
    print(f"writer: {n_videos} videos x {n_frames} frames ({size / 2**20:.0f} MiB): "
          f"pickle.dump {ref:.2f} s, write_features_stream {got:.2f} s "
          f"(ratio {got / ref:.2f}x)")


def bench_generate(tmp: Path, preset: str, repeat: int) -> None:
    out = tmp / preset
    summary: dict = {}

    def run() -> None:
        shutil.rmtree(out, ignore_errors=True)
        summary.update(generate(out, preset=preset, seed=0))

    seconds = _median_seconds(run, repeat)
    videos = sum(summary[s]["videos"] for s in ("train", "val", "test"))
    frames = sum(summary[s]["frames"] for s in ("train", "val", "test"))
    size = sum(p.stat().st_size for p in out.iterdir())
    print(f"generate {preset}: median {seconds:.2f} s over {repeat} runs, "
          f"{videos} videos, {frames} faces, {size / 2**20:.0f} MiB "
          f"({frames / seconds:,.0f} faces/s)")
    shutil.rmtree(out, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="*", default=["tiny", "demo"],
                        choices=["tiny", "demo", "large"])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_synth_") as tmp:
        bench_writer(Path(tmp), args.repeat)
        for preset in args.presets:
            bench_generate(Path(tmp), preset, 1 if preset == "large" else args.repeat)


if __name__ == "__main__":
    main()
