"""``hetero report RUN``: a search run as Markdown and as one self-contained HTML page.

Both are rendered from the same blocks (headings, paragraphs, tables, code), read from
``RUN/search.json``; the Pareto plot is saved as ``RUN/pareto.png`` and inlined in the HTML as
base64. The plot shows every trial's validation cross mAP against its cost, the Pareto front,
the budget, the paragon and the space's hand-picked default architecture.
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hetero._io import atomic_path, read_json, write_text
from hetero.errors import UserError
from hetero.search._choice import describe_choice, describe_test_gain, reference_label
from hetero.search._data import describe_validation
from hetero.search._ranking import describe_ranking
from hetero.search._rerank import rerank_line

__all__ = ["write_report", "REPORT_FILES"]

REPORT_FILES = {"markdown": "report.md", "html": "report.html", "plot": "pareto.png"}
_LABELS = {"macs": "MACs per image", "latency_ms": "p50 latency on the device's runtime (ms)"}


def _plot(summary: dict, path: Path) -> bytes:
    import matplotlib

    matplotlib.use("Agg")  # no display on a server or in CI
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    unit = summary["device"]["objective"] if summary["device"]["objective"] == "macs" else "latency_ms"
    rows = [r for r in summary["trials"] if r.get("cross_map") is not None and r.get(unit) is not None]
    fig, ax = plt.subplots(figsize=(10, 5))
    styles: tuple[tuple[str, dict[str, Any]], ...] = (("COMPLETE", {"marker": "o", "alpha": 0.55}),
                                                     ("PRUNED", {"marker": "x", "alpha": 0.45}))
    for state, style in styles:
        for feasible, colour in ((True, "tab:blue"), (False, "tab:red")):
            pts = [r for r in rows if r["state"] == state and bool(r.get("feasible")) == feasible]
            if pts:
                label = f"{state.lower()} trial{'' if feasible else ', over budget'}"
                ax.scatter([r[unit] for r in pts], [r["cross_map"] for r in pts], s=18, color=colour, label=label, **style)
    front = {n: None for n in summary["pareto"]}
    front_rows = sorted((r for r in rows if r["number"] in front), key=lambda r: r[unit])
    if front_rows:
        ax.plot([r[unit] for r in front_rows], [r["cross_map"] for r in front_rows], "-o", color="black", markersize=6,
                linewidth=1.5, label="Pareto front", zorder=3)
    ax.axhline(summary["paragon"]["val_map"], color="tab:green", linestyle="--", linewidth=1,
               label=f"paragon, cloud -> cloud ({summary['paragon']['val_map']:.3f}; images the cloud trained on)")
    space = summary["config"]["space"]
    # The space's default, the search's first trial: the reference too, unless that is another space's.
    default = "default architecture" if reference_label(summary.get("reference"), space) == reference_label(None, space) else f"{space}'s default"
    for r in rows:
        if r.get("reference") == "default":
            ax.scatter([r[unit]], [r["cross_map"]], marker="*", s=260, color="gold", edgecolor="black", zorder=4,
                       label=f"{default} (trial {r['number']})")
    pick = summary.get("pick")
    if pick:
        chosen = next((r for r in rows if r["number"] == pick["search_trial"]), None)
        if chosen is not None:
            ax.scatter([chosen[unit]], [chosen["cross_map"]], marker="D", s=120, facecolor="none", edgecolor="tab:purple",
                       linewidth=2, zorder=5, label=f"pick (trial {chosen['number']})")
    ax.set_xscale("log")
    # Ticks at 1, 2 and 5 of each decade, written plainly (1.5M, 2 ms): a search spans less than a decade or two.
    ax.xaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    plain = (lambda v, _: f"{v / 1e6:g}M") if unit == "macs" else (lambda v, _: f"{v:g} ms")
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(plain))
    budget = summary["device"]["budgets"].get(unit)
    if budget:
        ax.axvline(budget, color="tab:red", linestyle=":", linewidth=1, label=f"budget ({plain(budget, None)})")
    ax.set_xlabel(_LABELS[unit])
    ax.set_ylabel("cross mAP, edge query -> cloud gallery (validation)")
    ax.set_title(f"hetero search: {summary['config']['strategy']}, {summary['device']['device']}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    data = buffer.getvalue()
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return data


def _fmt(value, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _figures_table(summary: dict) -> list[list[str]]:
    rows = []
    reference = summary.get("reference")
    paragon = summary["paragon"].get("test")
    if paragon:
        rows.append(["paragon (cloud -> cloud)", "-", "-", _fmt(summary["cloud"]["macs"]), _fmt(summary["cloud"]["params"]), _fmt(paragon["map"])])
    for name, entry in (("pick", summary.get("pick")), (reference_label(reference, summary["config"]["space"]), reference)):
        if entry and entry.get("test"):
            test = entry["test"]
            rows.append([name, _fmt(test["cross_torch"]["map"]), _fmt(test["homogeneous_edge"]["map"]), _fmt(entry["macs"]),
                         _fmt(entry["params"]), _fmt(test["paragon"]["map"])])
    return rows


def _sentence(line: str) -> str:
    """A CLI line as a report sentence: first letter upper-cased (only it: "mAP" stays), a full stop."""
    return line[:1].upper() + line[1:] + "."


def _validation_line(pick: dict, reference: dict | None) -> str:
    """How the pick compares with the default architecture on validation (what it was chosen on)."""
    val = pick.get("val", {})
    line = f"Validation: cross mAP {_fmt(val.get('cross_map'))}, alignment {_fmt(val.get('alignment'))}"
    if reference and reference.get("val"):
        line += (f" (default architecture: cross mAP {_fmt(reference['val'].get('cross_map'))}, "
                 f"alignment {_fmt(reference['val'].get('alignment'))})")
    return line + f". Chosen: {describe_choice(pick)}."


def _blocks(summary: dict) -> list[tuple[str, object]]:
    cfg, dev = summary["config"], summary["device"]
    rates = summary["search"]["rates"]
    speed = summary.get("speed", {})
    blocks: list[tuple[str, object]] = [
        ("h1", f"hetero search: {cfg['strategy']} on {summary['data']['spec']} for {dev['device']}"),
        ("p", f"Study `{summary['study']}` in {summary['storage']}: {rates.get('finished', 0)} finished trials "
              f"({rates.get('complete', 0)} complete), {cfg['space']} space, objective {dev['objective']}, budgets "
              f"{json.dumps(dev['budgets'])}. Trials were scored on a validation part of the training split "
              f"({summary['data']['val_images']} images); final figures are on the test split ({summary['data']['test_images']} images)."),
        ("img", "pareto"),
    ]
    if summary.get("validation"):
        blocks.append(("p", _sentence(describe_validation(summary["validation"]))))
    speed_lines = []
    if speed.get("oneshot_seconds_per_arch"):
        speed_lines.append(f"oneshot: {speed['oneshot_seconds_per_arch']:.3f} s per architecture evaluated "
                           f"({60 / speed['oneshot_seconds_per_arch']:.1f} per minute)")
    if speed.get("standalone_seconds_per_arch"):
        speed_lines.append(f"standalone: {speed['standalone_seconds_per_arch']:.1f} s to train one architecture "
                           f"({speed['standalone_how']})")
    if speed.get("speedup"):
        speed_lines.append(f"oneshot evaluates an architecture {speed['speedup']:.0f}x faster than standalone trains one")
    if summary.get("supernet", {}).get("seconds"):
        speed_lines.append(f"supernet training: {summary['supernet']['seconds']:.0f} s, {summary['supernet']['epochs']} epochs (once per run)")
    if speed_lines:
        blocks += [("h2", "Speed"), ("ul", speed_lines)]
    figures = _figures_table(summary)
    if figures:
        blocks += [("h2", "Final figures (test split)"),
                   ("table", (["model", "cross mAP", "homogeneous mAP", "MACs", "params", "paragon mAP"], figures))]
    pick = summary.get("pick")
    if pick:
        blocks += [("h2", "Chosen architecture"),
                   ("p", (f"Search trial {pick['search_trial']}, fine-tuned in final trial {pick['final_trial']}"
                          if pick["final_trial"] is not None else
                          f"The {reference_label(pick, cfg['space'])}, trained as the reference")
                         + f"; under budget: {_fmt(pick['under_budget'])}. Written to `best/edge.pt` and `best/arch.json`."),
                   ("p", _validation_line(pick, summary.get("reference"))),
                   *([("p", _sentence(describe_test_gain(pick["test_vs_reference"], reference_label(summary["reference"], cfg["space"]))))]
                     if pick.get("test_vs_reference") else []),
                   ("code", json.dumps({"arch": pick["arch"], "knobs": pick["knobs"]}, indent=2))]
        if pick.get("rerank", {}).get("candidates"):
            blocks.append(("p", _sentence(rerank_line(pick["rerank"]))))
        if pick.get("ranking"):
            blocks.append(("p", _sentence(describe_ranking(pick["ranking"], cfg["strategy"]))))
    elif summary.get("no_pick"):
        blocks += [("h2", "Chosen architecture"), ("p", summary["no_pick"])]
    front = set(summary["pareto"])
    head = ["trial", "state", "MACs", "params", "latency ms", "cross mAP", "homog. mAP", "feasible", "seconds", "note"]
    table = []
    for r in summary["trials"]:
        notes = [n for n, on in (("Pareto", r["number"] in front), ("default", r.get("reference") == "default"),
                                 ("pick", pick is not None and r["number"] == pick["search_trial"]),
                                 (f"retry of {r.get('retry_of')}", r.get("retry_of") is not None)) if on]
        table.append([str(r["number"]), r["state"], _fmt(r.get("macs")), _fmt(r.get("params")), _fmt(r.get("latency_ms"), 3),
                      _fmt(r.get("cross_map")), _fmt(r.get("homogeneous_map")), _fmt(r.get("feasible")), _fmt(r.get("seconds"), 2),
                      ", ".join(notes)])
    blocks += [("h2", "Trials"), ("table", (head, table)),
               ("p", f"Browse the study live: `optuna-dashboard {_dashboard_storage(summary)}`.")]
    return blocks


def _dashboard_storage(summary: dict) -> str:
    label = summary["storage"]
    return label.removeprefix("journal file ") if label.startswith("journal file ") else label


def _md_table(content) -> str:
    head, rows = content
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def _html_table(content) -> str:
    e = html.escape
    head, rows = content
    cells = "".join(f"<th>{e(h)}</th>" for h in head)
    trs = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{cells}</tr></thead><tbody>{trs}</tbody></table>"


def _markdown(blocks: list[tuple[str, object]], png_name: str) -> str:
    render: dict[str, Callable[[Any], str]] = {
        "h1": lambda c: f"# {c}",
        "h2": lambda c: f"## {c}",
        "p": str,
        "ul": lambda c: "\n".join(f"- {line}" for line in c),
        "img": lambda c: f"![Pareto front]({png_name})",
        "code": lambda c: f"```json\n{c}\n```",
        "table": _md_table,
    }
    return "\n\n".join(render[kind](content) for kind, content in blocks) + "\n"


def _html(blocks: list[tuple[str, object]], png: bytes, title: str) -> str:
    e = html.escape
    image = base64.b64encode(png).decode("ascii")
    render: dict[str, Callable[[Any], str]] = {
        "h1": lambda c: f"<h1>{e(c)}</h1>",
        "h2": lambda c: f"<h2>{e(c)}</h2>",
        "p": lambda c: f"<p>{e(c)}</p>",
        "ul": lambda c: "<ul>" + "".join(f"<li>{e(line)}</li>" for line in c) + "</ul>",
        "img": lambda c: f"<img alt='Pareto front' src='data:image/png;base64,{image}'>",
        "code": lambda c: f"<pre>{e(c)}</pre>",
        "table": _html_table,
    }
    body = "\n".join(render[kind](content) for kind, content in blocks)
    style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}table{border-collapse:collapse;font-size:13px}"
             "td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}img{max-width:100%}pre{background:#f4f4f4;padding:8px}")
    return (f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>{e(title)}</title><style>{style}</style></head>"
            f"<body>\n{body}\n</body></html>\n")


def write_report(run_dir: str | os.PathLike[str]) -> dict[str, Path]:
    """Write ``report.md``, ``report.html`` and ``pareto.png`` into a search's run folder.

    Raises:
        UserError: The folder holds no finished search (``search.json``).
    """
    run_dir = Path(run_dir)
    if not (run_dir / "search.json").is_file():
        raise UserError(f"{run_dir} holds no search.json: pass the --out folder of a finished `hetero search`")
    summary = read_json(run_dir / "search.json")
    paths = {k: run_dir / v for k, v in REPORT_FILES.items()}
    png = _plot(summary, paths["plot"])
    blocks = _blocks(summary)
    write_text(paths["markdown"], _markdown(blocks, REPORT_FILES["plot"]))
    write_text(paths["html"], _html(blocks, png, str(blocks[0][1])))
    return paths
