"""Per-object sync and compare options on a kit cluster, as Argo CD documents them.

- ``Prune=false``: the object stays when it leaves git; the prune shows as held and the app
  OutOfSync (Argo CD: "pruning skipped").
- with ``compare-options: IgnoreExtraneous`` as well, the held prune does not make it OutOfSync.
- ``Replace=true``: written with POST/PUT (managedFields say ``Update``), not a server-side apply
  (``Apply``); with ``Force=true`` the object is deleted and created again (a new uid). Never
  someone else's: planned as a creation it is only POSTed, an object of its name found then a
  conflict; planned over a live object, one with another uid a conflict too.
- an option fleet does not know is a warning naming the object and the option.
"""

from __future__ import annotations

import pytest

from fleet import apply
from fleet.apply import creating
from fleet.reconcile import summary
from fleet.reconcile.syncing import AppSync, sync
from fleet.types import Manifest, ObjectKey, RenderedSet
from tests.conformance.kit import COMPARE_OPTIONS, SYNC_OPTIONS, cm_path, configmap, get, unique

pytestmark = pytest.mark.anyio


def operations(live: Manifest, manager: str) -> set[str]:
    return {
        str(e.get("operation"))
        for e in live["metadata"].get("managedFields", [])
        if e.get("manager") == manager
    }


async def test_prune_false_is_kept_after_removal_from_git(
    cluster: apply.Cluster, namespace: str
) -> None:
    app = AppSync(name=unique("keep"), namespace=namespace)
    objects = [configmap("keep", notes={SYNC_OPTIONS: "Prune=false"}), configmap("a")]
    assert (await sync(cluster, app, RenderedSet.of(objects), revision="r1")).in_sync
    result = await sync(cluster, app, RenderedSet.of([configmap("a")]), revision="r2")
    assert await get(cluster, cm_path(namespace, "keep")) is not None
    [held] = [c for c in result.changes.changes if c.key.name == "keep"]
    assert held.outcome is apply.Outcome.SKIPPED
    assert "Prune=false" in held.reason
    assert not result.in_sync  # shown: the app still has an object git no longer holds
    inventory = await apply.read_inventory(cluster, app.inventory_id)
    assert inventory is not None and "keep" in {k.name for k in inventory.entries}


async def test_ignore_extraneous_keeps_the_app_synced(
    cluster: apply.Cluster, namespace: str
) -> None:
    app = AppSync(name=unique("extra"), namespace=namespace)
    notes = {SYNC_OPTIONS: "Prune=false", COMPARE_OPTIONS: "IgnoreExtraneous"}
    objects = [configmap("kept", notes=notes), configmap("a")]
    assert (await sync(cluster, app, RenderedSet.of(objects), revision="r1")).in_sync
    result = await sync(cluster, app, RenderedSet.of([configmap("a")]), revision="r2")
    assert await get(cluster, cm_path(namespace, "kept")) is not None
    [kept] = [c for c in result.changes.changes if c.key.name == "kept"]
    assert kept.outcome is apply.Outcome.KEPT
    assert "IgnoreExtraneous" in kept.reason
    assert result.in_sync, result.problems()


