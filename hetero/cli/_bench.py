"""`hetero bench`: the artifact on its runtime against the cloud-indexed gallery."""

from __future__ import annotations

import argparse

from hetero.cli._common import add_data_options, split_from_args

__all__ = ["register"]


def register(sub, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "bench",
        parents=[common],
        help="benchmark an artifact on its runtime: retrieval, parity, latency",
        description=(
            "Embed the test queries with the artifact's runtime and search the cloud model's gallery. Writes "
            "DIR/report.json, DIR/report.md and the embeddings (queries_runtime.npy, queries_torch.npy, "
            "gallery_cloud.npy, labels.npy)."
        ),
    )
    p.add_argument("--artifact", required=True, metavar="DIR", help="a folder written by hetero export")
    p.add_argument("--cloud", required=True, metavar="DIR", help="the cloud model the gallery was indexed with")
    add_data_options(p)
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--threads", type=int, default=None, help="runtime threads (default: the device profile's)")
    p.set_defaults(run=_run, command="bench")


def _run(args: argparse.Namespace) -> int:
    from hetero.bench import bench_artifact, load_artifact, retrieval_table
    from hetero.models import load_cloud

    cloud = load_cloud(args.cloud)
    inputs = load_artifact(args.artifact, cloud)
    split = split_from_args(args)
    report = bench_artifact(inputs, cloud, split.test, args.out, threads=args.threads)
    print(retrieval_table(report["retrieval"]))
    print(f"compatible: {report['compatible']}; gap closed {report['gap_closed']:.3f}; "
          f"parity cos min {report['parity']['cos_min']:.6f}; report in {args.out}/report.md")
    return 0
