"""The ``cloud_pruned`` space: edge networks that are structurally pruned copies of the cloud model.

CMP-NAS's "compatibility by architecture": instead of a network from scratch, the edge model is the
cloud network itself with channels removed stage by stage (Torch-Pruning traces the network, so the
channels a residual add or a depthwise conv ties together go together) and the surviving weights
kept. An architecture is ``{"space": "cloud_pruned", "resolution": R, "keep": K}``, where ``K`` is
the share of channels each stage keeps: one number for every stage or a list with one per stage.
A stage is a run of layers at one feature-map size (the stem's size is stage 0, each downsampling
starts the next), found by running the network once at ``R`` pixels.

The space prunes the torch module it is given and needs nothing else; which module (a hetero cloud
model, rebuilt from its file) is the caller's business. An architecture may carry a ``"cloud"``
entry, any JSON object, for that caller to record where the cloud network comes from.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from typing import Any, NoReturn

import torch
from torch import nn

from hetero.search_spaces._errors import ArchError
from hetero.search_spaces._layers import LayerKit
from hetero.search_spaces._registry import register_space
from hetero.search_spaces._space import Arch, Choice, SearchSpace, _is_int

__all__ = ["CloudPrunedSpace", "prune_network", "layer_stages", "scaled_resolutions"]

# A search samples one keep ratio for all stages; hand-written architectures may give any ratio in
# (0, 1] per stage.
_KEEPS: tuple[float, ...] = (0.25, 0.375, 0.5, 0.625, 0.75, 1.0)
# From 40 px up: an ImageNet network downsamples 32x, and at 32 px its last feature maps are 1x1,
# which TFLite's XNNPack delegate (ai-edge-litert 2.x) refuses to prepare with a dynamic batch.
_RESOLUTIONS: tuple[int, ...] = (40, 48, 56, 64)
#: What a search of a given cloud samples: these eighths of the cloud's input size (40-64 px for a
#: 64 px cloud, 20-32 px for a 32 px one; more pixels than the cloud was given add MACs, not detail).
_EIGHTHS = (5, 6, 7, 8)
_LAYERS = (nn.Conv2d, nn.Linear)


@register_space("cloud_pruned")
class CloudPrunedSpace(SearchSpace):
    """Channel-pruned copies of a cloud network, at a chosen input resolution.

    Args:
        resolutions: The resolutions a search samples from (any resolution >= 8 validates).
        cloud: The network to prune (left untouched: a copy is pruned). Without it the space
            validates and samples architectures but cannot build them.
    """

    min_resolution = 8

    def __init__(self, resolutions: Sequence[int] = _RESOLUTIONS, cloud: nn.Module | None = None) -> None:
        super().__init__(resolutions)
        self.cloud = cloud

    def _choices(self) -> dict[str, tuple[Choice, ...]]:
        return {"keep": _KEEPS}

    def _default_params(self) -> dict[str, Choice]:
        return {"keep": 0.5}

    def validate(self, arch: Mapping[str, Any]) -> None:
        """Check ``arch``: ``space``, an integer ``resolution`` >= 8, ``keep`` in (0, 1] (a number or
        a non-empty list of numbers) and optionally a ``cloud`` JSON object.

        Raises:
            ArchError: If it is not such an architecture.
        """
        if not isinstance(arch, Mapping):
            raise ArchError(f"an architecture must be a JSON object, got {type(arch).__name__}")
        if arch.get("space") != self.name:
            raise ArchError(f"architecture is for space {arch.get('space')!r}, not {self.name!r}")
        missing = [k for k in ("resolution", "keep") if k not in arch]
        unknown = sorted(set(arch) - {"space", "resolution", "keep", "cloud"})
        if missing or unknown:
            raise ArchError(
                f"architecture for space {self.name!r} has missing keys {missing} and unknown keys {unknown}; "
                'write {"space": "cloud_pruned", "resolution": 48, "keep": 0.5} (keep: one share of channels '
                "for every stage, or a list with one per stage)"
            )
        res = arch["resolution"]
        if not _is_int(res) or res < self.min_resolution:
            raise ArchError(f"architecture key 'resolution' = {res!r} must be an integer >= {self.min_resolution}")
        keeps = arch["keep"] if isinstance(arch["keep"], list) else [arch["keep"]]
        if not keeps or not all(_is_ratio(k) for k in keeps):
            raise ArchError(
                f"architecture key 'keep' = {arch['keep']!r} must be a share of channels in (0, 1], or a "
                "non-empty list of them (one per stage)"
            )
        if "cloud" in arch and not isinstance(arch["cloud"], Mapping):
            raise ArchError(f"architecture key 'cloud' must be a JSON object, got {type(arch['cloud']).__name__}")

    def resolution(self, arch: Mapping[str, Any]) -> int:
        """Return the input resolution of a valid architecture."""
        self.validate(arch)
        return int(arch["resolution"])

    def _network(self, arch: Arch, embed_dim: int, in_channels: int, kit: LayerKit) -> nn.Module:
        if self.cloud is None:
            raise ArchError(
                "space 'cloud_pruned' prunes a cloud model and was given none; build it with "
                "get_space('cloud_pruned', cloud=network) (hetero does this from the cloud model's file)"
            )
        net = copy.deepcopy(self.cloud).float().cpu().requires_grad_(True)
        example = torch.zeros(1, in_channels, arch["resolution"], arch["resolution"])
        return prune_network(net, arch["keep"], example, embed_dim)

    def supernet(self, embed_dim: int, in_channels: int) -> NoReturn:
        """Not available: a pruned cloud network is trained standalone, from the cloud's weights."""
        raise ArchError("space 'cloud_pruned' has no supernet: train its architectures one by one (hetero train)")


