"""The result of an apply: one :class:`Change` per object, gathered in a :class:`ChangeSet`.

Outcomes that leave the app out of sync: ``failed`` (a write the server refused), ``conflict``
(the object exists and is not this app instance's, or another field manager owns a field),
``refused`` (outside the app's project) and ``skipped`` (a prune a safety rule holds). The others
are the state converging or an object correctly left alone: ``released`` (an adopted or shared
object that left git: fleet's marks removed, object kept) and ``kept`` (not this app's to
delete, or a Namespace used as it is). :meth:`ChangeSet.problems` turns the first kind into
sentences an operator can act on, each naming the object the way kubectl users do.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from fleet.types import Manifest, ObjectKey

__all__ = ["NOT_SYNCED", "Change", "ChangeSet", "Outcome", "object_name"]


class Outcome(StrEnum):
    CREATED = "created"
    CONFIGURED = "configured"
    ADOPTED = "adopted"  # an existing object fleet took over, the app having opted in
    UNCHANGED = "unchanged"
    PRUNED = "pruned"
    RELEASED = "released"
    KEPT = "kept"
    SKIPPED = "skipped"  # a prune a safety rule refused, or an object not applied
    CONFLICT = "conflict"
    REFUSED = "refused"
    FAILED = "failed"


NOT_SYNCED = frozenset({Outcome.FAILED, Outcome.CONFLICT, Outcome.REFUSED, Outcome.SKIPPED})
"""Outcomes that mean the last sync did not fully succeed."""


@dataclass(frozen=True)
class Change:
    key: ObjectKey
    outcome: Outcome
    reason: str = ""
    uid: str = ""  # the object's uid after the write, when the server told it
    live: Manifest | None = field(default=None, compare=False, repr=False)
    """The object as the server answered the write (an apply's answer): what a read right after
    would show, so health is judged from it without one; dropped once the sync has its result."""

    def __str__(self) -> str:
        return f"{self.key} {self.outcome}" + (f": {self.reason}" if self.reason else "")


@dataclass(frozen=True)
class ChangeSet:
    changes: tuple[Change, ...] = ()

    def of(self, outcome: Outcome) -> tuple[Change, ...]:
        return tuple(c for c in self.changes if c.outcome is outcome)

    def keys(self, outcome: Outcome) -> set[ObjectKey]:
        return {c.key for c in self.changes if c.outcome is outcome}

    @property
    def ok(self) -> bool:
        """No write failed (conflicts, refusals and held prunes are counted apart)."""
        return not self.of(Outcome.FAILED)

    @property
    def settled(self) -> bool:
        """No change failed, conflicted, was refused or held."""
        return not any(c.outcome in NOT_SYNCED for c in self.changes)

    def counts(self) -> dict[str, int]:
        return {o.value: len(self.of(o)) for o in Outcome if self.of(o)}

    def problems(self, *, rewound: str | None = None) -> list[str]:
        """One sentence per change that leaves the app out of sync: object, cause, what to do;
        first the rewind, when one holds prunes."""
        found: list[str] = []
        if rewound and self.of(Outcome.SKIPPED):
            found.append(
                f"{rewound} (the branch was moved to a commit that does not descend from the "
                "applied one): its prunes are held; sync with consent to let them through"
            )
        for change in self.changes:
            if change.outcome not in NOT_SYNCED:
                continue
            reason = change.reason or "no reason given"
            prefix = _PREFIXES.get(change.outcome, "")
            found.append(f"{object_name(change.key)}: {prefix}{reason}")
        return found


_PREFIXES = {
    Outcome.SKIPPED: "not pruned: ",
    Outcome.REFUSED: "refused by the project: ",
    Outcome.FAILED: "failed: ",
}


def object_name(key: ObjectKey) -> str:
    """An object as an operator names it: ``apps/Deployment web/web``, ``Namespace web``."""
    kind = f"{key.group}/{key.kind}" if key.group else key.kind
    return f"{kind} {key.namespace}/{key.name}" if key.namespace else f"{kind} {key.name}"
