"""Peak memory of loading, re-opening, pooling and clustering, one fresh process per step.

Each step runs in its own ``python`` subprocess (so earlier steps' allocations do not
hide later ones); the parent reads the child's peak resident set size from
``os.wait4`` (``ru_maxrss``), and the child reports its resident set size after its
imports (``baseline``) so the table can show what the step itself added (``growth``).

Steps, per feature file of the dataset:

* ``load``    — ``read_features(path, cache=False)``: safe unpickler + conversion to a
  ``FrameSet`` (the first read of a file);
* ``load+cache`` — the same, writing the columnar ``.npz`` cache (fresh cache dir);
* ``reopen``  — ``read_features(path)`` answered from that cache (memory-mapped);
* ``pool``    — reopen from the cache + ``pool_videos`` (quality weighting);

once for all splits together:

* ``dataset`` — ``open_split`` of every split (from the caches) + ``concat``: what
  ``vidid train`` and the dashboard's ``load_dataset`` hold (pooled vectors and frames);

and once for the distractors of all labelled splits (what the dashboard clusters):

* ``cluster`` — ``NeighborGraph.build(X, max_eps)`` + one ``dbscan(eps, min_samples)``
  on the pooled distractor vectors (loaded from a ``.npy`` written beforehand).

Prints a table (median over ``--repeat`` runs): step, input size, peak RSS, growth over
the baseline, RSS per video; then the fitted load factor (growth per pickle byte) and
the graph's bytes per stored pair, which ``core/resources.py`` uses. ``reopen`` and
``pool`` peaks include the memory-mapped cache pages they touched (file-backed, so the
kernel can drop them under pressure); the child also reports its anonymous RSS at the
end (``anon_end``).

Not a test. Run it niced on a shared machine::

    nice -n 10 python benchmarks/bench_memory.py                     # generates the demo preset
    nice -n 10 python benchmarks/bench_memory.py --data /tmp/d --repeat 1
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MB = 2**20
SPLITS = ("train", "val", "test")


# --------------------------------------------------------------------------- child side
def _status_kb(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _child(step: str, args: dict) -> dict:
    import numpy as np
    import scipy.sparse.csgraph  # noqa: F401 - used by dbscan; import before the baseline

    from core.cluster import NeighborGraph
    from core.features.dataset import open_split
    from core.io.formats import read_features
    from core.features.pooling import pool_videos

    out: dict = {}
    baseline = _status_kb("VmRSS")
    t0 = time.perf_counter()
    if step == "load":
        fs = read_features(args["path"], cache=False)
        out.update(videos=fs.n_videos, frames=fs.n_frames)
    elif step == "load+cache" or step == "reopen":
        fs = read_features(args["path"], cache_dir=args["cache"])
        out.update(videos=fs.n_videos, frames=fs.n_frames)
    elif step == "pool":
        fs = read_features(args["path"], cache_dir=args["cache"])
        pv = pool_videos(fs)
        out.update(videos=fs.n_videos, frames=fs.n_frames, pooled=len(pv))
    elif step == "dataset":  # what training and the dashboard hold: every split, concatenated
        from core.features.dataset import concat

        os.environ["VIDID_CACHE"] = args["cache"]
        parts = [open_split(feats, gt) for feats, gt in args["pairs"]]
        lv = concat(parts) if len(parts) > 1 else parts[0]
        out.update(videos=len(lv.names), frames=lv.frames.n_frames)
    elif step == "distractors":  # setup for "cluster": pooled distractors of all splits
        import numpy as np

        blocks = []
        for feats, gt in args["pairs"]:
            os.environ["VIDID_CACHE"] = args["cache"]
            lv = open_split(feats, gt)
            blocks.append(np.asarray(lv.X)[lv.distractor_mask])
        X = np.concatenate(blocks)
        np.save(args["out"], X)
        out.update(videos=int(X.shape[0]))
        # share of pairs within each radius, from a sample of rows against all rows
        rng = np.random.default_rng(0)
        rows = rng.choice(X.shape[0], size=min(X.shape[0], 2000), replace=False)
        d2 = np.maximum(2.0 - 2.0 * (X[rows] @ X.T), 0.0)
        d2[np.arange(len(rows)), rows] = np.inf  # not the point itself
        out["pair_share"] = {str(r): float((d2 <= r * r).sum() / (len(rows) * (X.shape[0] - 1)))
                             for r in args["radii"]}
    elif step == "cluster":
        import numpy as np

        X = np.load(args["x"])
        baseline = _status_kb("VmRSS")  # the vectors themselves are input, not work
        t0 = time.perf_counter()
        graph = NeighborGraph.build(X, max_eps=args["max_eps"], method=args["method"])
        labels = graph.dbscan(args["eps"], args["min_samples"])
        out.update(videos=int(X.shape[0]), edges=graph.n_edges, method=graph.method,
                   clusters=int(labels.max() + 1), unclustered=int((labels < 0).sum()))
    else:
        raise SystemExit(f"unknown step {step!r}")
    out.update(seconds=time.perf_counter() - t0, baseline_kb=baseline,
               hwm_kb=_status_kb("VmHWM"), anon_end_kb=_status_kb("RssAnon"))
    return out


# --------------------------------------------------------------------------- parent side
def run_step(step: str, args: dict) -> dict:
    """Run ``step`` in a fresh interpreter; return its report plus ``peak_kb`` (wait4)."""
    cmd = [sys.executable, os.path.abspath(__file__), "--child", step, json.dumps(args)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            cwd=str(Path(__file__).resolve().parents[1]))
    stdout = proc.stdout.read()
    stderr = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"step {step} failed ({proc.returncode}): {stderr.decode()[-2000:]}")
    report = json.loads(stdout.decode().strip().splitlines()[-1])
    report["peak_kb"] = int(usage.ru_maxrss)  # Linux: kilobytes
    return report


def measure(step: str, args: dict, repeat: int) -> dict:
    runs = [run_step(step, args) for _ in range(repeat)]
    med = dict(runs[0])
    for key in ("peak_kb", "baseline_kb", "seconds", "anon_end_kb", "hwm_kb"):
        med[key] = statistics.median(r[key] for r in runs)
    med["repeat"] = repeat
    return med


def _fit(points: list[tuple[float, float]]) -> tuple[float, float]:
    """Least-squares slope and intercept of growth (bytes) over input (bytes)."""
    if len(points) < 2:
        x, y = points[0]
        return y / x, 0.0
    n = len(points)
    mx = sum(p[0] for p in points) / n
    my = sum(p[1] for p in points) / n
    sxx = sum((p[0] - mx) ** 2 for p in points)
    sxy = sum((p[0] - mx) * (p[1] - my) for p in points)
    slope = sxy / sxx if sxx else my / mx
    return slope, my - slope * mx


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=None, help="a vidid demo folder (default: generate one)")
    ap.add_argument("--preset", default="demo", help="preset to generate when --data is absent")
    ap.add_argument("--repeat", type=int, default=3, help="runs per step (median reported)")
    ap.add_argument("--splits", default=",".join(SPLITS), help="feature files to measure")
    ap.add_argument("--steps", default="load,load+cache,reopen,pool,dataset,cluster")
    ap.add_argument("--max-eps", type=float, default=1.2, help="radius of the neighbour graph")
    ap.add_argument("--eps", type=float, default=1.2)
    ap.add_argument("--min-samples", type=int, default=2)
    ap.add_argument("--radii", type=lambda t: [float(x) for x in t.split(",")],
                    default=[1.0, 1.3, 1.5],
                    help="also report the sampled share of distractor pairs within these radii "
                         "(1.5 is the dashboard's graph radius) and the estimate it implies")
    ap.add_argument("--method", default="auto", choices=("auto", "exact", "approx"))
    ap.add_argument("--fraction", type=float, default=0.6,
                    help="skip a load step whose estimate exceeds this share of free memory")
    ap.add_argument("--json", default=None, help="also write the rows to this JSON file")
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(_child(a.child[0], json.loads(a.child[1]))))
        return

    from core.errors import DataError
    from core.resources import (
        available_memory_bytes,
        check_fits,
        estimate_cluster_bytes,
        estimate_load_bytes,
    )

    tmp = Path(tempfile.mkdtemp(prefix="vidid_bench_mem_"))
    try:
        if a.data is None:
            from core.synth import generate

            data = tmp / "data"
            t0 = time.perf_counter()
            generate(data, preset=a.preset, seed=0)
            print(f"generated preset {a.preset} in {time.perf_counter() - t0:.0f} s", flush=True)
        else:
            data = Path(a.data)
        steps = a.steps.split(",")
        splits = [s for s in a.splits.split(",") if (data / f"face_{s}.pickle").exists()]
        print(f"data {data}; available memory {available_memory_bytes() / MB:,.0f} MiB; "
              f"median of {a.repeat} run(s) per step", flush=True)
        rows: list[dict] = []

        def add(step: str, what: str, size: int, rep: dict) -> None:
            row = dict(rep, step=step, input=what, size=size)
            rows.append(row)
            vid = rep.get("videos") or 0
            per = f"{row['peak_kb'] * 1024 / vid / 1024:8.1f}" if vid else "       -"
            print(f"{step:<11} {what:<34} {size / MB:9.1f} {rep['peak_kb'] / 1024:9.0f} "
                  f"{(rep['peak_kb'] - rep['baseline_kb']) / 1024:9.0f} {per} "
                  f"{rep['anon_end_kb'] / 1024:9.0f} {rep['seconds']:7.1f}", flush=True)

        print(f"{'step':<11} {'input':<34} {'size MiB':>9} {'peak MiB':>9} {'growth':>9} "
              f"{'KiB/vid':>8} {'anon_end':>9} {'seconds':>7}")
        for s in splits:
            path = str(data / f"face_{s}.pickle")
            size = os.path.getsize(path)
            cache = str(tmp / f"cache_{s}")
            try:
                check_fits(estimate_load_bytes(size), f"reading {path}", fraction=a.fraction)
            except DataError as exc:
                print(f"skipped {path}: {exc}", flush=True)
                continue
            for step in ("load", "load+cache", "reopen", "pool"):
                if step not in steps and not (step == "load+cache" and
                                              {"reopen", "pool", "dataset", "cluster"} & set(steps)):
                    continue
                rep_n = a.repeat if step != "load+cache" else 1  # writes the cache once
                if step == "load+cache":
                    shutil.rmtree(cache, ignore_errors=True)
                add(step, f"face_{s}.pickle", size, measure(step, {"path": path, "cache": cache},
                                                            rep_n))
        shared_cache = str(tmp / "cache_all")
        for s in splits:  # reuse the per-split caches: later steps pool from them
            src = tmp / f"cache_{s}"
            if src.exists():
                shutil.copytree(src, shared_cache, dirs_exist_ok=True)
                shutil.rmtree(src)  # one copy on disk is enough
        if "dataset" in steps:
            pairs = [(str(data / f"face_{s}.pickle"), str(data / f"{s}_gt.txt")) for s in splits]
            rep = measure("dataset", {"pairs": pairs, "cache": shared_cache}, a.repeat)
            add("dataset", f"open_split x{len(pairs)} + concat", sum(
                os.path.getsize(p) for p, _ in pairs), rep)
        if "cluster" in steps:
            pairs = [(str(data / f"face_{s}.pickle"), str(data / f"{s}_gt.txt"))
                     for s in splits if s != "train"]
            xfile = str(tmp / "distractors.npy")
            radii = sorted({a.max_eps, *a.radii})
            rep = run_step("distractors", {"pairs": pairs, "cache": shared_cache, "out": xfile,
                                           "radii": radii})
            n = rep["videos"]
            print(f"{n} distractor videos of {', '.join(s for s in splits if s != 'train')}",
                  flush=True)
            for r in radii:
                share = rep["pair_share"][str(r)]
                pairs_r = share * n * (n - 1) / 2
                print(f"  radius {r:g}: {share:.4f} of all pairs (sampled) -> ~{pairs_r:,.0f} "
                      f"pairs -> estimate_cluster_bytes {estimate_cluster_bytes(n, int(pairs_r)) / MB:,.0f} MiB",
                      flush=True)
            rep = measure("cluster", {"x": xfile, "max_eps": a.max_eps, "eps": a.eps,
                                      "min_samples": a.min_samples, "method": a.method},
                          a.repeat)
            add("cluster", f"{n} distractors, max_eps {a.max_eps:g}", n * 512 * 4, rep)
            print(f"graph: {rep['edges']:,} pairs ({rep['method']}), "
                  f"{rep['clusters']} clusters, {rep['unclustered']} unclustered at "
                  f"eps={a.eps:g} min_samples={a.min_samples}; estimate_cluster_bytes "
                  f"{estimate_cluster_bytes(n, rep['edges']) / MB:,.0f} MiB vs growth "
                  f"{(rep['peak_kb'] - rep['baseline_kb']) / 1024:,.0f} MiB", flush=True)

        # the load factor: from "load" rows, else from "load+cache" (same peak, see demo)
        loads = [(r["size"], (r["peak_kb"] - r["baseline_kb"]) * 1024.0)
                 for r in rows if r["step"] == "load"] or \
            [(r["size"], (r["peak_kb"] - r["baseline_kb"]) * 1024.0)
             for r in rows if r["step"] == "load+cache"]
        if loads:
            slope, icpt = _fit(loads)
            print(f"load: growth = {slope:.3f} x pickle bytes + {icpt / MB:.0f} MiB "
                  f"(fit over {len(loads)} file(s)); per file growth/size: "
                  + ", ".join(f"{g / s:.2f}" for s, g in loads))
            for s, g in loads:
                print(f"  {s / MB:9.1f} MiB pickle: measured growth {g / MB:9.0f} MiB, "
                      f"estimate_load_bytes {estimate_load_bytes(s) / MB:9.0f} MiB")
        if a.json:
            Path(a.json).write_text(json.dumps(rows, indent=1))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
