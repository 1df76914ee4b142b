"""Pair desired objects with the inventory and the live objects: the plan, without I/O.

For each desired object: no live object -> create; the live object carries the same digest
annotation and every desired field -> unchanged (no write at all); the digest differs -> update;
the digest matches but a field differs -> update with ``verify`` (drift, or a value the server
normalises; apply dry-runs before writing). Prune candidates are the inventory minus the desired
set. Safety rules, checked in this order, refuse them:

1. the render failed (`manifests` is None): nothing is applied, nothing pruned;
2. the render is empty and the app does not allow empty: nothing pruned;
3. prune is off for the app;
4. the prune deletes more than ``max_share`` of the inventory (and more than ``small_prune``
   objects) without consent;
5. per object: a Namespace, CRD or PVC without the app's opt-in; a ``fleet.dev/prune: "false"``
   annotation; a live object that does not carry this app's label (someone else's now).

A candidate with no live object is already gone: it leaves the inventory without a delete.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from fleet.plan import comparing
from fleet.plan.model import (
    APP_LABEL,
    DIGEST_ANNOTATION,
    PRUNE_ANNOTATION,
    Blocked,
    DesiredObject,
    Op,
    Plan,
    PrunePolicy,
    Stage,
    Step,
)
from fleet.types import Manifest, ObjectKey

__all__ = ["make_plan", "stage_of"]

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


def make_plan(
    desired: Sequence[DesiredObject] | None,
    *,
    app: str,
    inventory: Mapping[ObjectKey, str],
    live: Mapping[ObjectKey, Manifest],
    policy: PrunePolicy,
    ignore: Iterable[comparing.IgnoreRule] = (),
) -> Plan:
    """The plan for one app on one cluster; `desired` is None when the render failed.

    `inventory` maps each object the app applied before to its apiVersion; `live` holds the live
    objects found for desired and inventory keys (absent key: no such object).
    """
    if desired is None:
        kept = tuple(
            Blocked(key=k, api_version=v, reason="render failed: nothing is pruned")
            for k, v in sorted(inventory.items())
        )
        return Plan(applies=(), prunes=(), blocked=kept, refused="render failed")
    rules = tuple(ignore)
    valid = [d for d in desired if d.problem is None]
    invalid = tuple(d for d in desired if d.problem is not None)
    applies = tuple(
        sorted(
            (_apply_step(d, live.get(d.key), rules) for d in valid),
            key=lambda s: (s.stage, s.key),
        )
    )
    wanted = {d.key for d in desired}
    candidates = {k: v for k, v in inventory.items() if k not in wanted}
    refused = _refusal(desired, inventory, candidates, policy)
    prunes: list[Step] = []
    blocked: list[Blocked] = []
    gone: list[ObjectKey] = []
    for key, api_version in sorted(candidates.items()):
        obj = live.get(key)
        reason = refused or _object_refusal(key, obj, app=app, policy=policy)
        if reason:
            blocked.append(Blocked(key=key, api_version=api_version, reason=reason))
        elif obj is None:
            gone.append(key)
        else:
            prunes.append(
                Step(
                    key=key,
                    api_version=api_version,
                    op=Op.PRUNE,
                    stage=stage_of(key),
                    manifest=obj,
                    reason="no longer desired",
                )
            )
    prunes.sort(key=lambda s: (s.stage, s.key), reverse=True)
    return Plan(
        applies=applies,
        prunes=tuple(prunes),
        blocked=tuple(blocked),
        invalid=invalid,
        refused=refused,
        gone=tuple(gone),
    )


def _apply_step(
    desired: DesiredObject, live: Manifest | None, rules: tuple[comparing.IgnoreRule, ...]
) -> Step:
    stage = stage_of(desired.key)

    def step(op: Op, reason: str, *, verify: bool = False) -> Step:
        return Step(
            key=desired.key,
            api_version=desired.api_version,
            op=op,
            stage=stage,
            manifest=desired.manifest,
            reason=reason,
            verify=verify,
        )

    if live is None:
        return step(Op.CREATE, "not found in the cluster")
    annotations = (live.get("metadata") or {}).get("annotations") or {}
    same_digest = annotations.get(DIGEST_ANNOTATION) == desired.digest
    pointers = comparing.pointers_for(rules, desired.key)
    if comparing.in_sync(desired.manifest, live, ignore=pointers):
        if same_digest:
            return step(Op.UNCHANGED, "in sync")
        return step(Op.UPDATE, "fields fleet set before may have to be removed")
    if same_digest:
        return step(Op.UPDATE, "live fields differ from the last apply", verify=True)
    return step(Op.UPDATE, "desired state changed")


def _refusal(
    desired: Sequence[DesiredObject],
    inventory: Mapping[ObjectKey, str],
    candidates: Mapping[ObjectKey, str],
    policy: PrunePolicy,
) -> str | None:
    if not candidates:
        return None
    if not desired and not policy.allow_empty:
        return "the render is empty and the app does not allow empty: nothing is pruned"
    if not policy.prune:
        return "prune is off for this app"
    share = len(candidates) / max(len(inventory), 1)
    if share > policy.max_share and len(candidates) > policy.small_prune and not policy.consent:
        return (
            f"prune of {len(candidates)} of {len(inventory)} objects ({share:.0%}) is over "
            f"{policy.max_share:.0%} and needs the app's consent"
        )
    return None


def _object_refusal(
    key: ObjectKey, live: Manifest | None, *, app: str, policy: PrunePolicy
) -> str | None:
    opt_ins = {
        _NAMESPACE: (policy.prune_namespaces, "Namespaces"),
        _CRD: (policy.prune_crds, "CRDs"),
        _PVC: (policy.prune_pvcs, "PersistentVolumeClaims"),
    }
    opted_in, plural = opt_ins.get((key.group, key.kind), (True, ""))
    if not opted_in:
        return f"{plural} are pruned only when the app opts in"
    if live is None:
        return None
    metadata = live.get("metadata") or {}
    if str((metadata.get("annotations") or {}).get(PRUNE_ANNOTATION, "")).lower() == "false":
        return f'annotated {PRUNE_ANNOTATION}: "false"'
    owner = (metadata.get("labels") or {}).get(APP_LABEL)
    if owner != app:
        return f"not labelled {APP_LABEL}={app} (found {owner!r}): not this app's to delete"
    return None
