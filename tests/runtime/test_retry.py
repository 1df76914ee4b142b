"""Retries with tenacity on virtual time: transient errors back off, stalled ones never retry."""

from __future__ import annotations

import pytest

from fleet.errors import ConfigError, StalledError, TransientError
from fleet.runtime.breaker import ClusterUnavailable
from fleet.runtime.clock import VirtualClock
from fleet.runtime.retry import RetrySettings, call_with_retry, is_retryable, retrying

pytestmark = pytest.mark.anyio

EXACT = RetrySettings(attempts=4, initial=0.2, cap=0.5, jitter=0.0)


class Flaky:
    def __init__(self, errors: list[Exception], clock: VirtualClock) -> None:
        self.errors = errors
        self.clock = clock
        self.calls: list[float] = []

    async def __call__(self) -> str:
        self.calls.append(self.clock.now())
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


async def test_transient_errors_are_retried_with_exponential_waits() -> None:
    clock = VirtualClock()
    flaky = Flaky([TransientError("503"), ConnectionResetError("reset")], clock)
    async with clock.autojump():
        assert await call_with_retry(flaky, EXACT, clock=clock, what="cluster a") == "ok"
    assert flaky.calls == pytest.approx([0.0, 0.2, 0.6])


async def test_gives_up_after_attempts_with_the_last_error_itself() -> None:
    clock = VirtualClock()
    flaky = Flaky([TransientError(f"503 #{n}") for n in range(10)], clock)
    async with clock.autojump():
        with pytest.raises(TransientError, match="503 #3"):
            await call_with_retry(flaky, EXACT, clock=clock, what="repo x")
    assert flaky.calls == pytest.approx([0.0, 0.2, 0.6, 1.1])  # waits 0.2, 0.4, 0.5 (capped)


@pytest.mark.parametrize(
    "error",
    [
        StalledError("bad yaml"),
        ConfigError("bad fleet.yaml"),
        ClusterUnavailable("a", cause="refused", retry_in=3.0),
        ValueError("a bug"),
    ],
)
async def test_never_retried(error: Exception) -> None:
    clock = VirtualClock()
    flaky = Flaky([error], clock)
    with pytest.raises(type(error)):
        await call_with_retry(flaky, EXACT, clock=clock, what="x")
    assert flaky.calls == [0.0]
    assert not is_retryable(error)


async def test_retrying_as_a_loop() -> None:
    clock = VirtualClock()
    flaky = Flaky([TimeoutError()], clock)
    async with clock.autojump():
        async for attempt in retrying(EXACT, clock=clock, what="x"):
            with attempt:
                await flaky()
    assert flaky.calls == pytest.approx([0.0, 0.2])
