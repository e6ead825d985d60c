"""What cloud and edge models share: a network that maps preprocessed images to unit embeddings."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from hetero.data import Preprocess
from hetero.metrics import check_embeddings

__all__ = ["EmbeddingModel", "l2_normalize_tensor"]


def l2_normalize_tensor(x: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Export-friendly L2 normalisation (``F.normalize`` breaks litert-torch's dynamic batch)."""
    return x / x.pow(2).sum(-1, keepdim=True).sqrt().clamp_min(eps)


@dataclass
class EmbeddingModel:
    """A network plus the preprocessing it expects.

    Attributes:
        net: ``[N, C, S, S]`` preprocessed images to ``[N, embed_dim]`` unit embeddings.
        preprocess: how raw ``[0, 1]`` images become the net's input.
        embed_dim: the embedding dimension.
        meta: provenance and figures recorded at training time.
    """

    net: nn.Module
    preprocess: Preprocess
    embed_dim: int
    meta: dict = field(default_factory=dict)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (self.preprocess.channels, self.preprocess.size, self.preprocess.size)

    def to(self, device: torch.device) -> EmbeddingModel:
        self.net.to(device)
        return self

    @torch.no_grad()
    def embed(self, images: np.ndarray, batch_size: int = 512) -> np.ndarray:
        """Embed raw ``[0, 1]`` images; returns float32 ``[N, embed_dim]``."""
        self.net.eval()
        device = next(self.net.parameters()).device
        out = [self.net(x.to(device)).float().cpu().numpy() for x in self.preprocess.batches(images, batch_size)]
        return check_embeddings(np.concatenate(out), "model output", dim=self.embed_dim)

    @torch.no_grad()
    def embed_preprocessed(self, inputs: np.ndarray, batch_size: int = 512) -> np.ndarray:
        """Embed already-preprocessed inputs (what an exported artifact receives)."""
        self.net.eval()
        device = next(self.net.parameters()).device
        out = [
            self.net(torch.from_numpy(inputs[i : i + batch_size]).to(device)).float().cpu().numpy()
            for i in range(0, len(inputs), batch_size)
        ]
        return np.concatenate(out)
