"""A work queue of hashable keys with the client-go guarantees, on an injectable clock.

The model is three sets of keys: *queued* (a FIFO, each key at most once), *dirty* (needs a run:
queued, or re-added while processing) and *processing* (held by a worker between :meth:`get` and
:meth:`done`). The guarantees that follow:

- a key added many times before a worker takes it runs once (it is queued at most once);
- a key is never held by two workers: :meth:`get` hands out only keys not processing, and a key
  added while processing waits in *dirty* until :meth:`done`, which queues it again;
- so every add after the last :meth:`get` of a key is followed by one more run of that key.

Delays: :meth:`add_after` parks a key in a heap until its time (a key delayed twice keeps the
earlier time); :meth:`add_rate_limited` asks the queue's :class:`RateLimiter` how long to wait and
:meth:`forget` resets it. The heap needs no background task: due keys are moved to the FIFO
whenever the queue is used, and waiting workers sleep on the clock until the next due time.

Shutdown: :meth:`shutdown` makes every :meth:`get` raise :class:`QueueShutDown` (queued and
delayed keys are dropped: the hub enqueues everything again on start) while work in flight
finishes; :meth:`drain` waits for it. :func:`run_worker` is the loop a worker runs: it always calls
:meth:`done`, whatever the handler did, forgets the key's backoff on success and on
:class:`~fleet.errors.StalledError` (nothing to retry until the input changes) and requeues it
rate-limited on any other error.
"""

from __future__ import annotations

import heapq
import itertools
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

import anyio

from fleet.errors import StalledError, describe
from fleet.runtime.clock import Clock
from fleet.runtime.ratelimit import RateLimiter

__all__ = ["Handler", "QueueShutDown", "WorkQueue", "process_one", "run_worker"]

K = TypeVar("K", bound=Hashable)

log = logging.getLogger(__name__)

Handler = Callable[[K], Awaitable[float | None]]
"""Works one key; may return a delay after which the key is to run again (a periodic resync)."""


class QueueShutDown(Exception):
    """The queue is shut down: a worker that gets this stops."""


