"""report.md: the report as a person reads it."""

from __future__ import annotations

__all__ = ["report_markdown", "retrieval_table", "comparison_markdown", "format_cell", "COMPARISON_COLUMNS"]

_ROWS = (
    ("paragon", "paragon (cloud → cloud)"),
    ("homogeneous_edge", "homogeneous edge (edge → edge)"),
    ("cross_torch", "cross, PyTorch (edge → cloud)"),
    ("cross_runtime", "cross, runtime (edge → cloud)"),
)


def retrieval_table(retrieval: dict) -> str:
    """The retrieval rows of a report as a Markdown table."""
    lines = ["| search | top-1 | top-5 | mAP | mAP@R |", "|---|---:|---:|---:|---:|"]
    for key, label in _ROWS:
        if key in retrieval:
            r = retrieval[key]
            lines.append(f"| {label} | {r['top1']:.4f} | {r['top5']:.4f} | {r['map']:.4f} | {r['map_at_r']:.4f} |")
    return "\n".join(lines)


def _ms(value) -> str:
    return "n/a" if value is None else f"{value:.3f} ms"


def _latency_lines(report: dict) -> list[str]:
    batches = report.get("latency_ms_batches") or [report["latency_ms"]]
    lines = []
    for lat in batches:
        where = f", measured on {lat['measured_on']}" if lat.get("measured_on") else ""
        lines.append(f"- latency at batch {lat.get('batch')}, {lat.get('threads')} thread(s): p50 {_ms(lat.get('p50'))}, "
                     f"p95 {_ms(lat.get('p95'))}{where}")
    return lines


def report_markdown(report: dict) -> str:
    """The whole report: retrieval, compatibility, parity, cost and latency."""
    p, edge, cloud = report["parity"], report["edge"], report["cloud"]
    runtime = report.get("runtime", {})
    return "\n".join(
        [
            f"# hetero bench: {report['device']} ({runtime.get('label', report['backend'])}, {report['precision']})",
            "",
            f"Data `{report['data']['spec']}`: {report['data']['queries']} queries against "
            f"{report['data']['gallery']} gallery images (each query's own image excluded).",
            "",
            retrieval_table(report["retrieval"]),
            "",
            f"- status: **{report.get('status', 'n/a')}**",
            f"- compatible (cross mAP > homogeneous edge mAP): **{report['compatible']}**",
            *_collapse_lines(report),
            _gap_line(report),
            f"- cost: cloud {cloud['macs']:,} MACs, edge {edge['macs']:,} MACs "
            f"(**{report['cost_ratio']:.1f}x** cheaper), {edge['params']:,} parameters, "
            f"artifact {edge['artifact_bytes']:,} bytes",
            f"- parity runtime vs PyTorch: cos min {p['cos_min']:.6f}, mean {p['cos_mean']:.6f}, "
            f"max abs {p['max_abs']:.2e}, top-1 agreement {p.get('top1_agreement', float('nan')):.4f} "
            f"(same image {p.get('top1_item_agreement', float('nan')):.4f}), "
            f"NFR {p.get('nfr', float('nan')):.4f}",
            *_latency_lines(report),
            f"- runtime engine: {runtime.get('engine', 'n/a')}",
            f"- cloud fingerprint `{cloud['fingerprint']}`",
            "",
        ]
    )


def _gap_line(report: dict) -> str:
    """Gap closed, or why it means nothing here (paragon <= homogeneous)."""
    if report.get("gap_closed") is None:
        return f"- gap closed: n/a ({report.get('gap_closed_note', 'not computed')})"
    return f"- gap closed: {report['gap_closed']:.3f}"


def _collapse_lines(report: dict) -> list[str]:
    """The collapse verdict: its reason when collapsed, the figures behind it otherwise."""
    c = report.get("collapse")
    if not c:
        return []
    if c["collapsed"]:
        return [f"- **COLLAPSED**: {c['reason']}"]
    return [f"- collapsed: False (pairwise cosine spread {c['cosine_spread']:.3f}, "
            f"effective rank {c['effective_rank']:.1f} of {c['dim']})"]


#: (key, header) of the comparison table, in order.
COMPARISON_COLUMNS = (
    ("device", "device"),
    ("backend", "backend"),
    ("precision", "precision"),
    ("cross_map_runtime", "cross mAP (runtime)"),
    ("cross_map_torch", "cross mAP (torch)"),
    ("cos_min", "parity cos min"),
    ("top1_agreement", "top-1 agreement"),
    ("top1_item_agreement", "same first image"),
    ("nfr", "NFR"),
    ("p50_ms", "p50 ms (b1)"),
    ("p95_ms", "p95 ms (b1)"),
    ("batch_p50", "p50 ms (larger batch)"),
    ("threads", "threads"),
    ("artifact_bytes", "artifact bytes"),
    ("status", "status"),
)


def format_cell(key: str, value) -> str:
    if value is None:
        return "n/a"
    if key == "artifact_bytes":
        return f"{value:,}"
    if key == "cos_min":
        return f"{value:.7f}"  # fp32 parity lives in the 7th decimal
    if isinstance(value, float):
        return f"{value:.3f}" if key.endswith("ms") else f"{value:.4f}"
    return str(value).replace("|", "\\|")


def comparison_markdown(rows: list[dict], title: str = "hetero bench: devices compared") -> str:
    """One row per device (:func:`hetero.bench.comparison_row`) as a Markdown table."""
    lines = [f"# {title}", "", "| " + " | ".join(h for _, h in COMPARISON_COLUMNS) + " |",
             "|" + "|".join("---" if k in ("device", "backend", "precision", "status") else "---:" for k, _ in COMPARISON_COLUMNS) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(format_cell(k, row.get(k)) for k, _ in COMPARISON_COLUMNS) + " |")
    return "\n".join(lines) + "\n"
