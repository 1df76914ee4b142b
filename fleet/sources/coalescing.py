"""Coalesced lookups: many callers asking for keys share few fetches, one in flight at a time.

A thousand targets planning at once each read a few blobs of one mirror. Fetched one caller at a
time, that is a thousand ``git cat-file`` processes; :class:`Coalescer` makes it a handful. The
first caller's keys are fetched at once; every caller that asks while a fetch runs adds its keys
to the next batch, and that batch is fetched, in one call, as soon as the running one ends. So a
caller waits for at most the fetch in flight and its own, and a burst costs as many fetches as
there were waves of it, not callers.

A fetch returns what it found; a key it did not return is missing, told to the callers who asked
for it by the :exc:`KeyError` of their lookup, and no other caller's (a missing blob fails only
the render that named it). A fetch that raises fails every caller of its batch. A caller
cancelled while it fetches for the others leaves the batch unfetched: the next of its callers to
get the turn fetches it, so nobody waits on a fetch that no longer runs. Nothing is cached here:
the caller keeps what it wants to keep.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import anyio

__all__ = ["Coalescer"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


@dataclass
class _Batch(Generic[K, V]):
    keys: set[K] = field(default_factory=set)
    found: Mapping[K, V] | None = None
    error: Exception | None = None


class Coalescer(Generic[K, V]):
    """Lookups of keys through `fetch` (keys -> what was found), batched (see the module)."""

    def __init__(self, fetch: Callable[[list[K]], Awaitable[Mapping[K, V]]]) -> None:
        self._fetch = fetch
        self._turn = anyio.Lock()  # one fetch at a time
        self._next: _Batch[K, V] | None = None  # gathering keys while a fetch runs
        self.fetches = 0  # fetches run (tests, metrics)

    async def get(self, keys: Iterable[K]) -> dict[K, V]:
        """The value of each of `keys`; :exc:`KeyError` naming the first one not found."""
        wanted = list(dict.fromkeys(keys))
        if not wanted:
            return {}
        batch = self._next
        if batch is None:
            batch = self._next = _Batch()
        batch.keys.update(wanted)
        async with self._turn:
            if batch.found is None and batch.error is None:  # nobody fetched it (or was cancelled)
                await self._run(batch)
        if batch.error is not None:
            raise batch.error
        assert batch.found is not None
        missing = [key for key in wanted if key not in batch.found]
        if missing:
            raise KeyError(missing[0])
        return {key: batch.found[key] for key in wanted}

    async def _run(self, batch: _Batch[K, V]) -> None:
        if self._next is batch:
            self._next = None  # callers from now on gather the next batch
        self.fetches += 1
        try:
            batch.found = await self._fetch(sorted(batch.keys, key=repr))
        except Exception as exc:  # every caller of the batch gets it (a cancellation is not)
            batch.error = exc
