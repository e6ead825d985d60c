"""LQF against ordinary fine-tuning from the same model (issue 18).

Scenario per data set: a cloud model and a compatible edge model trained on the "old" classes;
new classes arrive; the edge model is fine-tuned on them (5 images per class, or all the
fine-tuning images) by

  plain   hetero's ordinary edge training (`train_edge`: influence, alignment, contrastive, own
          metric loss, structure; one-cycle AdamW, augmentation auto) started from the edge's
          weights, --plain-steps optimizer steps at --plain-lr;
  lqf     `hetero.lqf.lqf_finetune` (linearised at the edge's weights, squared loss to the cloud's
          embeddings of augmented views and to one-hot class scores, K-FAC), --lqf-epochs epochs,
          ReLU kept (slope 0, the default);
  lqf-leaky  the same with leaky ReLUs of slope --leaky-slope.

Measured on held-out images of the new classes (leave-one-out, as every hetero evaluation):
cross mAP (edge query -> unchanged cloud gallery), homogeneous mAP, compatible, the NFR of the
cross top-1 decisions against the model before fine-tuning, and the same on held-out images of
the old classes (forgetting); fine-tuning wall time.

Sets:
  omniglot  old: --old-classes background characters x 20 images (cloud: a small ResNet, edge:
            mobilenet_v3's smallest architecture, each trained here, --base-steps steps, cached
            in --work); new: --new-classes evaluation characters, 15 images each to fine-tune on,
            5 held out.
  tiny      tiny-imagenet-100 (64 px RGB): the cloud and edge given with --tiny-cloud /
            --tiny-init (trained on the open-set split's 70 training classes, seed 0); new: the 30
            test classes, --tiny-train images each to fine-tune on, --tiny-test held out.

    HETERO_THREADS=1 python benchmarks/lqf.py --sets omniglot,tiny --tiny-cloud /tmp/runs/mbv2 \\
        --tiny-init /tmp/runs/ti-scratch --work /tmp/lqf-bench --out /tmp/lqf-bench/results.json
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"


def _per_class(labels: np.ndarray, counts: tuple[int, ...], rng: np.random.Generator) -> list[np.ndarray]:
    """Disjoint index sets taking ``counts[i]`` images of every class (in a random order)."""
    parts: list[list[np.ndarray]] = [[] for _ in counts]
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        start = 0
        for i, k in enumerate(counts):
            parts[i].append(idx[start:start + k])
            start += k
    return [np.concatenate(p) for p in parts]


def _classes(data, mask: np.ndarray, n: int, per: int, rng: np.random.Generator):
    """``n`` random classes of ``data[mask]`` holding at least ``per`` images."""
    sub = data.subset(mask)
    classes, counts = np.unique(sub.labels, return_counts=True)
    chosen = rng.permutation(classes[counts >= per])[:n]
    return sub.subset(np.isin(sub.labels, chosen))


def omniglot_models(args, work: Path):
    """Old/new data and the base cloud and edge for Omniglot (trained once, cached in ``work``)."""
    from hetero.data import load_data
    from hetero.models import load_cloud, load_edge, save_cloud, save_edge
    from hetero.pipeline import train_cloud, train_edge
    from hetero.search_spaces import get_space
    from hetero.training import CLOUD_DEFAULTS, EDGE_DEFAULTS

    cloud_arch = {**get_space("resnet").default_arch(), "resolution": 28, "s0_depth": 1, "s1_depth": 1, "s2_depth": 1, "s3_depth": 1}
    edge_arch = get_space("mobilenet_v3").smallest_arch()
    size = max(28, get_space("mobilenet_v3").resolution(edge_arch))
    data = load_data(f"omniglot:{SHARED / 'omniglot'}", size)
    rng = np.random.default_rng(args.seed)
    old = _classes(data, ~data.predefined_split, args.old_classes, 20, rng)
    new = _classes(data, data.predefined_split, args.new_classes, 20, rng)
    old_train_idx, old_test_idx = _per_class(old.labels, (15, 5), rng)
    old_train, old_test = old.subset(old_train_idx), old.subset(old_test_idx)
    folder = work / f"omniglot-{args.old_classes}-s{args.seed}-{args.base_steps}"
    if not (folder / "edge.pt").exists():
        start = time.perf_counter()
        cloud = train_cloud(old_train, cloud_arch, 128, replace(CLOUD_DEFAULTS, min_steps=args.base_steps), seed=args.seed)
        save_cloud(cloud, folder)
        edge = train_edge(cloud, old_train, edge_arch, replace(EDGE_DEFAULTS, min_steps=args.base_steps), seed=args.seed)
        save_edge(edge, folder)
        print(f"omniglot: base cloud and edge trained in {time.perf_counter() - start:.0f} s", flush=True)
    return load_cloud(folder), load_edge(folder), new, old_test, (15, 5)


def tiny_models(args):
    """Old/new data and the given cloud and edge for tiny-imagenet-100."""
    from hetero.data import load_split
    from hetero.models import load_cloud, load_edge

    if not (args.tiny_cloud and args.tiny_init):
        raise SystemExit("the tiny set needs --tiny-cloud DIR and --tiny-init DIR (models trained on its open-set split)")
    cloud, init = load_cloud(args.tiny_cloud), load_edge(args.tiny_init)
    size = max(cloud.preprocess.size, init.preprocess.size)
    split = load_split(f"imagefolder:{SHARED / 'tiny-imagenet-100' / 'images'}", seed=0, size=size)
    rng = np.random.default_rng(args.seed)
    old_test = split.train.subset(_per_class(split.train.labels, (args.tiny_test // 2,), rng)[0])
    return cloud, init, split.test, old_test, (args.tiny_train, args.tiny_test)


def _scores(cloud, model, test, before=None) -> dict:
    from hetero.metrics import negative_flip_rate
    from hetero.pipeline import evaluate_compat

    e = evaluate_compat(cloud, model, test)
    r = e.results
    out = {"cross": r["cross_torch"].map, "homogeneous": r["homogeneous_edge"].map, "top1": r["cross_torch"].top1,
           "compatible": e.compatible, "correct": r["cross_torch"].top1_correct}
    if before is not None:
        out["nfr"] = negative_flip_rate(before["correct"], out["correct"])
    return out


def run_set(name: str, args, work: Path) -> list[dict]:
    from hetero.lqf import LQFConfig, lqf_finetune
    from hetero.pipeline import train_edge
    from hetero.training import EDGE_DEFAULTS

    cloud, init, new, old_test, (n_train, n_test) = omniglot_models(args, work) if name == "omniglot" else tiny_models(args)
    rng = np.random.default_rng(args.seed + 1)
    train_idx, test_idx = _per_class(new.labels, (n_train, n_test), rng)
    pool, test = new.subset(train_idx), new.subset(test_idx)
    paragon = _paragon(cloud, test)
    print(f"{name}: new data {new.num_classes} classes; fine-tune pool {len(pool.labels)} images, "
          f"test {len(test.labels)}; old-class test {len(old_test.labels)} images; "
          f"paragon (cloud->cloud) new {paragon:.4f}", flush=True)
    # What the run started from, in every row (the recorded tables key on it).
    setting = {"base": f"{args.base_steps} steps" if name == "omniglot" else Path(args.tiny_init).name, "paragon": paragon,
               "seed": args.seed}
    before_new, before_old = _scores(cloud, init, test), _scores(cloud, init, old_test)
    rows = [_row(name, "before", "-", before_new, before_old, 0.0, 0, **setting)]
    print(json.dumps(rows[-1]), flush=True)
    for shots in args.shots.split(","):
        if shots == "full":
            ft = pool
        else:
            ft = pool.subset(_per_class(pool.labels, (int(shots),), np.random.default_rng(args.seed + 2))[0])
        for method in args.methods.split(","):
            start = time.perf_counter()
            if method == "plain":
                config = replace(EDGE_DEFAULTS, epochs=1, min_steps=args.plain_steps, lr=args.plain_lr, val_fraction=0.0)
                model = train_edge(cloud, ft, init.arch, config, seed=args.seed, net=copy.deepcopy(init.net))
                steps = model.meta["schedule"]["steps"]
            else:
                slope = args.leaky_slope if method == "lqf-leaky" else 0.0
                config = LQFConfig(epochs=args.lqf_epochs, batch_size=args.lqf_batch, slope=slope, **args.lqf_config)
                model = lqf_finetune(init, cloud, ft, config, seed=args.seed)
                steps = args.lqf_epochs * -(-len(ft.labels) // args.lqf_batch)
            seconds = time.perf_counter() - start
            lqf_epochs = {} if method == "plain" else {"lqf_epochs": args.lqf_epochs,
                                                       # views always: its default changed (4, then 8)
                                                       "lqf_config": {"views": config.views, **args.lqf_config}}
            rows.append(_row(name, method, shots, _scores(cloud, model, test, before_new),
                             _scores(cloud, model, old_test, before_old), seconds, steps, len(ft.labels), **setting,
                             **lqf_epochs))
            print(json.dumps(rows[-1]), flush=True)
    return rows


def _paragon(cloud, test) -> float:
    from hetero.pipeline import evaluate_cloud

    return evaluate_cloud(cloud, test)["map"]


def _row(name, method, shots, new, old, seconds, steps, images=0, **setting) -> dict:
    """One table row; ``setting`` names what the run started from (base model, paragon)."""
    return {**setting, "set": name, "method": method, "shots": shots, "images": images, "new_cross_map": new["cross"],
            "new_homogeneous_map": new["homogeneous"], "new_top1": new["top1"], "compatible": new["compatible"],
            "nfr_new": new.get("nfr"), "old_cross_map": old["cross"], "nfr_old": old.get("nfr"),
            "seconds": seconds, "steps": steps}


def print_table(rows: list[dict]) -> None:
    print("| set | shots | method | images | new cross mAP | new homog. mAP | compatible | NFR new | old cross mAP | NFR old | steps | s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        f = lambda v: "-" if v is None else f"{v:.4f}"  # noqa: E731
        print(f"| {r['set']} | {r['shots']} | {r['method']} | {r['images']} | {f(r['new_cross_map'])} | {f(r['new_homogeneous_map'])} | "
              f"{r['compatible']} | {f(r['nfr_new'])} | {f(r['old_cross_map'])} | {f(r['nfr_old'])} | {r['steps']} | {r['seconds']:.0f} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sets", default="omniglot,tiny")
    p.add_argument("--shots", default="5,full", help="images per class to fine-tune on: numbers or 'full'")
    p.add_argument("--methods", default="plain,lqf,lqf-leaky")
    p.add_argument("--work", type=Path, default=Path("runs/lqf"), help="cache of the base models")
    p.add_argument("--out", type=Path, help="write the rows as JSON")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--old-classes", type=int, default=100)
    p.add_argument("--new-classes", type=int, default=60)
    p.add_argument("--base-steps", type=int, default=200)
    p.add_argument("--tiny-cloud")
    p.add_argument("--tiny-init")
    p.add_argument("--tiny-train", type=int, default=30)
    p.add_argument("--tiny-test", type=int, default=20)
    p.add_argument("--plain-steps", type=int, default=60)
    p.add_argument("--plain-lr", type=float, default=1e-3)
    p.add_argument("--lqf-epochs", type=int, default=8)
    p.add_argument("--lqf-config", action="append", default=[], metavar="FIELD=VALUE",
                   help="override a field of hetero.lqf.LQFConfig for the lqf methods (e.g. ridge=0.01, views=8); repeatable")
    p.add_argument("--leaky-slope", type=float, default=0.02, help="the lqf-leaky method's slope")
    p.add_argument("--lqf-batch", type=int, default=64)
    args = p.parse_args()
    from real_data import parse_overrides  # benchmarks/ is on the path: this script's own folder

    from hetero.lqf import LQFConfig

    # epochs, batch size and slope have options of their own (--lqf-epochs, --lqf-batch, the method).
    args.lqf_config = parse_overrides(args.lqf_config, LQFConfig, "--lqf-config", ("epochs", "batch_size", "slope"))
    from hetero.runtime import seed_everything

    seed_everything(args.seed)  # also sets torch's threads from HETERO_THREADS (default 1)

    rows = []
    for name in args.sets.split(","):
        rows += run_set(name, args, args.work)
        if args.out:
            from hetero._io import write_json

            write_json(args.out, rows)
    print_table(rows)


if __name__ == "__main__":
    main()
