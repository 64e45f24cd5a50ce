"""The running app in a real headless browser (Playwright driving Debian's chromium).

Starts ``streamlit run dashboard/streamlit_app.py`` on a free port with the ``tiny``
demo and a KNN run in temporary folders, waits for ``/_stcore/health``, visits every
page, moves the eps slider with the keyboard and checks that the cluster count
changes, that no page shows an exception, and saves a screenshot per page (into
``$VIDID_SCREENSHOTS`` or the test's temporary folder).

Skipped when ``/usr/bin/chromium`` is missing, unless ``VIDID_REQUIRE_BROWSER=1`` (CI)
makes that a failure. The helpers here are shared with ``benchmarks/bench_dashboard.py``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
#: (url path, title shown by the page); "" is the default page (Data).
PAGES = [("", "Data"), ("noise_clusters", "Noise clusters"), ("map", "Map"),
         ("training", "Training"), ("results", "Results"), ("compare", "Compare runs"),
         ("errors", "Errors"), ("video_review", "Video review")]
VIEWPORT = {"width": 1400, "height": 900}

pytestmark = pytest.mark.browser


# ----------------------------------------------------------------------------- helpers

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def streamlit_server(env: dict[str, str], *, timeout: float = 60.0,
                     app: Path | None = None) -> Iterator[str]:
    """Run the app on a free port; yield its base URL once ``/_stcore/health`` answers.

    ``app`` (default: this checkout's ``dashboard/streamlit_app.py``) runs from the
    folder above its own, where ``.streamlit/config.toml`` lives.
    """
    port = free_port()
    app = Path(app) if app is not None else ROOT / "dashboard" / "streamlit_app.py"
    cmd = [sys.executable, "-m", "streamlit", "run", str(app),
           "--server.port", str(port), "--server.headless", "true",
           "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false",
           "--server.fileWatcherType", "none"]
    log = open(Path(env["VIDID_CACHE"]) / f"streamlit-{port}.log", "wb")
    # PYTHONFAULTHANDLER: on a failure the server gets SIGABRT and writes every thread's
    # stack into its log, which is printed below (a hung page then names the line it hangs on)
    proc = subprocess.Popen(cmd, cwd=app.parent.parent,
                            env={**os.environ, "PYTHONFAULTHANDLER": "1", **env}, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    failed = True
    try:
        t0 = time.monotonic()
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"streamlit exited with {proc.returncode}; see {log.name}")
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as r:
                    if r.status == 200 and r.read().strip() == b"ok":
                        break
            if time.monotonic() - t0 > timeout:
                raise RuntimeError(f"streamlit did not become healthy in {timeout:.0f} s")
            time.sleep(0.2)
        yield url
        failed = False
    finally:
        if failed and proc.poll() is None:
            os.kill(proc.pid, signal.SIGABRT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(10)
        if failed:
            log.flush()
            tail = Path(log.name).read_bytes()[-8000:].decode(errors="replace")
            print(f"--- the streamlit server's log (last 8000 bytes) ---\n{tail}")
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)  # children it forked, if any are left
        log.close()


def launch_chromium(playwright):
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)


def wait_idle(page, timeout_ms: float = 60_000) -> None:
    """Wait until the app's script run is over and no element is still loading."""
    page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]',
                           timeout=timeout_ms)
    with contextlib.suppress(Exception):  # spinners of cached calls, if any are left
        page.wait_for_selector('[data-testid="stSpinner"]', state="detached", timeout=timeout_ms)


def open_page(page, base: str, path: str, title: str, timeout_ms: float = 90_000) -> float:
    """Navigate to a page, wait for its title and the end of its run; return seconds taken."""
    t0 = time.perf_counter()
    page.goto(f"{base}/{path}", wait_until="domcontentloaded")
    page.get_by_role("heading", name=title, exact=True).first.wait_for(timeout=timeout_ms)
    wait_idle(page, timeout_ms)
    return time.perf_counter() - t0


