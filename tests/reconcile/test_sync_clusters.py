"""Acceptance of the apply engine against a real cluster of the kit.

50 objects (a CRD and 20 of its custom resources, a new Namespace, a Deployment, ConfigMaps,
Secrets, Services, ServiceAccounts) are created; a second sync makes zero writes, counted by the
apiserver itself; removing an object prunes it; an empty render and a failed render prune
nothing; the Deployment goes Progressing then Healthy on the kwok node.
"""

from __future__ import annotations

import re
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

import anyio
import pytest

from fleet import apply, plan
from fleet.health import Health, Status
from fleet.reconcile.syncing import AppSync, assess_health, sync
from fleet.types import Manifest, ObjectKey, RenderedSet

pytestmark = pytest.mark.anyio

Outcome = apply.Outcome

WRITES = {"POST", "PUT", "PATCH", "DELETE"}
_SAMPLE = re.compile(r"^apiserver_request_total\{(?P<labels>[^}]*)\}\s+(?P<value>\S+)$")
_LABEL = re.compile(r'(\w+)="([^"]*)"')


async def write_counts(cluster: apply.Cluster, resources: set[str]) -> Counter[str]:
    """Server-side write requests so far on `resources` (main resource only, not dry-run),
    by verb, from the apiserver's own ``apiserver_request_total``."""
    text = str((await cluster.request("GET", "/metrics")).get("text", ""))
    counts: Counter[str] = Counter()
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if not match:
            continue
        labels = dict(_LABEL.findall(match["labels"]))
        if (
            labels.get("verb") in WRITES
            and labels.get("resource") in resources
            and not labels.get("subresource")
            and not labels.get("dry_run")
        ):
            counts[labels["verb"]] += int(float(match["value"]))
    return counts


async def namespaces_settled(cluster: apply.Cluster) -> None:
    """Wait until no namespace of the cluster is terminating: the namespace controller deletes
    what a terminating namespace holds, and those writes count in the cluster-wide figures of
    :func:`write_counts` (a safety net of 120 s, not a speed limit)."""
    with anyio.fail_after(120):
        while True:
            found = await cluster.request("GET", "/api/v1/namespaces")
            phases = [(n.get("status") or {}).get("phase") for n in found.get("items") or ()]
            if "Terminating" not in phases:
                return
            await anyio.sleep(0.5)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def wait_health(
    cluster: apply.Cluster, entries: dict[ObjectKey, str], done: Callable[[Health], bool]
) -> Health:
    """Poll the worst-of health of `entries` until `done` accepts it (no speed asserted)."""
    with anyio.fail_after(120):
        while True:
            overall, _ = await assess_health(cluster, entries)
            if done(overall):
                return overall
            await anyio.sleep(0.3)


def deployment(name: str, **spec: Any) -> Manifest:
    pod_spec: dict[str, Any] = {"containers": [{"name": "c", "image": "registry.local/app:1"}]}
    pod_spec.update(spec.pop("pod", {}))
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": pod_spec},
            **spec,
        },
    }


def fifty(namespace: str, group: str) -> list[Manifest]:
    objs: list[Manifest] = [
        {
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": f"widgets.{group}"},
            "spec": {
                "group": group,
                "scope": "Namespaced",
                "names": {
                    "kind": "Widget",
                    "plural": "widgets",
                    "singular": "widget",
                    "listKind": "WidgetList",
                },
                "versions": [
                    {
                        "name": "v1",
                        "served": True,
                        "storage": True,
                        "schema": {
                            "openAPIV3Schema": {
                                "type": "object",
                                "properties": {
                                    "spec": {
                                        "type": "object",
                                        "x-kubernetes-preserve-unknown-fields": True,
                                    }
                                },
                            }
                        },
                    }
                ],
            },
        },
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
        deployment("web"),
    ]
    objs += [
        {
            "apiVersion": f"{group}/v1",
            "kind": "Widget",
            "metadata": {"name": f"w{i}"},
            "spec": {"size": i},
        }
        for i in range(20)
    ]
    objs += [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": f"cm{i}"},
            "data": {"index": str(i)},
        }
        for i in range(15)
    ]
    objs += [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": f"s{i}"},
            "stringData": {"token": f"t{i}"},
        }
        for i in range(5)
    ]
    objs += [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": f"svc{i}"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80 + i}]},
        }
        for i in range(4)
    ]
    objs += [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": f"sa{i}"}}
        for i in range(3)
    ]
    assert len(objs) == 50
    return objs


