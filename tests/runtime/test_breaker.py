"""The circuit breaker on virtual time: opens after N outages, probes with capped backoff."""

from __future__ import annotations

import anyio
import pytest

from fleet.errors import TransientError
from fleet.runtime.breaker import (
    Breakers,
    BreakerSettings,
    BreakerState,
    BreakerStatus,
    CircuitBreaker,
    ClusterUnavailable,
)
from fleet.runtime.clock import VirtualClock

pytestmark = pytest.mark.anyio

SETTINGS = BreakerSettings(failures=3, probe_base=1.0, probe_cap=8.0)


async def test_breaker_opens_after_n_outages_and_probes_at_backoff_times() -> None:
    clock = VirtualClock()
    breaker = CircuitBreaker("prod-eu", SETTINGS, clock=clock)
    admitted: list[tuple[float, str]] = []
    cluster_up_at = 20.0

    async def call() -> None:
        if clock.now() < cluster_up_at:
            raise ConnectionRefusedError(111, "Connection refused")

    async def client() -> None:
        while clock.now() < 27.0:
            try:
                async with breaker.guard():
                    admitted.append((clock.now(), breaker.state.value))
                    await call()
            except (ClusterUnavailable, OSError):
                pass
            await clock.sleep(0.5)

    async with anyio.create_task_group() as group:
        group.start_soon(client)
        await clock.advance(30.0)

    assert admitted == [
        (0.0, "closed"),
        (0.5, "closed"),
        (1.0, "closed"),  # third failure: open, first probe 1 s later
        (2.0, "half-open"),  # probe fails: next in 2 s
        (4.0, "half-open"),  # then 4 s
        (8.0, "half-open"),  # then 8 s (the cap)
        (16.0, "half-open"),  # then 8 s again
        (24.0, "half-open"),  # the cluster is back since t=20: closed
        (24.5, "closed"),
        (25.0, "closed"),
        (25.5, "closed"),
        (26.0, "closed"),
        (26.5, "closed"),
    ]
    status = breaker.status()
    assert (status.state, status.since, status.failures, status.next_probe) == (
        BreakerState.CLOSED,
        24.0,
        0,
        None,
    )


async def test_open_breaker_fails_fast_naming_cluster_and_cause() -> None:
    clock = VirtualClock()
    breaker = CircuitBreaker("prod-eu", SETTINGS, clock=clock)
    for _ in range(3):
        breaker.failure(TimeoutError("read timed out"))
    await clock.advance(0.25)
    with pytest.raises(ClusterUnavailable) as caught:
        breaker.check()
    message = str(caught.value)
    assert "prod-eu" in message
    assert "TimeoutError: read timed out" in message
    assert "next probe in 0.8s" in message
    assert isinstance(caught.value, TransientError)
    assert breaker.status() == BreakerStatus(
        cluster="prod-eu",
        state=BreakerState.OPEN,
        since=0.0,
        failures=3,
        last_error="TimeoutError: read timed out",
        next_probe=1.0,
    )


async def test_only_one_probe_at_a_time() -> None:
    clock = VirtualClock()
    breaker = CircuitBreaker("a", SETTINGS, clock=clock)
    for _ in range(3):
        breaker.failure(OSError("unreachable"))
    await clock.advance(1.0)
    assert breaker.admit()
    assert not breaker.admit()
    assert breaker.state is BreakerState.HALF_OPEN
    breaker.success()
    assert breaker.admit()


async def test_answers_from_the_server_do_not_trip_and_reset_the_count() -> None:
    clock = VirtualClock()
    breaker = CircuitBreaker("a", SETTINGS, clock=clock)
    breaker.failure(OSError("refused"))
    breaker.failure(OSError("refused"))
    breaker.failure(TransientError("HTTP 503 from the apiserver"))  # it answered
    breaker.failure(OSError("refused"))
    breaker.failure(OSError("refused"))
    assert breaker.status().state is BreakerState.CLOSED
    breaker.failure(ClusterUnavailable("a", cause=None, retry_in=1.0))  # not a new observation
    assert breaker.status().state is BreakerState.CLOSED
    breaker.failure(OSError("refused"))
    assert breaker.status().state is BreakerState.OPEN


