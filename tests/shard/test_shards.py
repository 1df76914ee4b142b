"""Replicas sharing clusters through real Leases in a kit cluster (in-process): the split follows
rendezvous hashing and the leases agree, a clean stop hands over at once with the fewest moves, a
paused replica finds its fence closed when it wakes and its request is never sent."""

from __future__ import annotations

import json
import threading
import time
import uuid
from pathlib import Path

import anyio
import anyio.abc
import pytest

from fleet import apply
from fleet.controlplane import RunningCluster
from fleet.shard import NotOwner, Shards, ShardSettings
from fleet.shard.assigning import assign, moves
from fleet.shard.leases import REFRESH_NAME, Lease, LeaseStore, cluster_lease_name, safe_name
from fleet.shard.shards import stale_marks
from tests.hub.hubkit import until

pytestmark = pytest.mark.anyio

NAMES = [f"c{i}" for i in range(12)]


class Recorder:
    """What a replica was told to join and leave, in order."""

    def __init__(self) -> None:
        self.joined: list[str] = []
        self.left: list[tuple[str, str]] = []
        self.refreshed: list[str] = []


def replica(
    kubeconfig: Path, namespace: str, me: str, *, lease: float = 3.0
) -> tuple[Shards[str], Recorder]:
    seen = Recorder()
    settings = ShardSettings(
        kubeconfig=kubeconfig, namespace=namespace, lease_seconds=lease, replica_id=me
    )
    shards: Shards[str] = Shards(
        settings,
        hub="test",
        on_join=seen.joined.append,
        on_leave=lambda name, cause: seen.left.append((name, cause)),
        on_refresh=seen.refreshed.append,
    )
    return shards, seen


async def started(group: anyio.abc.TaskGroup, shards: Shards[str]) -> anyio.CancelScope:
    """Run `shards` in a scope of its own (cancel it: a clean stop)."""
    scope = anyio.CancelScope()

    async def run(*, task_status: anyio.abc.TaskStatus[None]) -> None:
        with scope:
            await shards.run(task_status=task_status)

    await group.start(run)
    return scope


def admit_all(*replicas: Shards[str]) -> None:
    for shards in replicas:
        for name in NAMES:
            shards.admit(name, name)


async def holders(kubeconfig: Path, namespace: str) -> dict[str, str]:
    """Each cluster lease's holder, read by a client of the test's own."""
    async with apply.connect(kubeconfig) as api:
        leases = await LeaseStore(api, namespace=namespace, hub="test").list()
    by_name = {lease.name: lease.holder for lease in leases}
    return {n: by_name.get(cluster_lease_name(n), "") for n in NAMES}


def owned_by(want: dict[str, str], me: str) -> set[str]:
    return {n for n, owner in want.items() if owner == me}


async def test_replicas_split_by_rendezvous_and_a_clean_stop_hands_over(
    kit_clusters: list[RunningCluster],
) -> None:
    mgmt = kit_clusters[0].kubeconfig
    namespace = f"shard-{uuid.uuid4().hex[:8]}"
    a, seen_a = replica(mgmt, namespace, "replica-a")
    b, seen_b = replica(mgmt, namespace, "replica-b")
    c, seen_c = replica(mgmt, namespace, "replica-c")
    three = assign(NAMES, ["replica-a", "replica-b", "replica-c"])
    async with anyio.create_task_group() as group:
        scopes = [await started(group, shards) for shards in (a, b, c)]
        admit_all(a, b, c)  # once all are members: no cluster is taken only to be handed over

        def split() -> bool:
            return all(
                set(s.held) == owned_by(three, s.me) and s.members == sorted(set(three.values()))
                for s in (a, b, c)
            )

        await until(split, limit=60)
        assert await holders(mgmt, namespace) == three  # the leases agree with the replicas
        # each cluster joined by exactly one replica, once (the replicas raced for free leases)
        assert sorted(seen_a.joined + seen_b.joined + seen_c.joined) == sorted(NAMES)
        gained_before = b.gained + c.gained

        scopes[0].cancel()  # a clean stop of `a`: leases released, member lease deleted
        two = assign(NAMES, ["replica-b", "replica-c"])
        await until(lambda: set(b.held) | set(c.held) == set(NAMES), limit=30)
        assert set(b.held) == owned_by(two, "replica-b")
        assert set(c.held) == owned_by(two, "replica-c")
        # the fewest moves: only a's clusters moved, nothing between b and c
        assert moves(three, two) == len(owned_by(three, "replica-a"))
        assert b.gained + c.gained - gained_before == moves(three, two)
        assert seen_b.left == [] and seen_c.left == []
        assert await holders(mgmt, namespace) == two
        group.cancel_scope.cancel()


