"""``--shard-buckets``: clusters fenced by the lease of their bucket.

Pure: a cluster's bucket is stable (pinned values) and spread evenly; rendezvous hashing over
bucket ids moves only the buckets a join or a leave must, and with them only their clusters; the
lease writes per second at 10,000 clusters. On a kit cluster, in-process: two replicas at B = 4
split the buckets by rendezvous hashing, each cluster joined by exactly one of them, the bucket
leases say the same, a clean stop moves the stopped replica's buckets' clusters and nothing else,
a cluster's fence is its bucket's deadline, and a replica with another B is refused before it is
a member.
"""

from __future__ import annotations

import argparse
import uuid
from collections import Counter
from hashlib import sha256
from pathlib import Path

import anyio
import pytest
import yaml

from fleet import apply
from fleet.controlplane import RunningCluster
from fleet.controlplane.binaries import ensure_tool
from fleet.settings import default_cache_dir
from fleet.shard import Shards, ShardSettings, options
from fleet.shard.assigning import assign, moves
from fleet.shard.buckets import (
    BUCKETS_ANNOTATION,
    CONFIG_NAME,
    BucketsMismatch,
    bucket_key,
    bucket_of,
    lease_writes,
)
from fleet.shard.leases import LeaseStore
from tests.hub.hubkit import until
from tests.shard.test_shards import Recorder, started

pytestmark = pytest.mark.anyio

NAMES = [f"c{i}" for i in range(12)]
B = 4


def test_a_clusters_bucket_is_stable() -> None:
    # pinned: a change here would move every cluster of a running fleet to another lease
    assert {n: bucket_of(n, 256) for n in ("prod-eu-1", "c0", "")} == {
        "prod-eu-1": 139,
        "c0": 139,
        "": 20,
    }
    # sha256 of the name, its first 8 bytes big-endian, mod B: what any other tool can compute
    assert bucket_of("prod-us-1", 1000) == int(sha256(b"prod-us-1").hexdigest()[:16], 16) % 1000
    assert all(0 <= bucket_of(f"x{i}", 7) < 7 for i in range(200))


def test_buckets_spread_evenly() -> None:
    counts = Counter(bucket_of(f"cluster-{i:05d}", 64) for i in range(10_000))
    assert set(counts) == set(range(64))
    assert min(counts.values()) > 100 and max(counts.values()) < 220, counts  # mean 156


def test_assignment_over_buckets_moves_only_what_it_must() -> None:
    clusters = [f"cluster-{i:04d}" for i in range(2_000)]
    keys = {c: bucket_key(bucket_of(c, 64)) for c in clusters}
    ids = sorted(set(keys.values()))
    three = assign(ids, ["r1", "r2", "r3"])
    four = assign(ids, ["r1", "r2", "r3", "r4"])
    # a join: only the buckets the newcomer now wins move, all to it
    moved = {b for b in ids if three[b] != four[b]}
    assert moved and all(four[b] == "r4" for b in moved)
    assert moves(three, four) == len(moved)
    # and with them exactly their clusters, nothing else
    by_cluster = {n: (three[keys[n]], four[keys[n]]) for n in clusters}
    assert {n for n, (was, now) in by_cluster.items() if was != now} == {
        n for n in clusters if keys[n] in moved
    }
    # a leave: only the leaver's buckets move
    two = assign(ids, ["r1", "r3"])
    assert {b for b in ids if three[b] != two[b]} == {b for b in ids if three[b] == "r2"}


def test_lease_writes_at_ten_thousand_clusters() -> None:
    writes = {b: lease_writes(clusters=10_000, buckets=b) for b in (0, 64, 256)}
    assert writes == {0: 2000.0, 64: 12.8, 256: 51.2}
    assert lease_writes(clusters=10, buckets=256) == 2.0  # only buckets with clusters are held


