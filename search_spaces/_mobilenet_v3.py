"""The ``mobilenet_v3`` space: small MobileNetV3-style edge networks for images up to 32x32.

Five elastic stages of inverted residual blocks (1x1 expand, depthwise conv, squeeze-excite in the
later stages, 1x1 project), hard-swish in the last two stages, as MobileNetV3 and once-for-all.
Channel counts are far below ImageNet's because inputs are at most 32x32: the default
architecture costs about 2 MMACs at 32 px.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from hetero.search_spaces._layers import LayerKit, make_divisible
from hetero.search_spaces._network import Block, ChannelGroup, EmbeddingNet
from hetero.search_spaces._registry import register_space
from hetero.search_spaces._space import Choice, SearchSpace, per_stage

__all__ = ["InvertedResidual", "MobileNetV3Space"]

# (base width, stride of the first block, activation, squeeze-excite) per stage. Stem stride 2
# then strides 1,2,2,1,2 give 16,16,8,4,4,2 px at 32 px input and never below 2 px at 24 px.
_STAGES: tuple[tuple[int, int, str, bool], ...] = (
    (16, 1, "relu", False),
    (24, 2, "relu", False),
    (32, 2, "relu", True),
    (48, 1, "hswish", True),
    (64, 2, "hswish", True),
)
_STEM = 16
_HEAD = 256  # the 1x1 conv before pooling: cheap at 2x2 px and it gives the linear layer room
_WIDTHS = (0.5, 0.75, 1.0)
_DEPTHS = (2, 3, 4)
_EXPANDS = (3, 4, 6)
_KERNELS = (3, 5, 7)


class InvertedResidual(Block):
    """MobileNetV2/V3 block: 1x1 expand, depthwise kxk, optional squeeze-excite, 1x1 project.

    Args:
        in_channels: Input channels.
        out_channels: Output channels.
        expand: Expansion ratio of the hidden channels over ``in_channels``.
        kernel: Depthwise kernel size.
        stride: Depthwise stride.
        act: Activation name after the expand and depthwise convs.
        se: Whether to apply squeeze-excite to the hidden channels.
        kit: The layer classes.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        expand: int,
        kernel: int,
        stride: int,
        act: str,
        se: bool,
        kit: LayerKit,
    ) -> None:
        super().__init__()
        mid = make_divisible(in_channels * expand)
        self.expand = kit.conv_bn_act(in_channels, mid, 1, act=act)
        self.depthwise = kit.conv_bn_act(mid, mid, kernel, stride, groups=mid, act=act)
        self.se = kit.squeeze_excite(mid, make_divisible(mid / 4)) if se else None
        self.project = kit.conv_bn_act(mid, out_channels, 1, act="none")
        self.residual = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.depthwise(self.expand(x))
        if self.se is not None:
            y = self.se(y)
        y = self.project(y)
        return x + y if self.residual else y

    def inputs(self) -> list[nn.Module]:
        return [self.expand]

    def outputs(self) -> list[nn.Module]:
        return [self.project]

    def inner_groups(self) -> list[ChannelGroup]:
        producers: list[nn.Module] = [self.expand, self.depthwise]
        consumers: list[nn.Module] = [self.project]
        if self.se is not None:
            producers.append(self.se.expand)
            consumers.append(self.se.reduce)
        return [ChannelGroup(producers, consumers)]


@register_space("mobilenet_v3")
class MobileNetV3Space(SearchSpace):
    """MobileNetV3-style edge networks: per stage depth, expansion and kernel; a width multiplier.

    Keys: ``resolution``, ``width`` (multiplier of every channel count) and, for stage ``i`` in
    0..4, ``s{i}_depth`` (blocks), ``s{i}_expand`` (expansion ratio) and ``s{i}_kernel``
    (depthwise kernel size).
    """

    def _choices(self) -> dict[str, tuple[Choice, ...]]:
        n = len(_STAGES)
        stages = per_stage(depth=[_DEPTHS] * n, expand=[_EXPANDS] * n, kernel=[_KERNELS] * n)
        return {"width": _WIDTHS, **stages}

    def _default_params(self) -> dict[str, Choice]:
        return {
            "width": 0.75,
            **per_stage(depth=(2, 2, 3, 3, 2), expand=(4, 4, 4, 4, 6), kernel=(3, 3, 5, 5, 5)),
        }

    def _network(
        self, arch: dict[str, Any], embed_dim: int, in_channels: int, kit: LayerKit
    ) -> nn.Module:
        width = arch["width"]
        channels = make_divisible(_STEM * width)
        stem = kit.conv_bn_act(in_channels, channels, 3, stride=2, act="hswish")
        stages = []
        for i, (base, stride, act, se) in enumerate(_STAGES):
            out = make_divisible(base * width)
            blocks = []
            expand, kernel = arch[f"s{i}_expand"], arch[f"s{i}_kernel"]
            for j in range(arch[f"s{i}_depth"]):
                first_stride = stride if j == 0 else 1
                blocks.append(
                    InvertedResidual(channels, out, expand, kernel, first_stride, act, se, kit)
                )
                channels = out
            stages.append(kit.stage(blocks))
        features = make_divisible(_HEAD * width)
        head = kit.conv_bn_act(channels, features, 1, act="hswish")
        return EmbeddingNet(arch, stem, stages, head, features, embed_dim, kit)
