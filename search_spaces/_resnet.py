"""The ``resnet`` space: ResNet-style networks of basic blocks, for cloud and larger models.

A stride-1 3x3 stem, then four stages of basic blocks (two 3x3 convs and a shortcut), each stage
halving the resolution: 16, 8, 4 and 2 px at 32 px input. Per stage the depth and the width are
chosen; the default architecture costs about 20 MMACs at 32 px.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from hetero.search_spaces._layers import LayerKit, make_activation
from hetero.search_spaces._network import Block, ChannelGroup, EmbeddingNet
from hetero.search_spaces._registry import register_space
from hetero.search_spaces._space import Choice, SearchSpace, per_stage

__all__ = ["BasicBlock", "ResNetSpace"]

_STEM = 24
_DEPTHS = (1, 2, 3)
_WIDTHS = ((16, 24, 32), (32, 48, 64), (64, 96, 128), (128, 192, 256))


class BasicBlock(Block):
    """ResNet basic block: two 3x3 conv-BN layers plus a shortcut, then ReLU.

    Args:
        in_channels: Input channels.
        out_channels: Output channels.
        stride: Stride of the first conv and of the shortcut.
        projection: Whether the shortcut is a strided 1x1 conv-BN (the first block of a stage)
            rather than the identity. The first block always projects, even when the sizes happen
            to match, so that the module tree does not depend on the chosen widths.
        kit: The layer classes.
    """

    def __init__(
        self, in_channels: int, out_channels: int, stride: int, projection: bool, kit: LayerKit
    ) -> None:
        super().__init__()
        self.conv1 = kit.conv_bn_act(in_channels, out_channels, 3, stride, act="relu")
        self.conv2 = kit.conv_bn_act(out_channels, out_channels, 3, act="none")
        self.shortcut = None
        if projection:
            self.shortcut = kit.conv_bn_act(in_channels, out_channels, 1, stride, act="none")
        self.relu = make_activation("relu")
        self.residual = not projection

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.shortcut is None else self.shortcut(x)
        return self.relu(self.conv2(self.conv1(x)) + identity)

    def inputs(self) -> list[nn.Module]:
        return [self.conv1] if self.shortcut is None else [self.conv1, self.shortcut]

    def outputs(self) -> list[nn.Module]:
        return [self.conv2] if self.shortcut is None else [self.conv2, self.shortcut]

    def inner_groups(self) -> list[ChannelGroup]:
        return [ChannelGroup([self.conv1], [self.conv2])]


@register_space("resnet")
class ResNetSpace(SearchSpace):
    """ResNet-style networks of basic blocks: per stage depth and width.

    Keys: ``resolution`` and, for stage ``i`` in 0..3, ``s{i}_depth`` (blocks) and ``s{i}_width``
    (channels).
    """

    def _choices(self) -> dict[str, tuple[Choice, ...]]:
        return per_stage(depth=[_DEPTHS] * len(_WIDTHS), width=_WIDTHS)

    def _default_params(self) -> dict[str, Choice]:
        return per_stage(depth=(2, 2, 2, 2), width=(24, 48, 96, 192))

    def _network(
        self, arch: dict[str, Any], embed_dim: int, in_channels: int, kit: LayerKit
    ) -> nn.Module:
        channels = _STEM
        stem = kit.conv_bn_act(in_channels, channels, 3, act="relu")
        stages = []
        for i in range(len(_WIDTHS)):
            out = arch[f"s{i}_width"]
            blocks = []
            for j in range(arch[f"s{i}_depth"]):
                blocks.append(BasicBlock(channels, out, 2 if j == 0 else 1, j == 0, kit))
                channels = out
            stages.append(kit.stage(blocks))
        return EmbeddingNet(arch, stem, stages, None, channels, embed_dim, kit)
