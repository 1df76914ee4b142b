"""Drift against a real cluster: a hand edit of a managed Deployment is seen and reverted."""

from __future__ import annotations

import functools
import time
import uuid

import anyio
import pytest

from fleet import apply
from fleet.reconcile.drifting import watch_drift
from fleet.reconcile.syncing import AppSync, SyncResult, sync
from fleet.types import ObjectKey, RenderedSet

pytestmark = pytest.mark.anyio


async def test_hand_edit_is_detected_and_reverted_with_self_heal(cluster: apply.Cluster) -> None:
    namespace = f"drift-{uuid.uuid4().hex[:8]}"
    app = AppSync(name=f"app-{namespace}", namespace=namespace)
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c", "image": "registry.local/app:1"}]},
            },
        },
    }
    rendered = RenderedSet.of(
        [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}, deployment]
    )
    assert (await sync(cluster, app, rendered)).changes.ok
    seen: list[tuple[list[ObjectKey], SyncResult | None]] = []
    healed = anyio.Event()

    async def on_drift(keys: list[ObjectKey], result: SyncResult | None) -> None:
        seen.append((keys, result))
        healed.set()

    path = f"/apis/apps/v1/namespaces/{namespace}/deployments/web"
    async with anyio.create_task_group() as tg:
        await tg.start(
            functools.partial(
                watch_drift, cluster, app, rendered, self_heal=True, on_drift=on_drift
            )
        )
        edited_at = time.monotonic()
        await cluster.request(
            "PATCH",
            path,
            query=[("fieldManager", "kubectl-edit")],
            body={"spec": {"replicas": 3}},
            content_type="application/merge-patch+json",
        )
        with anyio.fail_after(60):
            await healed.wait()
        elapsed = time.monotonic() - edited_at
        tg.cancel_scope.cancel()
    print(f"drift detected and healed {elapsed:.2f}s after the edit")
    ((keys, result),) = seen
    assert keys == [ObjectKey("apps", "Deployment", namespace, "web")]
    assert result is not None and [c.key for c in result.changes.of(apply.Outcome.CONFIGURED)] == (
        keys
    )
    assert (await cluster.request("GET", path))["spec"]["replicas"] == 1
    await cluster.request("DELETE", f"/api/v1/namespaces/{namespace}")
