"""A sink's queue and counters: a bounded FIFO of notices that drops its oldest when full.

:class:`Outbox` is filled synchronously by the subscriber (never waits) and drained by the sink's
worker (:meth:`Outbox.get` waits for a notice). A keyed put replaces the notice waiting under that
key in place, so a commit status that changed again before it was sent is sent once, latest
first. :class:`SinkStats` holds what a sink did; the hub exports them as metrics.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass

import anyio

from fleet.notify.messages import Notice

__all__ = ["Outbox", "SinkStats"]


@dataclass
class SinkStats:
    """What one sink did since the hub started (the lead exports them as metrics)."""

    sent: int = 0
    failed: int = 0
    dropped: int = 0  # the outbox was full: the oldest notice went unsent
    retried: int = 0  # attempts after the first
    deduplicated: int = 0
    queued: int = 0
    last_error: str = ""


class Outbox:
    """A bounded FIFO of notices; a full one drops its oldest. A keyed put replaces in place."""

    def __init__(self, size: int) -> None:
        self._items: OrderedDict[Hashable, Notice] = OrderedDict()
        self._size = size
        self._order = itertools.count()
        self._wake: anyio.Event | None = None

    def __len__(self) -> int:
        return len(self._items)

    def put(self, notice: Notice, *, key: Hashable | None = None) -> Notice | None:
        """Queue `notice` (replacing the one queued under `key`); the notice dropped, if any."""
        dropped = None
        if key is not None and key in self._items:
            self._items[key] = notice
        else:
            if len(self._items) >= self._size:
                dropped = self._items.popitem(last=False)[1]
            self._items[key if key is not None else next(self._order)] = notice
        if self._wake is not None:
            self._wake.set()
        return dropped

    async def get(self) -> Notice:
        while not self._items:
            self._wake = anyio.Event()
            await self._wake.wait()
        return self._items.popitem(last=False)[1]
