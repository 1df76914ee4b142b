"""Supervision: a long-lived service that fails is restarted with backoff, never the hub's end.

:func:`supervised` runs a service (an async callable that runs until cancelled) and, when it
raises, reports the error to the thing the service concerns (``on_error``: a repository's, a
cluster's, the config's state on the board), logs it once with its cause, waits with exponential
backoff and starts it again. A service that ran healthily for ``healthy_after`` seconds before it
failed starts again from the shortest delay. Cancellation is never caught: stopping the hub stops
every service at once. The delays come from the given clock, so tests run on virtual time.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fleet.errors import describe
from fleet.runtime.clock import Clock

__all__ = ["SuperviseSettings", "supervised"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SuperviseSettings:
    """Restart delays: ``first`` doubling up to ``cap``; reset after ``healthy_after``."""

    first: float = 1.0
    cap: float = 60.0
    healthy_after: float = 60.0


async def supervised(
    name: str,
    service: Callable[[], Awaitable[None]],
    *,
    clock: Clock,
    on_error: Callable[[str], None] | None = None,
    settings: SuperviseSettings = SuperviseSettings(),
) -> None:
    """Run `service` until it returns; restart it after each failure (see the module)."""
    delay = settings.first
    while True:
        began = clock.now()
        try:
            await service()
            return
        except Exception as exc:
            if clock.now() - began >= settings.healthy_after:
                delay = settings.first
            text = describe(exc)
            log.error(  # noqa: TRY400 - the traceback only where it is a bug, not an outage
                "event=service_failed service=%s error=%s retry_in=%.1f",
                name,
                text,
                delay,
                exc_info=not isinstance(exc, OSError),
            )
            if on_error is not None:
                try:
                    on_error(text)
                except Exception:  # a broken reporter must not stop the supervision
                    log.exception("event=service_report_failed service=%s", name)
            await clock.sleep(delay)
            delay = min(settings.cap, delay * 2)
