"""Galleries at scale: exact blockwise search vs faiss flat, IVF and HNSW at 10k, 100k and 1M items.

Two sources of gallery (``--source``):

- ``synthetic`` (default): a stated synthetic clustered set: ``N / 100`` classes, their centres
  uniform on the 128-d sphere, each item ``centre + 1.75 * noise / sqrt(D)`` normalised (same-class
  cosine ~0.25, other-class ~0 +- 0.09); the queries are fresh draws from the same classes.
- ``omniglot``: real cloud embeddings of augmented Omniglot images. A small cloud (resnet, one block
  per stage, 28 px) is trained on Omniglot's open-set training classes (or ``--cloud DIR`` is
  used); two images of each of the 1,623 characters are held out as query sources, and the gallery
  is ``N`` augmented views (the training's ``glyph`` moves, seeded) of the other 18 per character,
  embedded in chunks straight into the memory-mapped ``.npy``. A query is one augmented view of a
  held-out image, so its drawing is never in the gallery.

Each method runs in its own
subprocess so its peak memory is its own (:func:`peak_rss_mib`); the ratios (throughput against
the exact search, recall against its top-k) come from the same run.

    HETERO_THREADS=1 .venv/bin/python benchmarks/scale.py --sizes 10000,100000,1000000 --work /tmp/scale

Targets (issue 19): 100k queries x 100k gallery exact mAP in <= 4 GiB peak; at 1M, faiss
recall@1 >= 0.95 at >= 10x the exact search's query throughput.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

DIM = 128
PER_CLASS = 100
NOISE = 1.75
K = 10
#: Search settings tried on the one built index, the default (from hetero.index.default_params) first.
SWEEP = {"ivf": ("nprobe", (None, 16, 32, 64, 128, 256, 512)), "hnsw": ("ef_search", (None, 256, 512))}
REPO = Path(__file__).resolve().parents[1]
OMNIGLOT = REPO.parent / "shared" / "data" / "omniglot"
QUERY_IMAGES_PER_CLASS = 2  # held out of an Omniglot gallery as query sources
_EMBED_ROWS = 32_768  # augmented images rendered and embedded at once


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def make_set(work: Path, n: int, queries: int, seed: int = 0, noise: float = NOISE) -> Path:
    """Write the gallery (a memory-mappable .npy, in chunks), its labels, and the queries."""
    folder = work / (f"g{n}" if noise == NOISE else f"g{n}-noise{noise}")
    if (folder / "done").is_file():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    classes = max(2, n // PER_CLASS)
    centres = _unit(rng.normal(size=(classes, DIM)))
    labels = np.arange(n) % classes
    out = np.lib.format.open_memmap(folder / "embeddings.npy", mode="w+", dtype=np.float32, shape=(n, DIM))
    for s in range(0, n, 65536):
        e = min(n, s + 65536)
        out[s:e] = _unit(centres[labels[s:e]] + noise * rng.normal(size=(e - s, DIM)) / np.sqrt(DIM))
    out.flush()
    del out
    np.save(folder / "labels.npy", labels.astype(np.int64))
    ql = rng.integers(0, classes, size=queries)
    np.save(folder / "queries.npy", _unit(centres[ql] + noise * rng.normal(size=(queries, DIM)) / np.sqrt(DIM)))
    np.save(folder / "query_labels.npy", ql.astype(np.int64))
    (folder / "done").write_text("ok")
    return folder


def _omniglot_cloud(work: Path, cloud_dir: str | None, steps: int = 1500):
    """The cloud that embeds the Omniglot gallery: ``cloud_dir``, or a small one trained here (cached)."""
    from dataclasses import replace

    from hetero.data import load_split
    from hetero.models import load_cloud, save_cloud
    from hetero.pipeline import train_cloud
    from hetero.search_spaces import get_space
    from hetero.training import CLOUD_COMMAND_DEFAULTS

    if cloud_dir:
        return load_cloud(cloud_dir)
    folder = work / f"omniglot-cloud-{steps}"
    if not (folder / "cloud.pt").is_file():
        arch = {**get_space("resnet").default_arch(),
                "resolution": 28, "s0_depth": 1, "s1_depth": 1, "s2_depth": 1, "s3_depth": 1}
        split = load_split(f"omniglot:{OMNIGLOT}", seed=0, size=28)
        t = time.perf_counter()
        save_cloud(train_cloud(split.train, arch, DIM, replace(CLOUD_COMMAND_DEFAULTS, min_steps=steps), seed=0), folder)
        print(f"omniglot cloud: {steps} steps on {len(split.train.labels)} images in {time.perf_counter() - t:.0f} s", flush=True)
    return load_cloud(folder)


def make_omniglot_set(work: Path, n: int, queries: int, cloud_dir: str | None = None, seed: int = 0) -> Path:
    """Write ``n`` cloud embeddings of augmented Omniglot views, their labels, and the queries' embeddings."""
    import torch

    from hetero.data import draw_params, load_data, render

    folder = work / f"g{n}-omniglot"
    if (folder / "done").is_file():
        return folder
    cloud = _omniglot_cloud(work, cloud_dir)
    data = load_data(f"omniglot:{OMNIGLOT}", size=28)
    rng = np.random.default_rng(seed)
    held = np.zeros(len(data.labels), dtype=bool)
    for c in np.unique(data.labels):
        held[rng.permutation(np.flatnonzero(data.labels == c))[:QUERY_IMAGES_PER_CLASS]] = True
    sources = np.flatnonzero(~held)
    images = torch.from_numpy(np.asarray(data.images, dtype=np.float32))
    generator = torch.Generator().manual_seed(seed)
    folder.mkdir(parents=True, exist_ok=True)

    def embed_views(picks: np.ndarray) -> np.ndarray:
        batch = images[torch.from_numpy(picks)]
        return cloud.embed(render(batch, draw_params("glyph", len(picks), generator)).numpy())

    out = None
    t = time.perf_counter()
    for s in range(0, n, _EMBED_ROWS):
        e = min(n, s + _EMBED_ROWS)
        emb = embed_views(sources[np.arange(s, e) % len(sources)])  # view k of every source, k = 0, 1, ...
        if out is None:
            out = np.lib.format.open_memmap(folder / "embeddings.npy", mode="w+", dtype=np.float32, shape=(n, emb.shape[1]))
        out[s:e] = _unit(emb)
        print(f"\r  embedded {e:,} of {n:,} gallery views ({time.perf_counter() - t:.0f} s)", end="", flush=True)
    print(flush=True)
    assert out is not None
    out.flush()
    del out
    np.save(folder / "labels.npy", data.labels[sources[np.arange(n) % len(sources)]].astype(np.int64))
    q_sources = rng.permutation(np.flatnonzero(held))[:queries]
    np.save(folder / "queries.npy", _unit(embed_views(q_sources)))
    np.save(folder / "query_labels.npy", data.labels[q_sources].astype(np.int64))
    (folder / "done").write_text("ok")
    return folder


