"""A replica that takes clusters over joins them only once it has listed their repository, with
a real ``fleet run`` replica, real Leases in a kit cluster and git over HTTP: while the config
repository cannot be listed (taken off the server) the replica holds the leases but applies
nothing and its board says which listing it waits for (not green), well past the 8 s a webhook
waits; once the repository is back, the clusters join and converge."""

from __future__ import annotations

import uuid
from pathlib import Path

import anyio
import pytest

from fleet.controlplane import RunningCluster
from tests.hub.hubkit import until
from tests.shard.replicakit import ShardRig
from tests.sources.gitkit import GitHttpServer

pytestmark = pytest.mark.anyio


async def test_a_new_owner_waits_for_the_listing_before_it_joins(
    tmp_path: Path, kit_clusters: list[RunningCluster]
) -> None:
    remotes = tmp_path / "remotes"
    remotes.mkdir()
    with GitHttpServer(remotes) as git:
        rig = ShardRig(
            tmp_path, kit_clusters, git, namespace=f"shard-{uuid.uuid4().hex[:8]}", entries=2
        )
        try:
            rig.commit("v1")
            bare = rig.remote.bare
            hidden = bare.with_name("hidden.git")
            bare.rename(hidden)  # the listing answers 404 from now on
            rig.start("r1")

            async def held() -> bool:
                return set((await rig.shards("r1"))["held"]) == set(rig.names)

            await until(held, limit=120)

            async def waiting() -> bool:
                clusters = (await rig.status("r1"))["clusters"]
                return len(clusters) == 2 and all(
                    "waiting for the listing of" in c["error"] for c in clusters
                )

            await until(waiting, limit=60)
            await anyio.sleep(12)  # longer than the 8 s the old take-over waited
            board = await rig.status("r1")
            assert all(
                c["state"] == "connecting" and "waiting for the listing of" in c["error"]
                for c in board["clusters"]
            ), board["clusters"]
            assert board["summary"]["green"] is False
            assert set((await rig.values()).values()) == {None}  # nothing applied meanwhile

            hidden.rename(bare)  # listed again: the clusters join and converge
            await until(lambda: rig.all_at("v1"), limit=120)
            board = await rig.status("r1")
            assert all(c["error"] == "" for c in board["clusters"]), board["clusters"]
        finally:
            rig.stop()
