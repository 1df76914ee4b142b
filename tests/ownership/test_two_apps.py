"""Two apps, one object: one stable conflict, a bounded number of writes, no prune of the
other's object; two apps with ``createNamespace`` on one namespace share it without a write loop.

Against a real kit cluster. Each app runs as the hub's reconciler runs it on a cell
(:mod:`fleet.hub.cells`): a sync that reads through the cell and holds
:meth:`~fleet.hub.cells.Cells.syncing` while it writes, then a watch of what it applied; a drift
the cell reports is healed by a sync (selfHeal), and every 2 s each target is resynced unless its
last sync was in sync and the cell's cache shows it unchanged (the reconciler's free no-op). A
write by one app that the other took for drift would start a loop, as it once did; a watch counts
every change the server makes to the objects involved for 20 s.
"""

from __future__ import annotations

import anyio
import pytest

from fleet import apply, plan
from fleet.hub.cells import Cells, Expected
from fleet.reconcile.syncing import AppSync, SyncResult, sync
from fleet.types import ObjectKey, RenderedSet
from tests.hub.hubkit import until
from tests.ownership.kit import configmap, get, unique, watched_changes

pytestmark = pytest.mark.anyio

Outcome = apply.Outcome
WINDOW = 20.0
RESYNC = 2.0
PRUNE = plan.PrunePolicy(consent=True, prune_namespaces=True)
ENTRY = "two-apps"  # the cluster entry the cell runs on
_NOT_APPLIED = {Outcome.FAILED, Outcome.CONFLICT, Outcome.REFUSED, Outcome.SKIPPED}


def _expected(result: SyncResult, app: AppSync) -> dict[ObjectKey, Expected]:
    """What the sync left each object as (the reconciler hands its cell the same)."""
    failed = {c.key for c in result.changes.changes if c.outcome in _NOT_APPLIED}
    return {
        step.key: Expected(
            api_version=step.api_version,
            manifest=step.manifest,
            ignore=plan.pointers_for(app.ignore, step.key),
        )
        for step in result.plan.applies
        if step.key not in failed
    }


class _OnCell:
    """Apps synced and watched through one cell, as the hub does it (see the module)."""

    def __init__(self, cluster: apply.Cluster, apps: list[tuple[AppSync, RenderedSet]]) -> None:
        self.cluster = cluster
        self.apps = {(ENTRY, app.name): (app, rendered) for app, rendered in apps}
        self.drifts: list[tuple[tuple[str, str], int]] = []  # what the cell reported
        self.heals: list[SyncResult] = []  # the syncs drift started
        self.last: dict[tuple[str, str], SyncResult] = {}
        self.locks = {key: anyio.Lock() for key in self.apps}  # one sync of a key at a time
        self.cells: Cells | None = None
        self.group: anyio.abc.TaskGroup | None = None

    async def sync(self, key: tuple[str, str]) -> SyncResult:
        assert self.cells is not None
        app, rendered = self.apps[key]
        async with self.locks[key]:
            return await self._sync(key, app, rendered)

    async def _sync(self, key: tuple[str, str], app: AppSync, rendered: RenderedSet) -> SyncResult:
        assert self.cells is not None
        with self.cells.syncing(key):  # its own writes landing are not drift
            result = await sync(
                self.cluster, app, rendered, revision="r1", reader=self.cells.reader(ENTRY)
            )
            self.cells.watch(key, tracking=result.tracking, expected=_expected(result, app))
        self.last[key] = result
        return result

    def drifted(self, key: tuple[str, str], objects: int) -> None:
        self.drifts.append((key, objects))
        assert self.group is not None

        async def heal() -> None:
            self.heals.append(await self.sync(key))

        self.group.start_soon(heal)

    async def resync(self) -> None:
        assert self.cells is not None
        while True:
            await anyio.sleep(RESYNC)
            for key in self.apps:
                if not (self.last[key].in_sync and self.cells.in_sync(key) is True):
                    await self.sync(key)


async def _run_with_self_heal(
    cluster: apply.Cluster,
    apps: list[tuple[AppSync, RenderedSet]],
    seconds: float,
    *,
    watch: str,
    field_selector: str = "",
    edit: str = "",
) -> tuple[list[tuple[str, str]], int, _OnCell]:
    """The apps on a cell with self-heal and resyncs for `seconds`: the targets the cell found
    drifted meanwhile and the changes the server made to the objects of collection `watch`
    (counted by a watch). Then, when `edit` names an object, a hand edit of its ``data.owner``
    (the drift path is not blind: it must be healed)."""
    run = _OnCell(cluster, apps)
    async with anyio.create_task_group() as tg:
        run.group, run.cells = tg, Cells(group=tg, on_drift=run.drifted)
        run.cells.open(ENTRY, cluster)
        cells = run.cells
        await until(lambda: cells.reader(ENTRY) is not None, limit=60)  # its caches run
        for key in run.apps:
            await run.sync(key)
        tg.start_soon(run.resync)
        seen = await watched_changes(cluster, watch, seconds=seconds, field_selector=field_selector)
        drifted = [key for key, _ in run.drifts]
        if edit:
            await cluster.request(
                "PATCH",
                edit,
                query=[("fieldManager", "kubectl-edit")],
                body={"data": {"owner": "by hand"}},
                content_type="application/merge-patch+json",
            )
            await until(lambda: bool(run.heals), limit=60)
        tg.cancel_scope.cancel()
    return drifted, sum(seen.values()), run


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

    path = f"/api/v1/namespaces/{namespace}/configmaps/shared"
    drifted, writes, run = await _run_with_self_heal(
        cluster,
        [(first, rendered_a), (second, rendered_b)],
        WINDOW,
        watch=f"/api/v1/namespaces/{namespace}/configmaps",
        edit=path,
    )
    per_minute = writes * 60 / WINDOW
    print(
        f"two apps, one object: {writes} writes in {WINDOW:.0f}s ({per_minute:.1f}/min), "
        f"{len(drifted)} drifts"
    )
    assert writes == 0 and drifted == [], "no fight: the second app never writes the object"
    # the hand edit after the window is the owner's drift alone, healed by the owner
    assert {key for key, _ in run.drifts} == {(ENTRY, owner_app.name)}
    assert all(heal.tracking == winner.tracking for heal in run.heals)
    live = await get(cluster, path)
    assert live is not None and live["data"]["owner"] != "by hand"
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

    drifted, writes, _ = await _run_with_self_heal(
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
    assert writes == 0 and drifted == []

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
