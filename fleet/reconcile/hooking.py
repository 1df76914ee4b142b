"""Run hooks: delete the last run when asked, create, judge completion, delete per policy.

A hook (:mod:`fleet.plan.hooks`) is created with a POST (a ``generateName`` hook is named by the
server), never server-side applied. ``BeforeHookCreation`` (the default) first deletes the hook's
previous run and waits until it is gone: the object of that name, or for a ``generateName`` hook
every object of this app instance (its tracking id) with the same ``generateName``. Never what
is not ours: the object of the hook's name is read first and deleted only when its tracking id is
this app instance's, with its uid as the delete's precondition; someone else's (a user's own Job
``migrate``, another app's) is kept and the hook fails, naming the object and its owner. A hook's
completion is its health (:func:`outcome`): Healthy is success (a Job Complete, a Pod
Succeeded, any kind without a notion of readiness once it exists); Degraded is failure (a Job
Failed, a Pod Failed); anything else when the wait ends is a failure that says the hook did not
complete. Then ``HookSucceeded`` deletes a hook that succeeded and ``HookFailed`` one that failed.

Each hook yields one :class:`~fleet.apply.Change` under the name the server gave it: ``created``
(it ran and succeeded) or ``failed`` with the phase and the reason, so the status shows which
hook failed and why.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from fleet import apply, plan
from fleet.apply import creating
from fleet.apply.kube import ApiError
from fleet.health import Health, Status, assess
from fleet.plan.hooks import DeletePolicy, Hook, Phase, describe
from fleet.types import Manifest, ObjectKey

__all__ = ["Started", "finish", "outcome", "start"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Started:
    """A hook run begun: the object the server created (None: the creation failed, `change`
    says why)."""

    hook: Hook
    phase: Phase
    key: ObjectKey
    live: Manifest | None
    change: apply.Change


def outcome(key: ObjectKey, live: Manifest | None) -> Health:
    """A hook's completion as health: a Pod only ends when it Succeeded or Failed (Running and
    Ready is not done, as in Argo CD); every other kind by :func:`fleet.health.assess`."""
    if live is not None and key.kind == "Pod" and not key.group:
        phase = str((live.get("status") or {}).get("phase") or "Pending")
        if phase == "Succeeded":
            return Health(Status.HEALTHY)
        if phase == "Failed":
            return assess(key.group, key.kind, live)
        return Health(Status.PROGRESSING, f"pod is {phase}")
    return assess(key.group, key.kind, live)


def _metadata(obj: Manifest) -> Mapping[str, object]:
    return obj.get("metadata") or {}


async def _clear_previous(cluster: apply.Cluster, hook: Hook, *, within: float) -> str | None:
    """Delete the hook's previous run (BeforeHookCreation); why it could not, or None.

    Only this app instance's runs are deleted (their tracking id is the hook's), each with its
    uid as the delete's precondition: an object of the hook's name that is someone else's is
    kept, and the hook fails saying whose it is.
    """
    tracking = plan.tracking_of(hook.manifest)
    try:
        keys = await _previous_runs(cluster, hook, tracking=tracking)
    except ApiError as exc:
        return f"could not read its previous run: {exc}"
    except _NotOurs as exc:
        return str(exc)
    for key, uid in keys:
        change = await creating.delete_and_wait(
            cluster, api_version=hook.api_version, key=key, uid=uid, within=within
        )
        if change.outcome is apply.Outcome.FAILED:
            return f"its previous run {apply.object_name(key)} {change.reason}"
    return None


class _NotOurs(Exception):
    """An object with the hook's name that is not this app instance's."""


async def _previous_runs(
    cluster: apply.Cluster, hook: Hook, *, tracking: str | None
) -> list[tuple[ObjectKey, str]]:
    """The previous runs to delete, with their uids; raises _NotOurs for a stranger's object."""
    if hook.key.name:
        live = await creating.read_object(cluster, api_version=hook.api_version, key=hook.key)
        if live is None:
            return []
        found = plan.tracking_of(live)
        if tracking is None or found != tracking:
            raise _NotOurs(
                f"an object of its name exists and is not this app's (owner: "
                f"{plan.describe_owner(found)}); it is kept: give the hook another name or a "
                "generateName, or delete that object if it is no longer wanted"
            )
        return [(hook.key, str(_metadata(live).get("uid") or ""))]
    labels = _metadata(hook.manifest).get("labels") or {}
    app = str(labels.get(plan.APP_LABEL, "")) if isinstance(labels, dict) else ""
    found_runs = await creating.list_labelled(
        cluster,
        api_version=hook.api_version,
        kind=hook.key.kind,
        namespace=hook.key.namespace,
        selector=f"{plan.APP_LABEL}={app}",
    )
    return [
        (ObjectKey.of(obj), str(_metadata(obj).get("uid") or ""))
        for obj in found_runs
        if _metadata(obj).get("generateName") == hook.generate_name
        and plan.tracking_of(obj) == tracking
    ]


