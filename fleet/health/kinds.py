"""One small pure function per kind: a live object (a plain mapping) to its :class:`Health`.

Workloads are judged from their status as the controllers write it: a status older than the spec
(``observedGeneration`` behind ``generation``) is Progressing whatever it says. Kinds without a
notion of readiness are Healthy once they exist; a custom resource with a ``Ready`` condition is
judged by it (and ``Stalled`` means Degraded, as in kstatus).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from fleet.health.model import Health, Status
from fleet.types import Manifest

__all__ = ["assess", "checks"]

HEALTHY = Health(Status.HEALTHY)


def _status(obj: Manifest) -> dict[str, Any]:
    return dict(obj.get("status") or {})


def _conditions(obj: Manifest) -> dict[str, Mapping[str, Any]]:
    return {str(c.get("type")): c for c in _status(obj).get("conditions") or []}


def _is(obj: Manifest, kind: str, status: str = "True") -> bool:
    return _conditions(obj).get(kind, {}).get("status") == status


def _stale(obj: Manifest) -> Health | None:
    generation = (obj.get("metadata") or {}).get("generation")
    observed = _status(obj).get("observedGeneration")
    if generation is not None and (observed is None or observed < generation):
        return Health(Status.PROGRESSING, "waiting for the controller to observe the spec")
    return None


def deployment(obj: Manifest) -> Health:
    spec, status = obj.get("spec") or {}, _status(obj)
    if spec.get("paused"):
        return Health(Status.SUSPENDED, "rollout is paused")
    stale = _stale(obj)
    if stale:
        return stale
    progressing = _conditions(obj).get("Progressing", {})
    if progressing.get("reason") == "ProgressDeadlineExceeded":
        return Health(Status.DEGRADED, str(progressing.get("message", "progress deadline")))
    return _rollout(int(spec.get("replicas", 1)), status)


def _rollout(wanted: int, status: Mapping[str, Any]) -> Health:
    updated = int(status.get("updatedReplicas", 0))
    available = int(status.get("availableReplicas", 0))
    if updated < wanted:
        return Health(Status.PROGRESSING, f"{updated} of {wanted} replicas updated")
    if int(status.get("replicas", 0)) > updated:
        return Health(Status.PROGRESSING, "old replicas are pending termination")
    if available < updated:
        return Health(Status.PROGRESSING, f"{available} of {updated} updated replicas available")
    return HEALTHY


def stateful_set(obj: Manifest) -> Health:
    spec, status = obj.get("spec") or {}, _status(obj)
    stale = _stale(obj)
    if stale:
        return stale
    wanted = int(spec.get("replicas", 1))
    ready = int(status.get("readyReplicas", 0))
    if ready < wanted:
        return Health(Status.PROGRESSING, f"{ready} of {wanted} replicas ready")
    strategy = spec.get("updateStrategy") or {}
    if strategy.get("type", "RollingUpdate") == "RollingUpdate":
        partition = int((strategy.get("rollingUpdate") or {}).get("partition", 0))
        updated = int(status.get("updatedReplicas", 0))
        if updated < wanted - partition:
            return Health(Status.PROGRESSING, f"{updated} of {wanted - partition} updated")
        if not partition and status.get("updateRevision") != status.get("currentRevision"):
            return Health(Status.PROGRESSING, "rolling update in progress")
    return HEALTHY


def daemon_set(obj: Manifest) -> Health:
    status = _status(obj)
    stale = _stale(obj)
    if stale:
        return stale
    wanted = int(status.get("desiredNumberScheduled", 0))
    updated = int(status.get("updatedNumberScheduled", 0))
    available = int(status.get("numberAvailable", 0))
    if updated < wanted:
        return Health(Status.PROGRESSING, f"{updated} of {wanted} pods updated")
    if available < wanted:
        return Health(Status.PROGRESSING, f"{available} of {wanted} pods available")
    return HEALTHY


def replica_set(obj: Manifest) -> Health:
    stale = _stale(obj)
    if stale:
        return stale
    failure = _conditions(obj).get("ReplicaFailure", {})
    if failure.get("status") == "True":
        return Health(Status.DEGRADED, str(failure.get("message", "replica failure")))
    wanted = int((obj.get("spec") or {}).get("replicas", 1))
    available = int(_status(obj).get("availableReplicas", 0))
    if available < wanted:
        return Health(Status.PROGRESSING, f"{available} of {wanted} replicas available")
    return HEALTHY


def job(obj: Manifest) -> Health:
    conditions = _conditions(obj)
    if conditions.get("Failed", {}).get("status") == "True":
        return Health(Status.DEGRADED, str(conditions["Failed"].get("message", "job failed")))
    if conditions.get("Complete", {}).get("status") == "True":
        return HEALTHY
    if (obj.get("spec") or {}).get("suspend"):
        return Health(Status.SUSPENDED, "job is suspended")
    return Health(Status.PROGRESSING, "job is running")


_BAD_WAITING = {
    "CrashLoopBackOff",
    "ImagePullBackOff",
    "ErrImagePull",
    "CreateContainerError",
    "InvalidImageName",
    "CreateContainerConfigError",
}


def pod(obj: Manifest) -> Health:
    status = _status(obj)
    phase = status.get("phase", "Pending")
    if phase == "Succeeded":
        return HEALTHY
    if phase == "Failed":
        return Health(Status.DEGRADED, str(status.get("message") or "pod failed"))
    for container in status.get("containerStatuses") or []:
        waiting = (container.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in _BAD_WAITING:
            return Health(Status.DEGRADED, f"{container.get('name')}: {waiting.get('reason')}")
    if phase == "Running" and _is(obj, "Ready"):
        return HEALTHY
    return Health(Status.PROGRESSING, f"pod is {phase}")


def pvc(obj: Manifest) -> Health:
    phase = _status(obj).get("phase", "Pending")
    if phase == "Bound":
        return HEALTHY
    if phase == "Lost":
        return Health(Status.DEGRADED, "volume lost")
    return Health(Status.PROGRESSING, f"claim is {phase}")


def service(obj: Manifest) -> Health:
    if (obj.get("spec") or {}).get("type") != "LoadBalancer":
        return HEALTHY
    ingress = (_status(obj).get("loadBalancer") or {}).get("ingress") or []
    if ingress:
        return HEALTHY
    return Health(Status.PROGRESSING, "waiting for a load balancer address")


def crd(obj: Manifest) -> Health:
    if _is(obj, "NamesAccepted", "False"):
        return Health(Status.DEGRADED, str(_conditions(obj)["NamesAccepted"].get("message", "")))
    if _is(obj, "Established"):
        return HEALTHY
    return Health(Status.PROGRESSING, "not Established yet")


def generic(obj: Manifest) -> Health:
    """Any other kind: by its ``Ready``/``Stalled`` conditions, Healthy when it has none."""
    conditions = _conditions(obj)
    if conditions.get("Stalled", {}).get("status") == "True":
        return Health(Status.DEGRADED, str(conditions["Stalled"].get("message", "stalled")))
    ready = conditions.get("Ready")
    if ready is None:
        return HEALTHY
    if ready.get("status") == "True":
        return _stale(obj) or HEALTHY
    if ready.get("status") == "False" and not _is(obj, "Reconciling"):
        return Health(Status.DEGRADED, str(ready.get("message") or ready.get("reason") or ""))
    return Health(Status.PROGRESSING, str(ready.get("message") or "not ready yet"))


checks: dict[tuple[str, str], Callable[[Manifest], Health]] = {
    ("apps", "Deployment"): deployment,
    ("apps", "StatefulSet"): stateful_set,
    ("apps", "DaemonSet"): daemon_set,
    ("apps", "ReplicaSet"): replica_set,
    ("batch", "Job"): job,
    ("", "Pod"): pod,
    ("", "PersistentVolumeClaim"): pvc,
    ("", "Service"): service,
    ("apiextensions.k8s.io", "CustomResourceDefinition"): crd,
}


def assess(group: str, kind: str, obj: Manifest | None) -> Health:
    """The health of one object; Missing when it does not exist."""
    if obj is None:
        return Health(Status.MISSING, "not found in the cluster")
    if (obj.get("metadata") or {}).get("deletionTimestamp"):
        return Health(Status.PROGRESSING, "being deleted")
    try:
        return checks.get((group, kind), generic)(obj)
    except (TypeError, ValueError, AttributeError) as exc:
        return Health(Status.UNKNOWN, f"unreadable status: {exc}")
