"""A registry of named singletons (runtimes here, export backends in ``export``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["Registry"]

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to one instance each of registered classes.

    Args:
        what: What the names name, for error messages ("runtime", "export backend").
        error: The error raised for an unknown name (a ``ValueError`` the user can fix).
    """

    def __init__(self, what: str, error: type[ValueError]) -> None:
        self.what = what
        self.error = error
        self._items: dict[str, T] = {}

    def register(self, name: str, **attributes: object) -> Callable[[type], type]:
        """Class decorator: instantiate the class, set ``name`` and ``attributes``, register it."""

        def decorator(cls: type) -> type:
            instance = cls()
            instance.name = name
            for key, value in attributes.items():
                setattr(instance, key, value)
            self._items[name] = instance
            return cls

        return decorator

    def get(self, name: str) -> T:
        """The instance registered as ``name``; raises ``error`` for an unknown name."""
        try:
            return self._items[name]
        except KeyError:
            raise self.error(f"unknown {self.what} {name!r}; use one of "
                             f"{', '.join(self.names())}") from None

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._items)
