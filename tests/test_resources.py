"""core.resources: free memory from fake /proc and cgroup files, estimates vs measured peaks."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core import resources
from core.errors import DataError
from core.resources import (
    available_memory_bytes,
    check_fits,
    estimate_cluster_bytes,
    estimate_dataset_bytes,
    estimate_load_bytes,
    format_gib,
)

GiB = 2**30
REPO = Path(__file__).resolve().parents[1]

MEMINFO = """MemTotal:       24000000 kB
MemFree:         1000000 kB
MemAvailable:   16000000 kB
Buffers:          200000 kB
Cached:          5000000 kB
SwapTotal:             0 kB
HugePages_Total:       0
"""


@pytest.fixture
def fake_sys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the module at a fake /proc/meminfo, /proc/self/cgroup and cgroup root."""
    meminfo = tmp_path / "meminfo"
    meminfo.write_text(MEMINFO)
    cg = tmp_path / "cgroup"
    cg.mkdir()
    (tmp_path / "self_cgroup").write_text("0::/\n")
    monkeypatch.setattr(resources, "MEMINFO_PATH", meminfo)
    monkeypatch.setattr(resources, "CGROUP_ROOT", cg)
    monkeypatch.setattr(resources, "SELF_CGROUP_PATH", tmp_path / "self_cgroup")
    return tmp_path


def test_meminfo_available_is_read_in_bytes(fake_sys: Path):
    assert available_memory_bytes() == 16_000_000 * 1024


def test_old_kernel_without_memavailable_sums_free_buffers_cached(fake_sys: Path):
    (fake_sys / "meminfo").write_text(MEMINFO.replace("MemAvailable:   16000000 kB\n", ""))
    assert available_memory_bytes() == (1_000_000 + 200_000 + 5_000_000) * 1024


def test_no_meminfo_falls_back_to_sysconf(fake_sys: Path):
    (fake_sys / "meminfo").unlink()
    expected = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    assert available_memory_bytes() == pytest.approx(expected, rel=0.2)
    assert available_memory_bytes() > 0


def test_cgroup_v2_limit_caps_the_answer(fake_sys: Path):
    cg = fake_sys / "cgroup"
    (cg / "memory.max").write_text("4294967296\n")            # 4 GiB
    (cg / "memory.current").write_text(str(3 * GiB) + "\n")     # 3 GiB charged ...
    (cg / "memory.stat").write_text(f"anon 1\nfile 2\ninactive_file {GiB // 2}\n")  # ... 0.5 reclaimable
    # headroom 4 - (3 - 0.5) = 1.5 GiB, below the host's 15.3 GiB
    assert available_memory_bytes() == int(1.5 * GiB)


