"""Errors a user can fix; the CLI prints their one-line message and exits 2."""

from __future__ import annotations

__all__ = ["ArtifactError", "ProfileError", "RuntimeUnavailableError", "UserError", "one_line"]


class UserError(ValueError):
    """A problem with the user's input, named together with its fix.

    The base of every package's user errors (``hetero.errors.UserError`` is this class;
    ``ProfileError``, ``ArtifactError``, ``export.ExportError``, ``search_spaces.ArchError``
    derive from it), so the CLI catches one type. It lives here, in the lowest layer, because
    ``devices`` imports no other package.
    """


class ProfileError(UserError):
    """A device profile is missing, malformed or names something hetero does not know."""


class ArtifactError(UserError):
    """An exported artifact or its manifest is missing, corrupt, or cannot run here."""


class RuntimeUnavailableError(ArtifactError):
    """The runtime an artifact needs is not installed or has no device here (the reason says)."""


def one_line(exc: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message, for wrapping third-party errors in ours."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:limit]
