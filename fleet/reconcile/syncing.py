"""Sync one app instance on one cluster: a short ordered list of steps, each small.

1. read the instance's inventory from the cluster;
2. resolve the scope of each desired kind (cached discovery), prepare the desired objects (with
   the instance's tracking id) and check them against the app's project (pure, no write yet);
3. tell whether the desired commit descends from the one last applied (`descends`): a rewind
   holds the prunes it causes until consent;
4. read the live objects of the desired set and of the inventory;
5. plan (pure): ownership (conflicts, adoption), create / update / unchanged, and prune, release
   or keep each object that left, with the prune safety rules;
6. record the inventory grown by any new object *before* creating it, so a crash never leaks one;
7. apply stage by stage (CRDs, Namespaces, cluster-scoped, namespaced) with the instance's own
   field manager; creations are never forced; unchanged objects are not written at all;
8. prune, then release, in reverse order;
9. record the final inventory (desired + blocked + failed prunes, with uids and adoption), only
   if it changed; while a rewind's prunes are held, the revision recorded stays the old one;
10. assess health from the live objects (re-read only those just written).

A render failure (``rendered=None``) stops after step 5: nothing is applied or pruned. A source
repository the project does not allow stops at step 2 with a :class:`~fleet.errors.StalledError`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field

from fleet import apply, plan
from fleet.config.projects import Project
from fleet.errors import StalledError
from fleet.health import Health, assess, worst
from fleet.plan import projects
from fleet.reconcile.reading import ApiReader, Reader
from fleet.types import ClusterRef, Manifest, ObjectKey, RenderedSet

__all__ = ["AppSync", "Descends", "SyncResult", "assess_health", "sync"]

log = logging.getLogger(__name__)

Descends = Callable[[str, str], Awaitable[bool]]
"""``descends(old, new)``: whether commit `new` descends from (or is) commit `old`."""


@dataclass(frozen=True)
class AppSync:
    """What sync needs to know of an app instance: its name, destination and policies.

    `hub` is the hub's id (part of every tracking id: two hubs never take each other's objects);
    `cluster` the cluster's name as the hub knows it (default: the connected cluster's name).
    `adopt` takes over existing objects no fleet app owns; `delete_adopted` deletes them when they
    leave git instead of releasing them. `project` bounds what the app may write; `repo_url`
    and `cluster_labels` are what the project checks of the source and the destination.
    """

    name: str
    namespace: str = ""
    prune: plan.PrunePolicy = field(default_factory=plan.PrunePolicy)
    options: apply.ApplyOptions = field(default_factory=apply.ApplyOptions)
    ignore: tuple[plan.IgnoreRule, ...] = ()
    hub: str = "fleet"
    cluster: str = ""
    adopt: bool = False
    delete_adopted: bool = False
    project: Project | None = None
    repo_url: str = ""
    cluster_labels: Mapping[str, str] = field(default_factory=dict)

    @property
    def inventory_id(self) -> str:
        """Whose inventory this is on the cluster: the app *and* its destination namespace, so
        two instances of one app name (two hubs, or two cluster entries sharing an apiserver)
        never read or prune from each other's inventory."""
        if not self.namespace:
            return self.name
        return f"{self.name}-{hashlib.sha256(self.namespace.encode()).hexdigest()[:8]}"

    def tracking(self, cluster: str) -> str:
        """The tracking id of this instance on the cluster named `cluster` (unless set)."""
        return plan.tracking_id(
            hub=self.hub, app=self.name, cluster=self.cluster or cluster, namespace=self.namespace
        )

    def ownership(self, cluster: str) -> plan.Ownership:
        return plan.Ownership(
            tracking=self.tracking(cluster), adopt=self.adopt, delete_adopted=self.delete_adopted
        )

    def apply_options(self, cluster: str) -> apply.ApplyOptions:
        """The app's options with the instance's own field manager."""
        return dataclasses.replace(
            self.options, field_manager=plan.field_manager(self.tracking(cluster))
        )


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
    tracking: str = ""

    @property
    def in_sync(self) -> bool:
        """THE truth of "the last sync succeeded": every desired object applied or unchanged,
        none in conflict or refused by the project, and no prune refused, failed or held."""
        return self.changes.settled and self.plan.refused is None and not self.plan.blocked

    @property
    def verdict(self) -> str:
        """One word for the board, history and metrics: ``synced`` exactly when `in_sync`, else
        the worst of ``failed`` (a write the server refused), ``conflict`` (an object that is
        not this app's), ``refused`` (outside the project), ``held`` (a prune a guard holds)."""
        if self.in_sync:
            return "synced"
        outcomes = {c.outcome for c in self.changes.changes}
        for outcome, word in (
            (apply.Outcome.FAILED, "failed"),
            (apply.Outcome.CONFLICT, "conflict"),
            (apply.Outcome.REFUSED, "refused"),
        ):
            if outcome in outcomes:
                return word
        return "held"

    @property
    def rewound(self) -> str | None:
        """ "rewound from X to Y" when the desired commit does not descend from the applied one."""
        return self.plan.rewound

    @property
    def wrote(self) -> bool:
        """Whether this sync changed anything in the cluster (an object written or deleted)."""
        return any(c.outcome in _WRITES for c in self.changes.changes)

    def problems(self) -> list[str]:
        """One sentence per thing an operator must look at: object, cause, what to do."""
        return self.changes.problems(rewound=self.plan.rewound)


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


