"""A :class:`fleet.apply.Cluster` connected to the kit's first cluster."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from fleet import apply
from fleet.controlplane import RunningCluster


@pytest.fixture
async def cluster(kit_clusters: list[RunningCluster]) -> AsyncIterator[apply.Cluster]:
    async with apply.connect(kit_clusters[0].kubeconfig) as connected:
        yield connected
