"""The network a search trains: fresh from its space, or, in the ``cloud_pruned`` space, the cloud pruned.

Most spaces build an architecture from scratch. ``cloud_pruned`` architectures are the cloud
network itself with channels removed (``hetero.search_spaces._cloud_pruned``); their trials start from the
cloud's trained weights (``hetero.models._pruned.start_from_cloud``), the architecture recording
the cloud's source so that the saved edge model can be rebuilt. Such a space has no supernet:
every architecture already inherits its weights from the cloud, so it is searched standalone.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from hetero.errors import UserError
from hetero.models._pruned import CLOUD_PRUNED

__all__ = ["fresh_net", "net_builder", "search_space"]


def search_space(name: str, cloud, strategy: str, resolutions: tuple[int, ...] = ()):
    """The space ``name`` a search samples (``cloud_pruned`` given the cloud's network to prune).

    Raises:
        UserError: ``oneshot`` asked of a space that has no supernet.
    """
    from hetero.search_spaces import get_space

    kwargs = {"resolutions": resolutions} if resolutions else {}
    if name != CLOUD_PRUNED:
        return get_space(name, **kwargs)
    if strategy == "oneshot":
        raise UserError("space cloud_pruned has no supernet (each architecture inherits the cloud's weights): "
                        "search it with --strategy standalone")
    return get_space(name, cloud=cloud.net, **kwargs)


def fresh_net(arch: dict, cloud, channels: int, seed: int | None = None) -> tuple[dict, nn.Module]:
    """The architecture as trained and its starting network: freshly initialised (``seed``), or the
    cloud pruned to ``arch`` with its weights kept (``cloud_pruned``, whose architecture gains the
    cloud's source)."""
    if arch["space"] == CLOUD_PRUNED:
        from hetero.models._pruned import start_from_cloud

        return start_from_cloud(cloud, arch)
    from hetero.search_spaces import get_space

    if seed is not None:
        torch.manual_seed(seed)
    return arch, get_space(arch["space"]).build(arch, cloud.embed_dim, channels)


def net_builder(space, cloud, channels: int) -> Callable[[Mapping[str, Any]], nn.Module] | None:
    """What the cost model builds an architecture with: ``None`` (the space's own build, on the meta
    device) except for ``cloud_pruned``, whose networks are pruned copies of the real cloud network
    (with the input map an edge model of it carries)."""
    if space.name != CLOUD_PRUNED:
        return None
    return lambda arch: fresh_net(dict(arch), cloud, channels)[1]
