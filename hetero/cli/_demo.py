"""`hetero demo`: the whole pipeline on the embedded digits data, in a few minutes on a CPU.

digits -> cloud train -> edge train -> export (ONNX) -> bench. Each stage's output is kept under
``--out``; running the demo again reuses every stage whose inputs have not changed.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TypedDict

from hetero._io import read_json
from hetero.cli._common import COMMANDS

__all__ = ["register", "DEMO_EDGE", "DEMO_CLOUD_EPOCHS"]

DEMO_CLOUD_EPOCHS = 12


class _DemoEdge(TypedDict):
    """The :class:`hetero.training.TrainConfig` fields the demo's edge training sets."""

    epochs: int
    alignment: float
    contrastive: float


#: The demo's edge training: longer than the default, since digits has only ~1,260 training images.
DEMO_EDGE: _DemoEdge = {"epochs": 30, "alignment": 4.0, "contrastive": 1.0}


@COMMANDS.register("demo")
def register(sub, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "demo",
        parents=[common],
        help="run the whole pipeline on the embedded digits data",
        description=(
            "digits -> train a cloud model -> train a compatible edge model -> export for a device -> "
            "benchmark on the device's runtime. Ends with the table of paragon / homogeneous edge / "
            "cross (torch) / cross (runtime). Re-running reuses finished stages."
        ),
    )
    p.add_argument("--out", default="hetero-demo", metavar="DIR", help="working folder (default ./hetero-demo)")
    p.add_argument("--data", default="digits", metavar="SPEC", help="data SPEC (default digits)")
    p.add_argument("--device", default="x86-server", metavar="NAME", help="device profile to export for (default x86-server, ONNX fp32)")
    p.add_argument("--fresh", action="store_true", help="redo every stage instead of reusing finished ones")
    p.set_defaults(run=_run, command="demo")


def _run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from hetero.bench import bench_artifact, load_artifact
    from hetero.cli._export import print_manifest
    from hetero.data import load_split
    from hetero.models import load_cloud
    from hetero.runtime import resolve_device
    from hetero.search_spaces import get_space
    from hetero.stages import export_for_device, file_sha, run_stage, train_cloud_stage, train_edge_stage
    from hetero.training import CLOUD_DEFAULTS, EDGE_DEFAULTS

    out = Path(args.out)
    device = resolve_device(args.accelerator)
    t0 = time.perf_counter()
    split = load_split(args.data, seed=args.seed)
    print(split.line())
    base = {"data": args.data, "seed": args.seed}
    cloud_arch = get_space("resnet").default_arch()
    cloud_cfg = replace(CLOUD_DEFAULTS, epochs=DEMO_CLOUD_EPOCHS)
    edge_arch = get_space("mobilenet_v3").smallest_arch()
    edge_cfg = replace(EDGE_DEFAULTS, **DEMO_EDGE)

    cloud_key = {**base, "arch": cloud_arch, "train": cloud_cfg.to_dict()}

    def cloud_work() -> None:
        train_cloud_stage(split.train, split.test, cloud_arch, 128, cloud_cfg, device, args.seed, out / "cloud", cloud_key,
                          meta={"split": split.describe()}, fresh=args.fresh)

    run_stage(out / "cloud", cloud_key, "cloud.pt", args.fresh, cloud_work, "cloud train")
    cloud = load_cloud(out / "cloud")

    edge_key = {**base, "cloud": cloud.fingerprint, "arch": edge_arch, "train": edge_cfg.to_dict()}

    def edge_work() -> None:
        train_edge_stage(cloud, split, edge_arch, edge_cfg, device, args.seed, out / "edge", edge_key, fresh=args.fresh)

    run_stage(out / "edge", edge_key, "edge.pt", args.fresh, edge_work, "edge train")

    artifact_dir = out / f"export-{args.device}"
    manifest_box: dict = {}

    def export_work() -> None:
        manifest_box["m"] = export_for_device(out / "edge", args.device, artifact_dir, args.data, None, args.seed, cloud)

    export_key = {**edge_key, "device": args.device, "edge_sha": file_sha(out / "edge" / "edge.pt")}
    run_stage(artifact_dir, export_key, "manifest.json", args.fresh, export_work, "export")
    print_manifest(manifest_box.get("m") or read_json(artifact_dir / "manifest.json"))

    bench_dir = out / "bench"
    run_stage(
        bench_dir,
        {**export_key, "manifest_sha": file_sha(artifact_dir / "manifest.json")},
        "report.json",
        args.fresh,
        lambda: bench_artifact(load_artifact(artifact_dir, cloud), cloud, split.test, bench_dir, protocol=split.protocol, seed=args.seed),
        "bench",
    )
    _print_summary(read_json(bench_dir / "report.json"), bench_dir, time.perf_counter() - t0)
    return 0


def _print_summary(report: dict, bench_dir: Path, seconds: float) -> None:
    from hetero.cli._common import print_table

    r = report["retrieval"]
    names = [("paragon", "paragon (cloud -> cloud)"), ("homogeneous_edge", "homogeneous edge (edge -> edge)"),
             ("cross_torch", "cross, PyTorch (edge -> cloud)"), ("cross_runtime", f"cross, {report['backend']} {report['precision']} (edge -> cloud)")]
    print()
    print_table(["search", "top-1", "top-5", "mAP", "mAP@R"], [[label, *(r[k][m] for m in ("top1", "top5", "map", "map_at_r"))] for k, label in names])
    print()
    print(f"cost: cloud {report['cloud']['macs'] / 1e6:.2f} MMACs, edge {report['edge']['macs'] / 1e6:.3f} MMACs "
          f"-> edge is {report['cost_ratio']:.1f}x cheaper")
    gap = "n/a" if report.get("gap_closed") is None else f"{report['gap_closed']:.3f}"
    print(f"cross (runtime) mAP is {r['cross_runtime']['map'] / r['paragon']['map']:.3f} of the paragon's; gap closed {gap}")
    print(f"parity {report['backend']} vs PyTorch: cos min {report['parity']['cos_min']:.6f}, top-1 agreement {report['parity']['top1_agreement']:.4f} "
          f"(same image {report['parity']['top1_item_agreement']:.4f})")
    print(f"compatible: {report['compatible']}; collapsed: {report.get('collapsed')}; status: {report.get('status', 'n/a')}")
    print(f"report: {bench_dir / 'report.md'}  ({seconds:.0f} s in all)")
