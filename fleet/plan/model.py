"""The plan's vocabulary: what to do with each object, and the rules that guard prune.

A :class:`Plan` is data only. Apply steps are grouped into ordered stages (CRDs, Namespaces, other
cluster-scoped objects, namespaced objects); prunes and releases run after every apply stage, in
the reverse order. A prune that a safety rule refuses is a :class:`Blocked` entry, and its object
stays in the inventory so that a later run, with consent or an opt-in, can still delete it. An
object that is not this app instance's (see :mod:`fleet.plan.owning`) is never written: a desired
one is a :class:`Conflict`, an inventory one is *kept* (left alone and dropped from the inventory).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum

from fleet.types import (
    ADOPT_ANNOTATION,
    OWNERS_PREFIX,
    SHARED_MARK_ANNOTATION,
    TRACKING_ANNOTATION,
    Manifest,
    ObjectKey,
)

__all__ = [
    "ADOPT_ANNOTATION",
    "APP_LABEL",
    "DIGEST_ANNOTATION",
    "MANAGED_BY_LABEL",
    "MANAGED_BY_VALUE",
    "OWNERS_PREFIX",
    "PRUNE_ANNOTATION",
    "SHARED_MARK_ANNOTATION",
    "TRACKING_ANNOTATION",
    "Blocked",
    "Conflict",
    "DesiredObject",
    "Entry",
    "Op",
    "Ownership",
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
    ADOPT = "adopt"  # take over an object fleet did not create (the app opted in)
    PRUNE = "prune"
    RELEASE = "release"  # remove fleet's marks from an object and leave it in the cluster


@dataclass(frozen=True)
class DesiredObject:
    """One desired object, ready to send: namespace filled in, fleet's labels and digest set.

    `problem` is set (and the object is not applied) when its kind is unknown to the cluster and
    to the set's own CRDs, so fleet cannot tell whether it is namespaced. `shared` marks the
    destination Namespace fleet adds for ``createNamespace``: several app instances may own it
    at once, each through its own owner annotation, and it does not count as rendered. `adopt`
    is the object's own ``fleet.dev/adopt: "true"`` opt-in.
    """

    key: ObjectKey
    api_version: str
    manifest: Manifest
    digest: str
    problem: str | None = None
    shared: bool = False
    adopt: bool = False


@dataclass(frozen=True)
class Entry:
    """One object of an app's inventory: its apiVersion, its uid when known, how it is held."""

    api_version: str
    uid: str = ""
    adopted: bool = False
    shared: bool = False


@dataclass(frozen=True)
class Step:
    """One write to make (or, for ``UNCHANGED``, not to make).

    `manifest` is the object to apply, or for ``PRUNE`` and ``RELEASE`` the live object. `verify`
    asks apply to dry-run first and skip the write when the result equals the live object: set
    when the digest matches but the live fields differ (drift, or a field the server normalises).
    `force` is False for a creation (an object that appeared meanwhile is someone else's: the
    server's conflict is reported, never forced) and True where the object is this app's.
    """

    key: ObjectKey
    api_version: str
    op: Op
    stage: Stage
    manifest: Manifest
    reason: str = ""
    verify: bool = False
    force: bool = True
    entry: Entry | None = None


@dataclass(frozen=True)
class Blocked:
    """A prune a safety rule refused (the object stays in the inventory), or an object kept."""

    key: ObjectKey
    api_version: str
    reason: str
    entry: Entry | None = None


@dataclass(frozen=True)
class Conflict:
    """A desired object that exists and is not this app instance's: not written.

    `owner` names its current owner: another fleet app instance, or "not managed by fleet".
    """

    key: ObjectKey
    api_version: str
    owner: str
    reason: str


@dataclass(frozen=True)
class PrunePolicy:
    """An app's prune rules.

    - `prune`: delete objects that left the desired set at all (off: they stay, and are listed).
    - `allow_empty`: an empty render may prune (otherwise an empty render prunes nothing).
    - `prune_namespaces`, `prune_crds`, `prune_pvcs`: opt-ins for the kinds whose deletion
      destroys data; never pruned otherwise.
    - `max_share`: a prune of more than this share of the inventory needs `consent`, unless it
      deletes no more than `small_prune` objects. The same consent lets a rewind prune.
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
class Ownership:
    """Who this app instance is on the cluster, and what it may take over or delete.

    - `tracking`: its tracking id (:func:`fleet.plan.owning.tracking_id`);
    - `adopt`: take over existing objects that no fleet app owns (``syncPolicy.adopt``);
    - `delete_adopted`: delete adopted objects when they leave git (else they are released).
    """

    tracking: str
    adopt: bool = False
    delete_adopted: bool = False


@dataclass(frozen=True)
class Plan:
    """What one reconcile of one app on one cluster will do, in order."""

    applies: tuple[Step, ...]
    prunes: tuple[Step, ...]
    blocked: tuple[Blocked, ...] = ()
    invalid: tuple[DesiredObject, ...] = ()
    refused: str | None = None
    gone: tuple[ObjectKey, ...] = field(default=())
    conflicts: tuple[Conflict, ...] = ()
    releases: tuple[Step, ...] = ()
    kept: tuple[Blocked, ...] = ()
    refusals: tuple[Blocked, ...] = ()
    rewound: str | None = None
    previous: Mapping[ObjectKey, Entry] = field(default_factory=dict)

    def stages(self) -> list[tuple[Stage, tuple[Step, ...]]]:
        """The apply steps grouped by stage, in apply order; empty stages left out."""
        groups: dict[Stage, list[Step]] = {}
        for step in self.applies:
            groups.setdefault(step.stage, []).append(step)
        return [(stage, tuple(groups[stage])) for stage in sorted(groups)]

    @property
    def writes(self) -> int:
        """How many objects need a write (verify steps counted: they may need one)."""
        applies = sum(s.op is not Op.UNCHANGED for s in self.applies)
        return applies + len(self.prunes) + len(self.releases)

    def inventory_after(
        self,
        failed: set[ObjectKey] | frozenset[ObjectKey] = frozenset(),
        *,
        lost: set[ObjectKey] | frozenset[ObjectKey] = frozenset(),
        uids: Mapping[ObjectKey, str] | None = None,
    ) -> dict[ObjectKey, Entry]:
        """The inventory to record once the plan ran.

        `failed`: the prunes and releases that failed (they stay); `lost`: creations the server
        refused because someone else owns the object (they leave); `uids`: the uid each written
        object has now. Every desired object applied (or not: invalid, refused by the project,
        but recorded before), every blocked prune, every failed prune or release.
        """
        uids = uids or {}
        entries: dict[ObjectKey, Entry] = {}
        for step in self.applies:
            if step.key in lost:
                continue
            entry = step.entry or Entry(step.api_version)
            uid = uids.get(step.key) or entry.uid
            entries[step.key] = Entry(step.api_version, uid, entry.adopted, entry.shared)
        for obj in self.invalid:
            entries[obj.key] = self.previous.get(obj.key) or Entry(obj.api_version)
        for held in (*self.blocked, *self.refusals):
            if held.entry is not None:
                entries[held.key] = held.entry
        for step in (*self.prunes, *self.releases):
            if step.key in failed:
                entries[step.key] = step.entry or Entry(step.api_version)
        return dict(sorted(entries.items()))
