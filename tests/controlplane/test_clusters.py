"""The kit's clusters are real: apply, schedule, become Available, and delete namespaces.

Each cluster, through kubernetes-asyncio: server-side-apply a Namespace and a Deployment, watch the
Deployment become Available (its Pods Ready on the kwok node, through controller-manager and
scheduler), delete the Namespace and see it gone (the namespace controller finalises it).
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest
from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.rest import ApiException

from fleet.controlplane import LocalProvider, RunningCluster

pytestmark = pytest.mark.anyio

APPLY = "application/apply-patch+yaml"
# The generated client accepts `_content_type` through **kwargs, which its annotations omit;
# hence the `type: ignore[call-arg]` on the two server-side-apply calls below.


def _deployment(namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": namespace},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "registry.local/web:1"}]},
            },
        },
    }


async def _exercise(cluster: RunningCluster) -> None:
    namespace = f"kit-check-{cluster.name}"
    async with await config.new_client_from_config(config_file=str(cluster.kubeconfig)) as api:
        core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
        await core.patch_namespace(
            namespace,
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
            field_manager="fleet-test",
            force=True,
            _content_type=APPLY,  # type: ignore[call-arg]
        )
        applied = await apps.patch_namespaced_deployment(
            "web",
            namespace,
            _deployment(namespace),
            field_manager="fleet-test",
            force=True,
            _content_type=APPLY,  # type: ignore[call-arg]
        )
        managers = {m.manager for m in applied.metadata.managed_fields}
        assert "fleet-test" in managers

        with anyio.fail_after(90):
            while True:
                dep = await apps.read_namespaced_deployment_status("web", namespace)
                conditions = {c.type: c.status for c in dep.status.conditions or []}
                if conditions.get("Available") == "True" and dep.status.ready_replicas == 2:
                    break
                await anyio.sleep(0.3)
        pods = await core.list_namespaced_pod(namespace, label_selector="app=web")
        assert len(pods.items) == 2
        for pod in pods.items:
            assert pod.spec.node_name == "kwok-node-0"
            assert pod.status.phase == "Running"

        await core.delete_namespace(namespace)
        with anyio.fail_after(90):
            while True:
                try:
                    await core.read_namespace(namespace)
                except ApiException as exc:
                    assert exc.status == 404
                    break
                await anyio.sleep(0.3)


async def test_each_cluster_applies_schedules_and_deletes(
    kit_clusters: list[RunningCluster],
) -> None:
    assert len(kit_clusters) >= 2
    assert len({c.server for c in kit_clusters}) == len(kit_clusters)
    async with anyio.create_task_group() as tg:
        for cluster in kit_clusters:
            tg.start_soon(_exercise, cluster)


async def test_kubeconfig_carries_labels_and_is_private(
    kit_clusters: list[RunningCluster],
) -> None:
    import yaml

    for cluster in kit_clusters:
        assert cluster.kubeconfig.stat().st_mode & 0o077 == 0
        document = yaml.safe_load(cluster.kubeconfig.read_text())
        context = document["contexts"][0]
        assert context["name"] == cluster.name == cluster.kubeconfig.stem
        extension = context["context"]["extensions"][0]
        assert extension["name"] == "fleet"
        assert extension["extension"]["labels"]["env"] == "test"


async def test_clusters_are_isolated(kit_clusters: list[RunningCluster]) -> None:
    """A namespace made in one cluster does not exist in another (distinct etcd prefixes),
    and one cluster's credentials are refused by another (distinct CAs)."""
    first, second = kit_clusters[0], kit_clusters[1]
    async with await config.new_client_from_config(config_file=str(first.kubeconfig)) as api:
        await client.CoreV1Api(api).create_namespace(
            client.V1Namespace(metadata=client.V1ObjectMeta(name="only-in-first"))
        )
    async with await config.new_client_from_config(config_file=str(second.kubeconfig)) as api:
        with pytest.raises(ApiException) as missing:
            await client.CoreV1Api(api).read_namespace("only-in-first")
        assert missing.value.status == 404
    loader_cfg = client.Configuration()
    await config.load_kube_config(
        config_file=str(first.kubeconfig), client_configuration=loader_cfg
    )
    loader_cfg.host = second.server
    async with client.ApiClient(loader_cfg) as api:
        with pytest.raises((aiohttp.ClientError, ssl.SSLError)):  # the CA differs
            await client.CoreV1Api(api).list_namespace()


async def test_apiserver_outage_and_recovery(tmp_path: Path) -> None:
    """stop_apiserver / start_apiserver: the outage tests of the hub stand on this."""
    with LocalProvider(kubeconfig_dir=tmp_path, progress=lambda _: None) as kit:
        (cluster,) = kit.up(["outage"])
        async with await config.new_client_from_config(config_file=str(cluster.kubeconfig)) as api:
            core = client.CoreV1Api(api)
            await core.create_namespace(
                client.V1Namespace(metadata=client.V1ObjectMeta(name="kept"))
            )
            kit.stop_apiserver("outage")
            with pytest.raises(aiohttp.ClientConnectionError):
                await core.read_namespace("kept")
            kit.start_apiserver("outage")
            assert (await core.read_namespace("kept")).metadata.name == "kept"
