"""Which objects that left the desired set are deleted, released, held or kept. Pure.

A prune candidate is an inventory entry no longer desired. Each is decided in this order:

1. its live object is gone: it leaves the inventory without a delete;
2. its live object is not this instance's (another tracking id, or the uid is not the one
   recorded): **kept**, never deleted. Another owner's object leaves our inventory; one with our
   tracking id but another uid (recreated outside fleet) is held, so a person looks at it;
3. the project does not let it be pruned (outside the project, or not a prunable kind);
   the guards that hold every change of ownership: the render is empty and the app does not
   allow empty; the desired commit does not descend from the applied one (a rewind) without
   consent;
4. a shared Namespace that other instances still own, and an adopted object (unless the app asks
   for adopted objects to be deleted), are **released**: fleet's marks come off, the object stays;
5. the guards of deletion: prune is off; the prune deletes more than ``max_share`` of what the
   render produced before (and more than ``small_prune`` objects) without consent;
6. per object: a Namespace, CRD or PVC without the app's opt-in; ``fleet.dev/prune: "false"``
   or Argo CD's ``argocd.argoproj.io/sync-options: Prune=false`` (held and shown; with the
   compare option ``IgnoreExtraneous`` the hold does not make the app OutOfSync).

The empty-render and share guards count what the render produced: the Namespace fleet adds for
``createNamespace`` is counted neither in the render nor in the inventory.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from fleet.plan import options, owning
from fleet.plan.model import (
    PRUNE_ANNOTATION,
    Blocked,
    Entry,
    Op,
    Ownership,
    PrunePolicy,
    Stage,
    Step,
)
from fleet.types import Manifest, ObjectKey

__all__ = ["Pruning", "decide", "stage_of"]

_CRD = ("apiextensions.k8s.io", "CustomResourceDefinition")
_NAMESPACE = ("", "Namespace")
_PVC = ("", "PersistentVolumeClaim")


def stage_of(key: ObjectKey) -> Stage:
    """The apply stage of an object: CRDs, Namespaces, cluster-scoped, namespaced."""
    kind = (key.group, key.kind)
    if kind == _CRD:
        return Stage.CRDS
    if kind == _NAMESPACE:
        return Stage.NAMESPACES
    return Stage.NAMESPACED if key.namespace else Stage.CLUSTER


@dataclass(frozen=True)
class Pruning:
    """The decision for every prune candidate."""

    prunes: tuple[Step, ...] = ()
    releases: tuple[Step, ...] = ()
    blocked: tuple[Blocked, ...] = ()
    kept: tuple[Blocked, ...] = ()
    gone: tuple[ObjectKey, ...] = ()
    refused: str | None = None


def _uid(live: Manifest) -> str:
    return str((live.get("metadata") or {}).get("uid") or "")


def _not_ours(
    key: ObjectKey, entry: Entry, live: Manifest, *, app: str, own: Ownership
) -> str | None:
    """Why `live` belongs to someone else (it leaves our inventory), or None."""
    if entry.shared:
        owners = owning.owners_of(live)
        legacy = not owners and owning.is_ours(live, tracking=own.tracking, app=app, recorded=True)
        if owning.owner_key(own.tracking) not in owners and not legacy:
            return "no longer names this app instance among its owners: kept, not deleted"
        return None
    if owning.is_ours(live, tracking=own.tracking, app=app, recorded=True):
        return None
    found = owning.tracking_of(live)
    if found is None:
        return "now carries no fleet tracking id (not managed by fleet): kept, not deleted"
    return f"now owned by {owning.describe_owner(found)}: kept, not deleted"


def _recreated(entry: Entry, live: Manifest) -> str | None:
    """Why `live` is held: our tracking id on an object fleet did not create (another uid)."""
    if entry.uid and _uid(live) and entry.uid != _uid(live):
        return (
            f"its uid is {_uid(live)}, not the {entry.uid} fleet recorded (recreated outside "
            "fleet?): kept; delete it by hand, or remove its fleet.dev/tracking-id to let it go"
        )
    return None


def decide(
    candidates: Mapping[ObjectKey, Entry],
    *,
    inventory: Mapping[ObjectKey, Entry],
    rendered: int,
    live: Mapping[ObjectKey, Manifest],
    app: str,
    ownership: Ownership,
    policy: PrunePolicy,
    rewound: str | None,
    holds: Mapping[ObjectKey, str],
) -> Pruning:
    """Decide each candidate (see the module); `rendered` counts the render's own objects."""
    if not candidates:
        return Pruning()
    prunes: list[tuple[Step, Entry]] = []
    releases: list[Step] = []
    blocked: list[Blocked] = []
    kept: list[Blocked] = []
    gone: list[ObjectKey] = []
    holding = _holding(rendered=rendered, policy=policy, rewound=rewound)
    for key, entry in sorted(candidates.items()):
        obj = live.get(key)
        if obj is None:
            if holding:
                blocked.append(Blocked(key, entry.api_version, holding, entry))
            else:
                gone.append(key)
            continue
        foreign = _not_ours(key, entry, obj, app=app, own=ownership)
        if foreign is not None:
            kept.append(Blocked(key, entry.api_version, foreign))
            continue
        reason = _recreated(entry, obj) or holds.get(key) or holding
        if reason:
            blocked.append(Blocked(key, entry.api_version, reason, entry))
            continue
        others = set(owning.owners_of(obj).values()) - {ownership.tracking}
        if (entry.shared and others) or (entry.adopted and not ownership.delete_adopted):
            why = (
                f"shared with {len(others)} other app instance(s): this one's owner mark removed"
                if entry.shared
                else "adopted, no longer desired: fleet's marks removed, the object stays"
            )
            releases.append(_step(key, entry, obj, Op.RELEASE, why))
            continue
        reason = _object_refusal(key, obj, policy=policy)
        if reason:
            blocked.append(Blocked(key, entry.api_version, reason, entry))
        else:
            prunes.append((_step(key, entry, obj, Op.PRUNE, "no longer desired"), entry))
    refused = holding if any(b.reason == holding for b in blocked) else None
    if prunes:
        refused = (
            "prune is off for this app"
            if not policy.prune
            else _share_refusal(len(prunes), inventory, policy)
        )
        if refused:
            blocked += [Blocked(s.key, s.api_version, refused, e) for s, e in prunes]
            prunes = []
    order = sorted((s for s, _ in prunes), key=lambda s: (s.stage, s.key), reverse=True)
    return Pruning(
        prunes=tuple(order),
        releases=tuple(sorted(releases, key=lambda s: (s.stage, s.key), reverse=True)),
        blocked=tuple(sorted(blocked, key=lambda b: b.key)),
        kept=tuple(kept),
        gone=tuple(gone),
        refused=refused,
    )


