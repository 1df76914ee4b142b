"""Three ``fleet run`` replicas share twelve cluster entries through Leases in a kit cluster.

Each entry is written by exactly one replica (the one whose lease it is, and the one rendezvous
hashing names); a SIGKILLed replica's entries converge on a new commit, pushed by webhook to a
survivor, within a lease duration plus a sync; a restart under the same replica id takes back
exactly its share (the fewest moves); a replica SIGSTOPped for longer than the lease finds its
fences closed when it wakes, and no entry ever goes back to an older commit.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from fleet.controlplane import RunningCluster
from fleet.shard.assigning import assign, moves
from tests.hub.hubkit import until
from tests.shard.replicakit import ShardRig
from tests.sources.gitkit import GitHttpServer

pytestmark = pytest.mark.anyio

LEASE = 8.0  # seconds: short, so the tests take minutes (renewed every 2.7 s, fence 5.3 s)
REPLICAS = ["r1", "r2", "r3"]


@pytest.fixture
def rig(tmp_path: Path, kit_clusters: list[RunningCluster]) -> Iterator[ShardRig]:
    remotes = tmp_path / "remotes"
    remotes.mkdir()
    with GitHttpServer(remotes) as git:
        shard_rig = ShardRig(
            tmp_path,
            kit_clusters,
            git,
            namespace=f"shard-{uuid.uuid4().hex[:8]}",
            lease_seconds=LEASE,
        )
        try:
            yield shard_rig
        finally:
            shard_rig.stop()


async def held(rig: ShardRig, replicas: list[str]) -> dict[str, set[str]]:
    return {r: set((await rig.shards(r))["held"]) for r in replicas}


async def settled(rig: ShardRig, replicas: list[str]) -> bool:
    """Every replica holds exactly its rendezvous share, and the leases say the same."""
    want = assign(rig.names, replicas)
    have = await held(rig, replicas)
    if any(have[r] != {n for n, o in want.items() if o == r} for r in replicas):
        return False
    return await rig.holders() == want


async def sent(rig: ShardRig, replicas: list[str]) -> dict[str, dict[str, int]]:
    """Requests each replica let through its fences, per entry, so far."""
    return {r: (await rig.shards(r))["requests_sent"] for r in replicas}


async def test_replicas_split_and_a_killed_replicas_clusters_move(rig: ShardRig) -> None:
    rig.commit("v1")
    for replica in REPLICAS:
        rig.start(replica)
    await until(lambda: rig.all_at("v1"), limit=300)
    await until(lambda: settled(rig, REPLICAS), limit=120)
    three = assign(rig.names, REPLICAS)

    before = await sent(rig, REPLICAS)
    rig.commit("v2")
    assert await rig.replicas["r1"].webhook(rig.url) == 200  # one replica hears of it
    await until(lambda: rig.all_at("v2"), limit=240)  # every entry: the others learnt of it
    after = await sent(rig, REPLICAS)
    for name in rig.names:  # each entry written by exactly one replica, its owner
        writers = {r for r in REPLICAS if after[r].get(name, 0) > before[r].get(name, 0)}
        assert writers == {three[name]}, (name, writers)

    victim = max(REPLICAS, key=lambda r: sum(1 for o in three.values() if o == r))
    survivors = [r for r in REPLICAS if r != victim]
    rig.replicas[victim].proc.kill()  # type: ignore[union-attr]  # SIGKILL: nothing released
    killed = time.monotonic()
    rig.commit("v3")
    assert await rig.replicas[survivors[0]].webhook(rig.url) == 200
    await until(lambda: rig.all_at("v3"), limit=240)
    took = time.monotonic() - killed
    print(f"\nSIGKILL of {victim}: every entry on v3 {took:.1f} s later (lease {LEASE:g} s)")
    await until(lambda: settled(rig, survivors), limit=60)
    two = assign(rig.names, survivors)
    assert moves(three, two) == sum(1 for o in three.values() if o == victim)

    counts = {r: await rig.shards(r) for r in survivors}
    rig.start(victim, root=f"{victim}-again")  # a restart under the same replica id
    await until(lambda: settled(rig, REPLICAS), limit=120)
    again = {r: await rig.shards(r) for r in survivors}
    # the fewest moves: the survivors handed over exactly the restarted replica's share, and
    # took nothing from each other
    handed = sum(again[r]["lost"] - counts[r]["lost"] for r in survivors)
    taken = sum(again[r]["gained"] - counts[r]["gained"] for r in survivors)
    assert handed == moves(two, three) == sum(1 for o in three.values() if o == victim)
    assert taken == 0
    assert await rig.all_at("v3")


async def test_a_stopped_replica_writes_nothing_when_it_wakes(rig: ShardRig) -> None:
    rig.commit("v1")
    for replica in REPLICAS:
        rig.start(replica)
    await until(lambda: rig.all_at("v1"), limit=300)
    await until(lambda: settled(rig, REPLICAS), limit=120)
    three = assign(rig.names, REPLICAS)
    sleeper = max(REPLICAS, key=lambda r: sum(1 for o in three.values() if o == r))
    others = [r for r in REPLICAS if r != sleeper]
    its = {n for n, o in three.items() if o == sleeper}

    rig.commit("v2")

    async def push_to_sleeper() -> None:  # its answer never comes while it is stopped
        with anyio.move_on_after(60):
            await rig.replicas[sleeper].webhook(rig.url)

    async with anyio.create_task_group() as group:
        group.start_soon(push_to_sleeper)
        await anyio.sleep(0.5)  # its listing and reconciles of v2 under way...
        rig.replicas[sleeper].suspend()  # ...when SIGSTOP freezes them
        rig.commit("v3")
        assert await rig.replicas[others[0]].webhook(rig.url) == 200
        await until(lambda: rig.all_at("v3"), limit=240)  # its entries too: the others took them
        holders = await rig.holders()
        assert all(holders[n] in others for n in its), holders

        rig.replicas[sleeper].resume()  # SIGCONT: its deadlines have long passed
        woke = time.monotonic()
        while time.monotonic() - woke < 4 * LEASE:  # what it was doing would write v2: never
            assert await rig.all_at("v3"), await rig.values()
            await anyio.sleep(0.3)
        group.cancel_scope.cancel()
    await until(lambda: settled(rig, REPLICAS), limit=120)  # it took its share back
    assert await rig.all_at("v3")
    shards = await rig.shards(sleeper)
    assert shards["lost"] >= len(its)  # each of its leases found lost (or expired) on waking
    refused = sum(shards["requests_refused"].values())
    print(f"\nSIGSTOP of {sleeper}: {refused} requests refused by its fences after waking")