def metric_value(page, label: str) -> str:
    metric = page.locator('[data-testid="stMetric"]').filter(
        has=page.locator('[data-testid="stMetricLabel"]', has_text=label)).first
    return metric.locator('[data-testid="stMetricValue"]').inner_text().strip()


def eps_thumb(page):
    """The keyboard-focusable thumb of the eps slider (a react-aria range input)."""
    slider = page.locator('[data-testid="stSlider"]').filter(has_text="eps").first
    return slider.locator('input[type="range"], [role="slider"]').first


def exceptions(page) -> list[str]:
    return page.locator('[data-testid="stException"]').all_inner_texts()


def prepare_data(cache: Path, runs: Path, preset: str, demo_source: Path | None = None) -> Path:
    """Put the demo folder inside ``cache`` (copied or generated) and start a KNN run on it.

    The run trains in its own process (``core.runs.launch``) while the caller goes on;
    returns the run directory (see :func:`wait_for_run`).
    """
    demo = cache / f"demo-{preset}-seed0"
    if not demo.exists():
        if demo_source is not None:
            shutil.copytree(demo_source, demo)
        else:  # generate beside the target and rename: a half-written demo is never used
            from core.synth import generate

            tmp = demo.with_name(demo.name + ".partial")
            shutil.rmtree(tmp, ignore_errors=True)
            generate(tmp, preset=preset, seed=0)
            tmp.rename(demo)
    from core.runs.launch import launch_training

    pairs = [(s, str(demo / f"face_{s}.pickle"), str(demo / f"{s}_gt.txt")) for s in ("train", "val")]
    return launch_training(pairs, {"method": "knn", "folds": 3, "views": False}, runs)


def wait_for_run(run_dir: Path, timeout: float = 300.0) -> None:
    """Block until the run has finished; fail unless it completed."""
    from core.runs import Run

    t0 = time.monotonic()
    while Run.open(run_dir).state == "running":
        if time.monotonic() - t0 > timeout:
            raise RuntimeError(f"run {run_dir} still running after {timeout:.0f} s")
        time.sleep(0.2)
    state = Run.open(run_dir).state
    if state != "complete":
        log = (run_dir / "train.log").read_text(errors="replace")[-1500:]
        raise RuntimeError(f"run {run_dir} ended {state}:\n{log}")


# ----------------------------------------------------------------------------- the test

@pytest.fixture(scope="module")
def browser():
    required = os.environ.get("VIDID_REQUIRE_BROWSER") == "1"
    if not Path(CHROMIUM).exists():
        if required:
            pytest.fail(f"{CHROMIUM} is missing but VIDID_REQUIRE_BROWSER=1")
        pytest.skip(f"{CHROMIUM} is missing")
    try:
        from playwright import sync_api
    except ImportError:
        if required:
            pytest.fail("the playwright package is missing but VIDID_REQUIRE_BROWSER=1")
        pytest.skip("the playwright package is missing")
    with sync_api.sync_playwright() as p:
        b = launch_chromium(p)
        yield b
        b.close()


