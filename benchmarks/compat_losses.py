"""Which compatibility loss makes an edge model search the cloud gallery? (Omniglot, open-set)

One cloud model; the same edge architecture trained several ways, each keeping the edge model's own
metric loss and adding: nothing (independent), embedding alignment only, BCT influence only (through
class-mean prototypes of the cloud embeddings: the test classes are new), the structure term only
(the cloud's neighbourhoods), all of them, or `hetero train`'s edge weights as they are (defaults).
Prints paragon / homogeneous / cross mAP, mAP@R and gap closed for each; ``--out`` writes one row
per arm for ``python benchmarks/tables.py record compat_losses FILE``.

    python benchmarks/compat_losses.py [--data omniglot:../shared/data/omniglot] [--work DIR] [--cloud DIR] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

#: Each arm's compatibility weights over EDGE_DEFAULTS (every term an arm does not name is off, so
#: that "independent" is really trained alone: the defaults include the structure term).
_OFF = dict(influence=0.0, alignment=0.0, contrastive=0.0, structure=0.0)
ARMS = {
    "independent": _OFF,
    "alignment only": {**_OFF, "alignment": 4.0},
    "influence only": {**_OFF, "influence": 1.0},
    "structure only": {**_OFF, "structure": 1.0},
    "all losses": dict(influence=1.0, alignment=4.0, contrastive=1.0, structure=1.0),
    "defaults": {},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=f"omniglot:{REPO.parent / 'shared' / 'data' / 'omniglot'}")
    parser.add_argument("--work", default=str(REPO / "runs" / "compat_losses"), help="cache for the cloud model and results")
    parser.add_argument("--cloud-epochs", type=int, default=12)
    parser.add_argument("--edge-epochs", type=int, default=15)
    parser.add_argument("--edge-resolution", type=int, default=28)
    parser.add_argument("--cloud", default=None, metavar="DIR",
                        help="a trained cloud to use instead of training one into --work/cloud (the same split and seed)")
    parser.add_argument("--arms", default=",".join(ARMS), help=f"comma-separated, of: {', '.join(ARMS)}")
    parser.add_argument("--out", default=None, metavar="FILE.json", help="also write one row per arm")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--print", action="store_true", help="only print the table of the last run in --work")
    args = parser.parse_args()
    arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    if "independent" not in arms or any(a not in ARMS for a in arms):
        raise SystemExit(f"--arms {args.arms}: choose from {', '.join(ARMS)}, independent included (the table's baseline)")
    if args.print:
        print_results(json.loads((Path(args.work) / "results.json").read_text()))
        return

    from hetero.cost import count_cost
    from hetero.data import load_split
    from hetero.models import load_cloud, save_cloud
    from hetero.pipeline import evaluate_cloud, evaluate_compat, train_cloud, train_edge
    from hetero.runtime import seed_everything
    from hetero.search_spaces import get_space
    from hetero.training import CLOUD_DEFAULTS, EDGE_DEFAULTS

    seed_everything(args.seed)
    work = Path(args.work)
    split = load_split(args.data, seed=args.seed)
    print(f"data {args.data}: {split.describe()}", flush=True)
    if args.cloud is None and not (work / "cloud" / "cloud.pt").exists():
        start = time.perf_counter()
        cloud = train_cloud(split.train, get_space("resnet").default_arch(), 128, replace(CLOUD_DEFAULTS, epochs=args.cloud_epochs), seed=args.seed)
        cloud.meta["paragon"] = evaluate_cloud(cloud, split.test)
        save_cloud(cloud, work / "cloud")
        print(f"cloud trained in {time.perf_counter() - start:.0f} s", flush=True)
    cloud = load_cloud(args.cloud or work / "cloud")
    arch = {**get_space("mobilenet_v3").smallest_arch(), "resolution": args.edge_resolution}
    rows = []
    for name in arms:
        weights = ARMS[name]
        seed_everything(args.seed)
        start = time.perf_counter()
        edge = train_edge(cloud, split.train, arch, replace(EDGE_DEFAULTS, epochs=args.edge_epochs, **weights), seed=args.seed)
        summary = evaluate_compat(cloud, edge, split.test).summary()
        summary["seconds"] = time.perf_counter() - start
        rows.append((name, summary))
        print(f"{name}: cross mAP {summary['cross_torch']['map']:.4f} ({summary['seconds']:.0f} s)", flush=True)
    cloud_macs = count_cost(cloud.net, cloud.input_shape)["macs"]
    edge_macs = count_cost(edge.net, edge.input_shape)["macs"]
    results = {
        "split": split.describe(),
        "cloud_macs": cloud_macs,
        "edge_macs": edge_macs,
        "edge_resolution": args.edge_resolution,
        "edge_epochs": args.edge_epochs,
        # The cloud's own record: a --cloud given was not trained with --cloud-epochs.
        "cloud_epochs": cloud.meta.get("schedule", {}).get("epochs", args.cloud_epochs),
        "arms": dict(rows),
    }
    work.mkdir(parents=True, exist_ok=True)
    (work / "results.json").write_text(json.dumps(results, indent=2))
    print_results(results)
    if args.out:
        from hetero._io import write_json

        write_json(Path(args.out), {"rows": rows_of(results)})


def rows_of(results: dict) -> list[dict]:
    """One flat row per arm (what ``benchmarks/tables.py`` records, and what the printed table shows)."""
    arms = results["arms"]
    independent = arms["independent"]["cross_torch"]["map"]
    rows = []
    for name, s in arms.items():
        paragon, c, h = s["paragon"]["map"], s["cross_torch"], s["homogeneous_edge"]
        rows.append({
            "data": results["split"]["spec"].split(":", 1)[0], "cloud_epochs": results.get("cloud_epochs"),
            "edge_epochs": results["edge_epochs"],
            "edge_resolution": results["edge_resolution"], "arm": name, "paragon": paragon,
            "homogeneous": h["map"], "cross": c["map"], "cross_map_at_r": c["map_at_r"], "cross_top1": c["top1"],
            "gap_closed": s["gap_closed"], "cross_over_paragon": c["map"] / paragon,
            "vs_independent": (c["map"] - independent) / (paragon - independent),
            "compatible": s["compatible"], "status": s["status"],
            "macs_ratio": results["cloud_macs"] / results["edge_macs"], "seconds": s["seconds"],
        })
    return rows


def print_results(results: dict) -> None:
    """The table of the README; ``--print`` shows it again from ``results.json``."""
    arms = results["arms"]
    paragon = next(iter(arms.values()))["paragon"]
    split, cloud_macs, edge_macs = results["split"], results["cloud_macs"], results["edge_macs"]
    print()
    print(f"Omniglot open-set: {split['test_images']} test queries of {split['test_classes']} unseen classes, leave-one-out.")
    print(f"cloud: resnet {cloud_macs / 1e6:.1f} MMACs, paragon mAP {paragon['map']:.4f}, mAP@R {paragon['map_at_r']:.4f}, top-1 {paragon['top1']:.4f}")
    print(f"edge: mobilenet_v3 at {results['edge_resolution']} px, {edge_macs / 1e6:.2f} MMACs "
          f"({cloud_macs / edge_macs:.0f}x cheaper), {results['edge_epochs']} epochs")
    print()
    print("gap closed = (cross - homogeneous) / (paragon - homogeneous) as DESIGN.md defines it;")
    print("vs independent = (cross - independent cross) / (paragon - independent cross).")
    print()
    print("| training | homogeneous mAP | cross mAP | cross mAP@R | cross top-1 | gap closed | cross / paragon | vs independent |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows_of(results):
        gap = "-" if r["gap_closed"] is None else f"{r['gap_closed']:.3f}"
        print(f"| {r['arm']} | {r['homogeneous']:.4f} | {r['cross']:.4f} | {r['cross_map_at_r']:.4f} | {r['cross_top1']:.4f} | "
              f"{gap} | {r['cross_over_paragon']:.3f} | {r['vs_independent']:.3f} |")


if __name__ == "__main__":
    main()
