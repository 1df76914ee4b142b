"""Pair desired objects with the inventory and the live objects: the plan, without I/O.

For each desired object, ownership first (:mod:`fleet.plan.owning`):

- no live object -> create (never forced: an object that appears meanwhile is someone else's);
- a live object that is this instance's -> compared: the same digest annotation and every desired
  field -> unchanged (no write at all); the digest differs -> update; the digest matches but a
  field differs -> update with ``verify`` (drift, or a value the server normalises);
- a live object no fleet app owns -> adopted when the app opts in (``syncPolicy.adopt`` or the
  object's ``fleet.dev/adopt: "true"``), else a :class:`Conflict`;
- a live object of another fleet app instance -> a :class:`Conflict`, always;
- the shared destination Namespace (``createNamespace``) joins the other owners, or, when it exists
  and no fleet app shares it, is used as is (kept, never recorded, never pruned).

Objects a project refused (`refusals`) and invalid ones are not applied. Prune candidates are the
inventory minus the desired set; :mod:`fleet.plan.pruning` decides each of them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

from fleet.plan import comparing, owning, pruning
from fleet.plan.model import (
    DIGEST_ANNOTATION,
    Blocked,
    Conflict,
    DesiredObject,
    Entry,
    Op,
    Ownership,
    Plan,
    PrunePolicy,
    Step,
)
from fleet.plan.pruning import stage_of
from fleet.types import Manifest, ObjectKey

__all__ = ["make_plan", "stage_of"]

_Decision = Step | Conflict | Blocked


def make_plan(
    desired: Sequence[DesiredObject] | None,
    *,
    app: str,
    inventory: Mapping[ObjectKey, str | Entry],
    live: Mapping[ObjectKey, Manifest],
    policy: PrunePolicy,
    ignore: Iterable[comparing.IgnoreRule] = (),
    ownership: Ownership | None = None,
    refusals: Sequence[Blocked] = (),
    prune_holds: Mapping[ObjectKey, str] | None = None,
    rewound: str | None = None,
) -> Plan:
    """The plan for one app instance on one cluster; `desired` is None when the render failed.

    `inventory` maps each object the instance applied before to its :class:`Entry` (or, as old
    callers give it, its apiVersion); `live` holds the live objects found for desired and
    inventory keys (absent key: no such object); `refusals` are desired objects a project
    refused; `prune_holds` the inventory objects it does not let be pruned (key -> reason);
    `rewound` says the desired commit does not descend from the applied one.
    """
    own = ownership or Ownership(tracking=owning.tracking_id(app=app))
    entries = {k: v if isinstance(v, Entry) else Entry(v) for k, v in inventory.items()}
    if desired is None:
        kept = tuple(
            Blocked(
                key=k, api_version=e.api_version, reason="render failed: nothing is pruned", entry=e
            )
            for k, e in sorted(entries.items())
        )
        return Plan(applies=(), prunes=(), blocked=kept, refused="render failed", previous=entries)
    rules = tuple(ignore)
    refused_keys = {r.key for r in refusals}
    held = tuple(
        Blocked(r.key, r.api_version, r.reason, entries.get(r.key))
        for r in sorted(refusals, key=lambda r: r.key)
    )
    valid = [d for d in desired if d.problem is None and d.key not in refused_keys]
    invalid = tuple(d for d in desired if d.problem is not None and d.key not in refused_keys)
    applies: list[Step] = []
    conflicts: list[Conflict] = []
    used: list[Blocked] = []
    for obj in valid:
        decision = _decide(
            obj, live.get(obj.key), entries.get(obj.key), own=own, app=app, rules=rules
        )
        if isinstance(decision, Step):
            applies.append(decision)
        elif isinstance(decision, Conflict):
            conflicts.append(decision)
        else:
            used.append(decision)
    applies.sort(key=lambda s: (s.stage, s.key))
    wanted = {d.key for d in desired}
    pruned = pruning.decide(
        {k: e for k, e in entries.items() if k not in wanted},
        inventory=entries,
        rendered=sum(not d.shared for d in desired),
        live=live,
        app=app,
        ownership=own,
        policy=policy,
        rewound=rewound,
        holds=prune_holds or {},
    )
    return Plan(
        applies=tuple(applies),
        prunes=pruned.prunes,
        blocked=pruned.blocked,
        invalid=invalid,
        refused=pruned.refused,
        gone=pruned.gone,
        conflicts=tuple(conflicts),
        releases=pruned.releases,
        kept=(*used, *pruned.kept),
        refusals=held,
        rewound=rewound,
        previous=entries,
    )


def _uid(live: Manifest) -> str:
    return str((live.get("metadata") or {}).get("uid") or "")


def _decide(
    desired: DesiredObject,
    live: Manifest | None,
    entry: Entry | None,
    *,
    own: Ownership,
    app: str,
    rules: tuple[comparing.IgnoreRule, ...],
) -> _Decision:
    stage = stage_of(desired.key)

    def step(
        op: Op, reason: str, *, verify: bool = False, force: bool = True, **held: bool
    ) -> Step:
        uid = _uid(live) if live is not None else ""
        return Step(
            key=desired.key,
            api_version=desired.api_version,
            op=op,
            stage=stage,
            manifest=desired.manifest,
            reason=reason,
            verify=verify,
            force=force,
            entry=Entry(desired.api_version, uid, **held),
        )

    if live is None:
        return step(Op.CREATE, "not found in the cluster", force=False, shared=desired.shared)
    if desired.shared:
        return _decide_shared(desired, live, entry, own=own, app=app, step=step)
    found = owning.tracking_of(live)
    if owning.is_ours(live, tracking=own.tracking, app=app, recorded=entry is not None):
        adopted = entry.adopted if entry is not None else False
        op, reason, verify = _compare(desired, live, rules)
        return step(op, reason, verify=verify, adopted=adopted)
    sharers = sorted({owning.describe_owner(t) for t in owning.owners_of(live).values()})
    if found is None and not sharers and (own.adopt or desired.adopt):
        why = "the object's fleet.dev/adopt" if desired.adopt else "syncPolicy.adopt"
        return step(Op.ADOPT, f"exists and is not managed by fleet: adopted ({why})", adopted=True)
    owner = owning.describe_owner(found)
    if found is None and sharers:
        owner = "; ".join(sharers)
        reason = (
            f"is shared by {owner} (createNamespace); declare it in git or through "
            "createNamespace, not both"
        )
    elif found is None:
        reason = (
            "exists and is not managed by fleet; set syncPolicy.adopt: true (or annotate it "
            'fleet.dev/adopt: "true" in git) to take it over, or remove it from git'
        )
    else:
        reason = (
            f"is owned by {owner}; declare it in one app only (fleet never takes an object "
            "from another app instance)"
        )
    return Conflict(key=desired.key, api_version=desired.api_version, owner=owner, reason=reason)


def _decide_shared(
    desired: DesiredObject,
    live: Manifest,
    entry: Entry | None,
    *,
    own: Ownership,
    app: str,
    step: Callable[..., Step],
) -> _Decision:
    owners = owning.owners_of(live)
    ours = owning.owner_key(own.tracking) in owners
    legacy = not owners and owning.is_ours(
        live, tracking=own.tracking, app=app, recorded=entry is not None
    )
    if ours or owners or legacy:
        if comparing.in_sync(desired.manifest, live):
            return step(Op.UNCHANGED, "in sync", force=False, shared=True)
        others = len(set(owners.values()) - {own.tracking})
        reason = f"shared Namespace: joins {others} other owner(s)" if not ours else "marks differ"
        return step(Op.UPDATE, reason, force=False, shared=True)
    owner = owning.describe_owner(owning.tracking_of(live))
    return Blocked(
        key=desired.key,
        api_version=desired.api_version,
        reason=f"exists and is {owner}: used as is (createNamespace never takes it over)",
    )


def _compare(
    desired: DesiredObject, live: Manifest, rules: tuple[comparing.IgnoreRule, ...]
) -> tuple[Op, str, bool]:
    annotations = (live.get("metadata") or {}).get("annotations") or {}
    same_digest = annotations.get(DIGEST_ANNOTATION) == desired.digest
    pointers = comparing.pointers_for(rules, desired.key)
    if comparing.in_sync(desired.manifest, live, ignore=pointers):
        if same_digest:
            return Op.UNCHANGED, "in sync", False
        return Op.UPDATE, "fields fleet set before may have to be removed", False
    if same_digest:
        return Op.UPDATE, "live fields differ from the last apply", True
    return Op.UPDATE, "desired state changed", False
