"""Regenerate the result tables of benchmarks/README.md from recorded results (never hand-copied).

A benchmark's run is recorded once: its rows, as the benchmark wrote them, go into
``benchmarks/results/NAME.json`` with the machine and commit they ran on. Each table in the README
sits between two markers naming the benchmark and, optionally, filters on the rows (a value may
list alternatives, ``set=a,b``, and is quoted where it holds spaces, ``gallery="synthetic noise 1.75"``)::

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
import shlex
import subprocess
import sys
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
README = HERE / "README.md"
MARKER = re.compile(r'<!-- table (?P<name>[\w-]+)(?P<filters>(?: [\w-]+=(?:"[^"]*"|[^ >"]+))*) -->\n(?P<body>.*?)<!-- /table -->', re.S)

Row = dict[str, Any]


def _edge(row: Row) -> str:
    """An edge architecture in a few words (``cloud_pruned keep 0.37 @48 px``)."""
    arch = row.get("edge_arch")
    if not arch:  # the benchmark's default
        return "mobilenet_v3 smallest"
    if arch["space"] == "cloud_pruned":
        return f"cloud_pruned keep {arch['keep']:g} @{arch['resolution']} px"
    return f"{arch['space']} @{arch.get('resolution', '?')} px"


def _pick(row: Row) -> str:
    """A search's pick in a few words (``cloud_pruned keep 0.375 @24 px``, ``mobilenet_v3 @28 px``)."""
    arch = row.get("pick")
    if not arch:
        return "-"
    return _edge({"edge_arch": arch}) + (" (default)" if row["strategy"] == "default" else "")


def _setting(row: Row) -> str:
    """A faiss index's settings in a few words (``nlist 1024, nprobe 64``); ``-`` for exact search."""
    params = row.get("params") or {}
    names = {"nlist": "nlist", "nprobe": "nprobe", "M": "M", "ef_construction": "efC", "ef_search": "efSearch"}
    return ", ".join(f"{short} {params[key]}" for key, short in names.items() if key in params) or "-"


def _supernet_seed(row: Row) -> str:
    """The label of a row whose supernet had a seed of its own (--supernet-seed): " (seed S)", else empty."""
    return f" (seed {row['supernet_seed']})" if "supernet_seed" in row else ""


def _search_epochs(row: Row) -> str:
    """Trial and final epochs; a oneshot row given --supernet-epochs names its supernet's instead (and its seed)."""
    first = f"supernet {row['supernet_epochs']}{_supernet_seed(row)}" if row.get("supernet_epochs") else str(row["trial_epochs"])
    return f"{first} / {row['final_epochs']}"


def _tau_means(row: Row) -> list[float]:
    """Each subnet's fine-tuned score the ranking is judged on (mean over seeds)."""
    # Rows recorded before --tau-seeds hold one score per subnet, later ones a list per subnet.
    return [sum(r) / len(r) if isinstance(r, list) else r for r in row.get("tau_fine_tuned") or []]


def _tau_range(row: Row) -> str:
    """The spread of the fine-tuned scores the ranking is judged on."""
    means = _tau_means(row)
    return f"{min(means):.3f}-{max(means):.3f}" if means else "-"


def _tau_interval(row: Row) -> str:
    """The Kendall tau's 95% bootstrap interval over the subnets (resampled), from the recorded scores."""
    from hetero.search import kendall_tau_interval

    means = _tau_means(row)
    interval = kendall_tau_interval(row["tau_inherited"], means) if row.get("tau_inherited") and means else None
    return "-" if interval is None else f"{interval[0]:+.2f} to {interval[1]:+.2f}"


def _figures(*columns: tuple[str, str, str]) -> list[tuple[str, bool, Callable[[Row], str]]]:
    """Right-aligned numeric columns ``(header, key, format)``: ``-`` where the row has no value; a
    format starting with ``**`` is shown bold."""

    def cell(key: str, spec: str) -> Callable[[Row], str]:
        bold = spec.startswith("**")
        return lambda r: ("**{}**" if bold and r.get(key) is not None else "{}").format(_number(r.get(key), spec.lstrip("*")))

    return [(header, True, cell(key, spec)) for header, key, spec in columns]


