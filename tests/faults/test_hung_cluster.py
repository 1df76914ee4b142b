"""A hung apiserver (SIGSTOP: the process frozen, its port still accepting TCP) on kit clusters.

The hub runs as ``fleet run`` (:class:`tests.faults.faultkit.FaultRig`) over real git and two kit
clusters. One apiserver is frozen with SIGSTOP and a commit pushed at once, so the hub's
requests to the frozen cluster hang in flight. The test asserts from outside, as an operator
would: ``/api/status`` shows that cluster not ready (parked, "unreachable ... /readyz") within a
safety limit, the other cluster converges the commit meanwhile, the hung request ended (the
log's ``abandoned`` count, the cell's failed sync naming the cause) and the frozen cluster's cell
never claims the commit it cannot have received; after SIGCONT the cluster is ready again and
converges, with the hub alive throughout. SIGCONT is sent in a ``finally``, whatever happened.
"""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import psutil
import pytest
import yaml

from fleet import apply
from fleet.apply.kube import ApiError, Timeouts
from fleet.controlplane import RunningCluster
from tests.faults.faultkit import FaultRig, fault_rig
from tests.hub.hubkit import all_equal, configmap, fleet_yaml, namespace_doc, until, values

pytestmark = [pytest.mark.anyio, pytest.mark.clusters]

NS = "fault-hung"


