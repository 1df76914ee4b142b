"""Health as a small ordered vocabulary; an app's health is the worst of its objects'.

Healthy < Suspended < Progressing < Missing < Degraded < Unknown (the order of Argo CD's
gitops-engine): worse states hide better ones when results are combined.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

__all__ = ["Health", "Status", "worst"]


class Status(StrEnum):
    HEALTHY = "Healthy"
    SUSPENDED = "Suspended"
    PROGRESSING = "Progressing"
    MISSING = "Missing"
    DEGRADED = "Degraded"
    UNKNOWN = "Unknown"

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {status: index for index, status in enumerate(Status)}


@dataclass(frozen=True)
class Health:
    status: Status
    message: str = ""


def worst(healths: Iterable[Health]) -> Health:
    """The worst of `healths` (Healthy when there are none)."""
    return max(healths, key=lambda h: h.status.rank, default=Health(Status.HEALTHY))