RESOURCES = {
    "customresourcedefinitions",
    "namespaces",
    "deployments",
    "widgets",
    "configmaps",
    "secrets",
    "services",
    "serviceaccounts",
}


async def test_fifty_objects_noop_prune_and_safety(cluster: apply.Cluster) -> None:
    namespace, group = unique("acc"), f"{unique('g')}.example.com"
    app = AppSync(name=unique("app"), namespace=namespace)
    objects = fifty(namespace, group)

    first = await sync(cluster, app, RenderedSet.of(objects), revision="r1")
    assert first.changes.ok, first.changes.of(Outcome.FAILED)
    assert len(first.changes.of(Outcome.CREATED)) == 50
    entries = {s.key: s.api_version for s in first.plan.applies}
    await wait_health(cluster, entries, lambda h: h.status is Status.HEALTHY)

    await namespaces_settled(cluster)  # the namespace controller emptying another test's
    calls_before = cluster.calls.copy()
    server_before = await write_counts(cluster, RESOURCES)
    second = await sync(cluster, app, RenderedSet.of(objects), revision="r1")
    server_after = await write_counts(cluster, RESOURCES)
    client_calls = cluster.calls - calls_before
    assert len(second.changes.of(Outcome.UNCHANGED)) == 50
    assert second.health.status is Status.HEALTHY
    assert server_after - server_before == {}, server_after - server_before
    assert {m: n for m, n in client_calls.items() if m != "GET"} == {}
    assert second.inventory_writes == 0
    # reads: one labelled LIST per (kind, namespace) and a GET for each lone object, plus the
    # inventory and health: far fewer than one request per object
    groups = {(s.api_version, s.key.kind, s.key.namespace) for s in first.plan.applies}
    assert client_calls["GET"] <= len(groups) + 5, (client_calls, len(groups))

    gone = ObjectKey("", "ConfigMap", namespace, "cm0")
    third = await sync(
        cluster,
        app,
        RenderedSet.of(o for o in objects if o["metadata"]["name"] != "cm0"),
        revision="r2",
    )
    assert third.changes.keys(Outcome.PRUNED) == {gone}
    assert len(third.changes.of(Outcome.UNCHANGED)) == 49
    assert gone not in (await apply.read_live(cluster, {gone: "v1"}))
    inventory = await apply.read_inventory(cluster, app.inventory_id)
    assert inventory is not None and gone not in inventory.entries
    assert len(inventory.entries) == 49 and inventory.revision == "r2"

    empty = await sync(cluster, app, RenderedSet.of([]), revision="r3")
    assert empty.changes.of(Outcome.PRUNED) == ()
    assert len(empty.changes.of(Outcome.SKIPPED)) == 49
    failed = await sync(cluster, app, None, revision="r4")
    assert failed.changes.of(Outcome.PRUNED) == () and failed.plan.refused == "render failed"
    assert len(await apply.read_live(cluster, dict(inventory.entries))) == 49

    everything = AppSync(
        name=app.name,
        namespace=namespace,
        prune=plan.PrunePolicy(
            allow_empty=True, consent=True, prune_namespaces=True, prune_crds=True
        ),
    )
    cleanup = await sync(cluster, everything, RenderedSet.of([]), revision="r5")
    assert len(cleanup.changes.of(Outcome.PRUNED)) == 49, cleanup.changes.of(Outcome.FAILED)
    assert await apply.read_inventory(cluster, app.inventory_id) == apply.Inventory(
        app=app.inventory_id, entries={}, revision="r5", digest=RenderedSet.of([]).digest
    )


