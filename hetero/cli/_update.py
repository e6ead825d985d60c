"""`hetero update-check`: is a new model a backward-compatible update of the old cloud model?"""

from __future__ import annotations

import argparse

from hetero.cli._common import (
    COMMANDS,
    Outcome,
    add_data_options,
    add_result_options,
    gate_failures,
    print_table,
    split_from_args,
)

__all__ = ["register"]


@COMMANDS.register("update-check")
def register(sub, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "update-check",
        parents=[common],
        help="check that a new model's queries search the old model's gallery (BCT criterion, flips)",
        description=(
            "Embed the test split with the old and the new model and report M(old,old), M(new,new) and "
            "M(new->old) (new queries against the old gallery), whether M(new->old) > M(old,old) (BCT's "
            "empirical criterion), the update gap closed = (M(new->old) - M(old,old)) / (M(new,new) - M(old,old)) "
            "and the negative flips of the new model against the old. Writes DIR/report.json, DIR/report.md "
            "and the embeddings that hetero flips reads."
        ),
    )
    p.add_argument("--old", required=True, metavar="DIR", help="the old cloud model (folder with cloud.pt) that indexed the gallery")
    p.add_argument("--new", required=True, metavar="DIR", help="the new model: a folder with cloud.pt or edge.pt (e.g. hetero train --out)")
    add_data_options(p)
    p.add_argument("--out", required=True, metavar="DIR", help="folder for report.json, report.md and the embeddings")
    add_result_options(p)
    p.set_defaults(run=_run, command="update-check")


def _run(args: argparse.Namespace) -> Outcome:
    from hetero.models import CloudModel
    from hetero.runtime import resolve_device
    from hetero.updates import check_update, load_model, model_record, write_update_report

    old = load_model(args.old, "--old")
    if not isinstance(old, CloudModel):
        from hetero.errors import UserError

        raise UserError(f"--old {args.old} is an edge model; pass the old cloud model (a folder with cloud.pt)")
    new = load_model(args.new, "--new")
    device = resolve_device(args.accelerator)
    old.to(device)
    new.to(device)
    split = split_from_args(args)
    check = check_update(old, new, split.test)
    report = write_update_report(check, model_record(old, args.old), model_record(new, args.new), split, args.out)
    names = {"old_old": "old -> old", "new_new": "new -> new", "new_old": "new -> old"}
    print_table(
        ["search", "top-1", "top-5", "mAP", "mAP@R"],
        [[label, *(report["retrieval"][k][m] for m in ("top1", "top5", "map", "map_at_r"))] for k, label in names.items()],
    )
    flips = report["flips"]["retrieval"]["new_old_vs_old_old"]
    print(
        f"backward compatible (M(new->old) > M(old,old)): {report['compatible']}; update gap closed "
        f"{report['update_gap_closed']:.3f}; NFR (top-1, new->old vs old->old) {flips['nfr']:.4f}, NFI {flips['nfi']:.4f}"
    )
    print(f"report in {args.out}/report.md; see the flipped inputs with: hetero flips --report {args.out}")
    return Outcome({**report, "report": f"{args.out}/report.json"}, gate_failures(report))
