"""Search spaces by name: a new space is one module plus one :func:`register_space` decorator."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from hetero.devices._registry import Registry
from hetero.search_spaces._errors import ArchError

if TYPE_CHECKING:
    from hetero.search_spaces._space import SearchSpace

__all__ = ["EDGE_DEFAULT_SPACE", "default_edge_arch", "get_space", "list_spaces", "register_space"]

#: The space whose default architecture an edge model gets when none is given (``hetero train``
#: without ``--arch``).
EDGE_DEFAULT_SPACE = "mobilenet_v3"

_SPACES: Registry[type[SearchSpace]] = Registry("search space", ArchError)

_S = TypeVar("_S", bound="type[SearchSpace]")


def register_space(name: str) -> Callable[[_S], _S]:
    """Class decorator that registers a :class:`SearchSpace` subclass under ``name``.

    Args:
        name: The name architectures carry in their ``"space"`` key.

    Returns:
        The decorator; it sets the class's ``name`` attribute and returns the class unchanged.

    Raises:
        ValueError: If another class is already registered under ``name``.
    """
    return _SPACES.register(name)


def get_space(name: str, **kwargs: Any) -> SearchSpace:
    """Return a new instance of the search space registered as ``name``.

    Args:
        name: A registered space name, see :func:`list_spaces`.
        **kwargs: Passed to the space's constructor (for example ``resolutions``).

    Returns:
        The search space.

    Raises:
        ArchError: If no space is registered under ``name``.
    """
    return _SPACES.get(name)(**kwargs)


def default_edge_arch() -> dict[str, Any]:
    """The architecture an edge model gets when none is given: :data:`EDGE_DEFAULT_SPACE`'s default."""
    return get_space(EDGE_DEFAULT_SPACE).default_arch()


def list_spaces() -> list[str]:
    """Return the names of the registered search spaces, sorted."""
    return _SPACES.names()
