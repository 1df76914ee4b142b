"""Sync waves on a kit cluster, as Argo CD documents them: lower waves first, and the next wave
only once every object of the one before is Healthy; a wave that does not get Healthy in time
fails the sync, naming the wave and the objects, and the waves after it are not applied.

Wave 0 is held back by a Job created with ``suspend: true`` (Suspended, not Healthy): the test
asserts wave 1 is absent while it is held, then lifts ``suspend`` as an operator would; the kit's
Job controller runs it, kwok (the fake node's kubelet) completes its Pod, the Job goes Complete
(Healthy) and wave 1 arrives.
"""

from __future__ import annotations

from collections.abc import Mapping

import anyio
import pytest

from fleet import apply
from fleet.apply.informer import LiveCache
from fleet.controlplane import RunningCluster
from fleet.plan import APP_LABEL
from fleet.reconcile.reading import CachedReader
from fleet.reconcile.syncing import AppSync, SyncResult, sync
from fleet.reconcile.waving import WaveOptions, wait_healthy
from fleet.types import SHARED_MARK_ANNOTATION, Manifest, ObjectKey, RenderedSet
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


def gets(cluster: apply.Cluster) -> int:
    return cluster.calls["GET"]


async def test_the_health_gate_lists_by_label_not_one_get_per_object(
    cluster: apply.Cluster, namespace: str
) -> None:
    """A sync of 10 ConfigMaps in two waves costs one request more than the same 10 in one
    wave: the gate after wave 0 reads its 5 objects with one LIST by the app's label (before the
    fix: one GET per object, 5, and 5 more per second of waiting)."""

    async def cost(app: str, *, waved: bool) -> int:
        objects = [
            configmap(f"{app}-{i}", notes={WAVE: str(i % 2)} if waved else None) for i in range(10)
        ]
        before = gets(cluster)
        result = await sync(
            cluster, AppSync(name=app, namespace=namespace, waves=QUICK), RenderedSet.of(objects)
        )
        assert result.in_sync, result.problems()
        return gets(cluster) - before

    await cost(unique("warmup"), waved=False)  # discovery cached, as for the two measured
    flat = await cost(unique("flat"), waved=False)
    waved = await cost(unique("waved"), waved=True)
    assert waved - flat <= 1, (flat, waved)


async def test_the_health_gate_polls_the_warm_watch_cache(
    cluster: apply.Cluster, namespace: str, kit_clusters: list[RunningCluster]
) -> None:
    """With the cluster's shared watches warm, the gate reads the API once (a LIST of the
    ConfigMaps, a GET of the lone Job) and then polls the cache: a gate held for seconds
    costs no further request."""
    app = unique("cached")
    labels = {APP_LABEL: app}
    entries: dict[ObjectKey, str] = {}
    for i in range(10):
        body = configmap(f"c{i}")
        body["metadata"]["labels"] = labels
        await cluster.request("POST", f"/api/v1/namespaces/{namespace}/configmaps", body=body)
        entries[ObjectKey("", "ConfigMap", namespace, f"c{i}")] = "v1"
    held = job("held", suspend=True)
    held["metadata"]["labels"] = labels
    await cluster.request("POST", f"/apis/batch/v1/namespaces/{namespace}/jobs", body=held)
    entries[ObjectKey("batch", "Job", namespace, "held")] = "batch/v1"
    async with (
        apply.connect(kit_clusters[0].kubeconfig) as watching,
        LiveCache(watching, label_selector=f"{APP_LABEL}={app}") as objects,
        LiveCache(watching, label_selector="fleet.dev/inventory") as inventories,
    ):
        for kind in (objects.ensure("v1", "ConfigMap"), objects.ensure("batch/v1", "Job")):
            assert await objects.wait_warm(kind)
        reader = CachedReader(objects=objects, inventories=inventories)
        await apply.read_live(cluster, entries)  # discovery cached: only reads are counted
        before = gets(cluster)
        health = await wait_healthy(
            cluster,
            entries,
            hooks=set(),
            within=3.0,
            poll=0.2,
            reader=reader,
            selector=f"{APP_LABEL}={app}",
        )
        spent = gets(cluster) - before
    assert health[ObjectKey("batch", "Job", namespace, "held")].status.value == "Suspended"
    assert all(h.status.value == "Healthy" for k, h in health.items() if k.kind == "ConfigMap")
    assert spent == 2, spent
    assert reader.cached >= 11  # at least one poll answered whole from the cache


class StaleReader:
    """A watch cache lagging behind: it answers the Job as it was at resourceVersion 1,
    Complete (the state before the wave wrote it)."""

    def __init__(self) -> None:
        self.asked = 0

    async def inventory(self, cluster: apply.Cluster, app: str) -> apply.Inventory | None:
        return None

    async def live(
        self, cluster: apply.Cluster, wanted: Mapping[ObjectKey, str], *, selector: str
    ) -> dict[ObjectKey, Manifest]:
        self.asked += 1
        old = job("held")
        old["metadata"].update(namespace=next(iter(wanted)).namespace, resourceVersion="1")
        old["status"] = {"conditions": [{"type": "Complete", "status": "True"}], "succeeded": 1}
        return {key: old for key in wanted}


async def test_the_health_gate_never_passes_on_a_stale_cached_copy(
    cluster: apply.Cluster, namespace: str
) -> None:
    held = job("held", suspend=True)
    await cluster.request("POST", f"/apis/batch/v1/namespaces/{namespace}/jobs", body=held)
    key = ObjectKey("batch", "Job", namespace, "held")
    stale = StaleReader()
    health = await wait_healthy(
        cluster, {key: "batch/v1"}, hooks=set(), within=2.0, poll=0.2, reader=stale
    )
    assert stale.asked > 0  # the cache was asked, and its old copy set aside
    assert health[key].status.value == "Suspended", health[key]
