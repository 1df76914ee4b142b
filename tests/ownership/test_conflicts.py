"""A hand-made object meets a conflict: fleet neither overwrites it nor, later, deletes it.

Against a real kit cluster: an object created by hand (kubectl create: no fleet marks) that an
app also declares is a conflict on the app's result, named with its owner ("not managed by
fleet") and what to do; its value is kept, a second sync sends no write at all, and when it
leaves git it is not pruned. A pre-existing Namespace with data in it, wanted through
``createNamespace`` by an app that may prune Namespaces, is used as is and survives an empty
render. An object whose uid is not the one fleet recorded (recreated outside fleet) is not
deleted either.
"""

from __future__ import annotations

import pytest

from fleet import apply, plan
from fleet.reconcile import diffing
from fleet.reconcile.syncing import AppSync, sync
from fleet.types import ObjectKey, RenderedSet
from tests.ownership.kit import configmap, create_by_hand, get, unique

pytestmark = pytest.mark.anyio

Outcome = apply.Outcome
PRUNE_ALL = plan.PrunePolicy(allow_empty=True, consent=True, prune_namespaces=True)


async def test_hand_made_object_is_a_conflict_never_overwritten_nor_pruned(
    cluster: apply.Cluster, namespace: str
) -> None:
    await create_by_hand(cluster, configmap("settings", namespace, color="red"))
    app = AppSync(name=unique("app"), namespace=namespace, prune=PRUNE_ALL)
    mine = configmap("mine", namespace, a="1")
    rendered = RenderedSet.of([configmap("settings", namespace, color="blue"), mine])
    first = await sync(cluster, app, rendered, revision="r1")
    (conflict,) = first.changes.of(Outcome.CONFLICT)
    assert conflict.key == ObjectKey("", "ConfigMap", namespace, "settings")
    assert "not managed by fleet" in conflict.reason and "syncPolicy.adopt" in conflict.reason
    assert first.changes.keys(Outcome.CREATED) == {ObjectKey("", "ConfigMap", namespace, "mine")}
    assert not first.in_sync and first.verdict == "conflict"
    (problem,) = first.problems()
    assert problem.startswith(f"ConfigMap {namespace}/settings: exists and is not managed by fleet")
    path = f"/api/v1/namespaces/{namespace}/configmaps/settings"
    live = await get(cluster, path)
    assert live is not None and live["data"] == {"color": "red"}
    assert plan.TRACKING_ANNOTATION not in (live["metadata"].get("annotations") or {})

    diffs, prunes = await diffing.diff(cluster, app, rendered)
    (shown,) = [d for d in diffs if d.key == conflict.key]
    assert shown.action is apply.DiffAction.ERROR and "not managed by fleet" in shown.text
    assert prunes == []

    before = cluster.calls.copy()
    again = await sync(cluster, app, rendered, revision="r1")
    writes = {verb: n for verb, n in (cluster.calls - before).items() if verb != "GET"}
    print(f"requests other than GET on a second sync with a standing conflict: {writes}")
    assert writes == {}, "a standing conflict costs no write"
    assert [c.key for c in again.changes.of(Outcome.CONFLICT)] == [conflict.key]

    inventory = await apply.read_inventory(cluster, app.inventory_id)
    assert inventory is not None and conflict.key not in inventory.entries
    gone = await sync(cluster, app, RenderedSet.of([mine]), revision="r2")
    assert gone.changes.of(Outcome.PRUNED) == () and gone.in_sync
    survivor = await get(cluster, path)
    assert survivor is not None and survivor["data"] == {"color": "red"}
    print("objects wrongly deleted: 0 (the hand-made ConfigMap is still there)")


