"""`hetero report RUN`: a search run as Markdown and self-contained HTML, with the Pareto plot."""

from __future__ import annotations

import argparse

from hetero.cli._common import COMMANDS

__all__ = ["register"]


@COMMANDS.register("report")
def register(sub, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "report",
        parents=[common],
        help="summarise a search run: Pareto plot, trial table, chosen architecture",
        description=(
            "Read RUN/search.json (written by hetero search) and write RUN/report.md, RUN/report.html (one "
            "self-contained page, the plot embedded) and RUN/pareto.png: validation cross mAP against MACs or "
            "latency for every trial, the Pareto front, the budget, the paragon and the hand-picked default "
            "architecture; the test figures of the pick and the default; the trial table; the chosen architecture."
        ),
    )
    p.add_argument("run_dir", metavar="RUN", help="the --out folder of hetero search")
    p.set_defaults(run=_run, command="report")


def _run(args: argparse.Namespace) -> int:
    from hetero.search import write_report

    paths = write_report(args.run_dir)
    print(f"report written to {paths['markdown']} and {paths['html']} (plot {paths['plot']})")
    return 0