def rival_takes(kubeconfig: Path, namespace: str, name: str, *, after: float) -> None:
    """In a thread of its own (the replica's loop is blocked): wait `after` seconds, then take
    lease `name` as another replica would once it expired."""

    async def take() -> None:
        await anyio.sleep(after)
        async with apply.connect(kubeconfig) as api:
            store = LeaseStore(api, namespace=namespace, hub="test")
            lease = next(x for x in await store.list() if x.name == cluster_lease_name(name))
            await store.replace(lease.held_by("rival", now=time.time(), duration=lease.duration))

    anyio.run(take)


async def test_a_paused_replica_sends_nothing_when_it_wakes(
    kit_clusters: list[RunningCluster],
) -> None:
    mgmt = kit_clusters[0].kubeconfig
    namespace = f"shard-{uuid.uuid4().hex[:8]}"
    a, seen = replica(mgmt, namespace, "replica-a")
    async with (
        apply.connect(kit_clusters[-1].kubeconfig, name="c0") as target,
        anyio.create_task_group() as group,
    ):
        await started(group, a)
        admit_all(a)
        await until(lambda: "c0" in a.held, limit=30)
        a.fenced("c0", target)
        await target.request("GET", "/api/v1/namespaces/default")  # held: sent
        sent = sum(target.calls.values())

        rival = threading.Thread(
            target=rival_takes, args=(mgmt, namespace, "c0"), kwargs={"after": 4.0}
        )
        rival.start()
        time.sleep(a.settings.lease_seconds + 3)  # noqa: ASYNC251 - the loop frozen, as by SIGSTOP
        rival.join(timeout=30)
        with pytest.raises(NotOwner, match="cluster c0"):
            await target.request(
                "PATCH",
                "/api/v1/namespaces/default",
                body={"metadata": {"labels": {"late": "write"}}},
                content_type="application/merge-patch+json",
            )
        assert sum(target.calls.values()) == sent  # nothing went out
        assert a.fence.refused["c0"] == 1
        await until(lambda: any(name == "c0" for name, _ in seen.left), limit=30)
        assert (await holders(mgmt, namespace))["c0"] == "rival"
        group.cancel_scope.cancel()


async def test_a_push_announced_by_one_replica_reaches_the_others_once(
    kit_clusters: list[RunningCluster],
) -> None:
    mgmt = kit_clusters[0].kubeconfig
    namespace = f"shard-{uuid.uuid4().hex[:8]}"
    a, seen_a = replica(mgmt, namespace, "replica-a", lease=30.0)  # rounds 10 s apart: the
    b, seen_b = replica(mgmt, namespace, "replica-b", lease=30.0)  # watch carries the mark
    async with anyio.create_task_group() as group:
        await started(group, a)
        await started(group, b)
        a.announce(["https/git.example.com/team/config"])
        await until(lambda: seen_b.refreshed == ["https/git.example.com/team/config"], limit=30)
        assert b.rounds == 1  # the watch brought it, not a round
        a.announce(["https/git.example.com/team/config"])  # a second push: a new mark
        await until(lambda: len(seen_b.refreshed) == 2, limit=30)
        assert seen_a.refreshed == []  # its own marks are not news to the replica that set them
        group.cancel_scope.cancel()


def test_stale_marks_are_the_old_and_the_unreadable_ones() -> None:
    now = 1_000.0
    marks = {
        "fleet.dev/refresh-old": json.dumps({"repo": "a", "by": "r", "at": int(900e9)}),
        "fleet.dev/refresh-new": json.dumps({"repo": "b", "by": "r", "at": int(990e9)}),
        "fleet.dev/refresh-bad": "not json",
        "other.example/keep": "1",  # not a mark: never touched
    }
    assert stale_marks(marks, now=now, keep=60) == [
        "fleet.dev/refresh-bad",
        "fleet.dev/refresh-old",
    ]
    assert stale_marks(marks, now=now, keep=200) == ["fleet.dev/refresh-bad"]


async def test_a_refused_announcement_never_stops_the_renewals(
    kit_clusters: list[RunningCluster],
) -> None:
    """A PATCH of the refresh lease that the apiserver refuses (a mark over the 256 KiB
    annotation limit) is counted and retried; the rounds, the fences and the clusters go on."""
    mgmt = kit_clusters[0].kubeconfig
    namespace = f"shard-{uuid.uuid4().hex[:8]}"
    a, seen = replica(mgmt, namespace, "replica-a")
    async with anyio.create_task_group() as group:
        await started(group, a)
        admit_all(a)
        await until(lambda: set(a.held) == set(NAMES), limit=60)
        a.announce(["r" * 300_000])  # refused: annotations at most 256 KiB
        rounds = a.rounds
        await anyio.sleep(a.settings.lease_seconds * 3)  # longer than the renew deadline
        assert a.rounds > rounds + 3 and a.error == ""
        assert seen.left == []
        assert set(a.held) == set(NAMES) and all(a.owned(n) for n in NAMES)
        assert a.bump_failures >= 3  # tried in every round, counted
        assert set((await holders(mgmt, namespace)).values()) == {"replica-a"}
        group.cancel_scope.cancel()


