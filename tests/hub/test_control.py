"""Operating a running hub from the command line: get, wait, suspend, resume, refresh, sync.

A real hub on a kit cluster; every verb runs as ``fleet ...`` in a subprocess against its API, and
what it claims is checked on the cluster: a suspended target does not move on a new commit, and
moves once resumed; the suspension is written where a restarted hub finds it.
"""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import pytest

from fleet.controlplane import RunningCluster
from fleet.hub.hub import Hub
from tests.hub.hubkit import (
    configmap,
    drop,
    fleet_cli,
    fleet_yaml,
    hub_settings,
    push_webhook,
    until,
    value_on,
)

pytestmark = [pytest.mark.anyio, pytest.mark.clusters]


async def test_verbs_against_a_running_hub(
    kit_clusters: list[RunningCluster], tmp_path: Path
) -> None:
    from tests.sources.gitkit import Remote

    ns = "control"
    cluster = kit_clusters[0]
    remote = Remote(tmp_path / "git")
    remote.commit({"app/cm.yaml": configmap(ns, "v1")})
    settings = hub_settings(tmp_path)
    config = fleet_yaml(remote.url, ns).replace("prune: true", "prune: true, createNamespace: true")
    settings.config_path.write_text(config)
    drop(cluster, settings.clusters_dir)
    hub = Hub(settings)
    async with anyio.create_task_group() as tg:
        port = await tg.start(hub.run)
        url = f"http://127.0.0.1:{port}"
        code, out, err = await fleet_cli("wait", "web", "--health", "--timeout", "60", "--url", url)
        assert code == 0, err
        code, out, _ = await fleet_cli("get", "web", "--url", url)
        assert code == 0 and f"ok {cluster.name}: Synced/Healthy" in out
        assert f"ConfigMap {ns}/settings: " in out
        code, out, _ = await fleet_cli("get", "web", "--url", url, "--json")
        assert json.loads(out)["targets"][0]["objects"]

        code, out, err = await fleet_cli("suspend", "web", "--cluster", cluster.name, "--url", url)
        assert code == 0 and f"web@{cluster.name}" in out, err
        await until(lambda: hub.board.cell("web", cluster.name).suspended)
        remote.commit({"app/cm.yaml": configmap(ns, "v2")})
        assert await push_webhook(port, remote.url) == 200
        await anyio.sleep(3)
        assert await value_on(cluster, ns) == "v1"  # suspended: nothing written
        status = hub.board.cell("web", cluster.name)
        assert not status.ready and status.condition("Ready").reason == "Suspended"  # type: ignore[union-attr]
        saved = json.loads((settings.state_dir / "suspended.json").read_text())
        assert saved["targets"] == [[cluster.name, "web"]]
        code, _, _ = await fleet_cli("status", "--url", url)
        assert code == 1

        code, out, _ = await fleet_cli("resume", "web", "--cluster", cluster.name, "--url", url)
        assert code == 0
        code, out, err = await fleet_cli("wait", "web", "--timeout", "60", "--url", url)
        assert code == 0, err
        assert await value_on(cluster, ns) == "v2"
        types = [e.type for e in hub.targets.events(app="web", cluster=cluster.name)]
        assert "Suspended" in types and "Resumed" in types

        code, out, _ = await fleet_cli("refresh", "web", "--url", url)
        assert code == 0 and "refreshed 1 target(s)" in out
        code, out, _ = await fleet_cli("sync", "web", "--url", url)
        assert code == 0 and cluster.name in out
        code, _, err = await fleet_cli("get", "nope", "--url", url)
        assert code == 1 and "no app 'nope'" in err
        code, _, err = await fleet_cli(
            "wait", "web", "--timeout", "1", "--url", "http://127.0.0.1:9"
        )
        assert code == 3 and "cannot reach the hub" in err
        hub.stop()


async def test_resume_with_nothing_new_is_green_again(
    kit_clusters: list[RunningCluster], tmp_path: Path
) -> None:
    """Suspend, then resume with no commit in between: the free no-op must not keep the record
    suspended (it did: Ready stayed Suspended until something changed in git)."""
    from tests.sources.gitkit import Remote

    ns = "control-idle"
    cluster = kit_clusters[0]
    remote = Remote(tmp_path / "git")
    remote.commit({"app/cm.yaml": configmap(ns, "v1")})
    settings = hub_settings(tmp_path)
    config = fleet_yaml(remote.url, ns).replace("prune: true", "prune: true, createNamespace: true")
    settings.config_path.write_text(config)
    drop(cluster, settings.clusters_dir)
    hub = Hub(settings)
    async with anyio.create_task_group() as tg:
        port = await tg.start(hub.run)
        url = f"http://127.0.0.1:{port}"
        code, _, err = await fleet_cli("wait", "web", "--health", "--timeout", "60", "--url", url)
        assert code == 0, err

        code, _, err = await fleet_cli("suspend", "web", "--cluster", cluster.name, "--url", url)
        assert code == 0, err
        await until(lambda: hub.board.cell("web", cluster.name).suspended)
        code, _, err = await fleet_cli("resume", "web", "--cluster", cluster.name, "--url", url)
        assert code == 0, err
        await until(lambda: hub.board.cell("web", cluster.name).ready, limit=60)
        status = hub.board.cell("web", cluster.name)
        assert not status.suspended and (status.sync, status.health) == ("Synced", "Healthy")
        assert status.condition("Ready").reason == "Succeeded"  # type: ignore[union-attr]
        types = [e.type for e in hub.targets.events(app="web", cluster=cluster.name)]
        assert types.index("Resumed") > types.index("Suspended")
        code, _, err = await fleet_cli("status", "--url", url)
        assert code == 0, err
        hub.stop()
