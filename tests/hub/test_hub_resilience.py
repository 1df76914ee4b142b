"""The hub under failure: a dead apiserver, garbage input, a SIGKILL mid-sync.

Each test reads the clusters themselves to decide what converged; the waits are safety nets.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Awaitable
from pathlib import Path

import anyio
import pytest
from kubernetes_asyncio import client, config

from fleet.controlplane import LocalProvider, RunningCluster
from fleet.hub.hub import Hub
from tests.hub.hubkit import (
    all_equal,
    configmap,
    drop,
    fleet_yaml,
    hub_settings,
    namespace_doc,
    push_webhook,
    until,
    values,
)
from tests.sources.gitkit import Remote

pytestmark = [pytest.mark.anyio, pytest.mark.clusters]


async def test_dead_apiserver_is_parked_and_recovers(tmp_path: Path) -> None:
    ns = "hub-outage"
    remote = Remote(tmp_path / "git")
    remote.commit({"app/ns.yaml": namespace_doc(ns), "app/cm.yaml": configmap(ns, "v1")})
    settings = hub_settings(tmp_path)
    settings.config_path.write_text(fleet_yaml(remote.url, ns))
    with LocalProvider(kubeconfig_dir=tmp_path / "kit", progress=lambda _: None) as kit:
        dead, alive = kit.up(["out-a", "out-b"])
        drop(dead, settings.clusters_dir)
        drop(alive, settings.clusters_dir)
        hub = Hub(settings)
        async with anyio.create_task_group() as tg:
            port = await tg.start(hub.run)
            await until(lambda: all_equal(values([dead, alive], ns), "v1"))

            kit.stop_apiserver("out-a")
            remote.commit({"app/cm.yaml": configmap(ns, "v2")})
            assert await push_webhook(port, remote.url) == 200
            await until(lambda: all_equal(values([alive], ns), "v2"))
            await until(lambda: hub.board.clusters["out-a"].state == "parked")
            assert "unreachable" in hub.board.clusters["out-a"].error
            assert hub.board.clusters["out-b"].state == "ready"

            # the other cluster keeps converging while one is parked
            remote.commit({"app/cm.yaml": configmap(ns, "v3")})
            assert await push_webhook(port, remote.url) == 200
            await until(lambda: all_equal(values([alive], ns), "v3"))

            kit.start_apiserver("out-a")  # back: a probe closes the breaker, no hub restart
            await until(lambda: all_equal(values([dead], ns), "v3"))
            await until(lambda: hub.board.clusters["out-a"].state == "ready")
            hub.stop()


async def test_garbage_and_bad_config_affect_nothing_else(
    kit_clusters: list[RunningCluster], tmp_path: Path
) -> None:
    ns = "hub-garbage"
    remote = Remote(tmp_path / "git")
    remote.commit({"app/cm.yaml": configmap(ns, "v1")})  # no Namespace in git: fleet creates it
    settings = hub_settings(tmp_path)
    settings.config_path.write_text(
        fleet_yaml(remote.url, ns).replace(
            "selfHeal: true}", "selfHeal: true, createNamespace: true}"
        )
    )
    cluster = kit_clusters[0]
    drop(cluster, settings.clusters_dir)
    (settings.clusters_dir / "junk.yaml").write_text("this: [is not, a kubeconfig")
    (settings.clusters_dir / "empty.yaml").write_text("")
    hub = Hub(settings)
    async with anyio.create_task_group() as tg:
        port = await tg.start(hub.run)
        await until(lambda: all_equal(values([cluster], ns), "v1"))
        assert "junk.yaml: invalid YAML" in hub.board.clusters["junk"].error
        assert hub.board.clusters["junk"].state == "error"
        assert hub.board.clusters["empty"].state == "error"
        assert hub.board.clusters[cluster.name].state == "ready"

        good = settings.config_path.read_text()
        settings.config_path.write_text(good.replace("repoURL:", "repoURL: [broken]\n      x:"))
        await until(lambda: bool(hub.board.config_error))
        assert str(settings.config_path) in hub.board.config_error
        # the last good config keeps running: a new commit still converges
        remote.commit({"app/cm.yaml": configmap(ns, "v2")})
        assert await push_webhook(port, remote.url) == 200
        await until(lambda: all_equal(values([cluster], ns), "v2"))
        ready, _ = hub.readiness()
        assert ready, "a bad reload keeps the hub ready on its last good config"

        settings.config_path.write_text(good)
        await until(lambda: not hub.board.config_error)
        hub.stop()


def _start_hub(settings_dir: Path, *, env: dict[str, str]) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fleet.cli.main",
            "run",
            "--config",
            str(settings_dir / "fleet.yaml"),
            "--clusters",
            str(settings_dir / "clusters"),
            "--state-dir",
            str(settings_dir / "state"),
            "--listen",
            "127.0.0.1:0",
            "--poll-interval",
            "1",
            "--log-level",
            "WARNING",
        ],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stderr is not None
    for line in proc.stderr:
        found = re.search(r"listening on http://[\d.]+:(\d+)", line)
        if found:
            return proc, int(found.group(1))
    raise AssertionError(f"hub exited early with {proc.wait()}")


async def test_sigkill_mid_sync_then_restart_converges_and_prunes_nothing_wrongly(
    kit_clusters: list[RunningCluster], tmp_path: Path
) -> None:
    ns = "hub-sigkill"
    cluster = kit_clusters[1]
    remote = Remote(tmp_path / "git")
    files = {
        f"app/cm-{i:02}.yaml": configmap(ns, f"v{i}").replace("settings", f"cm-{i:02}")
        for i in range(40)
    }
    remote.commit({"app/ns.yaml": namespace_doc(ns), **files})
    (tmp_path / "fleet.yaml").write_text(fleet_yaml(remote.url, ns))
    drop(cluster, tmp_path / "clusters")
    env = dict(os.environ, FLEET_CACHE_DIR=str(tmp_path / "cache"))

    async with await config.new_client_from_config(config_file=str(cluster.kubeconfig)) as api:
        core = client.CoreV1Api(api)

        async def names() -> set[str]:
            try:
                found = await core.list_namespaced_config_map(ns)
            except client.ApiException:
                return set()
            # kube-root-ca.crt is published by the controller-manager in every namespace
            return {item.metadata.name for item in found.items} - {"kube-root-ca.crt"}

        hub, _ = _start_hub(tmp_path, env=env)
        try:
            await until(lambda: _has_some(names()))  # the first sync is under way
            hub.send_signal(signal.SIGKILL)
            hub.wait(timeout=30)
            # someone else's object in the same namespace, not managed by fleet
            await core.create_namespaced_config_map(
                ns,
                client.V1ConfigMap(
                    metadata=client.V1ObjectMeta(name="bystander"), data={"keep": "me"}
                ),
            )
            hub, _ = _start_hub(tmp_path, env=env)
            wanted = {f"cm-{i:02}" for i in range(40)}
            await until(lambda: _contains(names(), wanted))
            # a later commit removes ten objects: exactly those are pruned
            remote.commit({f"app/cm-{i:02}.yaml": None for i in range(30, 40)})
            survivors = {f"cm-{i:02}" for i in range(30)}
            await until(lambda: _equals(names(), survivors | {"bystander"}))
            kept = await core.read_namespaced_config_map("bystander", ns)
            assert kept.data == {"keep": "me"}
        finally:
            hub.send_signal(signal.SIGTERM)
            hub.wait(timeout=60)
    assert hub.returncode == 0, "SIGTERM stops the hub cleanly"


async def _has_some(pending: Awaitable[set[str]]) -> bool:
    return bool(await pending)


async def _contains(pending: Awaitable[set[str]], wanted: set[str]) -> bool:
    return wanted <= await pending


async def _equals(pending: Awaitable[set[str]], wanted: set[str]) -> bool:
    return await pending == wanted
