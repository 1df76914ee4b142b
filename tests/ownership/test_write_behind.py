"""Inventory records written behind (:mod:`fleet.reconcile.writebehind`), on a kit cluster.

A sync whose final record only moves the revision holds it: the cluster's inventory still says
the commit before until the record is written (by the hub's rounds, or its stop), while the hub's
next sync already sees the held revision (a rewind is measured from it). A sync that changes the
objects writes at once and the held record goes; a record another writer overtook is dropped,
never written over it; a record whose client is gone is tried again, then dropped with a
warning; an app with hooks is never held.
"""

from __future__ import annotations

import logging

import anyio
import pytest

from fleet import apply
from fleet.controlplane import RunningCluster
from fleet.reconcile.syncing import AppSync, Descends, sync
from fleet.reconcile.writebehind import WriteBehind
from fleet.types import Manifest, RenderedSet
from tests.ownership.kit import configmap, unique

pytestmark = pytest.mark.anyio

A, B, C = ("a" * 40, "b" * 40, "c" * 40)


def rendered(namespace: str, count: int, *, data: str = "1", hook: bool = False) -> RenderedSet:
    objects: list[Manifest] = [configmap(f"cm{i}", namespace, v=data) for i in range(count)]
    if hook:
        pre = configmap("pre", namespace, v=data)
        pre["metadata"]["annotations"] = {"argocd.argoproj.io/hook": "PreSync"}
        objects.append(pre)
    return RenderedSet.of(objects)


async def on_cluster(cluster: apply.Cluster, app: AppSync) -> apply.Inventory:
    found = await apply.read_inventory(cluster, app.inventory_id)
    assert found is not None
    return found


async def until_written(behind: WriteBehind, count: int) -> None:
    with anyio.fail_after(60):
        while behind.written < count or len(behind):  # noqa: ASYNC110 - no event to wait on
            await anyio.sleep(0.02)


async def held(
    cluster: apply.Cluster,
    namespace: str,
    *,
    count: int = 2,
    max_age: float = 5.0,
    descends: Descends | None = None,
) -> tuple[WriteBehind, AppSync]:
    """A new app synced at A, then at B (new values, the same objects): B's record held."""
    behind = WriteBehind(settle=0.05, max_age=max_age)
    app = AppSync(name=unique("wb"), namespace=namespace)
    for revision, data in ((A, "1"), (B, "2")):
        await sync(
            cluster,
            app,
            rendered(namespace, count, data=data),
            revision=revision,
            behind=behind,
            descends=descends,
        )
    assert len(behind) == 1 and (await on_cluster(cluster, app)).revision == A
    return behind, app


async def test_a_record_that_only_moves_the_revision_is_written_once_the_wave_is_over(
    cluster: apply.Cluster, namespace: str
) -> None:
    behind = WriteBehind(settle=0.05, max_age=5.0)
    app = AppSync(name=unique("wb"), namespace=namespace)
    first = await sync(cluster, app, rendered(namespace, 3), revision=A, behind=behind)
    assert first.in_sync and first.inventory_writes >= 1  # new objects: recorded at once
    assert (await on_cluster(cluster, app)).revision == A and len(behind) == 0

    second = await sync(cluster, app, rendered(namespace, 3, data="2"), revision=B, behind=behind)
    assert second.in_sync and second.inventory_writes == 0
    assert len(second.changes.of(apply.Outcome.CONFIGURED)) == 3
    assert (await on_cluster(cluster, app)).revision == A  # not yet: held
    assert len(behind) == 1
    seen = behind.applied(cluster.name, app.inventory_id, await on_cluster(cluster, app))
    assert seen is not None and (seen.revision, seen.digest) == (B, second.digest)

    again = await sync(cluster, app, rendered(namespace, 3, data="2"), revision=B, behind=behind)
    assert again.in_sync and again.inventory_writes == 0 and len(behind) == 1  # still held

    async with anyio.create_task_group() as group:
        await group.start(behind.run)
        await until_written(behind, 1)
        group.cancel_scope.cancel()
    written = await on_cluster(cluster, app)
    assert (written.revision, written.digest) == (B, second.digest)
    assert {k.name for k in written.entries} == {"cm0", "cm1", "cm2"}


