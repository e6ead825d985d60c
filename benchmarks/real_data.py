"""Compatible edge models on real data (issue 14): the defaults of 5409740 against the current ones.

For each data set: one cloud model (trained here with `hetero cloud train`'s defaults, or given
with --cloud), then the same edge architecture trained by each method. Prints and writes, per data
set and method: paragon, homogeneous and cross mAP, cross/paragon, the MACs ratio, compatible,
collapsed, status, optimizer steps and wall time.

Data sets (--sets, comma-separated):
  digits          scikit-learn's digits (closed-set, 1,258 training images)
  fashion-10x60   Fashion-MNIST, 10 classes x 60 images (closed-set, 420 training images)
  omniglot-40x10  40 Omniglot characters x 10 images (closed-set, the small-data case)
  tiny-40x10      40 tiny-imagenet-100 classes x 10 images, RGB 64 px (closed-set)
  omniglot        full Omniglot (open-set; long: hours on 2 CPU cores)
  tiny-imagenet-100  100 classes x 150 natural 64 px photos (open-set); needs --cloud
                  tiny-imagenet-100=DIR, the MobileNetV2 imported as the README shows (--size 64),
                  and --edge-arch (a cloud_pruned arch, e.g. keep 0.375 at 48 px); ~25 min per method

Methods (--methods):
  5409740   10 epochs whatever the data size, no validation, no structure term, targets of the
            unaugmented images (the roll augmentation of 5409740 is not reproduced: its targets
            did not follow the view, so it trains here on the images as they are)
  current   the `hetero train` defaults: a 600-step floor, validation hold-out and best epoch,
            augmented views with the cloud's targets of the same view, structure term, batch-norm
            recalibration
  unlabeled `current` plus --unlabeled: --unlabeled-count images of the subset's source that are
            not in the subset (for Omniglot, other characters), used by the label-free terms
            (small sets only: the images a user has without labels)
  long      `current` with 30 epochs (`hetero train --epochs 30`): natural photos need more
  gallery   `long` plus the test split's own images as --unlabeled (transductive: the gallery a
            service indexed is always at hand; `hetero train --unlabeled imagefolder:GALLERY`)
  gallery-half  `long` plus half of each test class's images as --unlabeled (the gallery), the
            other half never seen: the deployment case, new query photos against a gallery the
            edge saw without labels
  gallery-half-8v  `gallery-half` with 8 cached cloud views per image instead of 4 and alignment
            weight 2 (`--cloud-views 8 --alignment 2`)
  gallery-8v  `gallery` with the same 8 views and alignment weight 2

Every row also has `held_out`: the other half's edge queries against the first half's cloud
gallery (cross) and the same with cloud queries (paragon), so methods compare on queries that no
method saw, whatever they trained on.

`python benchmarks/tables.py record real_data OUT/results.json` records a run's rows and rewrites
the tables of benchmarks/README.md from them.

Clouds trained here are small and fast (--cloud-arch small: a ResNet of one block per stage at
28 px, --cloud-steps optimizer steps): what is measured is the edge model's compatibility with the
cloud it is given, and a 600-step default cloud took over 10 minutes on 280 images on the shared
2-core machine. --cloud SET=DIR reuses a cloud (e.g. the demo's for digits).

    python benchmarks/real_data.py --sets digits --cloud digits=hetero-demo/cloud --out runs/real_data
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"


def _subset(spec: str, classes: int, per_class: int, out: Path, seed: int = 0, unlabeled: int = 0) -> str:
    """An ``npz:`` spec of ``classes`` x ``per_class`` images of ``spec`` (written once to ``out``).

    With ``unlabeled``: instead, the spec of that many other images of ``spec`` (none of the subset's).
    """
    from hetero.data import load_data

    path = out / f"{spec.split(':')[0]}-{classes}x{per_class}.npz"
    other = out / f"{spec.split(':')[0]}-{classes}x{per_class}-unlabeled-{unlabeled}.npz"
    if not path.exists() or unlabeled and not other.exists():
        data = load_data(spec)
        rng = np.random.default_rng(seed)
        chosen = rng.permutation(np.unique(data.labels))[:classes]
        idx = np.concatenate([rng.permutation(np.flatnonzero(data.labels == c))[:per_class] for c in chosen])
        out.mkdir(parents=True, exist_ok=True)
        np.savez(path, images=(data.images[idx] * 255).round().astype(np.uint8), labels=data.labels[idx])
        if unlabeled:
            rest = np.setdiff1d(np.arange(len(data.labels)), idx)
            pick = np.random.default_rng(seed + 1).permutation(rest)[:unlabeled]
            np.savez(other, images=(data.images[pick] * 255).round().astype(np.uint8), labels=data.labels[pick])
    return f"npz:{other if unlabeled else path}"


SUBSETS = {
    "fashion-10x60": ("fashion-mnist", 10, 60),
    "omniglot-40x10": (f"omniglot:{SHARED / 'omniglot'}", 40, 10),
    "tiny-40x10": (f"imagefolder:{SHARED / 'tiny-imagenet-100' / 'images'}", 40, 10),
}


def data_spec(name: str, work: Path, unlabeled: int = 0) -> str | None:
    """The data SPEC of a benchmark set (small subsets are written to ``work`` as .npz).

    With ``unlabeled``: the spec of that many unlabeled images for a small set (``None`` for others).
    """
    if name in SUBSETS:
        return _subset(*SUBSETS[name], work, unlabeled=unlabeled)
    if unlabeled:
        return None
    if name == "digits":
        return "digits"
    if name == "omniglot":
        return f"omniglot:{SHARED / 'omniglot'}"
    if name == "tiny-imagenet-100":
        return f"imagefolder:{SHARED / 'tiny-imagenet-100' / 'images'}"
    raise SystemExit(f"unknown set {name!r}")


def methods():
    from hetero.training import EDGE_COMMAND_DEFAULTS

    return {
        "5409740": replace(EDGE_COMMAND_DEFAULTS, epochs=10, min_steps=0, val_fraction=0.0, structure=0.0, augment="none"),
        "current": EDGE_COMMAND_DEFAULTS,
        "unlabeled": EDGE_COMMAND_DEFAULTS,
        "long": replace(EDGE_COMMAND_DEFAULTS, epochs=30),
        "gallery": replace(EDGE_COMMAND_DEFAULTS, epochs=30),
        "gallery-half": replace(EDGE_COMMAND_DEFAULTS, epochs=30),
        "gallery-half-8v": replace(EDGE_COMMAND_DEFAULTS, epochs=30, cloud_views=8, alignment=2.0),
        "gallery-8v": replace(EDGE_COMMAND_DEFAULTS, epochs=30, cloud_views=8, alignment=2.0),
    }


def gallery_half(test, seed: int = 0) -> np.ndarray:
    """A mask of half of each test class's images (seeded): the gallery of the held-out figures."""
    rng = np.random.default_rng(seed + 2)
    mask = np.zeros(len(test.labels), dtype=bool)
    for c in np.unique(test.labels):
        idx = rng.permutation(np.flatnonzero(test.labels == c))
        mask[idx[: len(idx) // 2]] = True
    return mask


def held_out_figures(cloud, test, gallery: np.ndarray):
    """A function of an edge model: its queries of the images outside ``gallery`` against the cloud's
    embeddings of those inside it, beside the cloud's own queries (the paragon, computed once here)."""
    from hetero.metrics import retrieval_metrics

    q_images = test.images[~gallery]
    ql, gl = test.labels[~gallery], test.labels[gallery]
    g = cloud.embed(test.images[gallery])
    paragon = retrieval_metrics(cloud.embed(q_images), g, ql, gl, same_images=False).summary()["map"]

    def figures(edge) -> dict:
        cross = retrieval_metrics(edge.embed(q_images), g, ql, gl, same_images=False).summary()["map"]
        return {"paragon": paragon, "cross": cross, "cross_over_paragon": cross / paragon, "queries": len(ql)}

    return figures


#: The benchmark's own clouds: a ResNet of one block per stage at 28 px (about a quarter of the
#: default cloud's MACs), enough of a reference for the edge's compatibility to be measured.
SMALL_CLOUD = {"resolution": 28, "s0_depth": 1, "s1_depth": 1, "s2_depth": 1, "s3_depth": 1}


def cloud_arch(kind: str) -> dict:
    """The architecture of a cloud the benchmark trains: ``default`` (hetero cloud train's) or ``small``."""
    from hetero.search_spaces import get_space

    arch = get_space("resnet").default_arch()
    return {**arch, **SMALL_CLOUD} if kind == "small" else arch


def run_set(name: str, cloud_dir: str | None, chosen: list[str], work: Path, seed: int,
            cloud_kind: str = "small", cloud_steps: int = 300, edge_arch: dict | None = None,
            unlabeled_count: int = 2000, edge_epochs: int | None = None,
            edge_config: dict | None = None, edge_seed: int | None = None) -> list[dict]:
    from hetero.cost import count_macs
    from hetero.data import load_data, load_split
    from hetero.models import load_cloud, save_cloud
    from hetero.pipeline import evaluate_cloud, evaluate_compat, train_cloud, train_edge
    from hetero.search_spaces import get_space
    from hetero.training import CLOUD_COMMAND_DEFAULTS

    spec = data_spec(name, work)
    trained_arch = cloud_arch(cloud_kind)
    if name == "tiny-imagenet-100" and cloud_dir is None:
        raise SystemExit("tiny-imagenet-100 needs --cloud tiny-imagenet-100=DIR (the imported MobileNetV2, README)")
    # A given cloud sets the size the images are loaded at, as `hetero train` does.
    cloud = load_cloud(cloud_dir) if cloud_dir else None
    size = cloud.input_shape[-1] if cloud else get_space("resnet").resolution(trained_arch)
    split = load_split(spec, seed=seed, size=size)
    print(split.line(), flush=True)
    if cloud is None:
        cloud_dir = str(work / name / f"cloud-{cloud_kind}-{cloud_steps}")
        if not (Path(cloud_dir) / "cloud.pt").exists():
            start = time.perf_counter()
            config = replace(CLOUD_COMMAND_DEFAULTS, min_steps=cloud_steps)
            model = train_cloud(split.train, trained_arch, 128, config, seed=seed)
            model.meta.update(split=split.describe(), paragon=evaluate_cloud(model, split.test))
            save_cloud(model, cloud_dir)
            print(f"{name}: cloud trained in {time.perf_counter() - start:.0f} s", flush=True)
        cloud = load_cloud(cloud_dir)
    arch = edge_arch or get_space("mobilenet_v3").smallest_arch()
    half = gallery_half(split.test, seed)
    held_out = held_out_figures(cloud, split.test, half)  # the cloud's side embedded once for every method
    rows = []
    for method in chosen:
        unlabeled = None
        if method == "unlabeled":
            unlabeled_spec = data_spec(name, work, unlabeled_count)
            if unlabeled_spec is None:
                continue
            unlabeled = load_data(unlabeled_spec, get_space("resnet").resolution(trained_arch))
        elif method in ("gallery", "gallery-8v"):
            unlabeled = split.test  # labels unused: the label-free terms see the images only
        elif method.startswith("gallery-half"):
            unlabeled = split.test.subset(half)
        start = time.perf_counter()
        config = methods()[method] if edge_epochs is None else replace(methods()[method], epochs=edge_epochs)
        config = replace(config, **(edge_config or {}))
        # The edge's own seed (batch order, views, initial weights) apart from the split's: a
        # second edge seed against a given cloud keeps the split that cloud was trained on.
        edge = train_edge(cloud, split.train, arch, config, seed=seed if edge_seed is None else edge_seed,
                          protocol=split.protocol, unlabeled=unlabeled)
        seconds = time.perf_counter() - start
        s = evaluate_compat(cloud, edge, split.test).summary()
        macs = count_macs(cloud.net, cloud.input_shape) / max(count_macs(edge.net, edge.input_shape), 1)
        rows.append({
            "set": name, "method": method, "paragon": s["paragon"]["map"], "homogeneous": s["homogeneous_edge"]["map"],
            "cross": s["cross_torch"]["map"], "cross_over_paragon": s["cross_torch"]["map"] / s["paragon"]["map"],
            "macs_ratio": macs, "compatible": s["compatible"], "collapsed": s["collapsed"], "status": s["status"],
            "steps": edge.meta["schedule"]["steps"], "edge_seconds": seconds,
            **({} if edge_epochs is None else {"epochs": edge_epochs}),
            **({"edge_config": edge_config} if edge_config else {}),
            **({} if edge_seed is None else {"edge_seed": edge_seed}),
            "edge_arch": None if edge_arch is None else {k: v for k, v in edge_arch.items() if k != "cloud"},
            "held_out": held_out(edge),
            "validation": {k: v for k, v in edge.meta.get("validation", {}).items() if k != "note"},
            "val_history": [{k: r[k] for k in ("epoch", "val_cross_map", "val_homogeneous_map") if k in r}
                            for r in edge.meta.get("history", [])],
        })
        print(json.dumps(rows[-1]), flush=True)
    return rows


def parse_overrides(items: list[str], config: type | None = None, flag: str = "--edge-config",
                    reserved: tuple[str, ...] = ()) -> dict:
    """``["metric=0", "alignment=4"]`` as fields of the dataclass ``config`` (TrainConfig by default)
    of the right types; unknown fields, and ``reserved`` ones (set by other options), refused."""
    from dataclasses import fields

    if config is None:
        from hetero.training import TrainConfig as config
    types = {f.name: type(getattr(config(), f.name)) for f in fields(config)}
    out = {}
    for item in items:
        key, _, value = item.partition("=")
        if key not in types or not value or key in reserved:
            raise SystemExit(f"{flag} {item!r}: use FIELD=VALUE with a {config.__name__} field"
                             f"{' other than ' + ', '.join(reserved) if reserved else ''} ({', '.join(types)})")
        out[key] = types[key](value)
    return out


def print_table(rows: list[dict]) -> None:
    print("| set | method | paragon | homogeneous | cross | cross/paragon | MACs ratio | compatible | collapsed | steps | edge s |")
    print("|---|---|---:|---:|---:|---:|---:|---|---|---:|---:|")
    for r in rows:
        print(f"| {r['set']} | {r['method']} | {r['paragon']:.4f} | {r['homogeneous']:.4f} | {r['cross']:.4f} | "
              f"{r['cross_over_paragon']:.3f} | {r['macs_ratio']:.1f}x | {r['compatible']} | {r['collapsed']} | "
              f"{r['steps']} | {r['edge_seconds']:.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", default="digits,omniglot-40x10,tiny-40x10")
    parser.add_argument("--methods", default="5409740,current", help="comma-separated; see above")
    parser.add_argument("--cloud", action="append", default=[], metavar="SET=DIR",
                        help="a cloud to reuse for a set (e.g. digits=hetero-demo/cloud); repeatable")
    parser.add_argument("--cloud-arch", choices=("small", "default"), default="small",
                        help="the clouds trained here: small (fast) or hetero cloud train's default")
    parser.add_argument("--cloud-steps", type=int, default=300, help="optimizer steps of the clouds trained here")
    parser.add_argument("--edge-arch", default=None, metavar="ARCH.json", help="default: mobilenet_v3's smallest")
    parser.add_argument("--edge-epochs", type=int, default=None,
                        help="train every method this many epochs instead of its own (its rows record it)")
    parser.add_argument("--edge-config", action="append", default=[], metavar="FIELD=VALUE",
                        help="set a TrainConfig field of every method (e.g. metric=0); repeatable, recorded in the rows")
    parser.add_argument("--unlabeled-count", type=int, default=2000, help="unlabeled images of the method 'unlabeled'")
    parser.add_argument("--out", default=str(REPO / "runs" / "real_data"), help="cache for subsets, clouds and results")
    parser.add_argument("--seed", type=int, default=0, help="the split (and everything else unless --edge-seed)")
    parser.add_argument("--edge-seed", type=int, default=None,
                        help="the edge training's own seed; the split stays --seed's (needed with --cloud: the "
                             "cloud was trained on that split's training classes)")
    args = parser.parse_args()

    from hetero.runtime import seed_everything

    seed_everything(args.seed)
    work = Path(args.out)
    clouds = dict(item.split("=", 1) for item in args.cloud)
    edge_arch = json.loads(Path(args.edge_arch).read_text()) if args.edge_arch else None
    edge_config = parse_overrides(args.edge_config)
    rows = []
    for name in args.sets.split(","):
        rows += run_set(name, clouds.get(name), args.methods.split(","), work, args.seed,
                        args.cloud_arch, args.cloud_steps, edge_arch, args.unlabeled_count, args.edge_epochs,
                        edge_config, args.edge_seed)
        work.mkdir(parents=True, exist_ok=True)
        # After every set: a long run stopped later keeps what it measured.
        (work / "results.json").write_text(json.dumps(rows, indent=1))
    print_table(rows)


if __name__ == "__main__":
    main()
