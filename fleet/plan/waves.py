"""The ordered steps of one sync: phases, then waves, then Argo CD's kind order. Pure.

A sync runs, in order: the PreSync hooks, the Sync phase, then the PostSync hooks; the SyncFail
hooks only when a step failed (:func:`failure_waves`). Within a phase, objects and hooks are
grouped by ``argocd.argoproj.io/sync-wave`` (an integer, default 0, negative allowed; a Helm
hook's ``helm.sh/hook-weight`` when it has no sync-wave), lowest first. Within a wave, the writes
go in batches: Namespaces, then CRDs (waited on until Established), then everything else, each
batch sent concurrently and listed in Argo CD's kind order (Helm's install order: policies,
accounts, config, storage, RBAC, Services, workloads, Ingresses; unknown kinds last), then by
name.

Namespaces go first when something earlier needs them: the destination Namespace of
``createNamespace`` is written first of all, in a wave of its own (the ``namespace wave``) before
the earliest one, PreSync or Sync, as Argo CD does; so is any Namespace of the render (to be
created or updated) that a PreSync hook lives in, or an object or Sync hook of a wave earlier than
the Namespace's own. Otherwise a ConfigMap in wave -1 of a Namespace in wave 0 fails on a fresh
cluster, the run stops before the Namespace, and no retry ever gets further. A Namespace whose
objects are all in its own wave or later stays in its wave (written first within it). A
sync-wave that is not an integer is a :class:`~fleet.errors.StalledError` naming the object and
the annotation, raised before anything is written.

The sync (not this module) waits for every object and hook of a wave to be Healthy before the
next wave starts, and runs no gate after the last one: an app of one wave behaves as before.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from fleet.errors import StalledError
from fleet.plan.hooks import Hook, Phase, describe
from fleet.plan.model import Op, Step
from fleet.types import Manifest, ObjectKey

__all__ = [
    "HELM_WEIGHT",
    "KIND_ORDER",
    "NAMESPACE_WAVE",
    "SYNC_WAVE",
    "Wave",
    "batches",
    "failure_waves",
    "kind_rank",
    "schedule",
    "wave_of",
]

SYNC_WAVE = "argocd.argoproj.io/sync-wave"
HELM_WEIGHT = "helm.sh/hook-weight"
NAMESPACE_WAVE = "namespace wave"

KIND_ORDER = (
    "Namespace",
    "CustomResourceDefinition",
    "NetworkPolicy",
    "ResourceQuota",
    "LimitRange",
    "PodSecurityPolicy",
    "PodDisruptionBudget",
    "ServiceAccount",
    "Secret",
    "SecretList",
    "ConfigMap",
    "StorageClass",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "ClusterRole",
    "ClusterRoleList",
    "ClusterRoleBinding",
    "ClusterRoleBindingList",
    "Role",
    "RoleList",
    "RoleBinding",
    "RoleBindingList",
    "Service",
    "DaemonSet",
    "Pod",
    "ReplicationController",
    "ReplicaSet",
    "Deployment",
    "HorizontalPodAutoscaler",
    "StatefulSet",
    "Job",
    "CronJob",
    "IngressClass",
    "Ingress",
    "APIService",
)
_RANKS = {kind: index for index, kind in enumerate(KIND_ORDER)}


def kind_rank(kind: str) -> int:
    """Where `kind` goes within a wave (unknown kinds, custom resources among them, last)."""
    return _RANKS.get(kind, len(KIND_ORDER))


def wave_of(key: ObjectKey, manifest: Manifest) -> int:
    """The object's sync wave (0 when unset); raises StalledError for a value not an integer."""
    annotations = (manifest.get("metadata") or {}).get("annotations") or {}
    for name in (SYNC_WAVE, HELM_WEIGHT):
        if name not in annotations:
            continue
        text = str(annotations[name]).strip()
        try:
            return int(text)
        except ValueError:
            raise StalledError(
                f"{describe(key, manifest)}: annotation {name} is {text!r}, not an integer; "
                'write a whole number such as "-1", "0" or "5"'
            ) from None
    return 0


@dataclass(frozen=True)
class Wave:
    """One step of a sync: the objects (Sync phase only) and hooks of one phase and wave."""

    phase: Phase
    number: int
    steps: tuple[Step, ...] = ()
    hooks: tuple[Hook, ...] = ()
    title: str = ""

    @property
    def name(self) -> str:
        """How messages name it: ``sync wave 1``, ``PreSync wave 0``, ``namespace wave``."""
        if self.title:
            return self.title
        label = "sync" if self.phase is Phase.SYNC else self.phase.value
        return f"{label} wave {self.number}"