def peak_rss_mib() -> float:
    """This process's peak resident memory in MiB.

    Linux's ``VmHWM`` (the address space's high-water mark, new at ``exec``) where there is one:
    ``getrusage``'s ``ru_maxrss`` survives ``exec``, so a worker started by a parent that had
    embedded a large gallery would report the parent's peak as its own.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class _Tick:
    """Appends progress (pairs scored, seconds, peak memory) to a file at most once a minute."""

    def __init__(self, path: str | None, total: int) -> None:
        self.path, self.total, self.done = path, total, 0
        self.start = self.last = time.perf_counter()

    def __call__(self, pairs: int) -> None:
        self.done += pairs
        now = time.perf_counter()
        if self.path and now - self.last > 60:
            self.last = now
            peak = peak_rss_mib()
            with open(self.path, "a") as f:
                f.write(json.dumps({"pairs": self.done, "of": self.total, "seconds": now - self.start, "peak_rss_mib": peak}) + "\n")


def worker(method: str, folder: Path, queries: int, metrics: bool, progress_file: str | None = None) -> dict | list[dict]:
    """One method in this process: build, search, peak memory; exact writes the reference top-k.

    An approximate index is built once and searched with each of its ``SWEEP`` settings (one row each).
    """
    from hetero.index import build_faiss, exact_search, recall_at_k, search_faiss
    from hetero.index._faiss import set_search_params

    gallery = np.load(folder / "embeddings.npy", mmap_mode="r")
    q = np.load(folder / "queries.npy")[:queries]
    ql = np.load(folder / "query_labels.npy")[:queries]
    row: dict = {"method": method, "items": len(gallery), "queries": len(q)}
    if method == "exact":
        labels = np.load(folder / "labels.npy") if metrics else None
        t = time.perf_counter()
        result = exact_search(q, gallery, ql if metrics else None, labels, k=K,
                              progress=_Tick(progress_file, len(q) * len(gallery)))
        row["search_s"] = time.perf_counter() - t
        row["build_s"] = 0.0
        row.update(result.summary())
        np.save(folder / f"exact_top{K}_{len(q)}.npy", result.top_k)
    else:
        t = time.perf_counter()
        index, used = build_faiss(gallery, method, {})
        build_s = time.perf_counter() - t
        exact = np.load(folder / f"exact_top{K}_{len(q)}.npy")
        rows = []
        name, values = SWEEP.get(method, (None, (None,)))
        for value in values:
            params = dict(used)
            if value is not None:
                if method == "ivf" and value > used["nlist"]:
                    continue
                params[name] = value
            set_search_params(index, method, params)
            t = time.perf_counter()
            _, found = search_faiss(index, q, K)
            search_s = time.perf_counter() - t
            rows.append({**row, "build_s": build_s, "params": params, "search_s": search_s,
                         "queries_per_s": len(q) / max(search_s, 1e-9), "recall_at_1": recall_at_k(found, exact, 1),
                         "recall_at_10": recall_at_k(found, exact, K),
                         "peak_rss_mib": peak_rss_mib()})
        return rows
    row["queries_per_s"] = len(q) / max(row["search_s"], 1e-9)
    row["peak_rss_mib"] = peak_rss_mib()
    return row


def _run_worker(method: str, folder: Path, queries: int, metrics: bool, timeout: float) -> list[dict]:
    cmd = [sys.executable, __file__, "--worker", method, "--folder", str(folder), "--queries", str(queries)]
    if not metrics:
        cmd.append("--no-metrics")
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=True)
    except subprocess.TimeoutExpired:
        return [{"method": method, "error": f"over {timeout:.0f} s"}]
    except subprocess.CalledProcessError as exc:
        return [{"method": method, "error": exc.stderr.strip().splitlines()[-1] if exc.stderr.strip() else "failed"}]
    rows = json.loads(done.stdout.strip().splitlines()[-1])
    return rows if isinstance(rows, list) else [rows]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="10000,100000,1000000")
    p.add_argument("--queries", default="10000,10000,2000", help="queries per size (comma list)")
    p.add_argument("--methods", default="exact,flat,ivf,hnsw")
    p.add_argument("--work", default="/tmp/hetero-scale")
    p.add_argument("--timeout", type=float, default=1800)
    p.add_argument("--noise", type=float, default=NOISE, help=f"spread of a class around its centre (default {NOISE})")
    p.add_argument("--source", choices=("synthetic", "omniglot"), default="synthetic",
                   help="the gallery: a synthetic clustered set, or real cloud embeddings of augmented Omniglot views")
    p.add_argument("--cloud", default=None, metavar="DIR",
                   help="with --source omniglot: the cloud that embeds it (default: a small one trained here)")
    p.add_argument("--out", default=None,
                   help="append each row as a JSON line here (benchmarks/tables.py record scale OUT adds them to the README)")
    p.add_argument("--worker", default=None)
    p.add_argument("--folder", default=None)
    p.add_argument("--no-metrics", action="store_true", help="exact: top-k only (no labels, no mAP)")
    p.add_argument("--progress-file", default=None, help="with --worker exact: progress and peak memory, once a minute")
    args = p.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, Path(args.folder), int(args.queries), not args.no_metrics, args.progress_file)))
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    counts = [int(s) for s in args.queries.split(",")]
    methods = args.methods.split(",")
    what = (f"dim {DIM}; {PER_CLASS} items a class; noise {args.noise}" if args.source == "synthetic" else
            "real cloud embeddings of augmented Omniglot views")
    print(f"threads {os.environ.get('HETERO_THREADS', '1')}; {what}; work {args.work}")
    header = f"{'items':>8} {'queries':>7} {'method':>6} {'setting':>14} {'build s':>8} {'search s':>9} {'q/s':>9} {'x exact':>8} " \
             f"{'R@1':>6} {'R@10':>6} {'mAP':>6} {'peak MiB':>9}"
    print(header)
    for n, nq in zip(sizes, counts):
        if args.source == "omniglot":
            folder = make_omniglot_set(Path(args.work), n, max(counts), args.cloud)
        else:
            folder = make_set(Path(args.work), n, max(counts), noise=args.noise)
        exact_qps = None
        gallery = f"synthetic noise {args.noise:g}" if args.source == "synthetic" else "omniglot cloud embeddings"
        for method, row in ((m, r) for m in methods for r in _run_worker(m, folder, nq, True, args.timeout)):
            row.update(items=n, queries=nq, gallery=gallery)
            if method == "exact" and "queries_per_s" in row:
                exact_qps = row["queries_per_s"]
            if exact_qps and "queries_per_s" in row:
                row["x_exact"] = row["queries_per_s"] / exact_qps
            if args.out:
                with open(args.out, "a") as f:
                    f.write(json.dumps(row) + "\n")
            if "error" in row:
                print(f"{n:>8} {nq:>7} {method:>6} {row['error']}", flush=True)
                continue
            f = lambda key, fmt, row=row: format(row[key], fmt) if row.get(key) is not None else "-"  # noqa: E731
            setting = ",".join(f"{k}={v}" for k, v in (row.get("params") or {}).items() if k in ("nprobe", "ef_search"))
            print(f"{n:>8} {nq:>7} {method:>6} {setting or '-':>14} {f('build_s', '8.1f')} {f('search_s', '9.2f')} {f('queries_per_s', '9.1f')} "
                  f"{f('x_exact', '8.1f')} {f('recall_at_1', '6.3f')} {f('recall_at_10', '6.3f')} {f('map', '6.3f')} "
                  f"{f('peak_rss_mib', '9.0f')}", flush=True)


if __name__ == "__main__":
    main()
