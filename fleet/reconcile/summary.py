"""The summary step: what one reconcile (or a drift, or an outage) means for a target (pure).

Every reconcile ends here, whatever happened: the hub describes the attempt as an
:class:`Attempt` and :func:`summarise` turns the previous :class:`~fleet.report.TargetStatus` and
the attempt into the new record and the events the change produced. Drift seen by a watch and a
cluster that stopped answering go through the same door (:func:`drifted`, :func:`unreachable`),
and a drift someone put back by hand (:func:`undrifted`) through the same door too,
so the record has one writer and one set of rules. No I/O, no clock: times come in.

The truth rules, each tested:
- green (:attr:`TargetStatus.ready`) only when the applied commit and digest are the desired ones,
  the last sync succeeded, and health is Healthy;
- a failed render is OutOfSync, the last good set kept (stale), its error shown;
- a cluster that does not answer (parked, hung, gone) is Unknown on both axes;
- a sync with any failed, conflicting or refused object, or a refused or failed prune, is
  OutOfSync with the reason, and its commit is not "applied";
- drift seen during a sync is not cleared by that sync's end: only a sync that started after the
  drift (a later generation) clears it, unless the drift was already put back by hand;
- a drift put back by hand (the cell shows every object as applied) is Synced again at once,
  when nothing else keeps it OutOfSync: the applied commit and digest are the desired ones and
  there is no error;
- a sync that gave way to a newer commit (superseded) is no failure: OutOfSync (never Synced,
  its commit not applied), not Ready with reason ``Superseded``, no error set (the record's
  error is cleared, as a preview clears it: the attempt reached the cluster), a ``Superseded``
  event of normal severity; the newer commit's sync follows at once.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fleet import apply
from fleet.reconcile.syncing import SyncResult
from fleet.report.targets import Condition, ObjectStatus, TargetEvent, TargetStatus

__all__ = [
    "Attempt",
    "SyncOutcome",
    "drifted",
    "outcome_of",
    "summarise",
    "undrifted",
    "unreachable",
]

_MAX_SHOWN = 3  # problems spelt out in the error line; the rest are counted


@dataclass(frozen=True)
class SyncOutcome:
    """What a sync did, in the record's words (made from a SyncResult by :func:`outcome_of`)."""

    in_sync: bool
    health: str
    problems: tuple[str, ...] = ()
    reason: str = ""  # the first problem's kind: SyncFailed, Conflict, PruneRefused, ...
    counts: Mapping[str, int] = field(default_factory=dict)
    objects: tuple[ObjectStatus, ...] = ()
    note: str = ""
    pending: int = 0  # writes and prunes the plan wants (what a dry run would do)
    superseded: str = ""  # the sync gave way to a newer commit: why ("superseded by commit ...")

    @property
    def wrote(self) -> bool:
        return any(n for k, n in self.counts.items() if k not in ("unchanged", "skipped"))


@dataclass(frozen=True)
class Attempt:
    """One reconcile as it happened. Exactly one of the outcome fields says how it ended."""

    started: float
    finished: float
    commit: str = ""  # the desired commit, as resolved ("" when the source failed before that)
    digest: str = ""  # the desired set's digest ("" when there is no set)
    drift_generation: int = 0  # the record's drift generation when the attempt started
    noop: bool = False  # the free no-op: nothing read, nothing written
    render_error: str = ""  # the desired set could not be made (stale: the last good one kept)
    unreachable: str = ""  # the cluster did not answer
    error: str = ""  # the sync raised
    error_reason: str = ""  # SyncFailed | ReadFailed | InternalError | ...
    stalled: bool = False  # retrying cannot help until the input changes
    result: SyncOutcome | None = None
    committed_at: float | None = None  # the desired commit's time, for commit-to-applied
    suspended: bool = False  # an operator suspended the target: nothing was read or written
    preview: bool = False  # a manual-sync app: `result` is a dry run, nothing was written

    def details(self) -> dict[str, Any]:
        """What history keeps of the attempt beside the event."""
        out: dict[str, Any] = {"started_at": self.started, "committed_at": self.committed_at}
        if self.result is not None:
            out["counts"] = dict(self.result.counts)
        return out


