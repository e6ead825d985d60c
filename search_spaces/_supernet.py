"""The once-for-all supernet of a space, and batch-norm recalibration for inherited weights."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from hetero.search_spaces._elastic import ELASTIC_KIT, Elastic
from hetero.search_spaces._errors import ArchError
from hetero.search_spaces._layers import STATIC_KIT
from hetero.search_spaces._network import EmbeddingNet, sort_channel_groups

if TYPE_CHECKING:
    from hetero.search_spaces._space import Arch, SearchSpace

__all__ = ["Supernet", "recalibrate_bn"]


class Supernet(nn.Module):
    """One network whose subnets, sharing its weights, are every architecture of a space.

    Built with :meth:`SearchSpace.supernet`. A subnet keeps the first N channels of each layer,
    the centre of each depthwise kernel and the first d blocks of each stage; batch-norm
    statistics are sliced the same way, so recalibrate them (:func:`recalibrate_bn`) before
    evaluating a subnet trained as part of the supernet.

    Args:
        space: The search space.
        embed_dim: Size of the output embedding.
        in_channels: Channels of the input images.

    Attributes:
        net: The elastic network, at the size of the space's largest architecture.
        active_arch: The architecture :meth:`forward` runs.
        active_params: Parameters of the standalone network of ``active_arch``.
    """

    def __init__(self, space: SearchSpace, embed_dim: int, in_channels: int) -> None:
        super().__init__()
        self.space = space
        self.embed_dim = embed_dim
        self.in_channels = in_channels
        net = space._network(space.largest_arch(), embed_dim, in_channels, ELASTIC_KIT)
        if not isinstance(net, EmbeddingNet):  # channel sorting needs the shared skeleton's groups
            raise TypeError(f"space {space.name!r} does not build an EmbeddingNet and has no supernet")
        self.net: EmbeddingNet = net
        self.active_arch: Arch = space.largest_arch()
        self.active_params = sum(p.numel() for p in self.net.parameters())

    def set_active(self, arch: Mapping[str, Any]) -> None:
        """Make ``arch`` the subnet that :meth:`forward` runs.

        Setting the architecture that is already active does nothing (a oneshot trial activates
        it to count its MACs, then evaluates it).

        Raises:
            ArchError: If ``arch`` is not an architecture of the supernet's space.
        """
        if dict(arch) == self.active_arch:
            return
        self.space.validate(arch)
        # The static subnet, built without memory on the meta device, holds every active size
        # under the same module names as the elastic layers, so the sizes are computed once,
        # by the same code that builds the standalone network.
        with torch.device("meta"):
            shape = self.space._network(dict(arch), self.embed_dim, self.in_channels, STATIC_KIT)
        static = dict(shape.named_modules())
        for name, module in self.net.named_modules():
            if isinstance(module, Elastic) and name in static:
                module.activate(static[name])
        self.active_arch = dict(arch)
        self.active_params = sum(p.numel() for p in shape.parameters())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Run the active subnet: ``[N, C, R, R]`` to L2-normalised ``[N, embed_dim]``."""
        return self.net(x)

    def extract(self, arch: Mapping[str, Any] | None = None) -> nn.Module:
        """Return a standalone copy of a subnet, with the weights it inherits from the supernet.

        Args:
            arch: The architecture; the active one by default. The active one is unchanged.

        Returns:
            The network :meth:`SearchSpace.build` returns for ``arch``, on the supernet's device
            and in its training mode, computing what the supernet computes for ``arch``.
        """
        arch = self.active_arch if arch is None else arch
        model = self.space.build(arch, self.embed_dim, self.in_channels)
        full = self.net.state_dict()
        model.load_state_dict({k: _crop(full[k], v.shape) for k, v in model.state_dict().items()})
        device = next(self.net.parameters()).device
        return model.to(device).train(self.training)

    def sort_channels(self) -> None:
        """Reorder channels so that the first N of every layer are the most important.

        The largest subnet computes the same function afterwards; the smaller ones inherit
        better channels. Call it between training phases, then recreate the optimizer.
        """
        with torch.no_grad():  # an in-place permutation of trained leaves, not a step to differentiate
            sort_channel_groups(self.net.channel_groups())


def _crop(tensor: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """The leading channels (dims 0 and 1) and the centre of the kernel (dims 2+) of ``tensor``."""
    index = []
    for dim, size in enumerate(shape):
        start = 0 if dim < 2 else (tensor.shape[dim] - size) // 2
        index.append(slice(start, start + size))
    return tensor[tuple(index)]


@torch.no_grad()
def recalibrate_bn(
    module: nn.Module, batches: Iterable[Any], n_batches: int | None = None
) -> nn.Module:
    """Re-estimate every batch norm's running statistics from data, then switch to eval mode.

    Weights inherited from a supernet come with statistics of the supernet's mix of subnets;
    evaluating a subnet without re-estimating them collapses its accuracy.

    Args:
        module: The network (a :class:`Supernet` with the wanted subnet active, or an extracted
            subnet).
        batches: Input batches: tensors ``[N, C, R, R]``, or tuples/lists whose first item is.
        n_batches: How many batches to use at most; all of them by default.

    Returns:
        ``module``, in eval mode, with the statistics the exact average over the batches.

    Raises:
        ArchError: If ``batches`` yields no batch.
    """
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [bn.momentum for bn in norms]
    device = next(module.parameters()).device
    for bn in norms:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average: every batch weighs the same
    module.train()
    seen = 0
    try:
        for batch in batches:
            if n_batches is not None and seen >= n_batches:
                break
            x = batch[0] if isinstance(batch, tuple | list) else batch
            module(x.to(device))
            seen += 1
    finally:
        for bn, momentum in zip(norms, momenta, strict=True):
            bn.momentum = momentum
        module.eval()
    if seen == 0:
        raise ArchError("recalibrate_bn got no batches: pass an iterable that yields input batches")
    return module
