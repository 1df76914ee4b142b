"""Per-kind health on hand-written statuses, and the worst-of ordering."""

from __future__ import annotations

from typing import Any

import pytest

from fleet.health import Health, Status, assess, worst


def dep(spec: dict[str, Any], status: dict[str, Any], generation: int = 1) -> dict[str, Any]:
    return {
        "metadata": {"generation": generation},
        "spec": spec,
        "status": {"observedGeneration": 1, **status},
    }


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        (
            dep({"replicas": 2}, {"replicas": 2, "updatedReplicas": 2, "availableReplicas": 2}),
            Status.HEALTHY,
        ),
        (
            dep({"replicas": 2}, {"replicas": 2, "updatedReplicas": 2, "availableReplicas": 1}),
            Status.PROGRESSING,
        ),
        (
            dep({"replicas": 2}, {"replicas": 3, "updatedReplicas": 2, "availableReplicas": 2}),
            Status.PROGRESSING,
        ),
        (dep({"replicas": 2}, {}, generation=2), Status.PROGRESSING),
        (dep({"paused": True}, {}), Status.SUSPENDED),
        (
            dep(
                {"replicas": 1},
                {
                    "conditions": [
                        {
                            "type": "Progressing",
                            "status": "False",
                            "reason": "ProgressDeadlineExceeded",
                        }
                    ]
                },
            ),
            Status.DEGRADED,
        ),
    ],
)
def test_deployment(obj: dict[str, Any], expected: Status) -> None:
    assert assess("apps", "Deployment", obj).status is expected


def test_job_pod_pvc_service_crd_and_custom() -> None:
    failed = {"status": {"conditions": [{"type": "Failed", "status": "True", "message": "x"}]}}
    assert assess("batch", "Job", failed).status is Status.DEGRADED
    complete = {"status": {"conditions": [{"type": "Complete", "status": "True"}]}}
    assert assess("batch", "Job", complete).status is Status.HEALTHY
    assert assess("batch", "Job", {"spec": {"suspend": True}}).status is Status.SUSPENDED
    crash = {
        "status": {
            "phase": "Running",
            "containerStatuses": [
                {"name": "c", "state": {"waiting": {"reason": "CrashLoopBackOff"}}}
            ],
        }
    }
    assert assess("", "Pod", crash).status is Status.DEGRADED
    ready = {"status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}}
    assert assess("", "Pod", ready).status is Status.HEALTHY
    assert assess("", "PersistentVolumeClaim", {"status": {"phase": "Bound"}}).status is (
        Status.HEALTHY
    )
    assert assess("", "PersistentVolumeClaim", {"status": {"phase": "Pending"}}).status is (
        Status.PROGRESSING
    )
    lb: dict[str, Any] = {"spec": {"type": "LoadBalancer"}, "status": {}}
    assert assess("", "Service", lb).status is Status.PROGRESSING
    lb["status"] = {"loadBalancer": {"ingress": [{"ip": "1.2.3.4"}]}}
    assert assess("", "Service", lb).status is Status.HEALTHY
    assert assess("", "Service", {"spec": {"type": "ClusterIP"}}).status is Status.HEALTHY
    est = {"status": {"conditions": [{"type": "Established", "status": "True"}]}}
    assert assess("apiextensions.k8s.io", "CustomResourceDefinition", est).status is (
        Status.HEALTHY
    )
    not_ready = {"status": {"conditions": [{"type": "Ready", "status": "False"}]}}
    assert assess("example.com", "Widget", not_ready).status is Status.DEGRADED
    assert assess("example.com", "Widget", {}).status is Status.HEALTHY
    assert assess("", "ConfigMap", None).status is Status.MISSING
    sts = {
        "metadata": {"generation": 1},
        "spec": {"replicas": 2},
        "status": {"observedGeneration": 1, "readyReplicas": 1},
    }
    assert assess("apps", "StatefulSet", sts).status is Status.PROGRESSING
    ds = {
        "status": {"desiredNumberScheduled": 1, "updatedNumberScheduled": 1, "numberAvailable": 1}
    }
    assert assess("apps", "DaemonSet", ds).status is Status.HEALTHY
    rs = {
        "spec": {"replicas": 1},
        "status": {"conditions": [{"type": "ReplicaFailure", "status": "True"}]},
    }
    assert assess("apps", "ReplicaSet", rs).status is Status.DEGRADED


def test_order_and_worst() -> None:
    assert [s.rank for s in Status] == sorted(s.rank for s in Status)
    assert list(Status) == [
        Status.HEALTHY,
        Status.SUSPENDED,
        Status.PROGRESSING,
        Status.MISSING,
        Status.DEGRADED,
        Status.UNKNOWN,
    ]
    healths = [Health(Status.HEALTHY), Health(Status.MISSING), Health(Status.PROGRESSING)]
    assert worst(healths).status is Status.MISSING
    assert worst([]).status is Status.HEALTHY
