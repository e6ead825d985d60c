"""The network skeleton the spaces share, and the channel bookkeeping that sorts a supernet.

Both spaces are stem -> stages of blocks -> optional 1x1 head -> global average pool -> linear ->
L2 norm. Knowing which layers produce and which consume each set of channels lets one routine
reorder channels by importance for any space without changing what the network computes.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any, cast

import torch
from torch import nn

from hetero.search_spaces._layers import ConvBNAct, GlobalAvgPool, L2Norm, LayerKit, Stage

__all__ = ["Block", "ChannelGroup", "EmbeddingNet", "sort_channel_groups"]


@dataclass
class ChannelGroup:
    """Layers that share one set of channels, which must therefore be permuted together.

    Attributes:
        producers: Layers whose output channels are the group (their dim 0 is permuted).
        consumers: Layers whose input channels are the group (their dim 1 is permuted).
    """

    producers: list[nn.Module] = field(default_factory=list)
    consumers: list[nn.Module] = field(default_factory=list)


class Block(nn.Module, abc.ABC):
    """A block of a stage, described by the layers at its two channel boundaries.

    Attributes:
        residual: Whether the block adds its input to its output, which makes its input and
            output channels one group.
    """

    residual: bool = False

    @abc.abstractmethod
    def inputs(self) -> list[nn.Module]:
        """Layers that read the block's input channels."""

    @abc.abstractmethod
    def outputs(self) -> list[nn.Module]:
        """Layers that write the block's output channels (the residual adds to them)."""

    def inner_groups(self) -> list[ChannelGroup]:
        """Channel groups that live entirely inside the block."""
        return []


class EmbeddingNet(nn.Module):
    """Stem, stages, optional head conv, mean pool, linear and L2 norm.

    Args:
        arch: The architecture, kept (copied) as the ``arch`` attribute.
        stem: The first layer.
        stages: One :class:`Stage` of :class:`Block` per stage.
        head: A 1x1 conv before pooling, or ``None``.
        features: Channels entering the pooling.
        embed_dim: Size of the embedding.
        kit: The layer classes (plain or elastic) used for the final linear layer.
    """

    def __init__(
        self,
        arch: dict[str, Any],
        stem: ConvBNAct,
        stages: list[Stage],
        head: ConvBNAct | None,
        features: int,
        embed_dim: int,
        kit: LayerKit,
    ) -> None:
        super().__init__()
        self.arch = dict(arch)
        self.stem = stem
        self.stages = nn.ModuleList(stages)
        self.head = head if head is not None else nn.Identity()
        self.pool = GlobalAvgPool()
        self.fc = kit.linear(features, embed_dim)
        self.norm = L2Norm()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        return self.norm(self.fc(self.pool(self.head(x))))

    def channel_groups(self) -> list[ChannelGroup]:
        """Return every group of channels that can be permuted without changing the output."""
        groups: list[ChannelGroup] = []
        stream = ChannelGroup(producers=[self.stem])
        for stage in cast("list[Stage]", self.stages):  # nn.ModuleList is typed as holding nn.Module
            for block in cast("list[Block]", stage.blocks):
                stream.consumers += block.inputs()
                if block.residual:
                    stream.producers += block.outputs()
                else:
                    groups.append(stream)
                    stream = ChannelGroup(producers=block.outputs())
                groups += block.inner_groups()
        if isinstance(self.head, ConvBNAct):
            stream.consumers.append(self.head)
            groups.append(stream)
            stream = ChannelGroup(producers=[self.head])
        stream.consumers.append(self.fc)
        groups.append(stream)
        return groups


def _layer_tensors(layer: nn.Module) -> tuple[list[torch.Tensor], nn.Conv2d | nn.Linear]:
    """The per-output-channel tensors of ``layer`` and the module holding its weight."""
    if isinstance(layer, ConvBNAct):
        bn = layer.bn
        tensors = [layer.conv.weight, bn.weight, bn.bias, bn.running_mean, bn.running_var]
        return [t for t in tensors if t is not None], layer.conv
    if isinstance(layer, nn.Conv2d | nn.Linear):
        return [t for t in (layer.weight, layer.bias) if t is not None], layer
    raise TypeError(f"cannot permute the channels of {type(layer).__name__}")


@torch.no_grad()
def sort_channel_groups(groups: list[ChannelGroup]) -> None:
    """Reorder each group's channels by importance, most important first, in place.

    Importance is the L1 norm of the consumers' weights on each channel (as once-for-all sorts),
    so that the first N channels, which a narrower subnet keeps, are the ones that matter most.
    The network computes the same function afterwards; an optimizer's state is invalidated.

    Args:
        groups: The groups, from :meth:`EmbeddingNet.channel_groups`.
    """
    for group in groups:
        importance = sum(
            (_layer_tensors(c)[1].weight.abs().transpose(0, 1).flatten(1).sum(1) for c in group.consumers),
            torch.zeros(()),
        )
        perm = torch.argsort(importance, descending=True, stable=True)
        for layer in group.producers:
            for t in _layer_tensors(layer)[0]:
                t.copy_(t[perm])
        for layer in group.consumers:
            w = _layer_tensors(layer)[1].weight
            w.copy_(w[:, perm])
