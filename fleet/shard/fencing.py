"""The fence: a replica writes to a cluster only while its lease on that cluster is fresh.

A :class:`Fence` holds one monotonic deadline per cluster: the moment this replica *sent* its
last successful acquire or renew of the cluster's lease, plus the renew deadline (two thirds of
the lease duration, as client-go's leader election keeps ``renewDeadline`` under
``leaseDuration``). Another replica takes the lease only after seeing it unchanged for a whole
duration, so while the deadline holds no one else may write there.

With ``--shard-buckets`` the deadline is the bucket's: `key_of` maps a cluster to the key of the
lease that fences it (itself by default), so one renewal extends every cluster of the bucket.
The counters stay per cluster.

The check sits in the one place every request to the cluster passes just before it is sent: the
client's request gate (:class:`FencedGate` wraps the hub's rate-limit gate). A replica that was
paused (SIGSTOP, a long GC, a frozen VM) and wakes up finds its deadline passed and refuses the
request, whatever its reconcile was in the middle of: :class:`NotOwner`, a transient error, so
the key backs off; if the lease was lost, the cluster leaves this replica and the retry finds
nothing to do, and if the lease is renewed after all (a round that came late on a busy loop), the
retry applies. It is never an outage: the circuit breaker does not count it.
``time.monotonic`` keeps counting while a process is stopped, which is what makes this hold. The
liveness probe (no concurrency slot) passes: it reads ``/readyz`` and writes nothing.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field

from fleet.apply.kube import RequestGate
from fleet.errors import TransientError
from fleet.shard.leases import cluster_lease_name

__all__ = ["Fence", "FencedGate", "NotOwner"]


class NotOwner(TransientError):
    """This replica does not hold the cluster's lease (any more): nothing is sent."""


@dataclass
class Fence:
    """Each held lease's deadline (``time.monotonic``), and what the gates let through."""

    deadlines: dict[str, float] = field(default_factory=dict)  # by lease key
    sent: Counter[str] = field(default_factory=Counter)  # requests let through, per cluster
    refused: Counter[str] = field(default_factory=Counter)  # requests refused, per cluster
    key_of: Callable[[str], str] = str  # a cluster's lease key (itself: one lease per cluster)
    lease_of: Callable[[str], str] = cluster_lease_name  # a cluster's lease name (for errors)

    def hold(self, key: str, until: float) -> None:
        self.deadlines[key] = until

    def drop(self, key: str) -> None:
        self.deadlines.pop(key, None)

    def live(self, key: str) -> bool:
        """Whether the lease of `key` is still fresh."""
        return time.monotonic() < self.deadlines.get(key, float("-inf"))

    def valid(self, cluster: str) -> bool:
        return self.live(self.key_of(cluster))

    def remaining(self, cluster: str) -> float:
        return self.deadlines.get(self.key_of(cluster), float("-inf")) - time.monotonic()

    def check(self, cluster: str) -> None:
        """Raise :class:`NotOwner` unless this replica may write to `cluster` now."""
        if self.valid(cluster):
            self.sent[cluster] += 1
            return
        self.refused[cluster] += 1
        raise NotOwner(
            f"cluster {cluster}: this replica does not hold lease {self.lease_of(cluster)} "
            "(lost, expired or handed over); the request was not sent, the owner reconciles it"
        )

    def gate(self, cluster: str, inner: RequestGate | None) -> FencedGate:
        return FencedGate(cluster=cluster, fence=self, inner=inner)


@dataclass
class FencedGate:
    """A request gate that checks the fence, then admits through `inner` (the rate limits)."""

    cluster: str
    fence: Fence
    inner: RequestGate | None = None

    def request(self, *, slot: bool = True) -> AbstractAsyncContextManager[None]:
        return self._request(slot=slot)

    @asynccontextmanager
    async def _request(self, *, slot: bool) -> AsyncIterator[None]:
        if self.inner is None:
            if slot:
                self.fence.check(self.cluster)
            yield
            return
        async with self.inner.request(slot=slot):
            if slot:  # checked after the rate limit's wait: as close to the send as it gets
                self.fence.check(self.cluster)
            yield

    def observe(self, status_code: int, retry_after: float | None = None) -> None:
        if self.inner is not None:
            self.inner.observe(status_code, retry_after)

    def retry_delay(self, attempt: int, retry_after: float | None) -> float | None:
        return self.inner.retry_delay(attempt, retry_after) if self.inner is not None else None