def _entries(inventory: apply.Inventory | None) -> dict[ObjectKey, plan.Entry]:
    if inventory is None:
        return {}
    return {
        key: plan.Entry(
            api_version,
            inventory.record(key).uid,
            inventory.record(key).adopted,
            inventory.record(key).shared,
        )
        for key, api_version in inventory.entries.items()
    }


async def _write_inventory(
    cluster: apply.Cluster,
    app: AppSync,
    entries: Mapping[ObjectKey, plan.Entry],
    *,
    previous: apply.Inventory | None,
    revision: str,
    digest: str,
) -> tuple[apply.Inventory, int]:
    ordered = dict(sorted(entries.items()))
    inventory = apply.Inventory(
        app=app.inventory_id,
        entries={k: e.api_version for k, e in ordered.items()},
        revision=revision,
        digest=digest,
        records={
            k: apply.Record(uid=e.uid, adopted=e.adopted, shared=e.shared)
            for k, e in ordered.items()
            if e.uid or e.adopted or e.shared
        },
    )
    manager = app.apply_options(cluster.name).field_manager
    written = await apply.write_inventory(
        cluster, inventory, previous=previous, field_manager=manager
    )
    return (inventory, 1) if written else (previous or inventory, 0)


async def _rewind(
    previous: apply.Inventory | None, revision: str, descends: Descends | None
) -> str | None:
    old = previous.revision if previous else ""
    if descends is None or not old or not revision or old == revision:
        return None
    if await descends(old, revision):
        return None
    return f"rewound from {old[:12]} to {revision[:12]}"


def _project_checks(
    app: AppSync,
    cluster: apply.Cluster,
    desired: Sequence[plan.DesiredObject],
    inventory: Mapping[ObjectKey, plan.Entry],
) -> tuple[list[plan.Blocked], dict[ObjectKey, str]]:
    """The desired objects the app's project refuses, and the inventory objects it does not let
    be pruned; raises StalledError when it refuses the app's source repository."""
    if app.project is None:
        return [], {}
    ref = ClusterRef(name=app.cluster or cluster.name, labels=dict(app.cluster_labels))
    reason = projects.source_refusal(app.project, app.repo_url)
    if reason:
        raise StalledError(f"app {app.name} on cluster {ref.name}: {reason}")
    refused = projects.refusals(app.project, desired, cluster=ref)
    return refused, projects.prune_refusals(app.project, inventory, cluster=ref)


