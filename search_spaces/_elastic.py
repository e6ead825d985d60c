"""Elastic layers: the supernet's versions of the layers in ``_layers``, which run a slice of
their weights.

Each elastic layer subclasses the plain layer, so it has the same parameters under the same
names at the largest size, and runs:
- the first ``active_out`` output channels and as many input channels as its input has
  (``weight[:out, :in]``), so narrower subnets share the leading channels;
- the centre ``active_kernel x active_kernel`` of its largest kernel;
- batch norm with the statistics and affine parameters of those channels only.
:meth:`Elastic.activate` copies the active sizes from the matching layer of a static subnet.
"""

from __future__ import annotations

import abc
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from hetero.search_spaces._layers import ConvBNAct, LayerKit, SqueezeExcite, Stage

__all__ = [
    "ELASTIC_KIT",
    "Elastic",
    "ElasticConvBNAct",
    "ElasticLinear",
    "ElasticSqueezeExcite",
    "ElasticStage",
]


class Elastic(abc.ABC):
    """Mixin of the layers whose active size a supernet sets."""

    @abc.abstractmethod
    def activate(self, static: nn.Module) -> None:
        """Take the active sizes from ``static``, the same-named layer of the subnet to run."""


def centre_crop(weight: torch.Tensor, kernel: int) -> torch.Tensor:
    """The centre ``kernel x kernel`` of the last two dims of a conv weight."""
    start = (weight.shape[-1] - kernel) // 2
    return weight[..., start : start + kernel, start : start + kernel]


def sliced_batch_norm(bn: nn.BatchNorm2d, x: torch.Tensor) -> torch.Tensor:
    """Apply ``bn`` to the first ``x.shape[1]`` channels, as ``bn.forward`` would to all.

    In training mode the running statistics of those channels are updated in place (the slices
    are views), with ``bn.momentum`` or, when it is ``None``, the cumulative average that
    :func:`hetero.search_spaces.recalibrate_bn` relies on.
    """
    c = x.shape[1]
    mean, var, batches = bn.running_mean, bn.running_var, bn.num_batches_tracked
    if mean is None or var is None or batches is None:
        raise ValueError("sliced_batch_norm needs a BatchNorm2d that tracks running statistics")
    factor = 0.0
    if bn.training:
        batches.add_(1)
        factor = 1.0 / float(batches) if bn.momentum is None else bn.momentum
    return F.batch_norm(
        x,
        mean[:c],
        var[:c],
        bn.weight[:c],
        bn.bias[:c],
        bn.training,
        factor,
        bn.eps,
    )


class ElasticConvBNAct(Elastic, ConvBNAct):
    """:class:`ConvBNAct` with elastic output channels, input channels and kernel size.

    Takes :class:`ConvBNAct`'s arguments. A depthwise layer (``groups > 1``) is depthwise at
    every width.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.conv.groups not in (1, self.conv.in_channels):
            raise ValueError("an elastic conv is either dense (groups=1) or depthwise")
        self.depthwise = self.conv.groups > 1
        self.active_out = self.conv.out_channels
        self.active_kernel = self.conv.kernel_size[0]

    def activate(self, static: nn.Module) -> None:
        assert isinstance(static, ConvBNAct)
        self.active_out = static.conv.out_channels
        self.active_kernel = static.conv.kernel_size[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cin = x.shape[1]
        weight = self.conv.weight[: self.active_out]
        if not self.depthwise:
            weight = weight[:, :cin]
        weight = centre_crop(weight, self.active_kernel)
        groups = cin if self.depthwise else 1
        x = F.conv2d(x, weight, None, self.conv.stride, self.active_kernel // 2, 1, groups)
        return self.act(sliced_batch_norm(self.bn, x))


class ElasticSqueezeExcite(Elastic, SqueezeExcite):
    """:class:`SqueezeExcite` with elastic channels and bottleneck."""

    def __init__(self, channels: int, reduced: int) -> None:
        super().__init__(channels, reduced)
        self.active_reduced = reduced

    def activate(self, static: nn.Module) -> None:
        assert isinstance(static, SqueezeExcite)
        self.active_reduced = static.reduce.out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c, r = x.shape[1], self.active_reduced
        s = x.mean((2, 3), keepdim=True)
        reduce_bias, expand_bias = self.reduce.bias, self.expand.bias
        s = self.act(F.conv2d(s, self.reduce.weight[:r, :c], None if reduce_bias is None else reduce_bias[:r]))
        s = F.conv2d(s, self.expand.weight[:c, :r], None if expand_bias is None else expand_bias[:c])
        return x * self.gate(s)


class ElasticLinear(Elastic, nn.Linear):
    """``nn.Linear`` with elastic input and output features."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__(in_features, out_features)
        self.active_out = out_features

    def activate(self, static: nn.Module) -> None:
        assert isinstance(static, nn.Linear)
        self.active_out = static.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        o = self.active_out
        return F.linear(x, self.weight[:o, : x.shape[-1]], self.bias[:o])


class ElasticStage(Elastic, Stage):
    """:class:`Stage` that runs only its first ``active_depth`` blocks."""

    def __init__(self, blocks: list[nn.Module]) -> None:
        super().__init__(blocks)
        self.active_depth = len(blocks)

    def activate(self, static: nn.Module) -> None:
        assert isinstance(static, Stage)
        self.active_depth = len(static.blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks[: self.active_depth]:
            x = block(x)
        return x


ELASTIC_KIT = LayerKit(ElasticConvBNAct, ElasticSqueezeExcite, ElasticLinear, ElasticStage)