def _shown(hook: Hook) -> ObjectKey:
    """The key a hook's failure is shown under: a ``generateName`` hook as ``prefix*``."""
    if hook.key.name:
        return hook.key
    return dataclasses.replace(hook.key, name=f"{hook.generate_name}*")


async def start(
    cluster: apply.Cluster,
    hooks: Sequence[Hook],
    *,
    phase: Phase,
    manager: str,
    within: float,
) -> list[Started]:
    """Create every hook of one wave (its previous run deleted first, per policy)."""
    started: list[Started] = []
    for hook in hooks:
        who = describe(hook.key, hook.manifest)
        problem = None
        if DeletePolicy.BEFORE_HOOK_CREATION in hook.policies:
            problem = await _clear_previous(cluster, hook, within=within)
        shown = _shown(hook)
        if problem is not None:
            change = apply.Change(shown, apply.Outcome.FAILED, f"{phase} hook {who}: {problem}")
            started.append(Started(hook, phase, shown, None, change))
            continue
        created = await creating.create_object(
            cluster,
            api_version=hook.api_version,
            key=hook.key,
            manifest=hook.manifest,
            manager=manager,
        )
        change = created.change
        if created.live is None:
            change = apply.Change(
                shown, apply.Outcome.FAILED, f"{phase} hook {who}: {change.reason}"
            )
        log.info(
            "event=hook_created cluster=%s phase=%s object=%s outcome=%s",
            cluster.name,
            phase.value,
            '"' + str(created.key) + '"',
            change.outcome.value,
        )
        started.append(Started(hook, phase, created.key, created.live, change))
    return started


async def finish(
    cluster: apply.Cluster,
    started: Sequence[Started],
    *,
    health: Mapping[ObjectKey, Health],
    within: float,
) -> list[apply.Change]:
    """Judge each hook by its health (read now when `health` lacks it), delete per policy."""
    missing = {s.key: s.hook.api_version for s in started if s.key not in health}
    live = await apply.read_live(cluster, missing) if missing else {}
    seen = {**health, **{k: outcome(k, live.get(k)) for k in missing}}
    changes: list[apply.Change] = []
    for run in started:
        state = seen[run.key]
        ok = state.status is Status.HEALTHY
        if ok:
            reason = f"{run.phase} hook completed"
        elif state.status is Status.DEGRADED:
            reason = f"{run.phase} hook failed: {state.message or 'no reason given'}"
        else:
            reason = (
                f"{run.phase} hook did not complete before the wait ended "
                f"({state.status.value}: {state.message})"
            )
        policy = DeletePolicy.HOOK_SUCCEEDED if ok else DeletePolicy.HOOK_FAILED
        if policy in run.hook.policies:
            gone = await creating.delete_and_wait(
                cluster,
                api_version=run.hook.api_version,
                key=run.key,
                uid=str(_metadata(run.live or {}).get("uid") or ""),
                within=max(within, 1.0),
            )
            deleted = gone.outcome is apply.Outcome.PRUNED
            reason += f"; deleted ({policy})" if deleted else f"; not deleted: {gone.reason}"
        outcome = apply.Outcome.CREATED if ok else apply.Outcome.FAILED
        log.info(
            "event=hook_done cluster=%s phase=%s object=%s health=%s",
            cluster.name,
            run.phase.value,
            '"' + str(run.key) + '"',
            state.status.value,
        )
        changes.append(apply.Change(run.key, outcome, reason, uid=run.change.uid))
    return changes