def outcome_of(result: SyncResult) -> SyncOutcome:
    """A sync result in the record's words: per-object results and health, the problems."""
    objects = []
    for change in result.changes.changes:
        key = change.key
        health = result.object_health.get(key)
        objects.append(
            ObjectStatus(
                group=key.group,
                kind=key.kind,
                namespace=key.namespace,
                name=key.name,
                result=change.outcome.value,
                health=health.status.value if health is not None else "Unknown",
                message=change.reason or (health.message if health is not None else ""),
            )
        )
    problems = _problems(result)
    if result.superseded:
        problems = []  # stopped on purpose: nothing to look at (the skipped objects say why)
    return SyncOutcome(
        in_sync=result.in_sync and not problems,
        health=result.health.status.value,
        problems=tuple(problems),
        reason=_reason(result) if problems or not result.in_sync else "",
        counts=result.changes.counts(),
        objects=tuple(objects),
        pending=sum(s.op.value != "unchanged" for s in result.plan.applies)
        + len(result.plan.prunes),
        note=_warnings(result.warnings),
        superseded=result.superseded or "",
    )


def _warnings(warnings: Sequence[str]) -> str:
    """The sync's warnings (an option fleet ignores, a hook phase it does not run) for the
    record's note: the first few spelt out, the rest counted."""
    if not warnings:
        return ""
    shown = "; ".join(warnings[:_MAX_SHOWN])
    more = len(warnings) - _MAX_SHOWN
    return f"warning: {shown}" + (f" (and {more} more)" if more > 0 else "")


def _problems(result: SyncResult) -> list[str]:
    found = result.problems()  # the engine's own sentences
    if found or result.in_sync:
        return found
    out = [
        f"{c.key}: {c.reason or 'failed'}"
        for c in result.changes.changes
        if c.outcome is apply.Outcome.FAILED
    ]
    if result.plan.refused is not None:
        out.append(f"prune refused: {result.plan.refused}")
    out += [f"{b.key}: not pruned: {b.reason}" for b in result.plan.blocked]
    if not out and not result.in_sync:
        out.append("the sync did not complete")
    return out


def _reason(result: SyncResult) -> str:
    if result.superseded:
        return "Superseded"
    outcomes = {c.outcome.value for c in result.changes.changes}
    if "conflict" in outcomes:
        return "Conflict"
    if "refused" in outcomes:
        return "Refused"
    if any(c.outcome is apply.Outcome.FAILED for c in result.changes.changes):
        return "SyncFailed"
    if result.plan.refused is not None or result.plan.blocked:
        return "PruneRefused"
    return "SyncFailed"


def _error_line(problems: tuple[str, ...]) -> str:
    shown = "; ".join(problems[:_MAX_SHOWN])
    more = len(problems) - _MAX_SHOWN
    return shown + (f" (and {more} more)" if more > 0 else "")


def summarise(
    previous: TargetStatus, attempt: Attempt
) -> tuple[TargetStatus, tuple[TargetEvent, ...]]:
    """The record after `attempt`, and what happened (see the truth rules of the module)."""
    if attempt.noop:
        return previous, ()
    now = attempt.finished
    if attempt.suspended:
        if previous.suspended:
            return previous, ()
        new = dataclasses.replace(previous, suspended=True)
        new = dataclasses.replace(new, conditions=_conditions(previous, new, attempt, now))
        return new, (_event(new, now, "Suspended", "normal", "suspended by an operator"),)
    new = dataclasses.replace(
        previous,
        desired_commit=attempt.commit or previous.desired_commit,
        desired_digest=attempt.digest or previous.desired_digest,
    )
    if attempt.unreachable:
        new = _failed(new, previous, now, attempt.unreachable, "Unreachable", sync="Unknown")
        new = dataclasses.replace(new, health="Unknown")
    elif attempt.render_error:
        reason = "RenderFailed"
        new = _failed(new, previous, now, attempt.render_error, reason, sync="OutOfSync")
    elif attempt.error:
        changing = new.desired_digest != new.applied_digest
        sync = "OutOfSync" if changing else "Unknown"
        reason = attempt.error_reason or "SyncFailed"
        new = _failed(new, previous, now, attempt.error, reason, sync=sync)
        if not changing:
            new = dataclasses.replace(new, health="Unknown")
        new = dataclasses.replace(new, last_sync_at=now)
    elif attempt.result is not None and attempt.preview and attempt.result.pending:
        new = _previewed(new, attempt.result, now)
    elif attempt.result is not None:
        new = _synced(new, previous, attempt, attempt.result)
    new = dataclasses.replace(new, suspended=False)
    new = dataclasses.replace(new, conditions=_conditions(previous, new, attempt, now))
    events = _events(previous, new, attempt)
    if previous.suspended:
        events = (_event(new, now, "Resumed", "normal", "resumed by an operator"), *events)
    return new, events


