"""`hetero flips`: find the negative flips between two searches, group them, write the page."""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hetero._io import write_json, write_text
from hetero.errors import UserError
from hetero.flips._decisions import retrieval_flips
from hetero.flips._groups import FlipGroups, group_flips
from hetero.flips._source import FlipSource
from hetero.metrics import RetrievalResult

__all__ = ["FlipAnalysis", "analyse_flips", "reload_test_images", "write_flips"]


@dataclass
class FlipAnalysis:
    """The negative flips of ``candidate`` against ``reference`` and their groups.

    Attributes:
        reference, candidate: the pairing names compared.
        reference_result, candidate_result: their searches (per-query top-1 decisions).
        flipped: ``[n]`` test indices of the queries the reference gets right and the candidate
            wrong, ascending.
        groups: the groups of ``flipped`` (``groups.labels[i]`` is the group of ``flipped[i]``).
        summary: NFR, NFI and counts (:func:`hetero.flips.flip_summary`).
        features: ``[n, D]`` the reference gallery model's embeddings of the flipped queries.
    """

    reference: str
    candidate: str
    reference_result: RetrievalResult
    candidate_result: RetrievalResult
    flipped: np.ndarray
    groups: FlipGroups
    summary: dict
    features: np.ndarray

    def group_members(self, group: int) -> np.ndarray:
        """Test indices of ``group``'s members, the most typical (nearest its centre) first."""
        return self.flipped[self.groups.ordered_members(group, self.features)]


def analyse_flips(
    source: FlipSource, reference: str | None = None, candidate: str | None = None, k_max: int = 8, seed: int = 0
) -> FlipAnalysis:
    """Compare two searches of ``source`` query by query and group the negative flips.

    Args:
        source: a loaded report folder.
        reference, candidate: pairing names (default: the report kind's, e.g. ``paragon`` vs
            ``cross_runtime`` for a bench report, ``old_old`` vs ``new_old`` for an update check).
        k_max: the most groups tried.
        seed: fixes the clustering.
    """
    default_ref, default_cand = source.default_pair
    reference, candidate = reference or default_ref, candidate or default_cand
    source.check_pairing(reference, "--reference")
    source.check_pairing(candidate, "--candidate")
    if reference == candidate:
        raise UserError(f"--reference and --candidate are both {reference!r}; compare two different searches")
    if k_max < 2:
        raise UserError(f"--max-groups {k_max} must be at least 2")
    ref, cand = source.search(reference), source.search(candidate)
    both = ref.evaluated & cand.evaluated
    flipped = np.flatnonzero(both & ref.top1_correct & ~cand.top1_correct)
    features = source.features(reference)[flipped]
    groups = group_flips(features, k_max=k_max, seed=seed)
    return FlipAnalysis(reference, candidate, ref, cand, flipped, groups, retrieval_flips(ref, cand), features)


def reload_test_images(source: FlipSource, spec: str | None, protocol: str | None, seed: int | None) -> np.ndarray:
    """Reload the test images behind ``source`` (its recorded split unless given) and check them.

    The check: the reloaded test labels equal the saved ``labels.npy`` one for one, so the
    images shown are the queries that flipped.
    """
    from hetero.data import load_split

    recorded = source.data_settings()
    spec = spec or recorded["spec"]
    protocol = protocol or recorded["protocol"]
    seed = recorded["seed"] if seed is None else seed
    if not spec:
        raise UserError(f"{source.directory}/report.json records no data spec; pass --data SPEC as used to write it")
    test = load_split(spec, protocol=protocol, seed=int(seed or 0)).test
    if len(test.labels) != len(source.labels) or not np.array_equal(test.labels, source.labels):
        raise UserError(
            f"the test split of {spec} (protocol {protocol or 'default'}, seed {seed or 0}) does not match "
            f"{source.directory}/labels.npy; pass the --data, --protocol and --seed used to write the report"
        )
    return test.images


def _group_record(analysis: FlipAnalysis, labels: np.ndarray, group: int) -> dict:
    members = analysis.group_members(group)
    cand_top1 = analysis.candidate_result.top1_index[members]
    confusions = Counter(zip(labels[members].tolist(), labels[cand_top1].tolist()))
    return {
        "group": group + 1,
        "size": int(len(members)),
        "share": float(len(members) / max(len(analysis.flipped), 1)),
        "classes": {str(c): n for c, n in Counter(labels[members].tolist()).most_common()},
        "confusions": [{"query_class": q, "retrieved_class": r, "count": n} for (q, r), n in confusions.most_common(10)],
        "members": members.tolist(),
        "reference_top1": analysis.reference_result.top1_index[members].tolist(),
        "candidate_top1": cand_top1.tolist(),
    }


def write_flips(
    analysis: FlipAnalysis,
    source: FlipSource,
    out_dir: str | os.PathLike[str],
    images: np.ndarray | None,
    examples: int = 8,
) -> tuple[Path, Path]:
    """Write ``flips.json`` (every group with its members' test indices) and ``flips.html``.

    Args:
        images: the test images, shown for each group's most typical members; ``None`` writes
            the page without pictures.
        examples: members pictured per group.

    Returns:
        The two paths.
    """
    from hetero.flips._page import flips_page

    out = Path(out_dir)
    groups = [_group_record(analysis, source.labels, g) for g in range(analysis.groups.k)]
    record = {
        "report": str(source.directory),
        "kind": source.kind,
        "reference": analysis.reference,
        "candidate": analysis.candidate,
        "flips": analysis.summary,
        "features": f"{source.features(analysis.reference).shape[1]}-d embeddings of the reference search's gallery model",
        "clustering": {
            "method": "k-means on unit embeddings, k chosen by the silhouette score",
            "k": analysis.groups.k,
            "silhouette": {str(k): v for k, v in analysis.groups.scores.items()},
        },
        "data": source.data_settings(),
        "groups": groups,
    }
    json_path = write_json(out / "flips.json", record)
    html_path = write_text(out / "flips.html", flips_page(record, source.labels, images, examples))
    return json_path, html_path