class WorkQueue(Generic[K]):
    """A deduplicating, delaying, rate-limited work queue (see the module docstring)."""

    def __init__(
        self,
        *,
        clock: Clock,
        rate_limiter: RateLimiter,
        on_depth: Callable[[int], None] | None = None,
    ) -> None:
        self._clock = clock
        self._limiter = rate_limiter
        self._on_depth = on_depth
        self._queued: deque[K] = deque()
        self._dirty: set[K] = set()
        self._processing: set[K] = set()
        self._delayed: dict[K, tuple[float, int]] = {}
        self._heap: list[tuple[float, int, K]] = []
        self._seq = itertools.count()
        self._changed = anyio.Event()
        self._shut = False
        self._reported_depth = -1

    # -- state -------------------------------------------------------------------------------

    def __len__(self) -> int:
        """The depth: keys queued and waiting for a worker (not delayed, not processing)."""
        self._promote()
        return len(self._queued)

    @property
    def processing(self) -> int:
        """How many keys workers hold now."""
        return len(self._processing)

    @property
    def delayed(self) -> int:
        """How many keys wait in the delay heap."""
        return len(self._delayed)

    @property
    def is_shut_down(self) -> bool:
        return self._shut

    def is_processing(self, key: K) -> bool:
        return key in self._processing

    # -- adding ------------------------------------------------------------------------------

    def add(self, key: K) -> None:
        """Mark `key` as needing a run; no-op if it already does or the queue is shut down."""
        if self._shut or key in self._dirty:
            return
        self._dirty.add(key)
        if key not in self._processing:
            self._queued.append(key)
            self._notify()

    def add_after(self, key: K, delay: float) -> None:
        """Add `key` once `delay` seconds have passed (at once if `delay` <= 0)."""
        if self._shut:
            return
        if delay <= 0:
            self.add(key)
            return
        ready = self._clock.now() + delay
        current = self._delayed.get(key)
        if current is not None and current[0] <= ready:
            return
        entry = (ready, next(self._seq))
        self._delayed[key] = entry
        heapq.heappush(self._heap, (*entry, key))
        self._notify()

    def add_rate_limited(self, key: K) -> None:
        """Add `key` after the delay its rate limiter gives (one more failure of `key`)."""
        self.add_after(key, self._limiter.when(key))

    def forget(self, key: K) -> None:
        """Reset the backoff of `key` (call after it succeeded)."""
        self._limiter.forget(key)

    # -- working -----------------------------------------------------------------------------

    async def get(self) -> K:
        """Wait for a key and hold it until :meth:`done`; raises :class:`QueueShutDown`."""
        while True:
            if self._shut:
                raise QueueShutDown
            self._promote()
            if self._queued:
                key = self._queued.popleft()
                self._processing.add(key)
                self._dirty.discard(key)
                self._report_depth()
                return key
            changed = self._changed
            ready = self._next_ready()
            if ready is None:
                await changed.wait()
            else:
                with self._clock.move_on_after(ready - self._clock.now()):
                    await changed.wait()

    def done(self, key: K) -> None:
        """Release `key`; if it was added while held, queue it again."""
        if key not in self._processing:
            return
        self._processing.discard(key)
        if key in self._dirty and not self._shut:
            self._queued.append(key)
        self._notify()

    def shutdown(self) -> None:
        """Stop handing out keys; adds are ignored from now on; work in flight may finish."""
        self._shut = True
        self._queued.clear()
        self._dirty.clear()
        self._delayed.clear()
        self._heap.clear()
        self._notify()

    async def drain(self) -> None:
        """Wait until no key is being processed."""
        while self._processing:
            await self._changed.wait()

    # -- internals ---------------------------------------------------------------------------

    def _notify(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()
        self._report_depth()

    def _report_depth(self) -> None:
        depth = len(self._queued)
        if self._on_depth is not None and depth != self._reported_depth:
            self._reported_depth = depth
            self._on_depth(depth)

    def _next_ready(self) -> float | None:
        while self._heap and self._delayed.get(self._heap[0][2]) != self._heap[0][:2]:
            heapq.heappop(self._heap)  # superseded by an earlier time, or already added
        return self._heap[0][0] if self._heap else None

    def _promote(self) -> None:
        now = self._clock.now()
        while (ready := self._next_ready()) is not None and ready <= now:
            _, _, key = heapq.heappop(self._heap)
            del self._delayed[key]
            self.add(key)


def _key_text(key: object) -> str:
    """A key for the log: ``cluster/app`` for tuples, never a Python repr."""
    if isinstance(key, tuple):
        return "/".join(str(part) for part in key)
    return str(key)


async def process_one(queue: WorkQueue[K], handler: Handler[K], key: K) -> None:
    """Run `handler` on a key got from `queue`, decide what happens next, and always mark it done.

    Success forgets the key's backoff (and re-adds it after the delay the handler returned, if
    any); a :class:`StalledError` forgets it too (retrying cannot help until the input changes,
    which adds the key anew); any other error re-adds it rate-limited. Cancellation propagates.
    """
    try:
        again = await handler(key)
    except StalledError as exc:
        queue.forget(key)
        log.warning("event=work_stalled key=%s error=%s", _key_text(key), describe(exc))
    except Exception as exc:
        queue.add_rate_limited(key)
        log.warning("event=work_failed key=%s error=%s", _key_text(key), describe(exc))
    else:
        queue.forget(key)
        if again is not None:
            queue.add_after(key, again)
    finally:
        queue.done(key)


async def run_worker(queue: WorkQueue[K], handler: Handler[K]) -> None:
    """Work keys from `queue` with `handler` until the queue shuts down."""
    while True:
        try:
            key = await queue.get()
        except QueueShutDown:
            return
        await process_one(queue, handler, key)
