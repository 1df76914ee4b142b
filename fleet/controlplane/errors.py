"""The control-plane kit's one error: a message for a person, naming the log file to read."""

from __future__ import annotations

from fleet.errors import FleetError

__all__ = ["KitError"]


class KitError(FleetError):
    """The kit could not build, start or stop a cluster; the message says why and where to look."""
