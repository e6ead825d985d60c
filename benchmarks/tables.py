"""Regenerate the result tables of benchmarks/README.md from recorded results (never hand-copied).

A benchmark's run is recorded once: its rows, as the benchmark wrote them, go into
``benchmarks/results/NAME.json`` with the machine and commit they ran on. Each table in the README
sits between two markers naming the benchmark and, optionally, a filter on the rows::

    <!-- table real_data set=tiny-imagenet-100 -->
    | ... rendered here ... |
    <!-- /table -->

Commands::

    # add a run's rows (a row with the same key replaces the older one), then rewrite the tables
    python benchmarks/tables.py record real_data runs/real_data/results.json --edge-arch p37_48.json
    # rewrite every table from benchmarks/results/ (tests/test_benchmark_tables.py checks they match)
    python benchmarks/tables.py
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
README = HERE / "README.md"
MARKER = re.compile(r"<!-- table (?P<name>[\w-]+)(?P<filters>(?: [\w-]+=[^ >]+)*) -->\n(?P<body>.*?)<!-- /table -->", re.S)

Row = dict[str, Any]


def _edge(row: Row) -> str:
    """An edge architecture in a few words (``cloud_pruned keep 0.37 @48 px``)."""
    arch = row.get("edge_arch")
    if not arch:  # the benchmark's default
        return "mobilenet_v3 smallest"
    if arch["space"] == "cloud_pruned":
        return f"cloud_pruned keep {arch['keep']:g} @{arch['resolution']} px"
    return f"{arch['space']} @{arch.get('resolution', '?')} px"


#: Per benchmark: the key that identifies a row (a newer row with the same key replaces it) and the
#: table's columns as (header, right-aligned, cell).
TABLES: dict[str, tuple[tuple[str, ...], list[tuple[str, bool, Callable[[Row], str]]]]] = {
    "real_data": (
        ("set", "method", "edge"),
        [
            ("set", False, lambda r: r["set"]),
            ("method", False, lambda r: r["method"]),
            ("edge", False, _edge),
            ("MACs ratio", True, lambda r: f"{r['macs_ratio']:.1f}x"),
            ("paragon", True, lambda r: f"{r['paragon']:.4f}"),
            ("homogeneous", True, lambda r: f"{r['homogeneous']:.4f}"),
            ("cross", True, lambda r: f"{r['cross']:.4f}"),
            ("cross/paragon", True, lambda r: f"**{r['cross_over_paragon']:.3f}**"),
            ("held-out queries: cross/paragon", True,
             lambda r: f"{r['held_out']['cross_over_paragon']:.3f}" if r.get("held_out") else "-"),
            ("compatible", False, lambda r: str(r["compatible"])),
            ("collapsed", False, lambda r: str(r["collapsed"])),
            ("steps", True, lambda r: str(r["steps"])),
            ("edge min", True, lambda r: f"{r['edge_seconds'] / 60:.1f}"),
            ("machine", False, lambda r: r["machine"]),
        ],
    ),
    "int8_export": (
        ("model", "backend", "scheme"),
        [
            ("model", False, lambda r: r["model"]),
            ("backend", False, lambda r: r["backend"]),
            ("scheme", False, lambda r: r["scheme"]),
            ("cos min", True, lambda r: _number(r["cos_min"], ".6f")),
            ("top-1 agr", True, lambda r: _number(r["top1_agreement"], ".4f")),
            ("cross mAP (torch)", True, lambda r: f"{_number(r['cross_map'], '.4f')} ({_number(r['cross_map_torch'], '.4f')})"),
            ("bytes", True, lambda r: f"{r['bytes']:,}"),
            ("b32 latency vs fp32", True, lambda r: f"x{r['latency_x_fp32']:.2f}"),
            ("parity", False, lambda r: "PASS" if r["passed"] else "MISS"),
            ("layers kept float", True, lambda r: r["kept_float"] or "-"),
            ("AVX2-only cos min", True, lambda r: r.get("avx2_cos_min") or "-"),
            ("machine", False, lambda r: r["machine"]),
        ],
    ),
}


def _number(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _row_key(name: str, row: Row) -> str:
    return json.dumps([row.get(k) if k != "edge" else _edge(row) for k in TABLES[name][0]])


def render(name: str, rows: list[Row], filters: dict[str, str]) -> str:
    """The markdown table of ``rows`` (those matching ``filters``) for benchmark ``name``."""
    columns = TABLES[name][1]
    chosen = [r for r in rows if all(str(r.get(k)) == v for k, v in filters.items())]
    lines = ["| " + " | ".join(h for h, _, _ in columns) + " |",
             "|" + "|".join("---:" if right else "---" for _, right, _ in columns) + "|"]
    lines += ["| " + " | ".join(cell(r) for _, _, cell in columns) + " |" for r in chosen]
    return "\n".join(lines) + "\n"


def load(name: str) -> list[Row]:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text())["rows"] if path.exists() else []


def rendered_readme(text: str) -> str:
    """``text`` with every marked table rendered from benchmarks/results/."""

    def fill(match: re.Match[str]) -> str:
        name = match["name"]
        if name not in TABLES:
            raise SystemExit(f"README table names unknown benchmark {name!r}; known: {', '.join(TABLES)}")
        filters = dict(item.split("=", 1) for item in match["filters"].split())
        return f"<!-- table {name}{match['filters']} -->\n{render(name, load(name), filters)}<!-- /table -->"

    return MARKER.sub(fill, text)


def record(name: str, results: Path, edge_arch: Path | None) -> None:
    """Merge a run's rows into benchmarks/results/NAME.json (atomically) and rewrite the README."""
    from hetero._io import write_json
    from hetero.runtime import cpu_description

    found = json.loads(results.read_text())
    # A benchmark writes a list of rows, or {"cpu": ..., "rows": [...]} where it names the CPU itself.
    rows = found["rows"] if isinstance(found, dict) else found
    cpu = found["cpu"] if isinstance(found, dict) and "cpu" in found else cpu_description()
    machine = f"{cpu}, {os.cpu_count()} cores"
    commit = subprocess.run(["git", "-C", str(HERE), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    arch = json.loads(edge_arch.read_text()) if edge_arch else None
    for row in rows:
        if arch is not None and "edge_arch" not in row:  # rows of a run older than the edge_arch field
            row["edge_arch"] = arch
        row.setdefault("machine", machine)
        row.setdefault("recorded_at_commit", commit)  # the run itself may be older
        row.setdefault("recorded", date.today().isoformat())
    merged = {_row_key(name, r): r for r in load(name)}
    merged.update({_row_key(name, r): r for r in rows})
    RESULTS.mkdir(exist_ok=True)
    write_json(RESULTS / f"{name}.json", {"benchmark": f"benchmarks/{name}.py", "rows": list(merged.values())})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="action")
    rec = sub.add_parser("record", help="add a run's results.json to benchmarks/results/ and rewrite the tables")
    rec.add_argument("benchmark", choices=sorted(TABLES))
    rec.add_argument("results", type=Path)
    rec.add_argument("--edge-arch", type=Path, help="the --edge-arch the run was given (for rows that lack it)")
    args = parser.parse_args(argv)
    if args.action == "record":
        record(args.benchmark, args.results, args.edge_arch)
    text = README.read_text()
    new = rendered_readme(text)
    if new != text:
        from hetero._io import write_text

        write_text(README, new)
    print(f"{README.relative_to(HERE.parent)}: {len(MARKER.findall(new))} table(s) rendered", file=sys.stderr)


if __name__ == "__main__":
    main()
