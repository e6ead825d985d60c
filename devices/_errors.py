"""Errors a user can fix; the CLI prints their one-line message and exits 2."""

from __future__ import annotations

__all__ = ["ArtifactError", "ProfileError", "RuntimeUnavailableError", "one_line"]


class ProfileError(ValueError):
    """A device profile is missing, malformed or names something hetero does not know."""


class ArtifactError(ValueError):
    """An exported artifact or its manifest is missing, corrupt, or cannot run here."""


class RuntimeUnavailableError(ArtifactError):
    """The runtime an artifact needs is not installed or has no device here (the reason says)."""


def one_line(exc: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message, for wrapping third-party errors in ours."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:limit]
