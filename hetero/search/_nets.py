"""The network a search trains: fresh from its space, or, in the ``cloud_pruned`` space, the cloud pruned.

Most spaces build an architecture from scratch. ``cloud_pruned`` architectures are the cloud
network itself with channels removed (``hetero.search_spaces._cloud_pruned``); their trials start from the
cloud's trained weights (``hetero.models._pruned.start_from_cloud``), the architecture recording
the cloud's source so that the saved edge model can be rebuilt. Such a space has no supernet:
every architecture already inherits its weights from the cloud, so it is searched standalone.

What a search must beat is the architecture ``hetero train`` builds when given none
(:func:`reference_arch`): in a space of its own kind that is the space's default, trained as the
search trains; a ``cloud_pruned`` search competes with mobilenet_v3's default instead, since its own
default (half the channels kept) is a guess no user picked.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from hetero.errors import UserError
from hetero.models._pruned import CLOUD_PRUNED

__all__ = ["fresh_net", "net_builder", "reference_arch", "search_space"]


def search_space(name: str, cloud, strategy: str, resolutions: tuple[int, ...] = ()):
    """The space ``name`` a search samples (``cloud_pruned`` given the cloud's network to prune, at
    resolutions scaled to the cloud's input size unless ``resolutions`` are given).

    Raises:
        UserError: ``oneshot`` asked of a space that has no supernet.
    """
    from hetero.search_spaces import get_space

    if name != CLOUD_PRUNED:
        return get_space(name, **({"resolutions": resolutions} if resolutions else {}))
    if strategy == "oneshot":
        raise UserError("space cloud_pruned has no supernet (each architecture inherits the cloud's weights): "
                        "search it with --strategy standalone")
    from hetero.search_spaces import scaled_resolutions

    resolutions = resolutions or scaled_resolutions(cloud.net, cloud.preprocess.size, cloud.preprocess.channels)
    return get_space(name, cloud=cloud.net, resolutions=resolutions)


def reference_arch(space) -> dict:
    """The hand-picked architecture a search in ``space`` is compared with: the space's default, or,
    for ``cloud_pruned``, the one ``hetero train`` builds without ``--arch`` (mobilenet_v3's default)."""
    from hetero.search_spaces import default_edge_arch

    return default_edge_arch() if space.name == CLOUD_PRUNED else space.default_arch()


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