def scaled_resolutions(net: nn.Module, size: int, in_channels: int) -> tuple[int, ...]:
    """The resolutions a search of ``net`` (a cloud network taking ``size`` px) samples by default.

    Five to eight eighths of ``size`` in multiples of 4, those at which every feature map of the
    network stays larger than 1x1 (see ``_RESOLUTIONS``); ``size`` itself where none does.
    """
    smallest: list[int] = []

    def record(_module: nn.Module, _inputs: Any, output: Any) -> None:
        if isinstance(output, torch.Tensor) and output.ndim == 4:
            smallest.append(output.shape[-1] * output.shape[-2])

    probe = copy.deepcopy(net).float().cpu().eval()  # the caller's network keeps its mode and has no hooks added
    for m in probe.modules():
        if isinstance(m, nn.Conv2d):
            m.register_forward_hook(record)
    kept = []
    for res in sorted({max(8, 4 * round(size * k / 32)) for k in _EIGHTHS}):
        smallest.clear()
        with torch.no_grad():
            probe(torch.zeros(1, in_channels, res, res))
        if min(smallest, default=2) > 1:
            kept.append(res)
    return tuple(kept) or (size,)


def layer_stages(net: nn.Module, example: torch.Tensor) -> dict[nn.Module, int]:
    """The stage of every conv and linear layer of ``net``, from one forward pass on ``example``.

    A layer's stage is the rank of its output's spatial size among the sizes the network produces
    (largest first). Layers whose output has no spatial extent left (a linear after pooling, the 1x1
    convs of a squeeze-excite) belong to the stage of the layer that ran before them.
    """
    order: list[tuple[nn.Module, int]] = []

    def record(module: nn.Module, _inputs: Any, output: Any) -> None:
        size = output.shape[-1] * output.shape[-2] if isinstance(output, torch.Tensor) and output.ndim == 4 else 0
        order.append((module, size))

    hooks = [m.register_forward_hook(record) for m in net.modules() if isinstance(m, _LAYERS)]
    try:
        with torch.no_grad():
            net(example)
    finally:
        for h in hooks:
            h.remove()
    sizes = sorted({s for _, s in order if s > 1}, reverse=True)
    stages: dict[nn.Module, int] = {}
    stage = 0
    for module, size in order:
        if size > 1:
            stage = sizes.index(size)
        stages.setdefault(module, stage)  # a layer run twice keeps its first stage
    return stages


