"""The edge model: a small network from a search space, trained to match a cloud model."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from hetero.data import Preprocess
from hetero.errors import UserError
from hetero.models._cloud import build_net
from hetero.models._embedding import EmbeddingModel
from hetero.models._files import load_model_file, save_model_file
from hetero.models._pruned import CLOUD_PRUNED, build_pruned_net

__all__ = ["EdgeModel", "build_edge", "save_edge", "load_edge", "EDGE_FORMAT"]

EDGE_FORMAT = "hetero.edge/1"
EDGE_FILE = "edge.pt"


@dataclass
class EdgeModel(EmbeddingModel):
    """The query model φ_q: its architecture and the cloud model it is compatible with.

    Attributes:
        arch: The architecture (a search space's JSON).
        cloud_fingerprint: The fingerprint of the cloud model it was trained against.
        head: The model's own cosine classifier ``[K, D]`` from training, rows in the sorted class
            ids of its training data; in memory only (``edge.pt`` does not keep it), for
            :func:`hetero.pipeline.cloud_from_edge`.
    """

    arch: dict = field(default_factory=dict)
    cloud_fingerprint: str = ""
    head: torch.Tensor | None = field(default=None, repr=False, compare=False)

    @property
    def source(self) -> dict:
        return {"type": "space", "arch": self.arch, "in_channels": self.preprocess.channels}


def build_edge(arch: dict, embed_dim: int, preprocess: Preprocess, cloud_fingerprint: str) -> EdgeModel:
    """An untrained edge model of architecture ``arch``."""
    source = {"type": "space", "arch": arch, "in_channels": preprocess.channels}
    if arch.get("space") == CLOUD_PRUNED:  # rebuilt from the cloud network the architecture records
        net = build_pruned_net(arch, embed_dim, preprocess.channels)
    else:
        if arch.get("space") == "lqf":
            import hetero.lqf  # noqa: F401  (registers the "lqf" space; imported here, as it imports this module)
        net = build_net(source, embed_dim)
    return EdgeModel(net, preprocess, embed_dim, arch=arch, cloud_fingerprint=cloud_fingerprint)


def save_edge(model: EdgeModel, path: str | os.PathLike[str]) -> Path:
    """Write ``edge.pt`` (``path`` may be a folder)."""
    p = Path(path)
    if p.suffix != ".pt":
        p = p / EDGE_FILE
    return save_model_file(
        p,
        {
            "format": EDGE_FORMAT,
            "arch": model.arch,
            "embed_dim": model.embed_dim,
            "preprocess": model.preprocess.to_dict(),
            "state_dict": {k: v.detach().cpu() for k, v in model.net.state_dict().items()},
            "cloud_fingerprint": model.cloud_fingerprint,
            "meta": model.meta,
        },
    )


def load_edge(path: str | os.PathLike[str]) -> EdgeModel:
    """Load ``edge.pt`` (or a folder holding it)."""
    p = Path(path)
    if p.is_dir():
        p = p / EDGE_FILE
    payload = load_model_file(p, EDGE_FORMAT, "edge model")
    preprocess = Preprocess.from_dict(payload["preprocess"])
    model = build_edge(payload["arch"], int(payload["embed_dim"]), preprocess, payload["cloud_fingerprint"])
    try:
        model.net.load_state_dict(payload["state_dict"])
    except RuntimeError as exc:
        raise UserError(f"edge model {p}: weights do not fit its architecture ({str(exc).splitlines()[0]})") from None
    model.net.eval()
    model.meta = payload.get("meta", {})
    return model
