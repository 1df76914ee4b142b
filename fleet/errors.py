"""The exception tree of fleet, kept shallow.

Every error fleet raises on purpose derives from :class:`FleetError` and carries a message that
names the input at fault (a file, a cluster, a repository, a path) and the cause. Callers decide
what happens next from the class alone:

- :class:`StalledError`: retrying will not help until the input changes (a broken kubeconfig,
  invalid YAML at a commit, a path that escapes the repository).
- :class:`TransientError`: back off and retry (a timeout, a refused connection, an HTTP 5xx).
- :class:`ConfigError`: the operator's configuration is invalid; the last good one stays in use.
"""

from __future__ import annotations

__all__ = ["ConfigError", "FleetError", "StalledError", "TransientError"]


class FleetError(Exception):
    """Base of every error fleet raises on purpose; its message is meant for an operator."""


class StalledError(FleetError):
    """Retrying cannot help until the input changes."""


class TransientError(FleetError):
    """A retry after a back-off may succeed."""


class ConfigError(StalledError):
    """The operator's configuration is invalid."""
