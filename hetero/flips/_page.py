"""flips.html: one self-contained page (pictures inlined as base64 PNG) of the flip groups, real or generated."""

from __future__ import annotations

import base64
import html
import io

import numpy as np

__all__ = ["flips_page", "generated_page"]

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


# --- Generated failures (Defuse, `hetero flips --generate`) ---------------------------------------


def _grid_figure(group: dict, failures: np.ndarray, sources: np.ndarray, labels: np.ndarray, examples: int) -> str:
    """A group's most typical generated failures (bottom row) under the real images they came from (top)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = min(examples, group["size"])
    fig, axes = plt.subplots(2, n, figsize=(1.2 * n + 1.2, 2.9), squeeze=False)
    for col in range(n):
        member, source = group["members"][col], group["sources"][col]
        for row, image in enumerate((sources[source], failures[member])):
            ax = axes[row][col]
            ax.imshow(_picture(image), cmap="gray", vmin=0.0, vmax=1.0)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"#{source} c{labels[source]}" if row == 0 else f"failure c{labels[source]}", fontsize=7,
                         color="tab:red" if row == 1 else "black")
            if col == 0:
                ax.set_ylabel(("real source", "generated")[row], fontsize=7)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _png(path) -> str:
    with open(path, "rb") as f:
        return base64.b64encode(f.read()).decode("ascii")


def _correction_table(correction: dict) -> list[str]:
    esc = html.escape
    best = correction["best"]
    parts = [
        "<h2>Correction: fine-tuning on the generated failures</h2>",
        "<p>Failures of the training sources mixed with the training data, failures a share lambda of the "
        "samples (lambda 0: the control, the same fine-tuning without them); scored on failures of held-out "
        "sources and on the original test split.</p>",
        "<table><tr><th>lambda</th><th>held-out failure accuracy</th><th>gain over control (pts)</th>"
        "<th>test top-1</th><th>change (pts)</th><th>test mAP</th><th>change (pts)</th></tr>",
    ]
    for r in correction["rows"]:
        parts.append(
            f"<tr><td>{r['lambda']:g}</td><td>{r['failure_accuracy']:.4f}</td><td>{r['failure_gain_over_control_points']:+.1f}</td>"
            f"<td>{r['test_top1']:.4f}</td><td>{r['test_top1_change_points']:+.2f}</td><td>{r['test_map']:.4f}</td>"
            f"<td>{r['test_map_change_points']:+.2f}</td></tr>"
        )
    parts.append("</table>")
    parts.append(f"<p>Chosen lambda: <b>{esc(str(best['lambda']))}</b> ({esc(best['rule'])}); "
                 f"target (>= 20 points on the failures, test within 1 point) met: <b>{best['meets_target']}</b>.</p>")
    return parts


def generated_page(record: dict, failures: np.ndarray, sources: np.ndarray, labels: np.ndarray, map_png=None,
                   plot_png=None, examples: int = 8) -> str:
    """The HTML page of a ``defuse.json`` record: the failure groups as image grids, the map, the correction.

    Args:
        record: what :func:`hetero.defuse.write_defuse` writes to ``defuse.json``.
        failures: ``[n, C, S, S]`` the kept generated images (``members`` index them).
        sources: ``[N, C, S, S]`` the training images (``sources`` index them); ``labels`` their classes.
        map_png, plot_png: the t-SNE map and the correction plot to inline, if written.
        examples: pictures per group.
    """
    esc = html.escape
    d, g = record["decisions"], record["generation"]
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>hetero flips --generate: {esc(record['candidate'])} vs {esc(record['reference'])}</title>",
        "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}"
        "img{max-width:100%}</style></head><body>",
        f"<h1>Generated failures: {esc(record['candidate'])} against {esc(record['reference'])}</h1>",
        f"<p>Data <code>{esc(str(record['data'].get('spec')))}</code> ({esc(record['kind'])}). A VAE trained on the "
        f"training images decoded {g['generated']} variations ({g['samples_per_source']} per source image, latent noise "
        f"sd {g['noise']:g}) of {g['sources']} training images. {esc(record['rule'])}.</p>",
        "<table><tr><th>generated</th><th>kept failures</th><th>share</th><th>reference right</th>"
        "<th>candidate right</th><th>groups</th></tr>",
        f"<tr><td>{g['generated']}</td><td>{record['kept']}</td><td>{record['kept_share']:.4f}</td>"
        f"<td>{d['reference_accuracy']:.4f}</td><td>{d['candidate_accuracy']:.4f}</td><td>{record['clustering']['k']}</td></tr></table>",
        f"<p>Groups: {esc(record['clustering']['method'])}, at most {record['clustering']['max_groups']} components. "
        "Pictures: each group's most typical failures (nearest its mean code) under the real images they were "
        "perturbed from; captions give the training index and class.</p>",
    ]
    if map_png is not None:
        parts.append(f"<h2>Map of latent codes (t-SNE)</h2><img alt='latent map' src='data:image/png;base64,{_png(map_png)}'>")
    for group in record["groups"]:
        parts.append(f"<h2>Group {group['group']}: {group['size']} failures ({100 * group['share']:.1f}%)</h2>")
        parts.append(f"<p>Classes: {esc(_classes_line(group['classes']))}; {group['held_out']} held out for scoring the correction.</p>")
        if group["size"]:
            png = _grid_figure(group, failures, sources, labels, examples)
            parts.append(f"<img alt='group {group['group']}' src='data:image/png;base64,{png}'>")
    if not record["groups"]:
        parts.append("<p>No failures: the candidate gets right every generated image the reference gets right.</p>")
    if "correction" in record:
        parts += _correction_table(record["correction"])
        if plot_png is not None:
            parts.append(f"<img alt='correction' src='data:image/png;base64,{_png(plot_png)}'>")
    parts.append("</body></html>\n")
    return "\n".join(parts)