async def test_old_marks_are_pruned_and_fresh_ones_kept(
    kit_clusters: list[RunningCluster],
) -> None:
    mgmt = kit_clusters[0].kubeconfig
    namespace = f"shard-{uuid.uuid4().hex[:8]}"
    a, _ = replica(mgmt, namespace, "replica-a")
    old = {
        f"fleet.dev/refresh-repo{i}": json.dumps({"repo": f"repo{i}", "by": "gone", "at": 1})
        for i in range(50)
    }
    async with apply.connect(mgmt) as api:
        store = LeaseStore(api, namespace=namespace, hub="test")
        await store.ensure_namespace()
        await store.bump(old)

        async def marks() -> set[str]:
            refresh = next(x for x in await store.list() if x.name == REFRESH_NAME)
            return {k for k in refresh.annotations if k.startswith("fleet.dev/refresh-")}

        assert await marks() == set(old)
        async with anyio.create_task_group() as group:
            await started(group, a)
            a.announce(["https/git.example.com/team/config"])
            fresh = {
                "fleet.dev/refresh-" + safe_name("https/git.example.com/team/config", limit=40)
            }
            for _ in range(120):
                if await marks() == fresh:
                    break
                await anyio.sleep(0.5)
            assert await marks() == fresh  # the old ones gone, this replica's new one kept
            group.cancel_scope.cancel()


async def test_a_cluster_nobody_live_holds_is_every_replicas_problem(
    kit_clusters: list[RunningCluster],
) -> None:
    """c0's lease is kept renewed by `ghost`, which is no member (a zombie, or a replica that
    disagrees): `a` cannot take it, and after a lease duration plus a round says so, in its
    problems and in ``/api/shards``; once the ghost stops, `a` takes c0 and the problem ends."""
    mgmt = kit_clusters[0].kubeconfig
    namespace = f"shard-{uuid.uuid4().hex[:8]}"
    a, _ = replica(mgmt, namespace, "replica-a")
    stop = anyio.Event()
    async with apply.connect(mgmt) as api:
        store = LeaseStore(api, namespace=namespace, hub="test")
        await store.ensure_namespace()
        ghost = await store.create(
            Lease(name=cluster_lease_name("c0")).held_by("ghost", now=time.time(), duration=3)
        )

        async def haunt() -> None:
            lease = ghost
            while not stop.is_set():
                await anyio.sleep(0.5)
                lease = await store.replace(lease.held_by("ghost", now=time.time(), duration=3))

        async with anyio.create_task_group() as group:
            group.start_soon(haunt)
            await started(group, a)
            admit_all(a)
            await until(lambda: set(a.held) == set(NAMES) - {"c0"}, limit=60)
            assert a.problems() == []  # not yet: a take-over takes that long
            await until(lambda: bool(a.problems()), limit=30)
            (line,) = a.problems()
            assert line.startswith("cluster c0: held by no live replica for ")
            assert "held by ghost, which is not a live member" in line
            assert "assigned to replica-a" in line
            shown = a.snapshot()
            assert shown["unheld"]["c0"]["owner"] == "replica-a"
            assert shown["problems"] == [line]
            stop.set()  # the ghost goes: its lease expires and `a` takes c0
            await until(lambda: "c0" in a.held and a.problems() == [], limit=60)
            assert a.snapshot()["unheld"] == {}
            group.cancel_scope.cancel()


async def test_a_member_lease_speaks_only_for_the_replica_it_is_named_after(
    kit_clusters: list[RunningCluster],
) -> None:
    """Someone who can write Leases makes `fleet-member-forged` claim to be replica-b with an API
    URL of theirs: it is no member, and its URL is never where calls are forwarded."""
    mgmt = kit_clusters[0].kubeconfig
    namespace = f"shard-{uuid.uuid4().hex[:8]}"
    a, _ = replica(mgmt, namespace, "replica-a")
    async with anyio.create_task_group() as group:
        await started(group, a)
        async with apply.connect(mgmt) as api:
            store = LeaseStore(api, namespace=namespace, hub="test")
            forged = Lease(
                name="fleet-member-forged",
                holder="replica-b",
                duration=3600,
                renewed=time.time() + 3000,
                annotations={"fleet.dev/api-url": "http://203.0.113.7:80"},
            )
            await store.create(forged)
            assert any(x.name == "fleet-member-forged" for x in await store.list())
        await anyio.sleep(3.0)  # a round is lease/3 = 1 s: several rounds have read the forgery
        assert a.members == ["replica-a"], a.members
        assert "replica-b" not in a.urls and "http://203.0.113.7:80" not in a.urls.values()
        group.cancel_scope.cancel()