def _proxy_taus(row: Row) -> str:
    """``E: tau`` of each short fine-tuning proxy (search_efficiency.py --tau-proxy-epochs)."""
    proxies = row.get("tau_proxy") or {}
    return ", ".join(f"{e}: {_number(p['kendall_tau'], '+.3f')}" for e, p in proxies.items()) or "-"


def _overrides(row: Row, key: str = "edge_config") -> str:
    """``, metric 0.0, alignment 6.0``: the row's ``--edge-config`` (or ``key``'s) overrides, or nothing."""
    return "".join(f", {k} {v}" for k, v in (row.get(key) or {}).items())


def _defuse_set(row: Row) -> str:
    """``fashion (1206)``, with the edge's ``--edge-config`` overrides when it had some."""
    return f"{row['set']} ({row['edge_steps']}{_overrides(row)})"


#: Tables that show rows another benchmark recorded: (that benchmark, the rows the table shows).
DERIVED_TABLES: dict[str, tuple[str, Callable[[list[Row]], list[Row]]]] = {
    "kendall_tau": ("search_efficiency", lambda rows: [r for r in rows if r.get("kendall_tau") is not None]),
    "defuse_correction": ("defuse", lambda rows: [{**r, **step} for r in rows for step in r["sweep"]]),  # one per lambda
}


