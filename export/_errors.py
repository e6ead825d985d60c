"""Errors a user can fix while exporting; the CLI prints the one line and exits 2."""

from __future__ import annotations

from hetero.devices._errors import UserError

__all__ = ["ExportError"]


class ExportError(UserError):
    """A model cannot be exported as asked (unsupported precision, missing calibration, ...)."""
