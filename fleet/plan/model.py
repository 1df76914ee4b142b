"""The plan's vocabulary: what to do with each object, and the rules that guard prune.

A :class:`Plan` is data only. Apply steps are grouped into ordered stages (CRDs, Namespaces, other
cluster-scoped objects, namespaced objects); prunes run after every apply stage, in the reverse
order. A prune that a safety rule refuses is a :class:`Blocked` entry, and its object stays in the
inventory so that a later run, with consent or an opt-in, can still delete it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum, StrEnum

from fleet.types import Manifest, ObjectKey

__all__ = [
    "APP_LABEL",
    "DIGEST_ANNOTATION",
    "MANAGED_BY_LABEL",
    "MANAGED_BY_VALUE",
    "PRUNE_ANNOTATION",
    "Blocked",
    "DesiredObject",
    "Op",
    "Plan",
    "PrunePolicy",
    "Stage",
    "Step",
]

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY_VALUE = "fleet"
APP_LABEL = "fleet.dev/app"
DIGEST_ANNOTATION = "fleet.dev/applied-digest"
PRUNE_ANNOTATION = "fleet.dev/prune"


class Stage(IntEnum):
    """Apply order; prune walks it backwards."""

    CRDS = 0
    NAMESPACES = 1
    CLUSTER = 2
    NAMESPACED = 3


class Op(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    UNCHANGED = "unchanged"
    PRUNE = "prune"


@dataclass(frozen=True)
class DesiredObject:
    """One desired object, ready to send: namespace filled in, fleet's labels and digest set.

    `problem` is set (and the object is not applied) when its kind is unknown to the cluster and
    to the set's own CRDs, so fleet cannot tell whether it is namespaced.
    """

    key: ObjectKey
    api_version: str
    manifest: Manifest
    digest: str
    problem: str | None = None


@dataclass(frozen=True)
class Step:
    """One write to make (or, for ``UNCHANGED``, not to make).

    `manifest` is the object to apply, or for ``PRUNE`` the live object to delete. `verify` asks
    apply to dry-run first and skip the write when the result equals the live object: set when
    the digest matches but the live fields differ (drift, or a field the server normalises).
    """

    key: ObjectKey
    api_version: str
    op: Op
    stage: Stage
    manifest: Manifest
    reason: str = ""
    verify: bool = False


@dataclass(frozen=True)
class Blocked:
    """A prune a safety rule refused; the object stays in the inventory."""

    key: ObjectKey
    api_version: str
    reason: str


@dataclass(frozen=True)
class PrunePolicy:
    """An app's prune rules.

    - `prune`: delete objects that left the desired set at all (off: they stay, and are listed).
    - `allow_empty`: an empty render may prune (otherwise an empty render prunes nothing).
    - `prune_namespaces`, `prune_crds`, `prune_pvcs`: opt-ins for the kinds whose deletion
      destroys data; never pruned otherwise.
    - `max_share`: a prune of more than this share of the inventory needs `consent`, unless it
      deletes no more than `small_prune` objects.
    """

    prune: bool = True
    allow_empty: bool = False
    prune_namespaces: bool = False
    prune_crds: bool = False
    prune_pvcs: bool = False
    max_share: float = 0.5
    small_prune: int = 2
    consent: bool = False


@dataclass(frozen=True)
class Plan:
    """What one reconcile of one app on one cluster will do, in order."""

    applies: tuple[Step, ...]
    prunes: tuple[Step, ...]
    blocked: tuple[Blocked, ...] = ()
    invalid: tuple[DesiredObject, ...] = ()
    refused: str | None = None
    gone: tuple[ObjectKey, ...] = field(default=())

    def stages(self) -> list[tuple[Stage, tuple[Step, ...]]]:
        """The apply steps grouped by stage, in apply order; empty stages left out."""
        groups: dict[Stage, list[Step]] = {}
        for step in self.applies:
            groups.setdefault(step.stage, []).append(step)
        return [(stage, tuple(groups[stage])) for stage in sorted(groups)]

    @property
    def writes(self) -> int:
        """How many objects need a write (verify steps counted: they may need one)."""
        return sum(s.op is not Op.UNCHANGED for s in self.applies) + len(self.prunes)

    def inventory_after(
        self, failed: set[ObjectKey] | frozenset[ObjectKey] = frozenset()
    ) -> dict[ObjectKey, str]:
        """The inventory to record once the plan ran, `failed` being the prunes that failed.

        Every desired object (applied or not), every blocked prune, every failed prune.
        """
        entries = {s.key: s.api_version for s in self.applies}
        entries.update({d.key: d.api_version for d in self.invalid})
        entries.update({b.key: b.api_version for b in self.blocked})
        entries.update({s.key: s.api_version for s in self.prunes if s.key in failed})
        return dict(sorted(entries.items()))
