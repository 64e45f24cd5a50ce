"""core.features.projection: UMAP / PCA maps, the on-disk cache, checks and progress."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

from core.features.projection import METHODS, compute_projection, projection_key


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _planted(n_per: int = 40, k: int = 4, d: int = 32, seed: int = 0):
    """k tight, well separated groups of unit vectors."""
    rng = np.random.default_rng(seed)
    centres = _unit(rng.normal(size=(k, d)))
    X = _unit(np.repeat(centres, n_per, axis=0) + 0.05 * rng.normal(size=(k * n_per, d)))
    return X, np.repeat(np.arange(k), n_per)


def test_pca_matches_sklearn(tmp_path):
    from sklearn.decomposition import PCA

    X, _ = _planted()
    xy = compute_projection(X, method="pca", cache_dir=tmp_path)
    ref = PCA(n_components=2, random_state=0).fit_transform(X)
    assert xy.shape == (len(X), 2) and xy.dtype == np.float32
    # Components are defined up to sign.
    for j in range(2):
        s = np.sign(np.dot(xy[:, j], ref[:, j]))
        np.testing.assert_allclose(xy[:, j], s * ref[:, j], atol=1e-4)


@pytest.mark.slow
def test_umap_keeps_planted_groups_apart(tmp_path):
    X, groups = _planted()
    calls = []
    xy = compute_projection(X, method="umap", n_neighbors=10, seed=3, cache=False,
                            progress=lambda f, m: calls.append(f))
    # Every point's nearest neighbour in the map belongs to its own group.
    d = ((xy[:, None, :] - xy[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    assert (groups[d.argmin(axis=1)] == groups).all()
    assert calls[-1] == 1.0 and all(b >= a for a, b in zip(calls, calls[1:]))
    assert any(0.3 <= f < 1.0 for f in calls)  # layout epochs were reported


def test_cache_hit_returns_same_map_and_skips_work(tmp_path):
    X, _ = _planted(seed=1)
    first = compute_projection(X, method="pca", cache_dir=tmp_path)
    files = list(tmp_path.iterdir())
    assert len(files) == 1 and files[0].suffix == ".npy"
    msgs = []
    second = compute_projection(X, method="pca", cache_dir=tmp_path,
                                progress=lambda f, m: msgs.append(m))
    np.testing.assert_array_equal(first, second)
    assert "read from cache" in msgs
    # A different seed or data is a different entry.
    compute_projection(X[:-1], method="pca", cache_dir=tmp_path)
    assert len(list(tmp_path.iterdir())) == 2


def test_corrupt_cache_file_is_recomputed(tmp_path):
    X, _ = _planted(seed=2)
    good = compute_projection(X, method="pca", cache_dir=tmp_path)
    (path,) = tmp_path.iterdir()
    path.write_bytes(b"not an npy file")
    again = compute_projection(X, method="pca", cache_dir=tmp_path)
    np.testing.assert_array_equal(good, again)
    assert np.load(path).shape == (len(X), 2)  # rewritten


def test_key_depends_on_data_and_parameters():
    X, _ = _planted(n_per=5)
    base = dict(method="umap", n_neighbors=15, min_dist=0.1, seed=0)
    k = projection_key(X, **base)
    assert k == projection_key(X.copy(), **base)
    for change in ({"seed": 1}, {"n_neighbors": 16}, {"min_dist": 0.2}, {"method": "pca"}):
        assert projection_key(X, **{**base, **change}) != k
    X2 = X.copy()
    X2[0, 0] += 1e-3
    assert projection_key(X2, **base) != k


def test_bad_input_messages():
    X, _ = _planted(n_per=5)
    with pytest.raises(ValueError, match="unknown projection method 'tsne'.*umap, pca"):
        compute_projection(X, method="tsne")
    assert METHODS == ("umap", "pca")
    bad = X.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="row 3 holds NaN"):
        compute_projection(bad, method="pca", cache=False)
    with pytest.raises(ValueError, match="2-d array"):
        compute_projection(X[0], method="pca", cache=False)
    with pytest.raises(ValueError, match="n_neighbors"):
        compute_projection(X, n_neighbors=1, cache=False)
    with pytest.raises(ValueError, match="min_dist"):
        compute_projection(X, min_dist=2.0, cache=False)


def test_tiny_inputs():
    empty = compute_projection(np.zeros((0, 8), np.float32), method="pca", cache=False)
    assert empty.shape == (0, 2)
    one = compute_projection(np.ones((1, 8), np.float32), method="umap", cache=False)
    assert one.shape == (1, 2) and np.isfinite(one).all()
    # Fewer points than UMAP needs: laid out by PCA, still one row per point.
    three = compute_projection(np.eye(3, 8, dtype=np.float32), method="umap", cache=False)
    assert three.shape == (3, 2) and len({tuple(r) for r in three.round(5)}) == 3


def test_default_cache_dir_follows_env(tmp_path, monkeypatch):
    monkeypatch.setenv("VIDID_CACHE", str(tmp_path))
    X, _ = _planted(n_per=5, seed=4)
    t = time.perf_counter()
    compute_projection(X, method="pca")
    assert time.perf_counter() - t < 30
    assert len(os.listdir(tmp_path / "projections")) == 1
