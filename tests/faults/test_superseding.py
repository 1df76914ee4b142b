"""Syncs under 429s, against a kit cluster through :class:`bench.throttle_proxy.ThrottleProxy`.

The proxy answers 429 (``Retry-After``) to the writes of chosen objects; the test reads results
back from the apiserver directly, not through the proxy. Two behaviours:

- a sync stuck in Retry-After waits gives way to a newer commit (:mod:`fleet.reconcile.
  superseding`): it ends as stopped, not in sync, its unfinished writes skipped with the reason,
  the inventory still naming the old revision; then the newer commit is applied and recorded;
- a sync retried after a write of it failed writes only what is still needed: the objects its
  first attempt wrote are not written again (counted by the proxy, per object).

Plus the pure part of superseding (which commit supersedes which; the work's own result and
errors come through), and the same at the hub's level (``fleet run`` through
:class:`tests.faults.faultkit.FaultRig`): the stopped sync named in the log, the cell not green
meanwhile, the newer commit Synced. No speed is asserted anywhere: the limits are safety nets.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest

from bench.throttle_proxy import ThrottleProxy
from fleet import apply
from fleet.apply import inventory
from fleet.apply.kube import Timeouts
from fleet.controlplane import RunningCluster
from fleet.reconcile import summary, superseding
from fleet.reconcile.syncing import AppSync, SyncResult, sync
from fleet.runtime import ClusterLimits, ClusterLimitSettings, RealClock
from fleet.types import Manifest, ObjectKey, RenderedSet
from tests.faults.faultkit import FaultRig, fault_rig
from tests.hub.hubkit import (
    all_equal,
    configmap,
    fleet_cli,
    fleet_yaml,
    namespace_doc,
    until,
    value_on,
    values,
)

pytestmark = pytest.mark.anyio

OLD, RUNNING, NEWER = "0" * 40, "a" * 40, "b" * 40


def _objects(namespace: str, value: str, names: tuple[str, ...]) -> RenderedSet:
    found: list[Manifest] = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
    ]
    found += [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": namespace},
            "data": {"value": value},
        }
        for name in names
    ]
    return RenderedSet.of(found)


def _key(namespace: str, name: str) -> ObjectKey:
    return ObjectKey("", "ConfigMap", namespace, name)


def _path(namespace: str, name: str) -> str:
    return f"/api/v1/namespaces/{namespace}/configmaps/{name}"


async def _value(direct: apply.Cluster, namespace: str, name: str) -> str:
    found = await direct.request("GET", _path(namespace, name))
    return str(found["data"]["value"])


async def _revision(direct: apply.Cluster, app: AppSync) -> str:
    inventory = await apply.read_inventory(direct, app.inventory_id)
    assert inventory is not None
    return inventory.revision


@contextmanager
def _refusing(proxy: ThrottleProxy, paths: set[str]) -> Iterator[None]:
    """The proxy answers 429 to every PATCH of `paths` while inside."""
    proxy.refuse = lambda method, path: method == "PATCH" and path in paths
    try:
        yield
    finally:
        proxy.refuse = lambda _method, _path: False


@pytest.mark.clusters
async def test_a_sync_waiting_on_429s_gives_way_to_a_newer_commit_which_is_then_applied(
    kit_clusters: list[RunningCluster], tmp_path: Path
) -> None:
    namespace = f"supersede-{uuid.uuid4().hex[:8]}"
    names = ("a", "b")
    app = AppSync(name=f"sup-{namespace[-8:]}", namespace=namespace)
    refs = {"refs/heads/main": RUNNING}
    gate = ClusterLimits("via-proxy", ClusterLimitSettings(), clock=RealClock())
    kit = kit_clusters[0]
    async with (
        ThrottleProxy(kit.kubeconfig, share=0.0, retry_after=0.5) as proxy,
        apply.connect(kit.kubeconfig) as direct,
    ):
        via = proxy.kubeconfig(tmp_path / "via-proxy.yaml")
        async with apply.connect(via, gate=gate) as cluster:
            first = await sync(cluster, app, _objects(namespace, "v1", names), revision=OLD)
            assert first.in_sync, first.problems()

            results: list[SyncResult] = []
            check = superseding.newer_commit(lambda: refs, revision="main", running=RUNNING)
            with _refusing(proxy, {_path(namespace, n) for n in names}):
                async with anyio.create_task_group() as tg:

                    async def stuck() -> None:
                        rendered = _objects(namespace, "v2", names)
                        results.append(
                            await sync(cluster, app, rendered, revision=RUNNING, superseded=check)
                        )

                    tg.start_soon(stuck)
                    await until(  # the writes refused, and sent again after their Retry-After
                        lambda: proxy.throttled >= 2 * len(names) and gate.stats().retries > 0,
                        limit=60,
                    )
                    assert not results  # still waiting on its writes' Retry-After
                    refs["refs/heads/main"] = NEWER  # a push lands while the sync waits
            (stopped,) = results
            assert stopped.stopped is not None
            assert stopped.stopped.startswith(f"superseded by commit {NEWER[:12]}")
            assert stopped.superseded == stopped.stopped  # the hub works the target again now
            assert not stopped.in_sync and stopped.verdict == "superseded"
            outcome = summary.outcome_of(stopped)  # in the record's words: no failure
            assert outcome.reason == "Superseded" and not outcome.problems
            assert outcome.superseded == stopped.superseded and not outcome.in_sync
            skipped = {c.key: c for c in stopped.changes.of(apply.Outcome.SKIPPED)}
            for name in names:
                assert "superseded" in skipped[_key(namespace, name)].reason
                assert await _value(direct, namespace, name) == "v1"  # refused: never landed
            assert await _revision(direct, app) == OLD  # nothing claims the stopped commit

            newer_check = superseding.newer_commit(lambda: refs, revision="main", running=NEWER)
            newer = await sync(
                cluster,
                app,
                _objects(namespace, "v3", names),
                revision=NEWER,
                superseded=newer_check,
            )
            assert newer.in_sync and newer.stopped is None, newer.problems()
            assert newer.superseded is None
        for name in names:
            assert await _value(direct, namespace, name) == "v3"
        assert await _revision(direct, app) == NEWER
        await direct.request("DELETE", f"/api/v1/namespaces/{namespace}")


@pytest.mark.clusters
async def test_a_sync_retried_after_a_refused_write_writes_only_what_it_had_not_written(
    kit_clusters: list[RunningCluster], tmp_path: Path
) -> None:
    namespace = f"retried-{uuid.uuid4().hex[:8]}"
    names = ("a", "b", "c")
    app = AppSync(name=f"ret-{namespace[-8:]}", namespace=namespace)
    gate = ClusterLimits("via-proxy", ClusterLimitSettings(), clock=RealClock())
    kit = kit_clusters[0]
    async with (
        ThrottleProxy(kit.kubeconfig, share=0.0, retry_after=0.2) as proxy,
        apply.connect(kit.kubeconfig) as direct,
    ):
        via = proxy.kubeconfig(tmp_path / "via-proxy.yaml")
        # one request keeps retrying its 429s for 2 s here (60 s by default), then fails
        async with apply.connect(via, gate=gate, timeouts=Timeouts(throttled=2.0)) as cluster:
            first = await sync(cluster, app, _objects(namespace, "v1", names), revision=OLD)
            assert first.in_sync, first.problems()

            v2 = _objects(namespace, "v2", names)
            with _refusing(proxy, {_path(namespace, "c")}):
                failed = await sync(cluster, app, v2, revision=RUNNING)
            assert not failed.in_sync
            outcomes = {c.key: c.outcome for c in failed.changes.changes}
            assert outcomes[_key(namespace, "a")] is apply.Outcome.CONFIGURED
            assert outcomes[_key(namespace, "b")] is apply.Outcome.CONFIGURED
            assert outcomes[_key(namespace, "c")] is apply.Outcome.FAILED
            assert "429" in next(c.reason for c in failed.changes.of(apply.Outcome.FAILED))
            assert await _value(direct, namespace, "c") == "v1"
            assert await _revision(direct, app) == OLD  # not all written: not recorded

            before = proxy.by_path.copy()
            retried = await sync(cluster, app, v2, revision=RUNNING)
            assert retried.in_sync, retried.problems()
            patches = {
                name: proxy.by_path[f"PATCH {_path(namespace, name)}"]
                - before[f"PATCH {_path(namespace, name)}"]
                for name in names
            }
            assert patches == {"a": 0, "b": 0, "c": 1}, patches
            outcomes = {c.key: c.outcome for c in retried.changes.changes}
            assert outcomes[_key(namespace, "a")] is apply.Outcome.UNCHANGED
            assert outcomes[_key(namespace, "c")] is apply.Outcome.CONFIGURED
        for name in names:
            assert await _value(direct, namespace, name) == "v2"
        assert await _revision(direct, app) == RUNNING
        await direct.request("DELETE", f"/api/v1/namespaces/{namespace}")


@pytest.mark.clusters
async def test_an_inventory_write_cut_by_a_newer_commit_is_seen_through_and_recorded(
    kit_clusters: list[RunningCluster],
) -> None:
    """The newer commit lands while the inventory write of a new object is on the wire (the
    server has it, its answer not read yet): the write is seen through, so the client knows
    the version it replaced, and a cache still showing that version is known stale (else the
    next sync would send it and meet a spurious InventoryConflict)."""
    namespace = f"shield-{uuid.uuid4().hex[:8]}"
    app = AppSync(name=f"shd-{namespace[-8:]}", namespace=namespace)
    kit = kit_clusters[0]
    async with apply.connect(kit.kubeconfig) as direct:
        first = await sync(direct, app, _objects(namespace, "v1", ("a",)), revision=OLD)
        assert first.in_sync, first.problems()
        before = await apply.read_inventory(direct, app.inventory_id)
        assert before is not None and before.resource_version
        stale_copy = {"metadata": {"resourceVersion": before.resource_version}}
        inventory_path = f"/api/v1/namespaces/{inventory.NAMESPACE}/configmaps/"
        inventory_path += inventory.configmap_name(app.inventory_id)
        pushed: list[str] = []
        async with apply.connect(kit.kubeconfig) as cluster:
            sent = cluster.request

            async def slow_answer(method: str, path: str, **kwargs: Any) -> Any:
                answer = await sent(method, path, **kwargs)
                if method == "PATCH" and path == inventory_path and not pushed:
                    pushed.append(NEWER)  # the push lands now; the answer is read 2 s late
                    await anyio.sleep(2.0)
                return answer

            cluster.request = slow_answer  # type: ignore[method-assign]
            check = superseding.newer_commit(
                lambda: {"refs/heads/main": pushed[0] if pushed else RUNNING},
                revision="main",
                running=RUNNING,
            )
            rendered = _objects(namespace, "v2", ("a", "b"))  # b is new: step 6 writes first
            with anyio.fail_after(60):  # a safety net
                stopped = await sync(cluster, app, rendered, revision=RUNNING, superseded=check)
            assert pushed, "the inventory write never went out"
            assert stopped.superseded is not None, stopped.problems()
            assert cluster.inventory_versions.stale(app.inventory_id, stale_copy)
        landed = await apply.read_inventory(direct, app.inventory_id)
        assert landed is not None and _key(namespace, "b") in landed.entries
        assert landed.revision == OLD  # the entry of the new object only, not the commit
        await direct.request("DELETE", f"/api/v1/namespaces/{namespace}")


def test_a_newer_commit_of_the_synced_ref_supersedes_and_a_pinned_commit_never_is() -> None:
    refs = {"refs/heads/main": RUNNING, "refs/tags/v1": RUNNING, "HEAD": RUNNING}
    main = superseding.newer_commit(lambda: refs, revision="main", running=RUNNING)
    tag = superseding.newer_commit(lambda: refs, revision="v1", running=RUNNING)
    head = superseding.newer_commit(lambda: refs, revision="", running=RUNNING)
    pinned = superseding.newer_commit(lambda: refs, revision=RUNNING, running=RUNNING)
    assert [main(), tag(), head(), pinned()] == [None, None, None, None]
    refs.update({"refs/heads/main": NEWER, "refs/tags/v1": NEWER, "HEAD": NEWER})
    assert main() == f"superseded by commit {NEWER[:12]} of main"
    assert tag() == f"superseded by commit {NEWER[:12]} of v1"
    assert head() is not None
    assert pinned() is None  # a sha names itself: not in the listing, never superseded
    refs.clear()
    assert main() is None  # a ref gone from the listing: nothing newer is known


async def test_the_work_s_result_or_error_comes_through_and_superseding_stops_it() -> None:
    async def quick() -> int:
        return 7

    async def broken() -> int:
        raise ValueError("bad input")

    async def forever() -> int:
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    never = superseding.newer_commit(lambda: {}, revision="main", running=RUNNING)
    assert (await superseding.unless_superseded(quick, superseded=never)).result == 7
    assert (await superseding.unless_superseded(quick, superseded=None)).result == 7
    with pytest.raises(ValueError, match="bad input"):
        await superseding.unless_superseded(broken, superseded=never)
    looks: list[int] = []

    def after_three_looks() -> str | None:
        looks.append(1)
        return "superseded by commit x" if len(looks) >= 3 else None

    with anyio.fail_after(30):  # a safety net
        stopped = await superseding.unless_superseded(
            forever, superseded=after_three_looks, poll=0.01
        )
    assert stopped.result is None and stopped.superseded == "superseded by commit x"
    assert len(looks) == 3


HUB_NS = "fault-superseded"


@pytest.mark.clusters
async def test_the_hub_stops_a_sync_stuck_on_429s_when_a_newer_commit_lands_and_applies_that(
    kit_clusters: list[RunningCluster], tmp_path: Path
) -> None:
    """The hub as ``fleet run``: the throttled cluster refuses every write of the app's
    ConfigMap; a commit's sync waits on its Retry-After; a newer commit is pushed: the hub log
    names the first sync superseded by the newer commit, the cell is not Synced meanwhile, and
    once the refusals stop the newer commit is applied and Synced; the other cluster follows
    every commit, and the hub stays up."""
    throttled, other = kit_clusters[0], kit_clusters[1]
    settings = _path(HUB_NS, "settings")
    with fault_rig(tmp_path) as rig:
        remote = rig.remote("config")
        remote.commit(
            {"app/ns.yaml": namespace_doc(HUB_NS), "app/cm.yaml": configmap(HUB_NS, "v1")}
        )
        rig.write_config(fleet_yaml(rig.url("config"), HUB_NS))
        async with ThrottleProxy(throttled.kubeconfig, share=0.0, retry_after=1.0) as proxy:
            proxy.kubeconfig(rig.clusters / throttled.kubeconfig.name)
            rig.drop(other)
            hub = rig.hub()
            await until(lambda: all_equal(values([throttled, other], HUB_NS), "v1"), limit=90)

            with _refusing(proxy, {settings}):
                sent = proxy.by_path[f"PATCH {settings}"]
                stuck = remote.commit({"app/cm.yaml": configmap(HUB_NS, "v2")})
                assert await hub.webhook(rig.url("config")) == 200
                await _step(
                    rig,
                    "the sync of v2 sends its refused write again",
                    lambda: proxy.by_path[f"PATCH {settings}"] >= sent + 2,
                )
                newer = remote.commit({"app/cm.yaml": configmap(HUB_NS, "v3")})
                assert await hub.webhook(rig.url("config")) == 200
                said = f"superseded by commit {newer[:12]}"
                await _step(
                    rig,
                    "the log names the sync of v2 superseded by v3",
                    lambda: _superseded_line(rig.log_text(), stuck, said),
                )
                await _step(
                    rig,
                    "the other cluster has v3",
                    lambda: all_equal(values([other], HUB_NS), "v3"),
                )
                cell = await _cell(rig, throttled.name)
                assert not (cell["sync"] == "Synced" and cell["revision"] == newer), cell
                assert await value_on(throttled, HUB_NS) == "v1"  # every write refused so far

            await _step(
                rig,
                "both clusters have v3 once the writes pass",
                lambda: all_equal(values([throttled, other], HUB_NS), "v3"),
            )
            await _step(
                rig,
                "the throttled cell is Synced at v3",
                lambda: _synced_at(rig, throttled.name, newer),
            )
            assert hub.alive()
            # before the proxy goes (its end would be a true silent cluster), in a thread: the
            # proxy runs on this event loop, and the hub's stop writes what it holds through it
            await anyio.to_thread.run_sync(hub.stop)
        log = rig.log_text()
    assert "Traceback" not in log


async def _step(
    rig: FaultRig, what: str, check: Callable[[], Awaitable[bool] | bool], *, limit: float = 120
) -> None:
    """:func:`until` naming the step that did not happen, with the end of the hub's log."""
    try:
        await until(check, limit=limit)
    except TimeoutError:
        tail = "\n".join(rig.log_text().splitlines()[-40:])
        raise AssertionError(f"not within {limit}s: {what}; the hub's log ends:\n{tail}") from None


