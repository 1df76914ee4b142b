"""Inventory writes are fenced by resourceVersion: two writers never overwrite each other silently.

On a kit cluster. Two writers read one inventory and both write: the second is refused with an
:class:`~fleet.apply.inventory.InventoryConflict` naming the ConfigMap and the cluster, and the
first one's write is what the cluster holds; read again, the second writes on top of it, so
nothing is lost. Creating is fenced the same way: two writers that both found no inventory, the
second is told it already exists.

Then a hub's sync, reading its inventory from a watch cache as the hub does
(:class:`~fleet.reconcile.reading.CachedReader`). The cache sees the apiserver through a TCP proxy
that is frozen (every byte held, the watch stays open and the kind warm): a cache that lags, for
as long as the test wants. Another writer (a replica that took the cluster over) syncs a newer
set behind it; the stale sync is refused before it writes anything, and its next try, with the
cache still frozen on the old copy, reads the API and succeeds. Once the cache has caught up and
is frozen again, a sync right after the hub's own write does not trip over the copy that write
replaced either.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest

from fleet import apply, plan
from fleet.apply import inventory as inventories
from fleet.apply.informer import LiveCache
from fleet.apply.inventory import Inventory, InventoryConflict
from fleet.controlplane import RunningCluster
from fleet.reconcile.reading import ApiReader, CachedReader
from fleet.reconcile.syncing import AppSync, sync
from fleet.types import Manifest, ObjectKey, RenderedSet
from tests.apply.test_informer import Proxy, through
from tests.hub.hubkit import until

pytestmark = pytest.mark.anyio

MANAGER = "fleet-test-fencing"
INVENTORY_SELECTOR = "app.kubernetes.io/component=fleet-inventory"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def cm_key(namespace: str, name: str) -> ObjectKey:
    return ObjectKey("", "ConfigMap", namespace, name)


def inventory(app: str, *keys: ObjectKey, revision: str) -> Inventory:
    return Inventory(app=app, entries={k: "v1" for k in keys}, revision=revision)


async def test_two_writers_of_one_inventory_the_second_is_refused_and_nothing_is_lost(
    cluster: apply.Cluster,
) -> None:
    app = unique("two")
    a, b, c = (cm_key("ns", n) for n in ("a", "b", "c"))
    first = await apply.write_inventory(
        cluster, inventory(app, a, revision="r1"), previous=None, field_manager=MANAGER
    )
    assert first is not None and first.resource_version
    one = await apply.read_inventory(cluster, app)
    two = await apply.read_inventory(cluster, app)
    assert one is not None and two is not None and one.resource_version == two.resource_version

    written = await apply.write_inventory(
        cluster, inventory(app, a, b, revision="r2"), previous=one, field_manager=MANAGER
    )
    assert written is not None and written.resource_version != one.resource_version
    with pytest.raises(InventoryConflict) as refused:
        await apply.write_inventory(
            cluster, inventory(app, a, c, revision="r3"), previous=two, field_manager=MANAGER
        )
    assert str(refused.value) == (
        f"inventory ConfigMap fleet-system/fleet-inventory-{app} on cluster {cluster.name} "
        "changed by another writer since it was read; read again on the next try"
    )
    held = await apply.read_inventory(cluster, app)
    assert held == inventory(app, a, b, revision="r2")  # the first writer's, untouched
    assert held is not None and held.resource_version == written.resource_version

    # read again, the second writer writes on top of the first: both objects are accounted for
    merged = inventory(app, *held.entries, c, revision="r3")
    assert await apply.write_inventory(cluster, merged, previous=held, field_manager=MANAGER)
    assert await apply.read_inventory(cluster, app) == inventory(app, a, b, c, revision="r3")

    # a key dropped by a later write is gone (the create left no co-owner of the content)
    assert await apply.write_inventory(
        cluster,
        Inventory(app=app, entries={a: "v1"}, revision="r4"),
        previous=await apply.read_inventory(cluster, app),
        field_manager=MANAGER,
    )
    assert await apply.read_inventory(cluster, app) == inventory(app, a, revision="r4")


async def test_two_writers_that_found_no_inventory_the_second_create_is_refused(
    cluster: apply.Cluster,
) -> None:
    app = unique("new")
    a, b = cm_key("ns", "a"), cm_key("ns", "b")
    assert await apply.read_inventory(cluster, app) is None
    assert await apply.write_inventory(
        cluster, inventory(app, a, revision="r1"), previous=None, field_manager=MANAGER
    )
    with pytest.raises(InventoryConflict, match=f"fleet-inventory-{app} on cluster"):
        await apply.write_inventory(
            cluster, inventory(app, b, revision="r1"), previous=None, field_manager=MANAGER
        )
    assert await apply.read_inventory(cluster, app) == inventory(app, a, revision="r1")


def rendered(namespace: str, *names: str) -> RenderedSet:
    objects: list[Manifest] = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
    ]
    objects += [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": namespace},
            "data": {"name": name},
        }
        for name in names
    ]
    return RenderedSet.of(objects)


@pytest.fixture
async def frozen_cache(
    kit_clusters: list[RunningCluster], cluster: apply.Cluster
) -> AsyncIterator[tuple[Proxy, CachedReader]]:
    """A reader as the hub's: objects from a direct watch, inventories through a proxy."""
    running = kit_clusters[0]
    proxy = Proxy(running.port)
    async with anyio.create_task_group() as tg:
        port = await tg.start(proxy.serve)
        async with (
            apply.connect(through(running.kubeconfig, port), name="behind-proxy") as far,
            LiveCache(far, label_selector=INVENTORY_SELECTOR) as inventory_cache,
            LiveCache(
                cluster,
                label_selector=f"{plan.MANAGED_BY_LABEL}={plan.MANAGED_BY_VALUE}",
                tracking_annotation=plan.TRACKING_ANNOTATION,
            ) as objects,
        ):
            kind = inventory_cache.ensure("v1", "ConfigMap")
            with anyio.fail_after(60):
                assert await inventory_cache.wait_warm(kind)
            try:
                yield proxy, CachedReader(objects=objects, inventories=inventory_cache)
            finally:
                proxy.thaw()
        tg.cancel_scope.cancel()


