"""Single flight: concurrent calls for one key share one run of the work.

The first caller for a key runs the work; callers that arrive while it runs wait and get its
result or its exception. Once it finishes the key is free again: this coalesces concurrent work, it
does not cache. If the leader is cancelled, a waiter takes over and runs the work itself.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import anyio

__all__ = ["SingleFlight"]

K = TypeVar("K")
V = TypeVar("V")


@dataclass
class _Call(Generic[V]):
    done: anyio.Event = field(default_factory=anyio.Event)
    value: V | None = None
    error: BaseException | None = None
    finished: bool = False


class SingleFlight(Generic[K, V]):
    """Coalesces concurrent calls by key."""

    def __init__(self) -> None:
        self._calls: dict[K, _Call[V]] = {}
        self.runs = 0

    async def do(self, key: K, work: Callable[[], Awaitable[V]]) -> V:
        """`work()`'s result, shared with every concurrent caller for `key`."""
        while True:
            call = self._calls.get(key)
            if call is None:
                return await self._lead(key, work)
            await call.done.wait()
            if call.finished:
                if call.error is not None:
                    raise call.error
                return call.value  # type: ignore[return-value]

    async def _lead(self, key: K, work: Callable[[], Awaitable[V]]) -> V:
        call: _Call[V] = _Call()
        self._calls[key] = call
        self.runs += 1
        try:
            call.value = await work()
            call.finished = True
            return call.value
        except anyio.get_cancelled_exc_class():
            raise  # not finished: a waiter runs the work itself
        except Exception as exc:
            call.error = exc
            call.finished = True
            raise
        finally:
            del self._calls[key]
            call.done.set()