def _superseded_line(log: str, stuck: str, said: str) -> bool:
    return any(
        "event=target_superseded" in line and f"commit={stuck[:12]}" in line and said in line
        for line in log.splitlines()
    )


async def _cell(rig: FaultRig, cluster: str) -> dict[str, Any]:
    status = await rig.status()
    found: dict[str, Any] = next(c for c in status["apps"] if c["cluster"] == cluster)
    return found


async def _synced_at(rig: FaultRig, cluster: str, sha: str) -> bool:
    cell = await _cell(rig, cluster)
    return bool(cell["sync"] == "Synced" and cell["revision"] == sha)


@pytest.mark.clusters
async def test_an_operator_s_sync_of_a_manual_app_carries_over_to_the_newer_commit(
    kit_clusters: list[RunningCluster], tmp_path: Path
) -> None:
    """A manual-sync app (``automated: false``): the operator's ``fleet sync`` of v2 waits on
    429s; v3 is pushed and supersedes it; once the writes pass, v3 is applied and Synced with
    no second ``fleet sync`` (the consent was not spent by the sync that gave way)."""
    throttled = kit_clusters[0]
    namespace = "fault-manual-superseded"
    settings = _path(namespace, "settings")
    with fault_rig(tmp_path) as rig:
        remote = rig.remote("config")
        first = remote.commit(
            {"app/ns.yaml": namespace_doc(namespace), "app/cm.yaml": configmap(namespace, "v1")}
        )
        config = fleet_yaml(rig.url("config"), namespace)
        manual = config.replace("syncPolicy: {", "syncPolicy: {automated: false, ")
        assert manual != config
        rig.write_config(manual)
        async with ThrottleProxy(throttled.kubeconfig, share=0.0, retry_after=1.0) as proxy:
            proxy.kubeconfig(rig.clusters / throttled.kubeconfig.name)
            hub = rig.hub()
            url = f"http://127.0.0.1:{hub.port}"

            async def operator_sync() -> None:
                code, out, err = await fleet_cli("sync", "web", "--url", url)
                assert code == 0 and throttled.name in out, (out, err)

            await _step(rig, "the hub previews v1", lambda: _reconciled(rig, first))
            await operator_sync()
            await _step(rig, "v1 is applied", lambda: _has(throttled, namespace, "v1"))

            stuck = remote.commit({"app/cm.yaml": configmap(namespace, "v2")})
            assert await hub.webhook(rig.url("config")) == 200
            await _step(rig, "the hub previews v2", lambda: _reconciled(rig, stuck))
            assert await value_on(throttled, namespace) == "v1"  # manual: only compared
            with _refusing(proxy, {settings}):
                sent = proxy.by_path[f"PATCH {settings}"]
                await operator_sync()
                await _step(
                    rig,
                    "the operator's sync of v2 sends its refused write again",
                    lambda: proxy.by_path[f"PATCH {settings}"] >= sent + 2,
                )
                newer = remote.commit({"app/cm.yaml": configmap(namespace, "v3")})
                assert await hub.webhook(rig.url("config")) == 200
                said = f"superseded by commit {newer[:12]}"
                await _step(
                    rig,
                    "the log names the operator's sync of v2 superseded by v3",
                    lambda: _superseded_line(rig.log_text(), stuck, said),
                )
            await _step(
                rig,
                "v3 is applied with no second `fleet sync`",
                lambda: _has(throttled, namespace, "v3"),
            )
            await _step(
                rig,
                "the cell is Synced at v3",
                lambda: _synced_at(rig, throttled.name, newer),
            )
            assert hub.alive()
            hub.stop()
        log = rig.log_text()
    assert "Traceback" not in log


def _reconciled(rig: FaultRig, commit: str) -> bool:
    return any(
        "event=reconciled" in line and f"commit={commit[:12]}" in line
        for line in rig.log_text().splitlines()
    )


async def _has(cluster: RunningCluster, namespace: str, value: str) -> bool:
    return await value_on(cluster, namespace) == value
