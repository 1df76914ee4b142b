"""The truth rules on real clusters: what the board, ``/api/status`` and metrics claim is true.

Green only when the applied commit is the desired one, the last sync succeeded and health is
Healthy; a failed render is OutOfSync with its error (the last good set kept); an unreachable
cluster is Unknown; a refused prune is OutOfSync with its reason. Each case reads the record and
the metrics the hub exports, and the cluster itself where a claim is about it.
"""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import pytest

from fleet.controlplane import LocalProvider, RunningCluster
from fleet.hub.hub import Hub
from fleet.report import TargetStatus
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
from tests.sources.gitkit import Remote

pytestmark = [pytest.mark.anyio, pytest.mark.clusters]


def _cell(hub: Hub, cluster: str) -> TargetStatus:
    return hub.board.cell("web", cluster)


def _config(url: str, namespace: str) -> str:
    return fleet_yaml(url, namespace).replace(
        "selfHeal: true", "selfHeal: true, createNamespace: true"
    )


def _gauge(hub: Hub, name: str, **labels: str) -> float | None:
    value = hub.metrics.registry.get_sample_value(name, labels)
    return value


async def test_render_failure_and_refused_prune_are_never_green(
    kit_clusters: list[RunningCluster], tmp_path: Path
) -> None:
    ns = "truth-render"
    cluster = kit_clusters[0]
    remote = Remote(tmp_path / "git")
    files = {f"app/cm{i}.yaml": configmap(ns, "v1").replace("settings", f"c{i}") for i in range(4)}
    first = remote.commit({**files, "app/settings.yaml": configmap(ns, "v1")})
    settings = hub_settings(tmp_path, resync_interval=3600)
    settings.config_path.write_text(
        fleet_yaml(remote.url, ns).replace(
            "selfHeal: true", "selfHeal: true, createNamespace: true"
        )
    )
    drop(cluster, settings.clusters_dir)
    hub = Hub(settings)
    async with anyio.create_task_group() as tg:
        port = await tg.start(hub.run)
        await until(lambda: _cell(hub, cluster.name).ready)
        status = _cell(hub, cluster.name)
        assert status.applied_commit == status.desired_commit == first
        assert _gauge(hub, "fleet_target_ready", app="web", cluster=cluster.name) == 1.0
        assert hub.board.to_json()["summary"]["green"]

        # a commit that does not render: OutOfSync with the error, the last good set untouched
        broken = remote.commit({"app/settings.yaml": "kind: [unclosed\n"})
        assert await push_webhook(port, remote.url) == 200
        await until(lambda: _cell(hub, cluster.name).error_reason == "RenderFailed")
        status = _cell(hub, cluster.name)
        assert (status.sync, status.ready) == ("OutOfSync", False)
        assert status.desired_commit == broken and status.applied_commit == first
        assert "settings.yaml" in status.error
        assert _gauge(hub, "fleet_target_ready", app="web", cluster=cluster.name) == 0.0
        labels = {"app": "web", "cluster": cluster.name, "status": "OutOfSync"}
        assert _gauge(hub, "fleet_target_sync_status", **labels) == 1.0
        assert not hub.board.to_json()["summary"]["green"]
        assert await value_on(cluster, ns) == "v1"
        events = [e.type for e in hub.targets.events(app="web", cluster=cluster.name)]
        assert events[-1] == "RenderFailed"

        # removing every object is a prune over the limit: refused, OutOfSync with the reason
        gone = {path: None for path in [*files, "app/settings.yaml"]}
        remote.commit({**gone, "app/keep.txt": "nothing to deploy\n"})
        assert await push_webhook(port, remote.url) == 200
        await until(lambda: _cell(hub, cluster.name).error_reason not in ("RenderFailed", ""))
        status = _cell(hub, cluster.name)
        assert (status.sync, status.ready) == ("OutOfSync", False), status
        assert status.error_reason in ("PruneRefused", "SyncFailed") and status.error
        assert await value_on(cluster, ns) == "v1"  # nothing deleted
        rows = hub.history.query(app="web", cluster=cluster.name)
        assert rows[0].result == "failed" and rows[0].error
        hub.stop()


