"""A cached reader whose caches do not run (its cell starts, or stopped as its cluster changed)
reads the API instead: a sync in that moment is answered, never crashed (CI saw
"live cache of cluster test-1 is not running" end a reconcile)."""

from __future__ import annotations

import pytest

from fleet import apply, plan
from fleet.apply.informer import LiveCache
from fleet.reconcile.reading import CachedReader
from fleet.reconcile.syncing import AppSync, sync
from fleet.types import ObjectKey, RenderedSet

pytestmark = pytest.mark.anyio


async def test_a_reader_over_stopped_caches_reads_the_api(cluster: apply.Cluster) -> None:
    objects = LiveCache(cluster, label_selector=f"{plan.MANAGED_BY_LABEL}={plan.MANAGED_BY_VALUE}")
    inventories = LiveCache(cluster, label_selector="app.kubernetes.io/component=fleet-inventory")
    assert not objects.running and not inventories.running  # never entered
    reader = CachedReader(objects=objects, inventories=inventories)
    app = AppSync(name="reading-stopped", namespace="default")
    manifest = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "reading-stopped", "namespace": "default"},
        "data": {"a": "1"},
    }
    result = await sync(cluster, app, RenderedSet.of([manifest]), revision="r1", reader=reader)
    assert result.changes.ok and result.in_sync, result.problems()
    again = await sync(cluster, app, RenderedSet.of([manifest]), revision="r1", reader=reader)
    assert again.in_sync and not again.wrote, again.problems()
    assert reader.cached == 0, "nothing came from the stopped caches"
    key = ObjectKey("", "ConfigMap", "default", "reading-stopped")
    assert key in await reader.live(cluster, {key: "v1"}, selector=app.selector)
