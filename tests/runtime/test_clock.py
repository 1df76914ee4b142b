"""The virtual clock: deadline order, exact elapsed time, timeouts, autojump."""

from __future__ import annotations

import anyio
import pytest

from fleet.runtime.clock import RealClock, VirtualClock

pytestmark = pytest.mark.anyio


async def test_sleepers_wake_in_deadline_order_at_their_exact_time() -> None:
    clock = VirtualClock()
    woke: list[tuple[str, float]] = []

    async def sleeper(name: str, seconds: float) -> None:
        await clock.sleep(seconds)
        woke.append((name, clock.now()))

    async with anyio.create_task_group() as group:
        for name, seconds in [("c", 3.0), ("a", 1.0), ("b", 2.0), ("a2", 1.0)]:
            group.start_soon(sleeper, name, seconds)
        await clock.advance(0.999)
        assert woke == []
        await clock.advance(10.0)
    assert woke == [("a", 1.0), ("a2", 1.0), ("b", 2.0), ("c", 3.0)]
    assert clock.now() == pytest.approx(10.999)


async def test_advance_keeps_causality_across_tasks() -> None:
    """A sleep started by a task woken during advance() is honoured within the same advance."""
    clock = VirtualClock()
    times: list[float] = []
    relay = anyio.Event()

    async def first() -> None:
        await clock.sleep(1.0)
        relay.set()

    async def second() -> None:
        await relay.wait()
        await clock.sleep(1.5)
        times.append(clock.now())
        await clock.sleep(0.25)
        times.append(clock.now())

    async with anyio.create_task_group() as group:
        group.start_soon(first)
        group.start_soon(second)
        await clock.advance(5.0)
    assert times == [2.5, 2.75]


async def test_fail_after_and_move_on_after_use_virtual_time() -> None:
    clock = VirtualClock()
    outcome: list[tuple[str, float]] = []

    async def hang_with_fail_after() -> None:
        try:
            with clock.fail_after(10.0):
                await clock.sleep(float("inf"))
        except TimeoutError:
            outcome.append(("timeout", clock.now()))

    async def hang_with_move_on_after() -> None:
        with clock.move_on_after(4.0) as scope:
            await clock.sleep(100.0)
        outcome.append(("moved on" if scope.cancelled_caught else "slept", clock.now()))

    async def quick_inside_fail_after() -> None:
        with clock.fail_after(10.0):
            await clock.sleep(1.0)
        outcome.append(("in time", clock.now()))

    async with anyio.create_task_group() as group:
        group.start_soon(hang_with_fail_after)
        group.start_soon(hang_with_move_on_after)
        group.start_soon(quick_inside_fail_after)
        await clock.advance(60.0)
    assert outcome == [("in time", 1.0), ("moved on", 4.0), ("timeout", 10.0)]
    assert clock.next_deadline() is None  # every timer disarmed


async def test_zero_timeout_cancels_at_once() -> None:
    clock = VirtualClock()
    with pytest.raises(TimeoutError), clock.fail_after(0):
        await clock.sleep(1.0)
    assert clock.now() == 0.0


async def test_autojump_runs_a_timeline_in_no_real_time() -> None:
    clock = VirtualClock(start=100.0)
    started = anyio.current_time()
    async with clock.autojump():
        for _ in range(1000):
            await clock.sleep(3600.0)
    assert clock.now() == 100.0 + 1000 * 3600.0
    assert anyio.current_time() - started < 5.0


async def test_real_clock_sleeps_really() -> None:
    clock = RealClock()
    before = clock.now()
    await clock.sleep(0.01)
    assert clock.now() - before >= 0.01
    with pytest.raises(TimeoutError), clock.fail_after(0.01):
        await clock.sleep(1.0)
