"""Sync waves on a kit cluster, as Argo CD documents them: lower waves first, and the next wave
only once every object of the one before is Healthy; a wave that does not get Healthy in time
fails the sync, naming the wave and the objects, and the waves after it are not applied.

Wave 0 is held back by a Job created with ``suspend: true`` (Suspended, not Healthy): the test
asserts wave 1 is absent while it is held, then lifts ``suspend`` as an operator would; the kit's
Job controller runs it, kwok (the fake node's kubelet) completes its Pod, the Job goes Complete
(Healthy) and wave 1 arrives.
"""

from __future__ import annotations

import anyio
import pytest

from fleet import apply
from fleet.reconcile.syncing import AppSync, SyncResult, sync
from fleet.reconcile.waving import WaveOptions
from fleet.types import SHARED_MARK_ANNOTATION, RenderedSet
from tests.conformance.kit import QUICK, WAVE, cm_path, configmap, get, job, resume, unique, until

pytestmark = pytest.mark.anyio


async def test_waves_in_order_with_the_health_gate(cluster: apply.Cluster, namespace: str) -> None:
    app = AppSync(name=unique("waves"), namespace=namespace, waves=QUICK)
    objects = [
        configmap("first", notes={WAVE: "-1"}),
        job("gate", suspend=True, annotations={WAVE: "0"}),
        configmap("second", notes={WAVE: "1"}),
        configmap("plain"),  # wave 0 by default
    ]
    results: list[SyncResult] = []

    async def run() -> None:
        results.append(await sync(cluster, app, RenderedSet.of(objects), revision="r1"))

    async with anyio.create_task_group() as tg:
        tg.start_soon(run)
        gate = f"/apis/batch/v1/namespaces/{namespace}/jobs/gate"

        async def gate_created() -> bool:
            return await get(cluster, gate) is not None

        await until(gate_created)
        assert await get(cluster, cm_path(namespace, "first")) is not None  # wave -1 went first
        for _ in range(10):  # while wave 0 is held, wave 1 stays out
            assert await get(cluster, cm_path(namespace, "second")) is None
            await anyio.sleep(0.3)
        assert not results
        await resume(cluster, namespace, "gate")
    [result] = results
    assert result.stopped is None, result.problems()
    assert result.in_sync
    assert await get(cluster, cm_path(namespace, "second")) is not None
    outcomes = {c.key.name: c.outcome for c in result.changes.changes}
    assert outcomes == {
        "first": apply.Outcome.CREATED,
        "gate": apply.Outcome.CREATED,
        "plain": apply.Outcome.CREATED,
        "second": apply.Outcome.CREATED,
    }


async def test_a_wave_not_healthy_in_time_fails_the_sync(
    cluster: apply.Cluster, namespace: str
) -> None:
    timing = WaveOptions(wave_timeout=3.0, sync_timeout=60.0, poll_interval=0.3)
    app = AppSync(name=unique("stuck"), namespace=namespace, waves=timing)
    objects = [
        job("held", suspend=True, annotations={WAVE: "2"}),
        configmap("after", notes={WAVE: "3"}),
    ]
    result = await sync(cluster, app, RenderedSet.of(objects), revision="r1")
    assert not result.in_sync
    assert result.verdict == "failed"
    assert result.stopped is not None
    assert "sync wave 2 not Healthy within 3s" in result.stopped
    assert f"batch/Job {namespace}/held (Suspended" in result.stopped
    assert result.problems()[0].startswith("sync stopped: sync wave 2")
    assert result.problems()[-1] == (f"ConfigMap {namespace}/after: not applied: {result.stopped}")
    by_name = {c.key.name: c for c in result.changes.changes}
    assert by_name["held"].outcome is apply.Outcome.FAILED
    assert "sync wave 2" in by_name["held"].reason
    assert by_name["after"].outcome is apply.Outcome.SKIPPED
    assert await get(cluster, cm_path(namespace, "after")) is None

    # the operator lets the Job run: the next sync of the same commit passes the gate
    await resume(cluster, namespace, "held")
    objects[0]["spec"]["suspend"] = False
    again = await sync(
        cluster,
        AppSync(name=app.name, namespace=namespace, waves=QUICK),
        RenderedSet.of(objects),
        revision="r1",
    )
    assert again.in_sync, again.problems()
    assert await get(cluster, cm_path(namespace, "after")) is not None


async def test_create_namespace_with_a_negative_wave_converges_on_a_fresh_cluster(
    cluster: apply.Cluster,
) -> None:
    """The createNamespace Namespace goes in a wave of its own before wave -1: the first sync
    creates it, then the wave -1 ConfigMap in it, then wave 0 (before the fix wave -1 failed for
    want of the Namespace, every time)."""
    fresh = unique("fresh")
    app = AppSync(name=unique("nswave"), namespace=fresh, waves=QUICK)
    shared = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": fresh, "annotations": {SHARED_MARK_ANNOTATION: "createNamespace"}},
    }
    objects = [configmap("early", notes={WAVE: "-1"}), configmap("plain"), shared]
    try:
        result = await sync(cluster, app, RenderedSet.of(objects), revision="r1")
        assert result.stopped is None, result.problems()
        assert result.in_sync, result.problems()
        assert await get(cluster, f"/api/v1/namespaces/{fresh}") is not None
        assert await get(cluster, cm_path(fresh, "early")) is not None
        assert await get(cluster, cm_path(fresh, "plain")) is not None
        outcomes = {c.key.name: c.outcome for c in result.changes.changes}
        assert outcomes == {
            fresh: apply.Outcome.CREATED,
            "early": apply.Outcome.CREATED,
            "plain": apply.Outcome.CREATED,
        }
    finally:
        await cluster.request("DELETE", f"/api/v1/namespaces/{fresh}")
