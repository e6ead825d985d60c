"""The cloud model: a frozen embedding network, its classifier if it has one, and its fingerprint."""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import torch
from torch import nn

from hetero._io import write_json
from hetero.cost import count_cost
from hetero.data import Preprocess
from hetero.errors import UserError
from hetero.models._embedding import EmbeddingModel, l2_normalize_tensor
from hetero.models._files import fingerprint, load_model_file, save_model_file

__all__ = ["CloudModel", "ImportedEmbedder", "build_net", "save_cloud", "load_cloud", "import_cloud", "CLOUD_FORMAT"]

CLOUD_FORMAT = "hetero.cloud/1"
CLOUD_FILE = "cloud.pt"


class ImportedEmbedder(nn.Module):
    """Wraps a user's network so that it returns unit embeddings like hetero's own models.

    A 4-D output (a feature map) is average-pooled over its spatial axes; anything else is
    flattened. Then the embedding is L2-normalised.
    """

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.inner(x)
        if isinstance(y, (tuple, list)):
            y = y[0]
        if y.ndim == 4:
            y = y.mean((2, 3))
        return l2_normalize_tensor(y.flatten(1))


def _load_factory(factory: str):
    module_name, _, fn_name = factory.partition(":")
    if not module_name or not fn_name:
        raise UserError(f"--factory {factory!r} must look like package.module:function")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise UserError(f"--factory: cannot import {module_name!r} ({exc}); install the package that defines the model") from None
    fn = getattr(module, fn_name, None)
    if not callable(fn):
        raise UserError(f"--factory: {module_name} has no callable {fn_name!r}")
    return fn


def build_net(source: dict, embed_dim: int) -> nn.Module:
    """Build the untrained network a model file describes (``source`` says how)."""
    if source["type"] == "space":
        from hetero.search_spaces import get_space

        arch = source["arch"]
        return get_space(arch["space"]).build(arch, embed_dim=embed_dim, in_channels=int(source["in_channels"]))
    if source["type"] == "factory":
        return ImportedEmbedder(_load_factory(source["factory"])(**source.get("kwargs", {})))
    raise UserError(f"unknown model source type {source['type']!r}")


@dataclass
class CloudModel(EmbeddingModel):
    """The gallery model φ_g. Frozen once written.

    Attributes:
        source: how to rebuild ``net`` (a search-space architecture or a user's factory).
        classifier: ``[K, D]`` unit rows of its cosine classifier, or ``None``.
        classes: the class id of each classifier row.
        scale: the classifier's logit scale.
        fingerprint: ``sha256:`` over weights, preprocessing and embedding dim.
    """

    source: dict = field(default_factory=dict)
    classifier: torch.Tensor | None = None
    classes: list[int] | None = None
    scale: float = 16.0
    fingerprint: str = ""

    def refresh_fingerprint(self) -> str:
        self.fingerprint = fingerprint(self.net.state_dict(), self.preprocess.to_dict(), self.embed_dim)
        return self.fingerprint


def save_cloud(model: CloudModel, out_dir: str | os.PathLike[str]) -> Path:
    """Write ``DIR/cloud.pt`` and a readable ``DIR/manifest.json``."""
    out = Path(out_dir)
    model.refresh_fingerprint()
    payload = {
        "format": CLOUD_FORMAT,
        "source": model.source,
        "embed_dim": model.embed_dim,
        "preprocess": model.preprocess.to_dict(),
        "state_dict": {k: v.detach().cpu() for k, v in model.net.state_dict().items()},
        "classifier": None if model.classifier is None else model.classifier.detach().cpu(),
        "classes": model.classes,
        "scale": model.scale,
        "fingerprint": model.fingerprint,
        "meta": model.meta,
    }
    path = save_model_file(out / CLOUD_FILE, payload)
    cost = count_cost(model.net, model.input_shape)
    write_json(
        out / "manifest.json",
        {
            "kind": "cloud",
            "fingerprint": model.fingerprint,
            "embed_dim": model.embed_dim,
            "preprocess": model.preprocess.to_dict(),
            "source": model.source,
            "has_classifier": model.classifier is not None,
            **cost,
            "meta": model.meta,
        },
    )
    return path


def load_cloud(path: str | os.PathLike[str]) -> CloudModel:
    """Load a cloud model from ``DIR`` (holding ``cloud.pt``) or the file itself."""
    p = Path(path)
    if p.is_dir():
        p = p / CLOUD_FILE
    payload = load_model_file(p, CLOUD_FORMAT, "cloud model")
    net = build_net(payload["source"], payload["embed_dim"])
    try:
        net.load_state_dict(payload["state_dict"])
    except RuntimeError as exc:
        raise UserError(f"cloud model {p}: weights do not fit its architecture ({str(exc).splitlines()[0]})") from None
    model = CloudModel(
        net=net.eval().requires_grad_(False),
        preprocess=Preprocess.from_dict(payload["preprocess"]),
        embed_dim=int(payload["embed_dim"]),
        meta=payload.get("meta", {}),
        source=payload["source"],
        classifier=payload.get("classifier"),
        classes=payload.get("classes"),
        scale=float(payload.get("scale", 16.0)),
    )
    if model.refresh_fingerprint() != payload["fingerprint"]:
        raise UserError(f"cloud model {p}: weights do not match its recorded fingerprint; the file was altered")
    return model


def _read_weights(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise UserError(f"--weights {path} does not exist")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise UserError(f"--weights {path} is corrupt, truncated or not a torch weights file ({type(exc).__name__})") from None
    for key in ("state_dict", "model", "net"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise UserError(f"--weights {path} does not hold a state dict (name -> tensor)")
    return obj


def import_cloud(
    factory: str,
    weights: str | os.PathLike[str],
    preprocess: Preprocess,
    embed_dim: int | None = None,
    kwargs: dict | None = None,
) -> CloudModel:
    """Wrap a user's torch model and weights as a cloud model.

    Args:
        factory: ``package.module:function`` returning the ``nn.Module``.
        weights: its state dict, loaded with ``weights_only=True``.
        preprocess: the input the model expects.
        embed_dim: the expected embedding dim; inferred from a forward pass when ``None``.
        kwargs: keyword arguments for the factory (JSON data).
    """
    source = {"type": "factory", "factory": factory, "kwargs": kwargs or {}}
    net = build_net(source, embed_dim or 0)
    state = _read_weights(Path(weights))
    try:
        cast(nn.Module, net.inner).load_state_dict(state)
    except RuntimeError as exc:
        raise UserError(f"--weights do not fit the model from {factory} ({str(exc).splitlines()[0]})") from None
    net.eval().requires_grad_(False)
    with torch.no_grad():
        try:
            out = net(torch.zeros(2, preprocess.channels, preprocess.size, preprocess.size))
        except RuntimeError as exc:
            raise UserError(
                f"the model from {factory} does not accept {preprocess.channels}x{preprocess.size}x{preprocess.size} "
                f"inputs ({str(exc).splitlines()[0]}); set --channels/--size"
            ) from None
    inferred = int(out.shape[1])
    if embed_dim is not None and embed_dim != inferred:
        raise UserError(f"--embed-dim {embed_dim} does not match the model's output dim {inferred}")
    model = CloudModel(net=net, preprocess=preprocess, embed_dim=inferred, source=source, meta={"imported_from": str(weights)})
    model.refresh_fingerprint()
    return model
