"""Clusters no live replica holds (fleet.shard.coverage), pure: why each is unheld, since when,
and the board's sentences once one is unheld for longer than the limit."""

from __future__ import annotations

from fleet.shard.coverage import Coverage, unheld
from fleet.shard.leases import Lease, cluster_lease_name


def _lease(cluster: str, holder: str, *, renewed: float) -> Lease:
    return Lease(name=cluster_lease_name(cluster), holder=holder, duration=15, renewed=renewed)


def test_held_means_a_live_member_renewed_within_the_duration() -> None:
    now = 1_000.0
    leases = {
        lease.name: lease
        for lease in [
            _lease("ok", "r1", renewed=995.0),
            _lease("free", "", renewed=995.0),
            _lease("stale", "r1", renewed=900.0),
            _lease("ghost", "r9", renewed=999.0),
        ]
    }
    found = unheld(["ok", "free", "stale", "ghost", "new"], leases, ["r1", "r2"], now=now)
    assert found == {
        "free": "its lease is free",
        "stale": "its lease, held by r1, was last renewed 100s ago",
        "ghost": "its lease is held by r9, which is not a live member",
        "new": "no replica has taken its lease",
    }


def test_a_cluster_unheld_past_the_limit_is_a_problem_until_held_again() -> None:
    coverage = Coverage()
    coverage.update({"c1": "its lease is free"}, at=0.0)
    coverage.update({"c1": "its lease is free", "c2": "its lease is free"}, at=10.0)
    assert coverage.problems(at=16.0, limit=20.0, owners={}, errors={}) == []  # a take-over
    (line,) = coverage.problems(
        at=21.0, limit=20.0, owners={"c1": "r2"}, errors={"c1": "403 Forbidden: leases"}
    )
    assert line.startswith("cluster c1: held by no live replica for 21s (its lease is free; ")
    assert "assigned to r2" in line and "its owner's last try failed: 403 Forbidden" in line
    coverage.update({"c2": "its lease is free"}, at=25.0)  # c1 held again: forgotten
    assert coverage.late(at=31.0, limit=20.0) == {"c2": 21.0}
    coverage.update({}, at=32.0)
    assert coverage.problems(at=60.0, limit=20.0, owners={}, errors={}) == []


def test_many_unheld_clusters_make_a_few_lines() -> None:
    coverage = Coverage()
    coverage.update({f"c{i:02d}": "its lease is free" for i in range(30)}, at=0.0)
    lines = coverage.problems(at=100.0, limit=20.0, owners={}, errors={})
    assert len(lines) == 6 and lines[0].startswith("cluster c00:")
    assert lines[-1].startswith("25 more clusters held by no live replica for longer than 20s: c05")
