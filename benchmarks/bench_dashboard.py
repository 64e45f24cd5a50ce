"""Dashboard speed in a real browser (headless Debian chromium via Playwright).

Measures, on the ``demo`` preset (or ``--preset``):

* **first load of each page**: from navigation to the end of the page's script run, in
  a fresh server with the on-disk caches emptied (cold: the first visit pays for reading
  the pickles, pooling, the neighbour graph, UMAP) and again in a new browser session
  (warm: server caches shared by all sessions);
* **eps slider -> updated chart**: on the Noise clusters page, the time from the
  keydown on the eps slider thumb to the last DOM change of the page's Plotly charts
  (so the whole redraw is counted; changes inside a chart already removed from the page
  are not), median of several moves. Target: < 300 ms.
* **min_samples slider -> updated chart**: the same for the min_samples slider (every
  chart's data changes with it, so all three charts are redrawn).

Run it with ``nice -n 10 python benchmarks/bench_dashboard.py``. It never fails on
timing; it prints the numbers. The demo data and a KNN run are prepared once in
``--cache`` (kept between runs).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from test_browser import (PAGES, VIEWPORT, eps_thumb, launch_chromium, metric_value,  # noqa: E402
                          open_page, prepare_data, streamlit_server, wait_for_run, wait_idle)

_OBSERVE = """() => {
    window.__chartMut = [];
    window.__metricMut = [];
    window.__keydown = null;
    document.addEventListener('keydown', () => { window.__keydown = performance.now(); }, true);
    const obs = new MutationObserver(muts => {
        const now = performance.now();
        for (const m of muts) {
            const t = m.target.nodeType === 1 ? m.target : m.target.parentElement;
            if (!t || !t.closest) continue;
            // A plot React already removed from the page (Plotly emptying a detached
            // div afterwards) is no visible change: count only nodes still on the page.
            if (!t.isConnected) continue;
            if (t.closest('[data-testid="stPlotlyChart"]')) window.__chartMut.push(now);
            if (t.closest('[data-testid="stMetric"]')) window.__metricMut.push(now);
        }
    });
    obs.observe(document.body, {subtree: true, childList: true, attributes: true, characterData: true});
    window.__states = [];
    const app = document.querySelector('[data-testid="stApp"]');
    new MutationObserver(() => window.__states.push(
        [performance.now(), app.getAttribute('data-test-script-state')]
    )).observe(app, {attributes: true, attributeFilter: ['data-test-script-state']});
}"""


def _slider_latency(page, key: str, quiet_ms: float = 600.0,
                    timeout_s: float = 15.0) -> tuple[float, float | None] | None:
    """ms from the keydown to the last chart mutation of the rerun it caused, and to the
    first change of the metrics row (the numbers), or None on timeout."""
    page.evaluate("() => { window.__chartMut = []; window.__metricMut = []; window.__states = [];"
                  " window.__keydown = null; }")
    page.keyboard.press(key)
    t0 = time.monotonic()
    while True:
        state = page.evaluate("""() => {
            const app = document.querySelector('[data-testid="stApp"]');
            const m = window.__chartMut;
            const mm = window.__metricMut;
            return {run: app.getAttribute('data-test-script-state'), n: m.length,
                    last: m.length ? m[m.length - 1] : null, kd: window.__keydown,
                    metric: mm.length ? mm[0] : null, states: window.__states,
                    now: performance.now()};
        }""")
        if (state["n"] and state["run"] == "notRunning" and state["now"] - state["last"] > quiet_ms):
            metric = None if state["metric"] is None else state["metric"] - state["kd"]
            run_start = next((t for t, v in state["states"] if v == "running"), None)
            run_end = next((t for t, v in state["states"] if v == "notRunning" and run_start
                            and t >= run_start), None)
            server = None if run_start is None or run_end is None else run_end - run_start
            start = None if run_start is None else run_start - state["kd"]
            return state["last"] - state["kd"], metric, start, server
        if time.monotonic() - t0 > timeout_s:
            return None
        time.sleep(0.05)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="demo", help="demo preset (default: demo)")
    parser.add_argument("--cache", default="/tmp/vidid_bench_dashboard",
                        help="folder for the demo data and the run store (kept between runs)")
    parser.add_argument("--moves", type=int, default=9, help="eps slider moves to time")
    parser.add_argument("--ms-moves", type=int, default=5,
                        help="min_samples slider moves to time (0: none)")
    parser.add_argument("--keep-caches", action="store_true",
                        help="keep the on-disk caches (feature cache, UMAP) of earlier runs; by "
                             "default they are removed so the cold load pays for everything")
    parser.add_argument("--app", default=None,
                        help="streamlit_app.py to run (default: this checkout's dashboard)")
    args = parser.parse_args(argv)

    from playwright.sync_api import sync_playwright

    cache = Path(args.cache) / args.preset
    runs = cache / "runs"
    cache.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    if not (cache / f"demo-{args.preset}-seed0").exists() or not runs.is_dir():
        print(f"preparing the {args.preset} demo and a KNN run in {cache} ...", flush=True)
        wait_for_run(prepare_data(cache, runs, args.preset))
        print(f"  prepared in {time.perf_counter() - t:.1f} s", flush=True)
    if not args.keep_caches:  # everything but the demo files and the run store
        keep = {f"demo-{args.preset}-seed0", runs.name}
        for entry in cache.iterdir():
            if entry.name not in keep:
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    env = {"VIDID_DEMO_PRESET": args.preset, "VIDID_CACHE": str(cache), "VIDID_RUNS": str(runs)}

    with streamlit_server(env, timeout=120, app=args.app) as base, sync_playwright() as p:
        browser = launch_chromium(p)
        loads: dict[str, list[float]] = {}
        for round_ in ("cold", "warm"):
            page = browser.new_page(viewport=VIEWPORT)  # a new session each round
            for path, title in PAGES:
                loads.setdefault(title, []).append(open_page(page, base, path, title, 300_000))
            page.close()

        page = browser.new_page(viewport=VIEWPORT)
        open_page(page, base, "noise_clusters", "Noise clusters", 300_000)
        page.evaluate(_OBSERVE)
        eps_thumb(page).focus()
        latencies, counts = [], []
        for i in range(args.moves):
            key = "ArrowRight" if i % 2 == 0 else "ArrowLeft"
            ms = _slider_latency(page, key)
            wait_idle(page)
            latencies.append(ms)
            counts.append(metric_value(page, "N clusters"))
        ms_latencies = []
        if args.ms_moves:
            slider = page.locator('[data-testid="stSlider"]').filter(has_text="min_samples").first
            slider.locator('input[type="range"], [role="slider"]').first.focus()
            for i in range(args.ms_moves):
                ms_latencies.append(_slider_latency(page, "ArrowRight" if i % 2 == 0
                                                    else "ArrowLeft"))
                wait_idle(page)
        page.close()
        browser.close()

    print(f"\nvidid dashboard, preset {args.preset!r}, headless chromium {VIEWPORT['width']}x{VIEWPORT['height']}")
    print(f"{'page':<16}{'first load, cold (s)':>22}{'first load, warm (s)':>22}")
    for title, (cold, warm) in loads.items():
        print(f"{title:<16}{cold:>22.2f}{warm:>22.2f}")
    ok = [v[0] for v in latencies if v is not None]
    print(f"\neps slider -> updated chart (ms), {len(ok)}/{len(latencies)} moves measured:")
    print("  " + ", ".join("timeout" if v is None else f"{v[0]:.0f}" for v in latencies))
    if ok:
        med = statistics.median(ok)
        print(f"  median {med:.0f} ms, min {min(ok):.0f}, max {max(ok):.0f} "
              f"(target < 300 ms: {'met' if med < 300 else 'NOT met'})")
    for i, what in ((1, "keydown -> metrics row updated"),
                    (2, "keydown -> script run starts (client debounce + send)"),
                    (3, "script run (fragment) start -> end, as the browser sees it")):
        vals = [v[i] for v in latencies if v is not None and v[i] is not None]
        if vals:
            print(f"  {what}: median {statistics.median(vals):.0f} ms")
    ms_ok = [v[0] for v in ms_latencies if v is not None]
    if ms_latencies:
        print(f"\nmin_samples slider -> updated chart (ms), {len(ms_ok)}/{len(ms_latencies)} "
              f"moves measured:")
        print("  " + ", ".join("timeout" if v is None else f"{v[0]:.0f}" for v in ms_latencies))
        if ms_ok:
            print(f"  median {statistics.median(ms_ok):.0f} ms, min {min(ms_ok):.0f}, "
                  f"max {max(ms_ok):.0f}")
    load = os.getloadavg()
    print(f"machine: {os.cpu_count()} cores, load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}")
    print(f"  cluster counts seen: {', '.join(counts)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
