"""`hetero index`: embed a gallery with the cloud model (resumable) and build its faiss index."""

from __future__ import annotations

import argparse

from hetero.cli._common import COMMANDS, Outcome, add_result_options

__all__ = ["register"]


@COMMANDS.register("index")
def register(sub, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "index",
        parents=[common],
        help="index a gallery with the cloud model: embeddings (.npy), ids, labels, faiss index, manifest",
        description=(
            "Embed every image of --data with the cloud model in chunks (one chunk in memory; each written "
            "atomically under OUT/.parts, so a killed run resumes where it stopped), then write OUT/embeddings.npy "
            "(memory-mappable, float32 or float16), OUT/ids.npy, OUT/labels.npy, OUT/index.faiss and "
            "OUT/manifest.json (cloud fingerprint, sha256 of every file). Search it with hetero bench --gallery OUT."
        ),
    )
    p.add_argument("--cloud", required=True, metavar="DIR", help="the cloud model (hetero cloud train/import)")
    p.add_argument("--data", required=True, metavar="SPEC",
                   help="the gallery images: digits | fashion-mnist[:DIR] | omniglot:DIR | imagefolder:DIR | npz:FILE (all of them)")
    p.add_argument("--out", required=True, metavar="DIR", help="the index folder")
    p.add_argument("--dtype", choices=("float32", "float16"), default="float32", help="embedding storage (default float32)")
    p.add_argument("--index", choices=("flat", "ivf", "hnsw"), default=None,
                   help="faiss index (default: flat, exact, below 1,000,000 items; ivf from there)")
    p.add_argument("--chunk", type=int, default=4096, help="images per resumable part (default 4096)")
    p.add_argument("--batch-size", type=int, default=256, help="images per forward pass (default 256)")
    add_result_options(p, strict=False)
    p.set_defaults(run=_run, command="index")


def _run(args: argparse.Namespace) -> Outcome:
    from hetero.data import load_data
    from hetero.index import build_index
    from hetero.models import load_cloud
    from hetero.runtime import resolve_device

    cloud = load_cloud(args.cloud)
    device = resolve_device(args.accelerator)
    cloud.to(device)
    data = load_data(args.data)  # as hetero bench loads its queries: the same image, the same id
    print(f"indexing {len(data.labels)} images of {data.spec} with cloud model {cloud.fingerprint[:19]}... on {device}", flush=True)
    m = build_index(cloud, data, args.out, dtype=args.dtype, kind=args.index, chunk=args.chunk,
                    batch_size=args.batch_size, seed=args.seed)
    print(f"wrote {m['items']} x {m['dim']} {m['dtype']} embeddings and a faiss {m['index']['kind']} index "
          f"{m['index']['params']} to {args.out} in {m['total_seconds']:.1f} s "
          f"({m['resumed_chunks']} of {m['chunks']} chunks resumed from an earlier run)")
    return Outcome(m)
