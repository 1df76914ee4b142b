"""What one sync did, as the summary reads it: :class:`SyncResult`, and the health it reports.

A :class:`SyncResult` keeps the sync status (the change set: one change per object written,
left alone or refused, and one per hook run) apart from health (the worst of the app's tracked
objects; hooks are shown with their own health but never count for the app's). `stopped` says why
the sync's waves stopped (a write or a hook that failed, a wave not Healthy in time, a newer
commit: then `superseded` says which, and the target is worked again at once): such a sync is
never in sync. Objects whose held prune is ``IgnoreExtraneous`` (`ignored`) are shown as kept
and do not make the app OutOfSync. `warnings` name the annotations fleet did not act on.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from fleet import apply, plan
from fleet.health import Health, assess, worst
from fleet.types import Manifest, ObjectKey

__all__ = ["Gathering", "SyncResult", "assess_health"]

log = logging.getLogger(__name__)


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
    stopped: str | None = None
    warnings: tuple[str, ...] = ()
    ignored: frozenset[ObjectKey] = frozenset()
    superseded: str | None = None

    @property
    def in_sync(self) -> bool:
        """THE truth of "the last sync succeeded": every desired object applied or unchanged,
        none in conflict or refused by the project, every hook succeeded, every wave done, and
        no prune refused, failed or held (unless its object is IgnoreExtraneous)."""
        held = [b for b in self.plan.blocked if b.key not in self.ignored]
        return (
            self.changes.settled and self.plan.refused is None and not held and self.stopped is None
        )

    @property
    def verdict(self) -> str:
        """One word for the board, history and metrics: ``synced`` exactly when `in_sync`, else
        the worst of ``failed`` (a write the server refused, a hook that failed, a wave not
        healthy in time), ``conflict`` (an object that is not this app's), ``refused``
        (outside the project), ``held`` (a prune a guard holds); ``superseded`` when the sync
        gave way to a newer commit (no failure: stopped on purpose)."""
        if self.in_sync:
            return "synced"
        if self.superseded:
            return "superseded"
        outcomes = {c.outcome for c in self.changes.changes}
        for outcome, word in (
            (apply.Outcome.FAILED, "failed"),
            (apply.Outcome.CONFLICT, "conflict"),
            (apply.Outcome.REFUSED, "refused"),
        ):
            if outcome in outcomes:
                return word
        return "failed" if self.stopped else "held"

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
        found = [f"sync stopped: {self.stopped}"] if self.stopped else []
        applies = {s.key for s in self.plan.applies}
        waiting = [
            c
            for c in self.changes.changes
            if c.outcome is apply.Outcome.SKIPPED and c.key in applies
        ]
        rest = apply.ChangeSet(tuple(c for c in self.changes.changes if c not in waiting))
        found += rest.problems(rewound=self.plan.rewound)
        return found + [f"{apply.object_name(c.key)}: {c.reason}" for c in waiting]


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


@dataclass
class Gathering:
    """A sync result being gathered; `finish` adds the plan's own entries and health."""

    app: str
    cluster: apply.Cluster
    plan: plan.Plan
    revision: str
    digest: str
    tracking: str
    changes: list[apply.Change] = field(default_factory=list)
    inventory_writes: int = 0
    stopped: str | None = None
    warnings: tuple[str, ...] = ()
    ignored: frozenset[ObjectKey] = frozenset()
    superseded: str | None = None
    hook_health: dict[ObjectKey, Health] = field(default_factory=dict)

    async def finish(
        self, live: Mapping[ObjectKey, Manifest], *, written: set[ObjectKey]
    ) -> SyncResult:
        planned = _planned(self.plan, self.changes, ignored=self.ignored)
        kept = [dataclasses.replace(c, live=None) if c.live else c for c in self.changes]
        changes = apply.ChangeSet(tuple(sorted([*kept, *planned], key=lambda c: c.key)))
        targets = {s.key: s.api_version for s in self.plan.applies}
        fresh = {k: v for k, v in live.items() if k not in written}
        overall, each = await assess_health(self.cluster, targets, live=fresh)
        log.info(
            "event=sync app=%s cluster=%s revision=%s %s health=%s refused=%s rewound=%s "
            "stopped=%s",
            self.app,
            self.cluster.name,
            self.revision or "-",
            " ".join(f"{k}={v}" for k, v in changes.counts().items()),
            overall.status,
            _quoted(self.plan.refused),
            _quoted(self.plan.rewound),
            _quoted(self.stopped),
        )
        for warning in self.warnings:
            log.warning("event=sync_warning app=%s warning=%s", self.app, _quoted(warning))
        return SyncResult(
            app=self.app,
            cluster=self.cluster.name,
            revision=self.revision,
            digest=self.digest,
            plan=self.plan,
            changes=changes,
            health=overall,
            object_health={**self.hook_health, **each},
            inventory_writes=self.inventory_writes,
            tracking=self.tracking,
            stopped=self.stopped,
            warnings=self.warnings,
            ignored=self.ignored,
            superseded=self.superseded,
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


def _planned(
    the_plan: plan.Plan, done: Sequence[apply.Change], *, ignored: frozenset[ObjectKey]
) -> list[apply.Change]:
    """The changes the plan decided without a write: unchanged, conflicts, kept, refused,
    held prunes (kept when IgnoreExtraneous), invalid objects, objects already gone."""
    seen = {c.key for c in done}
    extra = [
        apply.Change(s.key, apply.Outcome.UNCHANGED, s.reason, uid=s.entry.uid if s.entry else "")
        for s in the_plan.applies
        if s.op is plan.Op.UNCHANGED and s.key not in seen
    ]
    extra += [apply.Change(c.key, apply.Outcome.CONFLICT, c.reason) for c in the_plan.conflicts]
    extra += [apply.Change(k.key, apply.Outcome.KEPT, k.reason) for k in the_plan.kept]
    extra += [apply.Change(r.key, apply.Outcome.REFUSED, r.reason) for r in the_plan.refusals]
    extra += [
        apply.Change(b.key, apply.Outcome.KEPT, f"not pruned: {b.reason} (IgnoreExtraneous)")
        if b.key in ignored
        else apply.Change(b.key, apply.Outcome.SKIPPED, b.reason)
        for b in the_plan.blocked
        if b.key not in seen
    ]
    extra += [apply.Change(d.key, apply.Outcome.FAILED, d.problem or "") for d in the_plan.invalid]
    extra += [apply.Change(k, apply.Outcome.PRUNED, "already gone") for k in the_plan.gone]
    return extra