def cached_version(reader: CachedReader, app: AppSync) -> str:
    key = cm_key(inventories.NAMESPACE, inventories.configmap_name(app.inventory_id))
    found: Any = reader.inventories.get(key)
    return "" if found is None else str(found["metadata"]["resourceVersion"])


async def api_version(cluster: apply.Cluster, app: AppSync) -> str:
    found = await apply.read_inventory(cluster, app.inventory_id)
    assert found is not None
    return found.resource_version


async def caught_up(cluster: apply.Cluster, reader: CachedReader, app: AppSync) -> None:
    version = await api_version(cluster, app)
    await until(lambda: cached_version(reader, app) == version, limit=60)


async def test_a_sync_refused_on_a_stale_cached_inventory_succeeds_on_its_next_try(
    kit_clusters: list[RunningCluster],
    cluster: apply.Cluster,
    frozen_cache: tuple[Proxy, CachedReader],
) -> None:
    proxy, reader = frozen_cache
    namespace = unique("fence")
    app = AppSync(
        name=unique("app"), namespace=namespace, cluster="fenced"
    )  # as both replicas know it
    first = await sync(cluster, app, rendered(namespace, "a"), revision="r1", reader=reader)
    assert first.in_sync and first.inventory_writes == 2  # created, then completed
    await caught_up(cluster, reader, app)

    proxy.freeze()  # the cache holds r1's inventory from now on
    stale = cached_version(reader, app)
    # another writer (the replica that took the cluster over: a client of its own) applies more
    async with apply.connect(kit_clusters[0].kubeconfig, name="replica-b") as replica:
        other = await sync(
            replica, app, rendered(namespace, "a", "b"), revision="r2", reader=ApiReader()
        )
    assert other.in_sync
    theirs = await apply.read_inventory(cluster, app.inventory_id)
    assert theirs is not None and cm_key(namespace, "b") in theirs.entries

    with pytest.raises(InventoryConflict, match="changed by another writer since it was read"):
        await sync(cluster, app, rendered(namespace, "a", "c"), revision="r3", reader=reader)
    assert await apply.read_inventory(cluster, app.inventory_id) == theirs  # nothing lost
    c = cm_key(namespace, "c")
    assert await apply.read_live(cluster, {c: "v1"}) == {}  # refused before it created anything

    # the next try: the cache still holds the old copy, the reader goes to the API
    assert cached_version(reader, app) == stale != await api_version(cluster, app)
    retry = await sync(cluster, app, rendered(namespace, "a", "c"), revision="r3", reader=reader)
    assert retry.in_sync, retry.changes
    b = cm_key(namespace, "b")
    assert retry.changes.keys(apply.Outcome.PRUNED) == {b}  # the other writer's object, pruned
    after = await apply.read_inventory(cluster, app.inventory_id)
    assert after is not None and after.revision == "r3"
    assert set(after.entries) == {
        ObjectKey("", "Namespace", "", namespace),
        cm_key(namespace, "a"),
        c,
    }
    assert await apply.read_live(cluster, {b: "v1"}) == {}

    # our own write is no conflict either, while the cache still holds the copy it replaced
    proxy.thaw()
    await caught_up(cluster, reader, app)
    proxy.freeze()
    before = cached_version(reader, app)
    assert (
        await sync(cluster, app, rendered(namespace, "a"), revision="r4", reader=reader)
    ).in_sync
    assert before != await api_version(cluster, app)  # r4's write is past the frozen copy
    latest = await sync(cluster, app, rendered(namespace, "a", "d"), revision="r5", reader=reader)
    assert latest.in_sync and latest.inventory_writes == 2
    assert cached_version(reader, app) == before  # the cache never saw r4's write: the API was read
