"""Lease records, names and expiry judged by this process's own clock (pure)."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleet.shard import NotOwner, ShardSettings
from fleet.shard.fencing import Fence
from fleet.shard.leases import Lease, Observed, cluster_lease_name, micro_time, safe_name


def test_names_are_dns_labels_and_distinct() -> None:
    assert cluster_lease_name("prod-eu") == "fleet-cluster-prod-eu"
    mangled = {safe_name("Prod_EU"), safe_name("prod-eu"), safe_name("prod.eu")}
    assert len(mangled) == 3  # a changed name carries a hash: no two clusters share a lease
    long = cluster_lease_name("x" * 200)
    assert len(long) <= 63 and long.startswith("fleet-cluster-x")


def test_a_lease_round_trips_through_its_object() -> None:
    lease = Lease(name="fleet-cluster-a", annotations={"fleet.dev/cluster": "a"}).held_by(
        "r1", now=1_700_000_000.25, duration=15
    )
    obj = lease.to_object(namespace="ns", hub="fleet")
    assert obj["spec"]["renewTime"] == micro_time(1_700_000_000.25) == "2023-11-14T22:13:20.250000Z"
    back = Lease.from_object(obj)
    assert (back.holder, back.duration, back.transitions) == ("r1", 15, 0)
    assert back.renewed == pytest.approx(1_700_000_000.25)
    taken = back.held_by("r2", now=1_700_000_100, duration=15)
    assert taken.transitions == 1 and taken.acquired == 1_700_000_100
    assert not back.released(now=1_700_000_001).holder


def test_membership_is_live_within_its_duration_by_renew_time() -> None:
    lease = Lease(name="m", holder="r1", duration=15, renewed=100.0)
    assert lease.live(114.9) and not lease.live(115.1)
    assert not Lease(name="m", duration=15, renewed=100.0).live(101)


def test_expiry_needs_a_version_seen_unchanged_for_a_whole_duration() -> None:
    seen = Observed()
    lease = Lease(name="c", holder="r1", duration=10, resource_version="5")
    assert not seen.expired(lease, 1000.0)  # never seen: not known to be expired
    seen.note(lease, 1000.0)
    assert not seen.expired(lease, 1009.0)
    assert seen.expired(lease, 1010.5)
    renewed = Lease(name="c", holder="r1", duration=10, resource_version="6")
    seen.note(renewed, 1010.6)  # a renewal restarts the count
    assert not seen.expired(renewed, 1015.0)
    assert seen.expired(Lease(name="free", resource_version="1"), 0.0)  # no holder: free


def test_the_fence_refuses_once_its_deadline_has_passed() -> None:
    fence = Fence()
    fence.hold("a", until=float("inf"))
    fence.check("a")
    fence.hold("b", until=0.0)  # long past on the monotonic clock
    with pytest.raises(NotOwner, match="cluster b"):
        fence.check("b")
    with pytest.raises(NotOwner):
        fence.check("never-held")
    assert (fence.sent["a"], fence.refused["b"], fence.refused["never-held"]) == (1, 1, 1)


def test_settings_name_what_is_wrong() -> None:
    with pytest.raises(ValueError, match="--shard-lease-seconds 1"):
        ShardSettings(kubeconfig=Path("k"), lease_seconds=1)
    settings = ShardSettings(kubeconfig=Path("k"), lease_seconds=15)
    assert (settings.duration, settings.renew_interval, settings.renew_deadline) == (15, 5, 10)