#: Per benchmark: the key that identifies a row (a newer row with the same key replaces it) and the
#: table's columns as (header, right-aligned, cell).
TABLES: dict[str, tuple[tuple[str, ...], list[tuple[str, bool, Callable[[Row], str]]]]] = {
    "real_data": (
        ("set", "method", "edge", "epochs", "edge_config", "edge_seed"),
        [
            ("set", False, lambda r: r["set"]),
            ("method", False, lambda r: r["method"] + (f", {r['epochs']} epochs" if r.get("epochs") else "")
             + _overrides(r)
             + (f", edge seed {r['edge_seed']}" if r.get("edge_seed") is not None else "")),
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
    "scale": (
        ("gallery", "items", "queries", "method", "setting"),
        [
            ("gallery", False, lambda r: r["gallery"]),
            ("items", True, lambda r: f"{r['items']:,}"),
            ("queries", True, lambda r: f"{r['queries']:,}"),
            ("method", False, lambda r: r["method"]),
            ("setting", False, _setting),
            ("build s", True, lambda r: f"{r['build_s']:.1f}" if "build_s" in r else "-"),
            ("search s", True, lambda r: f"{r['search_s']:.2f}" if "search_s" in r else "-"),
            ("queries/s", True, lambda r: f"{r['queries_per_s']:.1f}" if "queries_per_s" in r else "-"),
            ("x exact", True, lambda r: f"{r['x_exact']:.1f}" if "x_exact" in r else "-"),
            ("R@1", True, lambda r: "(1)" if r["method"] == "exact" else _number(r.get("recall_at_1"), ".3f")),
            ("R@10", True, lambda r: "(1)" if r["method"] == "exact" else _number(r.get("recall_at_10"), ".3f")),
            ("mAP", True, lambda r: _number(r.get("map"), ".3f")),
            ("peak MiB", True, lambda r: f"{r['peak_rss_mib']:.0f}" if "peak_rss_mib" in r else r.get("error", "-")),
            ("machine", False, lambda r: r["machine"]),
        ],
    ),
    # Keyed by the machine too: the same settings on another CPU give other floats (another cloud, other
    # scores), so that run sits beside the first rather than over it.
    "search_efficiency": (
        ("data", "space", "minutes", "final_epochs", "supernet_epochs", "supernet_seed", "strategy", "machine"),
        [
            ("data", False, lambda r: r["data"]),
            ("space searched", False, lambda r: r["space"]),
            ("min per strategy", True, lambda r: f"{r['minutes']:g}"),
            ("strategy", False, lambda r: r["strategy"]),
            ("evaluated", True, lambda r: str(r["evaluated"]) if "evaluated" in r else "-"),
            ("s per arch", True, lambda r: _number(r.get("seconds_per_arch"), ".2f")),
            ("pick", False, _pick),
            ("pick MACs", True, lambda r: f"{r['pick_macs']:,}" if r.get("pick_macs") else "-"),
            ("test cross mAP", True, lambda r: f"**{r['test_cross_map']:.4f}**" if r.get("test_cross_map") is not None else "-"),
            ("P(> default)", True, lambda r: _number(r.get("p_better_than_default"), ".3f")),
            ("paragon", True, lambda r: f"{r['paragon']:.4f}"),
            ("Kendall tau", True, lambda r: _number(r.get("kendall_tau"), "+.3f")),
            ("epochs: trial / final", True, _search_epochs),
            ("machine", False, lambda r: r["machine"]),
        ],
    ),
    # The oneshot rows that measured a ranking (search_efficiency.py --tau-*), in more detail.
    "kendall_tau": (
        ("data", "space", "minutes", "final_epochs", "supernet_epochs", "supernet_seed", "strategy", "machine"),
        [
            ("data", False, lambda r: r["data"]),
            ("supernet epochs", True, lambda r: str(r.get("supernet_epochs") or "sized to the budget") + _supernet_seed(r)),
            ("subnets", True, lambda r: str(r["tau_subnets"])),
            ("drawn from", False, lambda r: "the whole space" if r.get("tau_sample") == "space" else "under the MACs budget"),
            ("scored on", False, lambda r: "test classes" if r.get("tau_on") == "test" else "validation part"),
            ("fine-tuning epochs x seeds", True, lambda r: f"{r.get('tau_epochs', 3)} x {r.get('tau_seeds', 1)}"),
            ("fine-tuned range", True, lambda r: _tau_range(r)),
            ("Kendall tau", True, lambda r: f"**{r['kendall_tau']:+.3f}**"),
            ("95% interval", True, _tau_interval),
            ("seed-to-seed tau", True, lambda r: _number(r.get("tau_seed_ceiling"), "+.3f")),
            ("tau after E epochs from inherited weights", True, _proxy_taus),
            ("machine", False, lambda r: r["machine"]),
        ],
    ),
    "lqf": (
        ("set", "base", "seed", "shots", "method", "lqf_epochs", "lqf_config"),
        [
            ("set", False, lambda r: r["set"]),
            ("base edge", False, lambda r: r.get("base", "-")),
            ("seed", True, lambda r: str(r.get("seed", 0))),
            ("shots", True, lambda r: str(r["shots"])),
            ("method", False, lambda r: r["method"] + (f", {r['lqf_epochs']} epochs" if r.get("lqf_epochs") else "")
             + _overrides(r, "lqf_config")),
            ("images", True, lambda r: str(r["images"]) if r["images"] else "-"),
            ("new cross mAP", True, lambda r: f"**{r['new_cross_map']:.4f}**"),
            ("new homog. mAP", True, lambda r: f"{r['new_homogeneous_map']:.4f}"),
            ("compatible", False, lambda r: str(r["compatible"])),
            ("NFR new", True, lambda r: _number(r.get("nfr_new"), ".4f")),
            ("old cross mAP", True, lambda r: f"{r['old_cross_map']:.4f}"),
            ("NFR old", True, lambda r: _number(r.get("nfr_old"), ".4f")),
            ("steps", True, lambda r: str(r["steps"]) if r["steps"] else "-"),
            ("s", True, lambda r: f"{r['seconds']:.0f}" if r["seconds"] else "-"),
            ("paragon", True, lambda r: _number(r.get("paragon"), ".4f")),
            ("machine", False, lambda r: r["machine"]),
        ],
    ),
    "defuse": (
        ("set", "seed", "edge_steps", "edge_config", "defuse_seed"),
        [
            ("set (edge steps)", False, _defuse_set),
            ("Defuse seed", True, lambda r: str(r["defuse_seed"])),
            ("cloud right", True, lambda r: f"{r['reference_accuracy']:.3f}"),
            ("edge right", True, lambda r: f"{r['candidate_accuracy']:.3f}"),
            ("kept", True, lambda r: str(r["kept"])),
            ("groups (sizes)", False, lambda r: f"**{r['groups']}** ({', '.join(map(str, r['group_sizes']))})"),
            ("active dims", True, lambda r: str(r["active_dims"])),
            ("held-out failures", True, lambda r: str(r["held_out_failures"])),
            ("test top-1 before", True, lambda r: f"{r['test_before']['top1']:.4f}"),
            ("find s", True, lambda r: f"{r['find_seconds']:.0f}"),
            ("machine", False, lambda r: r["machine"]),
        ],
    ),
    "defuse_correction": (
        ("set", "seed", "edge_steps", "edge_config", "defuse_seed", "lambda"),
        [
            ("set (edge steps)", False, _defuse_set),
            ("Defuse seed", True, lambda r: str(r["defuse_seed"])),
            ("lambda", True, lambda r: f"{r['lambda']:g}"),
            ("held-out failure acc", True, lambda r: f"{r['failure_accuracy']:.3f}"),
            ("pts vs before", True, lambda r: f"{r['failure_gain_points']:+.1f}"),
            ("pts vs lambda 0", True, lambda r: f"{r['failure_gain_over_control_points']:+.1f}"),
            ("test top-1 (pts)", True, lambda r: f"{r['test_top1']:.4f} ({r['test_top1_change_points']:+.2f})"),
            ("test mAP (pts)", True, lambda r: f"{r['test_map']:.4f} ({r['test_map_change_points']:+.2f})"),
            ("s", True, lambda r: f"{r['seconds']:.0f}"),
        ],
    ),
    "updates": (
        ("data", "seed", "old_classes", "old_epochs", "epochs", "update"),
        [
            ("update", False, lambda r: r["update"]),
            ("new,new top-1", True, lambda r: f"{r['new_new_top1']:.4f}"),
            ("new,new mAP", True, lambda r: f"{r['new_new_map']:.4f}"),
            ("new->old top-1", True, lambda r: f"{r['new_old_top1']:.4f}"),
            ("new->old mAP", True, lambda r: f"**{r['new_old_map']:.4f}**"),
            ("old,old mAP", True, lambda r: _number(r.get("old_old_map"), ".4f")),
            ("compatible", False, lambda r: str(r["compatible"])),
            ("gap closed", True, lambda r: _number(r.get("gap_closed"), "+.3f")),
            ("NFR new->old", True, lambda r: f"{r['nfr_new_old']:.4f}"),
            ("NFR new->new", True, lambda r: f"{r['nfr_new_new']:.4f}"),
            ("NFI new->new", True, lambda r: f"{r['nfi_new_new']:.4f}"),
            ("epochs", True, lambda r: str(r["epochs"])),
            ("machine", False, lambda r: r["machine"]),
        ],
    ),
    "runtimes": (
        ("data", "edge_epochs", "threads", "device"),
        [
            ("runtime", False, lambda r: r["backend"]),
            ("prec", False, lambda r: r["precision"]),
            ("cross mAP", True, lambda r: _number(r.get("cross_map_runtime"), ".4f")),
            ("cos min", True, lambda r: _number(r.get("cos_min"), ".7f")),
            ("top-1 agr", True, lambda r: _number(r.get("top1_agreement"), ".4f")),
            ("same img", True, lambda r: _number(r.get("top1_item_agreement"), ".4f")),
            ("NFR", True, lambda r: _number(r.get("nfr"), ".4f")),
            ("p50 b1 ms", True, lambda r: _number(r.get("p50_b1_ms"), ".3f")),
            ("x eager", True, lambda r: _number(r.get("ratio_b1"), ".3f")),
            ("p50 batch ms", True, lambda r: _number(r.get("p50_batch_ms"), ".3f")),
            ("x eager (batch)", True, lambda r: _number(r.get("ratio_batch"), ".3f")),
            ("bytes", True, lambda r: f"{r['artifact_bytes']:,}" if r.get("artifact_bytes") else "-"),
            ("status", False, lambda r: r.get("status", "")),
            ("machine", False, lambda r: r["machine"]),
        ],
    ),
    "compat_losses": (
        ("data", "cloud_epochs", "edge_epochs", "edge_resolution", "arm"),
        [
            ("training", False, lambda r: r["arm"]),
            *_figures(("homogeneous mAP", "homogeneous", ".4f"), ("cross mAP", "cross", "**.4f"),
                      ("cross mAP@R", "cross_map_at_r", ".4f"), ("cross top-1", "cross_top1", ".4f"),
                      ("gap closed", "gap_closed", "+.3f"), ("cross / paragon", "cross_over_paragon", ".3f"),
                      ("vs independent", "vs_independent", ".3f")),
            ("compatible", False, lambda r: str(r["compatible"])),
            *_figures(("paragon", "paragon", ".4f")),
            ("MACs ratio", True, lambda r: f"{r['macs_ratio']:.1f}x"),
            ("edge epochs", True, lambda r: str(r["edge_epochs"])),
            ("s", True, lambda r: f"{r['seconds']:.0f}"),
            ("machine", False, lambda r: r["machine"]),
        ],
    ),
    "int8_agreement": (
        ("model", "data", "perturbation"),
        [
            ("perturbation", False, lambda r: r["perturbation"]),
            *_figures(("cos min", "cos_min", ".6f"), ("cos mean", "cos_mean", ".6f"), ("same img", "agreement", "**.4f"),
                      ("top-1 agr", "class_agreement", ".4f")),
            ("layers agreeing alone", True, lambda r: r.get("layers_agreeing") or "-"),
            ("queries", True, lambda r: str(r["queries"])),
            ("top-1 gap 2/10/50%", True, lambda r: " / ".join(f"{q:.6f}" for q in r["gap_quantiles"])),
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


#: Key parts computed from a row rather than read from it.
_DERIVED: dict[str, Callable[[Row], str]] = {"edge": _edge, "setting": _setting}


def _row_key(name: str, row: Row) -> str:
    return json.dumps([_DERIVED[k](row) if k in _DERIVED else row.get(k) for k in TABLES[name][0]])


def render(name: str, rows: list[Row], filters: dict[str, str]) -> str:
    """The markdown table of ``rows`` (those matching ``filters``) for benchmark ``name``."""
    columns = TABLES[name][1]
    # A filter's value may list alternatives: set=fashion-10x60,omniglot-40x10
    chosen = [r for r in rows if all(str(r.get(k)) in v.split(",") for k, v in filters.items())]
    lines = ["| " + " | ".join(h for h, _, _ in columns) + " |",
             "|" + "|".join("---:" if right else "---" for _, right, _ in columns) + "|"]
    lines += ["| " + " | ".join(cell(r) for _, _, cell in columns) + " |" for r in chosen]
    return "\n".join(lines) + "\n"


def _table_rows(name: str) -> list[Row]:
    """The recorded rows table ``name`` shows (a derived table's from the benchmark it derives from)."""
    if name in DERIVED_TABLES:
        source, rows_of = DERIVED_TABLES[name]
        return rows_of(load(source))
    return load(name)


def load(name: str) -> list[Row]:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text())["rows"] if path.exists() else []


def rendered_readme(text: str) -> str:
    """``text`` with every marked table rendered from benchmarks/results/."""

    def fill(match: re.Match[str]) -> str:
        name = match["name"]
        if name not in TABLES:
            raise SystemExit(f"README table names unknown benchmark {name!r}; known: {', '.join(TABLES)}")
        filters = dict(item.split("=", 1) for item in shlex.split(match["filters"]))
        return f"<!-- table {name}{match['filters']} -->\n{render(name, _table_rows(name), filters)}<!-- /table -->"

    return MARKER.sub(fill, text)


def record(name: str, results: Path, edge_arch: Path | None) -> None:
    """Merge a run's rows into benchmarks/results/NAME.json (atomically) and rewrite the README."""
    from hetero._io import write_json
    from hetero.runtime import cpu_description

    text = results.read_text()
    try:
        found = json.loads(text)
    except json.JSONDecodeError:  # JSON lines (benchmarks/scale.py --out)
        found = [json.loads(line) for line in text.splitlines() if line.strip()]
    # A benchmark writes a list of rows, or {"cpu": ..., "rows": [...]} where it names the CPU itself;
    # a JSON-lines file of one line parses as that one row.
    if isinstance(found, dict) and "rows" not in found:
        found = [found]
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
    rec.add_argument("benchmark", choices=sorted(set(TABLES) - set(DERIVED_TABLES)))
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
