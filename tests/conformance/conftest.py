"""A :class:`fleet.apply.Cluster` connected to the kit's first cluster, and a fresh namespace."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from fleet import apply
from fleet.controlplane import RunningCluster


@pytest.fixture
async def cluster(kit_clusters: list[RunningCluster]) -> AsyncIterator[apply.Cluster]:
    async with apply.connect(kit_clusters[0].kubeconfig) as connected:
        yield connected


@pytest.fixture
async def namespace(cluster: apply.Cluster) -> AsyncIterator[str]:
    name = f"conf-{uuid.uuid4().hex[:8]}"
    body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
    await cluster.request("POST", "/api/v1/namespaces", body=body)
    yield name
    await cluster.request("DELETE", f"/api/v1/namespaces/{name}")
