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


#: What each top-level folder may import of the hetero namespace (DESIGN: devices and search_spaces
#: know nothing of the core library; export knows devices; devices is the lowest layer, whose atomic
#: writer and error base class everyone shares).
ALLOWED = {
    "devices": ("hetero.devices",),
    "search_spaces": ("hetero.search_spaces", "hetero.devices"),
    "export": ("hetero.export", "hetero.devices"),
}


def hetero_imports(source: str) -> list[str]:
    """Every absolute ``hetero...`` module name that ``source`` imports."""
    names = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            names.append(node.module)
    return [n for n in names if n == "hetero" or n.startswith("hetero.")]


@pytest.mark.parametrize("folder", sorted(ALLOWED))
def test_data_flows_one_way_between_the_folders(folder: str) -> None:
    root = HETERO.parent / folder
    files = sorted(root.rglob("*.py"))
    assert files and (HETERO / folder).resolve() == root.resolve()  # installed as hetero.<folder>
    offenders = {
        str(path.relative_to(root.parent)): bad
        for path in files
        if (bad := [n for n in hetero_imports(path.read_text(encoding="utf-8"))
                    if not any(n == a or n.startswith(a + ".") for a in ALLOWED[folder])])
    }
    assert not offenders, f"{folder}/ imports what it must not know: {offenders}"


def test_the_flow_check_sees_a_core_import() -> None:
    assert hetero_imports("from hetero.pipeline import train_edge\nimport hetero.devices") == ["hetero.pipeline", "hetero.devices"]
