"""Fixtures of the ownership tests: a connected kit cluster, and a fresh namespace on it."""

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
    """A namespace made by hand (not by fleet), deleted after the test."""
    name = f"own-{uuid.uuid4().hex[:8]}"
    await cluster.request(
        "POST",
        "/api/v1/namespaces",
        body={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}},
    )
    yield name
    await cluster.request("DELETE", f"/api/v1/namespaces/{name}")
