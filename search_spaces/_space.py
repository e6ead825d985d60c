"""The :class:`SearchSpace` base class: choices, sampling, validation and building.

An architecture is a flat JSON-serialisable dict: ``"space"`` (the registered name),
``"resolution"`` (the input side in pixels) and one key per discrete choice of the space (for
example ``"s0_depth"``). The keys double as the Optuna parameter names, so a study's parameters
read as architectures.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from torch import nn

from hetero.search_spaces._errors import ArchError
from hetero.search_spaces._layers import STATIC_KIT, LayerKit

if TYPE_CHECKING:
    import optuna

    from hetero.search_spaces._supernet import Supernet

__all__ = ["Arch", "Choice", "SearchSpace", "per_stage"]

Choice = int | float
Arch = dict[str, Any]

DEFAULT_RESOLUTIONS: tuple[int, ...] = (24, 28, 32)


class SearchSpace(abc.ABC):
    """A discrete space of architectures that can be sampled, built and trained as a supernet.

    Subclasses define the choices, a default architecture and the network; everything else
    (sampling, validation, the supernet) is shared. Register a subclass with
    :func:`hetero.search_spaces.register_space`.

    Args:
        resolutions: The input resolutions (square, in pixels) the space may choose from.

    Raises:
        ArchError: If ``resolutions`` is empty or holds something other than positive integers.
    """

    name: ClassVar[str] = ""
    # The smallest input the network handles without a feature map collapsing below 1x1.
    min_resolution: ClassVar[int] = 8

    def __init__(self, resolutions: Sequence[int] = DEFAULT_RESOLUTIONS) -> None:
        res = tuple(resolutions)
        if not res or not all(_is_int(r) and r >= self.min_resolution for r in res):
            raise ArchError(
                f"resolutions {list(res)} are invalid for space {self.name!r}; "
                f"give one or more integers >= {self.min_resolution}"
            )
        self.resolutions: tuple[int, ...] = tuple(sorted(set(res)))

    @abc.abstractmethod
    def _choices(self) -> dict[str, tuple[Choice, ...]]:
        """The space's own choices (all but ``resolution``), each sorted smallest first."""

    @abc.abstractmethod
    def _default_params(self) -> dict[str, Choice]:
        """A sensible hand-picked value for each key of :meth:`_choices`."""

    @abc.abstractmethod
    def _network(self, arch: Arch, embed_dim: int, in_channels: int, kit: LayerKit) -> nn.Module:
        """Build the network of a valid ``arch`` from the layer classes of ``kit``.

        Module names must depend only on the space, never on the choices (a shallower stage just
        has fewer blocks), so that every subnet's names are a subset of the supernet's.
        """

    def choices(self) -> dict[str, tuple[Choice, ...]]:
        """Return every architecture key (but ``space``) with its allowed values, smallest first."""
        return {"resolution": self.resolutions, **self._choices()}

    def default_arch(self) -> Arch:
        """Return a sensible hand-picked architecture at the largest resolution."""
        arch = {"space": self.name, "resolution": self.resolutions[-1], **self._default_params()}
        self.validate(arch)
        return arch

    def sample(self, trial: optuna.trial.BaseTrial) -> Arch:
        """Sample an architecture from an Optuna trial.

        Args:
            trial: The trial; one categorical parameter is suggested per key of :meth:`choices`,
                named after the key.

        Returns:
            The architecture.
        """
        params = {k: trial.suggest_categorical(k, list(v)) for k, v in self.choices().items()}
        return {"space": self.name, **params}

    def random_arch(self, rng: np.random.Generator) -> Arch:
        """Return an architecture drawn uniformly per key with ``rng``."""
        # Indexing (rather than rng.choice) keeps plain Python ints and floats, which JSON needs.
        params = {k: v[int(rng.integers(len(v)))] for k, v in self.choices().items()}
        return {"space": self.name, **params}

    def smallest_arch(self) -> Arch:
        """Return the architecture with the smallest value of every choice."""
        return {"space": self.name, **{k: v[0] for k, v in self.choices().items()}}

    def largest_arch(self) -> Arch:
        """Return the architecture with the largest value of every choice."""
        return {"space": self.name, **{k: v[-1] for k, v in self.choices().items()}}

    def resolution(self, arch: Mapping[str, Any]) -> int:
        """Return the input resolution (square side in pixels) of a valid architecture."""
        self.validate(arch)
        return int(arch["resolution"])

    def validate(self, arch: Mapping[str, Any]) -> None:
        """Check that ``arch`` is an architecture of this space.

        Raises:
            ArchError: If ``arch`` is not a dict, names another space, lacks or adds keys, or has
                a value outside the space.
        """
        if not isinstance(arch, Mapping):
            raise ArchError(f"an architecture must be a JSON object, got {type(arch).__name__}")
        if arch.get("space") != self.name:
            raise ArchError(
                f"architecture is for space {arch.get('space')!r}, not {self.name!r}; "
                f"load it with get_space({arch.get('space')!r}) or set \"space\": {self.name!r}"
            )
        choices = self.choices()
        missing = [k for k in choices if k not in arch]
        unknown = sorted(set(arch) - set(choices) - {"space"})
        if missing or unknown:
            raise ArchError(
                f"architecture for space {self.name!r} has missing keys {missing} and unknown "
                f"keys {unknown}; the keys are {['space', *choices]}"
            )
        for key, allowed in choices.items():
            value = arch[key]
            # bool is an int subclass and True == 1: reject it rather than build a wrong network.
            is_number = isinstance(value, int | float) and not isinstance(value, bool)
            if not is_number or value not in allowed:
                raise ArchError(
                    f"architecture key {key!r} = {value!r} is outside space {self.name!r}; "
                    f"use one of {list(allowed)}"
                )

    def build(self, arch: Mapping[str, Any], embed_dim: int, in_channels: int) -> nn.Module:
        """Build the network of ``arch`` with freshly initialised weights.

        Args:
            arch: An architecture of this space.
            embed_dim: Size of the output embedding.
            in_channels: Channels of the input images (1 for grayscale, 3 for RGB).

        Returns:
            A module mapping float32 ``[N, in_channels, R, R]`` to L2-normalised
            ``[N, embed_dim]``; its ``arch`` attribute holds a copy of ``arch``.

        Raises:
            ArchError: If ``arch`` is invalid or the sizes are not positive integers.
        """
        self.validate(arch)
        _check_sizes(embed_dim, in_channels)
        return self._network(dict(arch), embed_dim, in_channels, STATIC_KIT)

    def supernet(self, embed_dim: int, in_channels: int) -> Supernet:
        """Build the weight-sharing supernet whose subnets are every architecture of the space.

        Args:
            embed_dim: Size of the output embedding.
            in_channels: Channels of the input images.

        Returns:
            The supernet, with the largest architecture active.
        """
        from hetero.search_spaces._supernet import Supernet

        _check_sizes(embed_dim, in_channels)
        return Supernet(self, embed_dim, in_channels)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(resolutions={self.resolutions})"


def per_stage(**values: Sequence[Any]) -> dict[str, Any]:
    """Flatten per-stage values into architecture keys, stage by stage.

    ``per_stage(depth=(2, 3), width=(16, 32))`` is
    ``{"s0_depth": 2, "s0_width": 16, "s1_depth": 3, "s1_width": 32}``.
    """
    n = len(next(iter(values.values())))
    return {f"s{i}_{key}": seq[i] for i in range(n) for key, seq in values.items()}


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_sizes(embed_dim: int, in_channels: int) -> None:
    for what, value in (("embed_dim", embed_dim), ("in_channels", in_channels)):
        if not _is_int(value) or value < 1:
            raise ArchError(f"{what} must be a positive integer, got {value!r}")
