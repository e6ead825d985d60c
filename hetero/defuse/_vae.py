"""A small convolutional VAE over a data set's raw ``[0, 1]`` images: Defuse's generator.

Two stride-2 convolutions (three for images of 32 px and more) encode an image to the mean and
log-variance of a ``latent_dim`` Gaussian; transposed convolutions decode a code back. Images are
resized to a multiple of the downsampling factor inside the model and back at the end, so any
square size works (digits' 8 px, Fashion-MNIST's 28 px, 64 px photos).

The trained VAE is cached in the run's output folder under the digest of the images and the
settings (:func:`cached_vae`): a second run on the same data reuses it.
"""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hetero.errors import UserError
from hetero.models._files import load_model_file, save_model_file
from hetero.runtime import progress

__all__ = ["VAEConfig", "ConvVAE", "train_vae", "save_vae", "load_vae", "cached_vae", "data_fingerprint", "VAE_FORMAT"]

VAE_FORMAT = "hetero.defuse-vae/1"


@dataclass(frozen=True)
class VAEConfig:
    """The VAE's shape and training.

    Attributes:
        latent_dim: size of the latent code.
        width: channels of the first convolution (doubled at each downsampling).
        steps: optimizer steps (Adam).
        batch_size: images per step.
        lr: learning rate.
        beta: weight of the KL term (1 is the plain VAE's evidence bound; 0.5 kept 11 of 16
            dimensions active on digits against 5 at 1, and decoded variations the cloud
            recognised 92% of the time at noise 0.3).
    """

    latent_dim: int = 16
    width: int = 32
    steps: int = 1500
    batch_size: int = 128
    lr: float = 2e-3
    beta: float = 0.5

    def __post_init__(self) -> None:
        if self.latent_dim < 2 or self.width < 4 or self.steps < 1 or self.batch_size < 1:
            raise UserError("VAE settings: --latent-dim must be >= 2, --vae-steps >= 1 (width >= 4, batch >= 1)")
        if not (self.lr > 0 and self.beta > 0):
            raise UserError("VAE settings: the learning rate and beta must be > 0")