def test_cgroup_v2_unlimited_and_nested_limits(fake_sys: Path):
    cg = fake_sys / "cgroup"
    (cg / "memory.max").write_text("max\n")
    assert available_memory_bytes() == 16_000_000 * 1024
    # the process lives in /a/b; /a has the tighter limit
    (fake_sys / "self_cgroup").write_text("0::/a/b\n")
    (cg / "a" / "b").mkdir(parents=True)
    (cg / "a" / "memory.max").write_text(str(2 * GiB))
    (cg / "a" / "memory.current").write_text(str(GiB))
    (cg / "a" / "b" / "memory.max").write_text(str(8 * GiB))
    (cg / "a" / "b" / "memory.current").write_text(str(GiB // 4))
    assert available_memory_bytes() == GiB


def test_cgroup_v1_limit(fake_sys: Path):
    v1 = fake_sys / "cgroup" / "memory" / "jobs" / "42"
    v1.mkdir(parents=True)
    (fake_sys / "self_cgroup").write_text("4:memory:/jobs/42\n1:cpu:/\n0::/\n")
    (v1 / "memory.limit_in_bytes").write_text(str(3 * GiB))
    (v1 / "memory.usage_in_bytes").write_text(str(GiB))
    (v1 / "memory.stat").write_text(f"cache 5\ntotal_inactive_file {GiB // 4}\n")
    assert available_memory_bytes() == 3 * GiB - (GiB - GiB // 4)
    # v1's "no limit" is a huge number, not "max"
    (v1 / "memory.limit_in_bytes").write_text("9223372036854771712")
    assert available_memory_bytes() == 16_000_000 * 1024


def test_usage_above_limit_means_nothing_available(fake_sys: Path):
    cg = fake_sys / "cgroup"
    (cg / "memory.max").write_text(str(GiB))
    (cg / "memory.current").write_text(str(2 * GiB))
    assert available_memory_bytes() == 0
    with pytest.raises(DataError, match="not enough memory for pooling"):
        check_fits(1, "pooling")


def test_check_fits_message_and_threshold(fake_sys: Path):
    avail = 16_000_000 * 1024
    assert check_fits(int(0.8 * avail), "reading face_train.pickle") == avail
    with pytest.raises(DataError) as info:
        check_fits(int(0.8 * avail) + 1024, "reading face_train.pickle")
    msg = str(info.value)
    assert msg.startswith("not enough memory for reading face_train.pickle: needs ~12.2 GiB, "
                          "15.3 GiB available")
    assert "\n" not in msg and isinstance(info.value, ValueError)
    # a stricter share refuses less work
    with pytest.raises(DataError, match="needs ~7.6 GiB"):
        check_fits(int(0.5 * avail), "x", fraction=0.4)
    assert check_fits(10, "x", available=100, fraction=0.1) == 100
    for bad in (0, -0.1, 1.5):
        with pytest.raises(ValueError, match="fraction"):
            check_fits(1, "x", fraction=bad)
    with pytest.raises(ValueError, match="required_bytes"):
        check_fits(-1, "x")


def test_format_gib():
    assert format_gib(0) == "0.000 GiB"
    assert format_gib(1.25 * GiB) == "1.2 GiB"
    assert format_gib(50 * 2**20) == "0.049 GiB"


def test_real_machine_answer_is_plausible():
    total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    assert 0 < available_memory_bytes() <= total


# --------------------------------------------------------------------------- estimates
def test_estimate_load_formula_and_inputs(tmp_path: Path):
    f = tmp_path / "f.pickle"
    f.write_bytes(b"x" * 1000)
    assert estimate_load_bytes(f) == estimate_load_bytes(1000) == \
        int(resources.LOAD_BYTES_PER_PICKLE_BYTE * 1000) + resources.LOAD_OVERHEAD_BYTES
    assert estimate_load_bytes(str(f)) == estimate_load_bytes(f)
    assert estimate_load_bytes(2 * GiB) > 2 * estimate_load_bytes(GiB) - \
        resources.LOAD_OVERHEAD_BYTES - 1
    with pytest.raises(FileNotFoundError):
        estimate_load_bytes(tmp_path / "nope.pickle")
    with pytest.raises(ValueError):
        estimate_load_bytes(-1)


def test_estimate_dataset_sums_the_files(tmp_path: Path):
    a, b = tmp_path / "a.pickle", tmp_path / "b.pickle"
    a.write_bytes(b"x" * 3000)
    b.write_bytes(b"y" * 1000)
    expected = int(resources.DATASET_BYTES_PER_PICKLE_BYTE * 4000) + resources.LOAD_OVERHEAD_BYTES
    assert estimate_dataset_bytes([a, b]) == estimate_dataset_bytes([3000, str(b)]) == expected
    assert estimate_dataset_bytes([]) == resources.LOAD_OVERHEAD_BYTES
    # holding a converted dataset costs less than converting it did
    assert estimate_dataset_bytes([GiB]) < estimate_load_bytes(GiB)
    with pytest.raises(FileNotFoundError):
        estimate_dataset_bytes([a, tmp_path / "nope.pickle"])
    with pytest.raises(ValueError):
        estimate_dataset_bytes([a, -1])


def test_estimate_cluster_grows_with_points_and_pairs():
    base = estimate_cluster_bytes(10_000, 1_000_000)
    assert estimate_cluster_bytes(20_000, 1_000_000) > base
    assert estimate_cluster_bytes(10_000, 2_000_000) > base
    # with many pairs the CSR phase dominates: ~CLUSTER_BYTES_PER_EDGE per pair
    big = estimate_cluster_bytes(10_000, 100_000_000)
    assert big == pytest.approx(resources.CLUSTER_BYTES_PER_EDGE * 100_000_000, rel=0.02)
    assert estimate_cluster_bytes(0, 0) == resources.CLUSTER_OVERHEAD_BYTES
    for bad in ((-1, 0), (10, -5), (1.5, 3)):
        with pytest.raises(ValueError):
            estimate_cluster_bytes(*bad)


_CHILD = r"""
import json, sys, numpy as np
def kb(field):
    for line in open('/proc/self/status'):
        if line.startswith(field + ':'):
            return int(line.split()[1]) * 1024
what, arg = sys.argv[1], sys.argv[2]
from core.io.formats import read_features
from core.cluster import NeighborGraph
import scipy.sparse.csgraph
if what == 'load':
    base = kb('VmRSS')
    fs = read_features(arg, cache=False)
    print(json.dumps({'growth': kb('VmHWM') - base, 'frames': fs.n_frames}))
else:
    X = np.load(arg)
    base = kb('VmRSS')
    g = NeighborGraph.build(X, max_eps=1.0, method='exact')
    g.dbscan(1.0, 2)
    print(json.dumps({'growth': kb('VmHWM') - base, 'edges': g.n_edges}))
"""


def _measure(what: str, arg: Path) -> dict:
    proc = subprocess.run([sys.executable, "-c", _CHILD, what, str(arg)], check=False,
                          capture_output=True,
                          text=True, cwd=str(REPO), timeout=300,
                          env=dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1",
                                   OPENBLAS_NUM_THREADS="1"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_load_estimate_covers_a_measured_peak(tmp_path: Path):
    """Peak RSS growth of reading a ~20 MB pickle in a fresh process stays under the
    estimate, and the estimate is not wildly pessimistic (within 2x + the overhead)."""
    rng = np.random.default_rng(0)
    feats = rng.standard_normal((12_000, 512)).astype(np.float16)
    videos, j = {}, 0
    for v in range(400):
        n = 30
        videos[f"V{v:05d}".encode()] = [[str(k).encode(), [1.0, 2.0, 3.0, 4.0], 0.99, 60.0 + k,
                                         feats[j + k]] for k in range(n)]
        j += n
    path = tmp_path / "f.pickle"
    path.write_bytes(pickle.dumps(videos, protocol=2))
    del videos, feats
    got = _measure("load", path)
    assert got["frames"] == 12_000
    est = estimate_load_bytes(path)
    assert got["growth"] <= est, (got, est)
    assert est <= 2 * got["growth"] + resources.LOAD_OVERHEAD_BYTES, (got, est)


def test_cluster_estimate_covers_a_measured_peak(tmp_path: Path):
    """Planted clusters with ~0.5M pairs within the radius: measured peak <= estimate."""
    rng = np.random.default_rng(1)
    n, k = 2400, 5
    centres = rng.standard_normal((k, 512)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    X = centres[rng.integers(0, k, n)] + 0.6 * rng.standard_normal((n, 512)).astype(np.float32) \
        / np.sqrt(512)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    np.save(tmp_path / "x.npy", X.astype(np.float32))
    got = _measure("cluster", tmp_path / "x.npy")
    assert got["edges"] > 500_000  # the pairs, not the fixed overhead, must matter
    est = estimate_cluster_bytes(n, got["edges"])
    assert got["growth"] <= est, (got, est)
    assert est <= 3 * got["growth"] + resources.CLUSTER_OVERHEAD_BYTES, (got, est)