async def test_deployment_goes_progressing_then_healthy(cluster: apply.Cluster) -> None:
    """Unschedulable first (Progressing for as long as we look), then fixed: Healthy."""
    namespace = unique("prog")
    app = AppSync(name=unique("app"), namespace=namespace)
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
    waiting = deployment("web", pod={"nodeSelector": {"pool": "later"}})
    result = await sync(cluster, app, RenderedSet.of([ns, waiting]))
    key = ObjectKey("apps", "Deployment", namespace, "web")
    entries = {key: "apps/v1"}
    assert result.object_health[key].status is Status.PROGRESSING
    with anyio.fail_after(60):  # until the controller has seen it: still Progressing
        while True:
            live = await apply.read_live(cluster, entries)
            if live[key].get("status", {}).get("observedGeneration") == 1:
                break
            await anyio.sleep(0.3)
    assert (await assess_health(cluster, entries))[0].status is Status.PROGRESSING
    fixed = await sync(cluster, app, RenderedSet.of([ns, deployment("web")]))
    assert [c.key for c in fixed.changes.of(Outcome.CONFIGURED)] == [key]
    await wait_health(cluster, entries, lambda h: h.status is Status.HEALTHY)
    await cluster.request("DELETE", f"/api/v1/namespaces/{namespace}")


async def test_written_objects_are_judged_from_the_answers_to_their_writes(
    cluster: apply.Cluster,
) -> None:
    """Health after a write comes from the server's answer to the apply, not from a read after
    it: a sync that changes a ConfigMap and a Deployment reads no more than one that changes
    nothing, and judges the Deployment it just changed Progressing (its new generation not yet
    observed), then Healthy once rolled out."""
    namespace = unique("answer")
    app = AppSync(name=unique("app"), namespace=namespace)
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}

    def objects(value: str) -> RenderedSet:
        cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}}
        image = {"containers": [{"name": "c", "image": f"registry.local/app:{value}"}]}
        return RenderedSet.of([ns, {**cm, "data": {"v": value}}, deployment("web", pod=image)])

    web = ObjectKey("apps", "Deployment", namespace, "web")
    cm = ObjectKey("", "ConfigMap", namespace, "cm")
    first = await sync(cluster, app, objects("1"), revision="r1")
    assert first.changes.ok, first.changes.of(Outcome.FAILED)
    await wait_health(cluster, {web: "apps/v1"}, lambda h: h.status is Status.HEALTHY)

    async def reads(rendered: RenderedSet, revision: str) -> tuple[int, Any]:
        before = cluster.calls.copy()
        result = await sync(cluster, app, rendered, revision=revision)
        return (cluster.calls - before)["GET"], result

    unchanged_reads, unchanged = await reads(objects("1"), "r1")
    assert len(unchanged.changes.of(Outcome.UNCHANGED)) == 3
    changed_reads, changed = await reads(objects("2"), "r2")
    assert changed.changes.keys(Outcome.CONFIGURED) == {web, cm}
    assert changed_reads == unchanged_reads, (changed_reads, unchanged_reads)
    assert changed.object_health[web].status is Status.PROGRESSING
    assert changed.object_health[cm].status is Status.HEALTHY
    assert all(c.live is None for c in changed.changes.changes)  # not kept in the result
    await wait_health(cluster, {web: "apps/v1"}, lambda h: h.status is Status.HEALTHY)
    await cluster.request("DELETE", f"/api/v1/namespaces/{namespace}")


async def test_deployment_that_never_schedules_is_degraded(cluster: apply.Cluster) -> None:
    namespace = unique("deg")
    app = AppSync(name=unique("app"), namespace=namespace)
    stuck = deployment("stuck", progressDeadlineSeconds=2, pod={"nodeSelector": {"none": "x"}})
    objs = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}, stuck]
    result = await sync(cluster, app, RenderedSet.of(objs))
    assert result.changes.ok and result.health.status is Status.PROGRESSING
    entries = {s.key: s.api_version for s in result.plan.applies}
    overall = await wait_health(cluster, entries, lambda h: h.status is not Status.PROGRESSING)
    assert overall.status is Status.DEGRADED
    assert "progress" in overall.message.lower()
    await cluster.request("DELETE", f"/api/v1/namespaces/{namespace}")