async def test_an_unreachable_cluster_is_unknown_then_green_again(tmp_path: Path) -> None:
    ns = "truth-outage"
    remote = Remote(tmp_path / "git")
    remote.commit({"app/cm.yaml": configmap(ns, "v1")})
    settings = hub_settings(tmp_path)
    settings.config_path.write_text(
        fleet_yaml(remote.url, ns).replace(
            "selfHeal: true", "selfHeal: true, createNamespace: true"
        )
    )
    with LocalProvider(kubeconfig_dir=tmp_path / "kit", progress=lambda _: None) as kit:
        (cluster,) = kit.up(["truth-a"])
        drop(cluster, settings.clusters_dir)
        hub = Hub(settings)
        async with anyio.create_task_group() as tg:
            port = await tg.start(hub.run)
            await until(lambda: _cell(hub, "truth-a").ready)
            kit.stop_apiserver("truth-a")
            remote.commit({"app/cm.yaml": configmap(ns, "v2")})
            assert await push_webhook(port, remote.url) == 200
            await until(lambda: _cell(hub, "truth-a").sync == "Unknown")
            status = _cell(hub, "truth-a")
            assert status.health == "Unknown" and not status.ready
            assert status.error_reason == "Unreachable" and "truth-a" in status.error
            kit.start_apiserver("truth-a")
            await until(lambda: _cell(hub, "truth-a").ready)
            assert await value_on(cluster, ns) == "v2"
            types = [e.type for e in hub.targets.events(app="web", cluster="truth-a")]
            assert "Unreachable" in types and types[-1] in ("Recovered", "Synced")
            hub.stop()


async def test_fleet_events_from_the_hub_and_from_history(
    kit_clusters: list[RunningCluster], tmp_path: Path
) -> None:
    ns = "truth-events"
    cluster = kit_clusters[0]
    remote = Remote(tmp_path / "git")
    first = remote.commit({"app/cm.yaml": configmap(ns, "v1")})
    settings = hub_settings(tmp_path)
    settings.config_path.write_text(_config(remote.url, ns))
    drop(cluster, settings.clusters_dir)
    hub = Hub(settings)
    async with anyio.create_task_group() as tg:
        port = await tg.start(hub.run)
        await until(lambda: _cell(hub, cluster.name).ready)
        remote.commit({"app/cm.yaml": "kind: [\n"})
        assert await push_webhook(port, remote.url) == 200
        await until(lambda: _cell(hub, cluster.name).error_reason == "RenderFailed")
        live = await _fleet("events", "web", "--url", f"http://127.0.0.1:{port}", "--json")
        hub.stop()
    offline = await _fleet("events", "web", "--state-dir", str(settings.state_dir), "--json")
    text = await _fleet("events", "--state-dir", str(settings.state_dir), "--cluster", cluster.name)
    for rows in (json.loads(live), json.loads(offline)):
        types = [r["type"] for r in rows if r["cluster"] == cluster.name]
        assert types[:2] == ["RenderFailed", "Synced"], types  # newest first
        assert rows[1]["commit"] == first
    assert "RenderFailed" in text and f"web@{cluster.name}" in text and "!" in text


async def _fleet(*args: str) -> str:
    code, out, err = await fleet_cli(*args)
    assert code == 0, err
    return out


async def test_a_removed_cluster_an_app_names_is_unknown(
    kit_clusters: list[RunningCluster], tmp_path: Path
) -> None:
    """Its kubeconfig leaves clusters/: the app still names it, so the target is Unknown (not
    dropped, never green) with the cause; nothing is deleted in the cluster."""
    ns = "truth-removed"
    cluster = kit_clusters[0]
    remote = Remote(tmp_path / "git")
    remote.commit({"app/cm.yaml": configmap(ns, "v1")})
    settings = hub_settings(tmp_path)
    named = _config(remote.url, ns).replace(
        f"destination: {{namespace: {ns}}}",
        f"destination: {{namespace: {ns}, clusters: {{names: [{cluster.name}]}}}}",
    )
    assert cluster.name in named
    settings.config_path.write_text(named)
    kubeconfig = drop(cluster, settings.clusters_dir)
    hub = Hub(settings)
    async with anyio.create_task_group() as tg:
        await tg.start(hub.run)
        await until(lambda: _cell(hub, cluster.name).ready)
        kubeconfig.unlink()
        await until(lambda: _cell(hub, cluster.name).sync == "Unknown")
        status = _cell(hub, cluster.name)
        assert status.health == "Unknown" and not status.ready
        assert status.error_reason == "Unreachable" and "kubeconfig" in status.error
        assert not hub.board.to_json()["summary"]["green"]
        assert await value_on(cluster, ns) == "v1"  # nothing deleted there
        hub.stop()
