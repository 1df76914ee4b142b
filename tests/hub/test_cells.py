"""Cells on real clusters: one shared watch per kind, drift from its events, a cached resync.

The two entries share one cell (same API server, same credentials); when the entry whose client
runs it leaves, the cell moves to the other, which keeps healing.

Two cluster entries on one API server (as aliases and tunnels look in real fleets) run one app
with a per-cluster namespace. A hand edit of entry A's object must mark A alone drifted and heal
it (selfHeal), entry B must not hear of it; and once converged, resyncs every second must cost
the API server nothing but the watches themselves, since they are answered from the cache.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import anyio
import pytest
import yaml
from kubernetes_asyncio import client, config

from fleet.apply.informer import Kind
from fleet.controlplane import RunningCluster
from fleet.hub.hub import Hub
from tests.hub.hubkit import hub_settings, push_webhook, until, value_on
from tests.sources.gitkit import Remote

pytestmark = [pytest.mark.anyio, pytest.mark.clusters]


def _alias(kubeconfig: Path, target: Path, name: str) -> None:
    doc = yaml.safe_load(kubeconfig.read_text())
    for context in doc["contexts"]:
        context["name"] = name
    doc["current-context"] = name
    target.write_text(yaml.safe_dump(doc))


def _requests(hub: Hub, cluster: str) -> float:
    total = 0.0
    for metric in hub.metrics.api_requests.collect():
        for sample in metric.samples:
            if sample.name.endswith("_total") and sample.labels.get("cluster") == cluster:
                total += sample.value
    return total


async def test_drift_reaches_its_own_target_and_idle_resyncs_are_free(
    kit_clusters: list[RunningCluster], tmp_path: Path
) -> None:
    cluster = kit_clusters[0]
    remote = Remote(tmp_path / "git")
    manifest = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {value: v1}\n"
    remote.commit({"app/cm.yaml": manifest})  # no namespace: each entry's destination one
    settings = hub_settings(tmp_path, resync_interval=1.0)
    settings.config_path.write_text(
        f"""apps:
  - name: web
    source: {{repoURL: "{remote.url}", targetRevision: main, path: app}}
    destination: {{namespace: "cells-{{{{ cluster.name }}}}"}}
    syncPolicy: {{prune: true, selfHeal: true, createNamespace: true}}
"""
    )
    settings.clusters_dir.mkdir(parents=True, exist_ok=True)
    _alias(cluster.kubeconfig, settings.clusters_dir / "alias-a.yaml", "alias-a")
    _alias(cluster.kubeconfig, settings.clusters_dir / "alias-b.yaml", "alias-b")
    hub = Hub(settings)
    async with anyio.create_task_group() as tg:
        await tg.start(hub.run)
        for name in ("alias-a", "alias-b"):
            await until(lambda: hub.board.cell("web", name).ready)  # noqa: B023
        assert await value_on(cluster, "cells-alias-a") == "v1"

        # idle: resyncs every second, answered from the warm caches
        await anyio.sleep(2)
        before = {n: _requests(hub, n) for n in ("alias-a", "alias-b")}
        await anyio.sleep(6)
        idle = {n: _requests(hub, n) - before[n] for n in before}
        print(f"\nAPI requests in 6 s of 1 s resyncs, per cluster entry: {idle}")
        assert all(count <= 2 for count in idle.values()), idle  # watch renewals at most

        # a commit: both apply it, and neither takes its own writes for drift (they land in
        # the cache while the sync runs, before it watches what it applied)
        manifest = manifest.replace("value: v1", "value: v2")
        remote.commit({"app/cm.yaml": manifest})
        assert await push_webhook(hub.port, remote.url) in (200, 202)
        for name in ("alias-a", "alias-b"):
            await until(lambda: _value_is(cluster, f"cells-{name}", "v2"))  # noqa: B023
            await until(lambda: hub.board.cell("web", name).ready)  # noqa: B023
        await anyio.sleep(1.0)  # late events of its own writes would arrive by now
        for name in ("alias-a", "alias-b"):
            assert "Drift" not in _types(hub, name), hub.targets.events(app="web", cluster=name)

        # each target counts once as a user of its kind, and the readers once, however many
        # syncs subscribed and read (the counts had grown by one per sync)
        assert hub.membership.cells is not None
        shared = hub.membership.cells.cell("alias-a")
        assert shared is not None
        assert shared.objects.users(Kind("", "ConfigMap")) == 3

        # a hand edit of A's object: A drifts and heals, B hears nothing
        events_b = len(hub.targets.events(app="web", cluster="alias-b"))
        async with await config.new_client_from_config(config_file=str(cluster.kubeconfig)) as api:
            edited = time.monotonic()
            await client.CoreV1Api(api).patch_namespaced_config_map(
                "settings", "cells-alias-a", {"data": {"value": "by-hand"}}
            )
        await until(
            lambda: "Drift" in [e.type for e in hub.targets.events(app="web", cluster="alias-a")]
        )
        seen = time.monotonic() - edited
        await until(lambda: _value_is(cluster, "cells-alias-a", "v2"))
        healed = time.monotonic() - edited
        print(f"drift seen after {seen * 1000:.0f} ms, healed after {healed * 1000:.0f} ms")
        await until(lambda: hub.board.cell("web", "alias-a").ready)
        assert "Healed" in _types(hub, "alias-a")
        assert len(hub.targets.events(app="web", cluster="alias-b")) == events_b
        assert hub.board.cell("web", "alias-b").drift_since is None
        cells = hub.membership.cells
        assert cells is not None and cells.cell("alias-a") is cells.cell("alias-b")

        # the entry whose client the shared cell runs on leaves: the cell moves, drift still heals
        (settings.clusters_dir / "alias-a.yaml").unlink()
        await until(lambda: "alias-a" not in hub.board.clusters)
        async with await config.new_client_from_config(config_file=str(cluster.kubeconfig)) as api:
            await client.CoreV1Api(api).patch_namespaced_config_map(
                "settings", "cells-alias-b", {"data": {"value": "by-hand"}}
            )
        await until(lambda: "Drift" in _types(hub, "alias-b"))
        await until(lambda: _value_is(cluster, "cells-alias-b", "v2"))
        hub.stop()
    shutil.rmtree(tmp_path / "cache", ignore_errors=True)


def _types(hub: Hub, cluster: str) -> list[str]:
    return [e.type for e in hub.targets.events(app="web", cluster=cluster)]


async def _value_is(cluster: RunningCluster, namespace: str, value: str) -> bool:
    return await value_on(cluster, namespace) == value
