"""Does vidid's recognition win on data it was never tuned on?

A family of synthetic datasets in the real file formats (``core.synth.make_preset``
knobs: videos per identity from sparse to rich, hard clips, look-alike strangers,
distractor share, frame noise, 100-1000 identities) x several seeds. On each:

* vidid's ``knn``, ``nn`` and ``noise`` methods with the product defaults (train on
  train + val, predict test, no per-setting tuning);
* an **independent plain baseline** written here from the written description of the
  method (quality-weighted pooling, a linear 512->512 embedding and an ArcFace head,
  s=64, m=0.5, trained once on every labelled train + val video, Adam lr 1e-3, batch
  512, class weights ~ N(0, 0.01), test scores = softmax over all classes at s=64).
  It imports nothing of vidid but the file reader: its pooling, network, training
  loop, ranking and metric are its own.

Every submission is scored with an official-mAP implementation of this file too
(cross-checked against ``core.metrics`` on every run). The table ends with the
worst-case and mean margin of ``noise`` over the baseline, and the issue's criterion:
noise >= baseline + 1 point, or -- where the baseline is within 2 points of the best
score possible (empty videos cap it) -- noise closes half of the remaining gap; and
noise > nn > knn. Not a test: it never fails on numbers.

    nice python benchmarks/bench_generalise.py --quick        # 5 settings x 1 seed
    nice python benchmarks/bench_generalise.py                 # 14 settings x 2 seeds
    nice python benchmarks/bench_generalise.py --seeds 2,3 --jobs 2 --merge two_seeds.json
    nice python benchmarks/bench_generalise.py --set epochs=20 --only real,sparse
    nice python benchmarks/bench_generalise.py --ablation --only multi --seeds 1

Multimodal settings (``multi``, ``multi-sparse``: faceless and blurred-face videos, head,
body and audio files beside the faces) are measured face-only by the main table like
every setting; ``--ablation`` adds, per setting, the noise method on face only,
face+audio, face+head+body and all four modalities, with how many of the labelled
faceless test videos each ranks in their identity's top 100.
"""

from __future__ import annotations

import argparse
import hashlib
import inspect
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

# --- the family ------------------------------------------------------------------------
#: name -> knobs of core.synth.make_preset("demo", ...). "real" is the demo preset.
SETTINGS: dict[str, dict] = {
    "sparse": dict(n_identities=300, train_per_id=3, val_per_id=3, test_per_id=3),
    "sparse-hard": dict(n_identities=300, train_per_id=2.5, val_per_id=2.5, test_per_id=3,
                        hard_share=0.5, lookalike_cos=(0.8, 0.9)),
    "real": dict(),
    "real-hard": dict(hard_share=0.5, hard_offset=(1.2, 2.0), frame_noise=1.3),
    "real-lookalikes": dict(once_share=0.25, lookalike_share=0.5, lookalike_cos=(0.8, 0.9)),
    "real-1000": dict(n_identities=1000),
    "few-distractors": dict(n_identities=300, distractor_share=0.15),
    "easy-100": dict(n_identities=100, hard_share=0.1, frame_noise=0.7),
    "rich": dict(n_identities=150, train_per_id=15, val_per_id=5, test_per_id=5),
    "rich-hard": dict(n_identities=150, train_per_id=16, val_per_id=5, test_per_id=5,
                      hard_share=0.5, frame_noise=1.3),
    # multimodal: the ``multi`` preset (8 % faceless, 10 % blurred-face videos) and a sparse one
    "multi": dict(faceless_share=0.08, lowface_share=0.10),
    "multi-sparse": dict(n_identities=300, train_per_id=3, val_per_id=3, test_per_id=3,
                         faceless_share=0.08, lowface_share=0.10),
}
#: ``--ablation`` rows: the modalities of the noise method (None: every one found).
ABLATION: dict[str, tuple[str, ...] | None] = {
    "face": ("face",), "face+audio": ("face", "audio"), "face+head+body": ("face", "head", "body"),
    "all four": None}
