"""Sync one app on one cluster: a short ordered list of steps, each small.

1. read the app's inventory from the cluster;
2. resolve the scope of each desired kind (cached discovery) and prepare the desired objects;
3. read the live objects of the desired set and of the inventory;
4. plan (pure): create / update / unchanged / prune, with the prune safety rules;
5. record the inventory grown by any new object *before* creating it, so a crash never leaks one;
6. apply stage by stage (CRDs, Namespaces, cluster-scoped, namespaced), objects that are
   unchanged are not written at all;
7. prune, in reverse order;
8. record the final inventory (desired + blocked + failed prunes), only if it changed;
9. assess health from the live objects (re-read only those just written).

A render failure (``rendered=None``) stops after step 4: nothing is applied or pruned.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

from fleet import apply, plan
from fleet.health import Health, assess, worst
from fleet.types import Manifest, ObjectKey, RenderedSet

__all__ = ["AppSync", "SyncResult", "assess_health", "sync"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AppSync:
    """What sync needs to know of an app: its name, destination namespace and policies."""

    name: str
    namespace: str = ""
    prune: plan.PrunePolicy = field(default_factory=plan.PrunePolicy)
    options: apply.ApplyOptions = field(default_factory=apply.ApplyOptions)
    ignore: tuple[plan.IgnoreRule, ...] = ()

    @property
    def inventory_id(self) -> str:
        """Whose inventory this is on the cluster: the app *and* its destination namespace, so
        two instances of one app name (two hubs, or two cluster entries sharing an apiserver)
        never read or prune from each other's inventory."""
        if not self.namespace:
            return self.name
        return f"{self.name}-{hashlib.sha256(self.namespace.encode()).hexdigest()[:8]}"


@dataclass(frozen=True)
class SyncResult:
    """The outcome of one sync: sync status (the change set) and health, kept apart."""

    app: str
    cluster: str
    revision: str
    digest: str
    plan: plan.Plan
    changes: apply.ChangeSet
    health: Health
    object_health: Mapping[ObjectKey, Health]
    inventory_writes: int = 0

    @property
    def in_sync(self) -> bool:
        """Every desired object applied or unchanged, and no prune pending."""
        return self.changes.ok and self.plan.refused is None and not self.plan.blocked


async def assess_health(
    cluster: apply.Cluster,
    entries: Mapping[ObjectKey, str],
    *,
    live: Mapping[ObjectKey, Manifest] | None = None,
) -> tuple[Health, dict[ObjectKey, Health]]:
    """Worst-of health of `entries` (key -> apiVersion); `live` spares reading those objects."""
    known = dict(live or {})
    missing = {k: v for k, v in entries.items() if k not in known}
    known.update(await apply.read_live(cluster, missing))
    each = {key: assess(key.group, key.kind, known.get(key)) for key in entries}
    return worst(each.values()), each


async def _write_inventory(
    cluster: apply.Cluster,
    app: AppSync,
    entries: Mapping[ObjectKey, str],
    *,
    previous: apply.Inventory | None,
    revision: str,
    digest: str,
) -> tuple[apply.Inventory, int]:
    inventory = apply.Inventory(
        app=app.inventory_id,
        entries=dict(sorted(entries.items())),
        revision=revision,
        digest=digest,
    )
    written = await apply.write_inventory(
        cluster, inventory, previous=previous, field_manager=app.options.field_manager
    )
    return (inventory, 1) if written else (previous or inventory, 0)


