"""Perturb, decode: realistic variations of real images from the VAE's latent space (Defuse, step 1).

Each source image is encoded to its code (the encoder's mean), small Gaussian noise is added to the
code ``samples`` times and each noisy code is decoded into an image. A variation keeps the label of
the image it was perturbed from; the reference model's own decision on it checks that label (see
:mod:`hetero.defuse._judge`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from hetero.defuse._vae import ConvVAE
from hetero.errors import UserError
from hetero.runtime import progress

__all__ = ["Generated", "perturb_decode", "encode"]


@dataclass
class Generated:
    """Decoded variations of real images.

    Attributes:
        images: ``[M, C, S, S]`` decoded images in [0, 1].
        codes: ``[M, latent_dim]`` the perturbed codes they were decoded from.
        sources: ``[M]`` index (into the source images) of the image each was perturbed from.
        labels: ``[M]`` that image's class: the label of the variation.
    """

    images: np.ndarray
    codes: np.ndarray
    sources: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, mask_or_index: np.ndarray) -> Generated:
        return Generated(self.images[mask_or_index], self.codes[mask_or_index], self.sources[mask_or_index],
                         self.labels[mask_or_index])


@torch.no_grad()
def encode(vae: ConvVAE, images: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """The codes (encoder means) of raw ``[N, C, S, S]`` images, ``[N, latent_dim]``."""
    vae.eval()
    out = [vae.encode(torch.as_tensor(images[i : i + batch_size], dtype=torch.float32))[0]
           for i in range(0, len(images), batch_size)]
    return torch.cat(out).numpy() if out else np.zeros((0, vae.latent_dim), dtype=np.float32)


@torch.no_grad()
def perturb_decode(vae: ConvVAE, images: np.ndarray, labels: np.ndarray, samples: int = 8, noise: float = 0.3,
                   seed: int = 0, batch_size: int = 512) -> Generated:
    """``samples`` decoded variations of each image, its code plus ``N(0, noise^2)`` per dimension.

    Args:
        vae: the trained VAE of the images' data set.
        images: ``[N, C, S, S]`` source images in [0, 1] (the VAE's channels and size).
        labels: ``[N]`` their classes.
        samples: variations per image.
        noise: standard deviation of the noise added to each code (the prior's is 1).
        seed: fixes the noise.
        batch_size: codes decoded at once.
    """
    if samples < 1 or not noise > 0:
        raise UserError(f"--samples must be >= 1 and --noise > 0, got {samples} and {noise}")
    if images.ndim != 4 or images.shape[1] != vae.channels or images.shape[-1] != vae.size:
        raise UserError(f"images of shape {tuple(images.shape[1:])} do not fit the VAE's "
                        f"({vae.channels}, {vae.size}, {vae.size}); train it on this data")
    base = encode(vae, images)
    generator = torch.Generator().manual_seed(seed)
    sources = np.repeat(np.arange(len(images)), samples)
    codes = torch.from_numpy(base[sources]) + noise * torch.randn(len(sources), base.shape[1], generator=generator)
    decoded = [vae.decode(codes[i : i + batch_size])
               for i in progress(range(0, len(codes), batch_size), desc="defuse decode", unit="batch")]
    out = torch.cat(decoded).numpy() if decoded else np.zeros((0, *images.shape[1:]), dtype=np.float32)
    return Generated(out.astype(np.float32), codes.numpy().astype(np.float32), sources, np.asarray(labels)[sources])