async def sync(
    cluster: apply.Cluster,
    app: AppSync,
    rendered: RenderedSet | None,
    *,
    revision: str = "",
    dry_run: bool = False,
    descends: Descends | None = None,
    reader: Reader | None = None,
) -> SyncResult:
    """Make `cluster` match `rendered` for `app` (None: the render failed); see the module.

    `descends(old, new)` tells whether a commit descends from another (the app's mirror): given,
    a desired commit that does not descend from the applied one is a rewind. `reader` is where
    the inventory and live objects are read (:mod:`fleet.reconcile.reading`; default the API).
    """
    tracking = app.tracking(cluster.name)
    options = app.apply_options(cluster.name)
    reader = reader or ApiReader()  # the cluster's live caches when the hub has them warm
    previous = await reader.inventory(cluster, app.inventory_id)
    before = _entries(previous)
    desired: tuple[plan.DesiredObject, ...] | None = None
    refusals: list[plan.Blocked] = []
    holds: dict[ObjectKey, str] = {}
    rewound = None
    if rendered is not None:
        kinds = {(str(m.get("apiVersion", "")), str(m.get("kind", ""))) for m in rendered.objects}
        scopes = await apply.scopes(cluster, kinds)
        desired = plan.prepare(
            rendered.objects,
            app=app.name,
            namespace=app.namespace,
            scopes=scopes,
            tracking=tracking,
        )
        refusals, holds = _project_checks(app, cluster, desired, before)
        rewound = await _rewind(previous, revision, descends)
    refused_keys = {r.key for r in refusals}
    wanted = {
        d.key: d.api_version
        for d in desired or ()
        if d.problem is None and d.key not in refused_keys
    }
    live = await reader.live(
        cluster,
        {**{k: e.api_version for k, e in before.items()}, **wanted},
        selector=f"{plan.APP_LABEL}={app.name}",
    )
    the_plan = plan.make_plan(
        desired,
        app=app.name,
        inventory=before,
        live=live,
        policy=app.prune,
        ignore=app.ignore,
        ownership=app.ownership(cluster.name),
        refusals=refusals,
        prune_holds=holds,
        rewound=rewound,
    )
    digest = rendered.digest if rendered else (previous.digest if previous else "")
    result = _Result(
        app=app, cluster=cluster, plan=the_plan, revision=revision, digest=digest, tracking=tracking
    )
    if desired is None or dry_run:
        return await result.finish(live, written=set())

    new = {s.key: s.entry or plan.Entry(s.api_version) for s in the_plan.applies}
    if set(new) - set(before):
        previous, count = await _write_inventory(
            cluster,
            app,
            {**before, **{k: e for k, e in new.items() if k not in before}},
            previous=previous,
            revision=previous.revision if previous else "",
            digest=previous.digest if previous else "",
        )
        result.inventory_writes += count
    for _, steps in the_plan.stages():
        result.changes.extend(await _apply_stage(cluster, steps, options))
    for stage in sorted({s.stage for s in the_plan.prunes}, reverse=True):
        doomed = [s for s in the_plan.prunes if s.stage == stage]
        result.changes.extend(await apply.delete_objects(cluster, doomed))
    if the_plan.releases:
        marks = [
            _marks(s, tracking=tracking, manager=options.field_manager) for s in the_plan.releases
        ]
        result.changes.extend(await apply.release_objects(cluster, the_plan.releases, marks=marks))
    leaving = {s.key for s in (*the_plan.prunes, *the_plan.releases)}
    failed = {
        c.key for c in result.changes if c.outcome is apply.Outcome.FAILED and c.key in leaving
    }
    creations = {s.key for s in the_plan.applies if s.op is plan.Op.CREATE}
    lost = {
        c.key for c in result.changes if c.outcome is apply.Outcome.CONFLICT and c.key in creations
    }
    held = any(rewound and b.reason.startswith(rewound) for b in the_plan.blocked)
    _, count = await _write_inventory(
        cluster,
        app,
        the_plan.inventory_after(
            failed, lost=lost, uids={c.key: c.uid for c in result.changes if c.uid}
        ),
        previous=previous,
        revision=previous.revision if held and previous else revision,
        digest=digest,
    )
    result.inventory_writes += count
    written = {c.key for c in result.changes if c.outcome is not apply.Outcome.UNCHANGED}
    return await result.finish(live, written=written)


