"""The update check's files: report.json, report.md and the embeddings `hetero flips` reads."""

from __future__ import annotations

import os
from pathlib import Path

from hetero._io import save_npy, write_json, write_text
from hetero.data import Split
from hetero.updates._check import UPDATE_GAP_FORMULA, UpdateCheck

__all__ = ["UPDATE_EMBEDDING_FILES", "update_report", "write_update_report", "update_markdown"]

UPDATE_EMBEDDING_FILES = {"queries_new": "queries_new.npy", "gallery_old": "gallery_old.npy", "labels": "labels.npy"}

_ROWS = (
    ("old_old", "old → old (today)"),
    ("new_new", "new → new (after backfilling)"),
    ("new_old", "new → old (update, no backfilling)"),
)
_FLIP_ROWS = (
    ("retrieval", "new_old_vs_old_old", "top-1 retrieval, new → old vs old → old"),
    ("retrieval", "new_new_vs_old_old", "top-1 retrieval, new → new vs old → old"),
    ("classification", None, "classification, each model's own classifier"),
    ("classification_old_head", None, "classification through the old classifier"),
)


def update_report(check: UpdateCheck, old: dict, new: dict, split: Split) -> dict:
    """``report.json`` of an update check.

    Args:
        check: the measurements.
        old, new: :func:`hetero.updates.model_record` of each model.
        split: the data split the test images came from (recorded so that `hetero flips` can
            reload the images: the test split of ``spec`` with ``protocol`` and ``seed``).
    """
    return {
        "kind": "update-check",
        "data": {
            "spec": split.test.spec,
            "protocol": split.protocol,
            "seed": split.seed,
            "queries": int(len(check.labels)),
            "gallery": int(len(check.labels)),
            "test_indices": "every image of the test split, in order (embedding row i = test image i)",
        },
        "old": old,
        "new": new,
        **check.summary(),
        "embeddings": dict(UPDATE_EMBEDDING_FILES),
    }


def update_markdown(report: dict) -> str:
    """report.md: the three searches, the criterion, the update gap closed and the flips."""
    r = report["retrieval"]
    lines = [
        f"# hetero update-check: {report['new']['path']} as an update of {report['old']['path']}",
        "",
        f"Data `{report['data']['spec']}` ({report['data']['protocol']}-set, seed {report['data']['seed']}): "
        f"{report['data']['queries']} test images, each a query against all the others.",
        "",
        "| search | top-1 | top-5 | mAP | mAP@R |",
        "|---|---:|---:|---:|---:|",
        *(
            f"| {label} | {r[k]['top1']:.4f} | {r[k]['top5']:.4f} | {r[k]['map']:.4f} | {r[k]['map_at_r']:.4f} |"
            for k, label in _ROWS
        ),
        "",
        f"- backward compatible (M(new→old) > M(old,old) on mAP): **{report['compatible']}** "
        f"(on top-1: {report['compatible_top1']})",
        f"- update gap closed {report['update_gap_closed']:.3f} on mAP, {report['update_gap_closed_top1']:.3f} on top-1, "
        f"where gap closed = {UPDATE_GAP_FORMULA}: 1 = new queries search the old gallery as well as the new "
        "model searches its own, 0 = no better than the old model, < 0 = worse",
        f"- new model trained against this old model: {report['trained_against_old']}",
        f"- cost: old {report['old']['macs']:,} MACs, new {report['new']['macs']:,} MACs",
        "",
        "## Negative flips (old right, new wrong)",
        "",
        "| decisions | queries | flips | NFR | NFI | old accuracy | new accuracy |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for group, key, label in _FLIP_ROWS:
        f = report["flips"][group] if key is None else report["flips"][group][key]
        if f is None:
            lines.append(f"| {label} | n/a: a model lacks a classifier for the test classes | | | | | |")
            continue
        lines.append(
            f"| {label} | {f['queries']} | {f['flips']} | {f['nfr']:.4f} | {f['nfi']:.4f} | "
            f"{f['reference_accuracy']:.4f} | {f['candidate_accuracy']:.4f} |"
        )
    lines += ["", "See which inputs flip: `hetero flips --report DIR` (DIR = this folder).", ""]
    return "\n".join(lines)


def write_update_report(check: UpdateCheck, old: dict, new: dict, split: Split, out_dir: str | os.PathLike[str]) -> dict:
    """Write ``report.json``, ``report.md`` and the embeddings into ``out_dir``; return the report."""
    out = Path(out_dir)
    report = update_report(check, old, new, split)
    for key, array in (("queries_new", check.queries_new), ("gallery_old", check.gallery_old), ("labels", check.labels)):
        save_npy(out / UPDATE_EMBEDDING_FILES[key], array)
    write_json(out / "report.json", report)
    write_text(out / "report.md", update_markdown(report))
    return report
