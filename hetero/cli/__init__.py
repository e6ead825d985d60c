"""The `hetero` command: one sub-command per pipeline stage (DESIGN.md, "The pipeline").

Each sub-command lives in its own module, whose ``register(subparsers, common)`` is registered in
``COMMANDS`` under the command's name; adding a command is adding its module to ``_COMMAND_MODULES``
(which also orders ``hetero --help``).

Exit codes: 0 success, 1 a bug (traceback), 2 a user error (one line on stderr, nothing
written), 3 a result that fails its quality gate under ``--strict``, 130 interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import json
import os
import sys
from collections.abc import Iterator
from typing import NoReturn

from hetero.cli._common import COMMANDS, EXIT_GATE, Outcome, check_output_dir, finite_float, json_ready
from hetero.errors import UserError

__all__ = ["main", "build_parser", "EXIT_USER", "EXIT_GATE"]

#: Exit code of a user error: a bad flag, file, path or value, named in one line on stderr.
EXIT_USER = 2

_COMMAND_MODULES = (
    "hetero.cli._demo",
    "hetero.cli._cloud",
    "hetero.cli._search",
    "hetero.cli._train",
    "hetero.cli._export",
    "hetero.cli._bench",
    "hetero.cli._index",
    "hetero.cli._report",
    "hetero.cli._devices",
    "hetero.cli._update",
    "hetero.cli._flips",
)


class _Parser(argparse.ArgumentParser):
    """argparse with hetero's conventions: every float flag finite, a bad flag one line (exit 2).

    Sub-command parsers are made with the parent's class, so both hold for every command.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # argparse looks a flag's type up in this registry first: `type=float` anywhere means finite.
        self.register("type", float, finite_float)

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USER, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("hetero")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def _common_options() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)
    group = common.add_argument_group("common options")
    group.add_argument("--seed", type=int, default=0, help="fixes the data split, initialisation and batch order (default 0)")
    group.add_argument(
        "--accelerator", choices=("auto", "cpu", "cuda"), default="auto", help="where to train and embed (default auto: CUDA if present)"
    )
    group.add_argument("--quiet", action="store_true", help="no progress bars")
    return common


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="hetero",
        description=(
            "Compile one cloud embedding model into small edge models whose embeddings search the "
            "cloud-indexed gallery directly, export them per device and prove it on the device's runtime."
        ),
        epilog=(
            "Start with `hetero demo`. Every command takes --help. Exit codes: 0 success, 1 a bug, 2 a user "
            f"error (one line on stderr), {EXIT_GATE} a result failing its quality gate under --strict."
        ),
    )
    parser.add_argument("--version", action="version", version=f"hetero {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    common = _common_options()
    for module in _COMMAND_MODULES:
        # A command module that fails to import is a broken install or a bug: the error surfaces.
        importlib.import_module(module)
    order = {module: i for i, module in enumerate(_COMMAND_MODULES)}
    unlisted = sorted(name for name, add in COMMANDS.items() if add.__module__ not in order)
    if unlisted:  # registered by a module build_parser does not know: a bug, not a silent extra command
        raise RuntimeError(f"commands {unlisted} are registered outside hetero.cli._COMMAND_MODULES")
    for _, add_command in sorted(COMMANDS.items(), key=lambda item: order[item[1].__module__]):
        add_command(sub, common)
    return parser


@contextlib.contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """Send everything printed to stderr (Python's prints and, where possible, file descriptor 1).

    Under ``--json`` stdout carries the JSON object alone; a converter's native logging to fd 1
    would otherwise land in front of it.
    """
    sys.stdout.flush()
    saved = None
    try:
        out_fd, err_fd = sys.stdout.fileno(), sys.stderr.fileno()
        saved = os.dup(out_fd)
        os.dup2(err_fd, out_fd)
    except (AttributeError, OSError, io.UnsupportedOperation):  # a captured stream (tests) has no descriptor
        saved = None
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stderr.flush()
        if saved is not None:
            os.dup2(saved, out_fd)
            os.close(saved)


#: The optional packages outside the export backends and the extra that installs each
#: (pyproject.toml); every backend names its own (``Backend.requires`` and ``Backend.extra``).
_OTHER_OPTIONAL_PACKAGES = {
    "optuna": "search", "optuna_dashboard": "search", "psycopg": "search", "faiss": "index", "torch_pruning": "prune",
    "tensorrt": "tensorrt",
}


def optional_packages() -> dict[str, str]:
    """Each optional package and the extra that installs it: a command that needs one that is absent
    says which `pip install` brings it, in one line (exit 2), not with a traceback."""
    from hetero.export import get_backend, list_backends  # torch and numpy only: no converter is imported

    packages = dict(_OTHER_OPTIONAL_PACKAGES)
    for name in list_backends():  # sorted: onnx's own extra comes before tensorrt's, which also needs it
        backend = get_backend(name)
        for module in backend.requires:
            packages.setdefault(module, backend.extra)
    return packages


def _missing_extra(exc: ModuleNotFoundError) -> str | None:
    """The one-line message for an optional package that is not installed (``None``: not one of them)."""
    package = (exc.name or "").split(".")[0]
    extra = optional_packages().get(package)
    return None if extra is None else f"{package} is not installed: pip install 'hetero[{extra}]' (or '.[{extra}]' in a checkout)"


def _check_outputs(args: argparse.Namespace) -> None:
    """Every output folder flag of the command, checked before any work (see ``output_flags``)."""
    for name in getattr(args, "output_flags", ("out",)):
        value = getattr(args, name, None)
        if value is not None:
            check_output_dir(value, "--" + name.replace("_", "-"))


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` and run the command; returns the exit code (see the module docstring)."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a bad flag (already printed, one line)
        return exc.code if isinstance(exc.code, int) else EXIT_USER
    from hetero.runtime import seed_everything, set_quiet

    set_quiet(getattr(args, "quiet", False))
    seed_everything(getattr(args, "seed", 0))
    as_json = getattr(args, "json", False)
    try:
        _check_outputs(args)
        with _stdout_to_stderr() if as_json else contextlib.nullcontext():
            result = args.run(args)
    except UserError as exc:
        print(f"hetero {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USER
    except ModuleNotFoundError as exc:
        message = _missing_extra(exc)
        if message is None:  # hetero's own module or a required dependency missing: a broken install
            raise
        print(f"hetero {args.command}: error: {message}", file=sys.stderr)
        return EXIT_USER
    except KeyboardInterrupt:
        print(f"hetero {args.command}: interrupted; finished files are kept, re-run to resume", file=sys.stderr)
        return 130
    if not isinstance(result, Outcome):
        return int(result or 0)
    if as_json:
        print(json.dumps(json_ready(result.figures), allow_nan=False))
    if getattr(args, "strict", False) and result.failures:
        print(f"hetero {args.command}: quality gate failed (--strict): {'; '.join(result.failures)}", file=sys.stderr)
        return EXIT_GATE
    return 0
