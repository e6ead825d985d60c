"""The error a user can fix; the CLI prints its one-line message and exits 2."""

from __future__ import annotations

from hetero.devices._errors import UserError

__all__ = ["ArchError"]


class ArchError(UserError):
    """An architecture, search space name or architecture file is invalid (the message says how)."""