def test_the_option_and_its_bounds(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "mgmt.yaml"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\n")
    parser = argparse.ArgumentParser()
    options.add_arguments(parser)
    base = ["--shard-kubeconfig", str(kubeconfig), "--replica-id", "r"]
    made = options.settings(parser.parse_args([*base, "--shard-buckets", "256"]))
    assert made is not None and made.buckets == 256
    made = options.settings(parser.parse_args(base))
    assert made is not None and made.buckets == 0
    with pytest.raises(ValueError, match="--shard-buckets -1"):
        options.settings(parser.parse_args([*base, "--shard-buckets", "-1"]))


def replica(kubeconfig: Path, namespace: str, me: str, *, buckets: int = B) -> tuple[
    Shards[str], Recorder
]:  # fmt: skip
    seen = Recorder()
    settings = ShardSettings(
        kubeconfig=kubeconfig,
        namespace=namespace,
        lease_seconds=3.0,
        replica_id=me,
        buckets=buckets,
    )
    shards: Shards[str] = Shards(
        settings,
        hub="test",
        on_join=seen.joined.append,
        on_leave=lambda name, cause: seen.left.append((name, cause)),
        on_refresh=seen.refreshed.append,
    )
    return shards, seen


async def bucket_holders(kubeconfig: Path, namespace: str) -> dict[str, str]:
    async with apply.connect(kubeconfig) as api:
        leases = await LeaseStore(api, namespace=namespace, hub="test").list()
    return {x.name: x.holder for x in leases if x.name.startswith("fleet-bucket-")}


async def test_two_replicas_split_buckets_and_another_b_is_refused(
    kit_clusters: list[RunningCluster],
) -> None:
    mgmt = kit_clusters[0].kubeconfig
    namespace = f"bucket-{uuid.uuid4().hex[:8]}"
    a, seen_a = replica(mgmt, namespace, "replica-a")
    b, seen_b = replica(mgmt, namespace, "replica-b")
    key = {n: bucket_key(bucket_of(n, B)) for n in NAMES}
    two = assign(set(key.values()), ["replica-a", "replica-b"])
    want = {n: two[key[n]] for n in NAMES}
    async with anyio.create_task_group() as group:
        scopes = [await started(group, shards) for shards in (a, b)]
        for shards in (a, b):
            for name in NAMES:
                shards.admit(name, name)

        def split() -> bool:
            return all(
                set(s.snapshot()["held"]) == {n for n, o in want.items() if o == s.me}
                for s in (a, b)
            )

        await until(split, limit=60)
        # one lease per bucket, held by the replica rendezvous hashing names
        assert await bucket_holders(mgmt, namespace) == {"fleet-" + k: o for k, o in two.items()}
        # each cluster joined by exactly one replica, once
        assert sorted(seen_a.joined + seen_b.joined) == sorted(NAMES)
        # a cluster's fence is its bucket's: every cluster of a held bucket may be written
        assert all(a.owned(n) == (want[n] == "replica-a") for n in NAMES)
        snap = a.snapshot()["buckets"]
        assert snap["count"] == B and snap["owners"] == dict(sorted(two.items()))
        assert sum(len(v) for v in snap["clusters"].values()) == len(NAMES)

        # another B: refused before it is a member, the stored B untouched
        c, seen_c = replica(mgmt, namespace, "replica-c", buckets=8)
        refused: list[BaseException] = []
        try:
            await c.run()
        except* BucketsMismatch as errors:
            refused.extend(errors.exceptions)
        assert len(refused) == 1, refused
        message = str(refused[0])
        assert "--shard-buckets 8" in message and f"--shard-buckets {B}" in message
        assert CONFIG_NAME in message and namespace in message
        async with apply.connect(mgmt) as api:
            leases = await LeaseStore(api, namespace=namespace, hub="test").list()
        config = next(x for x in leases if x.name == CONFIG_NAME)
        assert config.annotations[BUCKETS_ANNOTATION] == str(B)
        assert not any(x.name == "fleet-member-replica-c" for x in leases)
        assert seen_c.joined == []

        # a clean stop of a: its buckets' clusters, and only those, move to b
        left_b = list(seen_b.left)
        scopes[0].cancel()
        await until(lambda: set(b.snapshot()["held"]) == set(NAMES), limit=30)
        assert b.gained == len(set(key.values()))  # every bucket, each acquired once
        assert seen_b.left == left_b == []
        assert sorted(seen_b.joined) == sorted(NAMES)  # a's clusters joined b on its buckets
        group.cancel_scope.cancel()


CHART = Path(__file__).resolve().parents[2] / "deploy" / "helm" / "fleet"


async def _hub_args(*sets: str) -> list[str]:
    helm = ensure_tool("helm", cache_dir=default_cache_dir())
    argv = [str(helm), "template", "hub", str(CHART), "--namespace", "fleet-chart"]
    for value in ("apiTokens.existingSecret=t", "replicaCount=3", *sets):
        argv += ["--set", value]
    result = await anyio.run_process(argv, check=False)
    assert result.returncode == 0, result.stderr.decode()
    docs = [d for d in yaml.safe_load_all(result.stdout.decode()) if d]
    (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
    args: list[str] = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    return args


async def test_the_chart_passes_shard_buckets_only_when_set() -> None:
    assert "--shard-buckets=256" in await _hub_args("sharding.buckets=256")
    assert not any(a.startswith("--shard-buckets") for a in await _hub_args())


async def test_the_chart_lets_replicas_pass_tokens_on_only_when_told() -> None:
    assert "--shard-insecure-peers" in await _hub_args("sharding.insecurePeers=true")
    assert "--shard-insecure-peers" not in await _hub_args()
