"""An injectable clock: ``now()``, ``sleep()`` and timeouts, real or virtual.

Every piece of :mod:`fleet.runtime` that waits (the delay heap, backoff, token buckets, circuit
breaker probes, reconcile timeouts) asks a :class:`Clock` for the time and for its sleeps and
timeouts, never :mod:`time` or :func:`anyio.sleep` directly. The hub passes :class:`RealClock`;
tests pass :class:`VirtualClock` and assert exact elapsed virtual time.

The virtual model: time stands still until the test moves it. Sleepers and timeouts are timers in
one heap ordered by (deadline, order of arming). :meth:`VirtualClock.advance` moves time forward
timer by timer, in deadline order, and lets every task woken by one timer run until the whole
program is blocked again before it fires the next, so causality is preserved even across many
tasks. :meth:`VirtualClock.autojump` does the same without a target: whenever every task is blocked,
time jumps to the next deadline (trio's ``MockClock(autojump_threshold=0)``).

Why not an existing testing clock: trio's ``MockClock`` (with autojump) fits only the trio backend,
and fleet runs anyio on asyncio (kubernetes-asyncio, aiohttp); anyio has no virtual clock of its
own; patching the asyncio loop's ``time()`` (the ``looptime`` approach) would move the clock of
every library in the process and hide the dependency. An explicit clock keeps the dependency
visible and the model small. The one backend-specific part is telling that every task is blocked
(:func:`wait_all_blocked`): anyio's ``wait_all_tasks_blocked`` polls with real 0.1 s sleeps, too
slow for property tests, so we inspect the asyncio tasks and ready callbacks directly.

Timeouts must come from the same clock as the sleeps they bound: use :meth:`Clock.fail_after` and
:meth:`Clock.move_on_after` (cancel scopes, as in anyio) instead of :func:`anyio.fail_after`.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractContextManager, asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Protocol

import anyio
import anyio.lowlevel

__all__ = ["Clock", "RealClock", "VirtualClock", "wait_all_blocked"]


class Clock(Protocol):
    """What the runtime needs from time; monotonic seconds, origin unspecified."""

    def now(self) -> float:
        """The current time in seconds."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Sleep `seconds` (at least one checkpoint even when zero or negative)."""
        ...

    async def sleep_until(self, deadline: float) -> None:
        """Sleep until ``now() >= deadline``."""
        ...

    def fail_after(self, seconds: float) -> AbstractContextManager[anyio.CancelScope]:
        """A cancel scope that raises :class:`TimeoutError` when `seconds` pass inside it."""
        ...

    def move_on_after(self, seconds: float) -> AbstractContextManager[anyio.CancelScope]:
        """A cancel scope that is cancelled silently when `seconds` pass inside it."""
        ...


class RealClock:
    """The event loop's monotonic clock, through anyio."""

    def now(self) -> float:
        return anyio.current_time()

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(max(0.0, seconds))

    async def sleep_until(self, deadline: float) -> None:
        await anyio.sleep_until(deadline)

    def fail_after(self, seconds: float) -> AbstractContextManager[anyio.CancelScope]:
        return anyio.fail_after(seconds)

    def move_on_after(self, seconds: float) -> AbstractContextManager[anyio.CancelScope]:
        return anyio.move_on_after(seconds)


@dataclass(order=True)
class _Timer:
    deadline: float
    seq: int
    action: Callable[[], None] = field(compare=False)
    armed: bool = field(default=True, compare=False)


