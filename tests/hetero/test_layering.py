"""The library never imports the CLI: use cases live in hetero (hetero.stages), the CLI only parses and prints."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

HETERO = Path(__file__).resolve().parents[2] / "hetero"
#: `python -m hetero` is the CLI's entry point, not library code.
ENTRY_POINTS = {HETERO / "__main__.py"}


def cli_imports(source: str, module: str) -> list[str]:
    """The imports of ``hetero.cli`` (or a module under it) in ``source``, the code of ``module``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the importing module's package
                base = module.split(".")[: -node.level]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            names = [target] + [f"{target}.{alias.name}" for alias in node.names]
        else:
            continue
        found += [f"line {node.lineno}: {name}" for name in names if name == "hetero.cli" or name.startswith("hetero.cli.")]
    return found


def _library_modules() -> list[Path]:
    return sorted(p for p in HETERO.rglob("*.py") if "cli" not in p.relative_to(HETERO).parts[:1] and p not in ENTRY_POINTS)


def test_no_library_module_imports_the_cli() -> None:
    modules = _library_modules()
    assert len(modules) > 20  # the walk found the library
    offenders = {}
    for path in modules:
        module = ".".join(("hetero", *path.relative_to(HETERO).with_suffix("").parts))
        hits = cli_imports(path.read_text(encoding="utf-8"), module)
        if hits:
            offenders[str(path.relative_to(HETERO.parent))] = hits
    assert not offenders, f"library modules import hetero.cli (move the use case to hetero.stages): {offenders}"


@pytest.mark.parametrize("source", [
    "from hetero.cli._export import export_for_device",
    "import hetero.cli",
    "from hetero import cli",
    "def f():\n    from .. import cli\n",
])
def test_the_check_sees_each_form_of_import(source: str) -> None:
    assert cli_imports(source, "hetero.bench._multi")