def _previewed(new: TargetStatus, result: SyncOutcome, now: float) -> TargetStatus:
    """A manual-sync app with changes waiting: OutOfSync until an operator syncs it."""
    return dataclasses.replace(
        new,
        sync="OutOfSync",
        health=result.health,
        objects=result.objects,
        last_sync_at=now,
        error="",
        error_reason="",
        error_since=None,
        note=f"manual sync: {result.pending} change(s) wait for `fleet sync {new.app}`",
    )


def _failed(
    new: TargetStatus, previous: TargetStatus, now: float, error: str, reason: str, *, sync: str
) -> TargetStatus:
    same = previous.error_reason == reason and previous.error_since is not None
    return dataclasses.replace(
        new,
        sync=sync,
        error=error,
        error_reason=reason,
        error_since=previous.error_since if same else now,
    )


def _synced(
    new: TargetStatus, previous: TargetStatus, attempt: Attempt, result: SyncOutcome
) -> TargetStatus:
    now = attempt.finished
    # a drift seen while the sync ran stays, unless someone put it back meanwhile
    drift_cleared = (
        previous.drift_generation == attempt.drift_generation or previous.drift_since is None
    )
    common = {
        "health": result.health,
        "objects": result.objects,
        "changes": dict(result.counts),
        "last_sync_at": now,
        "note": result.note,
        "drift_since": None if drift_cleared else previous.drift_since,
    }
    if result.superseded:
        return dataclasses.replace(
            new,
            sync="OutOfSync",
            error="",
            error_reason="",
            error_since=None,
            **{**common, "drift_since": previous.drift_since},  # type: ignore[arg-type]
        )
    if result.in_sync:
        return dataclasses.replace(
            new,
            sync="Synced" if drift_cleared else "OutOfSync",
            applied_commit=new.desired_commit,
            applied_digest=new.desired_digest,
            error="",
            error_reason="",
            error_since=None,
            checked_at=now,
            last_applied_at=now if result.wrote else previous.last_applied_at,
            **common,  # type: ignore[arg-type]
        )
    failed = _failed(
        new, previous, now, _error_line(result.problems), result.reason or "SyncFailed",
        sync="OutOfSync",
    )  # fmt: skip
    return dataclasses.replace(failed, **common)  # type: ignore[arg-type]


def _conditions(
    previous: TargetStatus, new: TargetStatus, attempt: Attempt, now: float
) -> tuple[Condition, ...]:
    if new.suspended:
        ready = ("Suspended", "suspended by an operator: not reconciled")
    elif new.ready:
        ready = ("Succeeded", f"applied {new.applied_commit[:12]}, Healthy")
    elif new.error:
        ready = (new.error_reason, new.error)
    elif attempt.result is not None and attempt.result.superseded:
        ready = ("Superseded", attempt.result.superseded)
    elif new.sync != "Synced":
        ready = (new.sync, f"sync is {new.sync}")
    else:
        ready = (new.health, f"health is {new.health}")
    wanted = [
        ("Ready", new.ready, *ready),
        ("Reconciling", new.health == "Progressing", "Progressing", "waiting for a rollout"),
        ("Stalled", bool(new.error) and attempt.stalled, new.error_reason, new.error),
    ]
    out = []
    for kind, status, reason, message in wanted:
        before = previous.condition(kind)
        kept = before is not None and before.status == status and before.reason == reason
        since = before.since if kept and before is not None else now
        out.append(Condition(kind, status, reason or kind, message if status or kind == "Ready"
                             else "", since))  # fmt: skip
    return tuple(out)


def _event(
    new: TargetStatus,
    now: float,
    kind: str,
    severity: str,
    message: str,
    *,
    details: Mapping[str, Any] | None = None,
) -> TargetEvent:
    return TargetEvent(
        time=now,
        cluster=new.cluster,
        app=new.app,
        type=kind,
        severity=severity,
        message=message,
        commit=new.desired_commit,
        sync=new.sync,
        health=new.health,
        details=dict(details or {}),
    )


