"""Three ``fleet run`` replicas at ``--shard-buckets 4`` share twelve entries in a kit cluster.

Each entry is written by exactly one replica, the owner of its bucket by rendezvous hashing over
the bucket ids, and the bucket leases say the same; a SIGKILLed replica's buckets, and with them
exactly its entries, move to the survivors, which bring them to a new commit; a replica started
with another B is refused (it exits naming both values) and never becomes a member.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleet.controlplane import RunningCluster
from fleet.shard.assigning import assign
from fleet.shard.buckets import bucket_key, bucket_of
from tests.hub.hubkit import until
from tests.shard.replicakit import ShardRig
from tests.sources.gitkit import GitHttpServer

pytestmark = pytest.mark.anyio

LEASE = 8.0
B = 4
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
            namespace=f"bucket-{uuid.uuid4().hex[:8]}",
            lease_seconds=LEASE,
            buckets=B,
        )
        try:
            yield shard_rig
        finally:
            shard_rig.stop()


def owners(rig: ShardRig, replicas: list[str]) -> dict[str, str]:
    """Each entry's owner: its bucket's, by rendezvous hashing over the buckets in use."""
    key = {n: bucket_key(bucket_of(n, B)) for n in rig.names}
    by_bucket = assign(set(key.values()), replicas)
    return {n: by_bucket[key[n]] for n in rig.names}


async def settled(rig: ShardRig, replicas: list[str]) -> bool:
    want = owners(rig, replicas)
    for replica in replicas:
        held = set((await rig.shards(replica))["held"])
        if held != {n for n, o in want.items() if o == replica}:
            return False
    return await rig.holders() == want


async def test_bucket_replicas_split_a_kill_moves_its_buckets_another_b_is_refused(
    rig: ShardRig,
) -> None:
    rig.commit("v1")
    for replica in REPLICAS:
        rig.start(replica)
    await until(lambda: rig.all_at("v1"), limit=300)
    await until(lambda: settled(rig, REPLICAS), limit=120)
    three = owners(rig, REPLICAS)
    view = (await rig.shards("r1"))["buckets"]
    assert view["count"] == B
    assert sorted(n for names in view["clusters"].values() for n in names) == sorted(rig.names)

    async def sent() -> dict[str, dict[str, int]]:
        return {r: (await rig.shards(r))["requests_sent"] for r in REPLICAS}

    before = await sent()
    rig.commit("v2")
    assert await rig.replicas["r1"].webhook(rig.url) == 200
    await until(lambda: rig.all_at("v2"), limit=240)
    after = await sent()
    for name in rig.names:  # each entry written by exactly one replica, its bucket's owner
        writers = {r for r in REPLICAS if after[r].get(name, 0) > before[r].get(name, 0)}
        assert writers == {three[name]}, (name, writers)

    victim = max(REPLICAS, key=lambda r: sum(1 for o in three.values() if o == r))
    survivors = [r for r in REPLICAS if r != victim]
    rig.replicas[victim].proc.kill()  # type: ignore[union-attr]  # SIGKILL: nothing released
    killed = time.monotonic()
    rig.commit("v3")
    assert await rig.replicas[survivors[0]].webhook(rig.url) == 200
    await until(lambda: rig.all_at("v3"), limit=240)
    print(f"\nSIGKILL of {victim}: every entry on v3 {time.monotonic() - killed:.1f} s later")
    await until(lambda: settled(rig, survivors), limit=60)
    two = owners(rig, survivors)
    moved = {n for n in rig.names if two[n] != three[n]}
    assert moved == {n for n, o in three.items() if o == victim}  # its entries, and only those

    with pytest.raises(RuntimeError, match="fleet run exited"):
        rig.start("r4", buckets=8)
    log = (rig.root / "r4" / "hub.log").read_text(errors="replace")
    assert "--shard-buckets 8 differs from --shard-buckets 4" in log, log[-3000:]
    for replica in survivors:  # never a member: nothing moved for it
        assert (await rig.shards(replica))["members"] == sorted(survivors)
    assert await settled(rig, survivors)
