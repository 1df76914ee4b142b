"""Clusters that no replica holds: found in every round's LIST, shown by every replica.

A cluster is reconciled only by the replica holding its lease, so a cluster that nobody holds is
on no replica's board: every replica could report green while its apps go unreconciled (the
owner died and its lease has not expired yet, acquiring keeps failing, the replicas disagree on
who owns it). Each replica therefore judges every cluster entry it knows from the leases it read
in the round (pure: :func:`unheld`): held means a lease with a holder, renewed within its
duration (by the wall clock, as membership is judged) by a replica that is a live member.
:class:`Coverage` remembers since when each cluster has been unheld, and one that stays unheld
for longer than a lease duration plus a round (a normal take-over is shorter) becomes a problem
of every replica's board, naming the cluster, why, and whom the assignment names.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from fleet.shard.leases import Lease, cluster_lease_name

__all__ = ["Coverage", "unheld"]

_SHOWN = 5  # clusters named one by one on the board; the rest in one line


def unheld(
    names: Iterable[str],
    leases: Mapping[str, Lease],
    members: Iterable[str],
    *,
    now: float,
    lease_of: Callable[[str], str] = cluster_lease_name,
) -> dict[str, str]:
    """The clusters among `names` that no live replica holds, each with why (`leases` by lease
    name, `members` the live members, `now` unix time, `lease_of` the name of the lease that
    fences a cluster: its own, or its bucket's)."""
    live = set(members)
    found: dict[str, str] = {}
    for name in names:
        lease = leases.get(lease_of(name))
        if lease is None:
            found[name] = "no replica has taken its lease"
        elif not lease.holder:
            found[name] = "its lease is free"
        elif not lease.live(now):
            age = now - lease.renewed
            found[name] = f"its lease, held by {lease.holder}, was last renewed {age:.0f}s ago"
        elif lease.holder not in live:
            found[name] = f"its lease is held by {lease.holder}, which is not a live member"
    return found


@dataclass
class Coverage:
    """Since when (monotonic seconds) each cluster has been unheld, and why."""

    since: dict[str, float] = field(default_factory=dict)
    why: dict[str, str] = field(default_factory=dict)

    def update(self, found: Mapping[str, str], *, at: float) -> None:
        """The round's :func:`unheld` at `at`: clusters held again are forgotten."""
        for name in set(self.since) - set(found):
            del self.since[name]
        for name in found:
            self.since.setdefault(name, at)
        self.why = dict(found)

    def late(self, *, at: float, limit: float) -> dict[str, float]:
        """The clusters unheld for longer than `limit` seconds, with for how long."""
        return {n: at - s for n, s in sorted(self.since.items()) if at - s > limit}

    def problems(
        self,
        *,
        at: float,
        limit: float,
        owners: Mapping[str, str],
        errors: Mapping[str, str],
    ) -> list[str]:
        """One sentence per cluster unheld for longer than `limit` (the first few; then one
        line counting the rest)."""
        late = self.late(at=at, limit=limit)
        lines = []
        for name, age in list(late.items())[:_SHOWN]:
            owner = owners.get(name) or "nobody"
            error = f"; its owner's last try failed: {errors[name]}" if name in errors else ""
            lines.append(
                f"cluster {name}: held by no live replica for {age:.0f}s ({self.why.get(name)}; "
                f"assigned to {owner}{error}): its apps are not reconciled; see /api/shards"
            )
        rest = sorted(late)[_SHOWN:]
        if rest:
            lines.append(
                f"{len(rest)} more clusters held by no live replica for longer than "
                f"{limit:g}s: {', '.join(rest[:20])}{' ...' if len(rest) > 20 else ''}"
            )
        return lines
