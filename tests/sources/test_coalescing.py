"""The coalescer's rules on a fetch of our own (pure logic): waves share fetches, a missing key
fails only its asker, a failed fetch fails its batch, a cancelled fetcher leaves no one waiting."""

from __future__ import annotations

from collections.abc import Mapping

import anyio
import pytest

from fleet.sources.coalescing import Coalescer

pytestmark = pytest.mark.anyio


class Store:
    """Values of the keys it holds; each fetch waits for `gate` and is logged."""

    def __init__(self, values: Mapping[str, int]) -> None:
        self.values = dict(values)
        self.fetched: list[list[str]] = []
        self.gate = anyio.Event()  # every fetch waits for it, unless held
        self.hold = False  # each fetch waits for a release of its own
        self._held: list[anyio.Event] = []
        self.fail: Exception | None = None

    def release(self) -> None:
        """Let the held fetches go (and open the gate)."""
        self.gate.set()
        for event in self._held:
            event.set()

    async def fetch(self, keys: list[str]) -> dict[str, int]:
        self.fetched.append(keys)
        if self.hold:
            event = anyio.Event()
            self._held.append(event)
            await event.wait()
        else:
            await self.gate.wait()
        if self.fail is not None:
            raise self.fail
        return {k: self.values[k] for k in keys if k in self.values}


async def test_callers_that_ask_while_a_fetch_runs_share_the_next_one() -> None:
    store = Store({f"k{i}": i for i in range(100)})
    coalescer = Coalescer(store.fetch)
    got: dict[int, dict[str, int]] = {}

    async def ask(i: int) -> None:
        got[i] = await coalescer.get([f"k{i}", f"k{(i + 1) % 100}"])

    async with anyio.create_task_group() as group:
        for i in range(50):  # the first wave: one fetch for all of them
            group.start_soon(ask, i)
        await anyio.wait_all_tasks_blocked()
        assert len(store.fetched) == 1
        for i in range(50, 100):  # asked while it runs: the next fetch, all together
            group.start_soon(ask, i)
        await anyio.wait_all_tasks_blocked()
        store.gate.set()
    assert got == {i: {f"k{i}": i, f"k{(i + 1) % 100}": (i + 1) % 100} for i in range(100)}
    assert [len(keys) for keys in store.fetched] == [51, 51]  # k0..k50, then k50..k99 and k0
    assert coalescer.fetches == 2


async def test_a_missing_key_fails_only_the_caller_that_asked_for_it() -> None:
    store = Store({"a": 1, "b": 2})
    store.gate.set()
    coalescer = Coalescer(store.fetch)
    outcomes: dict[str, object] = {}

    async def ask(keys: list[str]) -> None:
        try:
            outcomes[",".join(keys)] = await coalescer.get(keys)
        except KeyError as exc:
            outcomes[",".join(keys)] = exc

    async with anyio.create_task_group() as group:
        for keys in (["a"], ["b", "gone"], ["b"]):
            group.start_soon(ask, keys)
    assert outcomes["a"] == {"a": 1} and outcomes["b"] == {"b": 2}
    missing = outcomes["b,gone"]
    assert isinstance(missing, KeyError) and missing.args == ("gone",)
    assert await coalescer.get([]) == {}


async def test_a_failed_fetch_fails_its_batch_and_the_next_batch_fetches_anew() -> None:
    store = Store({"a": 1})
    store.fail = OSError("disk gone")
    store.gate.set()
    coalescer = Coalescer(store.fetch)
    with pytest.raises(OSError, match="disk gone"):
        await coalescer.get(["a"])
    store.fail = None
    assert await coalescer.get(["a"]) == {"a": 1}
    assert coalescer.fetches == 2


async def test_a_cancelled_fetcher_leaves_its_batch_to_the_others() -> None:
    """The caller fetching for a batch is cancelled mid-fetch: the batch's other caller is not
    left waiting on it; it fetches the batch again and gets its value."""
    store = Store({"a": 1, "b": 2, "c": 3})
    store.hold = True
    coalescer = Coalescer(store.fetch)
    got: dict[str, dict[str, int]] = {}

    async def ask(key: str) -> None:
        got[key] = await coalescer.get([key])

    async with anyio.create_task_group() as group:
        group.start_soon(ask, "a")
        await anyio.wait_all_tasks_blocked()
        cancelled = anyio.CancelScope()
        inner_done = anyio.Event()

        async def doomed() -> None:
            with cancelled:
                await coalescer.get(["b"])
            inner_done.set()

        group.start_soon(doomed)
        await anyio.wait_all_tasks_blocked()
        group.start_soon(ask, "c")
        await anyio.wait_all_tasks_blocked()
        store.release()  # "a" is fetched; "b"'s caller fetches "b" and "c" for both
        await anyio.wait_all_tasks_blocked()
        assert store.fetched == [["a"], ["b", "c"]]
        cancelled.cancel()  # mid-fetch
        await inner_done.wait()
        await anyio.wait_all_tasks_blocked()
        assert store.fetched == [["a"], ["b", "c"], ["b", "c"]]  # "c"'s caller took it over
        store.hold = False
        store.release()
    assert got == {"a": {"a": 1}, "c": {"c": 3}}