#: Settings drawn by the independent generator of this file (:func:`write_gauss`), not
#: by core.synth: identities spread in all 512 dimensions, Gaussian video and frame
#: noise, its own notion of hard clips and look-alikes. Knobs: identities, median
#: train/val/test videos per identity, hard-clip share, look-alike cosine.
GAUSS: dict[str, dict] = {
    "gauss-sparse": dict(n_ids=300, train=3, val=3, test=3, hard=0.4, look_cos=0.8),
    "gauss-real": dict(n_ids=500, train=5, val=4, test=4, hard=0.35, look_cos=0.75),
}
SETTINGS.update({name: {"generator": "gauss", **knobs} for name, knobs in GAUSS.items()})
QUICK = ("sparse-hard", "real", "real-lookalikes", "rich", "gauss-sparse")


def data_dir(name: str, seed: int, cache: Path) -> Path:
    """The setting's files, generated once per (knobs, seed, generator source)."""
    import core.synth.generator as synth
    import core.synth.model as synth_model

    knobs = SETTINGS[name]
    gauss = knobs.get("generator") == "gauss"
    # The generator's own source: editing the rest of this file keeps the data.
    src = inspect.getsource(write_gauss).encode() if gauss else (
        Path(synth.__file__).read_bytes() + Path(synth_model.__file__).read_bytes())
    key = hashlib.sha256(src + json.dumps(knobs, sort_keys=True).encode()).hexdigest()[:10]
    out = cache / f"gen_{name}_s{seed}_{key}"
    if not (out / "test_gt.txt").exists():
        print(f"  generating {name} seed {seed} ...", file=sys.stderr, flush=True)
        if gauss:
            write_gauss(out, seed=seed, **{k: v for k, v in knobs.items() if k != "generator"})
        else:
            synth.generate(out, preset=synth.make_preset("demo", **knobs), seed=seed)
    return out


