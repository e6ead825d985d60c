"""`hetero train --method lqf --init MODEL`: LQF fine-tuning of a trained model (parse and print only)."""

from __future__ import annotations

import argparse
from pathlib import Path

from hetero.cli._common import Outcome, gate_failures, split_from_args
from hetero.errors import UserError

__all__ = ["run_lqf"]


def _load_init(path: str):
    """The edge model (edge.pt) or cloud model (cloud.pt) in ``path`` (a folder or the file)."""
    from hetero.models import load_cloud, load_edge

    p = Path(path)
    if (p / "edge.pt").is_file() or p.name == "edge.pt":
        return load_edge(p)
    if (p / "cloud.pt").is_file() or p.name == "cloud.pt":
        return load_cloud(p)
    raise UserError(f"--init {path}: no edge.pt or cloud.pt there; give the folder of a trained edge or cloud model")


def run_lqf(args: argparse.Namespace) -> Outcome:
    """Fine-tune ``--init`` on ``--data``'s training split with LQF; evaluate on its test split."""
    from hetero._io import write_json
    from hetero.cli._train import print_evaluation
    from hetero.lqf import LQFConfig, lqf_finetune
    from hetero.metrics import negative_flip_rate
    from hetero.models import load_cloud, save_edge
    from hetero.pipeline import evaluate_compat

    if not args.init:
        raise UserError("--method lqf needs --init DIR: the trained edge or cloud model to fine-tune")
    if args.arch:
        raise UserError("--arch does not apply to --method lqf: the architecture is --init's")
    cloud = load_cloud(args.cloud)
    init = _load_init(args.init)
    split = split_from_args(args, max(cloud.preprocess.size, init.preprocess.size))
    config = LQFConfig() if args.epochs is None else LQFConfig(epochs=args.epochs)
    edge = lqf_finetune(init, cloud, split.train, config, seed=args.seed, progress=not args.quiet)
    h = edge.meta["history"][-1]
    print(f"LQF: {config.epochs} epochs over {len(split.train.labels)} images in {edge.meta['seconds']:.0f} s; "
          f"last epoch's squared losses: compatibility {h['compat']:.4f}, classes {h['classes']:.4f}; "
          f"|delta| {edge.meta['delta_norm']:.4f}")
    evaluation = evaluate_compat(cloud, edge, split.test)
    before = evaluate_compat(cloud, init, split.test)  # a cloud --init is scored as a query model too
    summary = evaluation.summary()
    summary["nfr_vs_init"] = negative_flip_rate(before.results["cross_torch"].top1_correct,
                                                evaluation.results["cross_torch"].top1_correct)
    summary["init_cross_map"] = before.results["cross_torch"].map
    edge.meta.update(split=split.describe(), evaluation=summary)
    path = save_edge(edge, Path(args.out))
    write_json(Path(args.out) / "metrics.json", {**summary, "data": split.describe(), "lqf": config.to_dict()})
    print_evaluation(summary)
    print(f"against --init: cross mAP {summary['init_cross_map']:.4f} -> {evaluation.results['cross_torch'].map:.4f}, "
          f"NFR of the cross top-1 decisions {summary['nfr_vs_init']:.4f}")
    print(f"LQF model written to {path} (plain layers: the base network and its tangent network side by side)")
    return Outcome({**summary, "model": str(path)}, gate_failures(summary))
