"""OUT/index.html: the device comparison as one self-contained page (plots as base64 PNG).

Two plots: cross mAP of the runtime's queries against p50 latency (one marker per runtime and
precision), and parity per runtime (1 - cos min, log scale, and top-1 agreement of the class and of the image). The PNGs are
also saved under ``OUT/plots/``.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

from hetero._io import atomic_path, write_text
from hetero.bench._markdown import COMPARISON_COLUMNS, format_cell

__all__ = ["comparison_html", "plot_map_latency", "plot_parity"]

_MARKERS = {"fp32": "o", "fp16": "s", "int8": "^"}


def _figure():
    import matplotlib

    matplotlib.use("Agg")  # no display on a server or in CI
    import matplotlib.pyplot as plt

    return plt


def _measured(rows: list[dict]) -> list[dict]:
    return [r for r in rows if r.get("cross_map_runtime") is not None]


def _save(fig, path: Path) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    data = buffer.getvalue()
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return data


def plot_map_latency(rows: list[dict], path: Path) -> bytes | None:
    """Cross mAP (runtime) against p50 latency at batch 1; PNG bytes, or ``None`` with nothing measured."""
    rows = [r for r in _measured(rows) if r.get("p50_ms")]
    if not rows:
        return None
    plt = _figure()
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    colours = {b: f"C{i}" for i, b in enumerate(sorted({r["backend"] for r in rows}))}
    for i, r in enumerate(sorted(rows, key=lambda r: r["p50_ms"])):
        ax.scatter(r["p50_ms"], r["cross_map_runtime"], s=90, marker=_MARKERS.get(r["precision"], "D"),
                   color=colours[r["backend"]], edgecolor="black", zorder=3)
        # Neighbours in latency often share a mAP: stagger the labels' heights, with a leader line.
        ax.annotate(r["device"], (r["p50_ms"], r["cross_map_runtime"]), textcoords="offset points",
                    xytext=(8, 10 + 13 * (i % 3)), fontsize=8, arrowprops={"arrowstyle": "-", "color": "grey", "lw": 0.6})
    refs = (("cross_map_torch", "cross, PyTorch", "-"), ("homogeneous_map", "homogeneous edge", ":"), ("paragon_map", "paragon", "--"))
    for key, label, style in refs:
        ax.axhline(rows[0][key], color="grey", linestyle=style, linewidth=1, label=f"{label} ({rows[0][key]:.3f})")
    for backend, colour in colours.items():
        ax.scatter([], [], color=colour, marker="o", edgecolor="black", label=backend)
    for precision, marker in _MARKERS.items():
        if any(r["precision"] == precision for r in rows):
            ax.scatter([], [], color="white", marker=marker, edgecolor="black", label=precision)
    ax.set_xscale("log")
    ax.set_xlabel("p50 latency at batch 1 (ms, log scale, this machine)")
    ax.set_ylabel("cross mAP (runtime queries vs cloud gallery)")
    ax.set_title("Cross mAP against latency, per runtime and precision")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    data = _save(fig, path)
    plt.close(fig)
    return data


def plot_parity(rows: list[dict], path: Path) -> bytes | None:
    """Per-runtime parity with PyTorch: 1 - cos min (log) and top-1 agreement; PNG bytes or ``None``."""
    rows = _measured(rows)
    if not rows:
        return None
    plt = _figure()
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, max(2.5, 0.5 * len(rows) + 1.2)))
    names = [f"{r['device']}\n{r['backend']} {r['precision']}" for r in rows]
    gaps = [max(1.0 - r["cos_min"], 1e-9) for r in rows]
    ypos = range(len(rows))
    left.barh(ypos, gaps, color="C0")
    left.set_xscale("log")
    left.set_yticks(list(ypos), names, fontsize=8)
    left.invert_yaxis()
    left.set_xlabel("1 - cos min vs PyTorch (log; smaller is closer)")
    # The first result's class (the decision) and its identity: int8 swaps near-ties of one class.
    decision = [r["top1_agreement"] for r in rows]
    item = [r["top1_item_agreement"] for r in rows]
    right.barh([y - 0.2 for y in ypos], decision, height=0.4, color="C1", label="first result of the same class")
    right.barh([y + 0.2 for y in ypos], item, height=0.4, color="C2", label="the same first image")
    right.set_yticks(list(ypos), [""] * len(rows))
    right.invert_yaxis()
    right.set_xlim(min(0.9, min(item) - 0.01), 1.0)
    right.set_xlabel("top-1 agreement with PyTorch")
    right.legend(fontsize=7, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, frameon=False)
    for y, r in zip(ypos, rows):
        right.annotate(f"class {r['top1_agreement']:.4f}  image {r['top1_item_agreement']:.4f}  NFR {r['nfr']:.4f}",
                       (right.get_xlim()[0], y),
                       xytext=(4, 0), textcoords="offset points", ha="left", va="center", fontsize=7,
                       bbox={"boxstyle": "round,pad=0.2", "facecolor": "white", "edgecolor": "none", "alpha": 0.85})
    fig.suptitle("Parity of each runtime with the PyTorch edge model")
    data = _save(fig, path)
    plt.close(fig)
    return data


def _table(rows: list[dict]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for _, h in COMPARISON_COLUMNS)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(format_cell(k, r.get(k)))}</td>" for k, _ in COMPARISON_COLUMNS) + "</tr>" for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def comparison_html(rows: list[dict], out_dir: str | Path, title: str = "hetero bench: devices compared") -> Path:
    """Write ``out_dir/index.html`` (and ``out_dir/plots/*.png``); returns the page's path."""
    out = Path(out_dir)
    images = []
    for name, plot, alt in (("map_vs_latency.png", plot_map_latency, "cross mAP against latency"),
                            ("parity.png", plot_parity, "parity per runtime")):
        data = plot(rows, out / "plots" / name)
        if data is not None:
            images.append(f'<figure><img alt="{alt}" src="data:image/png;base64,{base64.b64encode(data).decode()}"></figure>')
    links = "".join(
        f'<li><a href="{html.escape(r["device"])}/report.md">{html.escape(r["device"])}</a></li>'
        for r in rows if r.get("cross_map_runtime") is not None
    )
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; font-size: 0.85em; }}
th, td {{ border: 1px solid #ccc; padding: 0.3em 0.5em; text-align: right; }}
th {{ background: #f0f0f0; }}
td:first-child, td:nth-child(2), td:nth-child(3), td:last-child {{ text-align: left; }}
img {{ max-width: 100%; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
<p>One edge model, exported for every device profile and run on each runtime here. Cross mAP: the runtime's
query embeddings searched against the cloud model's gallery. Parity: the runtime's embeddings against the
PyTorch model's on the same inputs. Latency: p50/p95 after warm-up at batch 1, on this machine, with the threads
stated. Rows that could not run here say why.</p>
{_table(rows)}
{''.join(images)}
<h2>Per-device reports</h2><ul>{links}</ul>
</body></html>
"""
    return write_text(out / "index.html", page)