class ConvVAE(nn.Module):
    """Encoder, Gaussian latent and decoder for ``[N, channels, size, size]`` images in [0, 1].

    Args:
        channels: image channels (1 or 3).
        size: image side in pixels.
        latent_dim: size of the latent code.
        width: channels after the first downsampling.
    """

    def __init__(self, channels: int, size: int, latent_dim: int = 16, width: int = 32) -> None:
        super().__init__()
        self.channels, self.size, self.latent_dim = channels, size, latent_dim
        self.downs = 3 if size >= 32 else 2
        factor = 2**self.downs
        # The inner side: the image side rounded up to a multiple of the downsampling factor.
        self.inner = factor * math.ceil(size / factor)
        self.cells = self.inner // factor
        widths = [width * 2**i for i in range(self.downs)]
        layers: list[nn.Module] = []
        prev = channels
        for w in widths:
            layers += [nn.Conv2d(prev, w, 4, stride=2, padding=1), nn.BatchNorm2d(w), nn.LeakyReLU(0.2)]
            prev = w
        self.encoder = nn.Sequential(*layers, nn.Flatten())
        flat = prev * self.cells * self.cells
        self.to_stats = nn.Linear(flat, 2 * latent_dim)
        self.from_code = nn.Linear(latent_dim, flat)
        ups: list[nn.Module] = []
        for w in reversed(widths[:-1]):
            ups += [nn.ConvTranspose2d(prev, w, 4, stride=2, padding=1), nn.BatchNorm2d(w), nn.LeakyReLU(0.2)]
            prev = w
        self.decoder = nn.Sequential(*ups, nn.ConvTranspose2d(prev, channels, 4, stride=2, padding=1))
        self.top = widths[-1]

    def _resize(self, x: torch.Tensor, side: int) -> torch.Tensor:
        if x.shape[-1] == side and x.shape[-2] == side:
            return x
        return F.interpolate(x, size=(side, side), mode="bilinear", align_corners=False)

    def encode(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mean, log_variance)`` of each image's code, ``[N, latent_dim]`` each."""
        stats = self.to_stats(self.encoder(self._resize(images, self.inner)))
        mean, log_var = stats.chunk(2, dim=1)
        return mean, log_var.clamp(-12.0, 8.0)

    def decode_logits(self, codes: torch.Tensor) -> torch.Tensor:
        """Pixel logits ``[N, channels, size, size]`` of codes ``[N, latent_dim]``."""
        x = self.from_code(codes).view(len(codes), self.top, self.cells, self.cells)
        return self._resize(self.decoder(x), self.size)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Images in [0, 1] of codes ``[N, latent_dim]``."""
        return torch.sigmoid(self.decode_logits(codes))

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mean, log_var = self.encode(images)
        codes = mean + torch.randn_like(mean) * (0.5 * log_var).exp()
        return self.decode_logits(codes), mean, log_var


def vae_loss(model: ConvVAE, images: torch.Tensor, beta: float) -> tuple[torch.Tensor, float, float]:
    """The negative evidence bound per image: Bernoulli reconstruction plus ``beta`` x KL."""
    logits, mean, log_var = model(images)
    recon = F.binary_cross_entropy_with_logits(logits, images, reduction="sum") / len(images)
    kl = -0.5 * (1 + log_var - mean.pow(2) - log_var.exp()).sum() / len(images)
    return recon + beta * kl, float(recon.detach()), float(kl.detach())


def train_vae(images: np.ndarray, config: VAEConfig | None = None, seed: int = 0) -> ConvVAE:
    """Train a :class:`ConvVAE` on raw ``[N, C, S, S]`` images in [0, 1]; returns it in eval mode."""
    config = config or VAEConfig()
    x = torch.as_tensor(np.asarray(images, dtype=np.float32)).clamp(0.0, 1.0)
    if x.ndim != 4 or x.shape[-1] != x.shape[-2]:
        raise UserError(f"the VAE needs square images [N, C, S, S], got shape {tuple(x.shape)}; resize the data")
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = ConvVAE(x.shape[1], x.shape[-1], config.latent_dim, config.width)
        optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, config.steps)
        model.train()
        bar = progress(range(config.steps), desc="defuse vae", unit="step")
        for _ in bar:
            batch = x[torch.randint(0, len(x), (min(config.batch_size, len(x)),), generator=generator)]
            loss, recon, kl = vae_loss(model, batch, config.beta)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            bar.set_postfix(recon=f"{recon:.1f}", kl=f"{kl:.1f}", refresh=False)
    return model.eval()


def save_vae(model: ConvVAE, config: VAEConfig, data: str, path: str | os.PathLike[str]) -> Path:
    """Write the VAE (weights and plain settings only, so it loads with ``weights_only=True``)."""
    return save_model_file(path, {
        "format": VAE_FORMAT, "channels": model.channels, "size": model.size, "config": asdict(config),
        "data": data, "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    })


def load_vae(path: str | os.PathLike[str]) -> tuple[ConvVAE, VAEConfig, str]:
    """The VAE, its settings and the data fingerprint it was trained on."""
    payload = load_model_file(path, VAE_FORMAT, "defuse VAE")
    config = VAEConfig(**payload["config"])
    model = ConvVAE(int(payload["channels"]), int(payload["size"]), config.latent_dim, config.width)
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as exc:
        raise UserError(f"defuse VAE {path}: weights do not fit its shape ({str(exc).splitlines()[0]}); delete it") from None
    return model.eval(), config, str(payload["data"])


def data_fingerprint(images: np.ndarray) -> str:
    """sha256 of the images' shape and float32 bytes: what a cached VAE was trained on."""
    x = np.ascontiguousarray(images, dtype=np.float32)
    h = hashlib.sha256(str(x.shape).encode())
    h.update(x.tobytes())
    return "sha256:" + h.hexdigest()


def cached_vae(images: np.ndarray, folder: str | os.PathLike[str], config: VAEConfig | None = None,
               seed: int = 0) -> tuple[ConvVAE, Path, bool]:
    """The VAE of ``images`` from ``folder/vae-<digest>.pt``, trained and written there if missing.

    The digest covers the images, the settings and the seed, so another data set or setting never
    reuses a VAE it was not trained for.

    Returns:
        The VAE, its file and whether it was trained now (``False``: loaded from the cache).
    """
    config = config or VAEConfig()
    data = data_fingerprint(images)
    key = hashlib.sha256(f"{data}|{sorted(asdict(config).items())}|{seed}".encode()).hexdigest()[:16]
    path = Path(folder) / f"vae-{key}.pt"
    if path.is_file():
        model, _, trained_on = load_vae(path)
        if trained_on == data:
            return model, path, False
    model = train_vae(images, config, seed)
    save_vae(model, config, data, path)
    return model, path, True
