"""report.md: the report as a person reads it."""

from __future__ import annotations

__all__ = ["report_markdown", "retrieval_table"]

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


def report_markdown(report: dict) -> str:
    """The whole report: retrieval, compatibility, parity, cost and latency."""
    p, lat, edge, cloud = report["parity"], report["latency_ms"], report["edge"], report["cloud"]
    p50 = "n/a" if lat.get("p50") is None else f"{lat['p50']:.3f} ms"
    p95 = "n/a" if lat.get("p95") is None else f"{lat['p95']:.3f} ms"
    return "\n".join(
        [
            f"# hetero bench: {report['device']} ({report['backend']}, {report['precision']})",
            "",
            f"Data `{report['data']['spec']}`: {report['data']['queries']} queries against "
            f"{report['data']['gallery']} gallery images (each query's own image excluded).",
            "",
            retrieval_table(report["retrieval"]),
            "",
            f"- compatible (cross mAP > homogeneous edge mAP): **{report['compatible']}**",
            f"- gap closed: {report['gap_closed']:.3f}",
            f"- cost: cloud {cloud['macs']:,} MACs, edge {edge['macs']:,} MACs "
            f"(**{report['cost_ratio']:.1f}x** cheaper), {edge['params']:,} parameters, "
            f"artifact {edge['artifact_bytes']:,} bytes",
            f"- parity runtime vs PyTorch: cos min {p['cos_min']:.6f}, mean {p['cos_mean']:.6f}, "
            f"max abs {p['max_abs']:.2e}, top-1 agreement {p.get('top1_agreement', float('nan')):.4f}, "
            f"NFR {p.get('nfr', float('nan')):.4f}",
            f"- latency at batch {lat.get('batch')}, {lat.get('threads')} thread(s): p50 {p50}, p95 {p95}",
            f"- cloud fingerprint `{cloud['fingerprint']}`",
            "",
        ]
    )