def test_every_page_in_a_real_browser(browser, tiny_demo, tmp_path):
    shots = Path(os.environ.get("VIDID_SCREENSHOTS") or tmp_path / "screenshots")
    shots.mkdir(parents=True, exist_ok=True)
    cache, runs = tmp_path / "cache", tmp_path / "runs"
    cache.mkdir()
    run_dir = prepare_data(cache, runs, "tiny", tiny_demo)  # trains while pages are visited
    env = {"VIDID_DEMO_PRESET": "tiny", "VIDID_CACHE": str(cache), "VIDID_RUNS": str(runs)}
    with streamlit_server(env) as base:
        page = browser.new_page(viewport=VIEWPORT)
        for path, title in PAGES:
            if path == "errors":
                wait_for_run(run_dir)
            seconds = open_page(page, base, path, title)
            print(f"{title}: loaded in {seconds:.1f} s")
            assert not exceptions(page), (title, exceptions(page))
            if path == "noise_clusters":
                _move_eps_and_check(page)
            if path == "errors":
                # a run exists: the per-identity table and the ranked list are on screen
                assert page.get_by_text("Per-identity AP, worst first").count() == 1
                assert page.get_by_text("Ranked list").count() >= 1
                page.screenshot(path=str(shots / "errors_top.png"))
                # the identity under review: its ranked list and who takes its videos
                page.get_by_role("heading", name="Identity ").first.evaluate(
                    "e => e.scrollIntoView({block: 'start'})")
                page.wait_for_timeout(400)
            page.screenshot(path=str(shots / f"{path or 'data'}.png"))
        # a shared link opens the review page with the video preselected
        video = "IQIYI_VID_VAL_0000003"
        page.goto(f"{base}/video_review?video={video}", wait_until="domcontentloaded")
        page.get_by_role("heading", name="Video review", exact=True).wait_for(timeout=60_000)
        wait_idle(page)
        assert not exceptions(page)
        chosen = page.locator('[data-testid="stSelectbox"]').filter(has_text="Video").first
        assert chosen.locator("input").input_value() == video
        assert f"video={video}" in page.url  # the URL still names it: the link can be shared
        t0 = time.perf_counter()
        _multimodal_parts(page, base, tiny_demo, shots)
        print(f"multimodal parts (faceless review, Errors filter, Map from audio): {time.perf_counter() - t0:.1f} s")
        page.close()
    assert {p.name for p in shots.glob("*.png")} >= {f"{p or 'data'}.png" for p, _ in PAGES}


def test_launch_score_download_and_compare_in_a_real_browser(browser, tiny_demo, tmp_path):
    """The everyday loop: launch a run from the Training page, score it on test on the
    Results page, download the submission and check it with ``vidid evaluate``, then
    compare it with another run."""
    import json

    from core.runs import Run, list_runs

    shots = Path(os.environ.get("VIDID_SCREENSHOTS") or tmp_path / "screenshots")
    shots.mkdir(parents=True, exist_ok=True)
    cache, runs = tmp_path / "cache", tmp_path / "runs"
    cache.mkdir()
    first = prepare_data(cache, runs, "tiny", tiny_demo)  # the run to compare with
    env = {"VIDID_DEMO_PRESET": "tiny", "VIDID_CACHE": str(cache), "VIDID_RUNS": str(runs)}
    with streamlit_server(env) as base:
        page = browser.new_page(viewport=VIEWPORT)
        wait_for_run(first)
        open_page(page, base, "training", "Training")
        form = page.locator('[data-testid="stForm"]').first
        if not form.is_visible():  # the launch form sits in an expander while a run is followed
            page.get_by_text("Launch a run").first.click()
        page.locator('[data-testid="stRadio"]').filter(has_text="Method").get_by_text(
            "knn", exact=True).first.click()
        page.get_by_role("button", name="Launch training").click()
        t0 = time.monotonic()
        while len(list_runs(runs)) < 2:
            assert time.monotonic() - t0 < 60, "the Training page launched no run"
            time.sleep(0.2)
        ui_run = Path(next(p for p in list_runs(runs)["path"] if Path(p) != first))
        assert Run.open(ui_run).config()["method"] == "knn"
        wait_for_run(ui_run)
        wait_idle(page)
        assert not exceptions(page)

        open_page(page, base, f"results?run={ui_run.name}", "Results")
        page.get_by_role("button", name="Score test").click()
        page.get_by_text("mAP on test (official)").first.wait_for(timeout=120_000)
        wait_idle(page)
        assert not exceptions(page)
        shown = float(metric_value(page, "mAP on test (official)"))
        page.screenshot(path=str(shots / "results.png"))
        with page.expect_download() as dl:
            page.get_by_role("button", name="Download submission").click()
        sub = tmp_path / "submission.txt"
        dl.value.save_as(str(sub))
        gt = cache / "demo-tiny-seed0" / "test_gt.txt"
        out = subprocess.run([sys.executable, "-m", "core.cli", "evaluate", str(gt), str(sub), "--json"],
                             cwd=ROOT, capture_output=True, text=True, timeout=120,
                             env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)["mAP"] == pytest.approx(shown, abs=5e-5)

        open_page(page, base, "compare", "Compare runs")
        page.get_by_text("identities gained by B").first.wait_for(timeout=60_000)
        assert not exceptions(page)
        page.screenshot(path=str(shots / "compare.png"))
        page.get_by_text("identities gained by B").first.evaluate(
            "e => e.scrollIntoView({block: 'start'})")
        page.wait_for_timeout(400)
        page.screenshot(path=str(shots / "compare_pair.png"))
        page.close()


