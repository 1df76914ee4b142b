"""Two apps, one object: one stable conflict, a bounded number of writes, no prune of the
other's object; two apps with ``createNamespace`` on one namespace share it without a write loop.

Against a real kit cluster. Each app runs as the hub runs it: a sync, then a drift watch with
self-heal (so a write by one app that the other took for drift would start a loop, as it did),
for 20 s, while a watch counts every change the server makes to the objects involved.
"""

from __future__ import annotations

import functools

import anyio
import pytest

from fleet import apply, plan
from fleet.reconcile.drifting import watch_drift
from fleet.reconcile.syncing import AppSync, SyncResult, sync
from fleet.types import ObjectKey, RenderedSet
from tests.ownership.kit import configmap, get, unique, watched_changes

pytestmark = pytest.mark.anyio

Outcome = apply.Outcome
WINDOW = 20.0
PRUNE = plan.PrunePolicy(consent=True, prune_namespaces=True)


async def _run_with_self_heal(
    cluster: apply.Cluster,
    apps: list[tuple[AppSync, RenderedSet]],
    seconds: float,
    *,
    watch: str,
    field_selector: str = "",
) -> tuple[list[SyncResult], int]:
    """Each app's drift watch with self-heal for `seconds`: the heals made, and the changes the
    server made meanwhile to the objects of collection `watch` (counted by a watch)."""
    healed: list[SyncResult] = []
    changes: list[int] = []

    async def count() -> None:
        seen = await watched_changes(cluster, watch, seconds=seconds, field_selector=field_selector)
        changes.append(sum(seen.values()))

    async def on_drift(_keys: list[ObjectKey], result: SyncResult | None) -> None:
        if result is not None:
            healed.append(result)

    async with anyio.create_task_group() as tg:
        for app, rendered in apps:
            await tg.start(
                functools.partial(
                    watch_drift,
                    cluster,
                    app,
                    rendered,
                    self_heal=True,
                    on_drift=on_drift,
                    resync=2.0,
                )
            )
        await count()
        tg.cancel_scope.cancel()
    return healed, changes[0]


async def test_two_apps_one_object_one_stable_conflict(
    cluster: apply.Cluster, namespace: str
) -> None:
    first = AppSync(name=unique("alpha"), namespace=namespace, prune=PRUNE)
    second = AppSync(name=unique("beta"), namespace=namespace, prune=PRUNE)
    shared = configmap("shared", namespace, owner="alpha")
    theirs = configmap("shared", namespace, owner="beta")
    rendered_a = RenderedSet.of([shared, configmap("only-a", namespace)])
    rendered_b = RenderedSet.of([theirs, configmap("only-b", namespace)])

    async def both() -> tuple[SyncResult, SyncResult]:
        results: dict[str, SyncResult] = {}

        async def run(key: str, app: AppSync, rendered: RenderedSet) -> None:
            results[key] = await sync(cluster, app, rendered, revision="r1")

        async with anyio.create_task_group() as tg:  # at once: a race for the creation
            tg.start_soon(run, "a", first, rendered_a)
            tg.start_soon(run, "b", second, rendered_b)
        return results["a"], results["b"]

    a, b = await both()
    key = ObjectKey("", "ConfigMap", namespace, "shared")
    winners = [r for r in (a, b) if key in r.changes.keys(Outcome.CREATED)]
    losers = [r for r in (a, b) if key in r.changes.keys(Outcome.CONFLICT)]
    assert len(winners) == 1 and len(losers) == 1, (a.changes, b.changes)
    winner = winners[0]
    owner_app = first if winner is a else second
    other_app = second if winner is a else first
    other_rendered = rendered_b if winner is a else rendered_a

    again = await sync(cluster, other_app, other_rendered, revision="r1")
    (conflict,) = again.changes.of(Outcome.CONFLICT)
    assert f"fleet app {owner_app.name}" in conflict.reason and not again.in_sync

    healed, writes = await _run_with_self_heal(
        cluster,
        [(first, rendered_a), (second, rendered_b)],
        WINDOW,
        watch=f"/api/v1/namespaces/{namespace}/configmaps",
    )
    live = await get(cluster, f"/api/v1/namespaces/{namespace}/configmaps/shared")
    assert live is not None
    per_minute = writes * 60 / WINDOW
    print(
        f"two apps, one object: {writes} writes in {WINDOW:.0f}s ({per_minute:.1f}/min), "
        f"{len(healed)} heals"
    )
    assert writes == 0 and healed == [], "no fight: the second app never writes the object"
    assert plan.tracking_of(live) == winner.tracking

    settled = await sync(cluster, other_app, other_rendered, revision="r1")
    assert [c.reason for c in settled.changes.of(Outcome.CONFLICT)] == [conflict.reason]

    # the app in conflict stops declaring the object: its prune leaves the other's alone
    mine_only = RenderedSet.of(
        [configmap(f"only-{'b' if other_app is second else 'a'}", namespace)]
    )
    dropped = await sync(cluster, other_app, mine_only, revision="r2")
    assert key not in dropped.changes.keys(Outcome.PRUNED)
    still = await get(cluster, f"/api/v1/namespaces/{namespace}/configmaps/shared")
    assert still is not None and still["metadata"]["uid"] == live["metadata"]["uid"]
    print("objects wrongly deleted: 0")

    async def touch() -> None:  # the counter is not blind: a hand edit is one change
        await anyio.sleep(1)
        await cluster.request(
            "PATCH",
            f"/api/v1/namespaces/{namespace}/configmaps/shared",
            body={"data": {"touched": "yes"}},
            content_type="application/merge-patch+json",
        )

    async with anyio.create_task_group() as tg:
        tg.start_soon(touch)
        seen = await watched_changes(
            cluster, f"/api/v1/namespaces/{namespace}/configmaps", seconds=3
        )
    assert seen == {"MODIFIED": 1}


