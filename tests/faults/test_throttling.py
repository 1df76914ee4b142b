"""Throttling that recovers: 30 % of one cluster's requests answered 429 with Retry-After: 1.

The hub runs as ``fleet run`` (:class:`tests.faults.faultkit.FaultRig`) over real git and two kit
clusters; one of them is reached through :class:`bench.throttle_proxy.ThrottleProxy`, a real
HTTPS proxy that answers a seeded 30 % of requests 429 and forwards the rest to the apiserver.
The test asserts from outside: a commit converges on the throttled cluster (read back from its
apiserver directly, not through the proxy) within a generous safety limit, the other cluster
converges too, the throttled cluster is shown ready (a 429 is an answer, not an outage), the
hub's own metrics count the 429s it was given (so the test did throttle), and the hub is alive.
Two more check the apply client's retries of a 429 against the same proxy: bounded by the
gate's attempts, and by time (a request refused more often than the old bound of 10 retries
still gets through; one refused past ``Timeouts.throttled`` ends with the 429).
"""

from __future__ import annotations

import functools
import time
from pathlib import Path
from typing import Any

import anyio
import pytest

from bench.hubproc import metric_sum
from bench.throttle_proxy import ThrottleProxy
from fleet import apply
from fleet.apply.kube import ApiError, Timeouts
from fleet.controlplane import RunningCluster
from fleet.runtime import ClusterLimits, ClusterLimitSettings, RealClock
from tests.faults.faultkit import FaultRig, fault_rig
from tests.hub.hubkit import all_equal, configmap, fleet_yaml, namespace_doc, until, values

pytestmark = [pytest.mark.anyio, pytest.mark.clusters]

NS = "fault-throttled"


async def test_a_cluster_answering_30_percent_429_converges_and_the_other_is_unaffected(
    kit_clusters: list[RunningCluster], tmp_path: Path
) -> None:
    throttled, other = kit_clusters[0], kit_clusters[1]
    with fault_rig(tmp_path) as rig:
        remote = rig.remote("config")
        remote.commit({"app/ns.yaml": namespace_doc(NS), "app/cm.yaml": configmap(NS, "v1")})
        rig.write_config(fleet_yaml(rig.url("config"), NS))
        async with ThrottleProxy(throttled.kubeconfig, share=0.3, retry_after=1.0) as proxy:
            proxy.kubeconfig(rig.clusters / throttled.kubeconfig.name)  # same name, via the proxy
            rig.drop(other)
            hub = rig.hub()
            await until(lambda: all_equal(values([throttled, other], NS), "v1"), limit=90)

            sha = ""
            for value in ("v2", "v3"):
                sha = remote.commit({"app/cm.yaml": configmap(NS, value)})
                assert await hub.webhook(rig.url("config")) == 200
                await until(functools.partial(_converged, [throttled, other], value), limit=60)

            await until(lambda: _synced_at(rig, throttled.name, sha), limit=30)  # the summary
            status = await rig.status()
            states = {c["name"]: c["state"] for c in status["clusters"]}
            assert states == {throttled.name: "ready", other.name: "ready"}, status["clusters"]
            metrics = await hub.metrics()
            seen = metric_sum(
                metrics, "fleet_api_requests_total", cluster=throttled.name, code="429"
            )
            assert proxy.throttled > 0 and seen > 0, (proxy.throttled, seen)
            assert (
                metric_sum(metrics, "fleet_api_requests_total", cluster=other.name, code="429") == 0
            )
            assert hub.alive()
            # before the proxy goes (its end would be a true silent cluster), in a thread: the
            # proxy runs on this event loop, and the hub's stop writes what it holds through it
            await anyio.to_thread.run_sync(hub.stop)
            log = rig.log_text()
        print(
            f"\nproxy: {proxy.requests} requests, {proxy.throttled} answered 429; "
            f"the hub counted {seen:.0f} 429s"
        )
        assert "Traceback" not in log
        assert f"event=cluster_silent cluster={throttled.name}" not in log


