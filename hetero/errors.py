"""The one exception type for problems a user can fix.

The CLI prints the message of a :class:`UserError` (and of the other packages' ``ValueError``
subclasses listed in ``USER_ERRORS``) as one line and exits with code 2; anything else is a bug.
"""

from __future__ import annotations

__all__ = ["UserError", "user_error_types"]


class UserError(ValueError):
    """A problem with the user's input, named together with its fix."""


def user_error_types() -> tuple[type[BaseException], ...]:
    """Every exception type whose message is meant for the user (exit code 2)."""
    types: list[type[BaseException]] = [UserError]
    # The sibling packages own their error types; importing them lazily keeps `hetero.errors`
    # importable while a package is being installed without its optional backends.
    for module, name in (
        ("search_spaces", "ArchError"),
        ("devices", "ProfileError"),
        ("devices", "ArtifactError"),
        ("export", "ExportError"),
    ):
        try:
            mod = __import__(module, fromlist=[name])
            types.append(getattr(mod, name))
        except (ImportError, AttributeError):
            continue
    return tuple(types)
