"""The demo's light install: building the CLI needs no optional package, and a missing one is one line."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_building_the_cli_imports_no_optional_package() -> None:
    code = ("import sys; from hetero.cli import build_parser, optional_packages; build_parser(); "
            "loaded = set(sys.modules); print(sorted(p for p in optional_packages() if p in loaded))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"


def test_a_missing_optional_package_is_one_line_naming_its_extra(monkeypatch, capsys) -> None:
    from hetero import cli

    def run(args):
        raise ModuleNotFoundError("No module named 'optuna'", name="optuna")

    parser = cli.build_parser()
    args = parser.parse_args(["devices"])
    monkeypatch.setattr(cli, "build_parser", lambda: type("P", (), {"parse_args": lambda self, argv: args})())
    monkeypatch.setattr(args, "run", run, raising=False)
    assert cli.main(["devices"]) == cli.EXIT_USER
    assert capsys.readouterr().err == ("hetero devices: error: optuna is not installed: pip install 'hetero[search]' "
                                       "(or '.[search]' in a checkout)\n")

    def broken(args):
        raise ModuleNotFoundError("No module named 'hetero.nothing'", name="hetero.nothing")

    monkeypatch.setattr(args, "run", broken, raising=False)
    with pytest.raises(ModuleNotFoundError):  # hetero's own module missing: a bug, its traceback kept
        cli.main(["devices"])


def test_the_search_package_names_each_lazy_export_for_type_checkers_too() -> None:
    import hetero.search as search

    tree = ast.parse((ROOT / "hetero" / "search" / "__init__.py").read_text())
    guarded = next(n for n in tree.body if isinstance(n, ast.If) and getattr(n.test, "id", "") == "TYPE_CHECKING")
    seen = {alias.name: node.module.rsplit(".", 1)[1] for node in guarded.body if isinstance(node, ast.ImportFrom)
            for alias in node.names}
    assert seen == search._WHERE
    assert all(getattr(search, name) is not None for name in search.__all__)