async def test_cancelled_probe_leaves_a_probe_due_at_once() -> None:
    clock = VirtualClock()
    breaker = CircuitBreaker("a", SETTINGS, clock=clock)
    for _ in range(3):
        breaker.failure(OSError("refused"))
    await clock.advance(1.0)
    with anyio.CancelScope() as scope:
        async with breaker.guard():
            scope.cancel()
            await clock.sleep(1.0)
    assert breaker.state is BreakerState.OPEN
    assert breaker.retry_in() == 0.0
    assert breaker.admit()


async def test_breakers_registry_reports_changes() -> None:
    clock = VirtualClock()
    changes: list[tuple[str, BreakerState]] = []
    breakers = Breakers(
        SETTINGS, clock=clock, on_change=lambda s: changes.append((s.cluster, s.state))
    )
    for _ in range(3):
        breakers.for_cluster("b").failure(OSError("refused"))
    assert breakers.for_cluster("a").state is BreakerState.CLOSED
    assert changes == [("b", BreakerState.OPEN)]
    assert [s.state for s in breakers.statuses().values()] == [
        BreakerState.CLOSED,
        BreakerState.OPEN,
    ]
    breakers.drop("b")
    assert list(breakers.statuses()) == ["a"]
    assert breakers.get("b") is None
    assert list(breakers.statuses()) == ["a"]  # get never makes one


async def test_a_silent_probe_trips_at_once_and_holds_until_it_answers() -> None:
    clock = VirtualClock()
    changes: list[tuple[BreakerState, str | None]] = []
    breaker = CircuitBreaker(
        "a", SETTINGS, clock=clock, on_change=lambda s: changes.append((s.state, s.last_error))
    )
    await clock.advance(5.0)
    breaker.trip("no answer to GET /readyz within 3.0s")  # one probe, not `failures` calls
    status = breaker.status()
    assert (status.state, status.since, status.next_probe, status.held) == (
        BreakerState.OPEN,
        5.0,
        6.0,
        True,
    )
    with pytest.raises(ClusterUnavailable, match="no answer to GET /readyz"):
        breaker.check()
    await clock.advance(0.5)
    breaker.trip("no answer to GET /readyz within 3.0s (again)")  # still open: cause only
    assert breaker.status().next_probe == 6.0
    assert breaker.status().since == 5.0

    await clock.advance(10.0)  # long past the probe time: held, so no call goes half-open...
    assert not breaker.admit()
    assert breaker.retry_in() == 1.0  # ...and parked keys look again later, never spin
    breaker.failure(TransientError("render failed"))  # not an answer of the cluster's...
    breaker.success()  # ...nor is a success the probe did not see
    assert breaker.state is BreakerState.OPEN

    breaker.release()  # the probe's next answer
    assert breaker.status().state is BreakerState.CLOSED
    assert not breaker.status().held
    assert [state for state, _ in changes] == [
        BreakerState.OPEN,
        BreakerState.OPEN,
        BreakerState.CLOSED,
    ]
    assert changes[1][1] == "no answer to GET /readyz within 3.0s (again)"


async def test_when_the_probe_stops_the_breaker_goes_back_to_half_open_probing() -> None:
    clock = VirtualClock()
    breaker = CircuitBreaker("a", SETTINGS, clock=clock)
    breaker.trip("silent")
    breaker.unhold()  # its connection ended (a new kubeconfig)
    assert breaker.state is BreakerState.OPEN
    await clock.advance(1.0)
    assert breaker.admit()  # half-open: a reconcile is the probe
    breaker.success()
    assert breaker.status().state is BreakerState.CLOSED


async def test_a_trip_during_a_half_open_probe_doubles_the_backoff() -> None:
    clock = VirtualClock()
    breaker = CircuitBreaker("a", SETTINGS, clock=clock)
    for _ in range(3):
        breaker.failure(OSError("refused"))
    await clock.advance(1.0)
    assert breaker.admit()  # half-open: a reconcile is the probe...
    breaker.trip("silent")  # ...and the liveness probe finds the cluster silent meanwhile
    assert breaker.state is BreakerState.OPEN
    assert breaker.status().next_probe == 3.0  # 1 s doubled
