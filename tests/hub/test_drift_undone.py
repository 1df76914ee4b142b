"""A drift put back by hand: Synced again as soon as the cell sees it, not at the next resync.

selfHeal off, so fleet never writes after the first sync: a hand edit of a managed ConfigMap
must show OutOfSync with a Drift event, and putting the value back by hand must show
Synced/Healthy again with a Recovered event. The resync interval is an hour, so only the cell's
comparison of the put-back object (and the whole target, from its cache) can clear the drift.
"""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from kubernetes_asyncio import client, config

from fleet.controlplane import RunningCluster
from fleet.hub.hub import Hub
from tests.hub.hubkit import configmap, drop, hub_settings, until
from tests.sources.gitkit import Remote

pytestmark = [pytest.mark.anyio, pytest.mark.clusters]


async def _set_value(cluster: RunningCluster, namespace: str, value: str) -> None:
    async with await config.new_client_from_config(config_file=str(cluster.kubeconfig)) as api:
        await client.CoreV1Api(api).patch_namespaced_config_map(
            "settings", namespace, {"data": {"value": value}}
        )


async def test_drift_put_back_by_hand_is_synced_again(
    kit_clusters: list[RunningCluster], tmp_path: Path
) -> None:
    ns = "drift-undone"
    cluster = kit_clusters[0]
    remote = Remote(tmp_path / "git")
    remote.commit({"app/cm.yaml": configmap(ns, "v1")})
    settings = hub_settings(tmp_path, resync_interval=3600)
    settings.config_path.write_text(
        f"""apps:
  - name: web
    source: {{repoURL: "{remote.url}", targetRevision: main, path: app}}
    destination: {{namespace: {ns}}}
    syncPolicy: {{prune: true, selfHeal: false, createNamespace: true}}
"""
    )
    drop(cluster, settings.clusters_dir)
    hub = Hub(settings)

    def status() -> tuple[str, str, bool]:
        cell = hub.targets.status((cluster.name, "web"))
        return cell.sync, cell.health, cell.ready

    def types() -> list[str]:
        return [e.type for e in hub.targets.events(app="web", cluster=cluster.name)]

    async with anyio.create_task_group() as tg:
        await tg.start(hub.run)
        await until(lambda: status()[2])
        await anyio.sleep(1.0)  # late events of its own writes arrive by now

        await _set_value(cluster, ns, "by-hand")
        await until(lambda: status()[0] == "OutOfSync")
        drifted = hub.targets.status((cluster.name, "web"))
        assert drifted.drift_since is not None and drifted.last_drift_at is not None
        assert "Drift" in types()

        await _set_value(cluster, ns, "v1")
        await until(lambda: status()[2], limit=60)
        back = hub.targets.status((cluster.name, "web"))
        assert (back.sync, back.health) == ("Synced", "Healthy")
        assert back.drift_since is None and back.last_drift_at == drifted.last_drift_at
        assert types()[-1] == "Recovered", types()
        assert back.last_sync_at == drifted.last_sync_at  # no sync ran: the cell cleared it
        hub.stop()
