"""The one exception type for problems a user can fix.

The CLI prints the message of a :class:`UserError` as one line and exits with code 2; anything
else is a bug. The class lives in ``devices`` (the lowest layer) so that every package's user
errors (``devices.ProfileError``, ``devices.ArtifactError``, ``export.ExportError``,
``search_spaces.ArchError``) derive from it; hetero re-exports it here.
"""

from __future__ import annotations

from hetero.devices._errors import UserError

__all__ = ["UserError"]

