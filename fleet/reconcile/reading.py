"""Where a sync reads the cluster: the API, or the cluster's live caches when they are warm.

A sync reads two things before it plans: the target's inventory and the live objects of its
desired set and inventory. :class:`ApiReader` reads both from the API (one GET, one LIST per
kind and namespace). :class:`CachedReader` reads them from the cluster's shared watches
(:class:`fleet.apply.informer.LiveCache`): a warm cache answers without a request, and only what
it cannot know goes to the API: keys it does not hold (a new object, one fleet has not labelled
yet, someone else's), kinds whose stream is not warm yet. So the idle resync of a target in
sync costs no request at all; the watches themselves cost one long request per kind.

A cache may lag the server by the watch's latency. That is safe for the planner: an object read
a little old is at worst written again with the same content (server-side apply is idempotent),
and the inventory is written with a resourceVersion precondition. A cached inventory known to be
out of date (after a conflict on it, or a version fleet's own write replaced:
:func:`fleet.apply.inventory.cached_is_stale`) is read from the API instead, so the attempt after
a conflict never fails again on the same old copy.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from fleet import apply
from fleet.apply import inventory as inventories
from fleet.apply.informer import Kind, LiveCache
from fleet.types import Manifest, ObjectKey

__all__ = ["READER", "ApiReader", "CachedReader", "Reader"]

READER = "reader"  # the one user of a live cache's kinds that every CachedReader counts as

_INVENTORY_KIND = ("v1", "ConfigMap")


class Reader(Protocol):
    """What sync reads before it plans."""

    async def inventory(self, cluster: apply.Cluster, app: str) -> apply.Inventory | None: ...

    async def live(
        self, cluster: apply.Cluster, wanted: Mapping[ObjectKey, str], *, selector: str
    ) -> dict[ObjectKey, Manifest]: ...


class ApiReader:
    """Everything from the API."""

    async def inventory(self, cluster: apply.Cluster, app: str) -> apply.Inventory | None:
        return await apply.read_inventory(cluster, app)

    async def live(
        self, cluster: apply.Cluster, wanted: Mapping[ObjectKey, str], *, selector: str
    ) -> dict[ObjectKey, Manifest]:
        return await apply.read_live(cluster, wanted, selector=selector)


class CachedReader:
    """From `objects` (fleet-managed objects) and `inventories` (inventory ConfigMaps) when warm."""

    def __init__(self, *, objects: LiveCache, inventories: LiveCache) -> None:
        self.objects = objects
        self.inventories = inventories
        self.cached = 0  # reads answered by a cache (tests, the bench)

    def _ensure(self, cache: LiveCache, api_version: str, kind: str) -> Kind:
        """The cache key of `kind`, its stream started: the readers of a cache count as one
        user of it (:data:`READER`), however many syncs read and however often (a health gate
        reads every second); a kind once read stays watched while the cache runs."""
        return cache.ensure(api_version, kind, user=READER)

    async def inventory(self, cluster: apply.Cluster, app: str) -> apply.Inventory | None:
        if not self.inventories.running:  # the cell stopped or restarts (its cluster changed)
            return await apply.read_inventory(cluster, app)
        kind = self._ensure(self.inventories, *_INVENTORY_KIND)
        if not self.inventories.is_warm(kind):
            return await apply.read_inventory(cluster, app)
        key = ObjectKey("", "ConfigMap", inventories.NAMESPACE, inventories.configmap_name(app))
        found = self.inventories.get(key)
        if inventories.cached_is_stale(cluster, app, found):
            return await apply.read_inventory(cluster, app)  # after a conflict, or our own write
        self.cached += 1
        # every inventory carries the cache's label from its first write: absent here is absent
        return None if found is None else apply.Inventory.from_configmap(app, found)

    async def live(
        self, cluster: apply.Cluster, wanted: Mapping[ObjectKey, str], *, selector: str
    ) -> dict[ObjectKey, Manifest]:
        if not self.objects.running:  # the cell stopped or restarts (its cluster changed)
            return await apply.read_live(cluster, wanted, selector=selector)
        kinds = {}
        for key, api_version in wanted.items():
            kinds[(key.group, key.kind)] = self._ensure(self.objects, api_version, key.kind)
        warm = {k for k, kind in kinds.items() if self.objects.is_warm(kind)}
        cold = {k: v for k, v in wanted.items() if (k.group, k.kind) not in warm}
        lookup = self.objects.lookup(k for k in wanted if (k.group, k.kind) in warm)
        self.cached += len(lookup.found)
        ask = {**cold, **{k: wanted[k] for k in lookup.unknown}}
        found = dict(lookup.found)
        if ask:
            found.update(await apply.read_live(cluster, ask, selector=selector))
        return found
