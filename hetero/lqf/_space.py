"""The ``lqf`` architecture: a base architecture linearised around trained weights.

An LQF model's file records ``{"space": "lqf", "base": <base architecture>, "slope": s}``; this
space rebuilds the plain-layer :class:`~hetero.lqf.LinearizedNet` from it (weights ``w0``, the
batch-norm statistics and ``delta`` all come from the file's state dict), so ``load_edge`` and
every exporter handle an LQF model like any other edge model.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from hetero.search_spaces import ArchError, SearchSpace, get_space, register_space

__all__ = ["LQF_SPACE", "LinearizedSpace", "lqf_arch"]

LQF_SPACE = "lqf"


def lqf_arch(base: Mapping[str, Any], slope: float) -> dict:
    """The architecture of ``base`` linearised with leaky ReLUs of negative ``slope``."""
    return {"space": LQF_SPACE, "base": dict(base), "slope": float(slope)}


@register_space(LQF_SPACE)
class LinearizedSpace(SearchSpace):
    """Not searched: it only names how a linearised network is rebuilt."""

    def _choices(self) -> dict:
        return {}

    def _default_params(self) -> dict:
        raise ArchError("the lqf space has no default architecture: it linearises a trained model (hetero train --method lqf)")

    def _network(self, arch, embed_dim, in_channels, kit) -> nn.Module:  # pragma: no cover - build is overridden
        # build() rebuilds the base network and its tangent; a generic layer kit cannot make them.
        raise ArchError("an lqf network is rebuilt from its base architecture by hetero.lqf, not from the space's layers")

    def validate(self, arch: Mapping[str, Any]) -> None:
        if not isinstance(arch, Mapping) or arch.get("space") != LQF_SPACE:
            raise ArchError(f"architecture is not an lqf architecture: {arch!r}")
        if set(arch) != {"space", "base", "slope"}:
            raise ArchError(f"an lqf architecture has the keys space, base, slope; got {sorted(arch)}")
        slope = arch["slope"]
        if isinstance(slope, bool) or not isinstance(slope, int | float) or not 0 <= slope < 1:
            raise ArchError(f"lqf slope {slope!r} must be a number in [0, 1)")
        base = arch["base"]
        if not isinstance(base, Mapping) or base.get("space") in (None, LQF_SPACE):
            raise ArchError("an lqf architecture's base must be another space's architecture")
        get_space(base["space"]).validate(base)

    def resolution(self, arch: Mapping[str, Any]) -> int:
        self.validate(arch)
        return get_space(arch["base"]["space"]).resolution(arch["base"])

    def build(self, arch: Mapping[str, Any], embed_dim: int, in_channels: int) -> nn.Module:
        from hetero.lqf._linearize import LinearizedNet, leaky_copy, split_norm

        self.validate(arch)
        base = get_space(arch["base"]["space"]).build(arch["base"], embed_dim=embed_dim, in_channels=in_channels)
        net = LinearizedNet(split_norm(leaky_copy(base, float(arch["slope"]))))
        net.arch = dict(arch)
        return net
