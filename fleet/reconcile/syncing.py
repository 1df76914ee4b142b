"""Sync one app instance on one cluster: a short ordered list of steps, each small.

1. read the instance's inventory from the cluster;
2. resolve the scope of each desired kind (cached discovery), prepare the desired objects (with
   the instance's tracking id) and check them against the app's project (pure, no write yet);
   hooks (:mod:`fleet.plan.hooks`) are set apart: never in the inventory, never pruned;
3. tell whether the desired commit descends from the one last applied (`descends`): a rewind
   holds the prunes it causes until consent;
4. read the live objects of the desired set and of the inventory;
5. plan (pure): ownership (conflicts, adoption), create / update / unchanged, and prune, release
   or keep each object that left, with the prune safety rules; then the sync's waves
   (:mod:`fleet.plan.waves`: PreSync hooks, Sync waves, PostSync hooks), a bad sync-wave
   refused before any write;
6. record the inventory grown by any new object *before* creating it, so a crash never leaks one;
7. run the waves (:mod:`fleet.reconcile.waving`) with the instance's own field manager, each
   gated on the health of the one before (read through the same reader, by the app's label);
   creations are never forced; unchanged objects are not written at all; hooks run only when
   the desired commit or set changed since the last sync that completed (a no-op resync runs
   none);
8. once the Sync waves are done: prune, then release, in reverse order; then the PostSync hooks;
   when anything failed, the SyncFail hooks;
9. record the final inventory (desired + blocked + failed or unreached prunes, with uids and
   adoption), only if it changed; while a rewind's prunes are held, or the waves stopped, the
   revision recorded stays the old one (so the next attempt runs the hooks again). In the hub,
   a record that only moves the revision (the same objects, held the same way) of an app
   without hooks is written behind, once the commit's wave is over
   (:mod:`fleet.reconcile.writebehind`);
10. assess health from the live objects: those just written as the server answered the write,
    the rest as read before it (re-read only a written object the answer did not carry).

Steps 6 to 9 give way to a newer commit (``superseded``, :mod:`fleet.reconcile.superseding`)
unless the sync runs hooks: they stop where they wait, the sync is stopped (never in sync), the
changes of the waves that ended are kept and every other write or prune is skipped with the
reason; no inventory is written (the entries of new objects were recorded at step 6, and the
revision stays the one last applied) and health is what was read, without more requests, so
the newer commit's sync starts at once. An inventory write is never cut in half: it is shielded
from the cancellation (at most ``INVENTORY_WRITE_LIMIT`` s), so the version it replaced is
recorded by the client.

A render failure (``rendered=None``) stops after step 5: nothing is applied or pruned. A source
repository the project does not allow stops at step 2 with a :class:`~fleet.errors.StalledError`.
A worker is held at most ``waves.sync_timeout`` seconds of waiting, plus ``waves.wave_timeout``
for the SyncFail hooks, plus the writes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field

import anyio

from fleet import apply, plan
from fleet.config.projects import Project
from fleet.errors import StalledError
from fleet.plan import hooks as plan_hooks
from fleet.plan import options as object_options
from fleet.plan import projects, waves
from fleet.reconcile import superseding, waving, writebehind
from fleet.reconcile.reading import ApiReader, Reader
from fleet.reconcile.results import Gathering, SyncResult, assess_health
from fleet.types import ClusterRef, ObjectKey, RenderedSet

__all__ = ["AppSync", "Descends", "SyncResult", "assess_health", "sync"]

log = logging.getLogger(__name__)

INVENTORY_WRITE_LIMIT = 30.0
"""Seconds an inventory write may hold off a cancellation (a newer commit, the hub's stop)."""

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
    waves: waving.WaveOptions = field(default_factory=waving.WaveOptions)

    @property
    def inventory_id(self) -> str:
        """Whose inventory this is on the cluster: the app instance, as its tracking id names it
        (hub, cluster entry, destination namespace), so two instances of one app name (two hubs,
        or two cluster entries sharing an apiserver, aliases and tunnels) never read, overwrite or
        prune from each other's inventory."""
        instance = "/".join((self.hub, self.cluster, self.namespace))
        if instance == "fleet//":
            return self.name
        return f"{self.name}-{hashlib.sha256(instance.encode()).hexdigest()[:8]}"

    @property
    def selector(self) -> str:
        """The label selector of the app's objects (reads list by it)."""
        return f"{plan.APP_LABEL}={self.name}"

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
    behind: writebehind.WriteBehind | None,
    hold: bool = False,
) -> tuple[apply.Inventory, int]:
    """Record the inventory of `entries` over `previous` unless it equals it; when only the
    revision moves and `hold`, `behind` holds it instead. The inventory as the sync now knows it
    and the number of writes made (0 or 1)."""
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
    if behind is not None and hold and writebehind.only_revision_moves(inventory, previous):
        assert previous is not None
        behind.hold(cluster, inventory, previous=previous, field_manager=manager)
        return dataclasses.replace(inventory, resource_version=previous.resource_version), 0
    # shielded: a write that went out is seen through, so the client records the version it
    # replaced (Cluster.inventory_versions); cancelled mid-way, the next sync reading a lagging
    # cache would send the old version and meet a spurious InventoryConflict
    with anyio.CancelScope(shield=True), anyio.fail_after(INVENTORY_WRITE_LIMIT):
        written = await apply.write_inventory(
            cluster, inventory, previous=previous, field_manager=manager
        )
    if written is None:
        return previous or inventory, 0
    if behind is not None:  # what it held for the target is older than this
        behind.superseded(cluster.name, app.inventory_id)
    return written, 1


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


