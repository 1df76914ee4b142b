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

__all__ = ["ConfigError", "FleetError", "StalledError", "TransientError", "describe"]


class FleetError(Exception):
    """Base of every error fleet raises on purpose; its message is meant for an operator."""


class StalledError(FleetError):
    """Retrying cannot help until the input changes."""


class TransientError(FleetError):
    """A retry after a back-off may succeed."""


class ConfigError(StalledError):
    """The operator's configuration is invalid."""


def describe(exc: BaseException) -> str:
    """`exc` as one sentence for an operator: its message, never a Python repr.

    The leaves of an exception group are described and joined (each once), so a failure inside a
    task group reads like any other; an exception without a message is named by its class.
    """
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(dict.fromkeys(describe(e) for e in exc.exceptions))
    text = str(exc).strip()
    if isinstance(exc, FleetError):
        return text or type(exc).__name__
    if isinstance(exc, TimeoutError):
        return f"timed out: {text}" if text else "timed out"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