def write_gauss(out: Path, *, seed: int, n_ids: int, train: float, val: float, test: float,
                hard: float, look_cos: float, distractor_share: float = 0.375) -> None:
    """An independent generator in the real formats (plain pickle, protocol 2, bytes keys).

    Identity centres: unit vectors sharing a common component (cosine ~0.3 between
    people). A video: ``unit(centre + r * noise)`` with r ~ U(0.6, 1.0), or U(1.2, 1.8)
    for hard clips. Frames: the video's direction plus noise that grows as quality
    (~N(80, 30), clipped to [-30, 200]) falls; norms track quality. Distractors (37.5 %
    of val/test): strangers seen once, recurring strangers and recurring look-alikes
    (centre cosine ``look_cos`` to a known identity), 2-5 videos each.
    """
    import pickle

    rng = np.random.default_rng([seed, 77])
    d = 512
    unit = lambda v: v / np.linalg.norm(v, axis=-1, keepdims=True)  # noqa: E731
    common = unit(rng.standard_normal(d))
    centres = unit(0.65 * common + unit(rng.standard_normal((n_ids, d))))
    pop = rng.lognormal(0, 0.45, n_ids)
    counts = [np.maximum(1, np.rint(m * pop * rng.lognormal(0, 0.25, n_ids))).astype(int)
              for m in (train, val, test)]
    people = [centres]          # person vectors; identities first
    videos: dict[str, list] = {"train": [], "val": [], "test": []}  # (person row, identity or 0)
    for s, split in enumerate(("train", "val", "test")):
        videos[split] = [(i, i + 1) for i in range(n_ids) for _ in range(counts[s][i])]
    n_extra = {sp: int(round(len(videos[sp]) * distractor_share / (1 - distractor_share)))
               for sp in ("val", "test")}
    row = n_ids
    pending = []
    total = sum(n_extra.values())
    while len(pending) < total:
        kind = rng.random()
        if kind < 0.4:                      # seen once
            people.append(unit(0.65 * common + unit(rng.standard_normal(d)))[None])
            pending.append(row)
        else:                               # recurring stranger or look-alike
            if kind < 0.7:
                v = unit(0.65 * common + unit(rng.standard_normal(d)))
            else:
                twin = centres[rng.integers(n_ids)]
                o = unit(rng.standard_normal(d))
                o = unit(o - (o @ twin) * twin)
                v = look_cos * twin + np.sqrt(1 - look_cos ** 2) * o
            people.append(v[None])
            pending += [row] * int(rng.integers(2, 6))
        row += 1
    pending = rng.permutation(np.array(pending[:total]))
    videos["val"] += [(p, 0) for p in pending[:n_extra["val"]]]
    videos["test"] += [(p, 0) for p in pending[n_extra["val"]:]]
    P = np.concatenate(people)
    out.mkdir(parents=True, exist_ok=True)
    prefix = {"train": "G_TRAIN", "val": "G_VAL", "test": "G_TEST"}
    truth = ["video\tsplit\tperson\tkind\n"]
    for split, items in videos.items():
        order = rng.permutation(len(items))
        feats, gt = {}, []
        for j, o in enumerate(order):
            person, ident = items[o]
            name = f"{prefix[split]}_{j:06d}"
            r = rng.uniform(1.2, 1.8) if rng.random() < hard else rng.uniform(0.6, 1.0)
            v = unit(P[person] + r * unit(rng.standard_normal(d)))
            n = 0 if rng.random() < 0.01 else int(np.clip(rng.lognormal(np.log(20), 0.8), 1, 300))
            q = np.clip(rng.normal(80, 30, n), -30, 200)
            noise = (0.6 + 1.6 / (1 + np.exp((q - 30) / 10)))[:, None]
            f = unit(v + noise * unit(rng.standard_normal((n, d))))
            f *= (10 + 0.08 * np.maximum(q, 0))[:, None]
            frames = [[str(k * 3), [100.0, 80.0, 200.0, 210.0], float(1 - rng.exponential(0.01)),
                       float(q[k]), f[k].astype(np.float16)] for k in range(n)]
            feats[name.encode()] = frames
            truth.append(f"{name}\t{split}\tp{person}\t{'identity' if ident else 'stranger'}\n")
            if ident:
                gt.append((name, ident))
        with open(out / f"face_{split}.pickle", "wb") as fh:
            pickle.dump(feats, fh, protocol=2)
        if split == "train":
            text = "".join(f"{n}.mp4 {i}\n" for n, i in gt)
        else:
            by: dict[int, list[str]] = {}
            for n, i in gt:
                by.setdefault(i, []).append(f"{n}.mp4")
            text = "".join(f"{i} {' '.join(v)}\n" for i, v in sorted(by.items()))
        if split == "test":
            (out / "truth.tsv").write_text("".join(truth))
        (out / f"{split}_gt.txt").write_text(text)


# --- the independent baseline ----------------------------------------------------------
def official_map(gt: dict[int, list[str]], ranking: dict[int, list[str]]) -> float:
    """mean over GT identities of sum_{hits at k} hits/k / n_gt (duplicates dropped)."""
    aps = []
    for ident, videos in gt.items():
        relevant, seen, hits, total = set(videos), set(), 0, 0.0
        k = 0
        for name in ranking.get(ident, []):
            if name in seen:
                continue
            seen.add(name)
            k += 1
            if k > 100:
                break
            if name in relevant:
                hits += 1
                total += hits / k
        aps.append(total / len(relevant))
    return float(np.mean(aps)) if aps else float("nan")


def read_gt(path: Path) -> dict[str, int]:
    """video (no .mp4) -> identity, either layout."""
    out: dict[str, int] = {}
    for line in path.read_text().split("\n"):
        parts = line.split()
        if len(parts) == 2 and parts[0].endswith(".mp4") and not parts[1].endswith(".mp4"):
            out[parts[0][:-4]] = int(parts[1])
        elif parts:
            for v in parts[1:]:
                out[v[:-4] if v.endswith(".mp4") else v] = int(parts[0])
    return out


