"""Edge networks that start from the cloud model: its network pruned by ``search_spaces``' ``cloud_pruned``.

The space prunes any torch module; this module supplies hetero's side. It prunes the loaded cloud
model's network with the cloud's trained weights (:func:`start_from_cloud`), and rebuilds the same
structure for a saved ``edge.pt`` (:func:`build_pruned_net`): the architecture records the cloud
network's source (a space architecture or an importable factory, plain JSON), the network is built
from it with fresh weights and pruned by the same local rule, whose channel counts depend on the
structure alone, so the saved weights fit. No code is pickled.

The edge model keeps hetero's default preprocessing (``pipeline.default_preprocess``), which may
differ from the cloud's (an imported ImageNet model normalises with ImageNet's mean and std); a
per-channel affine map in front of the pruned network (a depthwise 1x1 conv) maps one to the other
exactly, so the inherited weights see the inputs they were trained on.
"""

from __future__ import annotations

import torch
from torch import nn

from hetero.data import Preprocess
from hetero.errors import UserError

__all__ = ["CLOUD_PRUNED", "FromCloud", "build_pruned_net", "start_from_cloud"]

CLOUD_PRUNED = "cloud_pruned"


class FromCloud(nn.Module):
    """``body(input_map(x))``: a pruned cloud network behind a per-channel affine map of its input.

    The map is a depthwise 1x1 convolution (``C`` MACs a pixel): litert-torch cannot convert a
    broadcast multiply-add on the dynamic-batch input, and a convolution is in every backend's op
    vocabulary. It starts as the exact change of normalisation and is trained with the rest.

    Args:
        body: The pruned cloud network (ends in the cloud's L2-normalised embedding).
        channels: Input channels.
    """

    def __init__(self, body: nn.Module, channels: int) -> None:
        super().__init__()
        self.input_map = nn.Conv2d(channels, channels, 1, groups=channels)
        self.body = body

    @torch.no_grad()
    def set_input_map(self, edge: Preprocess, cloud: Preprocess) -> None:
        """Map inputs normalised as ``edge`` to inputs normalised as ``cloud``."""
        em, es = _per_channel(edge.mean, edge.channels), _per_channel(edge.std, edge.channels)
        cm, cs = _per_channel(cloud.mean, cloud.channels), _per_channel(cloud.std, cloud.channels)
        # pixel p = x_edge * es + em, and the cloud wants (p - cm) / cs.
        self.input_map.weight.copy_((es / cs).reshape(-1, 1, 1, 1))
        assert self.input_map.bias is not None  # made with a bias above
        self.input_map.bias.copy_((em - cm) / cs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(self.input_map(x))


def start_from_cloud(cloud, arch: dict) -> tuple[dict, nn.Module]:
    """Prune ``cloud``'s network to ``arch``, keeping the cloud's weights in the surviving channels.

    Args:
        cloud: The loaded :class:`hetero.models.CloudModel`.
        arch: A ``cloud_pruned`` architecture (``resolution``, ``keep``).

    Returns:
        The architecture with the cloud's source recorded under ``"cloud"`` (what an edge file needs
        to rebuild the network) and the pruned network, input map set for hetero's default
        preprocessing at the architecture's resolution.

    Raises:
        UserError: If the cloud's network cannot be pruned (the message says why).
    """
    from hetero.pipeline import default_preprocess  # hetero.pipeline imports this package
    from hetero.search_spaces import ArchError, get_space

    arch = {**arch, "cloud": cloud.source}
    channels = cloud.preprocess.channels
    try:
        body = get_space(CLOUD_PRUNED, cloud=cloud.net).build(arch, embed_dim=cloud.embed_dim, in_channels=channels)
    except ArchError as exc:
        raise UserError(f"cannot start the edge model from the cloud model: {exc}") from None
    net = FromCloud(body, channels)
    net.set_input_map(default_preprocess(int(arch["resolution"]), channels), cloud.preprocess)
    return arch, net


def build_pruned_net(arch: dict, embed_dim: int, in_channels: int) -> nn.Module:
    """The untrained network of a ``cloud_pruned`` architecture saved with its ``"cloud"`` source.

    Raises:
        UserError: If the architecture does not say which cloud network it prunes, or that network
            cannot be built or pruned here.
    """
    from hetero.models._cloud import build_net
    from hetero.search_spaces import ArchError, get_space

    source = arch.get("cloud")
    if not isinstance(source, dict):
        raise UserError(
            "a cloud_pruned architecture is built from a cloud model: train it with "
            "hetero train --cloud DIR --arch ARCH.json, which records the cloud's network in the edge model"
        )
    try:
        cloud_net = build_net(source, embed_dim)
        body = get_space(CLOUD_PRUNED, cloud=cloud_net).build(arch, embed_dim=embed_dim, in_channels=in_channels)
    except ArchError as exc:
        raise UserError(f"cannot rebuild the pruned cloud network: {exc}") from None
    return FromCloud(body, in_channels)


def _per_channel(values: tuple[float, ...], channels: int) -> torch.Tensor:
    t = torch.tensor([float(v) for v in values])
    return t.expand(channels).clone() if t.numel() == 1 else t
