"""A new owner joins only after every repository it reads was listed (fleet.shard.handover), on
virtual time: a failed or unanswered listing is retried with backoff, the others are not listed
again, the cluster says what it waits for, and giving the cluster up ends the wait."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest

from fleet.runtime import VirtualClock
from fleet.shard.handover import listed_first

pytestmark = pytest.mark.anyio

REPOS = {"git.example/a": "https://git.example/a", "git.example/b": "https://git.example/b"}


@dataclass(frozen=True)
class Outcome:
    error: str = ""


class Remote:
    """Listings that fail `failures[url]` times first, or never answer when `hang` holds."""

    def __init__(self, clock: VirtualClock, failures: dict[str, int] | None = None) -> None:
        self.clock = clock
        self.failures = dict(failures or {})
        self.hang: set[str] = set()
        self.calls: list[tuple[float, str]] = []

    async def list(self, url: str) -> Outcome:
        self.calls.append((self.clock.now(), url))
        if url in self.hang:
            self.hang.discard(url)  # answers next time
            await self.clock.sleep(float("inf"))
        if self.failures.get(url, 0) > 0:
            self.failures[url] -= 1
            return Outcome(error="connection refused")
        return Outcome()


async def run(
    clock: VirtualClock, remote: Remote, *, wanted: Callable[[], bool] = lambda: True
) -> tuple[bool, list[str]]:
    said: list[str] = []
    async with clock.autojump():
        joined = await listed_first(
            lambda: REPOS, remote.list, clock=clock, wanted=wanted, waiting=said.append
        )
    return joined, said


async def test_every_repository_listed_at_once_then_join() -> None:
    clock = VirtualClock()
    remote = Remote(clock)
    joined, said = await run(clock, remote)
    assert joined and said == []
    assert sorted(remote.calls) == [(0.0, "https://git.example/a"), (0.0, "https://git.example/b")]


async def test_a_failed_listing_is_retried_with_backoff_and_the_cluster_waits() -> None:
    clock = VirtualClock()
    remote = Remote(clock, failures={"https://git.example/b": 2})
    joined, said = await run(clock, remote)
    assert joined
    # b at 0, then after 1 s, then after 2 more; a listed once (it succeeded the first time)
    assert remote.calls.count((0.0, "https://git.example/a")) == 1
    assert [t for t, url in remote.calls if url.endswith("/b")] == [0.0, 1.0, 3.0]
    assert clock.now() == 3.0
    assert len(said) == 2 and all("waiting for the listing of git.example/b " in s for s in said)
    assert "connection refused" in said[0] and "retrying in 1s" in said[0]
    assert "retrying in 2s" in said[1]


async def test_a_listing_that_does_not_answer_counts_as_failed() -> None:
    clock = VirtualClock()
    remote = Remote(clock)
    remote.hang.add("https://git.example/a")
    joined, said = await run(clock, remote)
    assert joined
    assert [t for t, url in remote.calls if url.endswith("/a")] == [0.0, 9.0]  # 8 s, then 1 s
    assert "no answer within 8s" in said[0]


async def test_giving_the_cluster_up_ends_the_wait_without_joining() -> None:
    clock = VirtualClock()
    remote = Remote(clock, failures={"https://git.example/a": 1_000})
    deadline = 20.0
    joined, said = await run(clock, remote, wanted=lambda: clock.now() < deadline)
    assert not joined and said
    assert clock.now() == pytest.approx(31.0)  # the try after 1+2+4+8 s, then the 16 s wait