def _multimodal_parts(page, base: str, demo: Path, shots: Path) -> None:
    """A faceless video's per-modality evidence on Video review, the Errors page's
    filter switched to low-quality faces (the run of the test is open there), and the
    Map drawn from the audio features."""
    import numpy as np

    from core.features.modalities import open_multimodal

    lv = open_multimodal(demo / "face_val.pickle", demo / "val_gt.txt", split="val")
    faceless = str(np.asarray(lv.names)[~lv.modal.has("face")][0])
    page.goto(f"{base}/video_review?video={faceless}", wait_until="domcontentloaded")
    page.get_by_role("heading", name="What each modality says").wait_for(timeout=60_000)
    wait_idle(page)
    assert not exceptions(page), exceptions(page)
    assert page.get_by_text("No face frame").count() >= 1
    page.get_by_role("heading", name="What each modality says").evaluate(
        "e => e.scrollIntoView({block: 'start'})")
    page.screenshot(path=str(shots / "video_review_faceless.png"))
    open_page(page, base, "errors", "Errors")
    page.locator('[data-testid="stRadio"]').filter(has_text="low-quality face").get_by_text(
        "low-quality face", exact=True).first.click()
    page.get_by_text("labelled videos, low-quality face").first.wait_for(timeout=30_000)
    wait_idle(page)
    assert not exceptions(page), exceptions(page)
    page.get_by_role("heading", name="Videos without a usable face").evaluate(
        "e => e.scrollIntoView({block: 'start'})")
    page.screenshot(path=str(shots / "errors_faces.png"))
    # the Map drawn from another modality (all videos; audio holds faceless videos too)
    open_page(page, base, "map", "Map")
    page.locator('[data-testid="stRadio"]').filter(has_text="All videos").get_by_text(
        "All videos", exact=True).first.click()
    wait_idle(page)
    page.locator('[data-testid="stSelectbox"]').filter(has_text="Drawn from").first.click()
    page.get_by_role("option", name="audio features").first.click()
    page.get_by_text("Drawn from audio features").first.wait_for(timeout=60_000)
    wait_idle(page, 90_000)
    assert not exceptions(page), exceptions(page)
    assert page.locator('[data-testid="stPlotlyChart"]').count() >= 1
    page.screenshot(path=str(shots / "map_audio.png"))


def _move_eps_and_check(page) -> None:
    before = metric_value(page, "N clusters")
    thumb = eps_thumb(page)
    thumb.focus()
    moves = [["ArrowRight"] * 15, ["Home"], ["End"]]
    for keys in moves:
        for key in keys:
            page.keyboard.press(key)
        try:
            page.wait_for_function(
                """([label, before]) => {
                    const m = [...document.querySelectorAll('[data-testid="stMetric"]')]
                        .find(e => e.innerText.includes(label));
                    return m && !m.innerText.includes('\\n' + before) &&
                           m.querySelector('[data-testid="stMetricValue"]').innerText.trim() !== before;
                }""", arg=["N clusters", before], timeout=15_000)
            break
        except Exception:
            continue
    wait_idle(page)
    after = metric_value(page, "N clusters")
    assert after != before, f"eps moved but the cluster count stayed {before}"
    assert not exceptions(page)
