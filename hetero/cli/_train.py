"""`hetero train`: an edge model compatible with the frozen cloud model."""

from __future__ import annotations

import argparse

from hetero.cli._common import (
    COMMANDS,
    Outcome,
    add_data_options,
    add_result_options,
    add_train_options,
    gate_failures,
    print_table,
    split_from_args,
)
from hetero.cli._schedule import config_with_length, refine_train_flags
from hetero.errors import UserError

__all__ = ["register"]


@COMMANDS.register("train")
def register(sub, common: argparse.ArgumentParser) -> None:
    from hetero.training import EDGE_COMMAND_DEFAULTS, LABEL_FREE_TERMS

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
    p.add_argument("--method", choices=("compat", "lqf"), default="compat",
                   help=("compat: train with the compatibility losses (default); lqf: fine-tune --init as its "
                         "linearisation (LQF: squared losses to the cloud's embeddings and one-hot classes, K-FAC; "
                         "ReLU kept by default, see hetero.lqf.LQFConfig.slope; --epochs applies, the other training flags do not)"))
    p.add_argument("--init", metavar="DIR", help="with --method lqf: the trained edge (edge.pt) or cloud (cloud.pt) model to fine-tune")
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
    p.add_argument(
        "--unlabeled",
        metavar="SPEC",
        help=("images without labels (any data SPEC, e.g. imagefolder:DIR of the gallery the cloud indexed; "
              f"labels are ignored), used by the label-free terms: {', '.join(LABEL_FREE_TERMS)}"),
    )
    add_train_options(p, EDGE_COMMAND_DEFAULTS)
    refine_train_flags(p, EDGE_COMMAND_DEFAULTS)
    add_result_options(p)
    p.set_defaults(run=_run, command="train")


def _run(args: argparse.Namespace) -> Outcome:
    if args.method == "lqf":
        from hetero.cli._train_lqf import run_lqf

        return run_lqf(args)
    if args.init:
        raise UserError("--init applies to --method lqf only")
    from hetero.data import load_data
    from hetero.models import load_cloud, save_cloud
    from hetero.pipeline import cloud_from_edge
    from hetero.runtime import resolve_device
    from hetero.search_spaces import default_edge_arch, get_space, load_arch
    from hetero.stages import train_edge_stage
    from hetero.training import EDGE_COMMAND_DEFAULTS

    cloud = load_cloud(args.cloud)
    arch = load_arch(args.arch) if args.arch else default_edge_arch()
    config = config_with_length(args, EDGE_COMMAND_DEFAULTS)
    as_cloud = arch["space"] == "resnet" if args.as_cloud is None else args.as_cloud
    if as_cloud and not config.metric:
        raise UserError("--as-cloud needs --metric > 0: the new cloud model's classifier is its own metric-loss head")
    size = max(cloud.preprocess.size, get_space(arch["space"]).resolution(arch))
    split = split_from_args(args, size)
    unlabeled = load_data(args.unlabeled, size) if args.unlabeled else None
    if unlabeled is not None:
        print(f"unlabeled {args.unlabeled}: {len(unlabeled.images)} images for the label-free terms (labels ignored)")
    # A killed run started again continues after its last finished epoch.
    key = {"command": "train", "cloud": cloud.fingerprint, "data": args.data, "split": split.describe(), "arch": arch,
           "train": config.to_dict(), "unlabeled": args.unlabeled}
    edge, evaluation, path = train_edge_stage(cloud, split, arch, config, resolve_device(args.accelerator), args.seed, args.out, key,
                                              unlabeled=unlabeled, protocol=split.protocol)
    print(schedule_line(edge.meta))
    print_evaluation(evaluation.summary())
    print(f"edge model written to {path}")
    if as_cloud:
        cloud_path = save_cloud(cloud_from_edge(edge, split.train), args.out)
        r = evaluation.results
        # As an update, the old cloud model's own search is the bar (BCT's criterion).
        print(f"as a cloud model (an update of {args.cloud}): {cloud_path}; M(new->old) > M(old,old): "
              f"{r['cross_torch'].map > r['paragon'].map} (mAP {r['cross_torch'].map:.4f} vs {r['paragon'].map:.4f}); "
              f"details: hetero update-check --old {args.cloud} --new {args.out} --data {args.data}")
    # --json prints the evaluation; --strict gates on its compatible/collapsed/status fields.
    return Outcome({**evaluation.summary(), "model": str(path)}, gate_failures(evaluation.summary()))


def print_evaluation(summary: dict) -> None:
    rows = [[name, *(summary[name][k] for k in ("top1", "top5", "map", "map_at_r"))] for name in ("paragon", "homogeneous_edge", "cross_torch") if name in summary]
    print_table(["search", "top-1", "top-5", "mAP", "mAP@R"], rows)
    gap = f"{summary['gap_closed']:.3f}" if summary.get("gap_closed") is not None else f"n/a ({summary.get('gap_closed_note')})"
    print(f"gap closed {gap}; compatible: {summary['compatible']}")
    if summary.get("collapsed"):
        print(f"COLLAPSED: {summary['collapse']['reason']}; the model is degenerate, train longer or check the data")
    if "status" in summary:
        print(f"status: {summary['status']}")


def schedule_line(meta: dict) -> str:
    """One line on how the model was trained: steps, epochs, views, targets and the kept epoch."""
    s, v = meta["schedule"], meta.get("validation", {})
    line = (f"trained {s['steps']} steps ({s['epochs']} epochs over {s['train_images']} images; floor {s['min_steps']} steps), "
            f"augment {s['augment']}, cloud targets {s['targets']}")
    if "unlabeled_images" in s:
        line += f", +{s['unlabeled_images']} unlabeled images"
    if "best_epoch" in v:
        line += f"; kept epoch {v['best_epoch']} (validation cross mAP {v['val_cross_map']:.4f} on {v['images']} held-out images"
        if v.get("val_homogeneous_map") is not None:
            verdict = "compatible" if v["val_compatible"] else f"not compatible, nor any of the {s['epochs']} epochs"
            line += f", edge->edge {v['val_homogeneous_map']:.4f}: {verdict}"
        return line + ")"
    return line + f"; {v.get('note', '')}".rstrip("; ")