async def _converged(clusters: list[RunningCluster], value: str) -> bool:
    return await all_equal(values(clusters, NS), value)


async def _synced_at(rig: FaultRig, cluster: str, sha: str) -> bool:
    status = await rig.status()
    cell: dict[str, Any] = next(c for c in status["apps"] if c["cluster"] == cluster)
    return bool(cell["sync"] == "Synced" and cell["revision"] == sha)


async def test_a_429d_request_waits_its_retry_after_then_is_sent_again_a_bounded_number_of_times(
    kit_clusters: list[RunningCluster], tmp_path: Path
) -> None:
    """The apply client's part, through the same proxy: a 429 is retried after its Retry-After,
    at most ``retry_attempts`` times, then the 429 is the answer; with half the requests refused
    every request still gets through."""
    settings = ClusterLimitSettings(retry_attempts=3, max_retry_after=5.0)
    gate = ClusterLimits("via-proxy", settings, clock=RealClock())
    async with ThrottleProxy(kit_clusters[0].kubeconfig, share=1.0, retry_after=0.2) as proxy:
        path = proxy.kubeconfig(tmp_path / "via-proxy.yaml")
        async with apply.connect(path, gate=gate) as cluster:
            started = time.monotonic()
            with pytest.raises(ApiError) as caught:
                await cluster.request("GET", "/api/v1/namespaces/default")
            waited = time.monotonic() - started
            assert caught.value.status == 429
            assert "Too many requests" in caught.value.message  # the server's own words
            assert proxy.throttled == 4  # the request and its 3 retries
            assert gate.stats().retries == 3
            assert waited >= 3 * 0.2  # each retry waited its Retry-After (a lower bound)

            proxy.share = 0.5
            for _ in range(10):
                answer = await cluster.request("GET", "/api/v1/namespaces/default")
                assert answer["metadata"]["name"] == "default"
            stats = gate.stats()
            assert stats.retries > 3  # some of the ten were refused and sent again
            assert stats.requests[429] == proxy.throttled
            assert stats.requests[200] == 10


async def test_a_429d_request_is_retried_for_a_time_not_a_count_then_the_429_is_the_answer(
    kit_clusters: list[RunningCluster], tmp_path: Path
) -> None:
    """15 refusals in a row (beyond the 10 retries that used to fail a whole sync) are waited
    out, each after its Retry-After; refused for longer than ``Timeouts.throttled``, the request
    ends with the server's 429, long before the gate's attempts are spent."""
    gate = ClusterLimits("via-proxy", ClusterLimitSettings(), clock=RealClock())
    namespace = "/api/v1/namespaces/default"
    async with ThrottleProxy(kit_clusters[0].kubeconfig, share=0.0, retry_after=0.1) as proxy:
        kubeconfig = proxy.kubeconfig(tmp_path / "via-proxy.yaml")
        left = [15]

        def fifteen_times(method: str, path: str) -> bool:
            if path != namespace or not left[0]:
                return False
            left[0] -= 1
            return True

        proxy.refuse = fifteen_times
        async with apply.connect(kubeconfig, gate=gate) as cluster:
            answer = await cluster.request("GET", namespace)
        assert answer["metadata"]["name"] == "default"
        assert proxy.throttled == 15 and gate.stats().retries == 15

        proxy.refuse = lambda method, path: path == namespace
        before = proxy.throttled
        async with apply.connect(kubeconfig, gate=gate, timeouts=Timeouts(throttled=3.0)) as short:
            with pytest.raises(ApiError) as caught:
                await short.request("GET", namespace)
        assert caught.value.status == 429
        sent = proxy.throttled - before
        attempts = ClusterLimitSettings().retry_attempts
        assert 2 <= sent < attempts  # retried, then ended by its time, not by the attempts
