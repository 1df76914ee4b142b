"""The hub writes the inventory records it held, after the wave and at its stop.

A real git remote, one kit cluster, the hub in-process. A commit that changes a ConfigMap's value
(the same objects) converges, and the cluster's inventory then comes to name that commit, written
by the hub's rounds (:mod:`fleet.reconcile.writebehind`); with the rounds put off, the hub's
graceful stop writes what it holds. What the inventory says is read from the cluster.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import anyio
import pytest

from fleet import apply
from fleet.apply.inventory import NAMESPACE
from fleet.controlplane import RunningCluster
from fleet.hub.hub import Hub
from fleet.hub.webhooks import Push
from tests.hub.hubkit import configmap, drop, fleet_yaml, hub_settings, namespace_doc, until
from tests.hub.hubkit import value_on as value_in
from tests.sources.gitkit import Remote

pytestmark = [pytest.mark.anyio, pytest.mark.clusters]

KUSTOMIZATION = "resources: [namespace.yaml, settings.yaml]\n"


async def revision_recorded(cluster: RunningCluster, namespace: str) -> str | None:
    """The revision of the inventory that lists this test's namespace, as the cluster says."""
    async with apply.connect(cluster.kubeconfig) as api:
        found = await api.request(
            "GET",
            f"/api/v1/namespaces/{NAMESPACE}/configmaps",
            query=[("labelSelector", "app.kubernetes.io/component=fleet-inventory")],
        )
    for item in found.get("items") or ():
        inventory = apply.Inventory.from_configmap(item["metadata"]["name"], item)
        if any(key.namespace == namespace for key in inventory.entries):
            return inventory.revision
    return None


async def test_held_records_reach_the_cluster_after_the_wave_and_at_the_stop(
    kit_clusters: list[RunningCluster], tmp_path: Path
) -> None:
    cluster = kit_clusters[0]
    namespace = f"behind-{uuid.uuid4().hex[:8]}"
    remote = Remote(tmp_path / "git", name="config")

    def commit(value: str) -> str:
        return remote.commit(
            {
                "app/kustomization.yaml": KUSTOMIZATION,
                "app/namespace.yaml": namespace_doc(namespace),
                "app/settings.yaml": configmap(namespace, value),
            },
            message=f"value {value}",
        )

    first = commit("1")
    settings = hub_settings(tmp_path)
    settings.config_path.write_text(fleet_yaml(str(remote.bare), namespace))
    drop(cluster, settings.clusters_dir)
    pushed = Push(provider="test", urls=(str(remote.bare),), ref="refs/heads/main", after="")
    hub = Hub(settings)
    behind = hub.reconciler.behind

    async def converged(value: str) -> bool:
        return await value_in(cluster, namespace) == value

    async def recorded(sha: str) -> bool:
        return await revision_recorded(cluster, namespace) == sha

    async with anyio.create_task_group() as group:
        await group.start(hub.run)
        await until(lambda: converged("1"))
        await until(lambda: recorded(first))  # new objects: recorded at once

        second = commit("2")
        await hub.on_push(pushed)
        await until(lambda: converged("2"))
        await until(lambda: recorded(second))  # by a round, once nothing more was held
        assert behind.written >= 1

        behind.settle = behind.max_age = 3600.0  # no more rounds: only the stop writes
        third = commit("3")
        await hub.on_push(pushed)
        await until(lambda: converged("3"))
        await until(lambda: len(behind) == 1)
        assert await revision_recorded(cluster, namespace) == second  # held, not yet written
        hub.stop()
    assert len(behind) == 0
    assert await revision_recorded(cluster, namespace) == third
