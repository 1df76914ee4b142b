"""An opted-in adoption: the object is taken over, recorded as adopted, and released when it
leaves git (fleet's marks and managed fields removed, the object and its values kept), or
deleted only when the app asks for that. Against a real kit cluster."""

from __future__ import annotations

import pytest

from fleet import apply, plan
from fleet.reconcile.syncing import AppSync, sync
from fleet.types import ObjectKey, RenderedSet
from tests.ownership.kit import configmap, create_by_hand, get, unique

pytestmark = pytest.mark.anyio

Outcome = apply.Outcome
PRUNE = plan.PrunePolicy(allow_empty=True, consent=True)


async def test_adopted_object_is_released_not_deleted(
    cluster: apply.Cluster, namespace: str
) -> None:
    await create_by_hand(cluster, configmap("legacy", namespace, color="red", theirs="x"))
    app = AppSync(name=unique("app"), namespace=namespace, prune=PRUNE, adopt=True)
    keep = configmap("keep", namespace)
    rendered = RenderedSet.of([configmap("legacy", namespace, color="blue"), keep])
    first = await sync(cluster, app, rendered, revision="r1")
    key = ObjectKey("", "ConfigMap", namespace, "legacy")
    assert first.changes.keys(Outcome.ADOPTED) == {key} and first.in_sync, first.problems()
    path = f"/api/v1/namespaces/{namespace}/configmaps/legacy"
    live = await get(cluster, path)
    assert live is not None and live["data"] == {"color": "blue", "theirs": "x"}
    assert plan.tracking_of(live) == first.tracking
    inventory = await apply.read_inventory(cluster, app.inventory_id)
    assert inventory is not None and inventory.record(key).adopted
    assert inventory.record(key).uid == live["metadata"]["uid"]

    steady = await sync(cluster, app, rendered, revision="r1")
    assert steady.changes.keys(Outcome.UNCHANGED) == {
        key,
        ObjectKey("", "ConfigMap", namespace, "keep"),
    }

    released = await sync(cluster, app, RenderedSet.of([keep]), revision="r2")
    assert released.changes.keys(Outcome.RELEASED) == {key}, released.changes.changes
    assert released.changes.of(Outcome.PRUNED) == () and released.in_sync
    live = await get(cluster, path)
    assert live is not None, "an adopted object is released, never deleted by default"
    assert live["data"] == {"color": "blue", "theirs": "x"}
    metadata = live["metadata"]
    annotations, labels = metadata.get("annotations") or {}, metadata.get("labels") or {}
    assert plan.TRACKING_ANNOTATION not in annotations
    assert plan.DIGEST_ANNOTATION not in annotations
    assert plan.APP_LABEL not in labels and plan.MANAGED_BY_LABEL not in labels
    managers = {e.get("manager") for e in metadata.get("managedFields") or []}
    assert first.tracking not in managers, managers
    inventory = await apply.read_inventory(cluster, app.inventory_id)
    assert inventory is not None and key not in inventory.entries
    print("objects wrongly deleted: 0 (the released ConfigMap is still there, values kept)")

    again = await sync(cluster, app, RenderedSet.of([keep]), revision="r2")
    assert again.in_sync and again.changes.of(Outcome.RELEASED) == ()


async def test_per_object_annotation_adopts_and_delete_adopted_deletes(
    cluster: apply.Cluster, namespace: str
) -> None:
    await create_by_hand(cluster, configmap("one", namespace))
    await create_by_hand(cluster, configmap("two", namespace))
    app = AppSync(name=unique("app"), namespace=namespace, prune=PRUNE, delete_adopted=True)
    one = configmap("one", namespace, v="1")
    one["metadata"]["annotations"] = {plan.ADOPT_ANNOTATION: "true"}
    first = await sync(cluster, app, RenderedSet.of([one, configmap("two", namespace, v="2")]))
    assert {c.key.name for c in first.changes.of(Outcome.ADOPTED)} == {"one"}
    assert {c.key.name for c in first.changes.of(Outcome.CONFLICT)} == {"two"}
    keep = configmap("keep", namespace)
    second = await sync(cluster, app, RenderedSet.of([keep]), revision="r2")
    assert {c.key.name for c in second.changes.of(Outcome.PRUNED)} == {"one"}
    assert await get(cluster, f"/api/v1/namespaces/{namespace}/configmaps/one") is None
    assert await get(cluster, f"/api/v1/namespaces/{namespace}/configmaps/two") is not None
