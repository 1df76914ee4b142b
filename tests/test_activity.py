"""fleet.activity: work in flight counted, and the wait for a wave of it to end (bounded)."""

from __future__ import annotations

import anyio
import pytest

from fleet.activity import Activity

pytestmark = pytest.mark.anyio


async def test_idle_for_counts_from_the_end_of_the_last_work() -> None:
    now = [100.0]
    activity = Activity(now=lambda: now[0])
    with activity.working(), activity.working():  # nested work: busy until both end
        now[0] = 105.0
        assert activity.busy and activity.idle_for() == 0.0
    assert not activity.busy
    now[0] = 107.5
    assert activity.idle_for() == 2.5


async def test_quiet_waits_for_the_work_to_end_then_for_settle() -> None:
    activity = Activity()
    ended: list[float] = []

    async def work() -> None:
        with activity.working():
            await anyio.sleep(0.2)
        ended.append(anyio.current_time())

    async with anyio.create_task_group() as group:
        group.start_soon(work)
        await anyio.sleep(0.01)
        await activity.quiet(settle=0.1, at_most=30)
        assert ended and anyio.current_time() - ended[0] >= 0.1 - 1e-3


async def test_quiet_returns_after_at_most_while_work_goes_on() -> None:
    activity = Activity()
    with activity.working():
        with anyio.fail_after(10):
            await activity.quiet(settle=0.1, at_most=0.2)
        assert activity.busy
