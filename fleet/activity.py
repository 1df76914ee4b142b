"""Whether the hub is in a wave of work, and since when it is not: what can wait waits for it.

A commit pushed to a repository read by 1,000 cluster entries starts a wave: 1,000 plans, renders
and syncs, all wanting the same two cores. Some of the hub's work does not have to happen inside
it: the inventory records that only move a revision (:mod:`fleet.reconcile.writebehind`), the
render cache's disk writes (:mod:`fleet.cache.store`), the history's rows
(:mod:`fleet.report.history`). Done inside the wave, each takes CPU (and the interpreter's lock,
for the worker threads) from the syncs an operator is waiting for; done after it, none does.

:class:`Activity` counts the work in flight that makes a wave (a plan or render of a new input, a
sync; never the no-op resync, which reads memory only) through :meth:`Activity.working`, and
tells since when none has run. :meth:`Activity.quiet` waits until none has run for ``settle``
seconds, or at most ``at_most`` seconds, so that what waits is bounded in time even under steady
commits. It is plain state on the event loop; :attr:`Activity.busy` and
:meth:`Activity.idle_for` may be read from a worker thread (plain reads under the interpreter's
lock), which is how the history's writer thread asks.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator

import anyio

__all__ = ["Activity"]


class Activity:
    """The hub's work in flight (see the module)."""

    def __init__(self, *, now: Callable[[], float] = time.monotonic) -> None:
        self._now = now
        self._running = 0
        self._idle_since = now()
        self._ended = anyio.Event()  # set when the count falls to zero

    @property
    def busy(self) -> bool:
        return self._running > 0

    def idle_for(self) -> float:
        """Seconds since the last work ended (0 while some runs)."""
        return 0.0 if self._running else self._now() - self._idle_since

    @contextlib.contextmanager
    def working(self) -> Iterator[None]:
        """Count the body as work in flight."""
        self._running += 1
        try:
            yield
        finally:
            self._running -= 1
            if not self._running:
                self._idle_since = self._now()
                self._ended.set()
                self._ended = anyio.Event()

    async def quiet(self, *, settle: float, at_most: float) -> None:
        """Return once no work has run for `settle` seconds, or after `at_most` seconds."""
        deadline = self._now() + at_most
        while True:
            now = self._now()
            if now >= deadline:
                return
            if self._running:
                with anyio.move_on_after(deadline - now):
                    await self._ended.wait()
                continue
            idle = self.idle_for()
            if idle >= settle:
                return
            await anyio.sleep(min(settle - idle, deadline - now))
