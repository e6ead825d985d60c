"""`hetero flips`: which inputs an update or an edge model breaks, grouped, with pictures."""

from __future__ import annotations

import argparse

__all__ = ["register"]


def register(sub, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "flips",
        parents=[common],
        help="group the negative flips of a bench or update-check report and show examples",
        description=(
            "Find the queries the reference search gets right at top-1 and the candidate gets wrong "
            "(negative flips), group them by k-means on the reference model's embeddings (k chosen by "
            "silhouette) and write DIR/flips.json and a self-contained DIR/flips.html with example images "
            "of each group. Defaults: paragon vs cross_runtime for a bench report (cross_torch vs "
            "cross_runtime: the runtime against PyTorch), old_old vs new_old for an update-check report."
        ),
    )
    p.add_argument("--report", required=True, metavar="DIR", help="the --out folder of hetero bench or hetero update-check")
    p.add_argument("--reference", default=None, metavar="SEARCH", help="the search whose right answers count (default per report kind)")
    p.add_argument("--candidate", default=None, metavar="SEARCH", help="the search that flips them (default per report kind)")
    p.add_argument("--out", default=None, metavar="DIR", help="where flips.json and flips.html go (default: the report folder)")
    p.add_argument("--max-groups", type=int, default=8, help="most groups tried (k = 2..N, chosen by silhouette; default 8)")
    p.add_argument("--examples", type=int, default=8, help="example flips pictured per group (default 8)")
    p.add_argument("--data", default=None, metavar="SPEC", help="data SPEC of the report (default: the one it records)")
    p.add_argument("--protocol", choices=("open", "closed"), default=None, help="split protocol (default: the report's)")
    p.add_argument("--no-images", action="store_true", help="write the page without pictures (no need to reload the data)")
    p.set_defaults(run=_run, command="flips")


def _run(args: argparse.Namespace) -> int:
    from hetero.errors import UserError
    from hetero.flips import analyse_flips, load_flip_source, reload_test_images, write_flips

    if args.examples < 1:
        raise UserError(f"--examples {args.examples} must be at least 1")
    source = load_flip_source(args.report)
    analysis = analyse_flips(source, args.reference, args.candidate, k_max=args.max_groups, seed=args.seed)
    # --seed is shared by every command (default 0): the report's recorded seed wins unless --data
    # is given or the report records none (bench reports record the spec only).
    seed = args.seed if args.data or source.data_settings()["seed"] is None else None
    images = None if args.no_images or not len(analysis.flipped) else reload_test_images(source, args.data, args.protocol, seed)
    json_path, html_path = write_flips(analysis, source, args.out or args.report, images, args.examples)
    s = analysis.summary
    print(
        f"{s['flips']} negative flips of {analysis.candidate} against {analysis.reference} over {s['queries']} queries "
        f"(NFR {s['nfr']:.4f}, NFI {s['nfi']:.4f}) in {analysis.groups.k} group(s)"
    )
    for g in range(analysis.groups.k):
        members = analysis.group_members(g)
        classes = len(set(source.labels[members].tolist()))
        print(f"  group {g + 1}: {len(members)} flips over {classes} classes")
    print(f"written {html_path} and {json_path}")
    return 0
