"""Helpers of the conformance tests: manifests, reads and waits on a kit cluster.

Jobs on the kit really run: the kit's kube-controller-manager runs the Job controller and kwok
acts as the kubelet of a fake node (a Pod owned by a Job completes at once). A Job is held back
by ``suspend: true`` (Suspended until the test lifts it, as an operator would), or made to fail
for real by a node selector no node matches plus ``activeDeadlineSeconds`` (the Job controller
marks it Failed, DeadlineExceeded).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import anyio

from fleet import apply
from fleet.apply.kube import ApiError
from fleet.reconcile.waving import WaveOptions
from fleet.types import Manifest

WAVE = "argocd.argoproj.io/sync-wave"
HOOK = "argocd.argoproj.io/hook"
DELETE_POLICY = "argocd.argoproj.io/hook-delete-policy"
SYNC_OPTIONS = "argocd.argoproj.io/sync-options"
COMPARE_OPTIONS = "argocd.argoproj.io/compare-options"

QUICK = WaveOptions(wave_timeout=120.0, sync_timeout=240.0, poll_interval=0.3)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def configmap(
    name: str, *, data: dict[str, str] | None = None, notes: dict[str, str] | None = None
) -> Manifest:
    """A ConfigMap; `notes` are its annotations."""
    metadata: dict[str, Any] = {"name": name}
    if notes:
        metadata["annotations"] = dict(notes)
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata,
        "data": data or {"a": "1"},
    }


def job(
    name: str,
    *,
    generate: bool = False,
    suspend: bool = False,
    failing: bool = False,
    annotations: dict[str, str] | None = None,
) -> Manifest:
    """A Job that completes at once on the kit, or is held (`suspend`), or fails (`failing`)."""
    pod: dict[str, Any] = {
        "restartPolicy": "Never",
        "containers": [{"name": "c", "image": "registry.local/job:1"}],
    }
    spec: dict[str, Any] = {"backoffLimit": 0, "template": {"spec": pod}}
    if suspend:
        spec["suspend"] = True
    if failing:
        pod["nodeSelector"] = {"fleet.dev/no-such-node": "true"}
        spec["activeDeadlineSeconds"] = 2
    metadata: dict[str, Any] = {"generateName": name} if generate else {"name": name}
    if annotations:
        metadata["annotations"] = annotations
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": metadata, "spec": spec}


async def get(cluster: apply.Cluster, path: str) -> Manifest | None:
    try:
        return await cluster.request("GET", path)
    except ApiError as exc:
        if exc.status == 404:
            return None
        raise


def cm_path(namespace: str, name: str) -> str:
    return f"/api/v1/namespaces/{namespace}/configmaps/{name}"


def job_path(namespace: str, name: str = "") -> str:
    return f"/apis/batch/v1/namespaces/{namespace}/jobs" + (f"/{name}" if name else "")


async def jobs_named(cluster: apply.Cluster, namespace: str, prefix: str) -> list[Manifest]:
    """The Jobs of `namespace` whose name starts with `prefix` (and not being deleted)."""
    listing = await cluster.request("GET", job_path(namespace))
    return [
        j
        for j in listing.get("items", [])
        if j["metadata"]["name"].startswith(prefix) and not j["metadata"].get("deletionTimestamp")
    ]


async def until(check: Callable[[], Awaitable[bool]], *, seconds: float = 120.0) -> None:
    """Poll `check` until it holds (no speed asserted: the bound only ends a broken test)."""
    with anyio.fail_after(seconds):
        while True:
            if await check():
                return
            await anyio.sleep(0.3)


async def resume(cluster: apply.Cluster, namespace: str, name: str) -> None:
    """Lift a Job's ``suspend``, as an operator would: the Job controller then runs it."""
    await cluster.request(
        "PATCH",
        job_path(namespace, name),
        body={"spec": {"suspend": False}},
        content_type="application/merge-patch+json",
    )