async def _apply_stage(
    cluster: apply.Cluster, steps: Sequence[plan.Step], options: apply.ApplyOptions
) -> list[apply.Change]:
    """Apply one stage's writes: creations never forced, this instance's objects as the app
    says; an adoption that went through is reported as such."""
    writes = [s for s in steps if s.op is not plan.Op.UNCHANGED]
    polite = dataclasses.replace(options, force=False)
    changes = await apply.apply_objects(cluster, [s for s in writes if not s.force], options=polite)
    changes += await apply.apply_objects(cluster, [s for s in writes if s.force], options=options)
    adopted = {s.key for s in writes if s.op is plan.Op.ADOPT}
    return [
        dataclasses.replace(c, outcome=apply.Outcome.ADOPTED, reason="taken over (adopt)")
        if c.key in adopted and c.outcome in (apply.Outcome.CONFIGURED, apply.Outcome.CREATED)
        else c
        for c in changes
    ]


def _marks(step: plan.Step, *, tracking: str, manager: str) -> apply.Marks:
    """What a release takes off: this instance's owner mark of a shared object, or all of
    fleet's marks from an adopted one; the instance's managed-fields entries either way."""
    if step.entry is not None and step.entry.shared:
        return apply.Marks(annotations=(plan.owner_key(tracking),), managers=(manager,))
    return apply.Marks(
        labels=(plan.MANAGED_BY_LABEL, plan.APP_LABEL),
        annotations=(plan.DIGEST_ANNOTATION, plan.TRACKING_ANNOTATION),
        managers=(manager,),
    )


@dataclass
class _Result:
    """A sync result being gathered; `finish` adds the plan's own entries and health."""

    app: AppSync
    cluster: apply.Cluster
    plan: plan.Plan
    revision: str
    digest: str
    tracking: str
    changes: list[apply.Change] = field(default_factory=list)
    inventory_writes: int = 0

    async def finish(
        self, live: Mapping[ObjectKey, Manifest], *, written: set[ObjectKey]
    ) -> SyncResult:
        changes = apply.ChangeSet(
            tuple(sorted([*self.changes, *_planned(self.plan, self.changes)], key=lambda c: c.key))
        )
        targets = {s.key: s.api_version for s in self.plan.applies}
        fresh = {k: v for k, v in live.items() if k not in written}
        overall, each = await assess_health(self.cluster, targets, live=fresh)
        log.info(
            "event=sync app=%s cluster=%s revision=%s %s health=%s refused=%s rewound=%s",
            self.app.name,
            self.cluster.name,
            self.revision or "-",
            " ".join(f"{k}={v}" for k, v in changes.counts().items()),
            overall.status,
            _quoted(self.plan.refused),
            _quoted(self.plan.rewound),
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
            tracking=self.tracking,
        )


_WRITES = frozenset(
    {
        apply.Outcome.CREATED,
        apply.Outcome.CONFIGURED,
        apply.Outcome.ADOPTED,
        apply.Outcome.PRUNED,
        apply.Outcome.RELEASED,
    }
)


def _quoted(value: str | None) -> str:
    """A free-text value as one ``key=value`` token of a log line."""
    return "-" if not value else '"' + value.replace('"', "'") + '"'


def _planned(the_plan: plan.Plan, done: Sequence[apply.Change]) -> list[apply.Change]:
    """The changes the plan decided without a write: unchanged, conflicts, kept, refused,
    held prunes, invalid objects, objects already gone."""
    seen = {c.key for c in done}
    extra = [
        apply.Change(s.key, apply.Outcome.UNCHANGED, s.reason, uid=s.entry.uid if s.entry else "")
        for s in the_plan.applies
        if s.op is plan.Op.UNCHANGED and s.key not in seen
    ]
    extra += [apply.Change(c.key, apply.Outcome.CONFLICT, c.reason) for c in the_plan.conflicts]
    extra += [apply.Change(k.key, apply.Outcome.KEPT, k.reason) for k in the_plan.kept]
    extra += [apply.Change(r.key, apply.Outcome.REFUSED, r.reason) for r in the_plan.refusals]
    extra += [apply.Change(b.key, apply.Outcome.SKIPPED, b.reason) for b in the_plan.blocked]
    extra += [apply.Change(d.key, apply.Outcome.FAILED, d.problem or "") for d in the_plan.invalid]
    extra += [apply.Change(k, apply.Outcome.PRUNED, "already gone") for k in the_plan.gone]
    return extra