async def test_two_apps_share_a_created_namespace_without_a_write_loop(
    cluster: apply.Cluster,
) -> None:
    name = unique("shared-ns")
    ns = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "annotations": {plan.SHARED_MARK_ANNOTATION: "createNamespace"}},
    }
    first = AppSync(name=unique("alpha"), namespace=name, prune=PRUNE)
    second = AppSync(name=unique("beta"), namespace=name, prune=PRUNE)
    rendered_a = RenderedSet.of([ns, configmap("a", name)])
    rendered_b = RenderedSet.of([ns, configmap("b", name)])
    a = await sync(cluster, first, rendered_a, revision="r1")
    b = await sync(cluster, second, rendered_b, revision="r1")
    assert a.in_sync and b.in_sync, (a.problems(), b.problems())
    path = f"/api/v1/namespaces/{name}"
    live = await get(cluster, path)
    assert live is not None and set(plan.owners_of(live).values()) == {a.tracking, b.tracking}

    healed, writes = await _run_with_self_heal(
        cluster,
        [(first, rendered_a), (second, rendered_b)],
        WINDOW,
        watch="/api/v1/namespaces",
        field_selector=f"metadata.name={name}",
    )
    for app, rendered in ((first, rendered_a), (second, rendered_b)):
        again = await sync(cluster, app, rendered, revision="r1")
        assert again.changes.keys(Outcome.UNCHANGED) >= {ObjectKey("", "Namespace", "", name)}
    print(
        f"two apps, one createNamespace Namespace: {writes} writes in {WINDOW:.0f}s "
        f"({writes * 60 / WINDOW:.1f}/min)"
    )
    assert writes == 0 and healed == []

    # alpha no longer asks for the Namespace: it releases its owner mark, beta keeps the Namespace
    left = await sync(cluster, first, RenderedSet.of([configmap("a", name)]), revision="r2")
    assert left.changes.keys(Outcome.RELEASED) == {ObjectKey("", "Namespace", "", name)}
    live = await get(cluster, path)
    assert live is not None and "deletionTimestamp" not in live["metadata"]
    assert set(plan.owners_of(live).values()) == {b.tracking}
    assert await get(cluster, f"{path}/configmaps/b") is not None

    last = await sync(cluster, second, RenderedSet.of([configmap("b", name)]), revision="r2")
    assert last.changes.keys(Outcome.PRUNED) == {ObjectKey("", "Namespace", "", name)}
    print("objects wrongly deleted: 0 (the Namespace went with its last owner)")
