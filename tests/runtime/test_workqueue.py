"""The work queue's guarantees, one by one, on virtual time."""

from __future__ import annotations

import anyio
import pytest

from fleet.errors import StalledError, TransientError
from fleet.runtime.clock import VirtualClock
from fleet.runtime.ratelimit import BackoffSettings, ExponentialBackoff
from fleet.runtime.workqueue import QueueShutDown, WorkQueue, process_one, run_worker

pytestmark = pytest.mark.anyio

Key = tuple[str, str]


def make_queue(clock: VirtualClock, **kwargs: object) -> WorkQueue[Key]:
    backoff = ExponentialBackoff(BackoffSettings(base=0.005, cap=0.04, jitter=0.0))
    return WorkQueue(clock=clock, rate_limiter=backoff, **kwargs)  # type: ignore[arg-type]


async def test_a_key_added_many_times_runs_once() -> None:
    queue = make_queue(VirtualClock())
    for _ in range(5):
        queue.add(("a", "web"))
    queue.add(("b", "web"))
    assert len(queue) == 2
    assert await queue.get() == ("a", "web")
    assert await queue.get() == ("b", "web")
    assert len(queue) == 0


async def test_a_key_dirtied_while_processing_runs_again_after_done_not_before() -> None:
    clock = VirtualClock()
    queue = make_queue(clock)
    queue.add(("a", "web"))
    key = await queue.get()
    queue.add(key)
    queue.add(key)
    assert len(queue) == 0  # not handed to a second worker
    with clock.move_on_after(5.0) as scope:
        async with clock.autojump():
            await queue.get()
    assert scope.cancelled_caught
    queue.done(key)
    assert len(queue) == 1
    assert await queue.get() == key
    queue.done(key)
    assert (len(queue), queue.processing) == (0, 0)


async def test_add_after_hands_out_at_the_exact_time_and_keeps_the_earliest() -> None:
    clock = VirtualClock()
    queue = make_queue(clock)
    got: list[tuple[Key, float]] = []
    queue.add_after(("a", "x"), 3.0)
    queue.add_after(("a", "x"), 5.0)  # later: ignored
    queue.add_after(("b", "x"), 4.0)
    queue.add_after(("b", "x"), 1.0)  # earlier: wins
    queue.add_after(("c", "x"), 0.0)  # now
    assert queue.delayed == 2

    async def worker() -> None:
        while True:
            key = await queue.get()
            got.append((key, clock.now()))
            queue.done(key)

    async with anyio.create_task_group() as group:
        group.start_soon(worker)
        await clock.advance(10.0)
        group.cancel_scope.cancel()
    assert got == [(("c", "x"), 0.0), (("b", "x"), 1.0), (("a", "x"), 3.0)]
    assert queue.delayed == 0


async def test_rate_limited_retries_back_off_5_10_20_40ms_capped_and_forget_on_success() -> None:
    clock = VirtualClock()
    queue = make_queue(clock)
    runs: list[float] = []
    failures = 6

    async def handler(key: Key) -> None:
        nonlocal failures
        runs.append(round(clock.now(), 9))
        if failures:
            failures -= 1
            raise TransientError("apiserver said 503")

    queue.add(("a", "web"))
    async with anyio.create_task_group() as group:
        group.start_soon(run_worker, queue, handler)
        await clock.advance(1.0)
        assert runs == [0.0, 0.005, 0.015, 0.035, 0.075, 0.115, 0.155]  # waits capped at 40 ms
        failures = 1
        queue.add(("a", "web"))
        await clock.advance(1.0)
        assert runs[-2:] == [1.0, 1.005]  # forgotten after the success: 5 ms again
        queue.shutdown()


async def test_stalled_errors_are_not_retried_and_handlers_may_ask_for_a_resync() -> None:
    clock = VirtualClock()
    queue = make_queue(clock)
    runs: list[tuple[str, float]] = []

    async def handler(key: Key) -> float | None:
        runs.append((key[0], clock.now()))
        if key[0] == "stalled":
            raise StalledError("invalid YAML at commit abc")
        return 60.0

    queue.add(("stalled", "web"))
    queue.add(("fine", "web"))
    async with anyio.create_task_group() as group:
        group.start_soon(run_worker, queue, handler)
        await clock.advance(150.0)
        queue.shutdown()
    assert runs == [("stalled", 0.0), ("fine", 0.0), ("fine", 60.0), ("fine", 120.0)]


async def test_done_is_called_whatever_happens_even_on_cancellation() -> None:
    clock = VirtualClock()
    queue = make_queue(clock)
    queue.add(("a", "web"))
    key = await queue.get()

    async def hang(key: Key) -> None:
        await clock.sleep(100.0)

    with clock.move_on_after(1.0):
        async with clock.autojump():
            await process_one(queue, hang, key)
    assert queue.processing == 0

    async def crash(key: Key) -> None:
        raise KeyError("a bug")

    queue.add(key)
    await process_one(queue, crash, await queue.get())
    assert queue.processing == 0
    assert queue.delayed == 1  # requeued rate-limited


async def test_shutdown_lets_in_flight_work_finish_and_stops_workers() -> None:
    clock = VirtualClock()
    queue = make_queue(clock)
    finished: list[tuple[Key, float]] = []

    async def handler(key: Key) -> None:
        await clock.sleep(2.0)
        finished.append((key, clock.now()))

    for app in ["a", "b", "c"]:
        queue.add(("c1", app))
    async with clock.autojump(), anyio.create_task_group() as group:
        group.start_soon(run_worker, queue, handler)
        group.start_soon(run_worker, queue, handler)
        await clock.sleep(1.0)
        queue.shutdown()
        queue.add(("c1", "d"))  # ignored
        await queue.drain()
        assert clock.now() == 2.0
        # the workers returned by themselves: the task group ended
    assert finished == [(("c1", "a"), 2.0), (("c1", "b"), 2.0)]
    with pytest.raises(QueueShutDown):
        await queue.get()


async def test_depth_hook_follows_the_queue() -> None:
    clock = VirtualClock()
    depths: list[int] = []
    queue = make_queue(clock, on_depth=depths.append)
    queue.add(("a", "x"))
    queue.add(("b", "x"))
    queue.add(("a", "x"))
    key = await queue.get()
    queue.add(key)
    queue.done(key)
    queue.add_after(("c", "x"), 1.0)
    await clock.advance(1.0)
    assert len(queue) == 3
    assert depths == [1, 2, 1, 2, 3]