async def test_replace_writes_with_put_and_force_recreates(
    cluster: apply.Cluster, namespace: str
) -> None:
    app = AppSync(name=unique("replace"), namespace=namespace)
    manager = app.apply_options(cluster.name).field_manager
    replaced = {SYNC_OPTIONS: "Replace=true"}
    first = await sync(
        cluster,
        app,
        RenderedSet.of([configmap("r", notes=replaced), configmap("ssa")]),
        revision="r1",
    )
    assert first.in_sync, first.problems()
    live = await get(cluster, cm_path(namespace, "r"))
    assert live is not None and operations(live, manager) == {"Update"}
    ssa = await get(cluster, cm_path(namespace, "ssa"))
    assert ssa is not None and operations(ssa, manager) == {"Apply"}

    second = await sync(
        cluster,
        app,
        RenderedSet.of([configmap("r", data={"b": "2"}, notes=replaced), configmap("ssa")]),
        revision="r2",
    )
    assert second.in_sync, second.problems()
    after = await get(cluster, cm_path(namespace, "r"))
    assert after is not None and after["data"] == {"b": "2"}
    assert after["metadata"]["uid"] == live["metadata"]["uid"]
    [change] = [c for c in second.changes.changes if c.key.name == "r"]
    assert change.outcome is apply.Outcome.CONFIGURED and "Replace=true" in change.reason

    forced = {SYNC_OPTIONS: "Force=true,Replace=true"}
    third = await sync(
        cluster,
        app,
        RenderedSet.of([configmap("r", data={"c": "3"}, notes=forced), configmap("ssa")]),
        revision="r3",
    )
    assert third.in_sync, third.problems()
    recreated = await get(cluster, cm_path(namespace, "r"))
    assert recreated is not None and recreated["data"] == {"c": "3"}
    assert recreated["metadata"]["uid"] != live["metadata"]["uid"]
    # the inventory follows the new object: the next sync neither writes nor holds it
    fourth = await sync(
        cluster,
        app,
        RenderedSet.of([configmap("r", data={"c": "3"}, notes=forced), configmap("ssa")]),
        revision="r3",
    )
    assert fourth.in_sync and not fourth.wrote, fourth.problems()


async def test_unknown_option_is_a_warning(cluster: apply.Cluster, namespace: str) -> None:
    app = AppSync(name=unique("odd"), namespace=namespace)
    notes = {SYNC_OPTIONS: "Validate=false,Turbo=true"}
    result = await sync(cluster, app, RenderedSet.of([configmap("o", notes=notes)]), revision="r1")
    assert result.in_sync
    assert result.warnings == (
        f"ConfigMap {namespace}/o: {SYNC_OPTIONS} 'Turbo=true' is not supported by fleet "
        "and is ignored",
    )
    note = summary.outcome_of(result).note  # and the target's record says it, not only the log
    assert note == f"warning: {result.warnings[0]}"


@pytest.mark.parametrize("force", [False, True])
async def test_replace_planned_as_a_creation_never_takes_a_strangers_object(
    cluster: apply.Cluster, namespace: str, force: bool
) -> None:
    """A ``Replace=true`` object planned as a creation is only POSTed: a ConfigMap of its name
    that someone made after the plan is a conflict naming it, neither overwritten (PUT) nor
    deleted (Force=true); a planned replace whose object changed uid since is one too."""
    theirs = configmap("r", data={"theirs": "yes"})
    made = await cluster.request("POST", f"/api/v1/namespaces/{namespace}/configmaps", body=theirs)
    key = ObjectKey("", "ConfigMap", namespace, "r")
    ours = {
        **configmap("r", data={"ours": "yes"}),
        "metadata": {"name": "r", "namespace": namespace},
    }
    change = await creating.replace_object(
        cluster,
        api_version="v1",
        key=key,
        manifest=ours,
        manager="fleet-test",
        force=force,
        within=30.0,
        create=True,
    )
    assert change.outcome is apply.Outcome.CONFLICT
    assert change.reason.startswith(f"ConfigMap {namespace}/r was created by someone else")
    assert "it is not replaced nor deleted" in change.reason
    again = await creating.replace_object(
        cluster,
        api_version="v1",
        key=key,
        manifest=ours,
        manager="fleet-test",
        force=force,
        within=30.0,
        uid="a-uid-planned-earlier",
    )
    assert again.outcome is apply.Outcome.CONFLICT
    assert "was deleted and created again by someone else" in again.reason
    live = await get(cluster, cm_path(namespace, "r"))
    assert live is not None
    assert live["metadata"]["uid"] == made["metadata"]["uid"]
    assert live["data"] == {"theirs": "yes"}
