"""`hetero bench`: the artifact on its runtime against the cloud-indexed gallery.

Four ways in: one artifact run here (``--artifact``); every device at once (``--device all``);
queries for a real device (``--artifact --export-inputs``); and the report from the embeddings
that device made (``--artifact --embeddings [--latency]``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from hetero.cli._common import COMMANDS, Outcome, add_data_options, add_result_options, gate_failures, split_from_args
from hetero.errors import UserError

__all__ = ["register"]


@COMMANDS.register("bench")
def register(sub, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "bench",
        parents=[common],
        help="benchmark artifacts on their runtimes: retrieval, parity, latency; compare devices",
        description=(
            "Embed the test queries with the artifact's runtime and search the cloud model's gallery. Writes "
            "DIR/report.json, DIR/report.md and the embeddings (queries_runtime.npy, queries_torch.npy, "
            "gallery_cloud.npy, labels.npy). With --device all (or a comma list) and --model EDGE: export the "
            "edge model for each device profile, bench each into OUT/<device>/, and compare them in "
            "OUT/comparison.md and OUT/index.html."
        ),
    )
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--artifact", metavar="DIR", help="a folder written by hetero export")
    what.add_argument("--device", metavar="NAMES", help="'all' or a comma list of device profiles (needs --model)")
    p.add_argument("--model", metavar="EDGE", help="with --device: the edge model (edge.pt or its folder)")
    p.add_argument("--cloud", metavar="DIR", help="the cloud model the gallery is indexed with (optional with a cached --gallery)")
    add_data_options(p)
    p.add_argument("--out", metavar="DIR", help="where the report(s) go")
    p.add_argument("--gallery", metavar="DIR", help="a gallery index written by hetero index (or your own embeddings.npy + "
                   "ids.npy + manifest.json with cloud_fingerprint): the queries search it, exact metrics in bounded memory "
                   "beside faiss's top-k and its recall; otherwise a cache of the test split's cloud embeddings, reused if "
                   "built with the same cloud model and data, else built there (default with --device: OUT/gallery)")
    p.add_argument("--export-inputs", metavar="DIR", help="with --artifact: write the preprocessed queries (queries.npy, "
                   "labels.npy, inputs.json, README.md) for `python -m hetero.devices.run` on a device, and stop")
    p.add_argument("--embeddings", metavar="FILE", help="with --artifact: query embeddings made on the device by hetero.devices.run")
    p.add_argument("--latency", metavar="FILE", help="with --embeddings: the latency JSON hetero.devices.run wrote (--latency-out)")
    p.add_argument("--threads", type=int, default=None, help="runtime threads (default: the device profile's)")
    p.add_argument("--batch-sizes", metavar="N,N", default=None,
                   help="batch sizes to time besides 1 (default: the device profile's batch_sizes)")
    p.add_argument("--warmup", type=int, default=5, help="untimed runs before timing each batch size (default 5)")
    p.add_argument("--repeats", type=int, default=30, help="timed runs per batch size (default 30)")
    add_result_options(p)
    p.set_defaults(run=_run, command="bench", output_flags=("out", "export_inputs", "gallery"))


def _batch_sizes(text: str | None) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        sizes = tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        sizes = ()
    if not sizes or min(sizes) < 1:
        raise UserError(f"--batch-sizes {text!r} must be a comma list of positive integers, e.g. 1,32")
    return sizes


def _check_flags(args: argparse.Namespace) -> None:
    if args.threads is not None and args.threads < 1:
        raise UserError(f"--threads must be at least 1, got {args.threads}")
    if args.device is not None:
        from hetero.index import is_index_dir

        if args.gallery and is_index_dir(args.gallery):
            raise UserError(f"--gallery {args.gallery} is a gallery index (hetero index): bench one artifact against it "
                            "with --artifact DIR")
        stray = [f for f in ("export_inputs", "embeddings", "latency") if getattr(args, f)]
        if stray:
            raise UserError(f"--{stray[0].replace('_', '-')} works with --artifact, not --device")
        if not args.model or not args.out:
            raise UserError("--device needs --model EDGE (edge.pt or its folder) and --out DIR")
        return
    if args.model:
        raise UserError("--model is for --device; with --artifact the edge model is the artifact folder's edge.pt")
    if args.latency and not args.embeddings:
        raise UserError("--latency goes with --embeddings (latency measured on the device by hetero.devices.run)")
    if args.export_inputs and args.embeddings:
        raise UserError("--export-inputs writes the queries for the device; run hetero.devices.run there, then pass --embeddings")
    if not args.export_inputs and not args.out:
        raise UserError("pass --out DIR for the report")
    if not args.export_inputs and not (args.cloud or args.gallery):
        raise UserError("pass --cloud DIR (the cloud model) or --gallery DIR (a cached gallery index)")


def _run(args: argparse.Namespace) -> Outcome:
    from hetero.models import load_cloud

    _check_flags(args)
    batch_sizes = _batch_sizes(args.batch_sizes)
    cloud = load_cloud(args.cloud) if args.cloud else None
    split = split_from_args(args)
    if args.device is not None:
        return _run_devices(args, cloud, split, batch_sizes)
    from hetero.bench import bench_artifact, device_settings, export_inputs, load_artifact, load_gallery, retrieval_table

    inputs = load_artifact(args.artifact, cloud)
    threads = args.threads or device_settings(inputs.manifest)[0]
    if args.export_inputs:
        record = export_inputs(inputs, split.test, split.protocol, split.seed, args.export_inputs, threads)
        print(f"wrote {record['data']['queries']} queries {record['shape']} to {args.export_inputs}/queries.npy; "
              f"on the device run:\n  {record['run_on_device']}\nthen here:\n  {record['then_here']}")
        return Outcome({**record, "folder": args.export_inputs})
    from hetero.index import is_index_dir

    if args.gallery and is_index_dir(args.gallery):
        return _run_index(args, inputs, split, threads)
    gallery = None
    if args.gallery:
        gallery = load_gallery(args.gallery, split.test, split.protocol, split.seed, inputs.manifest["cloud_fingerprint"], cloud)
    runtime_queries = latency = None
    if args.embeddings:
        from hetero.bench import load_device_embeddings, read_latency

        runtime_queries = load_device_embeddings(args.embeddings, len(split.test.labels))
        latency = read_latency(args.latency) if args.latency else None
    report = bench_artifact(inputs, cloud, split.test, args.out, threads=threads, runtime_queries=runtime_queries,
                            latency=latency, warmup=args.warmup, repeats=args.repeats, gallery=gallery,
                            batch_sizes=batch_sizes, protocol=split.protocol, seed=split.seed)
    print(retrieval_table(report["retrieval"]))
    lat = report["latency_ms"]
    p50 = "n/a" if lat.get("p50") is None else f"{lat['p50']:.3f} ms"
    gap = "n/a" if report.get("gap_closed") is None else f"{report['gap_closed']:.3f}"
    print(f"{report['runtime']['label']} {report['precision']}: compatible {report['compatible']}; gap closed "
          f"{gap}; {_parity_line(report)}; p50 {p50} at batch 1 ({lat.get('threads')} threads); "
          f"report in {args.out}/report.md")
    failures = gate_failures(report)
    print(f"status: {'ok' if not failures else '; '.join(failures)}")
    return Outcome({**report, "report": str(Path(args.out) / "report.json")}, failures)


def _run_index(args: argparse.Namespace, inputs, split, threads) -> Outcome:
    """The queries against a gallery index (hetero index): exact metrics beside faiss and its recall."""
    from hetero.bench import bench_on_index, load_device_embeddings

    runtime_queries = load_device_embeddings(args.embeddings, len(split.test.labels)) if args.embeddings else None
    report = bench_on_index(inputs, split.test, args.gallery, args.out, threads=threads, runtime_queries=runtime_queries)
    g = report["gallery_index"]
    e, a = g["exact"], g["approximate"]
    figures = f"top-1 {e['top1']:.4f}, mAP {e['map']:.4f}; " if g["labelled"] else "no gallery labels, no mAP; "
    print(f"{g['queries']} queries in {g['items']} items ({g['own_images_left_out']} own images left out): exact {figures}"
          f"{e['queries_per_s']:.1f} queries/s; faiss {a['index']} {a['queries_per_s']:.1f} queries/s "
          f"({g['speedup']:.1f}x), recall@1 {g['recall_at_1']:.4f}, recall@{g['k']} {g['recall_at_' + str(g['k'])]:.4f}; "
          f"peak {g['peak_rss_mib']:.0f} MiB; report in {args.out}/report.md")
    return Outcome({**report, "report": str(Path(args.out) / "report.json")})


def _parity_line(report: dict) -> str:
    """The parity figures and their verdict against the artifact's thresholds."""
    p = report["parity"]
    verdict = {True: "PASSED", False: "MISSED", None: "not judged"}[report.get("parity_passed")]
    missed = report.get("parity_failures") or []
    return (f"parity {verdict}{' (' + '; '.join(missed) + ')' if missed else ''}: cos min {p['cos_min']:.6f}, top-1 "
            f"agreement {p['top1_agreement']:.4f} (same image {p.get('top1_item_agreement', float('nan')):.4f})")


def _run_devices(args: argparse.Namespace, cloud, split, batch_sizes) -> Outcome:
    from hetero.bench import bench_devices, select_devices
    from hetero.cli._common import print_table

    devices = select_devices(args.device)
    rows = bench_devices(Path(args.model), cloud, split, devices, args.out, gallery_dir=args.gallery, threads=args.threads,
                         batch_sizes=batch_sizes, warmup=args.warmup, repeats=args.repeats)
    from hetero.bench._markdown import format_cell

    keys = ("device", "backend", "precision", "cross_map_runtime", "cos_min", "top1_agreement", "top1_item_agreement", "nfr",
            "p50_ms", "status")
    print()
    print_table(["device", "backend", "precision", "cross mAP", "cos min", "top-1 agr", "same image", "NFR", "p50 ms", "status"],
                [[format_cell(k, r.get(k)) for k in keys] for r in rows])
    print(f"\ncomparison: {args.out}/comparison.md, {args.out}/index.html")
    # Every row must be ok: a device that could not be exported or run here is not proven either.
    failures = [f"{r['device']}: {r['status']}" for r in rows if r.get("status") != "ok"]
    return Outcome({"devices": rows, "comparison": str(Path(args.out) / "comparison.json")}, failures)
