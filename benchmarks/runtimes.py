"""One edge model on PyTorch eager, ONNX Runtime and LiteRT at fp32 / fp16 / int8 (Omniglot, open-set).

For each runtime and precision: cross mAP of the runtime's query embeddings against the cloud
model's gallery, parity with PyTorch, and latency at batch 1 and a larger batch as a ratio to
PyTorch eager. The latencies are measured in one process, in interleaved rounds (every runtime
once per round, in a rotating order), and each ratio is the median over rounds of the paired
ratio, so a load change on a shared machine moves numerator and denominator together.

The cloud and edge models are trained here with hetero.pipeline (a few epochs, cached in
``--work``) unless ``--cloud`` and ``--model`` are given.

    python benchmarks/runtimes.py [--data omniglot:../shared/data/omniglot] [--work DIR] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RUNTIMES = [(backend, precision) for backend in ("onnx", "tflite") for precision in ("fp32", "fp16", "int8")]


def _models(args, split, work: Path) -> tuple[Path, Path]:
    """The cloud folder and the edge folder: given, or trained (and cached) here."""
    import torch

    from hetero.models import load_cloud, save_cloud, save_edge
    from hetero.pipeline import train_cloud, train_edge
    from hetero.search_spaces import get_space
    from hetero.stages import run_stage
    from hetero.training import CLOUD_DEFAULTS, EDGE_DEFAULTS

    if args.cloud and args.model:
        return Path(args.cloud), Path(args.model)
    cpu = torch.device("cpu")
    base = {"data": args.data, "seed": args.seed}
    cloud_arch, cloud_cfg = get_space("resnet").smallest_arch(), replace(CLOUD_DEFAULTS, epochs=args.cloud_epochs)
    cloud_dir = Path(args.cloud) if args.cloud else work / "cloud"
    if not args.cloud:
        run_stage(cloud_dir, {**base, "arch": cloud_arch, "train": cloud_cfg.to_dict()}, "cloud.pt", False,
               lambda: save_cloud(train_cloud(split.train, cloud_arch, 128, cloud_cfg, cpu, args.seed), cloud_dir), "cloud train")
    cloud = load_cloud(cloud_dir)
    edge_arch = get_space("mobilenet_v3").smallest_arch()
    edge_cfg = replace(EDGE_DEFAULTS, epochs=args.edge_epochs, alignment=4.0, contrastive=1.0)
    edge_dir = work / "edge"

    def build_edge() -> None:
        edge = train_edge(cloud, split.train, edge_arch, edge_cfg, cpu, args.seed)
        edge.meta["split"] = split.describe()
        save_edge(edge, edge_dir)

    run_stage(edge_dir, {**base, "cloud": cloud.fingerprint, "arch": edge_arch, "train": edge_cfg.to_dict()}, "edge.pt", False,
           build_edge, "edge train")
    return cloud_dir, edge_dir


def _profiles(work: Path, threads: int, batch: int) -> list[str]:
    """One device profile per runtime and precision (profiles are TOML files; hetero reads them as any user's)."""
    from hetero._io import write_text

    paths = []
    for backend, precision in RUNTIMES:
        path = work / "profiles" / f"{backend}-{precision}.toml"
        write_text(path, f'name = "{backend}-{precision}"\ndescription = "benchmark: {backend} {precision}"\n'
                         f'backend = "{backend}"\nprecision = "{precision}"\nthreads = {threads}\nbatch_sizes = [1, {batch}]\n')
        paths.append(str(path))
    return paths


def _paired_latency(runners: dict, inputs: dict, batch: int, threads: int, rounds: int, repeats: int) -> dict:
    """p50 per runner and batch (median over rounds) and the median paired ratio to PyTorch eager."""
    from hetero.bench import measure_batches

    names = list(runners)
    p50 = {n: {1: [], batch: []} for n in names}
    for r in range(rounds):
        for name in names[r % len(names):] + names[: r % len(names)]:
            for fig in measure_batches(runners[name], inputs[name], (batch,), threads, warmup=3, repeats=repeats):
                p50[name][fig["batch"]].append(fig["p50"])
    eager = p50["pytorch eager"]
    return {
        n: {b: {"p50_ms": float(np.median(v)), "ratio": float(np.median(np.asarray(v) / np.asarray(eager[b])))}
            for b, v in p50[n].items()}
        for n in names
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=f"omniglot:{REPO.parent / 'shared' / 'data' / 'omniglot'}")
    parser.add_argument("--work", default=str(REPO / "runs" / "runtimes"), help="cache for models, artifacts and results")
    parser.add_argument("--cloud", help="a trained cloud model folder (default: train one here)")
    parser.add_argument("--model", help="a trained edge model (edge.pt or folder) for --cloud (default: train one here)")
    parser.add_argument("--cloud-epochs", type=int, default=3)
    parser.add_argument("--edge-epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="threads of every runtime and of PyTorch (default 1)")
    parser.add_argument("--batch", type=int, default=32, help="the larger batch timed besides batch 1")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved latency rounds")
    parser.add_argument("--repeats", type=int, default=20, help="timed runs per runtime, batch and round")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import torch

    from hetero.bench import TorchRunner, bench_devices, load_artifact, query_inputs
    from hetero.data import load_split
    from hetero.devices.runtimes import get_runtime
    from hetero.models import load_cloud, load_edge
    from hetero.runtime import seed_everything, set_quiet

    seed_everything(args.seed)
    set_quiet(True)
    torch.set_num_threads(args.threads)
    work = Path(args.work)
    t0 = time.perf_counter()
    split = load_split(args.data, seed=args.seed)
    print(f"data {args.data}: {json.dumps(split.describe())}", flush=True)
    cloud_dir, edge_dir = _models(args, split, work)
    cloud = load_cloud(cloud_dir)
    rows = bench_devices(edge_dir, cloud, split, _profiles(work, args.threads, args.batch), work / "bench",
                         gallery_dir=work / "gallery", threads=args.threads, batch_sizes=(args.batch,), warmup=3, repeats=10)
    edge = load_edge(edge_dir)
    runners = {"pytorch eager": TorchRunner(edge.net)}
    inputs = {"pytorch eager": query_inputs(edge.preprocess, split.test.images[:256])}
    for row in rows:
        if row.get("cross_map_runtime") is None:
            continue
        art = load_artifact(work / "bench" / row["device"] / "artifact", cloud)
        runners[row["device"]] = get_runtime(art.runtime).load(art.artifact, threads=args.threads)
        inputs[row["device"]] = query_inputs(art.preprocess, split.test.images[:256])
    latency = _paired_latency(runners, inputs, args.batch, args.threads, args.rounds, args.repeats)

    reports = {r["device"]: json.loads((work / "bench" / r["device"] / "report.json").read_text())
               for r in rows if r.get("cross_map_runtime") is not None}
    any_report = next(iter(reports.values()))
    retrieval = any_report["retrieval"]
    print(f"\n{split.test.spec}: {any_report['data']['queries']} queries against the cloud gallery "
          f"({any_report['data']['protocol']}-set); paragon mAP {retrieval['paragon']['map']:.4f}, "
          f"homogeneous edge mAP {retrieval['homogeneous_edge']['map']:.4f}; {args.threads} thread(s) everywhere")
    b = args.batch
    header = f"{'runtime':<22}{'prec':<6}{'cross mAP':>10}{'cos min':>11}{'top-1 agr':>10}{'same img':>10}{'NFR':>8}" \
             f"{'p50 b1 ms':>11}{'x eager':>9}{f'p50 b{b} ms':>12}{'x eager':>9}{'bytes':>10}  status"
    print(header)
    print("-" * len(header))
    eager = latency["pytorch eager"]
    print(f"{'pytorch eager':<22}{'fp32':<6}{retrieval['cross_torch']['map']:>10.4f}{'':>11}{'':>10}{'':>10}{'':>8}"
          f"{eager[1]['p50_ms']:>11.3f}{1.0:>9.3f}{eager[b]['p50_ms']:>12.3f}{1.0:>9.3f}{'':>10}")
    for row in rows:
        lat = latency.get(row["device"])
        if lat is None:
            print(f"{row['device']:<22}{row['precision']:<6}  not run: {row['status']}")
            continue
        print(f"{row['backend']:<22}{row['precision']:<6}{row['cross_map_runtime']:>10.4f}{row['cos_min']:>11.7f}"
              f"{row['top1_agreement']:>10.4f}{row['top1_item_agreement']:>10.4f}{row['nfr']:>8.4f}{lat[1]['p50_ms']:>11.3f}{lat[1]['ratio']:>9.3f}"
              f"{lat[b]['p50_ms']:>12.3f}{lat[b]['ratio']:>9.3f}{row['artifact_bytes']:>10,}  {row['status']}")
    from hetero._io import write_json

    # One flat row per runtime (eager first), latency merged in, for `python benchmarks/tables.py record runtimes`.
    data = args.data.split(":", 1)[0]
    common = {"data": data, "threads": args.threads, "batch": b, "edge_epochs": args.edge_epochs, "queries": any_report["data"]["queries"]}
    table = [{**common, "device": "pytorch eager", "backend": "pytorch eager", "precision": "fp32",
              "cross_map_runtime": retrieval["cross_torch"]["map"], "p50_b1_ms": eager[1]["p50_ms"], "ratio_b1": 1.0,
              "p50_batch_ms": eager[b]["p50_ms"], "ratio_batch": 1.0}]
    for row in rows:
        lat = latency.get(row["device"])
        timing = {} if lat is None else {"p50_b1_ms": lat[1]["p50_ms"], "ratio_b1": lat[1]["ratio"],
                                         "p50_batch_ms": lat[b]["p50_ms"], "ratio_batch": lat[b]["ratio"]}
        table.append({**common, **row, **timing})
    write_json(work / "runtimes.json", {"rows": table, "latency": {n: {str(k): v for k, v in d.items()} for n, d in latency.items()},
                                        "threads": args.threads, "batch": b, "rounds": args.rounds, "repeats": args.repeats})
    print(f"\n{time.perf_counter() - t0:.0f} s in all; comparison page {work / 'bench' / 'index.html'}; figures {work / 'runtimes.json'}")


if __name__ == "__main__":
    main()
