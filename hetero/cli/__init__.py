"""The `hetero` command: one sub-command per pipeline stage (DESIGN.md, "The pipeline").

Each sub-command lives in its own module exposing ``register(subparsers, common)``; adding a
command is adding its module to ``_COMMAND_MODULES``.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from hetero.errors import user_error_types

__all__ = ["main", "build_parser"]

_COMMAND_MODULES = (
    "hetero.cli._demo",
    "hetero.cli._cloud",
    "hetero.cli._search",
    "hetero.cli._train",
    "hetero.cli._export",
    "hetero.cli._bench",
    "hetero.cli._report",
    "hetero.cli._devices",
    "hetero.cli._update",
    "hetero.cli._flips",
)


def _common_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("common options")
    group.add_argument("--seed", type=int, default=0, help="fixes the data split, initialisation and batch order (default 0)")
    group.add_argument(
        "--accelerator", choices=("auto", "cpu", "cuda"), default="auto", help="where to train and embed (default auto: CUDA if present)"
    )
    group.add_argument("--quiet", action="store_true", help="no progress bars")
    return common


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hetero",
        description=(
            "Compile one cloud embedding model into small edge models whose embeddings search the "
            "cloud-indexed gallery directly, export them per device and prove it on the device's runtime."
        ),
        epilog="Start with `hetero demo`. Every command takes --help.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    common = _common_options()
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # a command not written yet in this checkout
                continue
            raise
        module.register(sub, common)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` and run the command; user errors exit 2 with one line, no traceback."""
    args = build_parser().parse_args(argv)
    from hetero.runtime import seed_everything, set_quiet

    set_quiet(getattr(args, "quiet", False))
    seed_everything(getattr(args, "seed", 0))
    try:
        return int(args.run(args) or 0)
    except user_error_types() as exc:
        print(f"hetero {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"hetero {args.command}: interrupted; finished files are kept, re-run to resume", file=sys.stderr)
        return 130