def apiserver_pid(cluster: RunningCluster) -> int:
    """The pid of the kube-apiserver serving `cluster` (found by its ``--secure-port``)."""
    flag = f"--secure-port={cluster.port}"
    for proc in psutil.process_iter(["name", "cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if any("kube-apiserver" in part for part in cmdline[:1]) and flag in cmdline:
            return int(proc.pid)
    raise AssertionError(f"no kube-apiserver process serves {cluster.name} on port {cluster.port}")


async def cluster_entry(rig: FaultRig, name: str) -> dict[str, Any]:
    status = await rig.status()
    entry: dict[str, Any] = next(c for c in status["clusters"] if c["name"] == name)
    return entry


async def state_of(rig: FaultRig, name: str) -> str:
    return str((await cluster_entry(rig, name))["state"])


async def cells_of(rig: FaultRig, cluster: str) -> list[dict[str, Any]]:
    return [c for c in (await rig.status())["apps"] if c["cluster"] == cluster]


async def test_a_frozen_apiserver_is_unreachable_within_seconds_and_recovers(
    kit_clusters: list[RunningCluster], tmp_path: Path
) -> None:
    frozen, other = kit_clusters[0], kit_clusters[1]
    with fault_rig(tmp_path) as rig:
        remote = rig.remote("config")
        remote.commit({"app/ns.yaml": namespace_doc(NS), "app/cm.yaml": configmap(NS, "v1")})
        rig.write_config(fleet_yaml(rig.url("config"), NS))
        rig.drop(frozen)
        rig.drop(other)
        hub = rig.hub()
        await until(lambda: all_equal(values([frozen, other], NS), "v1"))
        assert await state_of(rig, frozen.name) == "ready"

        pid = apiserver_pid(frozen)
        os.kill(pid, signal.SIGSTOP)
        try:
            stopped = time.monotonic()
            # a commit right away: its requests to the frozen cluster are in flight, hung
            sha = remote.commit({"app/cm.yaml": configmap(NS, "v2")})
            assert await hub.webhook(rig.url("config")) in (200, 202)
            await until(lambda: _not_ready(rig, frozen.name), limit=30)  # a safety limit
            detected = time.monotonic() - stopped
            entry = await cluster_entry(rig, frozen.name)
            assert entry["state"] == "parked", entry
            assert "unreachable" in entry["error"] and "/readyz" in entry["error"], entry
            assert await state_of(rig, other.name) == "ready"

            # the other cluster converges the commit while one is frozen
            await until(lambda: all_equal(values([other], NS), "v2"), limit=60)
            assert await state_of(rig, frozen.name) == "parked"
            # the hung requests ended (abandoned when the probe found the cluster silent): the
            # frozen cluster's cell reports the failed sync, never green on what it cannot have
            await until(lambda: _sync_failed(rig, frozen.name), limit=30)
            for cell in await cells_of(rig, frozen.name):
                assert not (cell["sync"] == "Synced" and cell["revision"] == sha), cell
            assert hub.alive()
        finally:
            os.kill(pid, signal.SIGCONT)
        print(f"\nSIGSTOP to parked on /api/status: {detected:.1f} s")

        await until(lambda: _ready(rig, frozen.name), limit=60)
        await until(lambda: all_equal(values([frozen, other], NS), "v2"), limit=90)
        assert hub.alive()
        log = rig.log_text()
        silent = re.search(rf"event=cluster_silent cluster={frozen.name} .*abandoned=(\d+)", log)
        assert silent is not None, "no event=cluster_silent in the hub's log"
        assert int(silent.group(1)) >= 1, silent.group(0)  # the hung request of the commit ended
        assert f"event=cluster_answering cluster={frozen.name}" in log
        assert "Traceback" not in log


async def _not_ready(rig: FaultRig, name: str) -> bool:
    return await state_of(rig, name) != "ready"


async def _sync_failed(rig: FaultRig, name: str) -> bool:
    cells = await cells_of(rig, name)
    return any(c["last_result"] == "failed" and "unreachable" in c["error"] for c in cells)


async def _ready(rig: FaultRig, name: str) -> bool:
    return await state_of(rig, name) == "ready"


async def test_a_silent_server_ends_each_request_in_seconds_and_a_fence_abandons_at_once(
    kit_clusters: list[RunningCluster], tmp_path: Path
) -> None:
    """The client's own part, on a real socket that accepts and never answers (a TLS handshake
    that hangs, as with a frozen apiserver): a request ends as ``ApiError(0)`` naming what did
    not happen, the probe reports the silence, and a fence ends a request in flight at once."""
    accepted = anyio.Event()

    async def hold(stream: anyio.abc.SocketStream) -> None:
        accepted.set()
        async with stream:
            await anyio.sleep_forever()

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    document = yaml.safe_load(kit_clusters[0].kubeconfig.read_text())
    document["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{port}"
    async with anyio.create_task_group() as group:
        group.start_soon(listener.serve, hold)
        quick = Timeouts(connect=1.0, read=1.0, total=2.0, probe=1.0)
        async with apply.connect(document, name="silent", timeouts=quick) as cluster:
            with anyio.fail_after(10):  # a safety limit, far above the timeouts
                with pytest.raises(ApiError) as caught:
                    await cluster.request("GET", "/api/v1/namespaces")
                assert caught.value.status == 0
                assert "no connection (TCP and TLS) within 1.0s" in str(caught.value)
                assert "on cluster silent" in str(caught.value)
                cause = await cluster.probe()
                assert "GET /readyz on cluster silent" in cause and "1.0s" in cause

        patient = Timeouts(connect=60.0, read=60.0, total=60.0)
        async with apply.connect(document, name="silent", timeouts=patient) as cluster:
            failed: list[ApiError] = []
            ended = anyio.Event()

            async def hung() -> None:
                try:
                    await cluster.request("GET", "/api/v1/namespaces")
                except ApiError as exc:
                    failed.append(exc)
                ended.set()

            async with anyio.create_task_group() as calls:
                accepted = anyio.Event()
                calls.start_soon(hung)
                await accepted.wait()  # the request is in flight, its TLS handshake hanging
                with anyio.fail_after(5):  # far below its own 60 s timeouts
                    assert cluster.fence("the liveness probe found it silent") == 1
                    await ended.wait()
            assert failed[0].status == 0
            assert "abandoned" in failed[0].message
            assert "the liveness probe found it silent" in failed[0].message
            with pytest.raises(ApiError, match="not sent, the cluster is unreachable"):
                await cluster.request("GET", "/api/v1/namespaces")  # fenced: fails fast
        group.cancel_scope.cancel()
