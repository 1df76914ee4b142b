"""What an SSH link is and how it is doing, apart from the link (:mod:`fleet.transport.links`).

These are what the rest of the hub names (settings, states, the errors a route raises); the link
imports asyncssh, which costs a fifth of a second of a small machine's CPU, so only a hub with a
cluster behind a bastion imports it, once such a cluster joins, not before the hub listens.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from fleet.errors import StalledError, TransientError

__all__ = ["LinkError", "LinkRefused", "LinkSettings", "LinkStatus", "Sleep", "State"]

Sleep = Callable[[float], Awaitable[None]]
State = Literal["connecting", "up", "reconnecting", "refused"]


class LinkError(TransientError):
    """The SSH route is down for now; retried with backoff."""


class LinkRefused(StalledError):
    """A hop refused us or we refused it (host key, user key); retrying needs a changed file."""


@dataclass(frozen=True)
class LinkSettings:
    """Keepalive, timeouts and backoff of SSH links (seconds)."""

    keepalive_interval: float = 15.0
    keepalive_count_max: int = 3
    connect_timeout: float = 15.0
    backoff_initial: float = 0.5
    backoff_cap: float = 30.0
    backoff_jitter: float = 0.2

    def delay(self, failures: int, *, refused: bool = False) -> float:
        """The wait before the next attempt after `failures` failures in a row."""
        if failures <= 0:
            return 0.0
        base = self.backoff_cap if refused else self.backoff_initial * 2 ** (failures - 1)
        return min(base, self.backoff_cap) + random.uniform(0.0, self.backoff_jitter)  # noqa: S311


@dataclass(frozen=True)
class LinkStatus:
    """What a link is doing: `error` is the last failure while not up; `failures` in a row."""

    state: State
    error: str | None
    failures: int
    attempting: bool  # an attempt is in flight now
