"""The export-friendly layers every search space builds from.

Every backend (ONNX, TFLite, Core ML and its interpreter, TensorRT) must support the ops these
layers produce, so the vocabulary is deliberately small: conv2d (including depthwise), batch norm,
relu, add, mul, clamp, mean over H and W, linear, pow/sum/sqrt/clamp_min/div and flatten/reshape.
Fused or composite torch ops (``F.hardswish``, adaptive pooling, ``F.normalize``) are avoided
because converters lower them differently, or not at all with a dynamic batch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

__all__ = [
    "ConvBNAct",
    "GlobalAvgPool",
    "HardSigmoid",
    "HardSwish",
    "L2Norm",
    "LayerKit",
    "STATIC_KIT",
    "SqueezeExcite",
    "Stage",
    "make_activation",
    "make_divisible",
]


def make_divisible(value: float, divisor: int = 4) -> int:
    """Round a channel count to a multiple of ``divisor``, never dropping more than 10%.

    Args:
        value: The unrounded channel count.
        divisor: The multiple to round to.

    Returns:
        The rounded channel count, at least ``divisor``.
    """
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


class HardSwish(nn.Module):
    """``x * relu6(x + 3) / 6`` written with ``clamp`` so it lowers to Clip on every backend."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.clamp(x + 3, 0, 6) / 6


class HardSigmoid(nn.Module):
    """``relu6(x + 3) / 6`` written with ``clamp`` so it lowers to Clip on every backend."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.clamp(x + 3, 0, 6) / 6


# In place: an activation always follows a freshly computed tensor (a batch norm's or an add's
# output) that nothing else reads, and writing over it saves a memory pass per layer (~8% of a
# oneshot trial on a CPU). Exporters functionalise it back to a plain Relu.
_ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": lambda: nn.ReLU(inplace=True),
    "hswish": HardSwish,
    "none": nn.Identity,
}


def make_activation(name: str) -> nn.Module:
    """Return the activation module called ``name`` (``"relu"``, ``"hswish"`` or ``"none"``)."""
    try:
        return _ACTIVATIONS[name]()
    except KeyError:
        known = sorted(_ACTIVATIONS)
        raise ValueError(f"unknown activation {name!r}; use one of {known}") from None


class ConvBNAct(nn.Module):
    """Conv2d (no bias, 'same' padding), BatchNorm2d, then an activation.

    Args:
        in_channels: Input channels.
        out_channels: Output channels.
        kernel_size: Square kernel size (odd, so that padding ``k // 2`` keeps the size).
        stride: Convolution stride.
        groups: Convolution groups; ``in_channels`` for a depthwise convolution.
        act: Activation name, see :func:`make_activation`.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 1,
        stride: int = 1,
        groups: int = 1,
        act: str = "relu",
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=kernel_size // 2,
            groups=groups,
            bias=False,
        )
        self.bn = nn.BatchNorm2d(out_channels)
        self.act = make_activation(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class SqueezeExcite(nn.Module):
    """Squeeze-and-excite: channel gates from the spatial mean, through a hard sigmoid.

    Args:
        channels: Channels of the input (and of the gates).
        reduced: Channels of the bottleneck between the two 1x1 convolutions.
    """

    def __init__(self, channels: int, reduced: int) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(channels, reduced, 1)
        self.expand = nn.Conv2d(reduced, channels, 1)
        self.act = nn.ReLU()
        self.gate = HardSigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)
        return x * self.gate(self.expand(self.act(self.reduce(s))))


class GlobalAvgPool(nn.Module):
    """``[N, C, H, W] -> [N, C]`` as a mean over H and W (adaptive pooling is not portable)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean((2, 3))


class L2Norm(nn.Module):
    """L2-normalise the last dimension, written out because ``F.normalize`` breaks litert-torch.

    Args:
        eps: Lower bound of the norm, so that a zero vector stays zero instead of NaN.
    """

    def __init__(self, eps: float = 1e-12) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x / x.pow(2).sum(-1, keepdim=True).sqrt().clamp_min(self.eps)


class Stage(nn.Module):
    """A sequence of blocks; a module of its own so that a supernet can run only the first few.

    Args:
        blocks: The blocks, run in order.
    """

    def __init__(self, blocks: Sequence[nn.Module]) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return x


@dataclass(frozen=True)
class LayerKit:
    """The layer classes a network is built from: plain ones, or the supernet's elastic ones.

    A space writes its network once against a kit; built with the elastic kit the same code gives
    the supernet, with module names identical to every static subnet's, which is what lets
    extraction copy weights by name.
    """

    conv_bn_act: type[ConvBNAct]
    squeeze_excite: type[SqueezeExcite]
    linear: type[nn.Linear]
    stage: type[Stage]


STATIC_KIT = LayerKit(ConvBNAct, SqueezeExcite, nn.Linear, Stage)