@dataclass(frozen=True)
class _Desired:
    """The prepared desired set: ordinary objects, hooks, the project's refusals and holds."""

    desired: tuple[plan.DesiredObject, ...] | None = None
    hooks: tuple[plan_hooks.Hook, ...] = ()
    refusals: list[plan.Blocked] = field(default_factory=list)
    holds: dict[ObjectKey, str] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()


async def _desired(
    cluster: apply.Cluster,
    app: AppSync,
    rendered: RenderedSet,
    *,
    before: Mapping[ObjectKey, plan.Entry],
    tracking: str,
) -> _Desired:
    """Prepare the rendered objects, check them against the project, set the hooks apart."""
    kinds = {(str(m.get("apiVersion", "")), str(m.get("kind", ""))) for m in rendered.objects}
    scopes = await apply.scopes(cluster, kinds)
    prepared = plan.prepare(
        rendered.objects, app=app.name, namespace=app.namespace, scopes=scopes, tracking=tracking
    )
    refusals, holds = _project_checks(app, cluster, prepared, before)
    refused = {r.key for r in refusals}
    desired, hooks, notes = plan_hooks.split(prepared)
    options = (w for d in prepared for w in object_options.options_of(d.manifest).warnings)
    return _Desired(
        desired=desired,
        hooks=tuple(h for h in hooks if h.key not in refused),
        refusals=refusals,
        holds=holds,
        warnings=(*notes, *options),
    )


async def _sync_failed(
    cluster: apply.Cluster,
    hooks: Sequence[plan_hooks.Hook],
    *,
    run: waving.Run,
    options: apply.ApplyOptions,
    timing: waving.WaveOptions,
    reader: Reader,
    selector: str,
) -> None:
    """Run the SyncFail hooks, with a wait of their own (the sync's may be spent)."""
    spare = waving.Run(deadline=time.monotonic() + timing.wave_timeout)
    failing = await waving.run_waves(
        cluster,
        waves.failure_waves(hooks),
        options=options,
        timing=timing,
        run=spare,
        reader=reader,
        selector=selector,
    )
    run.hooks += failing.hooks
    run.health.update(failing.health)


async def sync(
    cluster: apply.Cluster,
    app: AppSync,
    rendered: RenderedSet | None,
    *,
    revision: str = "",
    dry_run: bool = False,
    descends: Descends | None = None,
    reader: Reader | None = None,
    superseded: superseding.Superseded | None = None,
    behind: writebehind.WriteBehind | None = None,
) -> SyncResult:
    """Make `cluster` match `rendered` for `app` (None: the render failed); see the module.

    `descends(old, new)` tells whether a commit descends from another (the app's mirror): given,
    a desired commit that does not descend from the applied one is a rewind. `reader` is where
    the inventory and live objects are read (:mod:`fleet.reconcile.reading`; default the API).
    `superseded` (:mod:`fleet.reconcile.superseding`) stops the writes once a newer commit is
    known: the result is then stopped (not in sync), what was not finished skipped.
    `behind` (:mod:`fleet.reconcile.writebehind`, the hub's) holds an inventory record that only
    moves the revision, to be written once the wave is over (none: written at once).
    """
    running = behind.syncing(cluster.name, app.inventory_id) if behind else contextlib.nullcontext()
    async with running:
        return await _sync(
            cluster,
            app,
            rendered,
            revision=revision,
            dry_run=dry_run,
            descends=descends,
            reader=reader,
            superseded=superseded,
            behind=behind,
        )


