"""Search spaces by name: a new space is one module plus one :func:`register_space` decorator."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from hetero.search_spaces._errors import ArchError

if TYPE_CHECKING:
    from hetero.search_spaces._space import SearchSpace

__all__ = ["get_space", "list_spaces", "register_space"]

_SPACES: dict[str, type[SearchSpace]] = {}

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

    def decorator(cls: _S) -> _S:
        existing = _SPACES.get(name)
        # Re-registering the same class (a module reloaded) is harmless; a different one is a bug.
        if existing is not None and existing.__qualname__ != cls.__qualname__:
            raise ValueError(f"search space {name!r} is already registered by {existing!r}")
        cls.name = name
        _SPACES[name] = cls
        return cls

    return decorator


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
    try:
        cls = _SPACES[name]
    except (KeyError, TypeError):
        raise ArchError(
            f"unknown search space {name!r}; use one of: {', '.join(list_spaces())}"
        ) from None
    return cls(**kwargs)


def list_spaces() -> list[str]:
    """Return the names of the registered search spaces, sorted."""
    return sorted(_SPACES)