def _events(previous: TargetStatus, new: TargetStatus, attempt: Attempt) -> tuple[TargetEvent, ...]:
    now = attempt.finished
    out: list[TargetEvent] = []
    result = attempt.result
    details = attempt.details()
    if result is not None and result.in_sync and new.applied_commit:
        counts = ", ".join(f"{k} {v}" for k, v in sorted(result.counts.items()) if v)
        moved = (new.applied_commit, new.applied_digest) != (
            previous.applied_commit,
            previous.applied_digest,
        )
        if moved:
            message = f"applied {new.applied_commit[:12]} ({counts})"
            out.append(_event(new, now, "Synced", "normal", message, details=details))
        elif result.wrote:
            message = f"applied {new.applied_commit[:12]} again over changes made outside fleet"
            message += f" ({counts})"
            out.append(_event(new, now, "Healed", "normal", message, details=details))
    if result is not None and result.superseded:
        message = f"the sync of {new.desired_commit[:12]} stopped: {result.superseded}"
        out.append(_event(new, now, "Superseded", "normal", message, details=details))
    same_outage = new.error_reason == previous.error_reason == "Unreachable"  # one per outage
    if (
        new.error
        and not same_outage
        and (new.error, new.error_reason)
        != (
            previous.error,
            previous.error_reason,
        )
    ):
        kind = new.error_reason or "SyncFailed"
        out.append(_event(new, now, kind, "warning", new.error, details=details))
    if new.health not in (previous.health, "Unknown"):  # Unknown is no observation
        if new.health == "Degraded":
            out.append(_event(new, now, "Degraded", "warning", "health is Degraded"))
        elif previous.health != "Unknown" or new.health != "Healthy":
            out.append(
                _event(new, now, "HealthChanged", "normal", f"{previous.health} -> {new.health}")
            )
    troubled = bool(previous.error) or previous.health in ("Degraded", "Missing")
    if new.ready and not previous.ready and (troubled or previous.drift_since is not None):
        out.append(_event(new, now, "Recovered", "normal", "Synced and Healthy again"))
    return tuple(out)


def drifted(
    previous: TargetStatus, *, now: float, objects: int
) -> tuple[TargetStatus, tuple[TargetEvent, ...]]:
    """Someone else changed `objects` of the target: OutOfSync until a later sync puts it back."""
    new = dataclasses.replace(
        previous,
        sync="OutOfSync" if previous.applied_commit else previous.sync,
        drift_since=previous.drift_since if previous.drift_since is not None else now,
        last_drift_at=now,
        drift_generation=previous.drift_generation + 1,
    )
    events: tuple[TargetEvent, ...] = ()
    if previous.drift_since is None:
        message = f"{objects} object(s) changed outside fleet"
        events = (_event(new, now, "Drift", "warning", message),)
    attempt = Attempt(started=now, finished=now)
    new = dataclasses.replace(new, conditions=_conditions(previous, new, attempt, now))
    return new, events


def undrifted(
    previous: TargetStatus, *, now: float, health: str
) -> tuple[TargetStatus, tuple[TargetEvent, ...]]:
    """Someone put the target's drifted objects back as fleet applied them (its cell shows every
    object as applied): the drift is cleared, and the target is Synced again unless something
    else keeps it OutOfSync (a newer desired commit or digest, an error). No sync ran; `health`
    is judged from the same live objects (a re-created Deployment may still be starting), so the
    health the target had before the drift is never taken on trust."""
    if previous.drift_since is None:
        return previous, ()
    in_sync = (
        bool(previous.applied_commit)
        and previous.applied_commit == previous.desired_commit
        and previous.applied_digest == previous.desired_digest
        and not previous.error
    )
    new = dataclasses.replace(
        previous, sync="Synced" if in_sync else previous.sync, health=health, drift_since=None
    )
    attempt = Attempt(started=now, finished=now)
    new = dataclasses.replace(new, conditions=_conditions(previous, new, attempt, now))
    events: tuple[TargetEvent, ...] = ()
    if new.ready:
        message = "the changes made outside fleet were put back: Synced and Healthy again"
        events = (_event(new, now, "Recovered", "normal", message),)
    elif health != previous.health:
        message = f"the changes made outside fleet were put back; health {health}"
        events = (_event(new, now, "HealthChanged", "normal", message),)
    return new, events


def unreachable(
    previous: TargetStatus, *, now: float, cause: str
) -> tuple[TargetStatus, tuple[TargetEvent, ...]]:
    """The target's cluster stopped answering: Unknown on both axes, with the cause."""
    return summarise(previous, Attempt(started=now, finished=now, unreachable=cause))
