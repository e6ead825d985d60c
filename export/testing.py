"""Tiny models and inputs for testing backends, built from hetero's export op vocabulary.

The model uses exactly the ops that ``ARCHITECTURE.md`` promises every backend supports (conv,
depthwise conv, batch norm, relu, hard-swish, squeeze-excite, mean pool, linear, the manual L2 norm),
so a backend that passes on it passes on the real search spaces. Random weights are fine for
parity, but inputs must be structured: on pure noise the embeddings are near-degenerate and
quantization error looks worse (or better) than it is on images.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

__all__ = ["TinyEmbedder", "smooth_images"]


def _hswish(x: torch.Tensor) -> torch.Tensor:
    return x * torch.clamp(x + 3.0, 0.0, 6.0) / 6.0


class _SqueezeExcite(nn.Module):
    def __init__(self, channels: int, hidden: int) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(channels, hidden, 1)
        self.expand = nn.Conv2d(hidden, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean(dim=(2, 3), keepdim=True)
        s = torch.relu(self.reduce(s))
        # Hard-sigmoid, written with clamp like the search spaces do.
        s = torch.clamp(self.expand(s) + 3.0, 0.0, 6.0) / 6.0
        return x * s


class TinyEmbedder(nn.Module):
    """A few-thousand-parameter embedding net: stem, one inverted-residual block, SE, head.

    Args:
        in_channels: Image channels.
        dim: Embedding dimension.
        width: Channels after the stem.
        seed: Seed of the random initialisation, so separate processes build the same model.
    """

    def __init__(self, in_channels: int = 1, dim: int = 16, width: int = 8, seed: int = 0) -> None:
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self._build(in_channels, dim, width)
        self.eval()

    def _build(self, in_channels: int, dim: int, width: int) -> None:
        self.stem = nn.Conv2d(in_channels, width, 3, stride=2, padding=1, bias=False)
        self.stem_bn = nn.BatchNorm2d(width)
        self.expand = nn.Conv2d(width, width * 2, 1, bias=False)
        self.expand_bn = nn.BatchNorm2d(width * 2)
        self.depthwise = nn.Conv2d(width * 2, width * 2, 3, padding=1, groups=width * 2, bias=False)
        self.depthwise_bn = nn.BatchNorm2d(width * 2)
        self.se = _SqueezeExcite(width * 2, 4)
        self.project = nn.Conv2d(width * 2, width, 1, bias=False)
        self.project_bn = nn.BatchNorm2d(width)
        self.head = nn.Linear(width, dim)
        self._randomize_batch_norm()

    def _randomize_batch_norm(self) -> None:
        # Non-trivial running statistics, so a converter that drops or mis-folds BN is caught, and
        # large scales, so activations reach both sides of every clamp (hard-swish saturates).
        gen = torch.Generator().manual_seed(int(torch.randint(0, 1 << 30, ())))
        for module in self.modules():
            if isinstance(module, nn.BatchNorm2d):
                n = module.num_features
                # Buffers exist: these layers keep running statistics (the default).
                assert module.running_mean is not None and module.running_var is not None
                module.running_mean.copy_(torch.randn(n, generator=gen) * 0.1)
                module.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
                module.weight.data.copy_(4 * torch.rand(n, generator=gen) + 1.0)
                module.bias.data.copy_(torch.randn(n, generator=gen) * 0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = _hswish(self.stem_bn(self.stem(x)))
        y = torch.relu(self.expand_bn(self.expand(x)))
        y = _hswish(self.depthwise_bn(self.depthwise(y)))
        y = self.se(y)
        x = x + self.project_bn(self.project(y))
        x = self.head(x.mean(dim=(2, 3)))
        return x / x.pow(2).sum(-1, keepdim=True).sqrt().clamp_min(1e-12)


def smooth_images(n: int, channels: int = 1, size: int = 16, seed: int = 0) -> np.ndarray:
    """Smooth, image-like float32 inputs ``[n, channels, size, size]``, roughly zero-mean.

    Each image is a sum of a few random 2-D sinusoids and a blob, which gives real spatial
    structure (edges, gradients) instead of white noise.
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.meshgrid(np.linspace(0, 1, size), np.linspace(0, 1, size), indexing="ij")
    images = np.zeros((n, channels, size, size), dtype=np.float64)
    for i in range(n):
        for c in range(channels):
            fx, fy, phase = rng.uniform(0.5, 3.0), rng.uniform(0.5, 3.0), rng.uniform(0, 2 * np.pi)
            cx, cy, r = rng.uniform(0.2, 0.8), rng.uniform(0.2, 0.8), rng.uniform(0.1, 0.3)
            wave = np.sin(2 * np.pi * (fx * xx + fy * yy) + phase)
            blob = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r**2))
            images[i, c] = 0.5 * wave + 1.5 * blob - 0.5
    return images.astype(np.float32)
