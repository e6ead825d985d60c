"""The one place where images are resized and normalised for a model.

A :class:`Preprocess` travels with every model file and every manifest, so that a device applies
exactly what the model saw in training.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F

from hetero.errors import UserError

__all__ = ["Preprocess"]


@dataclass(frozen=True)
class Preprocess:
    """Resize to ``size`` x ``size``, convert to ``channels``, then ``(x - mean) / std``.

    Input images are ``[N, C, H, W]`` in ``[0, 1]`` as the data loaders return them.
    """

    size: int
    channels: int
    mean: tuple[float, ...] = (0.5,)
    std: tuple[float, ...] = (0.5,)

    def __post_init__(self) -> None:
        if self.channels not in (1, 3):
            raise UserError(f"preprocessing: channels must be 1 or 3, got {self.channels}")
        for name in ("mean", "std"):
            value = getattr(self, name)
            if len(value) not in (1, self.channels):
                raise UserError(f"preprocessing: {name} needs 1 or {self.channels} values, got {len(value)}")
        if any(s <= 0 for s in self.std):
            raise UserError("preprocessing: std values must be positive")

    def to_dict(self) -> dict:
        d = asdict(self)
        d.update(mean=list(self.mean), std=list(self.std), resize="bilinear, antialiased", layout="NCHW float32")
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Preprocess:
        return cls(int(d["size"]), int(d["channels"]), tuple(d["mean"]), tuple(d["std"]))

    def __call__(self, images: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Preprocess a batch; returns a float32 tensor ``[N, channels, size, size]``."""
        x = torch.as_tensor(images, dtype=torch.float32)
        if x.ndim != 4:
            raise UserError(f"preprocessing expects images [N, C, H, W], got shape {tuple(x.shape)}")
        if x.shape[1] != self.channels:
            # Grey to colour repeats the plane; colour to grey takes the mean (both what users expect).
            x = x.repeat(1, 3, 1, 1) if x.shape[1] == 1 else x.mean(1, keepdim=True)
        if x.shape[-1] != self.size or x.shape[-2] != self.size:
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", antialias=True, align_corners=False)
        mean = torch.tensor(self.mean, dtype=torch.float32).view(1, -1, 1, 1)
        std = torch.tensor(self.std, dtype=torch.float32).view(1, -1, 1, 1)
        return (x - mean) / std

    def batches(self, images: np.ndarray | torch.Tensor, batch_size: int = 512):
        """Yield preprocessed batches of ``images`` (bounded memory for large sets)."""
        for start in range(0, len(images), batch_size):
            yield self(images[start : start + batch_size])