def pool_plain(frames) -> tuple[np.ndarray, np.ndarray]:
    """(names, X): quality-weighted mean (negative quality -> 0, all-zero -> uniform),
    L2-normalised, per non-empty video. A plain loop over videos, on purpose."""
    names, rows = [], []
    feats, q, off = frames.feats, frames.quality, frames.offsets
    for i, name in enumerate(frames.names):
        a, b = int(off[i]), int(off[i + 1])
        if b == a:
            continue
        f = np.asarray(feats[a:b], dtype=np.float64)
        w = np.maximum(np.asarray(q[a:b], dtype=np.float64), 0.0)
        if w.sum() <= 0:
            w = np.ones(b - a)
        v = w @ f
        names.append(str(name))
        rows.append(v / np.linalg.norm(v))
    return np.array(names, dtype=object), np.array(rows, dtype=np.float32)


def plain_baseline(X: np.ndarray, y: np.ndarray, X_test: np.ndarray, *, epochs: int = 20,
                   seed: int = 0) -> np.ndarray:
    """Linear + ArcFace (s=64, m=0.5), Adam 1e-3, batch 512; log-softmax scores (n_test, C)."""
    import torch
    import torch.nn.functional as F

    torch.manual_seed(seed)
    C = int(y.max()) + 1
    emb = torch.nn.Linear(X.shape[1], 512)
    W = torch.nn.Parameter(torch.randn(C, 512) * 0.01)
    opt = torch.optim.Adam(list(emb.parameters()) + [W], lr=1e-3)
    s, m = 64.0, 0.5
    Xt, yt = torch.as_tensor(X), torch.as_tensor(y)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        perm = torch.randperm(len(Xt), generator=gen)
        for i in range(0, len(Xt), 512):
            idx = perm[i:i + 512]
            cos = F.normalize(emb(Xt[idx])) @ F.normalize(W).T
            c = cos.gather(1, yt[idx, None]).clamp(-1 + 1e-7, 1 - 1e-7)
            theta = torch.acos(c)
            target = torch.where(theta + m < math.pi, torch.cos(theta + m), c - m * math.sin(m))
            logits = s * cos.scatter(1, yt[idx, None], target)
            loss = F.cross_entropy(logits, yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        cos = F.normalize(emb(torch.as_tensor(X_test))) @ F.normalize(W).T
        # log-softmax in float64: the same order as the softmax, without float32's ties
        # at exactly 1.0 for confident videos.
        return torch.log_softmax(s * cos.double(), dim=1).numpy()


def rank(scores: np.ndarray, names: np.ndarray, ids: np.ndarray) -> dict[int, list[str]]:
    """Top 100 videos per identity column, best first (stable: lower row on ties)."""
    order = np.argsort(-scores, axis=0, kind="stable")[:100]
    return {int(i): [str(n) for n in names[order[:, c]]] for c, i in enumerate(ids)}


def run_baseline(folder: Path, epochs: int) -> float:
    from core.io import read_features  # the file reader only

    labels = {**read_gt(folder / "train_gt.txt"), **read_gt(folder / "val_gt.txt")}
    xs, ys = [], []
    for split in ("train", "val"):
        names, X = pool_plain(read_features(folder / f"face_{split}.pickle"))
        keep = np.array([n in labels for n in names], dtype=bool)
        xs.append(X[keep])
        ys.append(np.array([labels[n] for n in names[keep]], dtype=np.int64))
    X, ids = np.concatenate(xs), np.concatenate(ys)
    uniq, y = np.unique(ids, return_inverse=True)
    t_names, t_X = pool_plain(read_features(folder / "face_test.pickle"))
    S = plain_baseline(X, y, t_X, epochs=epochs)
    gt = _by_identity(read_gt(folder / "test_gt.txt"))
    return official_map(gt, rank(S, t_names, uniq))


def _by_identity(labels: dict[str, int]) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    for v, i in labels.items():
        out.setdefault(i, []).append(v)
    return out


def ceiling(folder: Path) -> float:
    """Best possible test mAP: every non-empty GT video ranked first."""
    from core.io import read_features

    fs = read_features(folder / "face_test.pickle")
    empty = {str(n) for n, k in zip(fs.names, fs.lengths) if k == 0}
    gt = _by_identity(read_gt(folder / "test_gt.txt"))
    return float(np.mean([min(100, sum(v not in empty for v in vids)) / len(vids)
                          for vids in gt.values()]))


# --- vidid -----------------------------------------------------------------------------
def run_vidid(folder: Path, method: str, overrides: dict, root: Path,
              modalities: tuple[str, ...] | None = ("face",)) -> tuple[float, float]:
    """(test mAP, seconds) of a vidid run with the product defaults (+ overrides).

    ``modalities``: ``("face",)`` (the face-only method), a subset, or None (every
    modality beside the face files).
    """
    from core.features import concat, open_split
    from core.features.modalities import open_multimodal
    from core.learn.metrics import evaluate_files
    from core.runs import Run
    from core.learn import TrainConfig, fit
    from core.runs import predict_submission

    t0 = time.perf_counter()
    splits = [(folder / f"face_{s}.pickle", folder / f"{s}_gt.txt", s) for s in ("train", "val")]
    if modalities == ("face",):
        data = concat([open_split(f, g, split=s) for f, g, s in splits])
    else:
        data = concat([open_multimodal(f, g, modalities=modalities, split=s) for f, g, s in splits])
        overrides = {**overrides, "modalities": modalities}
    cfg = TrainConfig(method=method, **overrides)
    run = Run.create(Path(tempfile.mkdtemp(dir=root)) / method, cfg.to_dict())
    fit(cfg, data, run)
    sub = run.path / "test_submission.txt"
    ranking = predict_submission(run.path, folder / "face_test.pickle", sub)
    ours = evaluate_files(folder / "test_gt.txt", sub)["mAP"]
    theirs = official_map(_by_identity(read_gt(folder / "test_gt.txt")), ranking)
    if abs(ours - theirs) > 1e-9:  # two implementations of one metric must agree
        raise SystemExit(f"metric mismatch on {folder}: core {ours} vs reference {theirs}")
    return ours, time.perf_counter() - t0, ranking


def faceless_ranked(folder: Path, ranking: dict[int, list[str]]) -> tuple[int, int]:
    """(labelled faceless test videos in their identity's top 100, labelled faceless test videos)."""
    from core.features.modalities import open_multimodal

    test = open_multimodal(folder / "face_test.pickle", folder / "test_gt.txt", split="test")
    names = np.asarray(test.names)[~test.modal.has("face") & (test.ids > 0)]
    ids = np.asarray(test.ids)[~test.modal.has("face") & (test.ids > 0)]
    ranked = sum(str(v) in set(ranking.get(int(i), [])) for v, i in zip(names.tolist(), ids.tolist()))
    return int(ranked), len(names)


def _ablation_table(rows: list[dict], names: list[str]) -> None:
    print("\nablation (noise method; mAP on test, faceless test videos ranked of labelled ones)")
    print(f"{'setting':16s} " + " ".join(f"{a:>22s}" for a in ABLATION))
    for name in names:
        rs = [r for r in rows if r["setting"] == name]
        cells = []
        for a in ABLATION:
            m = float(np.mean([r[f"abl[{a}]"] for r in rs]))
            ranked = sum(r[f"abl[{a}]_faceless"][0] for r in rs)
            total = sum(r[f"abl[{a}]_faceless"][1] for r in rs)
            cells.append(f"{m:.4f} ({ranked}/{total})")
        print(f"{name:16s} " + " ".join(f"{c:>22s}" for c in cells))


def _parse_set(items: list[str]) -> dict:
    out = {}
    for item in items:
        key, _, value = item.partition("=")
        out[key] = json.loads(value) if value not in ("", "None") else None
    return out


def criterion(r: dict, methods: list[str]) -> tuple[float, bool]:
    """(noise - baseline, criterion met) of a row or of a setting's seed means."""
    margin = r["noise"] - r["base"]
    room = r["ceiling"] - r["base"]
    ok = margin >= 0.01 or (room < 0.02 and margin >= room / 2)
    if {"knn", "nn"} <= set(methods):
        ok = ok and r["noise"] > r["nn"] > r["knn"]
    return margin, ok


def _seeds(text: str | None, quick: bool) -> list[int]:
    """``--seeds``: N (seeds 0..N-1) or a comma-separated list (``2,3``; one seed alone: ``2,``)."""
    if text is None:
        return list(range(1 if quick else 2))
    try:
        seeds = ([int(x) for x in text.split(",") if x.strip()] if "," in text
                 else list(range(int(text))))
    except ValueError:
        raise SystemExit(f"--seeds takes N or a comma-separated list of seeds, got {text!r}")
    if not seeds or min(seeds) < 0 or len(set(seeds)) != len(seeds):
        raise SystemExit(f"--seeds must name distinct seeds >= 0 (N >= 1 for seeds 0..N-1; "
                         f"one seed k alone: 'k,'), got {text!r}")
    return seeds


def _read_merge(path: str) -> list[dict]:
    """The rows of an earlier ``--json`` run, checked before anything is measured."""
    try:
        rows = json.loads(Path(path).read_text())
        if not (isinstance(rows, list) and all(isinstance(r, dict) and "setting" in r
                                               and "seed" in r for r in rows)):
            raise ValueError("not a list of rows with 'setting' and 'seed'")
    except (OSError, ValueError) as exc:
        raise SystemExit(f"--merge {path}: not the rows of a --json run ({exc})")
    return rows


def measure_row(name: str, seed: int, methods: list[str], overrides: dict, cache: Path,
                root: Path, baseline_epochs: int, ablation: bool) -> dict:
    """One (setting, seed) row: ceiling, baseline and every method (one process, or a worker)."""
    import torch

    torch.set_num_threads(overrides.get("threads") or 1)
    folder = data_dir(name, seed, cache)
    row = {"setting": name, "seed": seed, "ceiling": ceiling(folder)}
    key = folder / f"baseline_f64_e{baseline_epochs}.json"
    if key.exists():  # the baseline never changes with vidid's code: reuse it
        row["base"] = json.loads(key.read_text())["mAP"]
    else:
        row["base"] = run_baseline(folder, baseline_epochs)
        key.write_text(json.dumps({"mAP": row["base"]}))
    face_rankings = {}
    for method in methods:
        row[method], row[f"{method}_s"], face_rankings[method] = run_vidid(
            folder, method, overrides, root)
    if ablation:
        for a, mods in ABLATION.items():
            if mods == ("face",) and "noise" in methods:  # the main table's run
                row[f"abl[{a}]"] = row["noise"]
                row[f"abl[{a}]_faceless"] = faceless_ranked(folder, face_rankings["noise"])
                continue
            row[f"abl[{a}]"], row[f"abl[{a}]_s"], ranking = run_vidid(
                folder, "noise", overrides, root, mods)
            row[f"abl[{a}]_faceless"] = faceless_ranked(folder, ranking)
    print("  " + " ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}"
                          for k, v in row.items()), flush=True)
    return row


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help=f"only {', '.join(QUICK)}, one seed")
    ap.add_argument("--only", default=None, help="comma-separated settings")
    ap.add_argument("--seeds", default=None,
                    help="data seeds: N (0..N-1) or a comma-separated list such as 2,3 "
                         "(default 2, quick 1)")
    ap.add_argument("--methods", default="knn,nn,noise")
    ap.add_argument("--ablation", action="store_true",
                    help=f"also the noise method on {', '.join(ABLATION)} modalities per setting")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=JSON",
                    help="override a TrainConfig default for the vidid runs (for experiments)")
    ap.add_argument("--baseline-epochs", type=int, default=20)
    ap.add_argument("--cache", default=None, help="data folder (default $VIDID_CACHE or ~/.cache/vidid)")
    ap.add_argument("--json", default=None, help="also write the rows to this JSON file")
    ap.add_argument("--merge", action="append", default=[], metavar="JSON",
                    help="add the rows of an earlier --json run (e.g. other seeds) to the table; "
                         "a (setting, seed) measured now replaces the earlier one")
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1),
                    help="rows measured side by side, one process each (default: 2 where there "
                         "are 2 cores; results do not depend on it)")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch CPU threads for every model (default 1: a shared 2-core machine "
                         "stalls with more; results do not depend on it)")
    args = ap.parse_args(argv)

    names = (args.only.split(",") if args.only else list(QUICK if args.quick else SETTINGS))
    unknown = [n for n in names if n not in SETTINGS]
    if unknown:
        raise SystemExit(f"unknown setting(s) {unknown}; choose from {', '.join(SETTINGS)}")
    if args.jobs < 1:
        raise SystemExit(f"--jobs must be >= 1, got {args.jobs}")
    seeds = _seeds(args.seeds, args.quick)
    merges = [_read_merge(path) for path in args.merge]
    methods = args.methods.split(",")
    overrides = {"threads": args.threads, **_parse_set(args.set)}
    cache = Path(args.cache or os.environ.get("VIDID_CACHE") or Path.home() / ".cache" / "vidid")
    cache.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="vidid_generalise_"))
    print(f"vidid overrides: {overrides or 'none (product defaults)'}; baseline epochs "
          f"{args.baseline_epochs}; seeds {seeds}; jobs {args.jobs}", flush=True)

    t_all = time.perf_counter()
    tasks = [(name, seed) for name in names for seed in seeds]
    for name, seed in tasks:  # generate every data set first: workers never race on a folder
        data_dir(name, seed, cache)
    common = (methods, overrides, cache, root, args.baseline_epochs, args.ablation)
    if args.jobs == 1:
        rows = [measure_row(name, seed, *common) for name, seed in tasks]
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        # spawn: a fresh interpreter per worker (no forked torch thread pools)
        with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn")) as ex:
            rows = list(ex.map(measure_row, *zip(*tasks), *([c] * len(tasks) for c in common)))
    measured = {(r["setting"], r["seed"]) for r in rows}
    for path, merged in zip(args.merge, merges):
        earlier = [r for r in merged
                   if r["setting"] in names and (r["setting"], r["seed"]) not in measured
                   and all(m in r for m in methods)]
        print(f"merged {len(earlier)} row(s) of {path}", flush=True)
        rows += earlier
        measured |= {(r["setting"], r["seed"]) for r in earlier}

    print()
    header = f"{'setting':16s} {'seeds':>5s} {'ceiling':>7s} " + \
        " ".join(f"{m:>7s}" for m in methods) + f" {'base':>7s} {'margin':>7s}  ok  per seed"
    print(header)
    margins, fails = [], []
    for name in names:
        rs = sorted((r for r in rows if r["setting"] == name), key=lambda r: r["seed"])
        mean = {k: float(np.mean([r[k] for r in rs])) for k in ["ceiling", "base", *methods]}
        line = f"{name:16s} {len(rs):5d} {mean['ceiling']:7.4f} " + \
            " ".join(f"{mean[m]:7.4f}" for m in methods) + f" {mean['base']:7.4f}"
        if "noise" in methods:
            margin, ok = criterion(mean, methods)
            margins.append(margin)
            if not ok:
                fails.append(name)
            per_seed = sum(criterion(r, methods)[1] for r in rs)
            line += f" {100 * margin:+7.2f}  {'yes' if ok else 'NO ':3s} {per_seed}/{len(rs)}"
        print(line)
    if margins:
        print(f"\nnoise - baseline, points: worst {100 * min(margins):+.2f}, "
              f"mean {100 * float(np.mean(margins)):+.2f}; criterion met on "
              f"{len(names) - len(fails)}/{len(names)} settings (on the mean over seeds; "
              f"'per seed': seeds where it holds alone)"
              + (f" (not: {', '.join(fails)})" if fails else ""))
    if args.ablation:
        _ablation_table(rows, names)
    print(f"total {time.perf_counter() - t_all:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