async def test_conflicting_field_is_reported_and_forced_only_when_configured(
    cluster: apply.Cluster,
) -> None:
    namespace = unique("conf")
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
    mine = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "c"},
        "data": {"owner": "fleet"},
    }
    polite = AppSync(
        name=unique("app"), namespace=namespace, options=apply.ApplyOptions(force=False)
    )
    assert (await sync(cluster, polite, RenderedSet.of([ns, mine]))).changes.ok
    theirs = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "c", "namespace": namespace},
        "data": {"owner": "someone"},
    }
    await cluster.request(
        "PATCH",
        f"/api/v1/namespaces/{namespace}/configmaps/c",
        query=[("fieldManager", "someone-else"), ("force", "true")],
        body=theirs,
        content_type="application/apply-patch+yaml",
    )
    refused = await sync(cluster, polite, RenderedSet.of([ns, mine]))
    (conflict,) = refused.changes.of(Outcome.CONFLICT)
    assert conflict.key.name == "c" and "conflict" in conflict.reason
    assert "someone-else" in conflict.reason
    assert not refused.in_sync and any("ConfigMap" in p for p in refused.problems())
    forced = AppSync(name=polite.name, namespace=namespace)
    result = await sync(cluster, forced, RenderedSet.of([ns, mine]))
    assert [c.key.name for c in result.changes.of(Outcome.CONFIGURED)] == ["c"]
    live = await cluster.request("GET", f"/api/v1/namespaces/{namespace}/configmaps/c")
    assert live["data"] == {"owner": "fleet"}
    await cluster.request("DELETE", f"/api/v1/namespaces/{namespace}")


async def test_same_app_name_in_two_namespaces_keeps_two_inventories(
    cluster: apply.Cluster,
) -> None:
    """Two instances of one app name (two hubs, or two cluster entries on one apiserver) never
    prune each other's objects: each keeps its own inventory."""
    name = unique("twin")
    first_ns, second_ns = unique("ns-a"), unique("ns-b")

    def objects(namespace: str) -> list[Manifest]:
        return [
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "shared", "namespace": namespace},
                "data": {"a": "1"},
            },
        ]

    first = AppSync(name=name, namespace=first_ns)
    second = AppSync(name=name, namespace=second_ns)
    assert first.inventory_id != second.inventory_id
    assert (await sync(cluster, first, RenderedSet.of(objects(first_ns)))).changes.ok
    synced = await sync(cluster, second, RenderedSet.of(objects(second_ns)))
    assert not synced.plan.prunes, "the other instance's objects are not in this inventory"
    assert synced.plan.refused is None
    mine = await apply.read_inventory(cluster, second.inventory_id)
    assert mine is not None and {k.namespace for k in mine.entries} == {"", second_ns}


async def test_two_entries_on_one_apiserver_with_one_namespace_keep_their_own_inventories(
    cluster: apply.Cluster,
) -> None:
    """The shared-app layout: one app, one destination namespace, two cluster entries reaching one
    apiserver (aliases, tunnels), each applying objects of its own. Each instance has its own
    inventory (named after its tracking id), so their writes never meet: no conflict, nothing of
    the other's recorded, nothing lost."""
    name, namespace = unique("alias"), unique("ns")

    def objects(entry: str) -> list[Manifest]:
        return [
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": f"cm-{entry}", "namespace": namespace},
                "data": {"entry": entry},
            }
        ]

    await sync(cluster, AppSync(name=unique("ns-owner")), RenderedSet.of([_namespace(namespace)]))
    first = AppSync(name=name, namespace=namespace, cluster="entry-a")
    second = AppSync(name=name, namespace=namespace, cluster="entry-b")
    assert first.inventory_id != second.inventory_id
    for _ in range(2):  # twice each, interleaved: a shared inventory would conflict or thrash
        for app, entry in ((first, "a"), (second, "b")):
            result = await sync(cluster, app, RenderedSet.of(objects(entry)), revision="r1")
            assert result.changes.ok and result.in_sync, result.problems()
    for app, entry in ((first, "a"), (second, "b")):
        mine = await apply.read_inventory(cluster, app.inventory_id)
        assert mine is not None and {k.name for k in mine.entries} == {f"cm-{entry}"}


def _namespace(name: str) -> Manifest:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
