"""Backward-compatible cloud-model updates on Omniglot: independent vs BCT vs BCT + focal distillation.

The old cloud model is a small ResNet trained on part of the training classes (BCT's setting: the
new model sees more data and has more capacity). Each new model is a larger ResNet trained on all
training classes:

- ``independent``: its own metric loss only (``hetero cloud train``);
- ``bct``: plus BCT's influence loss through the old model's frozen classifier (class-mean
  prototypes of the old embeddings, since the old head does not know half the classes);
- ``bct+focal``: plus focal distillation from the old model (distil more where it is right;
  PCT's alpha 1, beta 5, through the old classifier, weight 0.3).

For each update, on Omniglot's 659 unseen test classes (every test image a query against all the
others): M(new,new), M(new→old), the criterion M(new→old) > M(old,old), the update gap closed and
the negative flips of top-1 retrieval against the old model (new→old and new→new vs old→old).
Each update's check is written as a `hetero update-check` folder under --out, and the flips of the
``bct+focal`` update are grouped into an HTML page (`hetero flips`).

Run: ``python benchmarks/updates.py`` (defaults sized for ~15 min on two CPU cores). Trained
models are kept under --out and reused when re-run with the same settings.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from hetero._io import read_json, write_json
from hetero._table import print_table
from hetero.data import Dataset, load_split
from hetero.flips import analyse_flips, load_flip_source, write_flips
from hetero.models import CloudModel, load_cloud, save_cloud
from hetero.pipeline import cloud_from_edge, train_cloud, train_edge
from hetero.runtime import resolve_device, seed_everything
from hetero.training import CLOUD_DEFAULTS, CloudTargets
from hetero.updates import check_update, model_record, write_update_report

OLD_ARCH = {"space": "resnet", "resolution": 24, **{f"s{i}_depth": 1 for i in range(4)},
            "s0_width": 16, "s1_width": 32, "s2_width": 64, "s3_width": 128}
NEW_ARCH = {"space": "resnet", "resolution": 24, **{f"s{i}_depth": 1 for i in range(4)},
            "s0_width": 24, "s1_width": 48, "s2_width": 96, "s3_width": 192}


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="omniglot:../shared/data/omniglot", help="data SPEC (default Omniglot)")
    p.add_argument("--out", default="bench-updates", help="working folder (models, update-check reports)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--old-classes", type=float, default=0.5, help="share of the training classes the old model sees")
    p.add_argument("--old-epochs", type=int, default=3)
    p.add_argument("--epochs", type=int, default=3, help="epochs of each new model")
    p.add_argument("--influence", type=float, default=1.0, help="BCT influence-loss weight")
    p.add_argument("--focal", type=float, default=0.3, help="focal distillation weight")
    p.add_argument("--focal-alpha", type=float, default=1.0)
    p.add_argument("--focal-beta", type=float, default=5.0)
    p.add_argument("--focal-temperature", type=float, default=1.0)
    p.add_argument("--focal-head", default="reference", choices=("reference", "own"))
    p.add_argument("--variants", default="independent,bct,bct+focal", help="comma-separated updates to train")
    p.add_argument("--accelerator", default="auto")
    return p.parse_args(argv)


def _cached(folder: Path, key: dict, make) -> CloudModel:
    """Load ``folder/cloud.pt`` if it was trained with ``key``, else train it with ``make``."""
    stamp = folder / "stage.json"
    if (folder / "cloud.pt").is_file() and stamp.is_file() and read_json(stamp) == key:
        print(f"[{folder.name}] reusing {folder}", flush=True)
        return load_cloud(folder)
    start = time.perf_counter()
    model = make()
    save_cloud(model, folder)
    write_json(stamp, key)
    print(f"[{folder.name}] trained in {time.perf_counter() - start:.0f} s", flush=True)
    return model


def _old_classes(train: Dataset, share: float, seed: int) -> Dataset:
    classes = np.unique(train.labels)
    keep = np.random.default_rng(seed).permutation(classes)[: max(2, int(round(share * classes.size)))]
    return train.subset(np.isin(train.labels, keep))


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    seed_everything(args.seed)
    device = resolve_device(args.accelerator)
    out = Path(args.out)
    t0 = time.perf_counter()
    split = load_split(args.data, seed=args.seed)
    train, test = split.train, split.test
    old_train = _old_classes(train, args.old_classes, args.seed)
    print(f"[data] {args.data}: {json.dumps(split.describe())}; old model trains on {old_train.num_classes} classes", flush=True)

    base = {"data": args.data, "seed": args.seed, "old_classes": args.old_classes, "old_epochs": args.old_epochs}
    old_cfg = replace(CLOUD_DEFAULTS, epochs=args.old_epochs)
    old = _cached(out / "old", {**base, "arch": OLD_ARCH}, lambda: train_cloud(old_train, OLD_ARCH, 128, old_cfg, device, args.seed))

    new_cfg = replace(CLOUD_DEFAULTS, epochs=args.epochs)
    bct_cfg = replace(new_cfg, influence=args.influence)
    focal_cfg = replace(
        bct_cfg, focal=args.focal, focal_alpha=args.focal_alpha, focal_beta=args.focal_beta,
        focal_temperature=args.focal_temperature, focal_head=args.focal_head,
    )
    targets: list[CloudTargets] = []

    def compatible(config):
        def make() -> CloudModel:
            if not targets:  # the old model's pass over the training images, shared by the updates
                targets.append(CloudTargets.from_cloud(old, train.images, train.labels, config.prototype_temperature))
            edge = train_edge(old, train, NEW_ARCH, config, device, args.seed, targets=targets[0])
            return cloud_from_edge(edge, train)

        return make

    makers = {
        "independent": (new_cfg, lambda: train_cloud(train, NEW_ARCH, 128, new_cfg, device, args.seed)),
        "bct": (bct_cfg, compatible(bct_cfg)),
        "bct+focal": (focal_cfg, compatible(focal_cfg)),
    }
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = set(variants) - set(makers)
    if unknown:
        raise SystemExit(f"unknown --variants {sorted(unknown)}; use {', '.join(makers)}")

    reference = None
    rows, results, records = [], {}, []
    for name in variants:
        config, make = makers[name]
        new = _cached(out / name, {**base, "arch": NEW_ARCH, "train": config.to_dict(), "old": old.fingerprint}, make)
        check = check_update(old, new, test, reference)
        reference = check.reference
        report = write_update_report(check, model_record(old, out / "old"), model_record(new, out / name), split, out / f"check-{name}")
        r, f = report["retrieval"], report["flips"]["retrieval"]
        results[name] = report
        rows.append([
            name, r["new_new"]["top1"], r["new_new"]["map"], r["new_old"]["top1"], r["new_old"]["map"],
            str(report["compatible"]), report["update_gap_closed"],
            f["new_old_vs_old_old"]["nfr"], f["new_new_vs_old_old"]["nfr"], f["new_new_vs_old_old"]["nfi"],
        ])
        # One flat row per update, for `python benchmarks/tables.py record updates OUT/results.json`.
        records.append({
            "data": args.data.split(":", 1)[0], "seed": args.seed, "old_classes": args.old_classes, "old_epochs": args.old_epochs,
            "epochs": args.epochs, "update": name, "new_new_top1": r["new_new"]["top1"], "new_new_map": r["new_new"]["map"],
            "new_old_top1": r["new_old"]["top1"], "new_old_map": r["new_old"]["map"], "compatible": report["compatible"],
            "gap_closed": report["update_gap_closed"], "nfr_new_old": f["new_old_vs_old_old"]["nfr"],
            "nfr_new_new": f["new_new_vs_old_old"]["nfr"], "nfi_new_new": f["new_new_vs_old_old"]["nfi"],
            "old_old_top1": reference[1].top1 if reference else None, "old_old_map": reference[1].map if reference else None,
        })

    old_row = reference[1] if reference else None
    print()
    if old_row is not None:
        print(f"old model ({model_record(old, out / 'old')['macs']:,} MACs, {old_train.num_classes} training classes): "
              f"M(old,old) top-1 {old_row.top1:.4f}, mAP {old_row.map:.4f}")
    print(f"new models: {model_record(new, out / name)['macs']:,} MACs, {train.num_classes} training classes, "
          f"{args.epochs} epochs; focal alpha {args.focal_alpha}, beta {args.focal_beta}, T {args.focal_temperature}, weight {args.focal}")
    print_table(
        ["update", "new,new top-1", "new,new mAP", "new->old top-1", "new->old mAP", "compatible", "gap closed",
         "NFR new->old", "NFR new->new", "NFI new->new"],
        rows,
    )
    print("NFR x->y: share of test queries whose top-1 retrieval is right old->old and wrong x->y; "
          "compatible: M(new->old) > M(old,old) on mAP")

    if "bct+focal" in results:
        source = load_flip_source(out / "check-bct+focal")
        analysis = analyse_flips(source, seed=args.seed)
        _, html = write_flips(analysis, source, out / "check-bct+focal", test.images)
        sizes = [len(analysis.group_members(g)) for g in range(analysis.groups.k)]
        print(f"flips of bct+focal (new->old vs old->old): {analysis.summary['flips']} in {analysis.groups.k} groups {sizes}: {html}")
    write_json(out / "results.json", {"settings": vars(args), "rows": records, "updates": results})
    print(f"total {time.perf_counter() - t0:.0f} s; reports under {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
