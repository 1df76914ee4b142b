"""The result of an apply: one :class:`Change` per object, gathered in a :class:`ChangeSet`."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from fleet.types import ObjectKey

__all__ = ["Change", "ChangeSet", "Outcome"]


class Outcome(StrEnum):
    CREATED = "created"
    CONFIGURED = "configured"
    UNCHANGED = "unchanged"
    PRUNED = "pruned"
    SKIPPED = "skipped"  # a prune a safety rule refused, or an object not applied
    FAILED = "failed"


@dataclass(frozen=True)
class Change:
    key: ObjectKey
    outcome: Outcome
    reason: str = ""

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
        return not self.of(Outcome.FAILED)

    def counts(self) -> dict[str, int]:
        return {o.value: len(self.of(o)) for o in Outcome if self.of(o)}
