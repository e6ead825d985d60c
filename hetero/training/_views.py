"""What a training step sees: each image's augmented view and the cloud's embedding of that same view.

The cloud's targets must come from the view the trained model sees (issue 14: a roll of the edge's
input against targets of the unmoved image gave the cloud's own two views a mean cosine of 0.974,
min 0.776, so alignment pulled towards the wrong point). Three ways to get them, chosen by cost:

- ``cached``: ``cloud_views`` views per image (view 0 the image itself) are drawn once with a fixed
  seed, the cloud embeds them once, and only their parameters and embeddings are kept; each step
  picks one view per image and renders it again for the edge model. Cost: views x N cloud
  forwards, once.
- ``online``: fresh views every step, embedded by the cloud under ``no_grad`` in the step. Cost: one
  cloud forward per trained sample.
- ``clean``: no augmentation (``--augment none``, or cloud targets passed in without views): the
  images as they are, with their precomputed cloud embeddings.

``cached`` is chosen when ``views x N`` is at most the samples the training will see (steps x batch
size), ``online`` otherwise. Measured on digits (1,258 training images, the demo's 32 px ResNet
cloud of 19.9 MMACs, 1 thread on the busy 2-core machine): one cloud pass over the images took
2.3 s and the 4-view cache 10.8 s; the demo's edge training (270 steps of 128) would run the cloud
on 34,560 views online, 27 passes (~60 s), and the 600-step default 61 passes. On a 35,000-image
tiny-imagenet split the same 600 steps see ~2 passes of the data, fewer than 4 views, so the cloud
runs per batch there.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from hetero.data import Preprocess
from hetero.data._augment import draw_params, identity_params, render

__all__ = ["TrainViews", "ViewBatch"]

# Cloud forwards at once when caching views (bounded memory for large sets).
_CHUNK = 512


@dataclass
class ViewBatch:
    """One step's inputs: the trained model's preprocessed views and the cloud's embeddings of them."""

    inputs: torch.Tensor
    cloud: torch.Tensor | None


class TrainViews:
    """The views of a set of images that a trainer draws batches from.

    Args:
        images: ``[N, C, H, W]`` raw images in [0, 1].
        preprocess: The trained model's preprocessing.
        kind: ``none``, ``glyph`` or ``photo`` (see :func:`hetero.data.resolve_augment`).
        cloud: The frozen cloud model whose embeddings are the targets, or ``None`` (cloud training).
        clean: The cloud's embeddings of the images as they are, when already computed.
        views: Views per image to cache.
        samples: How many samples the training will draw (steps x batch size): decides cached or online.
        seed: Fixes the cached views.

    The cloud runs wherever its network is (move it to the training device for online targets).
    """

    def __init__(
        self,
        images: np.ndarray | torch.Tensor,
        preprocess: Preprocess,
        kind: str,
        cloud=None,
        clean: torch.Tensor | None = None,
        views: int = 4,
        samples: int = 0,
        seed: int = 0,
    ) -> None:
        self.images = torch.as_tensor(images, dtype=torch.float32)
        self.preprocess = preprocess
        self.kind = kind
        self.cloud = cloud
        self.mode = self._choose_mode(clean, views, samples)
        self.clean = clean
        if cloud is not None and clean is None:
            # Also online: the classifier's class prototypes and the unaugmented targets need them.
            self.clean = torch.from_numpy(cloud.embed(self.images.numpy()))
        if self.mode == "clean":
            self._inputs = torch.cat(list(preprocess.batches(self.images)))
        if self.mode == "cached":
            self._cache(views, seed)

    def __len__(self) -> int:
        return len(self.images)

    def _choose_mode(self, clean: torch.Tensor | None, views: int, samples: int) -> str:
        if self.kind == "none":
            return "clean"
        if self.cloud is None:
            # Targets without the model that made them cannot follow a view: keep both unmoved.
            return "clean" if clean is not None else "online"
        return "cached" if views * len(self.images) <= samples else "online"

    def _cache(self, views: int, seed: int) -> None:
        generator = torch.Generator().manual_seed(seed + 7919)  # apart from the training's generator
        n = len(self.images)
        params = [identity_params(n)] + [draw_params(self.kind, n, generator) for _ in range(views - 1)]
        self.params = torch.stack(params)
        assert self.clean is not None  # set in __init__ whenever there is a cloud to cache views of
        embeddings = [self.clean]
        for view in self.params[1:]:
            parts = [self._cloud_embed(self.images[i : i + _CHUNK], view[i : i + _CHUNK]) for i in range(0, n, _CHUNK)]
            embeddings.append(torch.cat(parts))
        self.embeddings = torch.stack(embeddings)

    @torch.no_grad()
    def _cloud_embed(self, images: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        """The cloud's embeddings of the views ``params`` of ``images``."""
        self.cloud.net.eval()
        device = next(self.cloud.net.parameters()).device
        views = render(images, params, self.cloud.preprocess.size)
        return self.cloud.net(self.cloud.preprocess(views).to(device)).float().cpu()

    def _edge_inputs(self, images: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        # Each model's view is rendered at its own input side (where the images are smaller than
        # it): one resampling instead of two, and the same geometry as the cloud's view.
        return self.preprocess(render(images, params, self.preprocess.size))

    def batch(self, idx: torch.Tensor, generator: torch.Generator) -> ViewBatch:
        """The views of images ``idx`` for one step (drawing from ``generator``, which a checkpoint saves)."""
        if self.mode == "clean":
            return ViewBatch(self._inputs[idx], self.clean[idx] if self.clean is not None else None)
        if self.mode == "cached":
            pick = torch.randint(0, len(self.params), (len(idx),), generator=generator)
            return ViewBatch(self._edge_inputs(self.images[idx], self.params[pick, idx]), self.embeddings[pick, idx])
        images, params = self.images[idx], draw_params(self.kind, len(idx), generator)
        cloud = self._cloud_embed(images, params) if self.cloud is not None else None
        return ViewBatch(self._edge_inputs(images, params), cloud)

    def clean_inputs(self, count: int) -> torch.Tensor:
        """The first ``count`` images, preprocessed as they are (e.g. to find the embedding size)."""
        return self.preprocess(self.images[:count])