async def _sync(
    cluster: apply.Cluster,
    app: AppSync,
    rendered: RenderedSet | None,
    *,
    revision: str,
    dry_run: bool,
    descends: Descends | None,
    reader: Reader | None,
    superseded: superseding.Superseded | None,
    behind: writebehind.WriteBehind | None,
) -> SyncResult:
    tracking = app.tracking(cluster.name)
    reader = reader or ApiReader()  # the cluster's live caches when the hub has them warm
    previous = await reader.inventory(cluster, app.inventory_id)
    if behind is not None:  # with the record held for it: what the cluster is about to say
        previous = behind.applied(cluster.name, app.inventory_id, previous)
    before = _entries(previous)
    found = _Desired()
    rewound = None
    if rendered is not None:
        found = await _desired(cluster, app, rendered, before=before, tracking=tracking)
        rewound = await _rewind(previous, revision, descends)
    desired, hooks, refusals = found.desired, found.hooks, found.refusals
    refused_keys = {r.key for r in refusals}
    wanted = {
        d.key: d.api_version
        for d in desired or ()
        if d.problem is None and d.key not in refused_keys
    }
    live = await reader.live(
        cluster,
        {**{k: e.api_version for k, e in before.items()}, **wanted},
        selector=app.selector,
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
        prune_holds=found.holds,
        rewound=rewound,
    )
    digest = rendered.digest if rendered else (previous.digest if previous else "")
    fresh = previous is None or previous.revision != revision or previous.digest != digest
    run_hooks = rendered is not None and not dry_run and fresh
    order = waves.schedule(the_plan.applies, hooks, run_hooks=run_hooks)
    result = Gathering(
        app=app.name,
        cluster=cluster,
        plan=the_plan,
        revision=revision,
        digest=digest,
        tracking=tracking,
        warnings=found.warnings,
        ignored=frozenset(
            b.key
            for b in the_plan.blocked
            if b.key in live and object_options.options_of(live[b.key]).ignore_extraneous
        ),
    )
    if desired is None or dry_run:
        return await result.finish(live, written=set())

    run = waving.Run(deadline=time.monotonic() + app.waves.sync_timeout)
    outcome = await superseding.unless_superseded(
        lambda: _write(
            cluster,
            app,
            the_plan,
            result,
            run=run,
            order=order,
            hooks=hooks if run_hooks else (),
            previous=previous,
            before=before,
            rewound=rewound,
            reader=reader,
            behind=behind,
            hold=not hooks,  # whether hooks ran is said at once
        ),
        superseded=None if run_hooks and hooks else superseded,
    )
    if outcome.superseded is not None:
        _stopped_by(outcome.superseded, the_plan, result, run=run)
        return await result.finish(live, written=set())  # health as read: no more requests
    answered = {c.key: c.live for c in result.changes if c.live is not None}
    written = {c.key for c in result.changes if c.outcome is not apply.Outcome.UNCHANGED}
    return await result.finish({**live, **answered}, written=written - answered.keys())