def _order(key: ObjectKey) -> tuple[int, ObjectKey]:
    return kind_rank(key.kind), key


def _waves(phase: Phase, steps: Iterable[Step], hooks: Iterable[Hook]) -> list[Wave]:
    by_wave: dict[int, tuple[list[Step], list[Hook]]] = {}
    for step in steps:
        by_wave.setdefault(wave_of(step.key, step.manifest), ([], []))[0].append(step)
    for hook in hooks:
        by_wave.setdefault(wave_of(hook.key, hook.manifest), ([], []))[1].append(hook)
    return [
        Wave(
            phase=phase,
            number=number,
            steps=tuple(sorted(by_wave[number][0], key=lambda s: _order(s.key))),
            hooks=tuple(sorted(by_wave[number][1], key=lambda h: _order(h.key))),
        )
        for number in sorted(by_wave)
    ]


def schedule(
    steps: Sequence[Step], hooks: Sequence[Hook], *, run_hooks: bool = True
) -> tuple[Wave, ...]:
    """The ordered waves of a sync of `steps` (the plan's applies) and `hooks`.

    `run_hooks` False (a resync of the commit already applied): the Sync phase's objects only.
    Raises StalledError for a sync-wave that is not an integer (hooks checked even when not run).
    """
    for hook in hooks:
        wave_of(hook.key, hook.manifest)

    def of(phase: Phase) -> list[Hook]:
        return [h for h in hooks if phase in h.phases] if run_hooks else []

    early = of(Phase.PRE_SYNC)
    ahead = _namespaces_ahead(steps, pre=early, sync=of(Phase.SYNC))
    waves = _waves(Phase.PRE_SYNC, (), early)
    hoisted = {s.key for s in ahead}
    waves += _waves(Phase.SYNC, [s for s in steps if s.key not in hoisted], of(Phase.SYNC))
    if ahead and waves:
        first = waves[0]
        waves.insert(0, Wave(first.phase, first.number, tuple(ahead), title=NAMESPACE_WAVE))
    elif ahead:
        waves = [Wave(Phase.SYNC, 0, tuple(ahead), title=NAMESPACE_WAVE)]
    waves += _waves(Phase.POST_SYNC, (), of(Phase.POST_SYNC))
    return tuple(waves)


def _namespaces_ahead(
    steps: Sequence[Step], *, pre: Sequence[Hook], sync: Sequence[Hook]
) -> list[Step]:
    """The Namespaces written in a wave of their own before all others (see the module): the
    shared createNamespace one, and any other that a PreSync hook, or an object or Sync hook of
    an earlier wave than its own, lives in."""
    writes = [s for s in steps if s.op is not Op.UNCHANGED]
    spaces = [s for s in writes if s.key.kind == "Namespace" and not s.key.group]
    if not spaces:
        return []
    first: dict[str, int] = {}  # namespace -> the earliest Sync wave of an object in it
    for key, manifest in [
        *((s.key, s.manifest) for s in writes),
        *((h.key, h.manifest) for h in sync),
    ]:
        if key.namespace:
            number = wave_of(key, manifest)
            first[key.namespace] = min(number, first.get(key.namespace, number))
    hooked = {h.key.namespace for h in pre}
    ahead = []
    for space in spaces:
        own = wave_of(space.key, space.manifest)
        shared = space.entry is not None and space.entry.shared
        if shared or space.key.name in hooked or first.get(space.key.name, own) < own:
            ahead.append(space)
    return sorted(ahead, key=lambda s: s.key)


def failure_waves(hooks: Sequence[Hook]) -> tuple[Wave, ...]:
    """The SyncFail hooks' waves, run only when a sync failed."""
    return tuple(_waves(Phase.SYNC_FAIL, (), [h for h in hooks if Phase.SYNC_FAIL in h.phases]))


def batches(steps: Sequence[Step]) -> list[tuple[Step, ...]]:
    """A wave's writes in the batches they are sent in: Namespaces, CRDs, then the rest."""
    first = [s for s in steps if s.key.kind == "Namespace" and not s.key.group]
    crds = [s for s in steps if s.key.kind == "CustomResourceDefinition"]
    early = {s.key for s in (*first, *crds)}
    rest = [s for s in steps if s.key not in early]
    return [tuple(b) for b in (first, crds, rest) if b]
