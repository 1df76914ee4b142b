"""The record of every target, (cluster, app instance), and the one place that writes it.

A :class:`TargetStatus` is everything fleet claims about one app on one cluster: the desired and
the applied commit and digest, Argo CD's two axes (sync: Synced / OutOfSync / Unknown; health:
Healthy / Progressing / Degraded / Suspended / Missing / Unknown), Flux-style conditions (Ready,
Reconciling, Stalled, each with a reason), the last error with its reason and since when, and the
result of each object. It is frozen: a change is a new record.

:class:`Targets` holds the records. Its :meth:`Targets.commit` is the only way to change one: it
stores the new record and hands it, with the events the change produced, to every subscriber (the
board's JSON, history, metrics, logs, notification sinks). Subscribers only read; none of them
writes status. A subscriber that fails is logged and skipped: it never stops a reconcile or the
others.

Green is one property, :attr:`TargetStatus.ready`: Synced, Healthy, no error, not suspended. The
summary step (:mod:`fleet.reconcile.summary`) decides the fields by the truth rules; this module
only keeps and publishes them.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from fleet import logs

__all__ = [
    "HEALTH_ORDER",
    "SYNC_STATES",
    "Condition",
    "Key",
    "ObjectStatus",
    "Subscriber",
    "TargetEvent",
    "TargetStatus",
    "Targets",
]

log = logging.getLogger(__name__)

Key = tuple[str, str]
"""(cluster, app instance)."""

SYNC_STATES = ("Synced", "OutOfSync", "Unknown")
HEALTH_ORDER = ("Healthy", "Suspended", "Progressing", "Missing", "Degraded", "Unknown")


@dataclass(frozen=True)
class Condition:
    """One condition: ``Ready``, ``Reconciling`` or ``Stalled``, true or not, with a reason."""

    type: str
    status: bool
    reason: str
    message: str = ""
    since: float = 0.0


@dataclass(frozen=True)
class ObjectStatus:
    """One object of a target: what the last sync did with it, and its health."""

    group: str
    kind: str
    namespace: str
    name: str
    result: str  # created | configured | unchanged | pruned | failed | skipped | ...
    health: str = "Unknown"
    message: str = ""


@dataclass(frozen=True)
class TargetStatus:
    """What fleet claims about one app on one cluster (see the module docstring)."""

    cluster: str
    app: str
    sync: str = "Unknown"
    health: str = "Unknown"
    desired_commit: str = ""
    desired_digest: str = ""
    applied_commit: str = ""
    applied_digest: str = ""
    conditions: tuple[Condition, ...] = ()
    error: str = ""
    error_reason: str = ""
    error_since: float | None = None
    objects: tuple[ObjectStatus, ...] = ()
    changes: Mapping[str, int] = field(default_factory=dict)
    suspended: bool = False
    last_sync_at: float | None = None  # the last sync that ran (read and compared), any result
    last_applied_at: float | None = None  # the last sync that wrote and succeeded
    checked_at: float | None = None  # the last full check that succeeded (the free no-op's clock)
    drift_since: float | None = None  # the first drift not yet put back (by a sync or by hand)
    last_drift_at: float | None = None  # the latest drift seen, kept after it is cleared
    drift_generation: int = 0  # bumped by every drift seen; a sync clears only what it saw
    note: str = ""  # e.g. "rewound from abc1234 to def5678"

    @property
    def key(self) -> Key:
        return (self.cluster, self.app)

    @property
    def ready(self) -> bool:
        """Green: applied == desired, the last sync succeeded, Healthy, nothing pending."""
        return (
            self.sync == "Synced"
            and self.health == "Healthy"
            and not self.error
            and not self.suspended
            and bool(self.applied_commit)
            and self.applied_commit == self.desired_commit
            and self.applied_digest == self.desired_digest
        )

    @property
    def revision(self) -> str:
        """The commit running there: the applied one (or the desired one, before any apply)."""
        return self.applied_commit or self.desired_commit

    @property
    def last_result(self) -> str:
        """``synced`` or ``failed`` for the last attempt; ``""`` before any."""
        if self.last_sync_at is None and not self.error:
            return ""
        return "failed" if self.error else "synced"

    def condition(self, kind: str) -> Condition | None:
        return next((c for c in self.conditions if c.type == kind), None)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["ready"] = self.ready
        out["changes"] = dict(self.changes)
        out["revision"] = self.revision
        out["last_result"] = self.last_result
        return out


@dataclass(frozen=True)
class TargetEvent:
    """Something that happened to a target, for the event log, history and notifications.

    `type` is one of: ``Synced`` (a new commit applied), ``Healed`` (the same commit applied again
    over a change made outside fleet), ``SyncFailed``, ``RenderFailed``,
    ``Conflict``, ``Unreachable``, ``Degraded``, ``HealthChanged``, ``Recovered`` (green again),
    ``Drift``, ``Suspended``, ``Resumed``, ``Removed``. `severity` is ``normal`` or ``warning``.
    """

    time: float
    cluster: str
    app: str
    type: str
    severity: str
    message: str
    commit: str = ""
    sync: str = ""
    health: str = ""
    details: Mapping[str, Any] = field(default_factory=dict)  # counts, started_at, committed_at

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["details"] = dict(self.details)
        return out


Subscriber = Callable[[TargetStatus, tuple[TargetEvent, ...]], None]
"""Told of every committed record, with the events its change produced (maybe none)."""


class Targets:
    """Every target's record; :meth:`commit` is the single writer (see the module docstring)."""

    def __init__(self, *, recent_events: int = 1000, per_target_events: int = 50) -> None:
        self._records: dict[Key, TargetStatus] = {}
        self._by_cluster: dict[str, dict[Key, None]] = {}  # the keys of each cluster, in order
        self._subscribers: list[tuple[str, Subscriber]] = []
        self._recent: deque[TargetEvent] = deque(maxlen=recent_events)
        self._per_target: dict[Key, deque[TargetEvent]] = {}
        self._per_target_size = per_target_events

    def subscribe(self, name: str, subscriber: Subscriber) -> None:
        self._subscribers.append((name, subscriber))

    def get(self, key: Key) -> TargetStatus | None:
        return self._records.get(key)

    def status(self, key: Key) -> TargetStatus:
        """The record of `key`, or a blank Unknown one."""
        return self._records.get(key) or TargetStatus(cluster=key[0], app=key[1])

    def all(self) -> list[TargetStatus]:
        return sorted(self._records.values(), key=lambda s: (s.app, s.cluster))

    def target_keys(self) -> list[Key]:
        return list(self._records)

    def of_cluster(self, cluster: str) -> list[Key]:
        """The keys of `cluster`, from an index (every cluster found unreachable at once asks
        this of each: a scan of every record each time was quadratic at 1,000 entries)."""
        return list(self._by_cluster.get(cluster, ()))

    def of_app(self, app: str) -> list[Key]:
        return [k for k in self._records if k[1] == app]

    def events(self, *, app: str | None = None, cluster: str | None = None) -> list[TargetEvent]:
        """Recent events, oldest first, of one app and/or cluster (all when neither)."""
        if app is not None and cluster is not None:
            return list(self._per_target.get((cluster, app), ()))
        return [
            e
            for e in self._recent
            if (app is None or e.app == app) and (cluster is None or e.cluster == cluster)
        ]

    def commit(self, status: TargetStatus, events: Iterable[TargetEvent] = ()) -> None:
        """Store `status` as the record of its target and publish it with `events`.

        Error texts and event messages are scrubbed here, once, so no reader (the API, the page,
        history, a notification) can show a secret that reached an error message.
        """
        if status.error:
            status = dataclasses.replace(status, error=logs.scrub(status.error))
        happened = tuple(dataclasses.replace(e, message=logs.scrub(e.message)) for e in events)
        self._records[status.key] = status
        self._by_cluster.setdefault(status.cluster, {})[status.key] = None
        if happened:
            line = self._per_target.setdefault(status.key, deque(maxlen=self._per_target_size))
            line.extend(happened)
            self._recent.extend(happened)
        self._publish(status, happened)

    def forget(self, key: Key, *, message: str) -> None:
        """Drop `key` (its app or cluster left); subscribers get a last ``Removed`` event."""
        status = self._records.pop(key, None)
        self._per_target.pop(key, None)
        keys = self._by_cluster.get(key[0])
        if keys is not None:
            keys.pop(key, None)
            if not keys:
                del self._by_cluster[key[0]]
        if status is None:
            return
        event = TargetEvent(
            time=time.time(),
            cluster=key[0],
            app=key[1],
            type="Removed",
            severity="normal",
            message=message,
        )
        self._recent.append(event)
        self._publish(status, (event,))

    def _publish(self, status: TargetStatus, events: tuple[TargetEvent, ...]) -> None:
        for name, subscriber in self._subscribers:
            try:
                subscriber(status, events)
            except Exception as exc:  # one subscriber never stops a reconcile or the others
                log.exception(
                    "event=subscriber_failed subscriber=%s cluster=%s app=%s error=%s",
                    name,
                    status.cluster,
                    status.app,
                    type(exc).__name__,
                )