def prune_network(net: nn.Module, keep: float | Sequence[float], example: torch.Tensor, embed_dim: int) -> nn.Module:
    """Remove channels of ``net`` in place with Torch-Pruning, stage by stage; return ``net``.

    Each layer's output channels are ranked by the L2 norm of their weights (with the layers that
    share them) and the smallest are removed, so that ``keep`` of them remain in each layer (local
    pruning: the number removed depends only on the structure, never on the weights, which is what
    lets a file rebuild the same structure from freshly initialised weights). The layer that writes
    the embedding keeps all of its outputs.

    Args:
        net: The network, mapping ``example`` to ``[N, embed_dim]``; pruned in place.
        keep: Share of channels each stage keeps: one number, or one per stage (see
            :func:`layer_stages`).
        example: An input of the resolution the pruned network will run at (it defines the stages).
        embed_dim: The embedding dim, which the pruned network must still produce.

    Raises:
        ArchError: If Torch-Pruning is not installed or cannot trace ``net``, if ``keep`` lists
            another number of stages than ``net`` has, or if pruning would change the output.
    """
    try:
        import torch_pruning as tp
    except ImportError:
        raise ArchError("space 'cloud_pruned' needs Torch-Pruning: pip install 'hetero[prune]'") from None
    net.eval()
    try:
        stages = layer_stages(net, example)
    except Exception as exc:  # the user's network may fail in any way on this input
        raise ArchError(f"the cloud network does not run on a {tuple(example.shape[1:])} input ({_first_line(exc)})") from None
    n_stages = max(stages.values(), default=-1) + 1
    keeps = list(keep) if isinstance(keep, Sequence) else [keep] * n_stages
    if len(keeps) != n_stages:
        raise ArchError(
            f"'keep' lists {len(keeps)} shares but the cloud network has {n_stages} stages at "
            f"{example.shape[-1]} px: give {n_stages}, or one number for all"
        )
    # The embedding comes out of the last layer that writes embed_dim channels/features.
    writers = [m for m in stages if _out_width(m) == embed_dim]
    ignored = writers[-1:]
    try:
        ratios = _group_ratios(tp, net, example, stages, keeps, ignored)
        if all(r == 0.0 for r in ratios.values()):
            return net
        pruner = tp.pruner.MetaPruner(
            net,
            example,
            importance=tp.importance.MagnitudeImportance(p=2),
            pruning_ratio=0.0,
            pruning_ratio_dict=ratios,
            ignored_layers=ignored,
            global_pruning=False,
        )
        pruner.step()
        with torch.no_grad():
            out = net(example)
    except Exception as exc:  # Torch-Pruning's tracer raises many kinds on code it cannot follow
        raise ArchError(
            f"Torch-Pruning cannot prune the cloud network ({type(exc).__name__}: {_first_line(exc)}); "
            "use a from-scratch edge space such as mobilenet_v3"
        ) from None
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (example.shape[0], embed_dim):
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ArchError(
            f"pruning changed the cloud network's output to {shape} (expected {(example.shape[0], embed_dim)}): "
            "Torch-Pruning cannot keep its embedding intact; use a from-scratch edge space such as mobilenet_v3"
        )
    return net


def _group_ratios(tp: Any, net: nn.Module, example: torch.Tensor, stages: dict[nn.Module, int],
                  keeps: list[float], ignored: list[nn.Module]) -> dict[nn.Module, float]:
    """The pruning ratio of every layer: that of the stage where its output channels are produced.

    Channels tied together (an expand conv and the depthwise conv after it, the outputs a residual
    chain adds up) form one group that Torch-Pruning cuts with the ratio of whichever layer it
    picks as the group's root; every layer of a group gets the ratio of the group's earliest stage,
    so that the pick does not matter and a downsampling block's hidden channels follow the stage
    they are computed from.
    """
    graph = tp.DependencyGraph().build_dependency(net, example)
    ratios: dict[nn.Module, float] = {}
    for group in graph.get_all_groups(ignored_layers=ignored, root_module_types=list(_LAYERS)):
        members = [
            dep.target.module for dep, _ in group
            if dep.target.module in stages and graph.is_out_channel_pruning_fn(dep.handler)
        ]
        if members:
            ratio = 1.0 - float(keeps[min(stages[m] for m in members)])
            ratios.update({m: ratio for m in members if m not in ignored})
    return ratios


def _out_width(layer: nn.Module) -> int:
    if isinstance(layer, nn.Conv2d):
        return layer.out_channels
    if isinstance(layer, nn.Linear):
        return layer.out_features
    raise TypeError(f"cannot read the width of {type(layer).__name__}")


def _is_ratio(value: object) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return math.isfinite(value) and 0.0 < value <= 1.0


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
