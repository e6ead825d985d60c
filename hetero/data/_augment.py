"""Training augmentations that fit the data, as batched torch ops (torchvision does not import here).

An augmentation is a per-image parameter vector (:func:`draw_params`) and one function that renders
a batch from its parameters (:func:`render`). Keeping the two apart lets the trainer show the
*same* view to the edge model and to the cloud model (each then applies its own
:class:`hetero.data.Preprocess`), and lets it cache the cloud's embeddings of a few views per image
by storing only the parameters.

Two kinds, chosen by :func:`resolve_augment` from what the data is:

- ``photo`` (natural images, 3 channels): random resized crop (35-100% of the area, aspect 3/4-4/3),
  horizontal flip, light colour jitter (brightness, contrast, saturation within +-20%);
- ``glyph`` (digits, characters, greyscale): small affine moves (rotation +-10 degrees, scale
  0.9-1.1, shear +-0.1, shift +-5% of the side), no flip (a flipped glyph is another glyph) and
  no colour change.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from hetero.errors import UserError

__all__ = ["AUGMENTS", "resolve_augment", "draw_params", "identity_params", "render", "PARAMS"]

#: The ``--augment`` choices: ``auto`` picks ``photo`` or ``glyph`` from the data.
AUGMENTS = ("auto", "none", "glyph", "photo")
#: Length of one image's parameter vector: a 2x3 affine matrix (output -> input coordinates, in
#: grid_sample's [-1, 1] units) and brightness, contrast, saturation factors.
PARAMS = 9


def resolve_augment(name: str, images: np.ndarray | torch.Tensor) -> str:
    """The augmentation kind for ``images`` (``[N, C, H, W]``): ``none``, ``glyph`` or ``photo``.

    ``auto`` gives ``photo`` to colour images and ``glyph`` to single-channel ones; a 3-channel set
    whose channels are all equal (greyscale saved as RGB) counts as single-channel.
    """
    if name not in AUGMENTS:
        raise UserError(f"--augment {name!r} is unknown: use one of {', '.join(AUGMENTS)}")
    if name != "auto":
        return name
    if images.shape[1] != 3:
        return "glyph"
    sample = torch.as_tensor(images[:64])
    grey = bool((sample[:, 0] == sample[:, 1]).all() and (sample[:, 1] == sample[:, 2]).all())
    return "glyph" if grey else "photo"


def identity_params(n: int) -> torch.Tensor:
    """Parameters that leave ``n`` images as they are."""
    p = torch.zeros(n, PARAMS)
    p[:, 0] = p[:, 4] = 1.0
    p[:, 6:] = 1.0
    return p


def _uniform(n: int, low: float, high: float, generator: torch.Generator) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=generator)


def draw_params(kind: str, n: int, generator: torch.Generator) -> torch.Tensor:
    """Random parameters of ``kind`` for ``n`` images (``[n, PARAMS]``); ``none`` gives the identity."""
    p = identity_params(n)
    if kind == "none":
        return p
    if kind == "glyph":
        angle = _uniform(n, -math.pi / 18, math.pi / 18, generator)
        scale = _uniform(n, 0.9, 1.1, generator)
        shear = _uniform(n, -0.1, 0.1, generator)
        cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
        p[:, 0], p[:, 1] = cos, -sin + shear * cos
        p[:, 3], p[:, 4] = sin, cos + shear * sin
        p[:, 2], p[:, 5] = _uniform(n, -0.1, 0.1, generator), _uniform(n, -0.1, 0.1, generator)
        return p
    if kind == "photo":
        area = _uniform(n, 0.35, 1.0, generator)
        ratio = torch.exp(_uniform(n, math.log(3 / 4), math.log(4 / 3), generator))
        # Crop sides as fractions of the image's; grid_sample's units make them half-widths too.
        w = torch.sqrt(area * ratio).clamp(max=1.0)
        h = torch.sqrt(area / ratio).clamp(max=1.0)
        flip = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0)
        p[:, 0], p[:, 4] = w * flip, h
        p[:, 2] = (1 - w) * _uniform(n, -1.0, 1.0, generator)
        p[:, 5] = (1 - h) * _uniform(n, -1.0, 1.0, generator)
        p[:, 6:] = _uniform(3 * n, 0.8, 1.2, generator).view(n, 3)
        return p
    raise UserError(f"augmentation kind {kind!r} is unknown: use glyph, photo or none")


def _grid(theta: torch.Tensor, out_h: int, out_w: int, h: int, w: int) -> torch.Tensor:
    """``F.affine_grid`` for ``align_corners=False``, clamped to the input's outer pixel centres.

    The clamp is ``padding_mode="border"`` (edge pixels repeat where a move uncovers the outside:
    Preprocess's bilinear resize does the same, so an identity view matches a test image's
    preprocessing); done on the grid, grid_sample's cheap zero-padding path applies. Written as
    elementwise ops: on CPU affine_grid's batched 3x2 matmuls took 60x longer (63 ms vs ~1 ms for
    128 views of 24 px on this machine), and the border path of grid_sample 16x.
    """
    ys = (torch.arange(out_h, dtype=theta.dtype) * 2 + 1) / out_h - 1
    xs = (torch.arange(out_w, dtype=theta.dtype) * 2 + 1) / out_w - 1
    gy, gx = ys.view(1, -1, 1), xs.view(1, 1, -1)
    t = [theta[:, i // 3, i % 3].view(-1, 1, 1) for i in range(6)]
    sx = (t[0] * gx + t[1] * gy + t[2]).clamp(-1 + 1 / w, 1 - 1 / w)
    sy = (t[3] * gx + t[4] * gy + t[5]).clamp(-1 + 1 / h, 1 - 1 / h)
    return torch.stack([sx, sy], dim=-1)


def render(images: torch.Tensor, params: torch.Tensor, min_size: int = 0) -> torch.Tensor:
    """The views of ``images`` (``[B, C, H, W]`` in [0, 1]) that ``params`` (``[B, PARAMS]``) describe.

    Views are rendered at the images' own size, or at ``min_size`` per side where the images are
    smaller (8 px digits for a 24 px model): resampling once, at the model's side, keeps the small
    moves sub-pixel instead of blurring an 8 px image, and leaves the model's :class:`Preprocess`
    nothing to resize. Larger images are rendered at their own size and the Preprocess downsizes
    them as it does a test image (with antialiasing, which grid_sample lacks). Identity parameters
    give the images unchanged (at their own size) or as the Preprocess's bilinear resize would.
    """
    x = images.float()
    b, c, h, w = x.shape
    out_h, out_w = max(h, min_size), max(w, min_size)
    theta = params[:, :6].view(b, 2, 3).to(x)
    if not (params[:, :6] == identity_params(1)[:, :6]).all() or (out_h, out_w) != (h, w):
        x = F.grid_sample(x, _grid(theta, out_h, out_w, h, w), mode="bilinear", padding_mode="zeros", align_corners=False)
    colour = params[:, 6:].to(x)
    if (colour != 1).any():
        brightness, contrast, saturation = (colour[:, i].view(b, 1, 1, 1) for i in range(3))
        x = x * brightness
        x = (x - x.mean(dim=(1, 2, 3), keepdim=True)) * contrast + x.mean(dim=(1, 2, 3), keepdim=True)
        grey = x.mean(dim=1, keepdim=True)
        x = grey + (x - grey) * saturation
        x = x.clamp(0.0, 1.0)
    return x
