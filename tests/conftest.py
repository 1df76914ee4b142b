"""Session fixtures: real local clusters from :mod:`fleet.controlplane`, started once.

``kit_clusters`` hands tests K ready clusters (``FLEET_TEST_CLUSTERS``, default 2) and their
kubeconfigs; tests that use it are marked ``clusters``. The kit is stopped when the session ends,
also when a test fails or the run is interrupted; its processes die with the session even on
SIGKILL (see :mod:`fleet.controlplane.processes`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleet.controlplane import LocalProvider, RunningCluster, processes

_KITS: list[str] = []


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "kit_clusters" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.clusters)


@pytest.fixture(scope="session")
def kit_clusters(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[RunningCluster]]:
    count = int(os.environ.get("FLEET_TEST_CLUSTERS", "2"))
    directory: Path = tmp_path_factory.mktemp("clusters")
    with LocalProvider(kubeconfig_dir=directory) as kit:
        _KITS.append(kit.kit_id)
        yield kit.up(
            [f"test-{i}" for i in range(1, count + 1)],
            labels={f"test-{i}": {"env": "test", "index": str(i)} for i in range(1, count + 1)},
        )


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run if a process of this session's kit is still alive after teardown."""
    leftovers = {pid: kit for pid, kit in processes.find_marked().items() if kit in _KITS}
    if leftovers:
        print(f"\nerror: kit processes outlived the session: {leftovers}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
