"""A plain aligned text table: what the CLI and the benchmarks print."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["format_table", "print_table"]


def format_table(headers: list[str], rows: Sequence[Sequence[object]]) -> str:
    """``rows`` under ``headers``, columns aligned, numbers right-aligned and floats to 4 decimals."""
    numeric = [all(isinstance(row[i], (int, float)) for row in rows) for i in range(len(headers))]
    cells = [headers] + [[f"{c:.4f}" if isinstance(c, float) else str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = []
    for i, row in enumerate(cells):
        lines.append("  ".join(c.rjust(w) if numeric[j] else c.ljust(w) for j, (c, w) in enumerate(zip(row, widths))).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def print_table(headers: list[str], rows: Sequence[Sequence[object]]) -> None:
    """A plain aligned table on stdout (readable in a terminal and in a CI log); numbers right-aligned."""
    print(format_table(headers, rows))
