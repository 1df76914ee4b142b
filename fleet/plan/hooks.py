"""Which desired objects are hooks, in which phases they run and when they go. Pure.

A hook is an object annotated ``argocd.argoproj.io/hook`` (a comma list of ``PreSync``, ``Sync``,
``PostSync``, ``SyncFail``, ``Skip``), or, without it, ``helm.sh/hook`` mapped as Argo CD maps
it: ``pre-install``/``pre-upgrade`` -> PreSync, ``post-install``/``post-upgrade`` -> PostSync,
``crd-install`` -> an ordinary object; Helm's other hooks (test, delete, rollback) have no sync
phase and are not applied (a warning says so). ``Skip`` is never applied. An object with
``generateName`` and no hook annotation is run as a Sync hook (it has no name to track), with a
warning. ``PreDelete``/``PostDelete`` are not run (fleet never deletes an app): a warning.

Hooks are not part of the app's inventory: never pruned as app objects, never counted for the
app's sync status. Delete policies (``argocd.argoproj.io/hook-delete-policy``, or Helm's
``helm.sh/hook-delete-policy`` mapped): ``HookSucceeded``, ``HookFailed``,
``BeforeHookCreation`` (the default when none is given, as in Argo CD). An unknown phase or
policy is a :class:`~fleet.errors.StalledError` naming the object and the annotation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from fleet.errors import StalledError
from fleet.plan.model import DesiredObject
from fleet.types import Manifest, ObjectKey

__all__ = [
    "DELETE_POLICY",
    "HELM_DELETE_POLICY",
    "HELM_HOOK",
    "HOOK",
    "DeletePolicy",
    "Hook",
    "Phase",
    "describe",
    "split",
]

HOOK = "argocd.argoproj.io/hook"
DELETE_POLICY = "argocd.argoproj.io/hook-delete-policy"
HELM_HOOK = "helm.sh/hook"
HELM_DELETE_POLICY = "helm.sh/hook-delete-policy"


class Phase(StrEnum):
    """Sync phases, in the order they run (SyncFail only when a step failed)."""

    PRE_SYNC = "PreSync"
    SYNC = "Sync"
    POST_SYNC = "PostSync"
    SYNC_FAIL = "SyncFail"

    @property
    def rank(self) -> int:
        return list(Phase).index(self)


class DeletePolicy(StrEnum):
    HOOK_SUCCEEDED = "HookSucceeded"
    HOOK_FAILED = "HookFailed"
    BEFORE_HOOK_CREATION = "BeforeHookCreation"


_HELM_PHASES = {
    "pre-install": Phase.PRE_SYNC,
    "pre-upgrade": Phase.PRE_SYNC,
    "post-install": Phase.POST_SYNC,
    "post-upgrade": Phase.POST_SYNC,
}
_HELM_POLICIES = {
    "before-hook-creation": DeletePolicy.BEFORE_HOOK_CREATION,
    "hook-succeeded": DeletePolicy.HOOK_SUCCEEDED,
    "hook-failed": DeletePolicy.HOOK_FAILED,
}
_NOT_RUN = {"skip", "predelete", "postdelete"}


@dataclass(frozen=True)
class Hook:
    """One hook to run: the prepared object, its phases and its delete policies.

    `key` has an empty name for a ``generateName`` hook (the server names it on creation).
    """

    key: ObjectKey
    api_version: str
    manifest: Manifest
    phases: frozenset[Phase]
    policies: frozenset[DeletePolicy]

    @property
    def generate_name(self) -> str:
        metadata = self.manifest.get("metadata") or {}
        return "" if metadata.get("name") else str(metadata.get("generateName") or "")


def describe(key: ObjectKey, manifest: Manifest) -> str:
    """An object as messages name it, ``generateName`` objects by their prefix."""
    prefix = "" if key.name else str((manifest.get("metadata") or {}).get("generateName") or "")
    kind = f"{key.group}/{key.kind}" if key.group else key.kind
    name = key.name or f"{prefix}*"
    return f"{kind} {key.namespace}/{name}" if key.namespace else f"{kind} {name}"


def _annotations(manifest: Manifest) -> dict[str, str]:
    metadata = manifest.get("metadata") or {}
    return {str(k): str(v) for k, v in (metadata.get("annotations") or {}).items()}


def _items(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _phases(obj: DesiredObject, warnings: list[str]) -> frozenset[Phase] | None:
    """The phases of `obj` (None: an ordinary object; empty: a hook that is not run)."""
    notes = _annotations(obj.manifest)
    who = describe(obj.key, obj.manifest)
    if HOOK in notes:
        found: set[Phase] = set()
        for item in _items(notes[HOOK]):
            if item.lower() in _NOT_RUN:
                if item.lower() != "skip":
                    warnings.append(
                        f"{who}: {HOOK} {item} is not run by fleet (never deletes apps)"
                    )
                continue
            try:
                found.add(Phase(item))
            except ValueError:
                raise StalledError(
                    f"{who}: annotation {HOOK} has {item!r}; use PreSync, Sync, PostSync, "
                    "SyncFail or Skip"
                ) from None
        return frozenset(found)
    if HELM_HOOK in notes:
        items = [i.lower() for i in _items(notes[HELM_HOOK])]
        if items and all(i == "crd-install" for i in items):
            return None
        mapped = {_HELM_PHASES[i] for i in items if i in _HELM_PHASES}
        unmapped = [i for i in items if i not in _HELM_PHASES and i != "crd-install"]
        if unmapped:
            warnings.append(
                f"{who}: {HELM_HOOK} {', '.join(unmapped)} has no Argo CD sync phase: not run"
            )
        return frozenset(mapped)
    if not obj.key.name:
        warnings.append(f"{who}: generateName without {HOOK}: created as a Sync hook, untracked")
        return frozenset({Phase.SYNC})
    return None


def _policies(obj: DesiredObject) -> frozenset[DeletePolicy]:
    notes = _annotations(obj.manifest)
    who = describe(obj.key, obj.manifest)
    found: set[DeletePolicy] = set()
    if DELETE_POLICY in notes:
        for item in _items(notes[DELETE_POLICY]):
            try:
                found.add(DeletePolicy(item))
            except ValueError:
                raise StalledError(
                    f"{who}: annotation {DELETE_POLICY} has {item!r}; use HookSucceeded, "
                    "HookFailed or BeforeHookCreation"
                ) from None
    elif HELM_DELETE_POLICY in notes:
        for item in _items(notes[HELM_DELETE_POLICY]):
            policy = _HELM_POLICIES.get(item.lower())
            if policy is None:
                raise StalledError(
                    f"{who}: annotation {HELM_DELETE_POLICY} has {item!r}; use "
                    "before-hook-creation, hook-succeeded or hook-failed"
                )
            found.add(policy)
    return frozenset(found or {DeletePolicy.BEFORE_HOOK_CREATION})


def split(
    desired: Sequence[DesiredObject],
) -> tuple[tuple[DesiredObject, ...], tuple[Hook, ...], tuple[str, ...]]:
    """The ordinary objects, the hooks to run, and warnings (hooks not run, and why).

    Invalid objects (``problem`` set) stay ordinary so the plan reports them. Raises
    StalledError for an unknown hook phase or delete policy.
    """
    plain: list[DesiredObject] = []
    hooks: list[Hook] = []
    warnings: list[str] = []
    for obj in desired:
        phases = None if obj.problem is not None else _phases(obj, warnings)
        if phases is None:
            plain.append(obj)
            continue
        if not phases:
            continue
        hooks.append(
            Hook(
                key=obj.key,
                api_version=obj.api_version,
                manifest=obj.manifest,
                phases=phases,
                policies=_policies(obj),
            )
        )
    return tuple(plain), tuple(hooks), tuple(warnings)
