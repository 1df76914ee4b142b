"""Prune guards that hold: they count what the render produced, not the Namespace fleet adds for
``createNamespace``, and a refused prune leaves the result out of sync with its reason.

Against a real kit cluster, through the hub's own mapping of an app (``with_namespace`` and
``app_sync``), with the most permissive prune settings short of ``allowEmpty``.
"""

from __future__ import annotations

import pytest

from fleet import apply
from fleet.config import App, Destination, Source, SyncPolicy
from fleet.hub import apps
from fleet.reconcile.syncing import sync
from fleet.types import ClusterRef, RenderedSet
from tests.ownership.kit import configmap, get, unique

pytestmark = pytest.mark.anyio

Outcome = apply.Outcome


def app_with(namespace: str, *, prune_limit: float = 0.5) -> App:
    return App(
        name=unique("guarded"),
        source=Source(repo_url="file:///srv/config.git"),
        destination=Destination(namespace=namespace),
        sync_policy=SyncPolicy(
            prune=True,
            create_namespace=True,
            prune_kinds=("Namespace",),
            prune_limit=prune_limit,
        ),
    )


async def test_create_namespace_and_an_empty_render_prune_nothing(
    cluster: apply.Cluster,
) -> None:
    ref = ClusterRef(cluster.name)
    for limit in (1.0, 0.5):
        namespace = unique("guard")
        app = app_with(namespace, prune_limit=limit)
        engine = apps.app_sync(app, ref, consent=True)
        objects = [configmap(f"c{i}", namespace, i=str(i)) for i in range(6)]
        full = apps.with_namespace(app, ref, RenderedSet.of(objects))
        first = await sync(cluster, engine, full, revision="r1")
        assert first.in_sync and len(first.changes.of(Outcome.CREATED)) >= 6, first.problems()

        empty = apps.with_namespace(app, ref, RenderedSet.of([]))
        assert len(empty.objects) == 1  # the Namespace fleet adds is all there is
        result = await sync(cluster, engine, empty, revision="r2")
        pruned = result.changes.of(Outcome.PRUNED)
        print(f"pruneLimit {limit}: empty render with createNamespace pruned {len(pruned)}")
        assert pruned == ()
        assert len(result.changes.of(Outcome.SKIPPED)) == 6
        assert not result.in_sync and result.plan.refused is not None
        assert result.verdict == "held"
        assert any("render is empty" in p for p in result.problems())
        for i in range(6):
            assert await get(cluster, f"/api/v1/namespaces/{namespace}/configmaps/c{i}")
        print("objects wrongly deleted: 0")
        await cluster.request("DELETE", f"/api/v1/namespaces/{namespace}")


async def test_a_refused_prune_is_not_synced(cluster: apply.Cluster) -> None:
    namespace = unique("share")
    ref = ClusterRef(cluster.name)
    app = app_with(namespace)
    engine = apps.app_sync(app, ref)  # no consent
    objects = [configmap(f"c{i}", namespace) for i in range(6)]
    first = await sync(cluster, engine, apps.with_namespace(app, ref, RenderedSet.of(objects)))
    assert first.in_sync, first.problems()
    one = apps.with_namespace(app, ref, RenderedSet.of(objects[:1]))
    result = await sync(cluster, engine, one, revision="r2")
    assert result.changes.of(Outcome.PRUNED) == ()
    assert not result.in_sync
    assert result.plan.refused is not None and "5 of 6" in result.plan.refused
    held = [p for p in result.problems() if "not pruned" in p]
    assert len(held) == 5 and all("consent" in p for p in held)
    consented = await sync(cluster, apps.app_sync(app, ref, consent=True), one, revision="r2")
    assert len(consented.changes.of(Outcome.PRUNED)) == 5 and consented.in_sync
    assert (result.verdict, consented.verdict) == ("held", "synced")
    await cluster.request("DELETE", f"/api/v1/namespaces/{namespace}")
