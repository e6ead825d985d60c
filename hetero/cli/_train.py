"""`hetero train`: an edge model compatible with the frozen cloud model."""

from __future__ import annotations

import argparse
from pathlib import Path

from hetero.cli._common import add_data_options, add_train_options, print_table, split_from_args, train_config_from_args
from hetero.errors import UserError

__all__ = ["register"]


def register(sub, common: argparse.ArgumentParser) -> None:
    from hetero.training import EDGE_DEFAULTS

    p = sub.add_parser(
        "train",
        parents=[common],
        help="train an edge model compatible with the cloud model",
        description=(
            "Train an edge model against the frozen cloud model with the compatibility losses "
            "(influence, alignment, contrastive, own metric loss, optional focal distillation). "
            "Writes DIR/edge.pt and DIR/metrics.json, and DIR/cloud.pt with --as-cloud (a new cloud model "
            "that is a backward-compatible update of --cloud)."
        ),
    )
    p.add_argument("--cloud", required=True, metavar="DIR", help="folder with cloud.pt")
    add_data_options(p)
    p.add_argument("--arch", metavar="ARCH.json", help="architecture file (default: mobilenet_v3's default architecture)")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for edge.pt and metrics.json")
    p.add_argument(
        "--as-cloud",
        action=argparse.BooleanOptionalAction,
        default=None,
        help=(
            "also write DIR/cloud.pt: the trained model with its own classifier, usable as a cloud model "
            "(a backward-compatible update of --cloud; check it with hetero update-check). "
            "Default: on when the architecture is from the resnet space"
        ),
    )
    add_train_options(p, EDGE_DEFAULTS)
    p.set_defaults(run=_run, command="train")


def _run(args: argparse.Namespace) -> int:
    from search_spaces import get_space, load_arch

    from hetero._io import write_json
    from hetero.models import load_cloud, save_cloud, save_edge
    from hetero.pipeline import cloud_from_edge, evaluate_compat, train_edge
    from hetero.runtime import resolve_device
    from hetero.training import EDGE_DEFAULTS, EpochCheckpoint

    cloud = load_cloud(args.cloud)
    arch = load_arch(args.arch) if args.arch else get_space("mobilenet_v3").default_arch()
    net = None
    if arch["space"] == "cloud_pruned":  # the edge starts as a pruned copy of the cloud, its weights kept
        from hetero.models._pruned import start_from_cloud

        arch, net = start_from_cloud(cloud, arch)
    config = train_config_from_args(args, EDGE_DEFAULTS)
    as_cloud = arch["space"] == "resnet" if args.as_cloud is None else args.as_cloud
    if as_cloud and not config.metric:
        raise UserError("--as-cloud needs --metric > 0: the new cloud model's classifier is its own metric-loss head")
    split = split_from_args(args)
    # A killed run started again continues after its last finished epoch.
    checkpoint = EpochCheckpoint.in_folder(args.out, {"command": "train", "cloud": cloud.fingerprint, "data": args.data,
                                                      "split": split.describe(), "arch": arch, "train": config.to_dict()})
    edge = train_edge(cloud, split.train, arch, config, resolve_device(args.accelerator), args.seed, net=net,
                      checkpoint=checkpoint)
    evaluation = evaluate_compat(cloud, edge, split.test)
    edge.meta.update(split=split.describe(), evaluation=evaluation.summary())
    path = save_edge(edge, Path(args.out))
    write_json(Path(args.out) / "metrics.json", evaluation.summary())
    checkpoint.discard()
    print_evaluation(evaluation.summary())
    print(f"edge model written to {path}")
    if as_cloud:
        cloud_path = save_cloud(cloud_from_edge(edge, split.train), args.out)
        r = evaluation.results
        # As an update, the old cloud model's own search is the bar (BCT's criterion).
        print(f"as a cloud model (an update of {args.cloud}): {cloud_path}; M(new->old) > M(old,old): "
              f"{r['cross_torch'].map > r['paragon'].map} (mAP {r['cross_torch'].map:.4f} vs {r['paragon'].map:.4f}); "
              f"details: hetero update-check --old {args.cloud} --new {args.out} --data {args.data}")
    return 0


def print_evaluation(summary: dict) -> None:
    rows = [[name, *(summary[name][k] for k in ("top1", "top5", "map", "map_at_r"))] for name in ("paragon", "homogeneous_edge", "cross_torch") if name in summary]
    print_table(["search", "top-1", "top-5", "mAP", "mAP@R"], rows)
    print(f"gap closed {summary['gap_closed']:.3f}; compatible: {summary['compatible']}")
