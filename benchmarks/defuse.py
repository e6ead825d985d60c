"""Defuse on real data (issue 18, part 2): generated failures of an edge model, their groups, their correction.

For each data set: a small cloud and a small edge model trained against it (cached in --out), then
what `hetero flips --generate --correct` runs (the same library calls): the VAE, the
perturb-decode-keep loop, the Dirichlet-process groups, and the lambda sweep of fine-tuning on the
failures of half the source images, scored on the failures of the other half and on the test split.
Prints and writes (OUT/results.json, and per set OUT/SET/defuse/ with flips.html) per set: the
failures kept, the groups, and per lambda the held-out failure accuracy and the test top-1/mAP.

Targets (issue 18): at least 3 failure groups per set, and one lambda that improves the held-out
failures by >= 20 points while the test top-1 moves by <= 1 point. The gain is reported against
the model before fine-tuning (which gets none of the failures right, by construction) and against
lambda 0, the same fine-tuning without the failures: failures near the decision boundary flip back
under any small change of the weights, so only the gain over lambda 0 is the failures' own.

Models are cached per set, --seed and steps (OUT/SET/seedS/cloud-N, edge-N), Defuse's outputs per
edge and --defuse-seed (OUT/SET/seedS/edge-N-defuseD/), so several Defuse seeds can run on the same models.

Data sets (--sets): digits (scikit-learn, 8 px, 1,258 training images) and fashion-10xN
(Fashion-MNIST from Debian's dataset-fashion-mnist, 10 classes x --fashion-per-class images, 28 px).

    HETERO_THREADS=1 python benchmarks/defuse.py --sets digits,fashion --out runs/defuse
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))  # real_data's helpers (subsets, cloud arch, --edge-config parsing)


def _models(name: str, split, work: Path, steps: int, edge_steps: int, seed: int, edge_config: dict | None = None):
    """The set's cloud (small ResNet, 28 px) and edge (mobilenet_v3's smallest), trained once into ``work``.

    ``edge_config`` overrides fields of the edge's TrainConfig (``--edge-config``); the edge's folder
    is named after them so that a cached edge is only reused with the same settings.
    """
    from real_data import cloud_arch

    from hetero.models import load_cloud, load_edge, save_cloud, save_edge
    from hetero.pipeline import evaluate_cloud, train_cloud, train_edge
    from hetero.search_spaces import get_space
    from hetero.training import CLOUD_COMMAND_DEFAULTS, EDGE_COMMAND_DEFAULTS

    cloud_dir, edge_dir = work / name / f"seed{seed}" / f"cloud-{steps}", work / name / f"seed{seed}" / _edge_name(edge_steps, edge_config)
    if not (cloud_dir / "cloud.pt").exists():
        start = time.perf_counter()
        cloud = train_cloud(split.train, cloud_arch("small"), 64, replace(CLOUD_COMMAND_DEFAULTS, min_steps=steps), seed=seed)
        cloud.meta.update(split=split.describe(), paragon=evaluate_cloud(cloud, split.test))
        save_cloud(cloud, cloud_dir)
        print(f"{name}: cloud trained in {time.perf_counter() - start:.0f} s", flush=True)
    cloud = load_cloud(cloud_dir)
    if not (edge_dir / "edge.pt").exists():
        start = time.perf_counter()
        edge = train_edge(cloud, split.train, get_space("mobilenet_v3").smallest_arch(),
                          replace(EDGE_COMMAND_DEFAULTS, min_steps=edge_steps, **(edge_config or {})), seed=seed,
                          protocol=split.protocol)
        save_edge(edge, edge_dir)
        print(f"{name}: edge trained in {time.perf_counter() - start:.0f} s", flush=True)
    return cloud, load_edge(edge_dir)


def _edge_name(edge_steps: int, edge_config: dict | None) -> str:
    """``edge-1200``, or ``edge-1200-metric0.0-val_fraction0.0`` with ``--edge-config`` overrides."""
    return "-".join([f"edge-{edge_steps}"] + [f"{k}{v}" for k, v in sorted((edge_config or {}).items())])


def _spec(name: str, work: Path, per_class: int) -> str:
    if name == "digits":
        return "digits"
    if name == "fashion":
        from real_data import _subset

        return _subset("fashion-mnist", 10, per_class, work)
    raise SystemExit(f"unknown set {name!r}: use digits or fashion")


def run_set(name: str, work: Path, args: argparse.Namespace) -> dict:
    from hetero.data import load_split
    from hetero.defuse import CorrectionSettings, DefuseSettings, VAEConfig, correct_failures, find_failures, write_defuse

    spec = _spec(name, work, args.fashion_per_class)
    split = load_split(spec, seed=args.seed, size=28)
    print(split.line(), flush=True)
    edge_steps = args.edge_steps or args.model_steps
    cloud, edge = _models(name, split, work, args.model_steps, edge_steps, args.seed, args.edge_config)
    seed = args.seed if args.defuse_seed is None else args.defuse_seed
    out = work / name / f"seed{args.seed}" / f"{_edge_name(edge_steps, args.edge_config)}-defuse{seed}"
    out.mkdir(parents=True, exist_ok=True)
    settings = DefuseSettings(sources=args.sources, samples=args.samples, noise=args.noise, max_groups=args.max_groups,
                              vae=VAEConfig(steps=args.vae_steps))
    start = time.perf_counter()
    run = find_failures(cloud, edge, split, out, settings, seed)
    found_s = time.perf_counter() - start
    start = time.perf_counter()
    lambdas = tuple(float(x) for x in args.lambdas.split(","))
    correction = correct_failures(run, cloud, edge, split, CorrectionSettings(lambdas, args.finetune_steps, args.finetune_lr),
                                  seed, out)
    correct_s = time.perf_counter() - start
    paths = write_defuse(run, split, out, correction, seed=seed)
    r = run.record
    row = {
        "set": name, "seed": args.seed, "edge_steps": edge.meta["schedule"]["steps"], "defuse_seed": seed, "spec": spec,
        **({"edge_config": args.edge_config} if args.edge_config else {}), "finetune_lr": args.finetune_lr,
        "cloud_paragon_top1": cloud.meta.get("paragon", {}).get("top1"), "train_images": len(split.train.labels), "test_images": len(split.test.labels),
        "generated": r["generation"]["generated"], "reference_accuracy": r["decisions"]["reference_accuracy"],
        "candidate_accuracy": r["decisions"]["candidate_accuracy"], "kept": r["kept"], "groups": run.groups.k,
        "group_sizes": run.groups.counts(), "active_dims": r["vae"]["active_dims"], "vae_trained_now": r["vae"]["trained_now"],
        "held_out_failures": r["holdout"]["held_out_failures"], "fit_failures": r["holdout"]["fit_failures"],
        "test_before": correction["rows"][0]["test_before"],
        "sweep": [{k: v for k, v in row.items() if k != "test_before"} for row in correction["rows"]],
        "best": correction["best"], "find_seconds": found_s, "correct_seconds": correct_s, "page": str(paths["html"]),
    }
    print(json.dumps({k: v for k, v in row.items() if k != "sweep"}), flush=True)
    return row


def print_tables(rows: list[dict]) -> None:
    from hetero._table import print_table

    print_table(["set", "seed", "generated", "cloud right", "edge right", "kept", "groups", "sizes", "active dims", "find s"],
                [[r["set"], f"{r['seed']}/{r['defuse_seed']}", r["generated"], r["reference_accuracy"], r["candidate_accuracy"], r["kept"], r["groups"],
                  ",".join(map(str, r["group_sizes"])), r["active_dims"], round(r["find_seconds"])] for r in rows])
    print()
    print_table(["set", "seed", "lambda", "held-out failure acc", "pts vs before", "pts vs lambda 0", "test top-1", "pts",
                 "test mAP", "pts", "s"],
                [[r["set"], f"{r['seed']}/{r['defuse_seed']}", s["lambda"], s["failure_accuracy"], round(s["failure_gain_points"], 1),
                  round(s["failure_gain_over_control_points"], 1), s["test_top1"], round(s["test_top1_change_points"], 2),
                  s["test_map"], round(s["test_map_change_points"], 2), round(s["seconds"])] for r in rows for s in r["sweep"]])
    print()
    for r in rows:
        b = r["best"]
        print(f"{r['set']}: groups {r['groups']} (target >= 3: {r['groups'] >= 3}); chosen lambda {b['lambda']}, "
              f"target (>= 20 pts vs before and vs lambda 0, test top-1 within 1 pt) met: {b['meets_target']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", default="digits,fashion")
    parser.add_argument("--out", default=str(REPO / "runs" / "defuse"), help="cache for models, subsets, VAEs and results")
    parser.add_argument("--fashion-per-class", type=int, default=200, help="Fashion-MNIST images per class (default 200)")
    parser.add_argument("--model-steps", type=int, default=300, help="optimizer steps of the cloud (and edge) trained here")
    parser.add_argument("--edge-steps", type=int, default=None, help="optimizer steps of the edge (default --model-steps)")
    parser.add_argument("--edge-config", action="append", default=[], metavar="FIELD=VALUE",
                        help="override a TrainConfig field of the edge trained here (repeatable), e.g. metric=0 "
                             "val_fraction=0: the losses and images the correction fine-tunes with")
    parser.add_argument("--sources", type=int, default=400)
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--noise", type=float, default=0.3)
    parser.add_argument("--max-groups", type=int, default=10)
    parser.add_argument("--vae-steps", type=int, default=800)
    parser.add_argument("--lambdas", default="0.1,0.3,0.5")
    parser.add_argument("--finetune-steps", type=int, default=200)
    parser.add_argument("--finetune-lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0, help="the data split and the models trained here")
    parser.add_argument("--defuse-seed", type=int, default=None,
                        help="Defuse's own randomness (VAE, sources, noise, hold-out, fine-tuning order; default --seed)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args()
    from real_data import parse_overrides

    args.edge_config = parse_overrides(args.edge_config)

    from hetero.runtime import seed_everything, set_quiet

    seed_everything(args.seed)
    set_quiet(args.quiet)
    work = Path(args.out)
    rows = []
    for name in args.sets.split(","):
        rows.append(run_set(name, work, args))
        # After every set: a run stopped later keeps what it measured.
        (work / "results.json").write_text(json.dumps(rows, indent=1))
    print_tables(rows)


if __name__ == "__main__":
    main()