async def test_pre_existing_namespace_is_used_as_is_and_survives_an_empty_render(
    cluster: apply.Cluster, namespace: str
) -> None:
    await create_by_hand(cluster, configmap("data", namespace, keep="me"))
    app = AppSync(name=unique("app"), namespace=namespace, prune=PRUNE_ALL)
    ns = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": namespace, "annotations": {plan.SHARED_MARK_ANNOTATION: "x"}},
    }
    first = await sync(cluster, app, RenderedSet.of([ns, configmap("c", namespace)]))
    (kept,) = first.changes.of(Outcome.KEPT)
    assert kept.key == ObjectKey("", "Namespace", "", namespace) and "used as is" in kept.reason
    assert first.in_sync, first.problems()
    live_ns = await get(cluster, f"/api/v1/namespaces/{namespace}")
    assert live_ns is not None and not plan.owners_of(live_ns)

    empty = await sync(cluster, app, RenderedSet.of([]), revision="empty")
    assert [c.key.kind for c in empty.changes.of(Outcome.PRUNED)] == ["ConfigMap"]
    live_ns = await get(cluster, f"/api/v1/namespaces/{namespace}")
    assert live_ns is not None and "deletionTimestamp" not in live_ns["metadata"]
    data = await get(cluster, f"/api/v1/namespaces/{namespace}/configmaps/data")
    assert data is not None and data["data"] == {"keep": "me"}
    print("objects wrongly deleted: 0 (the hand-made Namespace and its data are still there)")


async def test_prune_needs_the_recorded_uid(cluster: apply.Cluster, namespace: str) -> None:
    app = AppSync(name=unique("app"), namespace=namespace, prune=PRUNE_ALL)
    keep = configmap("keep", namespace)
    first = await sync(cluster, app, RenderedSet.of([keep, configmap("twin", namespace, v="1")]))
    assert first.in_sync, first.problems()
    path = f"/api/v1/namespaces/{namespace}/configmaps/twin"
    original = await get(cluster, path)
    assert original is not None
    await cluster.request("DELETE", path)
    copy = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "twin",
            "namespace": namespace,
            "annotations": dict(original["metadata"]["annotations"]),
            "labels": dict(original["metadata"]["labels"]),
        },
        "data": {"v": "restored by hand"},
    }
    await create_by_hand(cluster, copy)  # a restore from a backup: our marks, another uid
    result = await sync(cluster, app, RenderedSet.of([keep]), revision="r2")
    (held,) = result.changes.of(Outcome.SKIPPED)
    assert held.key.name == "twin" and "uid" in held.reason
    assert not result.in_sync
    survivor = await get(cluster, path)
    assert survivor is not None and survivor["data"] == {"v": "restored by hand"}


async def test_objects_applied_before_tracking_ids_stay_this_apps(
    cluster: apply.Cluster, namespace: str
) -> None:
    """An upgrade: objects a fleet without tracking ids applied (our label, in our inventory)
    are ours, get the tracking id on the next sync, and are pruned normally later."""
    app = AppSync(name=unique("app"), namespace=namespace, prune=PRUNE_ALL)
    keep, old = configmap("keep", namespace, v="1"), configmap("old", namespace, v="1")
    assert (await sync(cluster, app, RenderedSet.of([keep, old]), revision="r1")).in_sync
    strip = [{"op": "remove", "path": "/metadata/annotations/fleet.dev~1tracking-id"}]
    for name in ("keep", "old"):
        await cluster.request(
            "PATCH",
            f"/api/v1/namespaces/{namespace}/configmaps/{name}",
            body=strip,
            content_type="application/json-patch+json",
        )
    again = await sync(cluster, app, RenderedSet.of([keep, old]), revision="r1")
    assert {c.key.name for c in again.changes.of(Outcome.CONFIGURED)} == {"keep", "old"}
    assert again.in_sync, again.problems()
    live = await get(cluster, f"/api/v1/namespaces/{namespace}/configmaps/old")
    assert live is not None and plan.tracking_of(live) == again.tracking
    gone = await sync(cluster, app, RenderedSet.of([keep]), revision="r2")
    assert {c.key.name for c in gone.changes.of(Outcome.PRUNED)} == {"old"}