async def sync(
    cluster: apply.Cluster,
    app: AppSync,
    rendered: RenderedSet | None,
    *,
    revision: str = "",
    dry_run: bool = False,
) -> SyncResult:
    """Make `cluster` match `rendered` for `app` (None: the render failed); see the module."""
    previous = await apply.read_inventory(cluster, app.inventory_id)
    before = dict(previous.entries) if previous else {}
    desired: tuple[plan.DesiredObject, ...] | None = None
    if rendered is not None:
        kinds = {(str(m.get("apiVersion", "")), str(m.get("kind", ""))) for m in rendered.objects}
        scopes = await apply.scopes(cluster, kinds)
        desired = plan.prepare(
            rendered.objects, app=app.name, namespace=app.namespace, scopes=scopes
        )
    wanted = {d.key: d.api_version for d in desired or () if d.problem is None}
    live = await apply.read_live(
        cluster, {**before, **wanted}, selector=f"{plan.APP_LABEL}={app.name}"
    )
    the_plan = plan.make_plan(
        desired, app=app.name, inventory=before, live=live, policy=app.prune, ignore=app.ignore
    )
    digest = rendered.digest if rendered else (previous.digest if previous else "")
    result = _Result(app=app, cluster=cluster, plan=the_plan, revision=revision, digest=digest)
    if desired is None or dry_run:
        return await result.finish(live, written=set())

    if set(wanted) - set(before):
        previous, count = await _write_inventory(
            cluster,
            app,
            {**before, **wanted},
            previous=previous,
            revision=previous.revision if previous else "",
            digest=previous.digest if previous else "",
        )
        result.inventory_writes += count
    for _, steps in the_plan.stages():
        writes = [s for s in steps if s.op is not plan.Op.UNCHANGED]
        result.changes.extend(await apply.apply_objects(cluster, writes, options=app.options))
    for stage in sorted({s.stage for s in the_plan.prunes}, reverse=True):
        doomed = [s for s in the_plan.prunes if s.stage == stage]
        result.changes.extend(await apply.delete_objects(cluster, doomed))
    failed = {c.key for c in result.changes if c.outcome is apply.Outcome.FAILED}
    _, count = await _write_inventory(
        cluster,
        app,
        the_plan.inventory_after(failed),
        previous=previous,
        revision=revision,
        digest=digest,
    )
    result.inventory_writes += count
    written = {c.key for c in result.changes if c.outcome is not apply.Outcome.UNCHANGED}
    return await result.finish(live, written=written)


@dataclass
class _Result:
    """A sync result being gathered; `finish` adds the plan's own entries and health."""

    app: AppSync
    cluster: apply.Cluster
    plan: plan.Plan
    revision: str
    digest: str
    changes: list[apply.Change] = field(default_factory=list)
    inventory_writes: int = 0

    async def finish(
        self, live: Mapping[ObjectKey, Manifest], *, written: set[ObjectKey]
    ) -> SyncResult:
        done = {c.key for c in self.changes}
        extra = [
            apply.Change(s.key, apply.Outcome.UNCHANGED, s.reason)
            for s in self.plan.applies
            if s.op is plan.Op.UNCHANGED and s.key not in done
        ]
        extra += [apply.Change(b.key, apply.Outcome.SKIPPED, b.reason) for b in self.plan.blocked]
        extra += [
            apply.Change(d.key, apply.Outcome.FAILED, d.problem or "") for d in self.plan.invalid
        ]
        extra += [apply.Change(k, apply.Outcome.PRUNED, "already gone") for k in self.plan.gone]
        changes = apply.ChangeSet(tuple(sorted([*self.changes, *extra], key=lambda c: c.key)))
        targets = {s.key: s.api_version for s in self.plan.applies}
        fresh = {k: v for k, v in live.items() if k not in written}
        overall, each = await assess_health(self.cluster, targets, live=fresh)
        log.info(
            "event=sync app=%s cluster=%s revision=%s %s health=%s refused=%r",
            self.app.name,
            self.cluster.name,
            self.revision,
            " ".join(f"{k}={v}" for k, v in changes.counts().items()),
            overall.status,
            self.plan.refused,
        )
        return SyncResult(
            app=self.app.name,
            cluster=self.cluster.name,
            revision=self.revision,
            digest=self.digest,
            plan=self.plan,
            changes=changes,
            health=overall,
            object_health=each,
            inventory_writes=self.inventory_writes,
        )
