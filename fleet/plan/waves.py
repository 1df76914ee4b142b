"""The ordered steps of one sync: phases, then waves, then Argo CD's kind order. Pure.

A sync runs, in order: the PreSync hooks, the Sync phase, then the PostSync hooks; the SyncFail
hooks only when a step failed (:func:`failure_waves`). Within a phase, objects and hooks are
grouped by ``argocd.argoproj.io/sync-wave`` (an integer, default 0, negative allowed; a Helm
hook's ``helm.sh/hook-weight`` when it has no sync-wave), lowest first. Within a wave, the writes
go in batches: Namespaces, then CRDs (waited on until Established), then everything else, each
batch sent concurrently and listed in Argo CD's kind order (Helm's install order: policies,
accounts, config, storage, RBAC, Services, workloads, Ingresses; unknown kinds last), then by
name. The destination Namespace of ``createNamespace`` is written first of all, in the first
PreSync wave when there are PreSync hooks, as Argo CD does. A sync-wave that is not an integer
is a :class:`~fleet.errors.StalledError` naming the object and the annotation, raised before
anything is written.

The sync (not this module) waits for every object and hook of a wave to be Healthy before the
next wave starts, and runs no gate after the last one: an app of one wave behaves as before.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from fleet.errors import StalledError
from fleet.plan.hooks import Hook, Phase, describe
from fleet.plan.model import Step
from fleet.types import Manifest, ObjectKey

__all__ = [
    "HELM_WEIGHT",
    "KIND_ORDER",
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

    @property
    def name(self) -> str:
        """How messages name it: ``sync wave 1``, ``PreSync wave 0``."""
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
    shared = [s for s in steps if early and s.entry is not None and s.entry.shared]
    waves = _waves(Phase.PRE_SYNC, (), early)
    if shared:  # the createNamespace Namespace goes first, as in Argo CD: hooks run in it
        first = waves[0]
        waves[0] = Wave(first.phase, first.number, tuple(shared), first.hooks)
    waves += _waves(Phase.SYNC, [s for s in steps if s not in shared], of(Phase.SYNC))
    waves += _waves(Phase.POST_SYNC, (), of(Phase.POST_SYNC))
    return tuple(waves)


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