async def _write(
    cluster: apply.Cluster,
    app: AppSync,
    the_plan: plan.Plan,
    result: Gathering,
    *,
    run: waving.Run,
    order: Sequence[waves.Wave],
    hooks: Sequence[plan_hooks.Hook],
    previous: apply.Inventory | None,
    before: Mapping[ObjectKey, plan.Entry],
    rewound: str | None,
    reader: Reader,
    behind: writebehind.WriteBehind | None,
    hold: bool,
) -> None:
    """Steps 6 to 9 (see the module): every write of the sync, gathered into `result`; `run`
    keeps the changes of each wave as it ends (what a superseded sync did is known). The final
    record, when it only moves the revision, is held by `behind` if `hold`."""
    options = app.apply_options(cluster.name)
    tracking = result.tracking
    new = {s.key: s.entry or plan.Entry(s.api_version) for s in the_plan.applies}
    if set(new) - set(before):
        previous, count = await _write_inventory(
            cluster,
            app,
            {**before, **{k: e for k, e in new.items() if k not in before}},
            previous=previous,
            revision=previous.revision if previous else "",
            digest=previous.digest if previous else "",
            behind=behind,
        )
        result.inventory_writes += count
    post = [w for w in order if w.phase is plan_hooks.Phase.POST_SYNC]
    await waving.run_waves(
        cluster,
        [w for w in order if w.phase is not plan_hooks.Phase.POST_SYNC],
        options=options,
        timing=app.waves,
        run=run,
        gate_last=bool(post),
        reader=reader,
        selector=app.selector,
    )
    unreached: set[ObjectKey] = set()
    if run.stopped is None:
        result.changes.extend(
            await _prune(cluster, the_plan, tracking=tracking, manager=options.field_manager)
        )
        await waving.run_waves(
            cluster,
            post,
            options=options,
            timing=app.waves,
            run=run,
            reader=reader,
            selector=app.selector,
        )
    else:
        unreached = {s.key for s in (*the_plan.prunes, *the_plan.releases)}
        result.changes += [
            apply.Change(k, apply.Outcome.SKIPPED, f"the sync stopped first ({run.stopped})")
            for k in sorted(unreached)
        ]
    result.changes += run.changes
    if hooks and (run.stopped or any(c.outcome is apply.Outcome.FAILED for c in result.changes)):
        await _sync_failed(
            cluster,
            hooks,
            run=run,
            options=options,
            timing=app.waves,
            reader=reader,
            selector=app.selector,
        )
    result.changes += run.hooks
    result.stopped = run.stopped
    result.hook_health = {c.key: run.health[c.key] for c in run.hooks if c.key in run.health}
    held = any(rewound and b.reason.startswith(rewound) for b in the_plan.blocked)
    recorded = result.revision
    if held and previous:
        recorded = previous.revision
    elif run.stopped or any(c.outcome is apply.Outcome.FAILED for c in run.hooks):
        recorded = previous.revision if previous else ""  # the next attempt runs the hooks again
    _, count = await _write_inventory(
        cluster,
        app,
        _final_entries(the_plan, result.changes, unreached=unreached),
        previous=previous,
        revision=recorded,
        digest=result.digest,
        behind=behind,
        hold=hold,
    )
    result.inventory_writes += count


def _stopped_by(reason: str, the_plan: plan.Plan, result: Gathering, *, run: waving.Run) -> None:
    """A superseded sync as it is: stopped, the changes of its waves that ended, and every other
    write or prune of the plan skipped with the reason (it may have landed, or not: the next
    sync reads the live objects and writes only what still differs)."""
    known = {c.key for c in result.changes}
    result.changes += [c for c in run.changes if c.key not in known]
    known |= {c.key for c in run.changes}
    unfinished = [
        s.key for s in the_plan.applies if s.op is not plan.Op.UNCHANGED and s.key not in known
    ]
    unfinished += [s.key for s in (*the_plan.prunes, *the_plan.releases) if s.key not in known]
    result.changes += [
        apply.Change(k, apply.Outcome.SKIPPED, f"not known to be applied: {reason}")
        for k in unfinished
    ]
    result.stopped = result.superseded = reason
    log.info(
        "event=sync_superseded app=%s cluster=%s revision=%s unfinished=%d reason=%s",
        result.app,
        result.cluster.name,
        result.revision[:12] or "-",
        len(unfinished),
        '"' + reason.replace('"', "'") + '"',
    )


def _final_entries(
    the_plan: plan.Plan, changes: Sequence[apply.Change], *, unreached: set[ObjectKey]
) -> dict[ObjectKey, plan.Entry]:
    """The inventory once the sync ran: failed or unreached prunes and releases stay, creations
    someone else won leave, every written object with the uid it has now."""
    leaving = {s.key for s in (*the_plan.prunes, *the_plan.releases)}
    failed = unreached | {
        c.key for c in changes if c.outcome is apply.Outcome.FAILED and c.key in leaving
    }
    creations = {s.key for s in the_plan.applies if s.op is plan.Op.CREATE}
    lost = {c.key for c in changes if c.outcome is apply.Outcome.CONFLICT and c.key in creations}
    return the_plan.inventory_after(
        failed, lost=lost, uids={c.key: c.uid for c in changes if c.uid}
    )


async def _prune(
    cluster: apply.Cluster, the_plan: plan.Plan, *, tracking: str, manager: str
) -> list[apply.Change]:
    """Prune stage by stage in reverse order, then release."""
    changes: list[apply.Change] = []
    for stage in sorted({s.stage for s in the_plan.prunes}, reverse=True):
        doomed = [s for s in the_plan.prunes if s.stage == stage]
        changes += await apply.delete_objects(cluster, doomed)
    if the_plan.releases:
        marks = [_marks(s, tracking=tracking, manager=manager) for s in the_plan.releases]
        changes += await apply.release_objects(cluster, the_plan.releases, marks=marks)
    return changes


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
