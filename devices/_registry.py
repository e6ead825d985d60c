"""The one registry helper: names to things, for every "added by one module" extension point.

Runtimes and export backends register one instance each (``instances=True``); search spaces
register classes, data sources loaders, Core ML ops evaluators. It lives in the lowest layer so
that all of them can share it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar, cast

__all__ = ["Registry"]

T = TypeVar("T")
_D = TypeVar("_D")


class Registry(Generic[T]):
    """Maps names to registered things; a second, different thing under a taken name is refused.

    Args:
        what: What the names name, for error messages ("runtime", "search space").
        error: The error raised for an unknown name (a ``ValueError`` the user can fix).
        instances: The decorator registers one instance of the decorated class (made without
            arguments, given ``name`` and the decorator's attributes) instead of the class or
            function itself.
    """

    def __init__(self, what: str, error: type[ValueError], instances: bool = False) -> None:
        self.what = what
        self.error = error
        self.instances = instances
        self._items: dict[str, T] = {}

    def register(self, name: str, **attributes: object) -> Callable[[_D], _D]:
        """Decorator: register the class or function under ``name`` (see ``instances``) and
        return it unchanged; a class also gets ``name`` and ``attributes`` set."""

        def decorator(obj: _D) -> _D:
            item: Any = cast(type, obj)() if self.instances else obj
            if self.instances or isinstance(obj, type):
                item.name = name
                for key, value in attributes.items():
                    setattr(item, key, value)
            self.add(name, item)
            return obj

        return decorator

    def add(self, name: str, item: T) -> None:
        """Register ``item`` under ``name``.

        Raises:
            ValueError: Another thing is registered under ``name`` already (registering the same
                definition again, as a reloaded module does, is harmless).
        """
        existing = self._items.get(name)
        if existing is not None and _identity(existing) != _identity(item):
            raise ValueError(f"{self.what} {name!r} is already registered by {_identity(existing)}")
        self._items[name] = item

    def get(self, name: str) -> T:
        """The thing registered as ``name``; raises ``error`` for an unknown name."""
        try:
            return self._items[name]
        except (KeyError, TypeError):  # TypeError: an unhashable "name" read from a file
            raise self.error(f"unknown {self.what} {name!r}; use one of {', '.join(self.names())}") from None

    __getitem__ = get

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._items

    def items(self) -> list[tuple[str, T]]:
        """(name, thing) pairs in the order they were registered."""
        return list(self._items.items())

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._items)


def _identity(item: object) -> str:
    """Where a registered thing is defined: equal for the same definition loaded twice."""
    # Classes and functions carry their own qualified name; an instance is named by its class.
    definition = item if hasattr(item, "__qualname__") else type(item)
    return f"{definition.__module__}.{definition.__qualname__}"