def _step(key: ObjectKey, entry: Entry, live: Manifest, op: Op, reason: str) -> Step:
    return Step(
        key=key,
        api_version=entry.api_version,
        op=op,
        stage=stage_of(key),
        manifest=live,
        reason=reason,
        entry=entry,
    )


def _holding(*, rendered: int, policy: PrunePolicy, rewound: str | None) -> str | None:
    if not rendered and not policy.allow_empty:
        return "the render is empty and the app does not allow empty: nothing is pruned"
    if rewound and not policy.consent:
        return f"{rewound}: the prunes it causes are held until the app's consent"
    return None


def _share_refusal(
    count: int, inventory: Mapping[ObjectKey, Entry], policy: PrunePolicy
) -> str | None:
    owned = sum(not e.shared for e in inventory.values())
    share = count / max(owned, 1)
    if share > policy.max_share and count > policy.small_prune and not policy.consent:
        return (
            f"prune of {count} of {owned} objects ({share:.0%}) is over "
            f"{policy.max_share:.0%} and needs the app's consent"
        )
    return None


def _object_refusal(key: ObjectKey, live: Manifest, *, policy: PrunePolicy) -> str | None:
    opt_ins = {
        _NAMESPACE: (policy.prune_namespaces, "Namespaces"),
        _CRD: (policy.prune_crds, "CRDs"),
        _PVC: (policy.prune_pvcs, "PersistentVolumeClaims"),
    }
    opted_in, plural = opt_ins.get((key.group, key.kind), (True, ""))
    if not opted_in:
        return f"{plural} are pruned only when the app opts in (pruneKinds)"
    metadata = live.get("metadata") or {}
    if str((metadata.get("annotations") or {}).get(PRUNE_ANNOTATION, "")).lower() == "false":
        return f'annotated {PRUNE_ANNOTATION}: "false"'
    if not options.options_of(live).prune:
        return f"annotated {options.SYNC_OPTIONS}: Prune=false: kept, never pruned"
    return None
