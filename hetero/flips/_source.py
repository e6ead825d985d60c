"""Reading the folders `hetero flips` analyses: a `hetero bench` or `hetero update-check` output.

Both write ``report.json``, the test split's embeddings as ``.npy`` files and ``labels.npy``. A
*pairing* names one search over those files (query embeddings against gallery embeddings, every
test image a query against all the others); flips compare the top-1 decisions of two pairings.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hetero._io import read_json
from hetero.errors import UserError
from hetero.metrics import RetrievalResult, check_embeddings, retrieval_metrics

__all__ = ["FlipSource", "load_flip_source", "PAIRINGS"]

#: Per kind of report: pairing name -> (query embeddings, gallery embeddings), then the default
#: reference and candidate pairings.
PAIRINGS: dict[str, tuple[dict[str, tuple[str, str]], str, str]] = {
    "bench": (
        {
            "paragon": ("gallery_cloud", "gallery_cloud"),
            "homogeneous_edge": ("queries_torch", "queries_torch"),
            "cross_torch": ("queries_torch", "gallery_cloud"),
            "cross_runtime": ("queries_runtime", "gallery_cloud"),
        },
        "paragon",
        "cross_runtime",
    ),
    "update-check": (
        {
            "old_old": ("gallery_old", "gallery_old"),
            "new_new": ("queries_new", "queries_new"),
            "new_old": ("queries_new", "gallery_old"),
        },
        "old_old",
        "new_old",
    ),
}


@dataclass
class FlipSource:
    """A report folder with its embeddings loaded.

    Attributes:
        directory: the folder.
        kind: ``"bench"`` or ``"update-check"``.
        report: its ``report.json``.
        labels: ``[N]`` the test labels.
        arrays: embedding name (``gallery_cloud``...) -> ``[N, D]`` array.
    """

    directory: Path
    kind: str
    report: dict
    labels: np.ndarray
    arrays: dict[str, np.ndarray]

    @property
    def pairings(self) -> dict[str, tuple[str, str]]:
        return PAIRINGS[self.kind][0]

    @property
    def default_pair(self) -> tuple[str, str]:
        return PAIRINGS[self.kind][1], PAIRINGS[self.kind][2]

    def check_pairing(self, name: str, flag: str) -> tuple[str, str]:
        if name not in self.pairings:
            raise UserError(f"{flag} {name!r} is not a search of a {self.kind} report; use one of {', '.join(self.pairings)}")
        return self.pairings[name]

    def search(self, name: str) -> RetrievalResult:
        """Leave-one-out retrieval of the pairing ``name`` on the test images."""
        query, gallery = self.check_pairing(name, "pairing")
        return retrieval_metrics(self.arrays[query], self.arrays[gallery], self.labels, self.labels, same_images=True)

    def features(self, reference: str) -> np.ndarray:
        """The embeddings that describe the inputs: the reference search's gallery model's."""
        return self.arrays[self.check_pairing(reference, "--reference")[1]]

    def data_settings(self) -> dict:
        """``spec``, ``protocol`` and ``seed`` of the test split, where the report records them."""
        data = self.report.get("data", {})
        return {k: data.get(k) for k in ("spec", "protocol", "seed")}


def load_flip_source(directory: str | os.PathLike[str]) -> FlipSource:
    """Load ``DIR/report.json`` and the embeddings it names; check they describe one test split."""
    d = Path(directory)
    if not d.is_dir():
        raise UserError(f"--report {d} is not a folder; pass the --out folder of hetero bench or hetero update-check")
    report = read_json(d / "report.json")
    kind = "update-check" if report.get("kind") == "update-check" else "bench"
    files = report.get("embeddings")
    needed = {name for pair in PAIRINGS[kind][0].values() for name in pair} | {"labels"}
    if not isinstance(files, dict) or not needed <= set(files):
        raise UserError(
            f"{d}/report.json names no embeddings {sorted(needed)}; it was not written by hetero bench or "
            "hetero update-check (re-run it)"
        )
    arrays = {}
    for name in sorted(needed):
        path = d / files[name]
        if not path.is_file():
            raise UserError(f"{path} is missing; re-run the command that wrote {d}")
        try:
            arrays[name] = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError) as exc:
            raise UserError(f"{path} is corrupt ({exc}); re-run the command that wrote {d}") from None
    labels = arrays.pop("labels")
    for name, array in arrays.items():
        arrays[name] = check_embeddings(array, str(d / files[name]))
        if len(array) != len(labels):
            raise UserError(f"{d / files[name]} has {len(array)} rows but labels.npy {len(labels)}; re-run the command that wrote {d}")
    return FlipSource(d, kind, report, labels, arrays)