class VirtualClock:
    """Time that moves only when the test says so (:meth:`advance`) or when all tasks block."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self._timers: list[_Timer] = []
        self._seq = itertools.count()
        self._armed: anyio.Event | None = None  # made in the loop, when autojump waits

    def now(self) -> float:
        return self._now

    async def sleep(self, seconds: float) -> None:
        await self.sleep_until(self._now + max(0.0, seconds))

    async def sleep_until(self, deadline: float) -> None:
        if deadline <= self._now:
            await anyio.lowlevel.checkpoint()
            return
        if math.isinf(deadline):
            await anyio.sleep_forever()
        woken = anyio.Event()
        timer = self._arm(deadline, woken.set)
        try:
            await woken.wait()
        finally:
            timer.armed = False

    @contextmanager
    def move_on_after(self, seconds: float) -> Iterator[anyio.CancelScope]:
        with self._scope(seconds) as (scope, _fired):
            yield scope

    @contextmanager
    def fail_after(self, seconds: float) -> Iterator[anyio.CancelScope]:
        with self._scope(seconds) as (scope, fired):
            yield scope
        if scope.cancelled_caught and fired():
            raise TimeoutError

    @contextmanager
    def _scope(self, seconds: float) -> Iterator[tuple[anyio.CancelScope, Callable[[], bool]]]:
        scope = anyio.CancelScope()
        fired = False

        def expire() -> None:
            nonlocal fired
            fired = True
            scope.cancel()

        timer = None
        if seconds <= 0:
            expire()
        elif not math.isinf(seconds):
            timer = self._arm(self._now + seconds, expire)
        try:
            with scope:
                yield scope, lambda: fired
        finally:
            if timer is not None:
                timer.armed = False

    def _arm(self, deadline: float, action: Callable[[], None]) -> _Timer:
        timer = _Timer(deadline, next(self._seq), action)
        heapq.heappush(self._timers, timer)
        if self._armed is not None:
            self._armed.set()
        return timer

    def next_deadline(self) -> float | None:
        """The earliest armed deadline, or ``None`` when nothing waits on time."""
        while self._timers and not self._timers[0].armed:
            heapq.heappop(self._timers)
        return self._timers[0].deadline if self._timers else None

    def _fire_next(self) -> None:
        """Move time to the earliest deadline and fire every timer due then."""
        deadline = self.next_deadline()
        assert deadline is not None
        self._now = max(self._now, deadline)
        while self._timers and self._timers[0].deadline <= self._now:
            timer = heapq.heappop(self._timers)
            if timer.armed:
                timer.armed = False
                timer.action()

    async def advance(self, seconds: float) -> None:
        """Move time forward by `seconds`, waking sleepers in deadline order on the way."""
        target = self._now + seconds
        await wait_all_blocked()
        while (deadline := self.next_deadline()) is not None and deadline <= target:
            self._fire_next()
            await wait_all_blocked()
        self._now = max(self._now, target)
        await wait_all_blocked()

    async def run_until_blocked(self) -> None:
        """Let every runnable task run until all are blocked, without moving time."""
        await wait_all_blocked()

    @asynccontextmanager
    async def autojump(self) -> AsyncIterator[None]:
        """Within the block, jump to the next deadline whenever every task is blocked."""
        async with anyio.create_task_group() as group:
            group.start_soon(self._jump_forever)
            try:
                yield
            finally:
                group.cancel_scope.cancel()

    async def _jump_forever(self) -> None:
        while True:
            await wait_all_blocked()
            if self.next_deadline() is None:
                armed = self._armed = anyio.Event()
                await armed.wait()
                continue
            self._fire_next()


def _asyncio_blocked(task: asyncio.Task[object]) -> bool:
    waiter = getattr(task, "_fut_waiter", None)
    return waiter is not None and not waiter.done()


async def wait_all_blocked() -> None:
    """Return once every other task waits on something not yet done and no callback is ready."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # another backend: trio has this built in
        import trio.testing  # type: ignore[import-not-found]

        await trio.testing.wait_all_tasks_blocked()
        return
    me = asyncio.current_task()
    while True:
        await anyio.lowlevel.checkpoint()
        if getattr(loop, "_ready", ()):
            continue
        if all(task is me or _asyncio_blocked(task) for task in asyncio.all_tasks()):
            return