async def test_a_sync_that_changes_the_objects_writes_at_once_and_the_held_record_goes(
    cluster: apply.Cluster, namespace: str
) -> None:
    behind, app = await held(cluster, namespace)
    grown = await sync(cluster, app, rendered(namespace, 3, data="2"), revision=C, behind=behind)
    assert grown.in_sync and grown.inventory_writes >= 1
    now = await on_cluster(cluster, app)
    assert now.revision == C and {k.name for k in now.entries} == {"cm0", "cm1", "cm2"}
    assert len(behind) == 0

    shrunk = await sync(cluster, app, rendered(namespace, 1, data="2"), revision=A, behind=behind)
    assert len(shrunk.changes.of(apply.Outcome.PRUNED)) == 2
    now = await on_cluster(cluster, app)
    assert now.revision == A and {k.name for k in now.entries} == {"cm0"}
    assert len(behind) == 0
    await behind.flush()
    assert behind.written == 0


async def test_a_rewind_is_measured_from_the_held_revision(
    cluster: apply.Cluster, namespace: str
) -> None:
    history = {(A, A), (A, B), (B, B)}  # B descends from A

    async def descends(old: str, new: str) -> bool:
        return (old, new) in history

    behind, app = await held(cluster, namespace, descends=descends)  # the cluster says A
    back = await sync(
        cluster, app, rendered(namespace, 2), revision=A, behind=behind, descends=descends
    )
    assert back.rewound == f"rewound from {B[:12]} to {A[:12]}"


async def test_a_record_another_writer_overtook_is_dropped_not_written_over_it(
    cluster: apply.Cluster, namespace: str
) -> None:
    behind, app = await held(cluster, namespace)
    read = await on_cluster(cluster, app)
    other = apply.Inventory(app=read.app, entries=read.entries, revision=C, digest="other")
    await apply.write_inventory(cluster, other, previous=read, field_manager="another-hub")

    await behind.flush()
    assert behind.written == 0 and len(behind) == 0
    assert (await on_cluster(cluster, app)).revision == C


async def test_a_record_whose_client_is_gone_is_tried_again_then_dropped_with_a_warning(
    cluster: apply.Cluster,
    kit_clusters: list[RunningCluster],
    namespace: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    behind = WriteBehind(settle=0.05, max_age=5.0, tries=2)
    app = AppSync(name=unique("wb"), namespace=namespace)
    async with apply.connect(kit_clusters[0].kubeconfig) as gone:
        await sync(gone, app, rendered(namespace, 1), revision=A, behind=behind)
        await sync(gone, app, rendered(namespace, 1, data="2"), revision=B, behind=behind)
    assert len(behind) == 1
    with caplog.at_level(logging.WARNING, logger="fleet.reconcile.writebehind"):
        await behind.flush()
        assert len(behind) == 1  # tried once: held for the next round
        await behind.flush()
    assert len(behind) == 0 and behind.written == 0
    dropped = [
        r.getMessage() for r in caplog.records if "inventory_record_dropped" in r.getMessage()
    ]
    assert len(dropped) == 1 and app.inventory_id in dropped[0] and "tries=2" in dropped[0]
    assert (await on_cluster(cluster, app)).revision == A  # the revision before, as said


async def test_an_app_with_hooks_records_each_revision_at_once(
    cluster: apply.Cluster, namespace: str
) -> None:
    behind = WriteBehind(settle=0.05, max_age=5.0)
    app = AppSync(name=unique("wb"), namespace=namespace)
    await sync(cluster, app, rendered(namespace, 2, hook=True), revision=A, behind=behind)
    second = await sync(
        cluster, app, rendered(namespace, 2, data="2", hook=True), revision=B, behind=behind
    )
    assert second.in_sync and second.inventory_writes == 1
    assert (await on_cluster(cluster, app)).revision == B and len(behind) == 0


async def test_records_wait_while_any_sync_of_the_hub_runs(
    cluster: apply.Cluster, namespace: str
) -> None:
    behind, app = await held(cluster, namespace, count=1, max_age=3600.0)
    async with anyio.create_task_group() as group:
        async with behind.syncing("another-cluster", "another-app"):  # the wave goes on
            await group.start(behind.run)
            await anyio.sleep(0.5)  # ten times `settle`: a round would have come by now
            assert len(behind) == 1 and behind.written == 0
        await until_written(behind, 1)  # the wave over: written
        group.cancel_scope.cancel()
    assert (await on_cluster(cluster, app)).revision == B


async def test_records_wait_while_a_plan_or_render_of_the_hub_runs(
    cluster: apply.Cluster, namespace: str
) -> None:
    """A commit's renders are part of its wave (fleet.activity), though no sync runs yet."""
    behind, app = await held(cluster, namespace, count=1, max_age=3600.0)
    async with anyio.create_task_group() as group:
        with behind.activity.working():  # a render in flight
            await group.start(behind.run)
            await anyio.sleep(0.5)  # ten times `settle`
            assert len(behind) == 1 and behind.written == 0
        await until_written(behind, 1)
        group.cancel_scope.cancel()
    assert (await on_cluster(cluster, app)).revision == B
