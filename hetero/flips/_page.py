"""flips.html: one self-contained page (pictures inlined as base64 PNG) of the flip groups."""

from __future__ import annotations

import base64
import html
import io

import numpy as np

__all__ = ["flips_page"]

_ROWS = ("query", "reference top-1 (right)", "candidate top-1 (wrong)")


def _picture(image: np.ndarray) -> np.ndarray:
    """``[C, H, W]`` in [0, 1] to what imshow draws (grey or RGB)."""
    return image[0] if image.shape[0] == 1 else np.transpose(image, (1, 2, 0))


def _group_figure(group: dict, labels: np.ndarray, images: np.ndarray, examples: int) -> str:
    """The group's most typical flips as columns: the query, what each model retrieved first."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = min(examples, group["size"])
    fig, axes = plt.subplots(3, n, figsize=(1.3 * n + 1.2, 4.3), squeeze=False)
    for col in range(n):
        indices = (group["members"][col], group["reference_top1"][col], group["candidate_top1"][col])
        for row, index in enumerate(indices):
            ax = axes[row][col]
            ax.imshow(_picture(images[index]), cmap="gray", vmin=0.0, vmax=1.0)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"#{index} c{labels[index]}", fontsize=7, color="tab:red" if row == 2 else "black")
            if col == 0:
                ax.set_ylabel(_ROWS[row], fontsize=7)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _classes_line(classes: dict, most: int = 8) -> str:
    items = list(classes.items())
    shown = ", ".join(f"{c} ({n})" for c, n in items[:most])
    return shown + (f", and {len(items) - most} more" if len(items) > most else "")


def flips_page(record: dict, labels: np.ndarray, images: np.ndarray | None, examples: int = 8) -> str:
    """The HTML page of a ``flips.json`` record.

    Args:
        record: what :func:`hetero.flips.write_flips` writes to ``flips.json``.
        labels: ``[N]`` the test labels (captions name each picture's class).
        images: ``[N, C, H, W]`` the test images, or ``None`` for a page without pictures.
        examples: pictures per group.
    """
    s = record["flips"]
    esc = html.escape
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>hetero flips: {esc(record['candidate'])} vs {esc(record['reference'])}</title>",
        "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}"
        "img{max-width:100%}</style></head><body>",
        f"<h1>Negative flips: {esc(record['candidate'])} against {esc(record['reference'])}</h1>",
        f"<p>Report <code>{esc(record['report'])}</code> ({esc(record['kind'])}), data "
        f"<code>{esc(str(record['data'].get('spec')))}</code>. A negative flip is a query whose top-1 "
        f"retrieval is right in <b>{esc(record['reference'])}</b> and wrong in <b>{esc(record['candidate'])}</b>.</p>",
        "<table><tr><th>queries</th><th>negative flips</th><th>NFR</th><th>NFI</th><th>positive flips</th>"
        "<th>reference top-1</th><th>candidate top-1</th></tr>",
        f"<tr><td>{s['queries']}</td><td>{s['flips']}</td><td>{s['nfr']:.4f}</td><td>{s['nfi']:.4f}</td>"
        f"<td>{s['positive_flips']}</td><td>{s['reference_accuracy']:.4f}</td><td>{s['candidate_accuracy']:.4f}</td></tr></table>",
        f"<p>Groups: {esc(record['clustering']['method'])} over {esc(record['features'])}; "
        f"k = {record['clustering']['k']}"
        + (
            " (silhouette " + ", ".join(f"k={k}: {v:.3f}" for k, v in record["clustering"]["silhouette"].items()) + ")"
            if record["clustering"]["silhouette"]
            else ""
        )
        + ". Pictures: the group's most typical flips (nearest its centre); captions give the test index and class.</p>",
    ]
    for group in record["groups"]:
        parts.append(f"<h2>Group {group['group']}: {group['size']} flips ({100 * group['share']:.1f}%)</h2>")
        parts.append(f"<p>Classes: {esc(_classes_line(group['classes']))}.</p>")
        if group["confusions"]:
            top = ", ".join(f"{c['query_class']}→{c['retrieved_class']} ({c['count']})" for c in group["confusions"][:5])
            parts.append(f"<p>Most frequent confusions (query class → class the candidate retrieved): {esc(top)}.</p>")
        if images is not None and group["size"]:
            png = _group_figure(group, labels, images, examples)
            parts.append(f"<img alt='group {group['group']}' src='data:image/png;base64,{png}'>")
    if not record["groups"]:
        parts.append("<p>No negative flips: every query the reference gets right, the candidate gets right too.</p>")
    parts.append("</body></html>\n")
    return "\n".join(parts)
