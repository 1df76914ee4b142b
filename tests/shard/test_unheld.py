"""A cluster that no live replica holds is on the board, with a real ``fleet run`` replica and
real Leases in a kit cluster: the first entry's lease is kept renewed by ``ghost``, which is no
member (a zombie holder), so the replica cannot take it; after a lease duration plus a round its
``/api/status`` names that entry in ``problems`` and is not green (its other entry converged), and
``/api/shards`` lists it as unheld. Once the ghost stops, the replica takes it and the board is
green again."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import anyio
import pytest

from fleet import apply
from fleet.controlplane import RunningCluster
from fleet.shard.leases import Lease, LeaseStore, cluster_lease_name
from tests.hub.hubkit import until
from tests.shard.replicakit import ShardRig
from tests.sources.gitkit import GitHttpServer

pytestmark = pytest.mark.anyio


async def test_a_cluster_no_live_replica_holds_keeps_the_board_from_green(
    tmp_path: Path, kit_clusters: list[RunningCluster]
) -> None:
    remotes = tmp_path / "remotes"
    remotes.mkdir()
    namespace = f"shard-{uuid.uuid4().hex[:8]}"
    stop = anyio.Event()
    with GitHttpServer(remotes) as git:
        rig = ShardRig(tmp_path, kit_clusters, git, namespace=namespace, entries=2)
        try:
            rig.commit("v1")
            async with apply.connect(rig.management.kubeconfig) as api:
                store = LeaseStore(api, namespace=namespace, hub="fleet")
                await store.ensure_namespace()
                lease = await store.create(
                    Lease(name=cluster_lease_name(rig.names[0])).held_by(
                        "ghost", now=time.time(), duration=6
                    )
                )

                async def haunt() -> None:
                    current = lease
                    while not stop.is_set():
                        await anyio.sleep(1.0)
                        current = await store.replace(
                            current.held_by("ghost", now=time.time(), duration=6)
                        )

                async with anyio.create_task_group() as group:
                    group.start_soon(haunt)
                    await anyio.to_thread.run_sync(rig.start, "r1")  # it blocks
                    await until(lambda: _value(rig, rig.names[1], "v1"), limit=120)

                    async def named() -> bool:
                        return any(
                            p.startswith(f"cluster {rig.names[0]}: held by no live replica")
                            for p in (await rig.status("r1"))["problems"]
                        )

                    await until(named, limit=60)
                    board = await rig.status("r1")
                    assert board["summary"]["green"] is False
                    (line,) = [p for p in board["problems"] if rig.names[0] in p]
                    assert "held by ghost, which is not a live member" in line
                    assert "assigned to r1" in line
                    shards = await rig.shards("r1")
                    assert shards["unheld"][rig.names[0]]["owner"] == "r1"
                    assert rig.names[0] not in shards["held"]

                    stop.set()  # the ghost goes: r1 takes the first entry once its lease expires
                    await until(lambda: rig.all_at("v1"), limit=120)

                    async def green() -> bool:
                        board = await rig.status("r1")
                        return board["problems"] == [] and board["summary"]["green"] is True

                    await until(green, limit=60)
                    assert (await rig.shards("r1"))["unheld"] == {}
        finally:
            stop.set()
            rig.stop()


async def _value(rig: ShardRig, entry: str, want: str) -> bool:
    return (await rig.values()).get(entry) == want
